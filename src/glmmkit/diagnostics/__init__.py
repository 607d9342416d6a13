"""Model checking: simulated (DHARMa-style) residuals and plots.

``DiagnosticsMixin`` gives every fit its diagnostics methods; the work is done
in this package's modules so that ``results/`` stays about estimates.  The
same functions are available here taking the fit as first argument::

    res = fit.simulate_residuals(seed=1)       # or simulate_residuals(fit, seed=1)
    res.uniformity_test(); res.dispersion_test(); res.zero_inflation_test()
    fit.plot_residuals(); fit.plot_caterpillar(); fit.plot_shrinkage(); fit.plot_effects("x")

The plots need matplotlib (``pip install glmmkit[plot]``).
"""

from __future__ import annotations

from .plots import plot_caterpillar, plot_correlation, plot_effects, plot_residuals, plot_shrinkage
from .residuals import ResidualTest, SimulatedResiduals, simulate_residuals

__all__ = [
    "DiagnosticsMixin",
    "simulate_residuals",
    "SimulatedResiduals",
    "ResidualTest",
    "plot_caterpillar",
    "plot_shrinkage",
    "plot_residuals",
    "plot_effects",
]


class DiagnosticsMixin:
    """Diagnostics methods shared by every fitted model (the work is in this package's modules)."""

    def simulate_residuals(self, n_sim: int = 250, seed=None, re_form=None) -> SimulatedResiduals:
        """Scaled quantile residuals by simulation (DHARMa's ``simulateResiduals``); see
        :func:`glmmkit.diagnostics.simulate_residuals`.

        Parameters
        ----------
        n_sim : int, default 250
            Number of simulated responses per observation; the residuals' resolution is 1/n_sim.
        seed : int or numpy Generator, optional
            Random seed (or generator) of the simulations; fresh entropy when omitted.
        re_form : None or "~0", default None
            None: condition on the predicted random effects (DHARMa >= 0.5's default);
            "~0": new random effects in each simulation (unconditional).

        Returns
        -------
        SimulatedResiduals
            With ``uniformity_test()``, ``dispersion_test()``, ``zero_inflation_test()``,
            ``outlier_test()``, ``to_frame()`` and ``plot()``.
        """
        return simulate_residuals(self, n_sim=n_sim, seed=seed, re_form=re_form)

    def plot_caterpillar(self, factor=None, level: float = 0.95, ax=None, sort_by=None, axes=None):
        """Caterpillar plot of the random effects with conditional intervals; see
        :func:`glmmkit.diagnostics.plot_caterpillar`.

        Parameters
        ----------
        factor : str or list of str, optional
            Grouping factor(s) to draw; all by default.
        level : float, default 0.95
            Coverage of the bars (0.95: ±1.96 conditional sd).
        ax : matplotlib Axes or sequence of Axes, optional
            One per panel; a new figure when omitted.
        sort_by : str, optional
            The term whose estimates order the levels; each factor's first term by default.
        axes : matplotlib Axes or sequence of Axes, optional
            Alias of ``ax`` (give one of the two, not both).

        Returns
        -------
        matplotlib.figure.Figure
        """
        return plot_caterpillar(self, factor=factor, level=level, ax=ax, sort_by=sort_by, axes=axes)

    def plot_shrinkage(self, factor=None, term=None, ax=None, axes=None):
        """No-pooling against partial-pooling estimates per level; see
        :func:`glmmkit.diagnostics.plot_shrinkage`.

        Parameters
        ----------
        factor : str, optional
            Grouping factor; the first (most levels) by default.
        term : str or list of str, optional
            Random-effect column(s) of that factor; all by default (one panel each).
        ax : matplotlib Axes or sequence of Axes, optional
            One per panel; a new figure when omitted.
        axes : matplotlib Axes or sequence of Axes, optional
            Alias of ``ax`` (give one of the two, not both).

        Returns
        -------
        matplotlib.figure.Figure
        """
        return plot_shrinkage(self, factor=factor, term=term, ax=ax, axes=axes)

    def plot_residuals(self, n_sim: int = 250, seed=None, re_form=None, ax=None, axes=None):
        """Diagnostic panel of simulated scaled residuals (QQ, residual vs predicted, dispersion,
        zeros); see :func:`glmmkit.diagnostics.plot_residuals`.

        Parameters
        ----------
        n_sim : int, default 250
            Number of simulated responses per observation.
        seed : int or numpy Generator, optional
            Random seed (or generator) of the simulations.
        re_form : None or "~0", default None
            None: condition on the predicted random effects; "~0": new random effects in each
            simulation.
        ax : sequence of 3 (4 for count and binomial families) matplotlib Axes, optional
            One per panel; a new figure when omitted.
        axes : sequence of matplotlib Axes, optional
            Alias of ``ax`` (give one of the two, not both).

        Returns
        -------
        matplotlib.figure.Figure
        """
        return plot_residuals(self, n_sim=n_sim, seed=seed, re_form=re_form, ax=ax, axes=axes)

    def correlation_by_lag(self, max_lag=None):
        """Empirical and fitted within-cluster correlation of the marginal residuals by lag; see
        :func:`glmmkit.diagnostics.correlation.correlation_by_lag`.

        Parameters
        ----------
        max_lag : float, optional
            Largest lag kept (in the time variable's units); all lags by default.

        Returns
        -------
        DataFrame
            Index ``lag``; columns ``empirical``, ``fitted`` and ``n_pairs``.
        """
        from .correlation import correlation_by_lag

        return correlation_by_lag(self, max_lag=max_lag)

    def plot_correlation(self, max_lag=None, ax=None):
        """The correlation by lag, data against the fitted model; see
        :func:`glmmkit.diagnostics.plot_correlation`.

        Parameters
        ----------
        max_lag : float, optional
            Largest lag shown (in the time variable's units); all lags by default.
        ax : matplotlib Axes, optional
            Draw into this Axes; a new figure otherwise.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return plot_correlation(self, max_lag=max_lag, ax=ax)

    def plot_effects(self, variable: str, n_points: int = 100, n_clusters: int = 0, factor=None, seed=None,
                     ax=None, conditional: bool = True, marginal: bool = True, level: float = 0.95, at=None):
        """Conditional (random effects = 0) and marginal effect of one fixed-effect covariate on the
        response scale: curves with confidence bands for a numeric covariate, points with error bars
        per level for a factor, and a caption naming the values the other covariates are held at;
        see :func:`glmmkit.diagnostics.plot_effects`.

        Parameters
        ----------
        variable : str
            A column of the fixed-effects formula.
        n_points : int, default 100
            Points along a numeric covariate's observed range.
        n_clusters : int, default 0
            Also draw this many cluster-specific curves of randomly drawn levels of ``factor``.
        factor : str, optional
            Grouping factor of the cluster curves; the first by default.
        seed : int or numpy Generator, optional
            Which clusters are drawn.
        ax : matplotlib Axes, optional
            Draw into this Axes; a new figure otherwise.
        conditional, marginal : bool, default True
            Which curves to draw.
        level : float, default 0.95
            Confidence level of the bands.
        at : dict, optional
            Conditioning values of the other covariates.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return plot_effects(self, variable, n_points=n_points, n_clusters=n_clusters, factor=factor, seed=seed, ax=ax,
                            conditional=conditional, marginal=marginal, level=level, at=at)
