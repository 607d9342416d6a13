"""The in-memory fit's starting θ, from summed crossproducts.

``objective.lmm.moment_start`` starts variance-component models at moment estimates and a single
vector term at per-level least squares (the two-stage start).  Both read only sums over rows: level
counts, level sums of the OLS residuals, counts of level pairs and per-level crossproducts, which
the crossproduct pass collects (``partition_crossproducts`` with ``plan.start`` set).  Starting
where the in-memory fit starts makes BOBYQA take the same path, so the estimates agree to the
optimiser's rounding rather than to its tolerance.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..objective.lmm import moment_theta, two_stage_theta

__all__ = ["start_kind", "start_from_pieces"]


def start_kind(structure, weighted: bool = False):
    """Which of the in-memory starts applies (None: lme4's start, as the in-memory fit uses then).

    Parameters
    ----------
    structure : ModelStructure
        The model's structure.
    weighted : bool, default False
        Whether there are prior weights (the starts then read the unweighted crossproducts, which
        the pass collects beside the weighted ones).

    Returns
    -------
    str or None
        ``"two_stage"``, ``"moment"`` or None.
    """
    terms = structure.terms
    if not terms:
        return None
    if len(terms) == 1 and 1 < terms[0].k <= 8:
        return "two_stage"
    factors = [t.group for t in terms]
    if any(t.names != ["(Intercept)"] for t in terms) or len(set(factors)) != len(factors):
        return None
    return "moment"


def _ols(pieces, kept):
    sel = list(kept)
    p_full = pieces["Axx"].shape[0] - 1
    if not sel:
        return np.zeros(0), np.zeros(0)
    A = pieces["Axx"][np.ix_(sel, sel)]
    b = pieces["Axx"][sel, p_full]
    beta = np.linalg.lstsq(A, b, rcond=None)[0]
    return beta, np.array(sel)


def _coef_vector(beta, sel, p_full):
    """[-β; 1] over the full [X y] columns (zeros at the dropped columns)."""
    v = np.zeros(p_full + 1)
    if sel.size:
        v[sel] = -beta
    v[p_full] = 1.0
    return v


def start_from_pieces(kind, structure, pieces, kept):
    """The in-memory fit's start (θ and BOBYQA step) from the crossproducts.

    Parameters
    ----------
    kind : str or None
        From :func:`start_kind`.
    structure : ModelStructure
        The model's structure (global levels).
    pieces : dict
        The summed pieces (unweighted), with ``lead_counts`` and, for the two-stage start, ``H``.
    kept : list of int
        The kept fixed-effect columns.

    Returns
    -------
    tuple of numpy.ndarray
        ``(theta0, step)``.
    """
    theta0 = structure.theta_start()
    step = np.full(theta0.shape, 0.75)
    if kind is None:
        return theta0, step
    if "unweighted" in pieces:  # prior weights: the in-memory starts read the unweighted rows
        pieces = dict(pieces, **pieces["unweighted"])
    p_full = pieces["Axx"].shape[0] - 1
    n = pieces["n"]
    beta, sel = _ols(pieces, kept)
    if not sel.size:  # no fixed effects: r = y - mean(y)
        v = np.zeros(p_full + 1)
        v[p_full] = 1.0
        ybar = pieces["ysum"] / n
    else:
        v = _coef_vector(beta, sel, p_full)
        ybar = 0.0
    G = pieces["G"]
    if kind == "two_stage":
        if not sel.size:  # r = y - mean(y) needs Z'1 per level, which the pieces do not hold
            return theta0, step
        t = structure.terms[0]
        K = t.k
        ZtZ = pieces["A11"]
        Ztr = np.einsum("gjk,j->gk", G, v)
        n_g = pieces["lead_counts"]
        ok = (n_g > K) & (np.linalg.det(ZtZ) > 1e-10 * np.maximum(np.einsum("gaa->g", ZtZ), 1.0) ** K)
        if ok.sum() < K + 2:
            return theta0, step
        inv = np.linalg.inv(ZtZ[ok])
        coef = np.einsum("gab,gb->ga", inv, Ztr[ok])
        rr = np.einsum("i,gij,j->g", v, pieces["H"][ok], v)
        ss = float(np.sum(rr - 2.0 * np.einsum("ga,ga->g", coef, Ztr[ok])
                          + np.einsum("ga,gab,gb->g", coef, ZtZ[ok], coef)))
        sigma2 = ss / max(int(n_g[ok].sum()) - K * int(ok.sum()), 1)
        return two_stage_theta(t, theta0, coef, inv, sigma2)
    # moment equations of the random intercepts
    terms = structure.terms
    blocks = structure.blocks
    lead = blocks[0]
    n_lead = lead.size

    def counts(b):
        if b == 0:
            return pieces["A11"][:, 0, 0]
        at = blocks[b].offset - n_lead
        return pieces["Azz"].diagonal()[at : at + blocks[b].q] if sp.issparse(pieces["Azz"]) else \
            np.diagonal(pieces["Azz"])[at : at + blocks[b].q]

    def level_sums(b):
        if b == 0:
            s = G[:, :, 0] @ v
        else:
            at = blocks[b].offset - n_lead
            s = pieces["Azx"][at : at + blocks[b].q] @ v
        return s - ybar * counts(b)

    def pair_counts(bi, bj):
        """Counts of (level of block bi, level of block bj) as COO (rows: bi's levels)."""
        if bi == bj:
            raise ValueError
        if bi == 0 or bj == 0:
            other = bj if bi == 0 else bi
            at = blocks[other].offset - n_lead
            A = sp.csr_matrix(pieces["Az1"])[at : at + blocks[other].q]  # (q_other, q1)
            return sp.coo_matrix(A.T if bi == 0 else A)
        ai, aj = blocks[bi].offset - n_lead, blocks[bj].offset - n_lead
        Azz = sp.csr_matrix(pieces["Azz"])
        return sp.coo_matrix(Azz[ai : ai + blocks[bi].q][:, aj : aj + blocks[bj].q])

    k = len(terms)
    C = np.zeros((k + 1, k + 1))
    V = np.zeros(k + 1)
    yy = float(v @ pieces["Axx"] @ v)
    rsum = float(pieces["ysum"] - (pieces["colsum"][sel] @ beta if sel.size else 0.0)) - ybar * n
    ss = yy - (n * ybar * ybar if ybar else 0.0)
    for i, t in enumerate(terms):
        bi = t.block
        q = t.factor.nlevels
        n_l = counts(bi)
        n_i = np.maximum(n_l, 1)
        V[i] = float(np.var(level_sums(bi) / n_i))
        C[i, k] = float(np.mean(1.0 / n_i)) - 1.0 / n
        for j, u in enumerate(terms):
            if i == j:
                C[i, j] = 1.0 - 1.0 / q
                continue
            P = pair_counts(bi, u.block)
            keep = P.data != 0
            pi, pl, cnt = P.row[keep], P.col[keep], P.data[keep]
            share = cnt / n_i[pi]
            sq = np.bincount(pi, share**2, minlength=q)
            mean_w = np.bincount(pl, share, minlength=u.factor.nlevels) / q
            C[i, j] = float(np.mean(sq)) - float(mean_w @ mean_w)
        C[k, i] = 1.0 - float(np.sum((n_l / n) ** 2))
    C[k, k] = 1.0 - 1.0 / n
    V[k] = ss / n - (rsum / n) ** 2
    return moment_theta(terms, theta0, step, C, V)
