"""Marginal (population-averaged) effects and moments of a GLMM (seed 001; Hedeker et al. 2018).

β is a conditional (subject-specific) effect.  Averaging the conditional mean
over the random effects gives the marginal mean of each row,

    E[y_i] = ∫ g⁻¹(x_i'β + o_i + t) φ(t; 0, v_i) dt,    v_i = Σ_terms z_i' Σ_term z_i,

a one-dimensional integral whatever the design (crossed, nested, slopes: z_i'b
is normal with variance v_i), done by 40-node Gauss-Hermite.  The marginal
coefficients are the least-squares fit of g(E[y]) on X (GLMMadaptive's
``marginal_coefs``); their standard errors come by the delta method from the
covariance of (θ, β) (central differences of the whole map).  Two rows of one
cluster share their random effects, (z_s'b, z_t'b) is bivariate normal, and the
covariance their effects induce is E[μ_s μ_t] − E[μ_s]E[μ_t] (a 2-D rule).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["marginal_coefs", "marginal_means", "marginal_moments"]

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _row_columns(fit, newdata):
    """Per random-effect term, its columns for the rows (fitted rows or newdata)."""
    from ..frame import term_columns

    if newdata is None:
        return [t.columns for t in fit.structure.terms]
    from ..frame import factor_labels

    nd = newdata.reset_index(drop=True)
    out = []
    for t in fit.structure.terms:
        if t.structure.kind == "relmat":  # the row's level picks its row of L
            codes = pd.Index(t.structure.levels).get_indexer(factor_labels(nd, t.source.spec.factors))
            out.append(t.structure.rows_for(codes.astype(np.int64)) * term_columns(t.source, nd)[:, :1])
        else:
            out.append(t.columns_from(term_columns(t.source, nd)))
    return out


def _inverse_link(fit):
    fam = getattr(fit, "family", None)
    return (lambda e: e) if fam is None else fam.link.inverse


def _means_from(fit, eta0, v):
    inv = _inverse_link(fit)
    return inv(eta0[:, None] + np.sqrt(np.maximum(v, 0.0))[:, None] * _NODES[None, :]) @ _WEIGHTS


def _variances(fit, cols, theta):
    v = np.zeros(cols[0].shape[0]) if cols else np.zeros(0)
    for t, Z in zip(fit.structure.terms, cols):
        C = fit._term_cov(t, theta)
        v = v + np.einsum("ia,ab,ib->i", Z, C, Z)
    return v


def marginal_means(fit, newdata=None) -> np.ndarray:
    """E[y] per row, averaging over the random effects (response scale)."""
    eta0 = fit._predict_array(newdata, re_form="~0")
    return _means_from(fit, eta0, _variances(fit, _row_columns(fit, newdata), fit._theta))


def _marginal_beta(fit, theta, beta, X, offset, cols):
    eta0 = X @ beta + offset
    mu = _means_from(fit, eta0, _variances(fit, cols, theta))
    link = fit.family.link.link if fit.has_family else (lambda m: m)
    target = link(mu) - offset
    return np.linalg.lstsq(X, target, rcond=None)[0]


def marginal_coefs(fit) -> pd.DataFrame:
    """Population-averaged coefficients with delta-method standard errors."""
    from scipy import stats

    X = fit.frame.X[:, fit._x_kept]
    offset = fit.frame.offset
    cols = _row_columns(fit, None)
    theta, beta = np.asarray(fit._theta, dtype=float), fit._beta
    est = _marginal_beta(fit, theta, beta, X, offset, cols)
    cov = getattr(fit, "_param_cov", None)
    if fit.has_residual or not fit.has_family:
        se = np.sqrt(np.diag(fit._vcov))  # identity link: marginal = conditional
    elif cov is None or not np.all(np.isfinite(cov)):
        se = np.full(est.shape, np.nan)
    else:
        from ..fitting.driver import central_jacobian

        nt = theta.shape[0]
        _, J = central_jacobian(lambda x: _marginal_beta(fit, x[:nt], x[nt:], X, offset, cols),
                                np.concatenate([theta, beta]))
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, cov, J), 0.0))
    z = est / se
    out = pd.DataFrame({"estimate": est, "std_error": se, "statistic": z, "p_value": 2.0 * stats.norm.sf(np.abs(z)),
                        "conditional": beta}, index=fit.fixef.index)
    out["attenuation"] = out["estimate"] / out["conditional"]
    return out


def marginal_moments(fit, newdata) -> dict:
    """Marginal mean and variance of y per row of ``newdata`` and the covariance and correlation that
    the random effects induce between those rows when they belong to one cluster (every factor),
    plus σ² R between them for a residual correlation structure (at the rows' times, or their order
    for ``ar1(1 | g)``)."""
    nd = newdata.reset_index(drop=True)
    eta0 = fit._predict_array(nd, re_form="~0")
    cols = _row_columns(fit, nd)
    n = eta0.shape[0]
    S = np.zeros((n, n))  # Cov(z_s'b, z_t'b)
    for t, Z in zip(fit.structure.terms, cols):
        S += Z @ fit._term_cov(t) @ Z.T
    v = np.diag(S).copy()
    inv = _inverse_link(fit)
    mean = _means_from(fit, eta0, v)
    sd = np.sqrt(np.maximum(v, 0.0))
    mu_nodes = inv(eta0[:, None] + sd[:, None] * _NODES[None, :])
    var_mu = (mu_nodes**2) @ _WEIGHTS - mean**2
    R = getattr(fit, "_residual", None)
    d = np.ones(n)
    if R is not None and R.variance is not None:
        d = np.exp(R.variance.log_sd_new(nd, R.split(fit._residual_psi)[0]))
    if fit.has_residual:
        within = fit.sigma**2 * d * d
    else:
        within = fit.family.variance(mu_nodes) @ _WEIGHTS
    variance = within + var_mu
    # every pair at once: (z_s'b, z_t'b) = (l00 a, l10 a + l11 c), a, c independent standard normal
    s_idx, t_idx = np.tril_indices(n, -1)
    l00 = sd[s_idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        l10 = np.where(l00 > 0, S[s_idx, t_idx] / np.where(l00 > 0, l00, 1.0), 0.0)
    l11 = np.sqrt(np.maximum(v[t_idx] - l10**2, 0.0))
    a, c = _NODES[None, :, None], _NODES[None, None, :]
    joint = inv(eta0[s_idx][:, None, None] + l00[:, None, None] * a + 0.0 * c) * inv(
        eta0[t_idx][:, None, None] + l10[:, None, None] * a + l11[:, None, None] * c)
    cov = np.zeros((n, n))
    cov[s_idx, t_idx] = np.einsum("pij,i,j->p", joint, _WEIGHTS, _WEIGHTS) - mean[s_idx] * mean[t_idx]
    cov = cov + cov.T
    if R is not None and R.correlation is not None:  # the residual structure correlates the rows: σ² D R D
        spec = R.layout.spec
        times = np.arange(n, dtype=float) if spec.time is None else np.asarray(nd[spec.time], dtype=float)
        Rm = R.correlation_at(fit._residual_psi, times)
        off = ~np.eye(n, dtype=bool)
        cov[off] += (fit.sigma**2 * np.outer(d, d) * Rm)[off]
    cov[np.diag_indices(n)] = variance
    sdv = np.sqrt(variance)
    corr = cov / np.outer(sdv, sdv)
    idx = nd.index
    return {"mean": pd.Series(mean, index=idx), "variance": pd.Series(variance, index=idx),
            "covariance": pd.DataFrame(cov, index=idx, columns=idx),
            "correlation": pd.DataFrame(corr, index=idx, columns=idx)}
