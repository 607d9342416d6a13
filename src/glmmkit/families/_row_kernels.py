"""Compiled row sums of log-likelihoods for large models (numba, loaded lazily).

PIRLS evaluates the penalised deviance several times per mode (step halving, chord steps, the
first-order start); on a million rows numpy's ``w (y η - logaddexp(0, η))`` makes four temporaries and
takes ~40 ms, a fused loop ~5 ms.  Only models of ``ROW_KERNEL_MIN_ROWS`` rows or more use it, so small
fits never import numba; ``cache=True`` keeps the compiled code between processes.  The numpy
expression stays the reference (tests compare the two).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._threads import kernel_threads
from ..linalg.kernels import _pool, numba_available

__all__ = ["ROW_KERNEL_MIN_ROWS", "logit_loglik_sum"]

#: rows from which the compiled sum is used (below it numpy's temporaries are cheap)
ROW_KERNEL_MIN_ROWS = 200_000


@lru_cache(maxsize=1)
def _compiled():
    import numba as nb

    @nb.njit(cache=True, nogil=True, fastmath=False)
    def _sum(y, eta, wt, start, stop):
        # compensated (Kahan) summation: a plain running sum over 1e6 rows carries ~1e-7 of rounding on
        # a deviance of 1e6, above the 1e-8 changes PIRLS's chord steps compare (numpy's sum is pairwise)
        acc = 0.0
        comp = 0.0
        for i in range(start, stop):
            e = eta[i]
            # log(1 + e^η) without overflow: max(η, 0) + log1p(e^-|η|)
            sp = (e if e > 0.0 else 0.0) + np.log1p(np.exp(-abs(e)))
            term = wt[i] * (y[i] * e - sp) - comp
            t = acc + term
            comp = (t - acc) - term
            acc = t
        return acc

    return _sum


def logit_loglik_sum(y: np.ndarray, eta: np.ndarray, wt: np.ndarray) -> float | None:
    """Σ w (y η - log(1 + e^η)) in one compiled pass, or None where numpy should do it.

    Parameters
    ----------
    y, eta, wt : numpy.ndarray, shape (n,)
        Response (proportions), linear predictor and prior weights, float64.

    Returns
    -------
    float or None
        The sum; None below ``ROW_KERNEL_MIN_ROWS`` rows, without numba, or for arrays that are not
        contiguous float64.
    """
    if eta.shape[0] < ROW_KERNEL_MIN_ROWS or not numba_available():
        return None
    arrays = (y, eta, wt)
    if not all(a.dtype == np.float64 and a.ndim == 1 and a.flags.c_contiguous for a in arrays):
        return None
    kernel, n = _compiled(), eta.shape[0]
    threads = kernel_threads()
    if threads == 1:
        return float(kernel(y, eta, wt, 0, n))
    # the loop releases the GIL: the row ranges on the engine's kernel threads (exp and log1p do not
    # vectorise, so the cores are the speed-up)
    cuts = np.linspace(0, n, threads + 1).astype(np.int64)
    pool = _pool(threads)
    futures = [pool.submit(kernel, y, eta, wt, int(a), int(b)) for a, b in zip(cuts[1:-1], cuts[2:])]
    total = kernel(y, eta, wt, 0, int(cuts[1]))
    return float(total + sum(f.result() for f in futures))
