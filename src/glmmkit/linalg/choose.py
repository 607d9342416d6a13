"""Which PLS system a model gets: fixed effects only, the blocked dense-Schur engine, the nested chain,
or the sparse Schur complement of large crossed designs.

Chosen once from the design (``make_system``); the fits record the choice in
``optimizer_info.engine``.  ``GLMMKIT_ENGINE`` (``"blocked"``, ``"nested"``, ``"sparse"``,
``"sparse-cholmod"``, ``"sparse-superlu"``) forces a path where it applies (tests compare the paths on
one model).
"""

from __future__ import annotations

import os

from .blocked import BlockedSystem
from .fixed_only import FixedOnlySystem
from .nested import NestedChainSystem, nested_chain
from .sparse import SparseSchurSystem, cholmod_available, schur_density_bound, schur_pattern
from .symbolic import cholesky_counts, fill_ordering

__all__ = ["make_system", "choose_engine", "NESTED_MIN_DENSE", "NESTED_MIN_DENSE_VECTOR", "SPARSE_MIN_DENSE",
           "SPARSE_MAX_DENSITY", "SPARSE_MAX_FILL", "SPARSE_FLOP_MARGIN", "sparse_prediction"]

_ENGINES = ("auto", "blocked", "nested", "sparse", "sparse-cholmod", "sparse-superlu")

#: a nested chain whose non-lead blocks (the blocked engine's dense Schur rows) are all scalar goes
#: level by level from this many rows on: below it the blocked engine's diagonal prefix (the second
#: factor's rows are divided out before LAPACK) is as fast or faster (measured: 1,000 hospitals
#: 1.8 ms blocked vs 0.9 ms nested per factorisation, 400 hospitals 0.33 vs 0.50 ms)
NESTED_MIN_DENSE = 1000
#: ... and from this many when a non-lead block has several effects (random slopes: no diagonal
#: prefix, so the dense route is cubic sooner: 100 hospitals with (1 + x | hospital/ward) 4.3 ms
#: blocked vs 1.8 ms nested, 400: 19 vs 2.9 ms)
NESTED_MIN_DENSE_VECTOR = 200
#: crossed designs are considered for the sparse Schur engine from this many non-lead random effects
#: (below it the dense block is milliseconds); the choice is then made on the predicted Cholesky factor
#: of S after the fill-reducing ordering (``linalg/symbolic.py``), never on S's own density: a random
#: crossing's S is 4.8 % dense but fills L to 86 % (2,000 x 2,000 levels, 10 rows a level)
SPARSE_MIN_DENSE = 1000
#: sparse only when its factor holds at most this share of the dense lower triangle (mz²/2) ...
SPARSE_MAX_FILL = 0.1
#: ... and its flops (Σ colcount²) are this many times fewer than the dense block's mz³/3: a sparse
#: factorisation here (S's refill, the rank update's scatter, CHOLMOD/SuperLU, the border solves) costs
#: ~20x more per flop than LAPACK's dense potrf (benchmarks/results/issue16_sparse.md)
SPARSE_FLOP_MARGIN = 20.0
#: S's pattern is formed for the count only up to this many (bounded) nonzeros (~1 GB of temporaries);
#: above it the engine stays dense unless the density bound is below ``SPARSE_MAX_DENSITY``
SPARSE_PATTERN_MAX = 5e7
SPARSE_MAX_DENSITY = 0.01


def sparse_prediction(blocks) -> dict:
    """Predicted cost of the sparse Schur engine against the dense block on a crossed design.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first; at least two blocks.

    Returns
    -------
    dict
        ``mz`` (non-lead effects), ``nnz_S``, ``nnz_L`` (with its diagonal; a lower bound when
        ``complete`` is False: the count stopped at ``SPARSE_MAX_FILL``), ``flops_sparse`` (Σ colcount²),
        ``flops_dense`` (mz³/3), ``complete`` and ``sparse`` (whether the sparse engine pays).
    """
    mz, bound = schur_density_bound(blocks)
    out = dict(mz=int(mz), flops_dense=mz**3 / 3.0, nnz_S=None, nnz_L=None, flops_sparse=None, complete=False)
    if bound * mz * mz > SPARSE_PATTERN_MAX:
        # too large to form: only a very sparse bound (then the fill cannot be near dense) goes sparse
        out["sparse"] = bool(bound < SPARSE_MAX_DENSITY)
        return out
    S = schur_pattern(blocks)
    cap = SPARSE_MAX_FILL * mz * (mz + 1) / 2.0
    nnz, flops, complete = cholesky_counts(S, fill_ordering(S), cap=cap)
    out.update(nnz_S=int(S.nnz), nnz_L=nnz, flops_sparse=flops, complete=complete)
    out["sparse"] = bool(complete and flops * SPARSE_FLOP_MARGIN < out["flops_dense"])
    return out

def _sparse_name(engine: str) -> str:
    solver = engine.partition("-")[2] or ("cholmod" if cholmod_available() else "superlu")
    return f"sparse ({solver})"


def choose_engine(blocks, engine: str | None = None, glmm: bool = False) -> str:
    """The engine for a model's blocks: ``"fixed-only"``, ``"blocked"``, ``"nested"``,
    ``"sparse (cholmod)"`` or ``"sparse (superlu)"``.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first (empty: no random effects).
    engine : {"auto", "blocked", "nested", "sparse", "sparse-cholmod", "sparse-superlu"}, optional
        Force a path; default ``GLMMKIT_ENGINE`` or ``"auto"``.  ``"nested"`` on blocks that are not
        a nested chain falls back to ``"blocked"``; so does ``"sparse"`` for a single block.
    glmm : bool, default False
        The system is a GLMM's (reweighted by PIRLS).  The same fill rule applies; on the sparse engine
        the GLMM has no exact Laplace gradient (derivative-free route).

    Returns
    -------
    str
    """
    if not blocks:
        return "fixed-only"
    engine = (engine or os.environ.get("GLMMKIT_ENGINE") or "auto").lower()
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {', '.join(_ENGINES)}, not {engine!r} (GLMMKIT_ENGINE)")
    if engine == "blocked" or len(blocks) < 2:
        return "blocked"
    if max(b.K for b in blocks) > 8:  # structured or relationship blocks: one level of many columns
        return "blocked"
    if engine.startswith("sparse"):
        return _sparse_name(engine)
    chain = nested_chain(blocks)
    if chain is None:
        if engine == "auto" and sum(b.size for b in blocks[1:]) >= SPARSE_MIN_DENSE:
            if sparse_prediction(blocks)["sparse"]:
                return _sparse_name("sparse")
        return "blocked"
    if engine == "nested":
        return "nested"
    mz = sum(b.size for b in blocks[1:])
    vector = any(b.K > 1 for b in blocks[1:])
    return "nested" if mz >= (NESTED_MIN_DENSE_VECTOR if vector else NESTED_MIN_DENSE) else "blocked"


def make_system(blocks, X, y, sqrt_w=None, *, weights=None, by_plan: bool = False, engine: str | None = None):
    """The PLS system of a model, on the engine ``choose_engine`` picks (its name in ``.engine``).

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first (empty: a fixed-effects-only system).
    X : ndarray, shape (n, p)
        Fixed-effects columns.
    y : ndarray, shape (n,)
        Response (the working response for a GLMM), minus any offset.
    sqrt_w : ndarray, shape (n,), optional
        Square roots of the prior weights.
    weights : ndarray, shape (n,), optional
        Signed weights (one-sided crossproducts), as ``BlockedSystem`` takes them.
    by_plan : bool, default False
        ``BlockedSystem``'s option for a base system that PIRLS reweights.
    engine : str, optional
        See ``choose_engine``.

    Returns
    -------
    BlockedSystem, NestedChainSystem, SparseSchurSystem or FixedOnlySystem
    """
    name = choose_engine(blocks, engine, glmm=by_plan or weights is not None)
    if name.startswith("sparse"):
        return SparseSchurSystem(blocks, X, y, sqrt_w, solver=name[len("sparse (") : -1])
    if name == "fixed-only":
        system = FixedOnlySystem(X, y, sqrt_w)
    elif name == "nested":
        return NestedChainSystem(blocks, X, y, sqrt_w, weights=weights)
    else:
        system = BlockedSystem(blocks, X, y, sqrt_w, weights=weights, by_plan=by_plan)
    system.engine = name  # an instance attribute: copies (``reweighted``) carry it
    return system
