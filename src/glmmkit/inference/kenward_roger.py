"""Kenward-Roger (1997) small-sample inference for the fixed effects of a REML-fitted LMM.

The marginal covariance of y is linear in the variance parameters σ = (the entries of
every random-effects term's covariance matrix, then the residual variance),

    V(σ) = Σ_r σ_r G_r + σ² W⁻¹,    G_r = Z A_r Z',

with A_r the indicator of one covariance entry (both triangles), repeated over the
levels of the term's factor, and W the prior weights.  With Φ = (X'V⁻¹X)⁻¹ (the
plug-in covariance of β̂, equal to ``fit.vcov``), Kenward & Roger define

    P_i  = −X'V⁻¹G_iV⁻¹X,    Q_ij = X'V⁻¹G_iV⁻¹G_jV⁻¹X,
    W_σ  = I_E⁻¹,            I_E[i, j] = ½ tr(P G_i P G_j)   (REML expected information,
                                                              P = V⁻¹ − V⁻¹XΦX'V⁻¹)
    Φ_A  = Φ + 2 Φ {Σ_ij W_σ[i, j] (Q_ij − P_i Φ P_j)} Φ,

the covariance adjusted for the bias of the plug-in estimate and for the
variability of σ̂ (the second-derivative terms R_ij vanish because V is linear in
σ).  For a hypothesis L β = 0 of rank ℓ, Θ = L'(LΦL')⁻¹L, A₁ = Σ W_σ[i,j] tr(ΘΦP_iΦ)
tr(ΘΦP_jΦ), A₂ = Σ W_σ[i,j] tr(ΘΦP_iΦΘΦP_jΦ), and the scaled Wald statistic
λ/ℓ · β̂'L'(LΦ_AL')⁻¹Lβ̂ is referred to F(ℓ, m) with m and λ matched to the first two
moments (Kenward & Roger 1997, section 3; Halekoh & Højsgaard 2014, pbkrtest).

Everything is computed in the q-dimensional random-effects space by the Woodbury
identity, V⁻¹ = σ⁻² (W − WK C⁻¹ K'W) with K = ZΛ and C = K'WK + I (no n × n
matrix): the traces tr(V⁻¹G_iV⁻¹G_j) are tr(A_i M A_j M) with M = Z'V⁻¹Z.

The derivation uses the REML estimates and REML's expected information; for ML
fits the adjustment is not defined (pbkrtest refits by REML with a warning,
lmerTest refuses), so glmmkit refuses and names the refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..exceptions import ArgumentError, NotAvailableError

__all__ = ["KenwardRoger", "kenward_roger", "kr_ddf", "kr_test"]


@dataclass
class KenwardRoger:
    """The pieces of Kenward & Roger's adjustment at a fit's estimates.

    Attributes
    ----------
    phi : ndarray (p, p)
        Unadjusted covariance of β̂ (X'V⁻¹X)⁻¹.
    phi_adj : ndarray (p, p)
        Φ_A, the adjusted covariance.
    P : list of ndarray (p, p)
        P_i per variance parameter.
    W : ndarray (k, k)
        Inverse of the REML expected information of the variance parameters.
    names : list of str
        The variance parameters: ``cov_<term>.<row>.<col>`` entries, then ``sigma2``.
    """

    phi: np.ndarray
    phi_adj: np.ndarray
    P: list
    W: np.ndarray
    names: list

    def ddf(self, L) -> float:
        """Kenward-Roger denominator degrees of freedom of the hypothesis ``L β = 0``.

        Parameters
        ----------
        L : array-like, shape (ℓ, p) or (p,)
            The restriction: its rows together (an ℓ-df F test).

        Returns
        -------
        float
            m of Kenward and Roger (their F's denominator df).
        """
        return _ddf_scale(self, np.atleast_2d(np.asarray(L, dtype=float)))[0]

    def ddf_rows(self, L) -> np.ndarray:
        """Degrees of freedom of each row of ``L`` on its own (one contrast at a time, as lmerTest's
        ``contest1D`` and emmeans report them).

        Parameters
        ----------
        L : array-like, shape (r, p)
            Contrast rows of the fixed effects.

        Returns
        -------
        ndarray, shape (r,)
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        return np.array([_ddf_scale(self, L[i:i + 1])[0] for i in range(L.shape[0])])


def _check_fit(fit):
    if fit.kind != "lmm":
        raise ArgumentError(
            "ddf='kenward-roger' applies to linear mixed models (lmer fits); a GLMM's Wald tests are "
            "asymptotic z tests: use ddf=None (or ddf='asymptotic')")
    if not fit.reml:
        raise ArgumentError(
            "ddf='kenward-roger' needs a REML fit: Kenward and Roger's adjustment corrects the small-sample "
            "bias of the REML plug-in covariance, using REML's expected information (pbkrtest refits by REML "
            "with a warning, lmerTest refuses). Refit with reml=True (fit.refit(reml=True)) or use "
            "ddf='satterthwaite'")
    if getattr(fit, "_residual", None) is not None:
        raise NotAvailableError(
            f"ddf='kenward-roger' is not available with a residual correlation structure "
            f"({fit._residual.description}: its parameters enter V non-linearly); use ddf='satterthwaite', "
            "which differentiates in them too")
    for t in fit.structure.terms:
        if not t.structure.direct:
            raise NotAvailableError(
                f"ddf='kenward-roger' needs covariance structures linear in their parameters; the term "
                f"{t.label!r} has {t.structure!r}: use ddf='satterthwaite'")


def _lambda(fit) -> sp.csr_matrix:
    """Λ (q × q, engine order): per block, the template T repeated over the levels (level-major)."""
    parts = [sp.kron(sp.identity(blk.q, format="csr"), sp.csr_matrix(T), format="csr")
             for blk, T in zip(fit.structure.blocks, fit._templates)]
    return sp.block_diag(parts, format="csr") if len(parts) > 1 else parts[0]


def _entries(fit):
    """Per covariance entry of every term: (name, rows, cols) of A_r's nonzeros in Z's columns
    (rows i-columns, cols j-columns of each level; symmetric: both orders are added)."""
    out = []
    for t in fit.structure.terms:
        blk = fit.structure.blocks[t.block]
        base = blk.offset + np.arange(blk.q) * blk.K
        k = t.k
        for j in range(k):
            for i in range(j, k):
                if not _in_cov_pattern(t, i, j):
                    continue
                name = f"cov_{t.label}.{t.names[i]}" if i == j else f"cov_{t.label}.{t.names[i]}.{t.names[j]}"
                out.append((name, base + int(t.block_cols[i]), base + int(t.block_cols[j])))
    return out


def _in_cov_pattern(t, i, j) -> bool:
    """Whether the covariance entry (i, j) of the term can be nonzero (its template pattern reaches it)."""
    rows, cols = t.structure.pattern
    T = np.zeros((t.k, t.k))
    T[rows, cols] = 1.0
    return bool((T @ T.T)[i, j] != 0.0)


def kenward_roger(fit) -> KenwardRoger:
    """Kenward-Roger's adjusted covariance Φ_A and the pieces its degrees of freedom need.

    Parameters
    ----------
    fit : LmmFit
        A REML fit whose covariance structures are linear in their parameters (lme4's terms).

    Returns
    -------
    KenwardRoger
        Computed once per fit and cached on it.

    Raises
    ------
    ArgumentError
        For GLMMs and ML fits, saying why and what to use instead.
    """
    cached = getattr(fit, "_kr_cache", None)
    if cached is not None:
        return cached
    _check_fit(fit)
    X = fit.frame.X[:, fit._x_kept]
    n, p = X.shape
    w = np.ones(n) if fit.frame.weights is None else np.asarray(fit.frame.weights, dtype=float)
    winv = 1.0 / w
    s2 = fit.sigma ** 2
    Z = sp.csr_matrix(fit._z)
    Lam = _lambda(fit)
    K = (Z @ Lam).tocsr()
    WK = sp.diags(w) @ K
    S = np.asarray((Z.T @ (sp.diags(w) @ Z)).toarray())      # Z'WZ
    ZWX = np.asarray(Z.T @ (w[:, None] * X))                  # Z'WX
    SL = np.asarray(Lam.T @ S).T                              # Z'WZΛ = Z'WK (S symmetric)
    KtWK = np.asarray(Lam.T @ SL)
    q = KtWK.shape[0]
    C = KtWK + np.eye(q)
    cf = sla.cho_factor(C, lower=True)

    def vinv(Y):
        """V⁻¹ Y for a dense n × m Y."""
        WY = w[:, None] * Y
        return (WY - WK @ sla.cho_solve(cf, np.asarray(K.T @ WY))) / s2

    # the q × q and q × p pieces, never an n × q matrix: Z'V⁻¹ = σ⁻² (Z'W − Z'WK C⁻¹ K'W)
    G1 = sla.cho_solve(cf, SL.T)                              # C⁻¹Λ'Z'WZ
    Gx = sla.cho_solve(cf, np.asarray(Lam.T @ ZWX))           # C⁻¹Λ'Z'WX
    E = vinv(X)                                               # V⁻¹X
    B = (ZWX - SL @ Gx) / s2                                  # Z'V⁻¹X
    M = (S - SL @ G1) / s2                                    # Z'V⁻¹Z
    M = 0.5 * (M + M.T)
    ML = np.asarray(Lam.T @ M).T                              # Z'V⁻¹ZΛ = Z'V⁻¹K
    phi = np.linalg.inv(X.T @ E)
    phi = 0.5 * (phi + phi.T)

    entries = _entries(fit)
    names = [e[0] for e in entries] + ["sigma2"]
    k = len(names)

    def a_times(rows, cols, Y):
        """A_r Y for the indicator A_r of one symmetric entry."""
        out = np.zeros((q,) + Y.shape[1:])
        np.add.at(out, rows, Y[cols])
        if not np.array_equal(rows, cols):
            np.add.at(out, cols, Y[rows])
        return out

    AM = [a_times(r, c, M) for _, r, c in entries]      # A_r M
    AB = [a_times(r, c, B) for _, r, c in entries]      # A_r B
    # W⁻¹V⁻¹ = σ⁻² (I − K C⁻¹ K'W)
    J = (B - ML @ Gx) / s2                              # Z'V⁻¹W⁻¹V⁻¹X
    N = (M - ML @ G1) / s2                              # Z'V⁻¹W⁻¹V⁻¹Z
    We = winv[:, None] * E
    F = vinv(We)
    R = sla.cho_solve(cf, KtWK)

    P = [-B.T @ ab for ab in AB] + [-E.T @ We]
    Q = np.empty((k, k), dtype=object)
    T = np.empty((k, k))
    nr = len(entries)
    for i in range(nr):
        for j in range(i, nr):
            Q[i, j] = AB[i].T @ M @ AB[j]
            T[i, j] = np.sum(AM[i] * AM[j].T)
        Q[i, nr] = AB[i].T @ J
        T[i, nr] = _a_trace(entries[i], N)
    Q[nr, nr] = We.T @ F
    T[nr, nr] = (n - 2.0 * np.trace(R) + np.sum(R * R.T)) / (s2 * s2)
    for i in range(k):
        for j in range(i):
            Q[i, j] = Q[j, i].T
            T[i, j] = T[j, i]
    info = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            info[i, j] = 0.5 * (T[i, j] - 2.0 * np.trace(phi @ Q[i, j]) + np.trace(phi @ P[i] @ phi @ P[j]))
    Wsig = np.linalg.pinv(info)
    Wsig = 0.5 * (Wsig + Wsig.T)
    Uadj = np.zeros((p, p))
    for i in range(k):
        for j in range(k):
            Uadj += Wsig[i, j] * (Q[i, j] - P[i] @ phi @ P[j])
    phi_adj = phi + 2.0 * phi @ Uadj @ phi
    phi_adj = 0.5 * (phi_adj + phi_adj.T)
    out = KenwardRoger(phi=phi, phi_adj=phi_adj, P=P, W=Wsig, names=names)
    try:
        fit._kr_cache = out
    except AttributeError:  # a fit class with __slots__: no cache
        pass
    return out


def _a_trace(entry, N) -> float:
    """tr(A_r N) for the symmetric indicator A_r of one entry."""
    _, rows, cols = entry
    if np.array_equal(rows, cols):
        return float(np.sum(N[rows, rows]))
    return float(2.0 * np.sum(N[rows, cols]))


def _ddf_scale(kr: KenwardRoger, L: np.ndarray):
    """(m, λ) of Kenward & Roger for the rows of L (rank ℓ = rows)."""
    phi, W = kr.phi, kr.W
    ell = np.linalg.matrix_rank(L)
    Theta = L.T @ np.linalg.solve(L @ phi @ L.T, L)
    TP = [Theta @ phi @ Pi @ phi for Pi in kr.P]
    tr = np.array([np.trace(x) for x in TP])
    A1 = float(tr @ W @ tr)
    k = len(TP)
    A2 = 0.0
    for i in range(k):
        for j in range(k):
            A2 += W[i, j] * np.sum(TP[i] * TP[j].T)
    B = (A1 + 6.0 * A2) / (2.0 * ell)
    g = ((ell + 1.0) * A1 - (ell + 4.0) * A2) / ((ell + 2.0) * A2)
    den = 3.0 * ell + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (ell - g) / den, (ell + 2.0 - g) / den
    e_star = 1.0 / (1.0 - A2 / ell)
    v_star = (2.0 / ell) * (1.0 + c1 * B) / ((1.0 - c2 * B) ** 2 * (1.0 - c3 * B))
    rho = v_star / (2.0 * e_star ** 2)
    m = 4.0 + (ell + 2.0) / (ell * rho - 1.0)
    lam = m / (e_star * (m - 2.0))
    return m, lam


def kr_ddf(fit, L=None) -> np.ndarray:
    """Kenward-Roger degrees of freedom of each fixed effect (or of each row of ``L`` as a
    one-degree-of-freedom contrast) of a REML-fitted LMM.

    Parameters
    ----------
    fit : LmmFit
        A REML-fitted linear mixed model.
    L : array-like, shape (r, p), optional
        Contrasts; the identity (each coefficient) when omitted.

    Returns
    -------
    ndarray, shape (r,)
    """
    kr = kenward_roger(fit)
    L = np.eye(kr.phi.shape[0]) if L is None else np.atleast_2d(np.asarray(L, dtype=float))
    return kr.ddf_rows(L)


def kr_test(fit, L) -> dict:
    """Kenward-Roger F test of ``L β = 0`` (pbkrtest's KRmodcomp for a restriction matrix).

    Parameters
    ----------
    fit : LmmFit
        A REML-fitted linear mixed model.
    L : array-like, shape (ℓ, p)
        The restriction, of full row rank.

    Returns
    -------
    dict
        ``F`` (the scaled statistic λ/ℓ · W), ``num_df`` (ℓ), ``den_df`` (m), ``scale`` (λ),
        ``p_value``, and ``F_unscaled`` (W/ℓ with Φ_A).
    """
    from scipy import stats

    kr = kenward_roger(fit)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    ell = np.linalg.matrix_rank(L)
    m, lam = _ddf_scale(kr, L)
    Lb = L @ fit._beta
    wald = float(Lb @ np.linalg.solve(L @ kr.phi_adj @ L.T, Lb))
    F = lam * wald / ell
    return {"F": F, "num_df": ell, "den_df": m, "scale": lam, "p_value": float(stats.f.sf(F, ell, m)),
            "F_unscaled": wald / ell}
