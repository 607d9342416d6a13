"""Model structure (lme4's JSS formulation): terms, their covariance structures, θ <-> templates.

Two views of the random effects live here:

* **terms** -- what the user and lme4 see: one per bar after ``||`` splitting,
  ordered by decreasing number of levels (lme4's ``reorder.terms``).  Each term
  owns a covariance structure (:mod:`glmmkit.covstruct`) mapping its slice of θ
  to its lower-triangular template; θ is the terms' parameters concatenated.
  With lme4's unstructured and scalar terms that is the lower triangle
  (column-major) of each term's relative covariance factor, exactly lme4's
  ``getME(fit, "theta")``.
* **blocks** -- what the engine factors: all terms on one grouping factor are
  amalgamated into one block whose template is block-diagonal (so ``(x || g)``
  costs the same as ``(x | g)``).  The block with the most random effects leads:
  its diagonal block of Λ'Z'ZΛ + I stays block-diagonal; every other block goes
  into the dense Schur complement.

θ stops here: the engine (``linalg/``) takes the list of block templates
(``ModelStructure.templates``), and gradients with respect to template entries
come back through ``ModelStructure.contract`` (the structures' Jacobians).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .covstruct import CovStructure, Scalar, Unstructured, structure_for_term
from .frame import GroupingFactor, ModelFrame

__all__ = ["ReTerm", "ReBlock", "ModelStructure", "build_structure", "assemble_structure"]


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
        The grouping factor coded on the model frame's rows.
    columns : ndarray, shape (n, k)
        The term's k model-matrix columns on the n rows (a structured term: the columns its
        structure makes of the frame's, e.g. one per time point).
    theta_slice : slice
        Where the term's parameters sit in θ.
    source : RandomTermData or None
        The model-frame term it comes from (a ``||`` term gives several ``ReTerm`` of one source).
    source_cols : list of int or None
        The source's columns this term takes (its share of a split ``||`` term).
    block : int
        Index of the block holding this term; ``block_cols`` its columns there.
    block_cols : ndarray of int or None
        The term's columns within its block's K columns; set by ``assemble_structure``.
    structure : CovStructure
        The term's covariance structure (default: unstructured, scalar for one column).
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
    structure: CovStructure | None = None

    def __post_init__(self):
        if self.structure is None:
            self.structure = Scalar() if self.k == 1 else Unstructured(self.k)

    @property
    def k(self) -> int:
        """Number of random effects per level (the term's columns).

        Returns
        -------
        int
            ``len(names)``.
        """
        return len(self.names)

    @property
    def nlevels(self) -> int:
        """Number of levels of the term's grouping factor.

        Returns
        -------
        int
            ``factor.nlevels``.
        """
        return self.factor.nlevels

    def params(self, theta: np.ndarray) -> np.ndarray:
        """The term's slice of θ (its structure's φ).

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            The model's full covariance parameter vector.

        Returns
        -------
        ndarray
            ``theta[theta_slice]`` (a view).
        """
        return theta[self.theta_slice]

    def template(self, theta: np.ndarray) -> np.ndarray:
        """The term's k x k lower-triangular template at θ.

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            The model's full covariance parameter vector; the term reads its own slice.

        Returns
        -------
        ndarray, shape (k, k)
            The term's relative covariance factor (covariance σ² T T').
        """
        return self.structure.template(theta[self.theta_slice])

    def columns_from(self, source_columns: np.ndarray) -> np.ndarray:
        """The term's columns from its source term's columns on new data (``frame.term_columns``):
        its share of a split ``||`` term, or its structure's positions.

        Parameters
        ----------
        source_columns : ndarray, shape (m, k_source)
            The source term's model-matrix columns on m new rows.

        Returns
        -------
        ndarray, shape (m, k)
            The term's own columns on those rows.
        """
        return self.structure.term_columns(np.asarray(source_columns)[:, self.source_cols])


@dataclass
class ReBlock:
    """All terms on one grouping factor, amalgamated.

    Attributes
    ----------
    factor : GroupingFactor
        The grouping factor the block's terms share.
    columns : ndarray, shape (n, K)
        The concatenated term columns.
    names : list of str
        The K column names, term by term.
    terms : list of ReTerm
        The block's terms, in the order of their columns.
    tpl_rows, tpl_cols : ndarray of int
        The template entries the terms' structures may make nonzero (each term's
        ``pattern`` shifted to its columns, term by term): the coordinates in which
        gradients with respect to the template are taken (``ModelStructure.contract``).
    offset : int
        First column of this block in the engine's Z (lead block first).
    """

    factor: GroupingFactor
    columns: np.ndarray
    names: list[str]
    terms: list[ReTerm]
    offset: int = 0

    def __post_init__(self):
        rows, cols, ends = [], [], []
        for t in self.terms:
            at = int(t.block_cols[0])
            r, c = t.structure.pattern
            rows.append(at + r)
            cols.append(at + c)
            ends.append(sum(len(x) for x in rows))
        self.tpl_rows = np.concatenate(rows).astype(np.int64)
        self.tpl_cols = np.concatenate(cols).astype(np.int64)
        self.entry_slices = [slice(e - len(r), e) for e, r in zip(ends, rows)]
        # all structures direct: template entries are θ entries, one scatter builds the template
        self.direct = all(t.structure.direct for t in self.terms)
        if self.direct:
            self._theta_idx = np.concatenate([np.arange(t.theta_slice.start, t.theta_slice.stop) for t in self.terms])
            self._flat = self.tpl_rows * self.K + self.tpl_cols
            # θ entries of the block contiguous (every lme4 model): a slice instead of a gather
            lo = int(self._theta_idx[0])
            contiguous = np.array_equal(self._theta_idx, np.arange(lo, lo + self._theta_idx.shape[0]))
            self._theta_range = slice(lo, lo + self._theta_idx.shape[0]) if contiguous else None

    @property
    def K(self) -> int:
        """Number of random effects per level of the block (all its terms' columns).

        Returns
        -------
        int
            The number of columns of ``columns``.
        """
        return self.columns.shape[1]

    @property
    def q(self) -> int:
        """Number of levels of the block's grouping factor.

        Returns
        -------
        int
            ``factor.nlevels``.
        """
        return self.factor.nlevels

    @property
    def size(self) -> int:
        """Number of random effects of the block (its columns of Z).

        Returns
        -------
        int
            ``K * q``.
        """
        return self.K * self.q

    def template(self, theta: np.ndarray) -> np.ndarray:
        """The K x K lower-triangular relative covariance factor at ``theta`` (block diagonal over the terms).

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            The model's full covariance parameter vector.

        Returns
        -------
        ndarray, shape (K, K)
            A new array (never a view of ``theta``).
        """
        K = self.K
        if self.direct:
            sl = self._theta_range
            if K == 1 and sl is not None:
                return theta[sl].astype(float).reshape(1, 1)  # astype copies: no view of θ
            T = np.zeros(K * K)
            T[self._flat] = theta[self._theta_idx] if sl is None else theta[sl]
            return T.reshape(K, K)
        T = np.zeros((K, K))
        for t in self.terms:
            T[np.ix_(t.block_cols, t.block_cols)] = t.template(theta)
        return T

    def z_dense(self, sqrt_w: np.ndarray | None = None) -> np.ndarray:
        """Dense n x (q K) model matrix of the block (small models: cheaper than scipy.sparse's overhead).

        Parameters
        ----------
        sqrt_w : ndarray, shape (n,), optional
            Square roots of the row weights, multiplied into each row; unweighted when omitted.

        Returns
        -------
        ndarray, shape (n, q * K)
            Level-major columns: level g's K effects are columns ``g*K .. g*K + K - 1``.
        """
        n, K = self.columns.shape
        Z = np.zeros((n, self.q * K))
        vals = self.columns if sqrt_w is None else self.columns * sqrt_w[:, None]
        Z[np.arange(n)[:, None], self.factor.codes[:, None] * K + np.arange(K)[None, :]] = vals
        return Z

    def z_matrix(self, sqrt_w: np.ndarray | None = None) -> sp.csr_matrix:
        """Sparse n x (q K) model matrix of the block, level-major columns.

        Parameters
        ----------
        sqrt_w : ndarray, shape (n,), optional
            Square roots of the row weights, multiplied into each row; unweighted when omitted.

        Returns
        -------
        scipy.sparse.csr_matrix, shape (n, q * K)
            K nonzeros per row (the row's level's columns).
        """
        n, K = self.columns.shape
        vals = self.columns if sqrt_w is None else self.columns * sqrt_w[:, None]
        cols = self.factor.codes[:, None] * K + np.arange(K)[None, :]
        indptr = np.arange(0, n * K + 1, K)
        return sp.csr_matrix((vals.ravel(), cols.ravel(), indptr), shape=(n, self.q * K))


@dataclass
class ModelStructure:
    """Terms, blocks and the θ parameterisation of one model.

    θ is the concatenation of the terms' structure parameters; everything about
    it (bounds, names, starts, singularity) comes from the terms' structures.

    Attributes
    ----------
    terms : list of ReTerm
        lme4 order (decreasing number of levels, stable).
    blocks : list of ReBlock
        Engine order: ``blocks[0]`` is the lead block (most random effects).
    theta_lower, theta_upper : ndarray
        Bounds of θ (for lme4's terms: 0 below the template diagonals, -inf elsewhere; inf above).
    theta_names : list of str
        lme4-style names, e.g. ``"Subject.(Intercept)"``, ``"Subject.Days.(Intercept)"``.
    relmat : dict or None
        The relationship matrices it was built with, ``{factor: K}`` (a rebuild reuses them);
        None without any.
    """

    terms: list[ReTerm]
    blocks: list[ReBlock]
    relmat: dict | None = None  # the relationship matrices it was built with (a rebuild reuses them)

    def __post_init__(self):
        def cat(parts):
            return np.concatenate(parts) if parts else np.zeros(0)

        self.theta_lower = cat([np.asarray(t.structure.lower(), dtype=float) for t in self.terms])
        self.theta_upper = cat([np.asarray(t.structure.upper(), dtype=float) for t in self.terms])
        self.theta_names = [name for t in self.terms for name in t.structure.names(t.label, t.names)]
        # the terms' sign flips (CovStructure.sign_flips) in θ's indices
        self.theta_sign_flips = {t.theta_slice.start + i: t.theta_slice.start + np.asarray(js)
                                 for t in self.terms for i, js in t.structure.sign_flips().items()}
        self.direct = all(b.direct for b in self.blocks)
        if self.direct:
            # every θ is one template entry: one scatter into a fresh buffer that the blocks' templates view
            self._tpl_pos = np.empty(self.n_theta, dtype=np.int64)
            self._tpl_views, at = [], 0
            for b in self.blocks:
                self._tpl_pos[b._theta_idx] = at + b._flat
                self._tpl_views.append((at, at + b.K * b.K, b.K))
                at += b.K * b.K
            self._tpl_size = at

    @cached_property
    def nesting(self) -> dict:
        """Which terms' grouping factors are nested in which others'.

        Returns
        -------
        dict of (int, int) -> bool
            ``(i, j) -> True`` when the factor of term i is nested in that of term j (each of its
            levels occurs within one level of j's factor); pairs of terms on one factor are absent.
        """
        out = {}
        for i, ti in enumerate(self.terms):
            for j, tj in enumerate(self.terms):
                if i != j and ti.factor is not tj.factor:
                    out[(i, j)] = _is_nested(ti.factor, tj.factor)
        return out

    @property
    def n_theta(self) -> int:
        """Length of θ (all terms' covariance parameters).

        Returns
        -------
        int
        """
        return self.theta_lower.shape[0]

    @property
    def q(self) -> int:
        """Total number of random effects (the columns of Z).

        Returns
        -------
        int
            The sum of the blocks' ``size``.
        """
        return sum(b.size for b in self.blocks)

    def theta_start(self) -> np.ndarray:
        """The structures' default starts (lme4's identity templates for its terms).

        Returns
        -------
        ndarray, shape (n_theta,)
        """
        return np.concatenate([np.zeros(0)] + [np.asarray(t.structure.start(), dtype=float) for t in self.terms])

    def scaled_theta_start(self) -> np.ndarray:
        """A start whose random effects all have unit scale on the linear predictor (for lme4's terms:
        each diagonal θ is 1 / rms of its column, 1 for intercepts).  Used when lme4's identity start
        overflows (a slope on a covariate in the hundreds makes b·x ~ 100 at θ = 1).

        Returns
        -------
        ndarray, shape (n_theta,)
        """
        parts = []
        for t in self.terms:
            rms = np.sqrt(np.mean(np.asarray(t.columns, dtype=float) ** 2, axis=0))
            parts.append(np.asarray(t.structure.scaled_start(rms), dtype=float))
        return np.concatenate([np.zeros(0)] + parts)

    def templates(self, theta: np.ndarray) -> list[np.ndarray]:
        """The K x K lower-triangular template of every block at θ (engine order): what ``linalg`` takes.

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters.

        Returns
        -------
        list of ndarray, shape (K_b, K_b) each
            One template per block, ``blocks`` order; with direct structures views into one fresh
            buffer.
        """
        if self.direct:
            flat = np.zeros(self._tpl_size)
            flat[self._tpl_pos] = theta
            return [flat[a:b].reshape(K, K) for a, b, K in self._tpl_views]
        return [b.template(theta) for b in self.blocks]

    def contract(self, theta: np.ndarray, entry_grads) -> np.ndarray:
        """The gradient in θ from gradients with respect to template entries.

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters the structures' Jacobians are taken at.
        entry_grads : list of ndarray
            Per block (engine order), d(objective) / dT[tpl_rows[i], tpl_cols[i]].

        Returns
        -------
        ndarray, shape (n_theta,)
            Σ over entries of the entry gradient times the structures' Jacobians.
        """
        grad = np.zeros(self.n_theta)
        for blk, g in zip(self.blocks, entry_grads):
            g = np.asarray(g, dtype=float)
            if blk.direct:
                grad[blk._theta_idx] += g
                continue
            for t, es in zip(blk.terms, blk.entry_slices):
                phi = theta[t.theta_slice]
                grad[t.theta_slice] += g[es] @ t.structure.jacobian(phi)
        return grad

    def template_jacobian(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per block, d T[tpl_rows, tpl_cols] / dθ as a dense (entries, n_theta) array.

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters the Jacobians are taken at.

        Returns
        -------
        list of ndarray, shape (len(tpl_rows), n_theta) each
            One per block, in engine order.
        """
        out = []
        for blk in self.blocks:
            J = np.zeros((blk.tpl_rows.shape[0], self.n_theta))
            for t, es in zip(blk.terms, blk.entry_slices):
                J[es, t.theta_slice] = t.structure.jacobian(theta[t.theta_slice])
            out.append(J)
        return out

    def b_of(self, templates, u: np.ndarray) -> np.ndarray:
        """b = Λ u from spherical effects u (engine order); u may carry trailing columns (q, k).

        Parameters
        ----------
        templates : list of ndarray
            The blocks' templates (``templates(theta)``).
        u : ndarray, shape (q,) or (q, k)
            Spherical random effects, block by block, level-major within a block.

        Returns
        -------
        ndarray, shape of ``u``
            The random effects b = Λ u, in the same coordinates.
        """
        return self._apply_templates(templates, u, transpose=False)

    def lambda_t(self, templates, r: np.ndarray) -> np.ndarray:
        """Λ'r for r in the random-effects (b) coordinates; r may carry trailing columns (q, k).

        Parameters
        ----------
        templates : list of ndarray
            The blocks' templates (``templates(theta)``).
        r : ndarray, shape (q,) or (q, k)
            A vector (or columns) in b's coordinates, engine order.

        Returns
        -------
        ndarray, shape of ``r``
            Λ'r, in u's coordinates.
        """
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
        """lme4's isSingular, asked of every term's structure (for lme4's terms: a diagonal template
        entry at, or within tol of, zero).

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters (the estimate).
        tol : float, default 1e-4
            How close to the boundary counts as on it.

        Returns
        -------
        bool
            True when any term's structure is singular at ``theta``.
        """
        return any(t.structure.is_singular(theta[t.theta_slice], tol) for t in self.terms)

    def z_matrix(self, sqrt_w: np.ndarray | None = None) -> sp.csr_matrix:
        """Sparse Z of all blocks in engine order.

        Parameters
        ----------
        sqrt_w : ndarray, shape (n,), optional
            Square roots of the row weights, multiplied into each row; unweighted when omitted.

        Returns
        -------
        scipy.sparse.csr_matrix, shape (n, q)
            The blocks' model matrices side by side.
        """
        if len(self.blocks) == 1:  # sp.hstack would copy the one block's matrix (16 MB at 1e6 rows)
            return self.blocks[0].z_matrix(sqrt_w)
        return sp.hstack([b.z_matrix(sqrt_w) for b in self.blocks], format="csr")


def _is_nested(inner: GroupingFactor, outer: GroupingFactor) -> bool:
    """True when every level of ``inner`` occurs within a single level of ``outer``."""
    pairs = np.unique(inner.codes * outer.nlevels + outer.codes)
    return pairs.shape[0] == inner.nlevels


def build_structure(frame: ModelFrame, structures: dict | None = None, relmat: dict | None = None) -> ModelStructure:
    """Build terms, blocks and θ mapping from a model frame.

    Parameters
    ----------
    frame : ModelFrame
        The model frame whose random terms (``frame.random``) are turned into terms and blocks.
    structures : dict, optional
        Covariance structure per term label (``{"Subject": CovStructure}``, labels as in
        ``ReTerm.label``); other terms are unstructured (one column: scalar), lme4's.
    relmat : dict, optional
        ``{factor: K}``: the random intercept ``(1 | factor)`` has covariance σ² K across levels
        (K a DataFrame labelled by level; ``covstruct/relmat.py``).

    Returns
    -------
    ModelStructure
    """
    from .exceptions import ArgumentError

    raw = []
    for rt in frame.random:
        if getattr(rt.spec, "structure", None) is not None:  # ar1(...), cs(...), exp(...): one term
            cs, cols, names = structure_for_term(rt.spec.structure, rt.columns, list(rt.names), rt.spec.source)
            raw.append((rt.factor, cols, names, rt, list(range(len(rt.names))), cs))
        elif rt.spec.correlated:
            raw.append((rt.factor, rt.columns, list(rt.names), rt, list(range(len(rt.names))), None))
        else:  # (x || g) = (1 | g) + (0 + x | g): one scalar term per column
            for j, name in enumerate(rt.names):
                raw.append((rt.factor, rt.columns[:, [j]], [name], rt, [j], None))
    if relmat:
        raw = _related_terms(raw, relmat)
    # lme4: terms sorted by decreasing number of levels, ties keep formula order
    order = sorted(range(len(raw)), key=lambda i: -raw[i][0].nlevels)
    raw = [raw[i] for i in order]

    structures = dict(structures or {})
    terms = []
    seen: dict[str, int] = {}
    pos = 0
    for factor, cols, names, src, src_cols, own in raw:
        k = len(names)
        count = seen.get(factor.name, 0)
        seen[factor.name] = count + 1
        label = factor.name if count == 0 else f"{factor.name}.{count}"
        cs = structures.pop(label, None)
        if cs is None:
            cs = own if own is not None else (Scalar() if k == 1 else Unstructured(k))
        elif not isinstance(cs, CovStructure) or cs.k != k:
            raise ArgumentError(f"structures[{label!r}] must be a CovStructure for {k} column(s) "
                                f"({', '.join(names)}), got {cs!r}")
        terms.append(ReTerm(factor.name, label, names, factor, cols, slice(pos, pos + cs.n_params), src, src_cols,
                            structure=cs))
        pos += cs.n_params
    if structures:
        raise ArgumentError(f"structures names unknown term(s) {sorted(structures)}; "
                            f"the terms are {[t.label for t in terms]}")

    return assemble_structure(terms, relmat)


def assemble_structure(terms: list, relmat: dict | None = None) -> ModelStructure:
    """The ``ModelStructure`` of ``terms`` (θ slices set): terms on one grouping factor amalgamated
    into a block, the block with the most random effects first.

    Parameters
    ----------
    terms : list of ReTerm
        In lme4's order; terms of one block share one ``GroupingFactor`` object.
    relmat : dict, optional
        The relationship matrices the terms were built with (kept for rebuilds).

    Returns
    -------
    ModelStructure
    """
    by_factor: dict[str, list[int]] = {}
    for i, t in enumerate(terms):
        by_factor.setdefault(t.group, []).append(i)
    blocks = []
    for idxs in by_factor.values():
        at = 0
        for i in idxs:
            terms[i].block_cols = np.arange(at, at + terms[i].k)
            at += terms[i].k
        members = [terms[i] for i in idxs]
        # a block of one term reads that term's columns (the frame's array, never written): no copy
        columns = (np.ascontiguousarray(members[0].columns) if len(members) == 1
                   else np.hstack([t.columns for t in members]))
        blocks.append(ReBlock(members[0].factor, columns,
                              [name for t in members for name in t.names], members))
    # the block with the most random effects leads; the rest keep lme4 order
    if blocks:
        lead = max(range(len(blocks)), key=lambda b: blocks[b].size)
        blocks = [blocks[lead]] + blocks[:lead] + blocks[lead + 1 :]
    offset = 0
    for b_idx, b in enumerate(blocks):
        b.offset = offset
        offset += b.size
        for t in terms:
            if t.factor is b.factor:
                t.block = b_idx
    return ModelStructure(terms, blocks, dict(relmat) if relmat else None)


def _related_terms(raw, relmat):
    """Replace each ``(1 | g)`` named in ``relmat`` by its one-level block of columns Z L."""
    from .covstruct.relmat import RelatedLevels, relationship_factor
    from .exceptions import FormulaError

    relmat = dict(relmat)
    out = []
    for entry in raw:
        factor, cols, names, src, src_cols, own = entry
        K = relmat.pop(factor.name, None)
        if K is None:
            out.append(entry)
            continue
        if names != ["(Intercept)"] or own is not None:
            raise FormulaError(f"relmat[{factor.name!r}] applies to a random intercept (1 | {factor.name}); the term "
                               f"{src.spec.source} has columns {names}")
        L = relationship_factor(K, list(factor.levels), factor.name)
        one = GroupingFactor(factor.name, np.zeros(factor.codes.shape[0], dtype=np.int64), ["(related)"])
        z = L[factor.codes] * np.asarray(cols, dtype=float)[:, :1]
        out.append((one, z, list(factor.levels), src, src_cols, RelatedLevels(L, list(factor.levels))))
    if relmat:
        raise FormulaError(f"relmat names {sorted(relmat)}, which no random intercept (1 | g) of the formula uses")
    related = {e[0].name for e in out if isinstance(e[5], RelatedLevels)}
    for e in out:
        if e[0].name in related and not isinstance(e[5], RelatedLevels):
            raise FormulaError(f"{e[3].spec.source}: {e[0].name!r} has a relationship matrix, so its random "
                               "intercept is the only term it may have")
    return out
