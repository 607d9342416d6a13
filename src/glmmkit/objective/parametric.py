"""The exact Laplace objective for families with their own parameters (glmmTMB's approach).

Parameters φ = (θ, β, ψ), ψ the logs of the family's free parameters.  At φ the
conditional mode û maximises Σ ℓ(y_i | η_i; ψ) - ||u||²/2 by Newton's method on
the observed information (the Hessian of the penalised deviance itself, not
Fisher's expected one: with a non-canonical link such as NB2-log they differ,
and glmmTMB's Laplace uses the observed), then

    D(φ) = -2 Σ ℓ(η̂; ψ) + ||û||² + log |Λ'Z'WZΛ + I|,   W = -∂²ℓ/∂η² at û.

W may be negative in some rows (Student-t outliers, beta), so the blocked
system is built with signed weights; away from the mode a Newton matrix that is
not positive definite is replaced by one with W clipped from below (a descent
direction, step halving does the rest).  The gradient is the canonical-link one
of ``GlmmObjective`` with the observed W, plus, per family parameter ψ,

    dD/dψ = Σ_i [-2 ∂ℓ_i/∂ψ + c_i ∂W_i/∂ψ + e_i ∂s_i/∂ψ]

(c the diagonal of ZΛM⁻¹Λ'Z', e = ZΛM⁻¹Λ'Z'v as there).  A parameter modelled by a
sub-model (``ziformula``, ``dispformula``: ψ_i = x_i'β_sub / a per row) has the same row terms,
summed through its columns: dD/dβ_sub = X_sub'[-2 ∂ℓ/∂ψ + c ∂W/∂ψ + e ∂s/∂ψ] / a.
"""

from __future__ import annotations

import numpy as np

from .glmm import GlmmObjective, PirlsState, dense_parts_fit
from .layout import Parts
from .predictor import PSI_BOUND

__all__ = ["ParametricLaplace", "PSI_BOUND", "newton_mode"]


def newton_mode(u, dev, state, direction, halve, tol: float, maxit: int):
    """Newton's method with step halving on a penalised deviance: the loop the one-part mode
    (``ParametricLaplace.pirls``) and the joint mode of two parts (``objective/joint.py``) share.

    Parameters
    ----------
    u : ndarray
        Start of the spherical random effects.
    dev : float
        Penalised deviance at ``u``.
    state : object
        What ``direction`` needs at ``u`` besides u itself (the linear predictors, the bound family).
    direction : callable
        (u, state) -> (grad_u, du): the gradient in u of the penalised log-likelihood and the Newton step,
        or None when no positive-definite Newton system exists there.
    halve : callable
        (u, du, dev) -> (step, u, dev, state) at the first step 1, 1/2, 1/4, ... that does not raise the
        deviance, or None when none does.
    tol : float
        Convergence: the Newton decrement grad_u'du below tol (|dev| + 0.1) with a full step.
    maxit : int
        Most iterations.

    Returns
    -------
    tuple
        (u, dev, state, converged, iterations).
    """
    converged, it = False, 0
    for it in range(1, maxit + 1):
        nd = direction(u, state)
        if nd is None:
            break
        grad_u, du = nd
        decrement = float(grad_u @ du)
        trial = halve(u, du, dev)
        if trial is None:
            break
        step, u, dev, state = trial
        if decrement < tol * (abs(dev) + 0.1) and step == 1.0:
            converged = True
            break
    return u, dev, state, converged, it


class ParametricLaplace(GlmmObjective):
    """Laplace deviance and exact gradient in (θ, β, ψ) for a ``ParametricFamily``.

    Parameters
    ----------
    structure : ModelStructure
        The random-effects terms and θ parameterisation.
    X, y, wt, offset : ndarray
        As in :class:`~glmmkit.objective.glmm.GlmmObjective`.
    family : ParametricFamily
        The family; its free parameters not modelled by a sub-model form the ψ block (log scale).
    **kw
        ``beta_start``, ``tol``, ``maxit``, ``beta_names``, ``submodels``: as in
        :class:`~glmmkit.objective.glmm.GlmmObjective`.
    """

    _sparse_engine_ok = False  # Newton on the mode uses signed (observed-information) weights

    def __init__(self, structure, X, y, wt, offset, family, **kw):
        super().__init__(structure, X, y, wt, offset, family, **kw)
        self._zeros = np.zeros(self.n)
        modelled = {sub.param for sub in self.submodels}
        #: the family's free parameters estimated as one value each (the "psi" block)
        self.scalar_names = tuple(k for k in family.free_names if k not in modelled)

    def row_psi(self, prm) -> dict:
        """The family's free parameters on the engine's scale by name at ``prm`` (the split parameters,
        or the ψ block alone): a float each, an array over rows for those a sub-model models.

        Parameters
        ----------
        prm : Parts or array-like
            The split parameter vector, or the ψ block alone.

        Returns
        -------
        dict
            Parameter name -> value on the engine's (log) scale, clipped to ±``PSI_BOUND``.
        """
        if not isinstance(prm, Parts):
            psi = np.atleast_1d(np.asarray(prm, dtype=float))
            return {k: float(np.clip(psi[j], -PSI_BOUND, PSI_BOUND)) for j, k in enumerate(self.scalar_names)}
        psi = getattr(prm, "psi", np.zeros(0))
        out = {k: float(np.clip(psi[j], -PSI_BOUND, PSI_BOUND)) for j, k in enumerate(self.scalar_names)}
        for sub in self.submodels:
            out[sub.param] = sub.engine_param(prm[f"beta_{sub.part}"])
        return out

    def family_at(self, prm):
        """The family bound to the parameters ``prm`` (the split parameter vector, or the ψ block of a
        model without sub-models): a new object, the objective's own family is never changed.

        Parameters
        ----------
        prm : Parts or array-like
            The split parameter vector, or the ψ block alone.

        Returns
        -------
        ParametricFamily
        """
        return self.family.with_psi(self.row_psi(prm))

    def final_state(self, prm):
        """The PIRLS state at the estimates ``prm`` (the split parameters), the family bound there.

        Parameters
        ----------
        prm : Parts
            The split parameter vector.

        Returns
        -------
        PirlsState
        """
        return self.pirls(prm.theta, prm.beta, family=self.family_at(prm))

    # ----- the mode -----
    def _newton_system(self, W):
        return self._base_system(self._X0).reweighted(self._X0, self._zeros, weights=W)

    def pirls(self, theta, beta, u0=None, family=None, start=None, maxit=None) -> PirlsState:
        """Newton's method for û at (θ, β) and the parameters ``family`` is bound to (``family_at(ψ)``).

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters.
        beta : ndarray, shape (p,)
            Fixed effects (None is refused: nAGQ = 0 is not offered for these families).
        u0 : ndarray, shape (q,), optional
            Start of u; the last mode found by default.
        family : ParametricFamily, optional
            The family bound to the parameters; the objective's own by default.
        start : tuple of (ndarray, float), optional
            (η, penalised deviance) at ``u0`` and ``beta`` when the caller has them.
        maxit : int, optional
            Most Newton iterations (``self.maxit`` by default; 0 takes ``u0`` as the mode).

        Returns
        -------
        PirlsState
            With the row derivatives (``derivs``) and the family it was found with.
        """
        fam = self.family if family is None else family
        if beta is None:
            raise NotImplementedError("nAGQ = 0 is not offered for families with their own parameters")
        theta = np.asarray(theta, dtype=float)
        templates = self.structure.templates(theta)
        mz = self._base_system(self._X0).mz  # the dense factor's random-effect rows (0 on a nested chain)
        u = (self.u if u0 is None else u0).copy()
        fixed = self.X @ beta + self.offset
        if start is not None:  # (η, deviance) at u0 from _predicted_mode
            eta, dev = start
        else:
            eta = fixed + self.Z @ self.b_of(templates, u)
            dev, _ = self._pdev(eta, u, fam)
        if not np.isfinite(dev):
            u = np.zeros_like(u)
            eta = fixed.copy()
            dev, _ = self._pdev(eta, u, fam)

        def direction(u, eta):
            s, W = fam.newton_weights(eta, self.y, self.wt)
            system = self._newton_system(W)
            fac = system.factor(templates)
            if not fac.random_effects_ok(mz):  # away from the mode: W floored, a descent direction
                floor = 1e-6 * max(float(np.max(np.abs(W))), 1e-12)
                system = self._newton_system(np.maximum(W, floor))
                fac = system.factor(templates)
                if not fac.random_effects_ok(mz):
                    return None
            grad_u = self._lambda_t(templates, self._Zt @ s) - u
            return grad_u, system.solve_rhs(templates, fac, grad_u)

        def halve(u, du, dev):
            trial = self._halved_step(templates, u, du, dev, fixed, beta, family=fam)
            return None if trial is None else (trial[0], trial[1], trial[5], trial[4])

        u, dev, eta, converged, it = newton_mode(u, dev, eta, direction, halve, self.tol,
                                                 self.maxit if maxit is None else maxit)
        d = fam.eta_derivatives(eta, self.y, self.wt)
        system = self._newton_system(d.W)
        fac = system.factor(templates)
        ok = fac.random_effects_ok(mz)
        logdet = fac.logdet_lead + 2.0 * float(np.sum(np.log(np.diagonal(fac.L)[:mz]))) if ok else np.inf
        mu = fam.link.inverse(eta)
        state = PirlsState(u, np.asarray(beta, dtype=float), eta, mu, dev, logdet, system, fac, converged, it)
        state.derivs = d
        state.family = fam
        return state

    # ----- objectives -----
    def laplace(self, params) -> float:
        """Laplace deviance at (θ, β, ψ[, sub-models' β]), warm-started from the last mode.

        Parameters
        ----------
        params : ndarray
            The parameter vector in ``layout`` order.

        Returns
        -------
        float
            −2 log L (Laplace); inf where the mode could not be found.
        """
        self.n_evals += 1
        prm = self.layout.split(params)
        theta, beta = prm.theta, prm.beta
        state = self.pirls(theta, beta, family=self.family_at(prm))
        if np.isfinite(state.laplace):
            self.u = state.u
        return state.laplace

    def agq(self, params, nagq: int) -> float:
        """Adaptive Gauss-Hermite deviance at (θ, β, ψ) (one grouping factor).

        Parameters
        ----------
        params : ndarray
            The parameter vector in ``layout`` order.
        nagq : int
            Quadrature nodes per random-effect dimension.

        Returns
        -------
        float
            −2 log L; inf where the mode could not be found.
        """
        self.n_evals += 1
        prm = self.layout.split(params)
        theta, beta = prm.theta, prm.beta
        state = self.pirls(theta, beta, family=self.family_at(prm))
        if not np.isfinite(state.laplace):
            return np.inf
        self.u = state.u
        return self.agq_deviance(theta, beta, state, nagq)

    def laplace_and_gradient(self, params, newton: bool = True):
        """Laplace deviance and its exact gradient in every parameter of the layout.

        Parameters
        ----------
        params : ndarray
            The parameter vector in ``layout`` order.
        newton : bool, default True
            False takes the previous evaluation's mode moved to first order (``_predicted_mode``) as
            the mode, without Newton steps: for points within a difference step of that evaluation
            (the Hessian's, ``gradient_near_mode``), where its error is second order in the step.

        Returns
        -------
        value : float
            −2 log L (Laplace); inf where the mode could not be found.
        grad : ndarray
            Its gradient in ``params`` (NaN with an infinite value).
        """
        self.n_evals += 1
        params = np.asarray(params, dtype=float)
        prm = self.layout.split(params)
        theta, beta = prm.theta, prm.beta
        psi = self.row_psi(prm)
        fam = self.family.with_psi(psi)
        u0 = start = None
        last = getattr(self, "_mode_at", None)
        if last is not None:  # PIRLS's start to first order, ψ's change included (GlmmObjective._predicted_mode)
            d_prev = last[2].derivs
            shift = sum((s_p * (psi[k] - last[3][k]) for k, (_, s_p, _) in zip(fam.free_names, d_prev.psi)),
                        np.zeros(self.n))
            u0, start = self._predicted_mode(theta, beta, fam, shift, compare=newton)
        maxit = 0 if (not newton and u0 is not None) else None
        state = self.pirls(theta, beta, u0=u0, family=fam, start=start, maxit=maxit)
        if not np.isfinite(state.laplace):
            return np.inf, np.full(params.shape[0], np.nan)
        self.u = state.u
        grad = self.gradient_at(state, theta)
        self._mode_at = (theta.copy(), beta.copy(), state, psi)
        return state.laplace, grad

    def gradient_near_mode(self, params):
        """``laplace_and_gradient`` without Newton steps at a point within a difference step of the
        last evaluation (the mode moved there to first order; Newton's steps where that prediction
        does not lower the penalised deviance).

        Parameters
        ----------
        params : ndarray
            The parameter vector in ``layout`` order.

        Returns
        -------
        value : float
            −2 log L (Laplace) at the predicted mode.
        grad : ndarray
            Its gradient in ``params``.
        """
        return self.laplace_and_gradient(params, newton=False)

    def gradient_at(self, state, theta):
        """The exact gradient of the Laplace deviance at a converged Newton state.

        Parameters
        ----------
        state : PirlsState
            The mode, with its row derivatives (``derivs``) and family.
        theta : ndarray, shape (n_theta,)
            The covariance parameters of ``state``.

        Returns
        -------
        ndarray
            dD/dθ, dD/dβ, dD/dψ, then each sub-model's dD/dβ_sub (``layout`` order).
        """
        d = state.derivs
        state._score_weights = (d.s, d.W)  # for the next evaluation's start (_predicted_mode)
        grad, c_diag, e = self._gradient_core(state, theta, d.s, d.W, d.dW)
        fam = state.family if state.family is not None else self.family
        rows = {k: -2.0 * lp + c_diag * Wp + e * sp for k, (lp, sp, Wp) in zip(fam.free_names, d.psi)}
        extra = [np.array([float(np.sum(rows[k])) for k in self.scalar_names])]
        extra += [sub.X.T @ rows[sub.param] / sub.param_scale for sub in self.submodels]
        return np.concatenate([grad, *extra])

    def gradient_applies(self, max_cross: int = 5_000_000) -> bool:
        """True when the exact gradient is affordable (any link: the observed information is used).

        Parameters
        ----------
        max_cross : int, default 5_000_000
            Largest dense cross part of M⁻¹ allowed (the non-lead blocks are also limited to 5000
            effects).

        Returns
        -------
        bool
        """
        return dense_parts_fit(self.structure.blocks, max_cross)
