"""The result of a Bayesian fit: draws under lme4's names, their summary and diagnostics, posterior
predictions.

A ``BayesFit`` holds the posterior model, the sampler's output and the model frame; it never changes
after it is built.  Every quantity is a function of the draws: ``draws`` (one row per draw), the
random effects' draws, ``summary()`` (mean, sd, quantiles, R-hat, bulk and tail ESS, MCSE), the
posterior of derived quantities (odds or rate ratios, ICC), posterior predictive ``predict`` and
``simulate``, and ``to_arviz()`` for the rest of Python's Bayesian tools.
"""

from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, ConvergenceWarning, NotAvailableError
from . import diagnostics as _diag

__all__ = ["BayesFit"]


class BayesFit:
    """A mixed model fitted by MCMC (``glmmkit.blmer`` / ``glmmkit.bglmer``).

    Parameters
    ----------
    model : PosteriorModel
        The posterior the draws come from.
    result : SampleResult
        The sampler's output: ``draws`` (chains, draws, dim) on the unconstrained scale and ``stats``.
    frame : ModelFrame
        The model frame (rows used, response, encodings for new data).
    kept : list of int
        Columns of ``frame.X`` kept (aliased ones dropped).
    formula : str
        The model formula.
    settings : dict
        How the sampler ran (chains, draws, tune, seed, target_accept, max_treedepth, sampler, time_s).

    Attributes
    ----------
    model, result, frame, formula, settings
        As given.
    warnings : list of str
        The sampling problems found (divergences, tree depth, E-BFMI, R-hat, ESS), each with a remedy;
        each was also issued as a ``ConvergenceWarning``.
    """

    def __init__(self, model, result, frame, kept, formula, settings):
        self.model = model
        self.result = result
        self.frame = frame
        self._x_kept = list(kept)
        self.formula = formula
        self.settings = dict(settings)
        self._raw = np.asarray(result.draws, dtype=float)  # (chains, draws, dim)
        table = self.summary()
        self.warnings = _diag.sampler_warnings(dict(result.stats), table,
                                               max_treedepth=int(self.settings.get("max_treedepth", 10)))
        for msg in self.warnings:
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)

    # ----- draws ------------------------------------------------------------------------------------
    @property
    def chains(self) -> int:
        """Number of chains.

        Returns
        -------
        int
        """
        return self._raw.shape[0]

    @property
    def n_draws(self) -> int:
        """Draws per chain (after warm-up).

        Returns
        -------
        int
        """
        return self._raw.shape[1]

    @property
    def structure(self):
        """The random-effects structure (what new data are encoded against).

        Returns
        -------
        ModelStructure
        """
        return self.model.structure

    def _flat(self) -> np.ndarray:
        return self._raw.reshape(-1, self._raw.shape[2])

    def _index(self) -> pd.DataFrame:
        c, d = np.meshgrid(np.arange(self.chains), np.arange(self.n_draws), indexing="ij")
        return pd.DataFrame({"chain": c.ravel(), "draw": d.ravel()})

    @cached_property
    def draws(self) -> pd.DataFrame:
        """The posterior draws under lme4's names.

        Returns
        -------
        pandas.DataFrame
            One row per draw (chains × draws): columns ``chain``, ``draw`` and every parameter (fixed
            effects as ``fixef``, ``sd_(Intercept)|herd``, ``cor_Days.(Intercept)|Subject``, ``sigma`` or
            the family's parameter).
        """
        vals = self.model.unpack_draws(self._flat())
        return pd.concat([self._index(), vals.reset_index(drop=True)], axis=1)

    @cached_property
    def ranef_draws(self) -> pd.DataFrame:
        """Draws of every random effect, rstanarm's names ``b[(Intercept) herd:1]``.

        Returns
        -------
        pandas.DataFrame
            Columns ``chain``, ``draw`` and one per random effect.
        """
        vals = self.model.unpack_draws(self._flat(), ranef=True)
        keep = [c for c in vals.columns if c.startswith("b[")]
        return pd.concat([self._index(), vals[keep].reset_index(drop=True)], axis=1)

    @property
    def param_names(self) -> list:
        """The parameters of ``draws`` (without chain and draw).

        Returns
        -------
        list of str
        """
        return [c for c in self.draws.columns if c not in ("chain", "draw")]

    def _array(self, frame: pd.DataFrame) -> np.ndarray:
        names = [c for c in frame.columns if c not in ("chain", "draw")]
        return frame[names].to_numpy(dtype=float).reshape(self.chains, self.n_draws, len(names))

    # ----- summaries ----------------------------------------------------------------------------------
    def summary(self, prob=(0.025, 0.25, 0.5, 0.75, 0.975), ranef: bool = False) -> pd.DataFrame:
        """Posterior summary (rstanarm's and the posterior package's columns).

        Parameters
        ----------
        prob : sequence of float
            Quantiles to report.
        ranef : bool, default False
            Also summarise every random effect.

        Returns
        -------
        pandas.DataFrame
            One row per parameter: mean, sd, mcse_mean, the quantiles, rhat (rank-normalised split),
            ess_bulk, ess_tail.
        """
        frame = self.ranef_draws if ranef else self.draws
        names = [c for c in frame.columns if c not in ("chain", "draw")]
        return _diag.summary_table(self._array(frame), names, prob=prob)

    @property
    def fixef(self) -> pd.Series:
        """Posterior means of the fixed effects.

        Returns
        -------
        pandas.Series
        """
        names = self.model.fixef_names
        return self.draws[names].mean().rename("fixef")

    def posterior_interval(self, prob: float = 0.9) -> pd.DataFrame:
        """Central posterior intervals (rstanarm's ``posterior_interval``).

        Parameters
        ----------
        prob : float, default 0.9
            Posterior probability inside each interval.

        Returns
        -------
        pandas.DataFrame
            Columns lower and upper, one row per parameter.
        """
        if not 0.0 < prob < 1.0:
            raise ArgumentError(f"prob must be between 0 and 1, got {prob!r}")
        vals = self.draws[self.param_names]
        lo, hi = (1.0 - prob) / 2.0, 1.0 - (1.0 - prob) / 2.0
        return pd.DataFrame({"lower": vals.quantile(lo), "upper": vals.quantile(hi)})

    def ratios(self, prob: float = 0.95) -> pd.DataFrame:
        """Posterior of exp(β): odds ratios (logit link) or rate ratios (log link), seed 001's scale.

        Parameters
        ----------
        prob : float, default 0.95
            Posterior probability of the intervals.

        Returns
        -------
        pandas.DataFrame
            mean, median, lower and upper of exp(β) per fixed effect.
        """
        if self.model.link_name not in ("logit", "log"):
            raise NotAvailableError(f"exp(β) has no ratio reading with the {self.model.link_name} link")
        e = np.exp(self.draws[self.model.fixef_names])
        lo, hi = (1.0 - prob) / 2.0, 1.0 - (1.0 - prob) / 2.0
        return pd.DataFrame({"mean": e.mean(), "median": e.median(), "lower": e.quantile(lo), "upper": e.quantile(hi)})

    def icc(self, prob: float = 0.95) -> pd.DataFrame:
        """Posterior of the intraclass correlation of each random intercept: σ_g² / (Σ σ² + residual),
        the residual being σ² for a Gaussian model and π²/3 on the logit scale (the latent-variable ICC).

        Parameters
        ----------
        prob : float, default 0.95
            Posterior probability of the intervals.

        Returns
        -------
        pandas.DataFrame
            mean, lower and upper per grouping factor.
        """
        d = self.draws
        sds = [c for c in d.columns if c.startswith("sd_(Intercept)|")]
        if not sds:
            raise NotAvailableError("the model has no random intercept")
        if self.model.family_name == "gaussian":
            resid = d["sigma"] ** 2
        elif self.model.link_name == "logit":
            resid = np.pi**2 / 3.0
        else:
            raise NotAvailableError(f"the latent-scale ICC needs a logit link or a Gaussian model, not "
                                    f"{self.model.family_name} with the {self.model.link_name} link")
        total = sum(d[c] ** 2 for c in sds) + resid
        lo, hi = (1.0 - prob) / 2.0, 1.0 - (1.0 - prob) / 2.0
        rows = {c.split("|", 1)[1]: (d[c] ** 2 / total) for c in sds}
        return pd.DataFrame({k: {"mean": v.mean(), "lower": v.quantile(lo), "upper": v.quantile(hi)}
                             for k, v in rows.items()}).T

    def prior_summary(self) -> str:
        """The priors used, in rstanarm's ``prior_summary`` layout (adjusted scales shown).

        Returns
        -------
        str
        """
        return self.model.prior_summary()

    # ----- posterior predictions --------------------------------------------------------------------
    def _eta_draws(self, newdata=None, re_form=None, allow_new_levels=False) -> np.ndarray:
        """η per draw (rows) and row (columns)."""
        from ..validate import population_level

        m = self.model
        flat = self._flat()
        beta = flat[:, : m.p].copy()
        if m.has_intercept:  # the sampler's intercept is on centred predictors
            beta[:, m.icpt] -= beta @ m.xbar
        if newdata is None:
            X, offset = m.X, m.offset
        else:
            from ..frame import offset_values
            from ..newdata import fixed_design

            nd = newdata.reset_index(drop=True)
            X = fixed_design(self, nd)
            offset = np.zeros(len(nd))
            for expr in self.frame.parsed.offsets:
                offset = offset + offset_values(expr, nd)
        eta = beta @ X.T + offset[None, :]
        if population_level(re_form):
            return eta
        if re_form is not None:
            raise NotAvailableError("re_form must be None (all random effects) or '~0' for a Bayesian fit")
        mult = np.exp(flat[:, m.aux_i]) if m.aux_i is not None else np.ones(flat.shape[0])
        for mt, st in zip(m.terms, self.structure.terms):
            if newdata is None:
                cols, idx = mt.cols, mt.codes
                known = np.ones(idx.shape[0], dtype=bool)
            else:
                from ..newdata import term_rows

                cols, idx, missing = term_rows(self, st, nd, allow_new_levels)
                known = (idx >= 0) & ~missing
                cols = np.asarray(cols, dtype=float)
            ck, ik = cols[known], idx[known]
            step = max(1, int(4_000_000 // max(1, ck.shape[0] * mt.K)))  # chunks of draws: (draws, rows, K) small
            for a in range(0, flat.shape[0], step):
                B = m.term_effects(mt, flat[a:a + step], mult[a:a + step])
                eta[a:a + step, known] += np.einsum("ik,dik->di", ck, B[:, ik, :])
        return eta

    def _marginal_draws(self, newdata=None) -> np.ndarray:
        """The population-averaged mean E[y] = E_b[g⁻¹(η₀ + z'b)] per draw and row: at each draw a
        Gauss-Hermite average over the row's random-effect variance z'Σz (seed 001's marginal mean)."""
        from ..inference.marginal import _NODES, _WEIGHTS

        m = self.model
        flat = self._flat()
        eta0 = self._eta_draws(newdata, re_form="~0")
        if m.family is None:  # identity link: the marginal mean is η₀
            return eta0
        nd = None if newdata is None else newdata.reset_index(drop=True)
        mult = np.exp(flat[:, m.aux_i]) if m.aux_i is not None else np.ones(flat.shape[0])
        v = np.zeros_like(eta0)
        for mt, st in zip(m.terms, self.structure.terms):
            if nd is None:
                cols = mt.cols
            else:
                from ..newdata import term_rows

                cols, _, missing = term_rows(self, st, nd, True)
                cols = np.where(missing[:, None], 0.0, np.asarray(cols, dtype=float))
            v += m.term_row_variance(mt, np.asarray(cols, dtype=float), flat, mult)
        sd = np.sqrt(np.maximum(v, 0.0))
        out = np.empty_like(eta0)
        inv = m.family.link.inverse
        for a in range(0, eta0.shape[0], 256):  # chunks of draws: (draws, rows, nodes) stays small
            e = eta0[a:a + 256, :, None] + sd[a:a + 256, :, None] * _NODES[None, None, :]
            out[a:a + 256] = inv(e) @ _WEIGHTS
        return out

    def predict(self, newdata=None, re_form=None, type: str = "response", allow_new_levels: bool = False,
                summary: bool = True, prob: float = 0.95, marginal: bool = False):
        """Posterior of the linear predictor or the mean per row (rstanarm's ``posterior_linpred`` /
        ``posterior_epred``).

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            New rows (the fitted rows by default).
        re_form : None or "~0"
            None conditions on the random effects' draws; "~0" sets them to zero.
        type : {"response", "link"}
            The mean E[y | b] or η.
        allow_new_levels : bool, default False
            New levels get random effects 0 (else an error naming them).
        summary : bool, default True
            A DataFrame of mean, sd and the central interval per row; False returns the draws.
        prob : float, default 0.95
            Interval probability.
        marginal : bool, default False
            The population-averaged mean E[y] (the conditional mean averaged over the random effects at
            each draw), on the response scale or its link; with a non-identity link it differs from the
            mean at b = 0 (seed 001's marginal versus conditional effects).

        Returns
        -------
        pandas.DataFrame or ndarray
            Per row (indexed like the data): mean, sd, lower, upper; or an array (draws, rows).
        """
        if type not in ("response", "link"):
            raise ArgumentError(f"type must be 'response' or 'link', got {type!r}")
        if marginal:
            mu = self._marginal_draws(newdata)
            out = mu if type == "response" or self.model.family is None else self.model.family.link.link(mu)
        else:
            eta = self._eta_draws(newdata, re_form, allow_new_levels)
            out = eta if type == "link" or self.model.family is None else self.model.family.link.inverse(eta)
        if not summary:
            return out
        index = self.frame.data.index if newdata is None else newdata.index
        lo, hi = np.quantile(out, [(1.0 - prob) / 2.0, 1.0 - (1.0 - prob) / 2.0], axis=0)
        return pd.DataFrame({"mean": out.mean(axis=0), "sd": out.std(axis=0, ddof=1), "lower": lo, "upper": hi},
                            index=index)

    def simulate(self, n_sim: int | None = None, seed=None, newdata=None, re_form=None) -> np.ndarray:
        """Posterior predictive draws of the response (rstanarm's ``posterior_predict``): one simulated
        response per posterior draw, at that draw's parameters.

        Parameters
        ----------
        n_sim : int, optional
            How many draws to use (evenly spaced; all by default).
        seed : int or numpy Generator, optional
            Random numbers of the simulation.
        newdata : pandas.DataFrame, optional
            New rows (the fitted rows by default).
        re_form : None or "~0"
            As :meth:`predict`.

        Returns
        -------
        ndarray, shape (n_sim, rows)
            On the response's scale (proportions for a binomial with trials).
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        eta = self._eta_draws(newdata, re_form)
        total = eta.shape[0]
        pick = np.arange(total) if n_sim is None else np.linspace(0, total - 1, int(n_sim)).round().astype(int)
        eta = eta[pick]
        m = self.model
        flat = self._flat()[pick]
        wt = m.wt if newdata is None else np.ones(eta.shape[1])
        if m.family is None:
            sigma = np.exp(flat[:, m.aux_i])[:, None]
            return eta + sigma * rng.standard_normal(eta.shape)
        out = np.empty_like(eta)
        for d in range(eta.shape[0]):  # each draw's own family parameter
            fam = m.family
            if m.aux_i is not None:
                fam = fam.with_values({m.family_param: float(np.exp(flat[d, m.aux_i]))})
            out[d] = fam.simulate(fam.link.inverse(eta[d]), wt, rng)
        return out

    def to_arviz(self):
        """The draws as an ArviZ ``InferenceData`` (posterior, sample_stats, observed_data).

        Returns
        -------
        arviz.InferenceData
        """
        draws = self._array(self.draws)
        names = self.param_names
        posterior = {n: draws[:, :, j] for j, n in enumerate(names)}
        stats = {k: np.asarray(v) for k, v in dict(self.result.stats).items()}
        return _diag.to_arviz(posterior, stats, observed_data={"y": np.asarray(self.model.y)})

    # ----- display ------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        s = self.settings
        fam = self.model.family_name + (f" ({self.model.link_name})" if self.model.family is not None else "")
        head = [f"Bayesian mixed model fit by MCMC ({s.get('sampler', 'NUTS')})  [glmmkit]",
                f" Family: {fam}", f"Formula: {self.formula}",
                f"  Draws: {self.chains} chains x {self.n_draws} after {s.get('tune')} warm-up "
                f"({s.get('time_s', float('nan')):.2f} s)", ""]
        table = self.summary(prob=(0.025, 0.975)).round(4)
        body = table.to_string()
        tail = [""] + ([f"Warning: {w}" for w in self.warnings] if self.warnings else ["No sampling problems found."])
        return "\n".join(head + [body] + tail)
