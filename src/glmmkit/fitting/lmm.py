"""Fitting an LMM once the model is built: BOBYQA on the profiled REML/ML criterion, then packaging."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .._threads import single_blas_thread
from ..objective.layout import covariance_layout
from ..objective.lmm import LmmObjective, moment_start
from ..objective.residual_lmm import ResidualLmmObjective
from ..optimize import minimize_bobyqa, minimize_with_restarts
from . import driver

__all__ = ["LmmProblem", "fit_lmm"]


@dataclass(frozen=True)
class LmmProblem:
    """An LMM ready to be fitted (what ``fit.refit`` reuses).

    Attributes
    ----------
    frame : ModelFrame
        The model frame (response, weights, offset, the user's columns).
    structure : ModelStructure
        The random-effects structure.
    X : ndarray, shape (n, p)
        The kept fixed-effect columns (the user's).
    kept, dropped : list
        Indices of the kept fixed-effect columns and names of those dropped as aliased.
    reml : bool
        REML (True) or maximum likelihood.
    data_name : str or None
        Name of the data shown in the summary.
    messages : tuple of str
        Messages from building the model (dropped columns, ...), kept in ``optimizer_info``.
    residual : ResidualStructure or None
        A residual correlation structure (``residual="ar1(visit | Subject)"``); None for σ² I.
    """

    frame: object
    structure: object
    X: np.ndarray
    kept: list
    dropped: list
    reml: bool
    data_name: str | None = None
    messages: tuple = ()
    residual: object = None

    @property
    def response(self) -> np.ndarray:
        """y minus the offset: what the profiled criterion fits.

        Returns
        -------
        numpy.ndarray, shape (n,)
            ``frame.y - frame.offset``.
        """
        return self.frame.y - self.frame.offset

    def objective(self, reml=None, X=None):
        """A new objective: θ -> criterion, or (θ, ψ) -> criterion with a residual structure.

        Parameters
        ----------
        reml : bool, optional
            REML (True) or ML (False); default the problem's own.
        X : numpy.ndarray, shape (n, p), optional
            Fixed-effect columns to use instead of the problem's (e.g. the fit's rescaled ones).

        Returns
        -------
        LmmObjective or ResidualLmmObjective
            The profiled deviance (or REML criterion) of this problem.
        """
        if self.residual is not None:
            return ResidualLmmObjective(self.structure, self.X if X is None else X, self.response,
                                        self.frame.weights, self.reml if reml is None else bool(reml), self.residual)
        return LmmObjective(self.structure, self.X if X is None else X, self.response, self.frame.weights,
                            reml=self.reml if reml is None else bool(reml))

    def fit(self, start=None):
        """Fit this problem (``fit_lmm``).

        Parameters
        ----------
        start : numpy.ndarray, optional
            θ to start from; default the moment start with lme4's identity θ as the second start.

        Returns
        -------
        LmmFit
            A new fit.
        """
        return fit_lmm(self, start=start)

    def with_response(self, y) -> "LmmProblem":
        """The same problem with another response (simulation-based refits: bootstrap, power).

        Parameters
        ----------
        y : array-like, shape (n,)
            The new response for the problem's rows.

        Returns
        -------
        LmmProblem
            A copy whose frame holds ``y`` (and no messages).
        """
        frame = dataclasses.replace(self.frame, y=np.asarray(y, dtype=float), messages=[])
        return dataclasses.replace(self, frame=frame, messages=())


def fit_lmm(problem: LmmProblem, start=None):
    """Fit ``problem``; returns an ``LmmFit``.

    Parameters
    ----------
    problem : LmmProblem
        The model to fit.
    start : ndarray, optional
        θ to start from (a refit starts from the fit's estimates, with a small step); the moment
        start with lme4's identity θ as the second start otherwise.

    Returns
    -------
    LmmFit
    """
    from ..scaling import rescale_columns
    from ..results import FitInfo, LmmFit

    if problem.residual is not None:
        return _fit_with_residual(problem, start)
    structure, frame = problem.structure, problem.frame
    Xs, M = rescale_columns(problem.X, [frame.x_names[j] for j in problem.kept])
    # tiny dense factorisations: BLAS threads only add overhead (50x on a 2-core machine)
    with single_blas_thread():
        objective = problem.objective(X=Xs)
        if start is None:
            theta0, step = (moment_start(structure, Xs, problem.response) if structure.terms
                            else (np.zeros(0), np.zeros(0)))
            # a second start (lme4's identity θ) and a second optimiser only when the first run ends badly
            res = minimize_with_restarts(objective, theta0, structure.theta_lower, upper=structure.theta_upper,
                                         initial_step=step, alt_start=structure.theta_start())
        else:
            res = minimize_bobyqa(objective, np.asarray(start, dtype=float), structure.theta_lower,
                                  upper=structure.theta_upper, initial_step=0.1)
            res.restarts = []
        info = FitInfo(res.optimizer, res.n_evals, res.converged, res.message,
                       driver.on_boundary(res.x, covariance_layout(structure)), messages=list(problem.messages),
                       restarts=res.restarts, engine=_engine_of(objective))
        fit = LmmFit(frame=frame, structure=structure, objective=objective, theta=res.x, info=info,
                     x_kept=problem.kept, dropped_columns=problem.dropped, data_name=problem.data_name,
                     problem=problem)
        if M is not None:
            _unscale(fit, M, problem)
    _check_identified(fit)
    return fit


def _check_identified(fit) -> None:
    """Warn when there are no more observations than parameters: the (REML) likelihood is then flat in
    some direction or unbounded, its Hessian is singular, and the optimiser's stopping point is arbitrary."""
    import warnings

    from ..exceptions import IdentifiabilityWarning

    npar = fit.npar
    if fit.nobs > npar:
        return
    msg = (f"{fit.nobs} observations for {npar} parameters ({len(fit.x_names)} fixed effects, "
           f"{fit.structure.n_theta} covariance parameter(s) and sigma): the likelihood cannot determine them all "
           "(its Hessian is singular), so the estimates are arbitrary; use more data or a simpler model")
    fit.optimizer_info.messages.append(msg)
    warnings.warn(msg, IdentifiabilityWarning, stacklevel=4)


def _unscale(fit, M, problem: LmmProblem) -> None:
    """Report a fit made on rescaled columns (``X M``) on the user's scale (before it is returned).

    θ, σ and the random effects do not depend on how X's columns are scaled; β and its
    covariance transform with M, and the REML log-likelihood (which holds log|X'V⁻¹X|)
    shifts by log|det M|.  The estimates come from the well-conditioned fit; the
    objective kept for later inference (Satterthwaite, profiles) is the user-scale one,
    so that its coefficients are the reported ones.
    """
    fit._beta = M @ fit._beta
    fit._vcov = M @ fit._vcov @ M.T
    if problem.reml:
        fit.loglik += float(np.linalg.slogdet(M)[1])
    fit._objective = problem.objective()
    fit.optimizer_info.rescaled = [fit.x_names[j] for j in np.flatnonzero(np.diag(M) != 1.0)]


def _fit_with_residual(problem: LmmProblem, start=None):
    """BOBYQA on (θ, ψ) jointly: each ψ whitens the rows once (``ResidualLmmObjective``); the fit is
    packaged from the whitened model at ψ̂ on the user's columns, so β, its covariance and the
    (REML) log-likelihood are on the user's scale without a transform."""
    from ..scaling import rescale_columns
    from ..results import FitInfo, LmmFit

    structure, frame, R = problem.structure, problem.frame, problem.residual
    Xs, _ = rescale_columns(problem.X, [frame.x_names[j] for j in problem.kept])
    lower = np.concatenate([structure.theta_lower, R.lower()])
    upper = np.concatenate([structure.theta_upper, R.upper()])
    with single_blas_thread():
        objective = ResidualLmmObjective(structure, Xs, problem.response, frame.weights, problem.reml, R,
                                         sorted_rows=True)
        if start is None:
            theta0, step = (moment_start(structure, Xs, problem.response) if structure.terms
                            else (np.zeros(0), np.zeros(0)))
            x0 = np.concatenate([theta0, R.start()])
            steps = np.concatenate([step, np.full(R.n_params, 0.5)])
            res = minimize_with_restarts(objective, x0, lower, upper=upper, initial_step=steps,
                                         alt_start=np.concatenate([structure.theta_start(), R.start()]))
        else:
            res = minimize_bobyqa(objective, np.asarray(start, dtype=float), lower, upper=upper, initial_step=0.1)
            res.restarts = []
        theta, psi = objective.split(res.x)
        final = problem.objective().at(psi)
        info = FitInfo(res.optimizer, res.n_evals, res.converged and final is not None, res.message,
                       driver.on_boundary(theta, covariance_layout(structure)), messages=list(problem.messages),
                       restarts=res.restarts, engine=_engine_of(final))
        fit = LmmFit(frame=frame, structure=structure, objective=final, theta=theta, info=info,
                     x_kept=problem.kept, dropped_columns=problem.dropped, data_name=problem.data_name,
                     problem=problem, residual_psi=psi)
    _check_identified(fit)
    return fit


def _engine_of(objective) -> str:
    """The PLS engine an objective's system runs on (``optimizer_info.engine``), "" where it has none."""
    return str(getattr(getattr(objective, "system", None), "engine", ""))
