"""Model structure (lme4's JSS formulation): terms, Λθ templates, θ <-> Λ mapping.

Two views of the random effects live here:

* **terms** -- what the user and lme4 see: one per bar after ``||`` splitting,
  ordered by decreasing number of levels (lme4's ``reorder.terms``).  θ is the
  concatenation, term by term, of the lower triangle (column-major) of each
  term's relative covariance factor, exactly lme4's ``getME(fit, "theta")``.
* **blocks** -- what the engine factors: all terms on one grouping factor are
  amalgamated into one block whose template is block-diagonal (so ``(x || g)``
  costs the same as ``(x | g)``).  The block with the most random effects leads:
  its diagonal block of Λ'Z'ZΛ + I stays block-diagonal; every other block goes
  into the dense Schur complement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .frame import GroupingFactor, ModelFrame

__all__ = ["ReTerm", "ReBlock", "ModelStructure", "build_structure"]


@dataclass
class ReTerm:
    """One random-effects term as lme4 reports it.

    Attributes
    ----------
    group : str
        Grouping factor name (``"Subject"``).
    label : str
        Unique label for tables: the group name, suffixed ``.1``, ``.2`` for
        further terms on the same factor (lme4's convention).
    names : list of str
        Column names of the term (``["(Intercept)", "Days"]``).
    factor : GroupingFactor
    columns : ndarray, shape (n, k)
    theta_slice : slice
        Where the term's parameters sit in θ.
    block : int
        Index of the block holding this term; ``block_cols`` its columns there.
    """

    group: str
    label: str
    names: list[str]
    factor: GroupingFactor
    columns: np.ndarray
    theta_slice: slice
    source: object = None
    source_cols: list | None = None
    block: int = -1
    block_cols: np.ndarray | None = None

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def nlevels(self) -> int:
        return self.factor.nlevels


@dataclass
class ReBlock:
    """All terms on one grouping factor, amalgamated.

    Attributes
    ----------
    factor : GroupingFactor
    columns : ndarray, shape (n, K)
        The concatenated term columns.
    names : list of str
    tpl_rows, tpl_cols, tpl_theta : ndarray of int
        Template entry (tpl_rows[i], tpl_cols[i]) of the K x K lower-triangular
        factor takes θ[tpl_theta[i]].
    offset : int
        First column of this block in the engine's Z (lead block first).
    """

    factor: GroupingFactor
    columns: np.ndarray
    names: list[str]
    tpl_rows: np.ndarray
    tpl_cols: np.ndarray
    tpl_theta: np.ndarray
    offset: int = 0

    @property
    def K(self) -> int:
        return self.columns.shape[1]

    @property
    def q(self) -> int:
        return self.factor.nlevels

    @property
    def size(self) -> int:
        return self.K * self.q

    def template(self, theta: np.ndarray) -> np.ndarray:
        """The K x K lower-triangular relative covariance factor at ``theta``."""
        T = np.zeros((self.K, self.K))
        T[self.tpl_rows, self.tpl_cols] = theta[self.tpl_theta]
        return T

    def z_dense(self, sqrt_w: np.ndarray | None = None) -> np.ndarray:
        """Dense n x (q K) model matrix of the block (small models: cheaper than scipy.sparse's overhead)."""
        n, K = self.columns.shape
        Z = np.zeros((n, self.q * K))
        vals = self.columns if sqrt_w is None else self.columns * sqrt_w[:, None]
        Z[np.arange(n)[:, None], self.factor.codes[:, None] * K + np.arange(K)[None, :]] = vals
        return Z

    def z_matrix(self, sqrt_w: np.ndarray | None = None) -> sp.csr_matrix:
        """Sparse n x (q K) model matrix of the block, level-major columns."""
        n, K = self.columns.shape
        vals = self.columns if sqrt_w is None else self.columns * sqrt_w[:, None]
        cols = self.factor.codes[:, None] * K + np.arange(K)[None, :]
        indptr = np.arange(0, n * K + 1, K)
        return sp.csr_matrix((vals.ravel(), cols.ravel(), indptr), shape=(n, self.q * K))


@dataclass
class ModelStructure:
    """Terms, blocks and the θ parameterisation of one model.

    Attributes
    ----------
    terms : list of ReTerm
        lme4 order (decreasing number of levels, stable).
    blocks : list of ReBlock
        Engine order: ``blocks[0]`` is the lead block (most random effects).
    theta_lower : ndarray
        Lower bounds: 0 for diagonal entries of the templates, -inf otherwise.
    theta_names : list of str
        lme4-style names, e.g. ``"Subject.(Intercept)"``, ``"Subject.Days.(Intercept)"``.
    """

    terms: list[ReTerm]
    blocks: list[ReBlock]
    theta_lower: np.ndarray
    theta_names: list[str]

    @cached_property
    def nesting(self) -> dict:
        """``(i, j) -> True`` when the factor of term i is nested in that of term j (each of its
        levels occurs within one level of j's factor)."""
        out = {}
        for i, ti in enumerate(self.terms):
            for j, tj in enumerate(self.terms):
                if i != j and ti.factor is not tj.factor:
                    out[(i, j)] = _is_nested(ti.factor, tj.factor)
        return out

    @property
    def n_theta(self) -> int:
        return self.theta_lower.shape[0]

    @property
    def q(self) -> int:
        return sum(b.size for b in self.blocks)

    def theta_start(self) -> np.ndarray:
        """lme4's default start: identity templates (1 on diagonals, 0 elsewhere)."""
        return np.where(np.isfinite(self.theta_lower), 1.0, 0.0)

    def scaled_theta_start(self) -> np.ndarray:
        """A start whose random effects all have unit scale on the linear predictor: each diagonal
        θ is 1 / rms of its column (1 for intercepts).  Used when lme4's identity start overflows
        (a slope on a covariate in the hundreds makes b·x ~ 100 at θ = 1)."""
        start = self.theta_start()
        for t in self.terms:
            k = len(t.names)
            rms = np.sqrt(np.mean(np.asarray(t.columns, dtype=float) ** 2, axis=0))
            idx = np.arange(t.theta_slice.start, t.theta_slice.stop)
            diag_pos = [j * k - j * (j - 1) // 2 for j in range(k)]  # column-wise lower triangle
            for j, pos in enumerate(diag_pos):
                if rms[j] > 0 and np.isfinite(rms[j]):
                    start[idx[pos]] = 1.0 / rms[j]
        return start

    def templates(self, theta: np.ndarray) -> list[np.ndarray]:
        return [b.template(theta) for b in self.blocks]

    def b_of(self, templates, u: np.ndarray) -> np.ndarray:
        """b = Λ u from spherical effects u (engine order); u may carry trailing columns (q, k)."""
        return self._apply_templates(templates, u, transpose=False)

    def lambda_t(self, templates, r: np.ndarray) -> np.ndarray:
        """Λ'r for r in the random-effects (b) coordinates; r may carry trailing columns (q, k)."""
        return self._apply_templates(templates, r, transpose=True)

    def _apply_templates(self, templates, v, transpose):
        out = np.empty_like(v)
        for blk, T in zip(self.blocks, templates):
            sl = slice(blk.offset, blk.offset + blk.size)
            M = T if transpose else T.T  # per level: T'v_g (transpose) or T v_g, as v_g' M
            if v.ndim == 1:
                out[sl] = (v[sl].reshape(blk.q, blk.K) @ M).ravel()
            else:
                out[sl] = np.einsum("gbk,ba->gak", v[sl].reshape(blk.q, blk.K, -1), M).reshape(blk.size, -1)
        return out

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        """lme4's isSingular: a diagonal template entry at (or within tol of) zero."""
        diag = np.isfinite(self.theta_lower)
        return bool(np.any(np.abs(theta[diag]) < tol))

    def z_matrix(self, sqrt_w: np.ndarray | None = None) -> sp.csr_matrix:
        """Sparse Z of all blocks in engine order."""
        return sp.hstack([b.z_matrix(sqrt_w) for b in self.blocks], format="csr")


def _is_nested(inner: GroupingFactor, outer: GroupingFactor) -> bool:
    """True when every level of ``inner`` occurs within a single level of ``outer``."""
    pairs = np.unique(inner.codes * outer.nlevels + outer.codes)
    return pairs.shape[0] == inner.nlevels


def build_structure(frame: ModelFrame) -> ModelStructure:
    """Build terms, blocks and θ mapping from a model frame.

    Parameters
    ----------
    frame : ModelFrame

    Returns
    -------
    ModelStructure
    """
    raw = []
    for rt in frame.random:
        if rt.spec.correlated:
            raw.append((rt.factor, rt.columns, list(rt.names), rt, list(range(len(rt.names)))))
        else:  # (x || g) = (1 | g) + (0 + x | g): one scalar term per column
            for j, name in enumerate(rt.names):
                raw.append((rt.factor, rt.columns[:, [j]], [name], rt, [j]))
    # lme4: terms sorted by decreasing number of levels, ties keep formula order
    order = sorted(range(len(raw)), key=lambda i: -raw[i][0].nlevels)
    raw = [raw[i] for i in order]

    terms, theta_lower, theta_names = [], [], []
    seen: dict[str, int] = {}
    pos = 0
    for factor, cols, names, src, src_cols in raw:
        k = len(names)
        count = seen.get(factor.name, 0)
        seen[factor.name] = count + 1
        label = factor.name if count == 0 else f"{factor.name}.{count}"
        n_par = k * (k + 1) // 2
        for c in range(k):  # lower triangle, column-major
            for r in range(c, k):
                theta_lower.append(0.0 if r == c else -np.inf)
                theta_names.append(f"{label}.{names[r]}" if r == c else f"{label}.{names[r]}.{names[c]}")
        terms.append(ReTerm(factor.name, label, names, factor, cols, slice(pos, pos + n_par), src, src_cols))
        pos += n_par

    # amalgamate terms on the same factor into blocks
    by_factor: dict[str, list[int]] = {}
    for i, t in enumerate(terms):
        by_factor.setdefault(t.group, []).append(i)
    blocks = []
    for idxs in by_factor.values():
        cols, names, rows, tcols, tth = [], [], [], [], []
        at = 0
        for i in idxs:
            t = terms[i]
            th = t.theta_slice.start
            for c in range(t.k):
                for r in range(c, t.k):
                    rows.append(at + r)
                    tcols.append(at + c)
                    tth.append(th)
                    th += 1
            t.block_cols = np.arange(at, at + t.k)
            cols.append(t.columns)
            names.extend(t.names)
            at += t.k
        blocks.append(
            ReBlock(terms[idxs[0]].factor, np.hstack(cols), names, np.array(rows), np.array(tcols), np.array(tth))
        )
    # the block with the most random effects leads; the rest keep lme4 order
    lead = max(range(len(blocks)), key=lambda b: blocks[b].size)
    blocks = [blocks[lead]] + blocks[:lead] + blocks[lead + 1 :]
    offset = 0
    for b_idx, b in enumerate(blocks):
        b.offset = offset
        offset += b.size
        for t in terms:
            if t.factor is b.factor:
                t.block = b_idx
    return ModelStructure(terms, blocks, np.array(theta_lower), theta_names)
