"""Convergence and efficiency diagnostics for MCMC draws.

The estimators follow Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC" (Bayesian Analysis
16(2), 667-718):

* split R-hat on rank-normalised draws (bulk) and on rank-normalised draws folded around the median
  (tail); the reported R-hat is the larger of the two;
* the effective sample size (ESS) from the multi-chain autocorrelation estimate, with the sums of
  adjacent autocorrelation pairs truncated at the first negative pair and made monotone (Geyer's
  initial monotone sequence); autocorrelations come from the FFT;
* bulk ESS (ESS of the rank-normalised split chains), tail ESS (the smaller ESS of the indicators
  of the 5 % and 95 % quantiles), ESS of the mean (split chains as they are) and of a quantile;
* Monte Carlo standard errors (MCSE) of the mean, of quantiles (section 4.3 of the paper) and of
  the standard deviation (delta method on the ESS of the squared deviations).

Every function takes draws as an array of shape ``(chains, draws)`` or ``(chains, draws, ...)``
and is vectorised over the trailing (parameter) axes: the result has the trailing shape.

Besides these, :func:`ebfmi` gives Betancourt's energy Bayesian fraction of missing information per
chain, :func:`sampler_warnings` turns the sampler statistics and diagnostics into messages with
remedies, :func:`summary_table` gives the posterior summary table, and :func:`to_arviz` builds an
ArviZ ``InferenceData`` (ArviZ is an optional dependency, ``pip install glmmkit[bayes]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import fft as _fft
from scipy import special
from scipy import stats as sps

from glmmkit.exceptions import ArgumentError, DataTypeError

__all__ = [
    "as_chain_array",
    "draws_from_frame",
    "ebfmi",
    "ess",
    "ess_bulk",
    "ess_mean",
    "ess_quantile",
    "ess_tail",
    "mcse_mean",
    "mcse_quantile",
    "mcse_sd",
    "rank_normalize",
    "rhat",
    "rhat_bulk",
    "rhat_tail",
    "sampler_warnings",
    "split_chains",
    "split_rhat",
    "summary_table",
    "to_arviz",
]

# One normal standard deviation either side of the centre: the probabilities at which the posterior
# of a quantile's probability is read off to give a +-1 SE interval for the quantile.
_ONE_SD_PROBS = (special.ndtr(-1.0), special.ndtr(1.0))


# ----------------------------------------------------------------------------------------------------
# input handling


def as_chain_array(draws, name: str = "draws", min_draws: int = 4) -> np.ndarray:
    """Check MCMC draws and return them as a float array of shape ``(chains, draws, ...)``.

    Parameters
    ----------
    draws : array_like
        Draws with the chain on the first axis and the iteration on the second; further axes are
        parameters.  A 1-D array is taken as a single chain.
    name : str, optional
        The argument's name, used in error messages.
    min_draws : int, optional
        The fewest draws per chain accepted (the split-chain diagnostics need 4).

    Returns
    -------
    numpy.ndarray
        The draws as a float array with at least two axes.
    """
    if isinstance(draws, pd.DataFrame):
        raise DataTypeError(
            f"{name} is a DataFrame; pass an array of shape (chains, draws, params), e.g. "
            "draws_from_frame(df) for a frame with 'chain' and 'draw' columns")
    try:
        x = np.asarray(draws, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataTypeError(f"{name} must be a numeric array of shape (chains, draws, ...): {exc}") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim < 2:
        raise ArgumentError(f"{name} must have shape (chains, draws, ...); got a scalar")
    if x.shape[1] < min_draws:
        raise ArgumentError(
            f"{name} has {x.shape[1]} draws per chain; at least {min_draws} are needed "
            "(axis 1 is the draw, axis 0 the chain)")
    if np.isnan(x).any():
        raise ArgumentError(f"{name} contains NaN; drop or repair the failed draws before the diagnostics")
    return x


def draws_from_frame(frame: pd.DataFrame, names: Sequence[str] | None = None):
    """Turn a long draws frame (columns ``chain``, ``draw`` and one per parameter) into an array.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per draw, with integer columns ``chain`` and ``draw`` and one column per parameter.
    names : sequence of str, optional
        The parameter columns to keep; all columns but ``chain`` and ``draw`` by default.

    Returns
    -------
    array : numpy.ndarray
        Shape ``(chains, draws, params)``.
    names : list of str
        The parameter names, in the order of the last axis.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataTypeError("frame must be a pandas DataFrame with columns 'chain', 'draw' and the parameters")
    missing = [c for c in ("chain", "draw") if c not in frame.columns]
    if missing:
        raise ArgumentError(f"frame lacks the column(s) {missing}; it needs 'chain' and 'draw' columns")
    names = [c for c in frame.columns if c not in ("chain", "draw")] if names is None else list(names)
    absent = [n for n in names if n not in frame.columns]
    if absent:
        raise ArgumentError(f"names {absent} are not columns of frame")
    f = frame.sort_values(["chain", "draw"], kind="stable")
    counts = f["chain"].value_counts()
    if counts.nunique() != 1:
        raise ArgumentError(f"every chain must have the same number of draws; frame has {counts.to_dict()}")
    n_chain = counts.size
    return f[names].to_numpy(dtype=float).reshape(n_chain, int(counts.iloc[0]), len(names)), names


def split_chains(draws) -> np.ndarray:
    """Split every chain into its first and second half (the middle draw of an odd count is dropped).

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(2 * chains, draws // 2, ...)``: the first halves of all chains, then the second halves.
    """
    return _split(as_chain_array(draws))


def _split(x: np.ndarray) -> np.ndarray:
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def rank_normalize(draws) -> np.ndarray:
    """Rank-normalise draws: normal scores of the ranks pooled over all chains.

    ``z = Phi^{-1}((r - 3/8) / (S + 1/4))`` with ``r`` the average rank of a draw among all ``S``
    draws of its parameter (Blom's offset, as in Vehtari et al. 2021, eq. 14).

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    numpy.ndarray
        The normal scores, same shape as ``draws``.
    """
    return _rank_normalize(as_chain_array(draws, min_draws=1))


def _rank_normalize(x: np.ndarray) -> np.ndarray:
    s = x.shape[0] * x.shape[1]
    flat = np.ascontiguousarray(x.reshape(s, -1).T)  # (P, S): sort along contiguous rows
    r = _average_ranks(flat)
    return special.ndtri((r - 0.375) / (s + 0.25)).T.reshape(x.shape)


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..S along the last axis of a (P, S) array, ties given their average rank."""
    p, s = a.shape
    order = np.argsort(a, axis=1)
    srt = np.take_along_axis(a, order, axis=1)
    idx = np.broadcast_to(np.arange(s), (p, s))
    new_group = np.ones((p, s), dtype=bool)
    new_group[:, 1:] = srt[:, 1:] != srt[:, :-1]
    last_of_group = np.ones((p, s), dtype=bool)
    last_of_group[:, :-1] = new_group[:, 1:]
    first = np.maximum.accumulate(np.where(new_group, idx, 0), axis=1)
    last = np.minimum.accumulate(np.where(last_of_group, idx, s - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((p, s))
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks


def _flat(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """(chains, draws, ...) -> (chains, draws, P) and the trailing shape."""
    return x.reshape(x.shape[0], x.shape[1], -1), x.shape[2:]


def _shape(values: np.ndarray, trailing: tuple):
    out = values.reshape(trailing)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------------------------------
# R-hat


def _rhat_core(x: np.ndarray) -> np.ndarray:
    """Classic R-hat of (M, N, P) chains taken as they are: sqrt(var+ / W)."""
    m, n = x.shape[:2]
    means = x.mean(axis=1)
    w = x.var(axis=1, ddof=1).mean(axis=0)
    b_over_n = means.var(axis=0, ddof=1) if m > 1 else np.zeros(x.shape[2])
    var_plus = (n - 1) / n * w + b_over_n
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(var_plus / w)
    return np.where(w > 0, out, np.nan)


def split_rhat(draws):
    """Split R-hat of the draws as they are (no rank normalisation).

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter (NaN for a constant parameter).
    """
    x, trailing = _flat(split_chains(draws))
    return _shape(_rhat_core(x), trailing)


def rhat_bulk(draws):
    """Bulk R-hat: split R-hat of the rank-normalised draws.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    x, trailing = _flat(_rank_normalize(split_chains(draws)))
    return _shape(_rhat_core(x), trailing)


def _folded(x: np.ndarray) -> np.ndarray:
    """Absolute deviations from the median of all draws of each parameter."""
    return np.abs(x - np.median(x.reshape(-1, *x.shape[2:]), axis=0))


def rhat_tail(draws):
    """Tail (folded) R-hat: split R-hat of the rank-normalised absolute deviations from the median.

    The chains are split first, so for an odd number of draws the median is that of the draws kept.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    z, trailing = _flat(_rank_normalize(_folded(split_chains(draws))))
    return _shape(_rhat_core(z), trailing)


def rhat(draws):
    """Rank-normalised split R-hat: the larger of the bulk and the tail (folded) R-hat.

    Values above 1.01 mean the chains have not mixed (Vehtari et al. 2021).

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter (NaN for a constant parameter).
    """
    x = as_chain_array(draws)
    return _shape(np.fmax(np.ravel(rhat_bulk(x)), np.ravel(rhat_tail(x))), x.shape[2:])


# ----------------------------------------------------------------------------------------------------
# effective sample size


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariances (1/n normalisation) along the last axis, by FFT."""
    n = x.shape[-1]
    c = x - x.mean(axis=-1, keepdims=True)
    size = _fft.next_fast_len(2 * n, real=True)
    f = _fft.rfft(c, n=size, axis=-1)
    return _fft.irfft(f.real ** 2 + f.imag ** 2, n=size, axis=-1)[..., :n] / n


def _ess_core(x: np.ndarray) -> np.ndarray:
    """ESS of the mean of (M, N, P) chains taken as they are (the chains are not split here).

    The combined autocorrelation at lag t is ``1 - (W - mean_m acov_{m,t}) / var+`` (Vehtari et
    al. 2021, eq. 10, with the within-chain autocovariances normalised by 1/N as in Stan).  The
    pair sums ``P_k = rho_{2k} + rho_{2k+1}`` are kept up to the first negative one (the last
    available pair is never kept) and replaced by
    their running minimum (Geyer's initial monotone sequence).  ``tau = -1 + 2 sum_k P_k`` plus the
    positive part of the even-lag autocorrelation of the first dropped pair (which lowers the
    variance of the estimate for antithetic chains); ``tau`` is bounded below by ``1 / log10(MN)``,
    so the ESS is at most ``MN log10(MN)``.
    """
    m, n, p = x.shape
    acov = np.moveaxis(_autocov(np.ascontiguousarray(np.moveaxis(x, 1, 2))), 2, 1)  # (M, N, P)
    mean_var = acov[:, 0].mean(axis=0) * n / (n - 1)  # W
    var_plus = mean_var * (n - 1) / n
    if m > 1:
        var_plus = var_plus + x.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # (N, P)
    rho[0] = 1.0
    # pairs P_k = rho_{2k} + rho_{2k+1} for k < K, K = (N - 1) // 2 (the last lags, averages of few
    # products, are left out)
    k_pairs = max((n - 1) // 2, 1)
    even = rho[0:2 * k_pairs:2]
    pairs = even + rho[1:2 * k_pairs:2]  # (K, P)
    # kept: the pairs before the first negative one, at most K - 1 of them (P_0 = 1 + rho_1 >= 0)
    keep = np.cumprod(pairs[:-1] >= 0, axis=0).astype(bool)
    if keep.shape[0]:
        keep[0] = True
    n_keep = keep.sum(axis=0)  # (P,)
    monotone = np.minimum.accumulate(np.where(keep, pairs[:-1], np.inf), axis=0)
    tau = -1.0 + 2.0 * np.where(keep, monotone, 0.0).sum(axis=0)
    # plus the even-lag autocorrelation of the first pair not kept, when positive
    tau = tau + np.maximum(even[n_keep, np.arange(p)], 0.0)
    total = m * n
    tau = np.maximum(tau, 1.0 / np.log10(total))
    out = total / tau
    return np.where(np.isfinite(var_plus) & (var_plus > 0), out, np.nan)


def ess(draws, method: str = "bulk", prob: float | None = None):
    """Effective sample size of MCMC draws.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.
    method : {"bulk", "tail", "mean", "quantile"}, optional
        ``"bulk"``: ESS of the rank-normalised split chains (efficiency for the centre of the
        distribution); ``"tail"``: the smaller ESS of the 5 % and 95 % quantiles; ``"mean"``: ESS of
        the mean, from the split chains as they are; ``"quantile"``: ESS of the quantile ``prob``.
    prob : float, optional
        Probability of the quantile, for ``method="quantile"``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter (NaN for a constant parameter).
    """
    if method == "bulk":
        return ess_bulk(draws)
    if method == "tail":
        return ess_tail(draws)
    if method == "mean":
        return ess_mean(draws)
    if method == "quantile":
        if prob is None:
            raise ArgumentError("method='quantile' needs prob, e.g. ess(draws, 'quantile', prob=0.9)")
        return ess_quantile(draws, prob)
    raise ArgumentError(f"method must be 'bulk', 'tail', 'mean' or 'quantile'; got {method!r}")


def ess_mean(draws):
    """ESS of the mean: the ESS of the split chains as they are.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    x, trailing = _flat(split_chains(draws))
    return _shape(_ess_core(x), trailing)


def ess_bulk(draws):
    """Bulk ESS: the ESS of the rank-normalised split chains.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    x, trailing = _flat(_rank_normalize(split_chains(draws)))
    return _shape(_ess_core(x), trailing)


def _check_prob(prob, name="prob") -> float:
    try:
        p = float(prob)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} must be a probability strictly between 0 and 1; got {prob!r}") from None
    if not 0.0 < p < 1.0:
        raise ArgumentError(f"{name} must be strictly between 0 and 1; got {prob!r}")
    return p


def _quantile_ess_flat(x: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """ESS of the indicators I(draw <= q_p) for every p: (len(probs), P), x of shape (M, N, P)."""
    q = np.quantile(x.reshape(-1, x.shape[2]), probs, axis=0)  # (K, P)
    split = _split(x)
    ind = (split[None] <= q[:, None, None, :]).astype(float)  # (K, 2M, N/2, P)
    k = len(probs)
    ind = np.moveaxis(ind, 0, 2).reshape(split.shape[0], split.shape[1], k * x.shape[2])
    return _ess_core(ind).reshape(k, x.shape[2])


def ess_quantile(draws, prob: float):
    """ESS of a quantile: the ESS of the split chains of the indicator ``draw <= q_prob``.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.
    prob : float
        Probability of the quantile, strictly between 0 and 1.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    p = _check_prob(prob)
    x, trailing = _flat(as_chain_array(draws))
    return _shape(_quantile_ess_flat(x, [p])[0], trailing)


def ess_tail(draws):
    """Tail ESS: the smaller of the ESS of the 5 % and of the 95 % quantile.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    x, trailing = _flat(as_chain_array(draws))
    return _shape(np.fmin(*_quantile_ess_flat(x, [0.05, 0.95])), trailing)


# ----------------------------------------------------------------------------------------------------
# Monte Carlo standard errors


def mcse_mean(draws):
    """Monte Carlo standard error of the posterior mean: ``sd / sqrt(ESS of the mean)``.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    x, trailing = _flat(as_chain_array(draws))
    sd = x.reshape(-1, x.shape[2]).std(axis=0, ddof=1)
    return _shape(sd / np.sqrt(_ess_core(_split(x))), trailing)


def mcse_sd(draws):
    """Monte Carlo standard error of the posterior standard deviation.

    By the delta method: the variance of the estimate of the variance ``v`` is
    ``Var((x - mean)^2) / ESS``, with the ESS of the mean of the squared deviations, and the
    standard deviation ``sqrt(v)`` has standard error ``sqrt(Var(v_hat)) / (2 sqrt(v))``.  Unlike
    the normal-theory formula this holds for any distribution with a finite fourth moment.

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    x, trailing = _flat(as_chain_array(draws))
    dev2 = (x - x.mean(axis=(0, 1))) ** 2
    v = dev2.mean(axis=(0, 1))
    var_dev2 = dev2.var(axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(var_dev2 / _ess_core(_split(dev2)) / (4.0 * v))
    return _shape(out, trailing)


def _mcse_quantile_flat(x: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """MCSE of quantiles (K, P) of x (M, N, P)."""
    s_eff = _quantile_ess_flat(x, probs)  # (K, P)
    pr = np.asarray(probs, dtype=float)[:, None]
    flat = np.sort(x.reshape(-1, x.shape[2]), axis=0)
    size = flat.shape[0]
    with np.errstate(invalid="ignore"):
        lo = sps.beta.ppf(_ONE_SD_PROBS[0], s_eff * pr + 1, s_eff * (1 - pr) + 1)
        hi = sps.beta.ppf(_ONE_SD_PROBS[1], s_eff * pr + 1, s_eff * (1 - pr) + 1)
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    # the order statistics just outside the interval: floor(lo S)-th and ceil(hi S)-th (1-based)
    i_lo = np.clip(np.floor(np.nan_to_num(lo) * size) - 1, 0, size - 1).astype(int)
    i_hi = np.clip(np.ceil(np.nan_to_num(hi) * size) - 1, 0, size - 1).astype(int)
    cols = np.arange(x.shape[2])[None, :]
    out = (flat[i_hi, cols] - flat[i_lo, cols]) / 2.0
    return np.where(bad, np.nan, out)


def mcse_quantile(draws, prob: float):
    """Monte Carlo standard error of a posterior quantile.

    With ``S`` the ESS of the quantile, the probability that a draw lies below the true quantile has
    (approximately) a Beta(``S p + 1``, ``S (1 - p) + 1``) distribution; its 15.9 % and 84.1 %
    quantiles, mapped through the empirical quantile function, give a +-1 standard error interval,
    whose half-width is returned (Vehtari et al. 2021, section 4.3).

    Parameters
    ----------
    draws : array_like
        Shape ``(chains, draws, ...)``.
    prob : float
        Probability of the quantile, strictly between 0 and 1.

    Returns
    -------
    float or numpy.ndarray
        One value per parameter.
    """
    p = _check_prob(prob)
    x, trailing = _flat(as_chain_array(draws))
    return _shape(_mcse_quantile_flat(x, [p])[0], trailing)


# ----------------------------------------------------------------------------------------------------
# summary table


def _quantile_label(p: float) -> str:
    return f"{100 * p:.10g}%"


def summary_table(draws, names: Sequence[str] | None = None,
                  prob: Sequence[float] = (0.025, 0.25, 0.5, 0.75, 0.975)) -> pd.DataFrame:
    """Posterior summary: one row per parameter.

    Parameters
    ----------
    draws : array_like or pandas.DataFrame
        Shape ``(chains, draws, params)``, or a long frame with columns ``chain``, ``draw`` and one
        per parameter (the layout of ``fit.draws``).
    names : sequence of str, optional
        Parameter names, one per entry of the last axis (for a frame: the columns to summarise).
        ``param0``, ``param1``, ... by default.
    prob : sequence of float, optional
        Probabilities of the quantile columns, named like rstanarm's (``"2.5%"``, ``"50%"``, ...).

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter, with columns ``mean``, ``sd``, ``mcse_mean``, one per quantile,
        ``rhat`` (rank-normalised split R-hat), ``ess_bulk`` and ``ess_tail``.
    """
    if isinstance(draws, pd.DataFrame):
        x, names = draws_from_frame(draws, names)
    else:
        x = as_chain_array(draws)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise ArgumentError(f"draws must have shape (chains, draws, params); got shape {x.shape}")
        if names is None:
            names = [f"param{i}" for i in range(x.shape[2])]
        names = list(names)
        if len(names) != x.shape[2]:
            raise ArgumentError(f"names has {len(names)} entries but draws has {x.shape[2]} parameters "
                                "(last axis); give one name per parameter")
    if isinstance(prob, (float, int)):
        prob = [prob]
    probs = [_check_prob(p, "prob") for p in prob]
    flat = x.reshape(-1, x.shape[2])
    sd = flat.std(axis=0, ddof=1)
    split = _split(x)
    cols = {"mean": flat.mean(axis=0), "sd": sd, "mcse_mean": sd / np.sqrt(_ess_core(split))}
    if probs:
        qs = np.quantile(flat, probs, axis=0)
        for p, q in zip(probs, qs):
            cols[_quantile_label(p)] = q
    z = _rank_normalize(split)
    cols["rhat"] = np.fmax(_rhat_core(z), _rhat_core(_rank_normalize(_folded(split))))
    cols["ess_bulk"] = _ess_core(z)
    cols["ess_tail"] = np.fmin(*_quantile_ess_flat(x, [0.05, 0.95]))
    return pd.DataFrame(cols, index=pd.Index(names, name="parameter"))


# ----------------------------------------------------------------------------------------------------
# sampler statistics


def ebfmi(energy):
    """Energy Bayesian fraction of missing information (E-BFMI) of every chain.

    ``sum_n (E_n - E_{n-1})^2 / sum_n (E_n - mean E)^2`` over the post-warm-up Hamiltonian energies of
    a chain (Betancourt 2016, "Diagnosing suboptimal cotangent disintegrations in Hamiltonian Monte
    Carlo").  Values below 0.3 mean the momentum resampling explores the energy distribution slowly.

    Parameters
    ----------
    energy : array_like
        Shape ``(chains, draws)`` (a 1-D array is one chain).

    Returns
    -------
    numpy.ndarray
        One value per chain.
    """
    e = np.asarray(energy, dtype=float)
    if e.ndim == 1:
        e = e[None, :]
    if e.ndim != 2 or e.shape[1] < 2:
        raise ArgumentError(f"energy must have shape (chains, draws) with at least 2 draws; got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ArgumentError("energy contains NaN or infinite values; the sampler statistics are damaged")
    num = np.square(np.diff(e, axis=1)).sum(axis=1)
    den = np.square(e - e.mean(axis=1, keepdims=True)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


_STAT_ALIASES = {
    "diverging": ("diverging", "divergent", "divergent__"),
    "tree_depth": ("tree_depth", "treedepth", "treedepth__"),
    "energy": ("energy", "energy__"),
}


def _stat(stats, key):
    for k in _STAT_ALIASES.get(key, (key,)):
        if k in stats:
            return np.asarray(stats[k])
    return None


def sampler_warnings(stats: Mapping, rhat=None, max_treedepth: int = 10, *,
                     ess_bulk_values=None, ess_tail_values=None, names: Sequence[str] | None = None,
                     rhat_threshold: float = 1.01, ess_per_chain: float = 100.0,
                     ebfmi_threshold: float = 0.3) -> list[str]:
    """Messages about sampling problems, each with its remedy.

    Parameters
    ----------
    stats : mapping
        Post-warm-up sampler statistics, each of shape ``(chains, draws)``: ``diverging`` (bool),
        ``tree_depth`` (int) and ``energy`` (float) are read when present.
    rhat : array_like or pandas.DataFrame, optional
        R-hat per parameter; or a :func:`summary_table` frame, whose ``rhat``, ``ess_bulk`` and
        ``ess_tail`` columns (and index, for the names) are then used.
    max_treedepth : int, optional
        The sampler's maximum tree depth; transitions that reached it are counted.
    ess_bulk_values, ess_tail_values : array_like, optional
        Bulk and tail ESS per parameter.
    names : sequence of str, optional
        Parameter names for the messages.
    rhat_threshold : float, optional
        R-hat above this value is reported (1.01 as recommended by Vehtari et al. 2021).
    ess_per_chain : float, optional
        Bulk or tail ESS below this many per chain is reported.
    ebfmi_threshold : float, optional
        E-BFMI below this value is reported.

    Returns
    -------
    list of str
        One message per problem found (empty when none).
    """
    if not isinstance(stats, (Mapping, pd.DataFrame)):
        raise DataTypeError("stats must be a mapping of sampler statistics, e.g. {'diverging': array, ...}")
    if isinstance(rhat, pd.DataFrame):
        table = rhat
        names = list(table.index) if names is None else names
        if ess_bulk_values is None and "ess_bulk" in table:
            ess_bulk_values = table["ess_bulk"].to_numpy()
        if ess_tail_values is None and "ess_tail" in table:
            ess_tail_values = table["ess_tail"].to_numpy()
        rhat = table["rhat"].to_numpy() if "rhat" in table else None
    messages = []
    n_chains = None

    div = _stat(stats, "diverging")
    if div is not None:
        div = np.atleast_2d(div).astype(bool)
        n_chains = div.shape[0]
        n_div = int(div.sum())
        if n_div:
            messages.append(
                f"{n_div} of {div.size} transitions after warm-up were divergent: the posterior has regions the "
                "sampler cannot follow with its step size, so the draws may be biased. Raise adapt_delta "
                "(target_accept), e.g. to 0.95 or 0.99; if divergences persist, reparameterise the model or use "
                "more informative priors.")
    depth = _stat(stats, "tree_depth")
    if depth is not None:
        depth = np.atleast_2d(depth)
        n_chains = n_chains or depth.shape[0]
        n_sat = int((depth >= max_treedepth).sum())
        if n_sat:
            messages.append(
                f"{n_sat} of {depth.size} transitions after warm-up reached the maximum tree depth of "
                f"{max_treedepth}: sampling is inefficient (the trajectories were cut short). Raise max_treedepth, "
                f"e.g. to {max_treedepth + 2}.")
    energy = _stat(stats, "energy")
    if energy is not None:
        values = ebfmi(energy)
        n_chains = n_chains or values.size
        low = np.flatnonzero(values < ebfmi_threshold)
        if low.size:
            listing = ", ".join(f"chain {i + 1}: {values[i]:.3g}" for i in low)
            messages.append(
                f"E-BFMI below {ebfmi_threshold} in {low.size} of {values.size} chains ({listing}): the sampler "
                "explores the energy distribution slowly, often because of heavy tails or funnel-like "
                "hierarchical geometry. Reparameterise the model (e.g. non-centred random effects) or use more "
                "informative priors, and run more draws.")

    def label(idx):
        shown = [str(names[i]) if names is not None else f"param{i}" for i in idx[:5]]
        more = f" and {idx.size - 5} more" if idx.size > 5 else ""
        return ", ".join(shown) + more

    if rhat is not None:
        r = np.ravel(np.asarray(rhat, dtype=float))
        bad = np.flatnonzero(r > rhat_threshold)
        if bad.size:
            messages.append(
                f"R-hat above {rhat_threshold} for {bad.size} parameter(s) (largest {np.nanmax(r):.3g}: "
                f"{label(bad)}): the chains have not mixed, so the estimates are unreliable. Run more draws "
                "(and more warm-up); if R-hat stays high, the posterior may be multimodal or poorly identified.")
    per_chain = ess_per_chain * (n_chains or 1)
    for kind, values in (("bulk", ess_bulk_values), ("tail", ess_tail_values)):
        if values is None:
            continue
        e = np.ravel(np.asarray(values, dtype=float))
        bad = np.flatnonzero(e < per_chain)
        if bad.size:
            what = "means and medians" if kind == "bulk" else "the 5% and 95% quantiles (intervals)"
            messages.append(
                f"{kind.capitalize()} ESS below {per_chain:g} ({ess_per_chain:g} per chain) for {bad.size} "
                f"parameter(s) (smallest {np.nanmin(e):.0f}: {label(bad)}): the estimates of {what} are "
                "unreliable. Run more draws.")
    return messages


# ----------------------------------------------------------------------------------------------------
# ArviZ


def to_arviz(draws_dict: Mapping, stats: Mapping | None = None, coords: Mapping | None = None,
             dims: Mapping | None = None, **groups):
    """Build an ArviZ ``InferenceData`` from draws and sampler statistics.

    Parameters
    ----------
    draws_dict : mapping
        Parameter name -> array of shape ``(chains, draws, ...)``.
    stats : mapping, optional
        Sampler statistics, name -> array of shape ``(chains, draws)`` (e.g. ``diverging``,
        ``energy``, ``tree_depth``, ``step_size``, ``acceptance_rate``, ``lp``).
    coords : mapping, optional
        Coordinate values of the named dimensions.
    dims : mapping, optional
        Parameter name -> names of its dimensions beyond chain and draw.
    **groups
        Further groups passed on to :func:`arviz.from_dict` (``posterior_predictive``,
        ``observed_data``, ``log_likelihood``, ...).

    Returns
    -------
    arviz.InferenceData
        With a ``posterior`` group and, when ``stats`` is given, a ``sample_stats`` group.
    """
    try:
        import arviz as az
    except ImportError:
        raise ImportError(
            "to_arviz needs the arviz package: pip install 'glmmkit[bayes]' (or pip install arviz)") from None
    if not isinstance(draws_dict, Mapping) or not draws_dict:
        raise ArgumentError("draws_dict must be a non-empty mapping of parameter name -> (chains, draws, ...) array")
    posterior = {}
    shape = None
    for key, value in draws_dict.items():
        arr = np.asarray(value)
        if arr.ndim < 2:
            raise ArgumentError(f"draws_dict[{key!r}] has shape {arr.shape}; it must be (chains, draws, ...)")
        if shape is not None and arr.shape[:2] != shape:
            raise ArgumentError(f"draws_dict[{key!r}] has {arr.shape[:2]} (chains, draws) but the other "
                                f"parameters have {shape}")
        shape = arr.shape[:2]
        posterior[str(key)] = arr
    kwargs = dict(posterior=posterior, coords=dict(coords) if coords else None, dims=dict(dims) if dims else None)
    if stats is not None:
        sample_stats = {}
        for key, value in stats.items():
            arr = np.asarray(value)
            if arr.shape[:2] != shape:
                raise ArgumentError(f"stats[{key!r}] has shape {arr.shape}; it must start with the draws' "
                                    f"(chains, draws) = {shape}")
            sample_stats[str(key)] = arr
        kwargs["sample_stats"] = sample_stats
    kwargs.update(groups)
    return az.from_dict(**kwargs)
