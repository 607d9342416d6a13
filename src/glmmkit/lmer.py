"""``lmer``: the linear mixed model pipeline, four steps that can be tested apart.

formula text -> ParsedFormula -> ModelFrame -> ModelStructure -> LmmObjective
-> optimiser -> LmmFit.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ._threads import single_blas_thread
from .exceptions import DataError, FormulaError, RankDeficiencyWarning, ConvergenceWarning
from .formula import parse_formula
from .design import rescale_columns
from .frame import build_model_frame, drop_aliased_columns
from .objective.lmm import LmmObjective, moment_start
from .optimize import minimize_with_restarts
from .results import FitInfo, LmmFit
from .structure import build_structure
from .validate import check_not_constant, check_reml

__all__ = ["lmer"]


def _check_grouping(structure, nobs: int, lmm: bool) -> None:
    for b in structure.blocks:
        if b.q < 2:
            raise DataError(
                f"grouping factor {b.factor.name!r} has only {b.q} level in the complete rows; "
                "a random effect needs at least 2 levels: remove the term or check the column"
            )
        if lmm and b.q * b.K >= nobs:
            raise DataError(
                f"grouping factor {b.factor.name!r} has {b.q} levels for {nobs} observations: "
                "its random effects cannot be told apart from the residual in a linear mixed model "
                "(one level per row); remove the term or use a GLMM"
            )


def lmer(formula, data, *, reml=True, weights=None, offset=None, data_name=None):
    """Fit a linear mixed model by REML (default) or maximum likelihood.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.  Random
        terms: ``(1 | g)``, ``(x | g)``, ``(0 + x | g)``, ``(x || g)``, nested
        ``(1 | a/b)``, interactions ``(1 | a:b)``, crossed ``(1 | a) + (1 | b)``.
    data : pandas.DataFrame
    reml : bool, default True
        REML (as lme4's ``lmer``) or maximum likelihood.
    weights : array-like or column name, optional
        Prior weights: observation i has residual variance σ² / w_i.
    offset : array-like or column name, optional
        Known part of the linear predictor (adds to ``offset()`` terms).
    data_name : str, optional
        Name shown in the summary.

    Returns
    -------
    LmmFit

    Examples
    --------
    >>> import glmmkit as gk
    >>> df = gk.datasets.load("sleepstudy")
    >>> fit = gk.lmer("Reaction ~ Days + (Days | Subject)", data=df)
    >>> round(fit.loglik, 3)
    -871.814
    """
    t0 = time.perf_counter()
    reml = check_reml(reml)
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError(
            f"formula {formula!r} has no random-effects term such as (1 | group); "
            "a model without random effects is an ordinary linear model"
        )
    frame = build_model_frame(parsed, data, weights=weights, offset=offset)
    messages = list(frame.messages)
    check_not_constant(frame.y - frame.offset, frame.response_name, None)
    if frame.weights is not None and np.any(frame.weights == 0):
        raise DataError(
            f"{int(np.sum(frame.weights == 0))} row(s) have weight 0; lmer needs positive weights: drop those rows"
        )
    with single_blas_thread():
        X, kept, dropped = drop_aliased_columns(frame.X, frame.x_names)
    if dropped:
        msg = (f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): "
               f"{', '.join(dropped)}")
        warnings.warn(msg, RankDeficiencyWarning, stacklevel=2)
        messages.append(msg)
    structure = build_structure(frame)
    _check_grouping(structure, frame.nobs, lmm=True)

    # tiny dense factorisations: BLAS threads only add overhead (50x on a 2-core machine)
    Xs, M = rescale_columns(X, [frame.x_names[j] for j in kept])
    with single_blas_thread():
        objective = LmmObjective(structure, Xs, frame.y - frame.offset, frame.weights, reml=reml)
        theta0, step = moment_start(structure, Xs, frame.y - frame.offset)
        # a second start (lme4's identity θ) and a second optimiser only when the first run ends badly
        res = minimize_with_restarts(objective, theta0, structure.theta_lower, initial_step=step,
                                     alt_start=structure.theta_start())
        info = FitInfo(res.optimizer, res.n_evals, res.converged, res.message,
                       [structure.theta_names[i] for i in res.on_boundary], messages=messages,
                       restarts=res.restarts)
        fit = LmmFit(frame=frame, structure=structure, objective=objective, theta=res.x, info=info,
                     x_kept=kept, dropped_columns=dropped, data_name=data_name)
        if M is not None:
            _unscale_lmm(fit, M, X)
    return finish_fit(fit, t0)


def _unscale_lmm(fit, M, X) -> None:
    """Report a fit made on rescaled columns (``X M``) on the user's scale.

    θ, σ and the random effects do not depend on how X's columns are scaled; β and its
    covariance transform with M, and the REML log-likelihood (which holds log|X'V⁻¹X|)
    shifts by log|det M|.  The estimates come from the well-conditioned fit; the
    objective kept for later inference (Satterthwaite, profiles) is the user-scale one,
    so that its coefficients are the reported ones.
    """
    obj_s = fit._objective
    fit._beta = M @ fit._beta
    fit._vcov = M @ fit._vcov @ M.T
    if obj_s.reml:
        fit.loglik += float(np.linalg.slogdet(M)[1])
    fit._objective = LmmObjective(fit.structure, X, fit.frame.y - fit.frame.offset, fit.frame.weights,
                                  reml=obj_s.reml)
    fit.optimizer_info.rescaled = [fit.x_names[j] for j in np.flatnonzero(np.diag(M) != 1.0)]


def finish_fit(fit, t0: float):
    """Record what the user must know (singular fit, no convergence) and the fit's wall time."""
    info = fit.optimizer_info
    info.method = fit.method
    info.singular = bool(fit.singular)
    if fit.singular:
        info.messages.append("boundary (singular) fit: a variance is estimated as zero or a correlation as ±1; "
                             "consider simplifying the random effects (see fit.varcorr)")
    if not info.converged:
        msg = f"the optimiser did not converge ({info.message}); check fit.optimizer_info"
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
        info.messages.append(msg)
    info.time_s = time.perf_counter() - t0
    return fit
