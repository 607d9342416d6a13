"""BLAS thread pinning around small dense factorisations.

On a 2-core machine OpenBLAS's own threading made a 1128 x 1128 Cholesky 50x
slower; the engine's dense blocks are small, so one BLAS thread is right.  The
threadpoolctl controller is built once (building it scans the loaded libraries,
~2 ms) and reused.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache


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
    """Context manager letting BLAS use every core: pays off only for dense factors of ~600+ rows
    (a 1157 x 1157 Cholesky: 30 ms on one thread, 18 ms on two, on this project's 2-core machine)."""
    import os

    try:
        return _controller().limit(limits=os.cpu_count() or 1, user_api="blas")
    except Exception:  # pragma: no cover
        return contextlib.nullcontext()
