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


def single_blas_thread():
    """Context manager limiting BLAS to one thread (no-op if threadpoolctl is unusable)."""
    try:
        return _controller().limit(limits=1, user_api="blas")
    except Exception:  # pragma: no cover - threadpoolctl failure must never stop a fit
        return contextlib.nullcontext()
