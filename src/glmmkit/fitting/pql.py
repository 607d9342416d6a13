"""Penalised quasi-likelihood: an outer loop over the LMM fits of the working response (a sibling of
the likelihood strategies, built on the LMM engine)."""

from __future__ import annotations

import numpy as np

from ..objective.lmm import LmmObjective, moment_start
from ..optimize import minimize_bobyqa
from .start import glm_irls

__all__ = ["fit_pql"]

PQL_MESSAGE = ("penalised quasi-likelihood: estimates of a linearised model; no log-likelihood, AIC or BIC "
               "(use nagq=1 or nagq>1 for likelihood-based fits)")


def fit_pql(problem, maxit: int = 50):
    """Penalised quasi-likelihood (Breslow & Clayton 1993, as MASS::glmmPQL): alternate the IRLS
    working response and weights with a weighted ML fit of the linear mixed model to them; the
    LMM's residual variance is the estimated dispersion.  No likelihood is defined.

    Parameters
    ----------
    problem : GlmmProblem
        The GLMM to fit (its family, design and structure).
    maxit : int
        PQL iterations at most.

    Returns
    -------
    PqlFit
    """
    from ..results import FitInfo, LmmFit, PqlFit

    structure, frame, X, fam, wt = problem.structure, problem.frame, problem.X, problem.family, problem.wt
    beta0 = glm_irls(X, frame.y, wt, frame.offset, fam)
    eta = X @ beta0 + frame.offset
    theta = None
    evals, converged, lmm_fit, it = 0, False, None, 0
    for it in range(1, maxit + 1):
        _, W, z = fam.working(eta, frame.y, wt)
        lmm = LmmObjective(structure, X, z - frame.offset, W, reml=False)
        start, step = moment_start(structure, X, z - frame.offset) if theta is None else (theta, 0.1)
        res = minimize_bobyqa(lmm, start, structure.theta_lower, upper=structure.theta_upper, initial_step=step)
        evals += res.n_evals
        theta = res.x
        lmm_fit = LmmFit(frame=frame, structure=structure, objective=lmm, theta=theta,
                         info=FitInfo(res.optimizer, res.n_evals, res.converged, res.message, []),
                         x_kept=problem.kept, dropped_columns=problem.dropped)
        eta_new = lmm_fit._eta()
        change = float(np.sum((eta_new - eta) ** 2))
        eta = eta_new
        if change < 1e-6 * float(np.sum(eta**2)):  # glmmPQL's criterion
            converged = True
            break
    info = FitInfo("PQL: weighted LMM (nlopt BOBYQA) per iteration", evals, converged,
                   f"{it} PQL iteration(s)", [], messages=list(problem.messages) + [PQL_MESSAGE])
    info.pql_iterations = it
    return PqlFit(problem=problem, lmm_fit=lmm_fit, info=info)
