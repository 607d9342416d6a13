"""Likelihood-profile confidence intervals (lme4's ``confint(fit, method = "profile")``).

The parameters are lme4's: per random-effect term its standard deviations and
correlations (a structured term's own: ``sd``, ``rho``, ``range``), σ for models
with a residual, a residual structure's (``Phi``), and the fixed effects.  For one
parameter ψ held at a value, the deviance is minimised over all the others
(BOBYQA, warm-started along the profile), and

    ζ(ψ) = sign(ψ − ψ̂) √(D(ψ) − D(ψ̂));

the interval's ends are where ζ = ±z (Brent's method).  LMMs are profiled on
the ML deviance (lme4 does the same for REML fits), with β profiled out
analytically for the variance parameters and the fit refitted without x_j (and
y − b x_j) for a fixed effect; GLMMs on the Laplace (or AGQ) deviance.  A
standard deviation whose ζ stays below z down to 0 gets the lower end 0, a
correlation whose ζ stays below z to ±1 gets ±1.

A GLMM with a ``ziformula`` or ``dispformula`` has rows for those coefficients too, under
glmmTMB's confint names ``zi~<name>`` and ``disp~<name>`` (the dispersion on glmmTMB's
log scale): each is profiled like a fixed effect, every other parameter of every part
re-optimised.  Random effects in the ``ziformula`` add rows for that part's standard deviations
(and correlations), named as the conditional part's with a ``zi~`` prefix (``zi~sd_(Intercept)|site``,
on logit π's scale): each is profiled on the joint Laplace deviance like the conditional SDs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize

from ..optimize import minimize_bobyqa
from .parameters import natural_parameters, variance_parameters

__all__ = ["profile_confint", "submodel_rows", "zero_part_variance_rows"]

_BIG = 1e100


class _Model:
    """The deviance of a fit as a function of its interval parameters (``natural_parameters``: lme4's
    sd/cor, a structure's own, σ, a residual structure's), one of which can be held fixed."""

    def __init__(self, fit):
        self.fit = fit
        self.terms = fit.structure.terms
        nat = natural_parameters(fit)
        self.var_names = [n for n, *_ in nat]
        self.n_var = len(self.var_names)
        self.lmm = fit.has_residual
        self.lower = [lo for _, _, lo, _ in nat]
        self.upper = [hi for _, _, _, hi in nat]
        # positions in the vector: each term's slice, then σ (LMM), then the residual structure's
        at, self.term_slices = 0, []
        sigma = fit.sigma if self.lmm else 1.0
        for t in self.terms:
            n = len(t.structure.natural(fit._theta[t.theta_slice], sigma, t.names))
            self.term_slices.append(slice(at, at + n))
            at += n
        self.sigma_at = at if self.lmm else None
        self.residual = getattr(fit, "_residual", None)
        self.resid_slice = slice(at + 1, self.n_var) if self.residual is not None else None
        if self.lmm:
            f = fit.frame
            X, y = f.X[:, fit._x_kept], f.y - f.offset
            if self.residual is not None:
                from ..objective.residual_lmm import ResidualLmmObjective

                self.robj = ResidualLmmObjective(fit.structure, X, y, f.weights, False, self.residual)
            else:
                from ..objective.lmm import LmmObjective

                self.obj = LmmObjective(fit.structure, X, y, f.weights, reml=False)
        else:
            # an objective of its own (the fit's is never touched), warm-started at the fit's modes
            self.obj = fit._problem.objective(tol=1e-12)
            self.obj.u = fit._state.u.copy()
            if getattr(fit._state, "joint", None) is not None:
                self.obj.u_joint = np.asarray(fit._state.joint.u, dtype=float).copy()
            # β and a family's own parameters (profiled out as nuisance) with the objective's bounds
            layout = self.obj.layout
            rest = slice(layout.slice("theta").stop, layout.size)
            self.lower += list(layout.lower[rest])
            self.upper += list(layout.upper[rest])
        self.lower, self.upper = np.array(self.lower), np.array(self.upper)
        # the zero part's random effects: their natural parameters stand in for θ_zi in the vector
        self.zi_rows = [] if self.lmm else zero_part_variance_rows(fit)
        self.zi_at = {}
        if self.zi_rows:
            n_theta = fit.structure.n_theta
            for name, _, lo, hi, pos in self.zi_rows:
                k = self.n_var + pos - n_theta
                self.zi_at[name] = k
                self.lower[k], self.upper[k] = lo, hi
            self.zi_slice = layout.slice("theta_zi")
            self.zi_terms = _zero_part_structure(fit).terms
            self.zi_vec = slice(self.n_var + self.zi_slice.start - n_theta, self.n_var + self.zi_slice.stop - n_theta)

    def theta_of(self, v, sigma=1.0):
        """θ from the interval parameters of every term (None where they give no valid covariance)."""
        theta = np.empty(self.fit.structure.n_theta)
        for t, sl in zip(self.terms, self.term_slices):
            phi = t.structure.from_natural(np.asarray(v[sl], dtype=float), sigma)
            if phi is None or not np.all(np.isfinite(phi)):
                return None
            theta[t.theta_slice] = phi
        return theta

    def deviance(self, x):
        """Deviance at the full parameter vector (interval parameters for an LMM; + β for a GLMM)."""
        if np.any(x < self.lower - 1e-12) or np.any(x > self.upper + 1e-12):
            return _BIG
        if self.lmm:
            from .wald import _unprofiled_deviance

            sigma = x[self.sigma_at]
            if sigma <= 0:
                return _BIG
            theta = self.theta_of(x, sigma)
            if theta is None:
                return _BIG
            obj = self.obj if self.residual is None else None
            if self.residual is not None:
                psi = self.residual.from_natural(x[self.resid_slice])
                obj = None if psi is None else self.robj.at(psi)
                if obj is None:
                    return _BIG
            d = _unprofiled_deviance(obj, theta, sigma)
        else:
            theta = self.theta_of(x)
            if theta is None:
                return _BIG
            params = np.concatenate([theta, x[self.n_var :]])
            if self.zi_rows:
                theta_zi = self.zi_theta_of(x[self.zi_vec])
                if theta_zi is None:
                    return _BIG
                params[self.zi_slice] = theta_zi
            d = self.obj.laplace(params) if self.fit.nagq <= 1 else self.obj.agq(params, self.fit.nagq)
        return d if np.isfinite(d) else _BIG

    def zi_theta_of(self, v):
        """θ_zi from the zero part's natural parameters (None where they give no valid covariance)."""
        theta = np.empty(self.zi_slice.stop - self.zi_slice.start)
        at = 0
        for t in self.zi_terms:
            n = t.theta_slice.stop - t.theta_slice.start
            phi = t.structure.from_natural(np.asarray(v[at : at + n], dtype=float), 1.0)
            if phi is None or not np.all(np.isfinite(phi)):
                return None
            theta[t.theta_slice] = phi
            at += n
        return theta

    def start(self):
        v = variance_parameters(self.fit).to_numpy()
        if self.lmm:
            return v
        x = getattr(self.fit, "_x", None)
        if x is not None:  # β, ψ and the sub-models' coefficients as the objective orders them
            out = np.concatenate([v, x[self.fit.structure.n_theta:]])
            for name, value, *_ in self.zi_rows:
                out[self.zi_at[name]] = value
            return out
        return np.concatenate([v, self.fit._beta, self.fit._psi])


def submodel_rows(fit) -> list[tuple]:
    """``(row name, position in the estimate vector fit._x)`` of every sub-model coefficient
    (``zi~minedno``, ``disp~(Intercept)``), in the layout's order; empty without sub-models.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model; one without sub-models, or that keeps no full estimate vector
        (``fit._x`` None), has no rows.

    Returns
    -------
    list of tuple
        ``(name, position)`` per coefficient: ``"<part>~<column>"`` (part ``zi`` or ``disp``) and
        its int index into ``fit._x`` (and ``fit._x_cov``).
    """
    subs = getattr(getattr(fit, "_problem", None), "submodels", ())
    if not subs or getattr(fit, "_x", None) is None:
        return []
    layout = fit._problem.layout
    out = []
    for sub in subs:
        start = layout.slice(f"beta_{sub.part}").start
        out += [(f"{sub.part}~{n}", start + j) for j, n in enumerate(sub.names)]
    return out


def _zero_part_structure(fit):
    """The random-effects structure of the fit's zero-inflation formula (None without one)."""
    for sub in getattr(getattr(fit, "_problem", None), "submodels", ()):
        if sub.part == "zi" and sub.structure is not None:
            return sub.structure
    return None


def zero_part_variance_rows(fit) -> list[tuple]:
    """``(row name, value, lower, upper, position in fit._x)`` of the zero part's random-effect
    parameters (``zi~sd_(Intercept)|site``, ``zi~cor_x.(Intercept)|g``: the conditional rows' names
    with a ``zi~`` prefix), on logit π's scale; empty without random effects in the ziformula.

    Parameters
    ----------
    fit : GlmmFit
        The fitted model; it needs its full estimate vector (``fit._x``), else there are no rows.

    Returns
    -------
    list of tuple
        ``(name, value, lower, upper, position)`` per parameter: the row name, its estimate on the
        natural scale (an SD on logit π's scale, a correlation), that scale's bounds ((0, inf) for an
        SD, (-1, 1) for a correlation) and its int index into ``fit._x``.
    """
    st = _zero_part_structure(fit)
    if st is None or getattr(fit, "_x", None) is None:
        return []
    sl = fit._problem.layout.slice("theta_zi")
    theta = np.asarray(fit._x[sl], dtype=float)
    out = []
    for t in st.terms:
        nat = t.structure.natural(theta[t.theta_slice], 1.0, t.names)
        n = t.theta_slice.stop - t.theta_slice.start
        if len(nat) != n:
            from ..exceptions import NotAvailableError

            raise NotAvailableError(f"profile intervals of the zero part's term {t.label!r} are not available: its "
                                    f"{len(nat)} interval parameters do not map one to one onto its {n} θ entries")
        for j, (name, value, lo, hi) in enumerate(nat):
            out.append((f"zi~{name}|{t.group}", float(value), lo, hi, sl.start + t.theta_slice.start + j))
    return out


def _profile_fixed_lmm(fit, j, b):
    """ML deviance of the LMM with β_j held at b (the other β and σ profiled, θ (and ψ) optimised)."""
    from ..objective.lmm import LmmObjective

    f = fit.frame
    X = f.X[:, fit._x_kept]
    keep = [i for i in range(X.shape[1]) if i != j]
    y = f.y - f.offset - b * X[:, j]
    R = getattr(fit, "_residual", None)
    if R is not None:
        from ..objective.residual_lmm import ResidualLmmObjective

        obj = ResidualLmmObjective(fit.structure, X[:, keep], y, f.weights, False, R)
        x0 = np.concatenate([fit._theta, fit._residual_psi])
        lower = np.concatenate([fit.structure.theta_lower, R.lower()])
        return minimize_bobyqa(obj, x0, lower, initial_step=0.05).fun
    obj = LmmObjective(fit.structure, X[:, keep], y, f.weights, reml=False)
    res = minimize_bobyqa(obj, fit._theta, fit.structure.theta_lower, initial_step=0.05)
    return res.fun


def profile_confint(fit, level: float = 0.95, which=None) -> pd.DataFrame:
    """Profile intervals for every parameter (or those named in ``which``).

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM (a GLMM is profiled on its own deviance, Laplace or AGQ). An LMM is
        profiled on the ML deviance (a REML fit, or one with a residual structure, is refitted by
        ML first).
    level : float, default 0.95
        The confidence level, in (0, 1): the ends are where ζ = ±z, z the normal quantile at
        0.5 + level / 2.
    which : iterable of str, optional
        The parameters to profile, by row name (``"sd_(Intercept)|Subject"``, ``"sigma"``, a fixed
        effect's name, ``"zi~mined"``); names that match no parameter are skipped. Every parameter
        when omitted.

    Returns
    -------
    pandas.DataFrame
        Columns ``lower`` and ``upper``, one row per parameter in the order: variance parameters
        (standard deviations and correlations per term, σ, a residual structure's), the zero part's
        (``zi~...``), the fixed effects, the sub-models' coefficients. Each on its natural scale:
        SDs and σ as standard deviations (a GLMM's on the link scale), fixed effects and ``zi~``
        coefficients on their linear predictor's scale (logit π for ``zi``, log for ``disp``). An
        end whose ζ stays short of ±z up to its parameter's bound is that bound (0 for an SD, ±1 for a
        correlation); NaN where ζ does not reach ±z within the search's 60 widening steps.
    """
    from scipy import stats  # imported here: scipy.stats costs ~0.8 s of glmmkit's import

    z = stats.norm.ppf(0.5 + level / 2.0)
    model = _Model(fit)
    # sub-model coefficients: their place in the profiled vector (after the n_var interval parameters,
    # which stand in for θ) and their standard error for the first step
    sub_at, sub_se = {}, {}
    n_theta = fit.structure.n_theta
    for name, pos in submodel_rows(fit):
        sub_at[name] = model.n_var + pos - n_theta
        sub_se[name] = float(np.sqrt(fit._x_cov[pos, pos])) if fit._x_cov is not None else np.nan
    names = model.var_names + list(model.zi_at) + list(fit.x_names) + list(sub_at)
    if which is not None:
        names = [n for n in names if n in set(which)]
    x_hat = model.start()
    # the minimum itself (an REML fit's ML optimum is not its estimate: re-minimise first)
    if model.lmm:
        from ..objective.lmm import LmmObjective

        f = fit.frame
        obj_ml = LmmObjective(fit.structure, f.X[:, fit._x_kept], f.y - f.offset, f.weights, reml=False)
        if fit.reml or getattr(fit, "_residual", None) is not None:
            # the ML optimum is not the REML estimate: refit by ML first (an ML fit with a residual
            # structure is its own optimum: refit() starts there)
            ml_fit = fit.refit(reml=False)
            d_min = -2.0 * ml_fit.loglik
            x_hat = variance_parameters(ml_fit).to_numpy()
            beta_hat, se_beta = ml_fit._beta, np.sqrt(np.diag(ml_fit._vcov))
        else:
            res0 = minimize_bobyqa(obj_ml, fit._theta, fit.structure.theta_lower, initial_step=0.05)
            d_min = res0.fun
            beta_hat, se_beta = fit._beta, np.sqrt(np.diag(fit._vcov))
    else:
        d_min = model.deviance(x_hat)
        beta_hat, se_beta = fit._beta, np.sqrt(np.diag(fit._vcov))
    rows = {}
    for name in names:
        if name in fit.x_names and model.lmm:
            j = list(fit.x_names).index(name)

            def zeta(b, j=j):
                d = _profile_fixed_lmm(fit, j, b)
                return np.sign(b - beta_hat[j]) * np.sqrt(max(d - d_min, 0.0))

            est, scale, lo_bound, hi_bound = beta_hat[j], se_beta[j], -np.inf, np.inf
        else:
            if name in sub_at:
                k = sub_at[name]
            elif name in model.zi_at:
                k = model.zi_at[name]
            elif name in model.var_names:
                k = model.var_names.index(name)
            else:
                k = model.n_var + list(fit.x_names).index(name)
            others = [i for i in range(x_hat.shape[0]) if i != k]
            # warm starts: the solution at the nearest value profiled so far (the last one can be far out
            # in the tail, near a bound, where the nuisance parameters sit somewhere useless here)
            state = {"vals": [x_hat[k]], "xs": [x_hat[others].copy()]}

            def zeta(val, k=k, others=others, state=state):
                near = int(np.argmin(np.abs(np.asarray(state["vals"]) - val)))
                x0 = x_hat.copy()
                x0[others] = state["xs"][near]

                def inner(y):
                    x = x0.copy()
                    x[others] = y
                    x[k] = val
                    return model.deviance(x)

                lower = np.where(np.isfinite(model.lower[others]), model.lower[others], -np.inf)
                res = minimize_bobyqa(inner, np.clip(x0[others], model.lower[others], model.upper[others]),
                                      lower, initial_step=np.maximum(0.05 * np.abs(x0[others]), 0.02),
                                      ftol_abs=1e-8)
                if res.fun >= 0.5 * _BIG:
                    # no valid model at this value (a correlation at ±1): far outside the interval
                    return np.sign(val - x_hat[k]) * 1e6
                state["vals"].append(val)
                state["xs"].append(np.asarray(res.x, dtype=float).copy())
                return np.sign(val - x_hat[k]) * np.sqrt(max(res.fun - d_min, 0.0))

            est = x_hat[k]
            if name in fit.x_names:
                scale = se_beta[list(fit.x_names).index(name)]
            elif name in sub_at and np.isfinite(sub_se[name]) and sub_se[name] > 0:
                scale = sub_se[name]
            else:
                scale = 0.25 * abs(est) + 0.05
            lo_bound, hi_bound = model.lower[k], model.upper[k]
        rows[name] = (_end(zeta, est, scale, -z, lo_bound), _end(zeta, est, scale, z, hi_bound))
    return pd.DataFrame(rows, index=["lower", "upper"]).T


def _end(zeta, est, scale, target, bound):
    """The value where ζ crosses ``target`` on one side of the estimate (the bound if it never does)."""
    direction = np.sign(target)
    a, fa = est, -target  # ζ(est) = 0
    step = scale
    for _ in range(60):
        b = est + direction * step
        if (direction < 0 and b <= bound) or (direction > 0 and b >= bound):
            b = bound
            fb = zeta(b) - target
            if np.sign(fb) == np.sign(fa):
                return float(bound)
            break
        fb = zeta(b) - target
        if np.sign(fb) != np.sign(fa):
            break
        a, fa = b, fb
        step *= 1.6
    else:
        return float("nan")
    return float(optimize.brentq(lambda x: zeta(x) - target, min(a, b), max(a, b), xtol=1e-6 * max(scale, 1e-8)))
