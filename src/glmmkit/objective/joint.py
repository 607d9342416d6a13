"""The Laplace objective of a model whose zero-inflation formula has random effects of its own
(glmmTMB's ``ziformula = ~ mined + (1 | site)``).

Two linear predictors share the rows: η = Xβ + Z b for the conditional mean and
ζ = X_zi β_zi + Z_zi b_zi for logit π.  The Laplace approximation integrates over
u = (u, u_zi) jointly:

    D = -2 Σ ℓ(y_i | η_i, ζ_i) + ||u||² + log |Λ'Z̃'W̃Z̃Λ + I|,

where each row's information is a 2 x 2 matrix [[a, b], [b, c]] (a = -∂²ℓ/∂η²,
b = -∂²ℓ/∂η∂ζ, c = -∂²ℓ/∂ζ²).  Writing it as

    (a − b) e₁e₁' + (c − b) e₂e₂' + b (e₁ + e₂)(e₁ + e₂)'

turns it into three pseudo-rows per row with scalar (signed) weights and *fixed*
columns: [z_i, 0], [0, z_zi,i] and [z_i, z_zi,i].  So the stacked structure over 3n
rows (``stacked_structure``: each part's terms, zero-padded, terms of the two parts on
one grouping factor amalgamated into one block) is an ordinary ``ModelStructure``,
and the blocked Cholesky of ``linalg`` factors the joint system unchanged, with the
Newton weights of each iteration.  Rows 0..n-1 of Z̃b are Zb, rows n..2n-1 are Z_zi b_zi.

The objective is minimised derivative-free (BOBYQA); ``pirls`` keeps the one-part
meaning (the conditional mode given the family bound to per-row π, which at the joint
mode is the joint mode's conditional part) so that results, refits and rescaling work
on the conditional model as for any other fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frame import GroupingFactor
from ..linalg import BlockedSystem
from ..structure import ReTerm, assemble_structure
from .parametric import ParametricLaplace, newton_mode
from .predictor import PSI_BOUND

__all__ = ["JointLaplace", "JointMode", "stacked_structure"]


def _same_factor(f, g) -> bool:
    return f.name == g.name and list(f.levels) == list(g.levels) and np.array_equal(f.codes, g.codes)


def stacked_structure(cond, zi, n: int):
    """The joint random-effects structure over 3n pseudo-rows, and where each part's u sits in it.

    Parameters
    ----------
    cond, zi : ModelStructure
        The conditional model's and the zero-inflation formula's random-effects structures (n rows each).
    n : int
        Number of rows.

    Returns
    -------
    structure : ModelStructure
        Terms of ``cond`` (θ first) then of ``zi`` (θ_zi after), columns [Z; 0; Z] and [0; Z_zi; Z_zi].
    index_cond, index_zi : ndarray of int
        u_cond = u[index_cond] and u_zi = u[index_zi] in each part's own engine order.
    """
    factors = {}

    def tiled(f):
        for g, st in factors.values():
            if _same_factor(f, g):
                return st
        st = GroupingFactor(f.name if f.name not in factors else f"zi~{f.name}", np.tile(f.codes, 3), list(f.levels))
        factors[st.name] = (f, st)
        return st

    terms, origin = [], []
    for part, s, shift in (("cond", cond, 0), ("zi", zi, cond.n_theta)):
        for t in s.terms:
            z = np.zeros_like(np.asarray(t.columns, dtype=float))
            cols = np.vstack([t.columns, z, t.columns]) if part == "cond" else np.vstack([z, t.columns, t.columns])
            f = tiled(t.factor)
            sl = slice(t.theta_slice.start + shift, t.theta_slice.stop + shift)
            label = t.label if part == "cond" else f"zi~{t.label}"
            terms.append(ReTerm(f.name, label, list(t.names), f, cols, sl, structure=t.structure))
            origin.append((part, s, t))
    joint = assemble_structure(terms)
    index = {"cond": np.empty(cond.q, dtype=np.int64), "zi": np.empty(zi.q, dtype=np.int64)}
    for jt, (part, s, t) in zip(joint.terms, origin):
        ob, jb = s.blocks[t.block], joint.blocks[jt.block]
        lev = np.arange(ob.q)[:, None]
        index[part][(ob.offset + lev * ob.K + t.block_cols[None, :]).ravel()] = \
            (jb.offset + lev * jb.K + jt.block_cols[None, :]).ravel()
    return joint, index["cond"], index["zi"]


@dataclass
class JointMode:
    """The joint conditional mode of both parts at one parameter vector.

    Attributes
    ----------
    u : ndarray
        Spherical random effects of both parts (the stacked structure's order).
    eta, eta_zi : ndarray, shape (n,)
        The conditional mean's and the zero part's linear predictors at the mode.
    family : ParametricFamily
        The family bound to the parameters there (π per row from ``eta_zi``).
    pdev, logdet : float
        Penalised deviance and log |Λ'Z̃'W̃Z̃Λ + I| at the mode.
    converged : bool
        Whether Newton's method met its tolerance.
    system, factor
        The joint weighted system and its factor at the mode (conditional covariances of u).
    """

    u: np.ndarray
    eta: np.ndarray
    eta_zi: np.ndarray
    family: object
    pdev: float
    logdet: float
    converged: bool
    system: object = None
    factor: object = None

    @property
    def laplace(self) -> float:
        """The Laplace deviance at the mode.

        Returns
        -------
        float
            pdev + logdet.
        """
        return self.pdev + self.logdet


class JointLaplace(ParametricLaplace):
    """Laplace deviance of a zero-inflated or hurdle model with random effects in its zero part.

    Parameters
    ----------
    structure : ModelStructure
        The conditional model's random effects.
    X, y, wt, offset, family, **kw
        As ``ParametricLaplace``; ``submodels`` holds the zero part's ``LinearPredictor`` with its
        ``structure`` set.
    """

    def __init__(self, structure, X, y, wt, offset, family, **kw):
        super().__init__(structure, X, y, wt, offset, family, **kw)
        zi = [p for p in self.submodels if p.structure is not None]
        if len(zi) != 1 or zi[0].param != "zi":
            raise ValueError("JointLaplace needs exactly one sub-model with random effects, the zero part's")
        self.zi_predictor = zi[0]
        n = self.n
        self.stacked, self.index_cond, self.index_zi = stacked_structure(structure, zi[0].structure, n)
        self.Zs = self.stacked.z_matrix()
        self._Zs_t = self.Zs.T
        self._X0s = np.empty((3 * n, 0))
        self._zeros3 = np.zeros(3 * n)
        self._joint_base = None
        self._family0 = None
        self.u_joint = np.zeros(self.stacked.q)

    # ----- pieces -----
    def gradient_applies(self, max_cross: int = 5_000_000) -> bool:
        """True when the exact gradient's dense parts (M⁻¹ between the stacked blocks) are small enough.

        Parameters
        ----------
        max_cross : int
            The largest number of entries of M⁻¹'s cross part (other blocks x lead block).

        Returns
        -------
        bool
        """
        from .glmm import dense_parts_fit

        return dense_parts_fit(self.stacked.blocks, max_cross)

    def joint_theta(self, prm) -> np.ndarray:
        """θ of the stacked structure: the conditional θ, then θ_zi.

        Parameters
        ----------
        prm : Parts
            The split parameter vector.

        Returns
        -------
        ndarray
        """
        return np.concatenate([np.asarray(prm.theta, dtype=float), np.asarray(prm["theta_zi"], dtype=float)])

    def _system(self, weights):
        if self._joint_base is None:
            self._joint_base = BlockedSystem(self.stacked.blocks, self._X0s, self._zeros3, by_plan=True)
        return self._joint_base.reweighted(self._X0s, self._zeros3, weights=weights)

    def _bound(self, scalars: dict, eta_zi):
        psi = dict(scalars)
        psi["zi"] = np.clip(eta_zi, -PSI_BOUND, PSI_BOUND)
        if self._family0 is None:
            # one bound object whose memo of the response's μ-free constants every later binding copies
            self._family0 = self.family.with_psi(psi)
            self._family0.log_density(self.y, np.ones(self.n), self.wt, self._family0.values)
        return self._family0.with_psi(psi)

    def _at(self, templates, u, fixed, fixed_zi, scalars):
        r = self.Zs @ self.stacked.b_of(templates, u)
        n = self.n
        eta, eta_zi = fixed + r[:n], fixed_zi + r[n : 2 * n]
        fam = self._bound(scalars, eta_zi)
        dev, _ = self._pdev(eta, u, fam)
        return eta, eta_zi, fam, dev

    def _weights(self, fam, eta, exact=True):
        """Pseudo-row weights and scores of the joint Newton system at (η, ζ)."""
        s_e, l_z, a, b, c = fam.joint_newton_terms(eta, self.y, self.wt)
        if exact:
            w = np.concatenate([a - b, c - b, b])
        else:  # a positive definite stand-in away from the mode: the cross terms dropped, curvatures floored
            floor = 1e-6 * max(float(np.max(np.abs(a))), float(np.max(np.abs(c))), 1e-12)
            w = np.concatenate([np.maximum(a, floor), np.maximum(c, floor), np.zeros(self.n)])
        score = np.concatenate([s_e, l_z, np.zeros(self.n)])
        return w, score

    # ----- the joint mode -----
    def joint_mode(self, prm, u0=None) -> JointMode:
        """Newton's method for the joint mode of (u, u_zi) at the split parameters ``prm``.

        Parameters
        ----------
        prm : Parts
            The split parameter vector (θ, β, ψ, θ_zi, β_zi, ...).
        u0 : ndarray, optional
            Start (the stacked order); the last mode found by default.

        Returns
        -------
        JointMode
        """
        st = self.stacked
        templates = st.templates(self.joint_theta(prm))
        scalars = {k: v for k, v in self.row_psi(prm).items() if k != "zi"}
        fixed = self.X @ np.asarray(prm.beta, dtype=float) + self.offset
        fixed_zi = self.zi_predictor.fixed(np.asarray(prm["beta_zi"], dtype=float)) / self.zi_predictor.param_scale
        mz = sum(b.size for b in st.blocks[1:])
        u = (self.u_joint if u0 is None else u0).copy()
        eta, eta_zi, fam, dev = self._at(templates, u, fixed, fixed_zi, scalars)
        if not np.isfinite(dev):
            u = np.zeros_like(u)
            eta, eta_zi, fam, dev = self._at(templates, u, fixed, fixed_zi, scalars)

        def direction(u, state):
            eta, fam = state[0], state[2]
            w, score = self._weights(fam, eta)
            system = self._system(w)
            fac = system.factor(templates)
            if not fac.random_effects_ok(mz):
                w, score = self._weights(fam, eta, exact=False)
                system = self._system(w)
                fac = system.factor(templates)
                if not fac.random_effects_ok(mz):
                    return None
            grad_u = st.lambda_t(templates, self._Zs_t @ score) - u
            return grad_u, system.solve_rhs(templates, fac, grad_u)

        def halve(u, du, dev):
            step = 1.0
            for _ in range(30):
                u_try = u + step * du
                eta, eta_zi, fam, dev_try = self._at(templates, u_try, fixed, fixed_zi, scalars)
                if dev_try <= dev + 1e-12 * abs(dev):
                    return step, u_try, dev_try, (eta, eta_zi, fam)
                step *= 0.5
            self.pirls_failures += 1
            return None

        u, dev, (eta, eta_zi, fam), converged, _ = newton_mode(u, dev, (eta, eta_zi, fam), direction, halve,
                                                                self.tol, self.maxit)
        w, _ = self._weights(fam, eta)
        system = self._system(w)
        fac = system.factor(templates)
        ok = fac.random_effects_ok(mz)
        logdet = fac.logdet_lead + 2.0 * float(np.sum(np.log(np.diagonal(fac.L)[:mz]))) if ok else np.inf
        return JointMode(u, eta, eta_zi, fam, dev, logdet, converged, system, fac)

    # ----- objectives -----
    def laplace(self, params) -> float:
        """The joint Laplace deviance at the parameter vector ``params`` (warm-started).

        Parameters
        ----------
        params : ndarray
            The full parameter vector of ``layout``.

        Returns
        -------
        float
        """
        self.n_evals += 1
        mode = self.joint_mode(self.layout.split(params))
        if np.isfinite(mode.laplace):
            self.u_joint = mode.u
        return mode.laplace

    #: the joint mode has no first-order prediction: its Hessian differences take Newton's steps
    gradient_near_mode = None

    def laplace_and_gradient(self, params):
        """The joint Laplace deviance and its exact gradient in every block of ``layout``.

        The gradient is ``GlmmObjective``'s implicit-function one on the stacked pseudo-rows: with c the
        pseudo-rows' leverages, the derivative of log|M| in each row's (η, ζ) is
        v = Σ_k c_k ∂w_k/∂(η, ζ) (third derivatives of ℓ, ``zi_eta_terms``), e = AM⁻¹A'v (A the map from
        u to both predictors), and each predictor's fixed part has dD/dδ = −2s + v − He (H the row's
        2 x 2 information); θ's entries and the family's parameters follow as in ``ParametricLaplace``.

        Parameters
        ----------
        params : ndarray
            The full parameter vector of ``layout``.

        Returns
        -------
        deviance : float
        gradient : ndarray
        """
        self.n_evals += 1
        params = np.asarray(params, dtype=float)
        prm = self.layout.split(params)
        mode = self.joint_mode(prm)
        if not np.isfinite(mode.laplace):
            return np.inf, np.full(params.shape[0], np.nan)
        self.u_joint = mode.u
        return mode.laplace, self.joint_gradient(prm, mode)

    def joint_gradient(self, prm, mode: JointMode) -> np.ndarray:
        """The exact gradient of the joint Laplace deviance at the mode ``mode`` of ``prm`` (see
        ``laplace_and_gradient``).

        Parameters
        ----------
        prm : Parts
            The split parameter vector the mode belongs to.
        mode : JointMode
            The joint mode at ``prm`` (its system and factor with the exact weights).

        Returns
        -------
        ndarray
        """
        from .glmm import random_effect_entries, row_leverages

        st, n = self.stacked, self.n
        theta_all = self.joint_theta(prm)
        templates = st.templates(theta_all)
        fam, eta = mode.family, mode.eta
        d = fam.eta_derivatives(eta, self.y, self.wt)
        names = list(fam.free_names)
        l_z, s_z, W_z = d.psi[names.index("zi")]
        T = fam.zi_eta_terms(eta, self.y, self.wt)
        a, b, c = d.W, -s_z, -T["l_zz"]
        w = np.concatenate([a - b, c - b, b])
        system, fac = mode.system, mode.factor
        parts = system.inverse_parts(templates, fac)
        if getattr(self, "_stacked_entries", None) is None:
            self._stacked_entries = random_effect_entries(st)
        entries = self._stacked_entries
        lev, P = row_leverages(st, parts, templates, entries)
        c1, c2, c3 = lev[:n], lev[n : 2 * n], lev[2 * n :]
        # derivatives of the row information [[a, b], [b, c]] in η and ζ
        a_e, a_z = d.dW, W_z
        b_e, b_z = W_z, -T["l_ezz"]
        c_e, c_z = -T["l_ezz"], -T["l_zzz"]
        v_e = c1 * (a_e - b_e) + c2 * (c_e - b_e) + c3 * b_e
        v_z = c1 * (a_z - b_z) + c2 * (c_z - b_z) + c3 * b_z
        zero = np.zeros(n)
        Zt = self._Zs_t
        t = system.solve_m(parts, st.lambda_t(templates, Zt @ np.concatenate([v_e, v_z, zero])))
        e3 = self.Zs @ st.b_of(templates, t)
        e_e, e_z = e3[:n], e3[n : 2 * n]
        g_e = -2.0 * d.s + v_e - (a * e_e + b * e_z)
        g_z = -2.0 * l_z + v_z - (b * e_e + c * e_z)
        r_c = Zt @ np.concatenate([g_e, g_z, zero])
        r_s = Zt @ np.concatenate([d.s, l_z, zero])
        P_of = {(bi, ci): Pe for (bi, ci, _), Pe in zip(entries, P)}
        entry_grads = []
        for bi, blk in enumerate(st.blocks):
            sl = slice(blk.offset, blk.offset + blk.size)
            U = mode.u[sl].reshape(blk.q, blk.K)
            Tt = t[sl].reshape(blk.q, blk.K)
            Rc = r_c[sl].reshape(blk.q, blk.K)
            Rs = r_s[sl].reshape(blk.q, blk.K)
            entry_grads.append(np.array([float(U[:, cc] @ Rc[:, r] + Tt[:, cc] @ Rs[:, r])
                                         + 2.0 * float(np.dot(w * blk.columns[:, r], P_of[(bi, cc)]))
                                         for r, cc in zip(blk.tpl_rows, blk.tpl_cols)]))
        g_theta = st.contract(theta_all, entry_grads)
        nc = self.structure.n_theta
        # the family's parameters: per row −2ℓ_ψ + Σ_k c_k ∂w_k/∂ψ + e·∂s/∂ψ
        rows = {}
        for k, (lp, sp, Wp) in zip(names, d.psi):
            if k == "zi":
                continue
            l_zk, l_ezk, l_zzk = T["psi"].get(k, (zero, zero, zero))
            b_k, c_k = -l_ezk, -l_zzk
            rows[k] = -2.0 * lp + c1 * (Wp - b_k) + c2 * (c_k - b_k) + c3 * b_k + e_e * sp + e_z * l_zk
        out = {"theta": g_theta[:nc], "beta": self.X.T @ g_e, "theta_zi": g_theta[nc:]}
        if self.scalar_names:
            out["psi"] = np.array([float(np.sum(rows[k])) for k in self.scalar_names])
        for sub in self.submodels:
            if sub.param == "zi":
                out["beta_zi"] = sub.X.T @ g_z / sub.param_scale
            else:
                out[f"beta_{sub.part}"] = sub.X.T @ rows[sub.param] / sub.param_scale
        return self.layout.join(**out)

    def agq(self, params, nagq: int) -> float:  # pragma: no cover - glmer refuses nagq > 1 for these models
        """Not available: the integral per level is over both parts' random effects.

        Parameters
        ----------
        params : ndarray
            The full parameter vector.
        nagq : int
            Number of quadrature nodes.

        Returns
        -------
        float
            Never returns; raises NotImplementedError.
        """
        raise NotImplementedError("adaptive quadrature needs one-dimensional integrals per level")

    def family_at(self, prm):
        """The family bound to the parameters at ``prm`` with π per row from the joint mode (the zero
        part's random effects included).

        Parameters
        ----------
        prm : Parts
            The split parameter vector.

        Returns
        -------
        ParametricFamily
        """
        return self.joint_mode(prm).family

    def final_state(self, prm):
        """The fit's state at ``prm``: the conditional part's PIRLS state given π per row at the joint
        mode (its mode is the joint mode's conditional part), with the joint mode attached as
        ``state.joint`` and the zero part's spherical effects as ``state.u_zi``.

        Parameters
        ----------
        prm : Parts
            The split parameter vector at the estimates.

        Returns
        -------
        PirlsState
        """
        mode = self.joint_mode(prm)
        self.u_joint = mode.u
        state = self.pirls(prm.theta, prm.beta, u0=mode.u[self.index_cond], family=mode.family)
        state.joint = mode
        state.u_zi = mode.u[self.index_zi]
        state.eta_zi = mode.eta_zi
        return state
