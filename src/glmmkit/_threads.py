"""BLAS thread pinning around dense factorisations.

On a 2-core machine OpenBLAS's own threading made a 1128 x 1128 Cholesky 50x
slower; the engine's dense blocks are mostly small, so one BLAS thread is right.
Whether every thread pays off for the large ones depends on the machine (cores,
their load, the BLAS build): ``parallel_blas_pays`` decides it once per process, by
timing a small Cholesky on one thread and on all, and ``dense_blas_threads`` is the
one place the engine asks.  The threadpoolctl controller is built once (building it
scans the loaded libraries, ~2 ms) and reused.
"""

from __future__ import annotations

import contextlib
import os
import time
from functools import lru_cache

import numpy as np

#: environment variable overriding the measured decision: "1" (one BLAS thread) or "all"
BLAS_THREADS_ENV = "GLMMKIT_BLAS_THREADS"
#: orders of the Choleskys timed by ``parallel_blas_pays``, in turn while every thread keeps winning
#: (~4 and ~30 ms on one thread of a 2-core machine)
PROBE_SIZES = (600, 1500)
#: dense parts of this order or more get their own decision, from a Cholesky of ``LARGE_PROBE_SIZE``:
#: threaded BLAS gains with the order (on an idle 2-core machine nothing at 600, 1.7x at 3,600), so
#: the small probes' "one thread" would cost a large model a third of its time (~0.4 s to measure)
LARGE_DENSE = 2500
LARGE_PROBE_SIZE = 2500
#: the large class's share: its probe is timed twice (a Cholesky of 2,500 takes ~0.14 s on one thread
#: here) and every thread is taken when its slowest run is at most this share of one thread's best;
#: a loaded core makes threaded runs several times slower, far outside it (idle: 0.76 at 2,500 rows,
#: 0.57 at 3,600)
LARGE_PROBE_GAIN = 0.85
LARGE_PROBE_REPEATS = 2
#: times each is timed
PROBE_REPEATS = 3
#: every thread is used only when its slowest run takes at most this share of one thread's best
PROBE_GAIN = 0.75


@lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@lru_cache(maxsize=1)
def _blas_libraries() -> tuple:
    return tuple(lib for lib in _controller().lib_controllers if lib.user_api == "blas")


def single_blas_thread():
    """Context manager limiting BLAS to one thread (no-op if threadpoolctl is unusable, and when every
    BLAS already runs one thread: threadpoolctl's limit costs ~70 µs, a tenth of a small fit's
    evaluations, asking each library takes ~2 µs)."""
    try:
        libs = _blas_libraries()
        if libs and all(lib.get_num_threads() == 1 for lib in libs):
            return contextlib.nullcontext()
        return _controller().limit(limits=1, user_api="blas")
    except Exception:  # pragma: no cover - threadpoolctl failure must never stop a fit
        return contextlib.nullcontext()


def all_blas_threads():
    """Context manager letting BLAS use every core (no-op if threadpoolctl is unusable).

    Returns
    -------
    contextlib.AbstractContextManager
        threadpoolctl's limit to ``os.cpu_count()`` BLAS threads.
    """
    try:
        return _controller().limit(limits=os.cpu_count() or 1, user_api="blas")
    except Exception:  # pragma: no cover
        return contextlib.nullcontext()


def _time_potrf(A, threads: int, repeats: int, stop_after: float) -> list:
    """Times of up to ``repeats`` in-place Choleskys of copies of A on ``threads`` BLAS threads (no
    more once one took longer than ``stop_after`` seconds)."""
    from scipy.linalg import lapack

    times = []
    with _controller().limit(limits=threads, user_api="blas"):
        for _ in range(repeats):
            B = np.array(A, order="F")
            t0 = time.perf_counter()
            lapack.dpotrf(B, lower=0, clean=0, overwrite_a=1)
            times.append(time.perf_counter() - t0)
            if times[-1] > stop_after:
                break
    return times


def _probe_sizes(order) -> tuple:
    """The Cholesky orders timed for a dense part of ``order`` (None: the default, small probes)."""
    return (LARGE_PROBE_SIZE,) if order is not None and order >= LARGE_DENSE else PROBE_SIZES


def _measure(sizes: tuple = PROBE_SIZES) -> dict:
    """The decision and its source, by the environment override or by timing (see ``parallel_blas_pays``)."""
    forced = os.environ.get(BLAS_THREADS_ENV, "").strip().lower()
    if forced in ("1", "one", "single"):
        return {"parallel": False, "source": BLAS_THREADS_ENV}
    if forced in ("all", "parallel"):
        return {"parallel": True, "source": BLAS_THREADS_ENV}
    cores = os.cpu_count() or 1
    if cores < 2:
        return {"parallel": False, "source": "one core"}
    try:
        if not _blas_libraries():
            return {"parallel": False, "source": "no BLAS under threadpoolctl"}
        rng = np.random.default_rng(0)
        for n in sizes:
            # any positive definite matrix does (a dense Cholesky's work does not depend on the values):
            # a small random symmetric part plus n on the diagonal is O(n²) to form, not a product
            G = rng.standard_normal((n, n))
            A = 0.5 * (G + G.T) / np.sqrt(n)
            A.ravel()[:: n + 1] += n
            _time_potrf(A, 1, 1, np.inf)  # warm-up: first touch of the LAPACK code and buffers
            large = n >= LARGE_DENSE
            repeats, gain = (LARGE_PROBE_REPEATS, LARGE_PROBE_GAIN) if large else (PROBE_REPEATS, PROBE_GAIN)
            one = min(_time_potrf(A, 1, repeats, np.inf))
            # the slowest parallel run is compared: on cores busy with other work threaded BLAS swings
            # from twice as fast to twenty times slower, and a wrong "parallel" costs far more than a
            # wrong "one"; a run already slower than one thread settles it (no more repeats, and the
            # small size first keeps such a run short)
            every = max(_time_potrf(A, cores, repeats, one))
            if not every < gain * one:
                break
    except Exception:  # pragma: no cover - threadpoolctl or LAPACK failure: keep the safe default
        return {"parallel": False, "source": "measurement failed"}
    return {"parallel": bool(every < gain * one), "source": "measured", "probe_n": n,
            "one_thread_s": one, "all_threads_s": every, "threads": cores}


@lru_cache(maxsize=4)
def _decision(sizes: tuple = PROBE_SIZES) -> dict:
    return _measure(sizes)


def blas_thread_decision(order: int | None = None) -> dict:
    """How large dense factorisations are threaded in this process (decided on first call, then cached).

    Parameters
    ----------
    order : int, optional
        The dense part's order: from ``LARGE_DENSE`` on, the decision of that size class.

    Returns
    -------
    dict
        ``parallel`` (bool: every BLAS thread), ``source`` (``"measured"``, the environment variable
        ``GLMMKIT_BLAS_THREADS``, or why no measurement ran) and, when measured, ``one_thread_s`` and
        ``all_threads_s`` (the best one-thread and the slowest all-thread time of the last Cholesky
        timed), its order ``probe_n`` and ``threads``.
    """
    return dict(_decision(_probe_sizes(order)))


def parallel_blas_pays(order: int | None = None) -> bool:
    """Whether a large dense Cholesky should run on every BLAS thread in this process.

    Decided once per size class, lazily: ``GLMMKIT_BLAS_THREADS`` set to ``1`` or ``all`` decides it;
    otherwise a Cholesky of each order in ``PROBE_SIZES`` (for a dense part of ``LARGE_DENSE`` or
    more: of ``LARGE_PROBE_SIZE``) is timed ``PROBE_REPEATS`` times on one thread and on all (about
    0.2 s in all on an idle 2-core machine; ``LARGE_PROBE_REPEATS`` times and ~0.6 s for the large
    class), and all threads are used only when at every order their slowest run took at most
    ``PROBE_GAIN`` (``LARGE_PROBE_GAIN``) of one thread's best.  Only a dense part of ``PARALLEL_MIN_DENSE`` rows or
    more (``linalg.blocked``) asks, so small models never pay for the measurement.  ``reset_blas_thread_decision`` forgets it.

    Parameters
    ----------
    order : int, optional
        The dense part's order (None: the default class).

    Returns
    -------
    bool
        True: every thread; False: one.
    """
    return _decision(_probe_sizes(order))["parallel"]


def reset_blas_thread_decision() -> None:
    """Forget the cached decision of ``parallel_blas_pays`` (the next call decides anew).

    Returns
    -------
    None
    """
    _decision.cache_clear()


def kernel_threads() -> int:
    """Threads for the engine's compiled pair kernels (``linalg.kernels``), which release the GIL and
    split S's rows between Python threads: every core, unless ``GLMMKIT_BLAS_THREADS`` asks for one.
    Unlike threaded BLAS they do not spin-wait, so a busy core only makes its share late (no slower
    than one thread in all), and no probe is needed.

    Returns
    -------
    int
        1 or the number of cores (at most 8).
    """
    forced = os.environ.get(BLAS_THREADS_ENV, "").strip().lower()
    if forced in ("1", "one", "single"):
        return 1
    return max(1, min(8, os.cpu_count() or 1))


def dense_blas_threads(order: int | None = None):
    """Context manager for a large dense factorisation: every BLAS thread where that was measured to
    pay off on this machine (``parallel_blas_pays``), else one.

    Parameters
    ----------
    order : int, optional
        The dense matrix's order: from ``LARGE_DENSE`` on, the decision measured at that size.

    Returns
    -------
    contextlib.AbstractContextManager
        ``all_blas_threads()`` or ``single_blas_thread()``.
    """
    return all_blas_threads() if parallel_blas_pays(order) else single_blas_thread()
