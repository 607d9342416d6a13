"""Empirical-Bayes predictions of the random effects: posterior means and SDs, and shrinkage.

``fit.ranef`` is the conditional mode (lme4's).  The posterior of b given the
data (at the estimated parameters) is Gaussian for an LMM, so its mean is the
mode and its covariance the conditional variance.  For a GLMM with one grouping
factor the posterior of each level's effects is integrated by adaptive
Gauss-Hermite quadrature (the grid of ``nagq`` nodes per dimension centred at
the mode and scaled by the curvature, as the AGQ deviance); with several
grouping factors the posterior does not factor by level, and the Laplace
(mode, conditional variance) approximation is returned and said so.

Shrinkage (seed 000): for every level the no-pooling estimate (the level's own
maximum-likelihood effect, with the fixed effects and the other factors'
effects held at the fit), the partial-pooling prediction (the mode), the
cluster size, and the shrinkage factor 1 - prediction / no-pooling estimate
(0: none, 1: pulled all the way to the population mean; for an LMM random
intercept it equals σ²/n_j / (σ_b² + σ²/n_j)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp

__all__ = ["ranef_posterior", "shrinkage"]


def ranef_posterior(fit, nagq: int = 15) -> dict:
    """Posterior means and SDs of the random effects (empirical Bayes) at the estimated parameters.

    LMMs: exact (the posterior is Gaussian: mean = the mode, covariance = the conditional variance).
    GLMMs with one grouping factor (not PQL): adaptive Gauss-Hermite quadrature per level; with
    several factors the Laplace approximation (mode and conditional variance).

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.
    nagq : int, default 15
        Quadrature nodes per random-effect dimension (GLMMs with one grouping factor).

    Returns
    -------
    dict
        Grouping-factor name -> DataFrame indexed by level, with a ``(term, "mean")`` and a
        ``(term, "sd")`` column per random-effect term (on the linear-predictor scale);
        ``df.attrs["method"]`` says which computation was used.
    """
    out = {}
    cond = fit._condvar
    means = {k: v.to_numpy() for k, v in fit.ranef.items()}
    method = "exact (Gaussian posterior)" if fit.has_residual else "Laplace (mode and conditional variance)"
    if not fit.has_residual and len(fit.structure.blocks) == 1 and fit.kind != "pql":
        means, cond = _agq_posterior(fit, nagq)
        method = f"adaptive Gauss-Hermite quadrature, {nagq} nodes per dimension"
    for blk in fit.structure.blocks:
        name = blk.factor.name
        m = means[name]
        sd = np.sqrt(np.maximum(np.diagonal(cond[name], axis1=1, axis2=2), 0.0))
        cols = {}
        for j, term in enumerate(blk.names):
            cols[(term, "mean")] = m[:, j]
            cols[(term, "sd")] = sd[:, j]
        df = pd.DataFrame(cols, index=pd.Index(blk.factor.levels, name=name))
        df.attrs["method"] = method
        out[name] = df
    return out


def _agq_posterior(fit, nagq):
    """Posterior mean and covariance of each level's b (one grouping factor) by AGHQ."""
    from ..objective.agq import level_nodes

    state, problem = fit._state, fit._problem
    blk = fit.structure.blocks[0]
    T = fit._templates[0]
    q, K = blk.q, blk.K
    nodes = level_nodes(blk, T, problem.X @ fit._beta + problem.offset, state.u[: q * K].reshape(q, K), problem.y,
                        problem.wt, fit.family, state.eta, nagq)
    terms, Us = nodes.log_terms, nodes.U
    wts = np.exp(terms - logsumexp(terms, axis=0))  # normalised per level
    B = Us @ T.T  # b at every node
    mean = np.einsum("kg,kga->ga", wts, B)
    second = np.einsum("kg,kga,kgb->gab", wts, B, B)
    name = blk.factor.name
    return {name: mean}, {name: second - np.einsum("ga,gb->gab", mean, mean)}


def shrinkage(fit) -> dict:
    """How far each level's random effect is pulled towards the population mean.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.

    Returns
    -------
    dict
        Grouping-factor name -> DataFrame indexed by level: ``n`` (rows in the level) and, per term,
        ``no_pooling`` (the level's own maximum-likelihood effect with everything else held at the fit),
        ``partial_pooling`` (the conditional mode) and ``shrinkage`` = 1 - partial / no-pooling
        (0: none, 1: all the way to the population mean).  ``no_pooling`` and ``shrinkage`` are NaN
    where the level's own estimate does not exist (collinear columns, or a binary level with all 0
    or all 1).
    """
    out = {}
    eta = fit._eta()
    b_all = fit._b
    for blk in fit.structure.blocks:
        sl = slice(blk.offset, blk.offset + blk.size)
        b = b_all[sl].reshape(blk.q, blk.K)
        codes, Z = blk.factor.codes, blk.columns
        # the linear predictor without this factor's effects
        own = np.einsum("ik,ik->i", Z, b[codes])
        base = eta - own
        n = np.bincount(codes, minlength=blk.q)
        nopool = _no_pooling(fit, blk, base)
        cols = {}
        for j, term in enumerate(blk.names):
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = 1.0 - b[:, j] / nopool[:, j]
            cols.update({(term, "no_pooling"): nopool[:, j], (term, "partial_pooling"): b[:, j],
                         (term, "shrinkage"): factor})
        df = pd.DataFrame(cols, index=pd.Index(blk.factor.levels, name=blk.factor.name))
        df.insert(0, ("n", ""), n)
        out[blk.factor.name] = df
    return out


def _no_pooling(fit, blk, base, max_iter=50):
    """Each level's own estimate of its effects given the rest of the linear predictor (NaN where it
    does not exist: a level whose columns are collinear, or a binary level with all 0 or all 1)."""
    codes, Z = blk.factor.codes, blk.columns
    q, K = blk.q, blk.K
    y = fit.frame.y
    if not fit.has_family:  # a PQL fit has a residual (its working model's) but a GLMM's response
        w = np.ones_like(y) if fit.frame.weights is None else fit.frame.weights
        A = np.einsum("i,ia,ib->iab", w, Z, Z)
        G = np.zeros((q, K, K))
        np.add.at(G, codes, A)
        r = np.zeros((q, K))
        np.add.at(r, codes, (w * (y - base))[:, None] * Z)
        return _batched_solve(G, r)
    fam, wt = fit.family, fit._problem.wt
    b = fit._b[blk.offset : blk.offset + blk.size].reshape(q, K).copy()  # Newton from the modes
    ok = np.ones(q, dtype=bool)
    for _ in range(max_iter):
        eta = base + np.einsum("ik,ik->i", Z, b[codes])
        mu, W, z = fam.working(eta, y, wt)
        G = np.zeros((q, K, K))
        np.add.at(G, codes, np.einsum("i,ia,ib->iab", W, Z, Z))
        r = np.zeros((q, K))
        np.add.at(r, codes, (W * (z - eta))[:, None] * Z)
        step = _batched_solve(G, r)
        step = np.where(np.isfinite(step), step, 0.0)
        b += step
        if np.max(np.abs(step)) < 1e-9:
            break
    ok &= np.all(np.abs(b) < 15.0, axis=1)  # diverging: the level's own MLE does not exist
    b[~ok] = np.nan
    return b


def _batched_solve(G, r):
    out = np.full(r.shape, np.nan)
    det_ok = np.linalg.cond(G) < 1e12 if G.shape[1] > 1 else (np.abs(G[:, 0, 0]) > 1e-12)
    if np.any(det_ok):
        out[det_ok] = np.linalg.solve(G[det_ok], r[det_ok][..., None])[..., 0]
    return out
