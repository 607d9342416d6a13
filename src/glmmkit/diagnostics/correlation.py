"""Within-cluster correlation by lag: the empirical one of the marginal residuals beside the one the
fitted model implies (a variogram-style check of a covariance structure; nlme's ``Variogram``).

For every pair of rows of one cluster, y has covariance z_s' G z_t + σ² R_st under the model: the
fitted correlation at a lag is that over the two rows' standard deviations, averaged over the pairs.
The empirical one is the correlation of the marginal residuals e = y − Xβ̂ − offset, each first
divided by its standard deviation under the model (of e, whose covariance V − X Cov(β̂) X' is smaller
than y's), over the pairs at the lag: Σ ẽ_s ẽ_t / √(Σ ẽ_s² Σ ẽ_t²).  Clusters and times come from
the residual structure (``residual=``), or from a structured random-effect term over positions in
one dimension (``ar1(0 + f | g)``, ``ou(time | g)``: the cluster is its grouping factor, the time
the row's position).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, NotAvailableError

__all__ = ["correlation_by_lag"]


def _clusters_and_times(fit):
    """(cluster code, time) of every fit row, from the residual structure or an ordered G term."""
    R = getattr(fit, "_residual", None)
    if R is not None and R.correlation is not None:
        lay = R.layout
        codes = np.empty(lay.n, dtype=np.int64)
        times = np.empty(lay.n)
        codes[lay.order] = lay.codes
        times[lay.order] = lay.times
        return codes, times
    from ..covstruct import AR1, SpatialCorrelation, Toeplitz

    for t in fit.structure.terms:
        cs = t.structure
        if isinstance(cs, (AR1, Toeplitz)) or (isinstance(cs, SpatialCorrelation) and cs.positions.shape[1] == 1):
            pos = np.asarray(cs.positions, dtype=float).reshape(-1)
            cols = np.asarray(t.columns)
            has = cols.any(axis=1)
            times = np.where(has, pos[np.argmax(np.abs(cols), axis=1)], np.nan)
            return t.factor.codes, times
    raise NotAvailableError("correlation by lag is not available: this model has no correlation over time; give a "
                            "residual structure (residual='ar1(visit | g)') or a structured term such as "
                            "ar1(0 + factor(visit) | g) to compare correlations by lag")


def correlation_by_lag(fit, max_lag=None) -> pd.DataFrame:
    """Empirical and model-implied within-cluster correlation of the marginal residuals by lag.

    Parameters
    ----------
    fit : LmmFit
        With a residual structure, or a structured random-effect term over one-dimensional positions.
    max_lag : float, optional
        Largest lag kept.

    Returns
    -------
    DataFrame
        Index ``lag``; columns ``empirical``, ``fitted`` and ``n_pairs``.

    Raises
    ------
    NotAvailableError
        For a GLMM (its responses' correlation is not the linear predictor's), or a model with no
        correlation over time.
    """
    if fit.kind != "lmm":
        raise NotAvailableError("correlation by lag is not available for a GLMM: it compares a Gaussian model's "
                                "residual correlations; look at fit.varcorr (the linear predictor's correlations) "
                                "or marginal_moments()")
    codes, times = _clusters_and_times(fit)
    ok = np.isfinite(times)
    X = fit.frame.X[:, fit._x_kept]
    e = fit.frame.y - X @ fit._beta - fit.frame.offset
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((times[idx], codes[idx]))]
    c, t, r, Xo = codes[order], times[order], e[order], X[order]
    C = np.asarray(fit._vcov, dtype=float)
    cols = [fit.structure.terms[i].columns[order] for i in range(len(fit.structure.terms))]
    covs = [fit._term_cov(term) for term in fit.structure.terms]
    same_level = [fit.structure.terms[i].factor.codes[order] for i in range(len(fit.structure.terms))]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    sizes = np.diff(np.r_[starts, c.shape[0]])
    R = getattr(fit, "_residual", None)
    sigma2 = fit.sigma**2 if fit.has_residual else 0.0
    d = R.row_sd(fit._residual_psi)[order] if R is not None else np.ones(r.shape[0])  # residual SD multipliers
    corr_R = R is not None and R.correlation is not None
    # the model's variance of each row: z' G z + σ² d²
    var_rows = sigma2 * d * d
    for Z, S in zip(cols, covs):
        var_rows += np.einsum("ij,jk,ik->i", Z, S, Z)
    # β̂ is estimated, so e's variance is y's less x' Cov(β̂) x: standardise e by its own SD
    u = r / np.sqrt(np.maximum(var_rows - np.einsum("ij,jk,ik->i", Xo, C, Xo), 1e-300))
    lags, emp, sq_i, sq_j, fitted = [], [], [], [], []
    for k in range(1, int(sizes.max()) if sizes.size else 1):  # pairs k rows apart, every cluster at once
        i = np.arange(r.shape[0] - k)
        j = i + k
        same = c[i] == c[j]
        i, j = i[same], j[same]
        if not i.size:
            continue
        cov = np.zeros(i.shape[0])
        for Z, S, lev in zip(cols, covs, same_level):
            shared = lev[i] == lev[j]
            cov += np.where(shared, np.einsum("ij,jk,ik->i", Z[i], S, Z[j]), 0.0)
        if corr_R:
            cov += sigma2 * d[i] * d[j] * R.pair_correlation(fit._residual_psi, t[i], t[j])
        scale = np.sqrt(var_rows[i] * var_rows[j])  # both sides standardised by the model's SDs
        lags.append(np.abs(t[j] - t[i]))
        emp.append(u[i] * u[j])
        sq_i.append(u[i] ** 2)
        sq_j.append(u[j] ** 2)
        fitted.append(cov / scale)
    if not lags:
        raise ArgumentError("no cluster has two rows: there is no within-cluster correlation to show")
    lag = np.concatenate(lags)
    df = pd.DataFrame({"lag": lag, "prod": np.concatenate(emp), "sq_i": np.concatenate(sq_i),
                       "sq_j": np.concatenate(sq_j), "cov": np.concatenate(fitted)})
    if max_lag is not None:
        df = df[df.lag <= max_lag]
    g = df.groupby("lag")
    sums = g[["prod", "sq_i", "sq_j"]].sum()
    empirical = sums["prod"] / np.sqrt(sums["sq_i"] * sums["sq_j"])
    return pd.DataFrame({"empirical": empirical, "fitted": g["cov"].mean(), "n_pairs": g.size()})
