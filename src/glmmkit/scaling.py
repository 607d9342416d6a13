"""Centring and scaling of covariates for the fit only, and the map of the estimates back.

A covariate in the hundreds (an altitude, a year, a baseline count) makes the
optimiser's first unit steps move the linear predictor by hundreds: the
exponential overflows, PIRLS fails and the fit ends at −inf.  glmmkit fits the
same model on centred and scaled columns and reports everything on the user's
scale, as if it had been fitted unscaled.

Fixed effects.  ``X_new = X M`` (``M`` = identity except for the transformed
columns; centring moves into the intercept's row), so ``β = M β_new``, its
covariance ``M V M'``.  Any invertible M spans the same column space: the
likelihood is unchanged.

Random-effect columns.  Per term with columns ``Z_t`` (``[1, x]`` for
``(x | g)``), ``Z_t,new = Z_t A`` with ``A`` per term (upper triangular when the
intercept comes first: ``x_new = (x − c)/s``).  Then ``b = A b_new`` per level
and the relative covariance factor maps as ``T T' = A T_new T_new' A'``:
``T = lower factor of the LQ decomposition A T_new = T Q`` (Q orthogonal), with
non-negative diagonal (lme4's convention), and the spherical modes as
``u = Q u_new``.  With ``u = Q v``, ``Z T u = Z_new T_new v`` and ``|u| = |v|``,
so the penalised deviance, its modes and the Laplace approximation are exactly
those of the user's parameterisation.  Centring is used only where the model is
invariant to it: a correlated term with an intercept.  A term without its
intercept, or an uncorrelated ``||`` term, is invariant to scaling only.
Adaptive Gauss–Hermite quadrature is invariant to a diagonal A (scaling) but
not to a rotation, so with nAGQ > 1 slopes are scaled, never centred.

All functions here are pure: they read arrays and return new ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SCALE_LIMIT", "GLMM_SCALE_LIMIT", "rescale_columns", "Scaling", "choose_scaling", "lq_lower",
           "theta_to_user", "theta_jacobian", "u_to_user"]

#: linear mixed models: a covariate whose root mean square lies outside [1/LIMIT, LIMIT] (or whose
#: mean is LIMIT standard deviations away from 0) is rescaled for the optimiser
SCALE_LIMIT = 1e4

#: GLMMs: the linear predictor goes through an exponential (log, logit links), so a covariate in
#: the tens or hundreds already makes the optimiser's unit steps overflow
GLMM_SCALE_LIMIT = 10.0


def _extreme_columns(C: np.ndarray, intercept: bool, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which columns of ``C`` to transform: root mean square outside [1/limit, limit], or (with an
    intercept to absorb a shift) a mean more than ``limit`` standard deviations from 0.  Constant
    columns and 0/1 indicator columns (factor codings: bounded, already well scaled) are left alone.

    Returns
    -------
    extreme : ndarray of bool
    rms, sd : ndarray
    """
    rms = np.sqrt(np.mean(C * C, axis=0))
    sd = np.std(C, axis=0)
    indicator = np.all((C == 0.0) | (C == 1.0), axis=0)
    extreme = (rms > limit) | ((rms < 1.0 / limit) & (rms > 0))
    if intercept:
        extreme |= (sd > 0) & (rms > limit * sd)  # a large shift on a small variation
        extreme &= sd > 0
    else:
        extreme &= rms > 0
    return extreme & ~indicator, rms, sd


def rescale_columns(X: np.ndarray, names: list[str], limit: float = SCALE_LIMIT):
    """Centre and scale the fixed-effect columns of extreme magnitude, for the fit only.

    Such columns are replaced by ``(x - c) / s`` (centred only when the model has an intercept,
    which absorbs the shift); every other column is left alone.  The fit on the new columns is
    the same model: with ``X_new = X M``, the coefficients on the user's scale are
    ``β = M β_new`` and their covariance ``M V M'``.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        The user's fixed-effect columns.
    names : list of str
        Column names; ``"(Intercept)"`` marks the intercept.
    limit : float, default SCALE_LIMIT
        Columns with root mean square outside ``[1/limit, limit]``, or a mean more than ``limit``
        standard deviations from 0, are transformed.

    Returns
    -------
    X_new : ndarray
        ``X`` itself when nothing needs rescaling.
    M : ndarray, shape (p, p), or None
        None when nothing was rescaled.
    """
    n, p = X.shape
    if n < 2 or p == 0:
        return X, None
    intercept = names.index("(Intercept)") if "(Intercept)" in names else None
    extreme, rms, sd = _extreme_columns(X, intercept is not None, limit)
    if intercept is not None:
        extreme[intercept] = False
    if not extreme.any():
        return X, None
    M = np.eye(p)
    cols = np.flatnonzero(extreme)
    if intercept is not None:
        centre, scale = X[:, cols].mean(axis=0), sd[cols]
        M[intercept, cols] = -centre / scale
    else:
        centre, scale = np.zeros(cols.shape[0]), rms[cols]
    M[cols, cols] = 1.0 / scale
    X_new = X.copy()
    X_new[:, cols] = (X[:, cols] - centre) / scale
    return X_new, M


def _term_transform(columns: np.ndarray, names: list[str], centre_ok: bool, limit: float):
    """``A`` (k × k) with ``columns @ A`` the transformed columns, or None when none is extreme."""
    n, k = columns.shape
    if n < 2:
        return None
    intercept = names.index("(Intercept)") if (centre_ok and "(Intercept)" in names) else None
    extreme, rms, sd = _extreme_columns(columns, intercept is not None, limit)
    if intercept is not None:
        extreme[intercept] = False
    if not extreme.any():
        return None
    A = np.eye(k)
    cols = np.flatnonzero(extreme)
    if intercept is not None:
        scale = sd[cols]
        A[intercept, cols] = -columns[:, cols].mean(axis=0) / scale
    else:
        scale = rms[cols]
    A[cols, cols] = 1.0 / scale
    return A


@dataclass(frozen=True)
class Scaling:
    """The transform a GLMM is fitted under.

    Attributes
    ----------
    X : ndarray
        Fixed-effect columns the fit uses (``X_user @ M``, or ``X_user`` itself).
    M : ndarray or None
        ``β_user = M β_fit``; None when X is untouched.
    structure : ModelStructure
        The structure the fit uses (the user's one when no random-effect column is transformed).
    term_maps : dict
        Term index (in ``structure.terms``) -> ``A`` with ``Z_fit = Z_user A`` for that term.
    names : list of str
        What was transformed, for ``FitInfo.rescaled``: fixed-effect names and ``"x in (x | g)"``.
    """

    X: np.ndarray
    M: np.ndarray | None
    structure: object
    term_maps: dict = field(default_factory=dict)
    names: list = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Whether the fit transforms any column (fixed or random).

        Returns
        -------
        bool
            True when the fixed effects are rescaled (``M`` given) or some random-effect term is.
        """
        return self.M is not None or bool(self.term_maps)

    @property
    def centred(self) -> bool:
        """Whether a random-effect term's slopes were centred (not only scaled).

        Returns
        -------
        bool
            True when some term map has an off-diagonal entry.
        """
        return any(np.count_nonzero(A - np.diag(np.diag(A))) for A in self.term_maps.values())


def choose_scaling(X: np.ndarray, x_names: list[str], structure, frame, *, centre_slopes: bool = True,
                   limit: float = GLMM_SCALE_LIMIT) -> Scaling:
    """Choose the fit's transform of the fixed-effect and random-effect columns.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        The user's fixed-effect columns (after aliased columns are dropped).
    x_names : list of str
        Their names.
    structure : ModelStructure
        The user's structure (built from ``frame``).
    frame : ModelFrame
        Its ``random`` terms are the source of the structure's columns.
    centre_slopes : bool, default True
        Whether correlated terms with an intercept may centre their slopes (False for adaptive
        quadrature, which is invariant to scaling but not to the rotation centring brings).
    limit : float, default GLMM_SCALE_LIMIT
        The magnitude beyond which a column is transformed (``GLMM_SCALE_LIMIT`` = 10).

    Returns
    -------
    Scaling
    """
    from .structure import build_structure

    X_new, M = rescale_columns(X, x_names, limit)
    names = [x_names[j] for j in np.flatnonzero(np.diag(M) != 1.0)] if M is not None else []
    # per random term of the frame: its transform (a || term is split into scalar terms below, so
    # it may only be scaled; so may a correlated term without an intercept)
    rt_maps = {}
    for r, rt in enumerate(frame.random):
        if getattr(rt.spec, "structure", None) is not None:
            continue  # a structured term's parameters mean what they say on the user's columns
        A = _term_transform(np.asarray(rt.columns, dtype=float), list(rt.names),
                            centre_slopes and rt.spec.correlated, limit)
        if A is not None:
            rt_maps[r] = A
            bar = "|" if rt.spec.correlated else "||"
            names += [f"{rt.names[j]} in (... {bar} {rt.factor.name})"
                      for j in range(len(rt.names)) if A[j, j] != 1.0]
    if not rt_maps:
        return Scaling(X_new, M, structure, {}, names)
    random = [dataclasses.replace(rt, columns=np.asarray(rt.columns, dtype=float) @ rt_maps[r]) if r in rt_maps
              else rt for r, rt in enumerate(frame.random)]
    fitted = build_structure(dataclasses.replace(frame, random=random), relmat=structure.relmat)
    sources = {id(rt): r for r, rt in enumerate(frame.random)}
    term_maps = {}
    for i, t in enumerate(structure.terms):
        r = sources.get(id(t.source))
        if r in rt_maps:
            cols = list(t.source_cols)
            term_maps[i] = rt_maps[r][np.ix_(cols, cols)]
    return Scaling(X_new, M, fitted, term_maps, names)


def lq_lower(B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``B = L Q`` with L lower triangular with non-negative diagonal and Q orthogonal.

    Defined for singular B too (then L has zeros on its diagonal), unlike a Cholesky factor of
    ``B B'``; ``L L' = B B'``.

    Parameters
    ----------
    B : numpy.ndarray, shape (k, k)
        A square matrix (a term's transformed template A T).

    Returns
    -------
    tuple of numpy.ndarray
        ``(L, Q)``, both (k, k).
    """
    Qt, R = np.linalg.qr(B.T)  # B' = Q' R  ->  B = R' Q
    sign = np.where(np.diag(R) < 0, -1.0, 1.0)
    L = (R * sign[:, None]).T
    Q = (Qt * sign[None, :]).T
    return L, Q


def _term_template(theta: np.ndarray, sl: slice, k: int) -> np.ndarray:
    T = np.zeros((k, k))
    rows, cols = _lower_colmajor(k)
    T[rows, cols] = theta[sl]
    return T


def _lower_colmajor(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a k × k lower triangle, column by column (θ's order)."""
    cols, rows = np.triu_indices(k)  # (c, r) pairs with r >= c, c-major order
    return rows, cols


def theta_to_user(structure, term_maps: dict, theta: np.ndarray) -> np.ndarray:
    """θ of the fit's parameterisation -> θ of the user's columns.

    Parameters
    ----------
    structure : ModelStructure
        The user's structure (θ layout; the fit's has the same).
    term_maps : dict
        ``Scaling.term_maps``.
    theta : ndarray
        θ of the fit's parameterisation.

    Returns
    -------
    ndarray
        θ of the user's columns, same shape (terms without a map unchanged).
    """
    out = np.array(theta, dtype=float, copy=True)
    for i, A in term_maps.items():
        t = structure.terms[i]
        rows, cols = _lower_colmajor(t.k)
        L, _ = lq_lower(A @ _term_template(theta, t.theta_slice, t.k))
        out[t.theta_slice] = L[rows, cols]
    return out


def theta_jacobian(structure, term_maps: dict, theta: np.ndarray) -> np.ndarray:
    """∂θ_user/∂θ_fit, for mapping covariances of θ to the user's columns.

    Where a term's factor is nonsingular, the derivative of the lower factor of ``S = B B'``
    (``B = A T``) is exact: ``dL = L Φ(L⁻¹ dS L⁻ᵀ)``, Φ keeping the lower triangle and half the
    diagonal.  A singular factor (a boundary fit, where the map is not smooth) gets central
    differences.

    Parameters
    ----------
    structure : ModelStructure
        The user's structure (θ layout; the fit's has the same).
    term_maps : dict
        ``Scaling.term_maps``: term index -> A with Z_fit = Z_user A.
    theta : numpy.ndarray, shape (n_theta,)
        θ of the fit's parameterisation.

    Returns
    -------
    numpy.ndarray, shape (n_theta, n_theta)
        The Jacobian; identity blocks for terms that are not transformed.
    """
    n = theta.shape[0]
    J = np.eye(n)
    for i, A in term_maps.items():
        t = structure.terms[i]
        k, sl = t.k, t.theta_slice
        rows, cols = _lower_colmajor(k)
        T = _term_template(theta, sl, k)
        B = A @ T
        L, _ = lq_lower(B)
        block = np.empty((len(rows), len(rows)))
        singular = np.min(np.abs(np.diag(L))) < 1e-10 * max(1.0, np.max(np.abs(L)))
        for j in range(len(rows)):
            if singular:
                h = 1e-6 * max(1.0, abs(theta[sl][j]))
                tp, tm = theta.copy(), theta.copy()
                tp[sl.start + j] += h
                tm[sl.start + j] -= h
                Lp, _ = lq_lower(A @ _term_template(tp, sl, k))
                Lm, _ = lq_lower(A @ _term_template(tm, sl, k))
                block[:, j] = (Lp[rows, cols] - Lm[rows, cols]) / (2.0 * h)
                continue
            dT = np.zeros((k, k))
            dT[rows[j], cols[j]] = 1.0
            dB = A @ dT
            dS = dB @ B.T + B @ dB.T
            Linv = np.linalg.inv(L)
            P = Linv @ dS @ Linv.T
            phi = np.tril(P)
            phi[np.diag_indices(k)] *= 0.5
            block[:, j] = (L @ phi)[rows, cols]
        J[sl, sl] = block
    return J


def u_to_user(structure, term_maps: dict, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spherical modes of the fit -> those of the user's parameterisation (``u = Q u_fit`` per level).

    Parameters
    ----------
    structure : ModelStructure
        The user's structure (engine order of u: blocks, level-major, the block's columns).
    term_maps : dict
        ``Scaling.term_maps``: term index -> A with Z_fit = Z_user A.
    theta : ndarray
        The fit's θ.
    u : ndarray, shape (q,)
        The fit's spherical modes.

    Returns
    -------
    ndarray
    """
    out = np.array(u, dtype=float, copy=True)
    for i, A in term_maps.items():
        t = structure.terms[i]
        blk = structure.blocks[t.block]
        _, Q = lq_lower(A @ _term_template(theta, t.theta_slice, t.k))
        view = out[blk.offset : blk.offset + blk.size].reshape(blk.q, blk.K)
        view[:, t.block_cols] = view[:, t.block_cols] @ Q.T
    return out
