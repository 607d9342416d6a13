"""Wald tables for the fixed effects: z for GLMMs, t with Satterthwaite's degrees of freedom for LMMs
(or Kenward-Roger's, ``inference/kenward_roger.py``); and for a GLMM family's own parameters, on the
log scale.

Satterthwaite (as lmerTest): with φ = (θ, σ) the variance parameters, C(φ) the
covariance of β̂ and A = 2 H⁻¹ the asymptotic covariance of φ̂ (H the Hessian of
the unprofiled deviance, or REML criterion, in φ), the degrees of freedom of the
contrast L'β are 2 (L'CL)² / (g'Ag) with g = ∂(L'C(φ)L)/∂φ.  The derivatives are
central differences of the engine's own factorisation (each evaluation is one
blocked Cholesky, never a pass over the rows).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["coef_table", "family_params_table", "satterthwaite_df"]


def _unprofiled_deviance(obj, theta, sigma):
    """-2 log L (ML) or the REML criterion at (θ, σ) with β (and u) at their optimum given θ."""
    fac = obj.factor(theta)
    if not fac.ok:
        return np.inf
    logdet_l, logdet_x, r2 = obj.parts(fac)
    s2 = sigma * sigma
    if obj.reml:
        return logdet_l + logdet_x + (obj.n - obj.p) * math.log(2.0 * math.pi * s2) + r2 / s2 - obj.log_w_sum
    return logdet_l + obj.n * math.log(2.0 * math.pi * s2) + r2 / s2 - obj.log_w_sum


def _beta_cov(obj, theta, sigma):
    return sigma * sigma * obj.factor(theta).fixed_effects_covariance(obj.system.mz, obj.p)


def _steps(phi):
    # second differences of a deviance of size ~1e3 lose ~1e-12 relative accuracy to rounding, so
    # the best step is ~(1e-12)^(1/4) = 1e-3; 1e-4 gave df 18.12 instead of lmerTest's 17.66 on the
    # swine model (pen variance near zero), 1e-3 gives 17.666
    return 1e-3 * np.maximum(np.abs(phi), 0.1)


def satterthwaite_df(fit, L: np.ndarray | None = None) -> np.ndarray:
    """Satterthwaite degrees of freedom of each fixed effect (or of each row of ``L``) of an LMM fit.

    The variance parameters are (θ, σ) and, with a residual structure, its ψ: the Hessian of the
    deviance and the gradient of Var(β̂) are taken in all of them by central differences (each ψ a
    whitened objective); df = 2 (l'Cl)² / (g'Ag) with A = 2 H⁻¹.

    Parameters
    ----------
    fit : LmmFit
        A fitted linear mixed model.
    L : numpy.ndarray, shape (m, p) or (p,), optional
        Contrast rows of the fixed effects; default the identity (one df per coefficient).

    Returns
    -------
    numpy.ndarray, shape (m,)
        Denominator degrees of freedom per row (``inf`` where the variance does not depend on the
        variance parameters).
    """
    nt = fit._theta.shape[0]
    R = getattr(fit, "_residual", None)
    if R is None:
        phi = np.append(np.asarray(fit._theta, dtype=float), fit.sigma)
        base = fit._objective

        def obj_at(psi):
            return base
    else:
        phi = np.concatenate([fit._theta, [fit.sigma], fit._residual_psi])
        robj = fit._problem.objective()

        def obj_at(psi):
            return robj.at(psi)

    k = phi.shape[0]
    h = _steps(phi)

    def dev(x):
        o = obj_at(x[nt + 1:])
        return np.inf if o is None else _unprofiled_deviance(o, x[:nt], x[nt])

    def beta_cov(x):
        o = obj_at(x[nt + 1:])
        return _beta_cov(o, x[:nt], x[nt])

    from ..fitting.driver import central_hessian

    H = central_hessian(dev, phi, h)
    A = 2.0 * np.linalg.pinv(H)
    p = fit._beta.shape[0]
    L = np.eye(p) if L is None else np.atleast_2d(np.asarray(L, dtype=float))
    grads = np.empty((L.shape[0], k))
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = h[i]
        up, down = beta_cov(phi + ei), beta_cov(phi - ei)
        grads[:, i] = np.einsum("ij,jk,ik->i", L, (up - down) / (2.0 * h[i]), L)
    C = beta_cov(phi)
    var = np.einsum("ij,jk,ik->i", L, C, L)
    denom = np.einsum("ij,jk,ik->i", grads, A, grads)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2.0 * var * var / denom, np.inf)


def coef_table(fit, ddf=None, exponentiate: bool = False, level: float = 0.95) -> pd.DataFrame:
    """Fixed effects with standard errors, tests and Wald intervals; see :meth:`MixedModelFit.coef_table`.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.
    ddf : {None, "satterthwaite", "kenward-roger", "z"}, optional
        Denominator degrees of freedom: Satterthwaite for LMMs, z for GLMMs by default;
        Kenward-Roger (REML LMMs) also uses the adjusted covariance's standard errors.
    exponentiate : bool, default False
        Report exp(β), its interval exp(β ± q·SE) and the delta-method SE exp(β)·SE.
    level : float, default 0.95
        Confidence level, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        Indexed by coefficient name: estimate, std_error, df, statistic, p_value, ci_lower, ci_upper.

    Raises
    ------
    ArgumentError
        A level outside (0, 1), an unknown ddf, or Satterthwaite asked of a GLMM.
    """
    from scipy import stats  # imported here: scipy.stats costs ~0.8 s of glmmkit's import

    from ..exceptions import ArgumentError

    if not 0.0 < level < 1.0:
        raise ArgumentError(f"level must be between 0 and 1, got {level!r}")
    est = fit.fixef.to_numpy()
    se = np.sqrt(np.diag(fit._vcov))
    lmm = fit.kind == "lmm"
    if ddf is None:
        ddf = "satterthwaite" if lmm else "z"
    ddf = str(ddf).lower()
    if ddf == "satterthwaite":
        if not lmm:
            raise ArgumentError("ddf='satterthwaite' applies to linear mixed models; GLMM tests use z (ddf=None)")
        df = satterthwaite_df(fit)
    elif ddf in ("kenward-roger", "kenward_roger", "kr"):
        from .kenward_roger import kenward_roger

        kr = kenward_roger(fit)  # raises for GLMMs and ML fits, saying why
        se = np.sqrt(np.diag(kr.phi_adj))  # pbkrtest / lmerTest: the adjusted covariance Φ_A
        df = kr.ddf_rows(np.eye(est.shape[0]))
    elif ddf in ("z", "none", "asymptotic"):
        df = np.full(est.shape, np.inf)
    else:
        raise ArgumentError(f"ddf must be None, 'satterthwaite', 'kenward-roger' or 'z', got {ddf!r}")
    stat = est / se
    finite = np.isfinite(df)
    p = np.where(finite, 2.0 * stats.t.sf(np.abs(stat), np.where(finite, df, 1.0)), 2.0 * stats.norm.sf(np.abs(stat)))
    q = np.where(finite, stats.t.ppf(0.5 + level / 2.0, np.where(finite, df, 1.0)), stats.norm.ppf(0.5 + level / 2.0))
    lo, hi = est - q * se, est + q * se
    if exponentiate:
        est, lo, hi, se = np.exp(est), np.exp(lo), np.exp(hi), np.exp(est) * se  # SE by the delta method
    return pd.DataFrame({"estimate": est, "std_error": se, "df": df, "statistic": stat, "p_value": p,
                         "ci_lower": lo, "ci_upper": hi}, index=fit.fixef.index)


def family_params_table(fit, level: float = 0.95) -> pd.DataFrame:
    """Estimated family parameters with Wald intervals on the log scale; see :meth:`GlmmFit.family_params_table`.

    Parameters
    ----------
    fit : GlmmFit
        A fitted GLMM (its estimated log family parameters ``_psi`` and their covariance).
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter name: estimate (exp(log ψ)), log_estimate, log_se and the two interval
        bounds exp(log ψ ± z·SE), named like ``"2.5 %"`` and ``"97.5 %"``.
    """
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2.0)
    se = np.sqrt(np.maximum(np.diag(fit._psi_cov), 0.0)) if fit._psi.shape[0] else np.zeros(0)
    lo, hi = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
    names = tuple(fit._psi_names)
    fam = fit.family

    def back(x):  # from the engine's scale (log; the tweedie power's is logit(p - 1)) by the family's own map
        return np.array([fam.with_psi({k: v}).values[k] for k, v in zip(names, x)], dtype=float)

    return pd.DataFrame({"estimate": back(fit._psi), "log_estimate": fit._psi, "log_se": se,
                         lo: back(fit._psi - z * se), hi: back(fit._psi + z * se)},
                        index=pd.Index(fit._psi_names, name="parameter"))
