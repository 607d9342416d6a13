"""The exact Laplace objective of ``ParametricLaplace`` for one scalar random-effect term, level by level.

With one grouping factor and one random effect per level (``(1 | site)``), and sub-models without
random effects, the penalised deviance at fixed (θ, β, ψ, β_sub) is a sum over the levels, each a
function of its own u_g only: the conditional modes are q one-dimensional Newton problems, solved
side by side on whole arrays (as ``objective/single.py`` does for binomial and Poisson), and the
Laplace deviance and its exact gradient follow from per-level sums:

    D = -2 Σ ℓ_i + Σ_g u_g² + Σ_g log H_g,   H_g = t² Σ_{i∈g} z_i² W_i + 1,

t the term's template (its θ for lme4's scalar term), W = -∂²ℓ/∂η² the observed information.
By the implicit function theorem (dû_g/dφ = -(∂²F/∂u_g∂φ) / (2H_g)), with S_k = Σ_{i∈g} z_i^k(·):

    dD/dβ  = X'[-2s + (t²/H) z² W' - (t⁴ S₃/H²) z W],      S₃ = Σ z³ W',  W' = ∂W/∂η
    dD/dt  = Σ_g -2u S₁ + (2t S₂ + t² u S₃)/H + (t³ S₃/H) (S₁ - t u S₂)/H
    dD/dψ_i = -2ℓ_ψ + (t²/H) z² W_ψ + (t⁴ S₃/H²) z s_ψ       (per row; a scalar ψ sums them,
                                                             a sub-model's β takes X_sub' of them)

which is ``ParametricLaplace.gradient_at`` with M diagonal: c_i = t² z_i²/H_g and e_i = t⁴ S₃ z_i/H_g².
No blocked system, sparse product or factorisation is made per evaluation; the level sums are
``bincount``s over the grouping factor's codes (the rows in any order).  The value and gradient
equal the general objective's (``tests/test_zero_one_factor.py``); the fit's final state, its
log-likelihood and everything after the optimiser come from the general objective at the estimates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OneFactorParametric", "applies"]


def applies(structure, submodels, nagq: int) -> bool:
    """True when the per-level path computes exactly the general objective's Laplace deviance.

    Parameters
    ----------
    structure : ModelStructure
        The conditional mean's random-effects structure.
    submodels : sequence of LinearPredictor
        The sub-models (``ziformula``, ``dispformula``).
    nagq : int
        Quadrature nodes (1: Laplace).

    Returns
    -------
    bool
        True for the Laplace approximation, one block with one random effect per level, and sub-models
        without random effects.
    """
    return (nagq == 1 and len(structure.blocks) == 1 and structure.blocks[0].K == 1
            and all(sub.structure is None for sub in submodels))


class OneFactorParametric:
    """Laplace deviance and exact gradient of a ``ParametricLaplace`` objective for one scalar term.

    Parameters
    ----------
    obj : ParametricLaplace
        The general objective (its layout, rows, family, sub-models and parameter mapping are used;
        it is not changed).

    Attributes
    ----------
    u : ndarray, shape (q,)
        The last modes found (spherical), the warm start of the next evaluation.
    n_evals : int
        Evaluations made.
    failures : int
        Levels whose Newton iterations found no step that does not raise the deviance.
    """

    #: a level's iterations end with a Newton step below this (relative to 1 + |u|), taken without
    #: another evaluation: Newton converges quadratically, so the mode is then exact to ~1e-12 (the
    #: general objective's stopping rule, a decrement under 1e-10 (|D| + 0.1), leaves ~1e-8)
    STEP_TOL = 1e-6
    #: most (points x rows) in one pass of ``gradients_near_mode`` (each of the family's ~50 temporaries
    #: is that many doubles: 16 MB)
    BATCH_ELEMENTS = 2_000_000

    def __init__(self, obj):
        blk = obj.structure.blocks[0]
        self.obj = obj
        self.block = blk
        self.structure = obj.structure
        self.layout = obj.layout
        self.codes = np.ascontiguousarray(blk.factor.codes, dtype=np.intp)
        self.q = blk.q
        z = np.asarray(blk.columns[:, 0], dtype=float)
        self.z = None if np.all(z == 1.0) else np.ascontiguousarray(z)  # a random intercept: no products
        self.u = np.zeros(self.q)
        self.n_evals = 0
        self.failures = 0
        self._base = None  # the last gradient evaluation's modes and per-level terms (``_predicted``)
        self._family = None  # the family object last bound
        self._psi_sl = self.layout.slice("psi") if "psi" in self.layout else None
        self._sub_sl = [self.layout.slice(f"beta_{sub.part}") for sub in obj.submodels]

    # ----- pieces -----
    def _sums(self, a):
        return np.bincount(self.codes, weights=a, minlength=self.q)

    def _t(self, theta):
        return float(theta[0]) if self.block.direct else float(self.block.template(theta)[0, 0])

    def _bound(self, params):
        """The split parameters, their engine-scale family values, the family bound to them (from the
        last object bound: every free parameter is set, and a family with a keyed memo of μ-free terms
        (NB2) reuses it at an unchanged θ) and Xβ + offset."""
        prm = self.layout.split(np.asarray(params, dtype=float))
        psi = self.obj.row_psi(prm)
        fam = (self._family or self.obj.family).with_psi(psi)
        self._family = fam
        return prm, psi, fam, self.obj.X @ prm.beta + self.obj.offset

    def _predicted(self, eta0, t, psi):
        """The modes at new parameters from the last gradient evaluation's, moved to first order (the
        implicit function theorem with that evaluation's per-level curvature H₀, as the general
        objective's ``_predicted_mode`` with M diagonal):

            Δu = [Δt S₁ - t₀ Σ z W (Δη₀ + Δt z u₀) + t₀ Σ z s_ψ Δψ] / H₀,

        or None where ``self.u`` is not that evaluation's modes (a caller's warm start is used as given)."""
        base = self._base
        if base is None or not np.array_equal(base["u"], self.u):
            return None
        t0, u0 = base["t"], base["u"]
        dt = t - t0
        rows = base["zW"] * (eta0 - base["eta0"])
        for k, zsp in base["zsp"].items():
            rows = rows - zsp * (psi[k] - base["psi"][k])
        du = (dt * base["S1"] - t0 * self._sums(rows) - t0 * dt * u0 * base["S2"]) / base["H"]
        u = u0 + du
        return u if np.all(np.isfinite(u)) else None

    def _eta(self, eta0, t, u):
        b = (t * u)[self.codes]
        return eta0 + (b if self.z is None else b * self.z)

    def _evaluate(self, eta0, t, u, fam):
        """(f, S₁, S₂, W) at u: per level the penalised log-likelihood Σℓ - u²/2, Σ z s and Σ z² W."""
        obj, z = self.obj, self.z
        ll, s, W = fam.newton_terms(self._eta(eta0, t, u), obj.y, obj.wt)
        if z is None:
            S1, S2 = self._sums(s), self._sums(W)
        else:
            S1, S2 = self._sums(z * s), self._sums(z * z * W)
        return self._sums(ll) - 0.5 * u * u, S1, S2, W

    def _modes(self, eta0, t, fam, u):
        """Every level's damped Newton iterations at once from ``u`` (not changed); returns (u, S₂ of the
        last evaluation: before the unchecked last step) and counts the levels that found no acceptable
        step in ``failures``."""
        u = u.copy()
        f, S1, S2, W = self._evaluate(eta0, t, u, fam)
        bad = ~np.isfinite(f)
        if bad.any():  # a warm start the new parameters make impossible: those levels from 0
            u[bad] = 0.0
            f, S1, S2, W = self._evaluate(eta0, t, u, fam)
        t2 = t * t
        active = np.isfinite(f)
        fail = ~active
        for _ in range(100):
            if not active.any():
                break
            H = t2 * S2 + 1.0
            neg = active & ~(H > 0.0)
            if neg.any():  # away from the mode the information may not be positive: W floored (a descent direction)
                floor = 1e-6 * max(float(np.max(np.abs(W))), 1e-12)
                Wf = np.maximum(W, floor)
                H = np.where(neg, t2 * self._sums(Wf if self.z is None else self.z * self.z * Wf) + 1.0, H)
            step = np.where(active, (t * S1 - u) / H, 0.0)
            tiny = active & (np.abs(step) <= self.STEP_TOL * (1.0 + np.abs(u)))
            if not neg.any() and tiny.any():
                # a Newton step this short changes the value by O(step²), and the one after it would be
                # below rounding: taken without another evaluation
                u = u + np.where(tiny, step, 0.0)
                active &= ~tiny
                step = np.where(tiny, 0.0, step)
                if not active.any():
                    break
            full = step.copy()
            pending = active.copy()
            for _h in range(30):
                ut = u + step
                tf, tS1, tS2, tW = self._evaluate(eta0, t, ut, fam)
                ok = tf >= f - 1e-13 * (np.abs(f) + 1.0)
                if ok.all():
                    u, f, S1, S2, W = ut, tf, tS1, tS2, tW
                    pending[:] = False
                    break
                acc = pending & ok
                u[acc], f[acc], S1[acc], S2[acc] = ut[acc], tf[acc], tS1[acc], tS2[acc]
                W = np.where(acc[self.codes], tW, W)
                pending &= ~ok
                if not pending.any():
                    break
                step = np.where(pending, 0.5 * step, 0.0)
            fail |= pending
            done = (step == full) & (np.abs(full) <= self.STEP_TOL * (1.0 + np.abs(u)))
            active &= ~(pending | done)
        self.failures += int(np.sum(fail & np.isfinite(f)))
        return u, S2

    # ----- objectives -----
    def laplace(self, params) -> float:
        """The Laplace deviance at ``params`` (``layout`` order), warm-started from the last modes.

        Parameters
        ----------
        params : ndarray
            The parameter vector.

        Returns
        -------
        float
            −2 log L (Laplace); inf where a mode or its curvature is not finite or positive.
        """
        self.n_evals += 1
        prm, _, fam, eta0 = self._bound(params)
        t = self._t(prm.theta)
        with np.errstate(all="ignore"):
            u, _ = self._modes(eta0, t, fam, self.u)
            ll, _, W = fam.newton_terms(self._eta(eta0, t, u), self.obj.y, self.obj.wt)
            H = t * t * self._sums(W if self.z is None else self.z * self.z * W) + 1.0
            value = -2.0 * float(np.sum(ll)) + float(u @ u) + float(np.sum(np.log(H)))
        if not (np.isfinite(value) and np.all(H > 0.0)):
            return np.inf
        self.u = u
        return value

    def laplace_and_gradient(self, params, newton: bool = True):
        """The Laplace deviance and its exact gradient in every parameter of the layout.

        Parameters
        ----------
        params : ndarray
            The parameter vector (``layout`` order).
        newton : bool, default True
            False takes the last gradient evaluation's modes moved to first order (``_predicted``) as the
            modes, without Newton steps: for points within a difference step of it (the Hessian's), as
            the general objective's ``gradient_near_mode``.

        Returns
        -------
        value : float
            −2 log L (Laplace); inf where the modes could not be found.
        grad : ndarray
            Its gradient (NaN with an infinite value).
        """
        self.n_evals += 1
        params = np.asarray(params, dtype=float)
        prm, psi, fam, eta0 = self._bound(params)
        theta = prm.theta
        t = self._t(theta)
        nan = (np.inf, np.full(params.shape[0], np.nan))
        with np.errstate(all="ignore"):
            u = self._predicted(eta0, t, psi)
            if u is None or newton:
                u, _ = self._modes(eta0, t, fam, self.u if u is None else u)
            d = fam.eta_derivatives(self._eta(eta0, t, u), self.obj.y, self.obj.wt)
            z, g = self.z, self.codes
            if z is None:  # a random intercept: z = 1, no products with it
                zW, S1, S2, S3 = d.W, self._sums(d.s), self._sums(d.W), self._sums(d.dW)
            else:
                zW = z * d.W
                S1, S2, S3 = self._sums(z * d.s), self._sums(z * zW), self._sums(z * z * z * d.dW)
            t2 = t * t
            H = t2 * S2 + 1.0
            value = -2.0 * float(np.sum(d.ll)) + float(u @ u) + float(np.sum(np.log(H)))
            if not (np.isfinite(value) and np.all(H > 0.0)):
                return nan
            a = (t2 / H)[g]                     # c_i / z_i²: the rows' leverage
            b = (t2 * t2 * S3 / (H * H))[g]     # e_i / z_i
            if z is not None:
                a, b = a * (z * z), b * z       # c_i and e_i
            grad = np.empty(params.shape[0])
            c = -2.0 * d.s + a * d.dW - b * d.W
            grad[self.layout.slice("beta")] = self.obj.X.T @ c
            du_dt = (S1 - t * u * S2) / H
            dt = float(np.sum(-2.0 * u * S1 + (2.0 * t * S2 + t2 * u * S3) / H + t2 * t * S3 / H * du_dt))
            th_sl = self.layout.slice("theta")
            grad[th_sl] = dt if self.block.direct else self.structure.contract(theta, [np.array([dt])])
            rows = {k: -2.0 * lp + a * Wp + b * sp for k, (lp, sp, Wp) in zip(fam.free_names, d.psi)}
            if self._psi_sl is not None:
                grad[self._psi_sl] = [float(np.sum(rows[k])) for k in self.obj.scalar_names]
            for sub, sl in zip(self.obj.submodels, self._sub_sl):
                grad[sl] = sub.X.T @ rows[sub.param] / sub.param_scale
        if not np.all(np.isfinite(grad)):
            return nan
        self.u = u
        self._base = {"u": u.copy(), "t": t, "eta0": eta0, "psi": psi, "S1": S1, "S2": S2, "H": H, "zW": zW,
                      "zsp": {k: (sp if z is None else z * sp) for k, (_, sp, _) in zip(fam.free_names, d.psi)}}
        return value, grad

    def gradient_near_mode(self, params):
        """``laplace_and_gradient`` at the modes predicted from the last gradient evaluation, without
        Newton steps (the Hessian's difference steps).

        Parameters
        ----------
        params : ndarray
            The parameter vector (``layout`` order).

        Returns
        -------
        value : float
        grad : ndarray
        """
        return self.laplace_and_gradient(params, newton=False)

    def gradients_near_mode(self, points):
        """``gradient_near_mode`` at several points at once (the Hessian's difference steps): every
        point's modes predicted from the same last gradient evaluation, the family's row terms and the
        per-level sums of all points in one pass over arrays of shape (points, rows).  The modes are
        not changed.

        Parameters
        ----------
        points : ndarray, shape (k, n_params)
            The parameter vectors (``layout`` order).

        Returns
        -------
        tuple of (ndarray, ndarray) or None
            Values (k,) and gradients (k, n_params); None where there is no last evaluation to predict
            from or a value is not finite (the caller then evaluates the points one by one).
        """
        base, obj = self._base, self.obj
        if base is None or not np.array_equal(base["u"], self.u):
            return None
        P = np.atleast_2d(np.asarray(points, dtype=float))
        n = self.codes.shape[0]
        chunk = max(1, self.BATCH_ELEMENTS // n)
        if P.shape[0] > chunk:  # the family's temporaries are (points x rows): a bounded number at a time
            parts = [self.gradients_near_mode(P[i:i + chunk]) for i in range(0, P.shape[0], chunk)]
            if any(part is None for part in parts):
                return None
            return np.concatenate([v for v, _ in parts]), np.concatenate([g for _, g in parts])
        k, q = P.shape[0], self.q
        prms = [self.layout.split(p) for p in P]
        per_point = [obj.row_psi(prm) for prm in prms]
        psi = {}
        for name in per_point[0]:
            vals = [pp[name] for pp in per_point]
            psi[name] = (np.array(vals, dtype=float)[:, None] if all(np.ndim(v) == 0 for v in vals)
                         else np.stack([np.broadcast_to(v, (n,)) for v in vals]))
        fam = (self._family or obj.family).with_psi(psi)
        beta = np.stack([prm.beta for prm in prms])
        eta0 = beta @ obj.X.T + obj.offset
        t = np.array([self._t(prm.theta) for prm in prms])
        offsets = (self.codes[None, :] + q * np.arange(k)[:, None]).ravel()

        def sums(A):
            return np.bincount(offsets, weights=np.broadcast_to(A, (k, n)).ravel(), minlength=k * q).reshape(k, q)

        z, g = self.z, self.codes
        with np.errstate(all="ignore"):
            t0, u0 = base["t"], base["u"]
            dt = (t - t0)[:, None]
            rows = base["zW"] * (eta0 - base["eta0"])
            for name, zsp in base["zsp"].items():
                rows = rows - zsp * (psi[name] - base["psi"][name])
            U = u0 + (dt * base["S1"] - t0 * sums(rows) - t0 * dt * u0 * base["S2"]) / base["H"]
            B = (t[:, None] * U)[:, g]
            d = fam.eta_derivatives(eta0 + (B if z is None else B * z), obj.y, obj.wt)
            if z is None:
                S1, S2, S3 = sums(d.s), sums(d.W), sums(d.dW)
            else:
                S1, S2, S3 = sums(z * d.s), sums(z * z * d.W), sums(z * z * z * d.dW)
            tc = t[:, None]
            t2 = tc * tc
            H = t2 * S2 + 1.0
            values = -2.0 * d.ll.sum(axis=1) + np.einsum("kq,kq->k", U, U) + np.log(H).sum(axis=1)
            if not (np.all(np.isfinite(values)) and np.all(H > 0.0)):
                return None
            a = (t2 / H)[:, g]
            b = (t2 * t2 * S3 / (H * H))[:, g]
            if z is not None:
                a, b = a * (z * z), b * z
            grads = np.empty(P.shape)
            c = -2.0 * d.s + a * d.dW - b * d.W
            grads[:, self.layout.slice("beta")] = c @ obj.X
            du_dt = (S1 - tc * U * S2) / H
            dts = np.sum(-2.0 * U * S1 + (2.0 * tc * S2 + t2 * U * S3) / H + t2 * tc * S3 / H * du_dt, axis=1)
            th_sl = self.layout.slice("theta")
            if self.block.direct:
                grads[:, th_sl] = dts[:, None]
            else:
                for j, prm in enumerate(prms):
                    grads[j, th_sl] = self.structure.contract(prm.theta, [np.array([dts[j]])])
            rows = {name: -2.0 * lp + a * Wp + b * sp for name, (lp, sp, Wp) in zip(fam.free_names, d.psi)}
            if self._psi_sl is not None:
                grads[:, self._psi_sl] = np.stack([rows[name].sum(axis=1) for name in obj.scalar_names], axis=1)
            for sub, sl in zip(obj.submodels, self._sub_sl):
                grads[:, sl] = (rows[sub.param] @ sub.X) / sub.param_scale
        self.n_evals += k
        if not np.all(np.isfinite(grads)):
            return None
        return values, grads

    def warm(self):
        """(get, set) of the warm start, for the driver (``fitting.driver``): the modes and the gradient
        evaluation they are predicted from (both restored, so every trial point starts alike).

        Returns
        -------
        tuple of callable
        """
        def get():
            return self.u.copy(), self._base

        def set_(saved):
            self.u, self._base = saved[0].copy(), saved[1]

        return get, set_
