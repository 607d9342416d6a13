"""Fitting a GLMM once the model is built: a problem, an ordered table of strategies, one packaging step.

``GlmmProblem`` is everything a fit needs after the formula and data have been
turned into a frame and a structure (and what ``fit.refit`` reuses).  ``fit_glmm``
tries the strategies of ``STRATEGIES`` in order; the first that applies and
converges wins, and every attempt is in the run log.  Each strategy returns an
:class:`Estimate`; ``package`` turns it into a ``GlmmFit`` the same way for all.

Strategies (first that applies):

* ``ParametricLaplace``: families with their own parameters (NB, Gamma, beta, ...):
  L-BFGS-B on the exact gradient in (θ, β, log ψ), BOBYQA if it fails; AGQ refines.
* ``OneFactorLaplace``: one grouping factor, canonical link, Laplace: per-level
  Newton in numba kernels with the exact gradient.
* ``GradientLaplace``: any other canonical-link Laplace fit: L-BFGS-B on the exact
  gradient of the PIRLS Laplace deviance.
* ``StagedBobyqa``: everything else (non-canonical links, AGQ, nAGQ = 0): θ with β
  inside PIRLS (nAGQ = 0), then (θ, β) by BOBYQA on the Laplace or AGQ deviance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..families import ParametricFamily
from ..objective import single as single_term
from ..objective import single_parametric as one_factor_parametric
from ..objective.glmm import GlmmObjective
from ..objective.parametric import ParametricLaplace
from ..objective.predictor import LinearPredictor, model_layout
from ..optimize import minimize_bobyqa, minimize_with_restarts
from . import driver
from .start import fixed_effects_start, glm_irls, theta_start

__all__ = ["GlmmProblem", "Estimate", "fit_glmm", "package", "STRATEGIES", "vcov_from_state"]


@dataclass(frozen=True)
class GlmmProblem:
    """A GLMM ready to be fitted: frame, structure, the fixed-effect columns the engine sees, the family.

    Attributes
    ----------
    frame : ModelFrame
        The complete-case model frame (response, offset, random terms).
    structure : ModelStructure
        The conditional mean's random-effects terms and θ parameterisation.
    X : ndarray, shape (n, p)
        The kept fixed-effect columns (possibly centred/scaled for the optimiser).
    wt : ndarray, shape (n,)
        Prior weights (trials for the binomial).
    family : Family
        The family as asked for (never bound to estimates: the fit holds its own).
    nagq : int
        0 (nAGQ = 0), 1 (Laplace) or k > 1 (AGQ).
    kept, dropped : list
        Columns of ``frame.X`` kept, names of those dropped as aliased.
    data_name : str or None
        Name of the data shown in the summary.
    messages : tuple of str
        What the front end had to say (dropped rows, dropped columns).
    submodels : tuple of SubModel
        The zero-inflation and dispersion formulas' models (``glmmkit.submodel``), each driving one
        family parameter per row.
    """

    frame: object
    structure: object
    X: np.ndarray
    wt: np.ndarray
    family: object
    nagq: int
    kept: list
    dropped: list
    data_name: str | None = None
    messages: tuple = ()
    submodels: tuple = ()

    @property
    def y(self):
        """The response on the engine's scale (binomial: proportions, trials in ``wt``).

        Returns
        -------
        ndarray, shape (n,)
        """
        return self.frame.y

    @property
    def offset(self):
        """The offset on the linear-predictor scale.

        Returns
        -------
        ndarray, shape (n,)
        """
        return self.frame.offset

    @property
    def nobs(self) -> int:
        """Number of rows fitted.

        Returns
        -------
        int
        """
        return self.frame.nobs

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters of the conditional mean's random effects.

        Returns
        -------
        int
        """
        return self.structure.n_theta

    @property
    def p(self) -> int:
        """Number of fixed-effect columns the engine sees (the kept ones).

        Returns
        -------
        int
        """
        return self.X.shape[1]

    @property
    def parametric(self) -> bool:
        """Whether the family has parameters of its own to estimate (NB, Gamma, beta, ...).

        Returns
        -------
        bool
        """
        return isinstance(self.family, ParametricFamily)

    @property
    def beta_names(self) -> tuple:
        """Names of the kept fixed-effect columns.

        Returns
        -------
        tuple of str
        """
        return tuple(self.frame.x_names[j] for j in self.kept)

    @property
    def predictor(self) -> LinearPredictor:
        """The conditional mean's linear predictor.

        Returns
        -------
        LinearPredictor
            Of ``X``, ``offset`` and ``structure``.
        """
        return LinearPredictor(self.X, self.offset, self.structure, self.beta_names)

    @property
    def sub_predictors(self) -> tuple:
        """The sub-models' linear predictors (``LinearPredictor`` with ``param`` set).

        Returns
        -------
        tuple of LinearPredictor
            One per sub-model, in ``submodels`` order; empty without any.
        """
        return tuple(sub.predictor for sub in self.submodels)

    @property
    def layout(self):
        """The parameters a fit estimates: (θ, β[, ψ][, β_zi][, β_disp]) as a ``ParameterLayout``.

        Returns
        -------
        ParameterLayout
        """
        return model_layout([self.predictor], self.family, self.sub_predictors)

    def objective(self, tol: float = 1e-10, beta_start=None):
        """A new objective for this problem (ParametricLaplace for a family with parameters).

        Parameters
        ----------
        tol : float, default 1e-10
            Convergence tolerance of the inner PIRLS iterations.
        beta_start : ndarray, shape (p,), optional
            β that PIRLS starts from when β is not given (nAGQ = 0); the objective's own start
            otherwise.

        Returns
        -------
        GlmmObjective, ParametricLaplace or JointLaplace
            JointLaplace when a sub-model has random effects, ParametricLaplace for a family with
            parameters, GlmmObjective otherwise.
        """
        if any(sub.structure is not None for sub in self.submodels):
            from ..objective.joint import JointLaplace

            return JointLaplace(self.structure, self.X, self.y, self.wt, self.offset, self.family,
                                beta_start=beta_start, tol=tol, beta_names=self.beta_names,
                                submodels=self.sub_predictors)
        if self.parametric:
            return ParametricLaplace(self.structure, self.X, self.y, self.wt, self.offset, self.family,
                                     beta_start=beta_start, tol=tol, beta_names=self.beta_names,
                                     submodels=self.sub_predictors)
        return GlmmObjective(self.structure, self.X, self.y, self.wt, self.offset, self.family, beta_start=beta_start,
                             tol=tol, beta_names=self.beta_names)

    def fit(self, pql: bool = False, beta0=None):
        """Fit this problem: ``fit_glmm`` (or ``fit_pql``); returns a new fit.

        Parameters
        ----------
        pql : bool, default False
            Fit by penalised quasi-likelihood instead.
        beta0 : ndarray, shape (p,), optional
            Starting β (the fixed-effects GLM's when omitted); not used by PQL.

        Returns
        -------
        GlmmFit or PqlFit
        """
        if pql:
            from .pql import fit_pql

            return fit_pql(self)
        return fit_glmm(self, beta0)

    def with_response(self, y) -> "GlmmProblem":
        """The same problem with another response (complete rows, the engine's scale).

        Parameters
        ----------
        y : array-like, shape (n,)
            The new response for the fitted rows (binomial: proportions, trials unchanged).

        Returns
        -------
        GlmmProblem
            A new problem; this one is not changed, and the front end's messages are dropped.
        """
        frame = dataclasses.replace(self.frame, y=np.asarray(y, dtype=float), messages=[])
        return dataclasses.replace(self, frame=frame, messages=())

    def with_columns(self, X) -> "GlmmProblem":
        """The same problem with other fixed-effect columns.

        Parameters
        ----------
        X : array-like, shape (n, p')
            The new fixed-effects design on the fitted rows.

        Returns
        -------
        GlmmProblem
            A new problem; this one is not changed.
        """
        return dataclasses.replace(self, X=np.asarray(X, dtype=float))


@dataclass
class Estimate:
    """What a strategy found: the estimates, the Hessian of the deviance there, and how it went.

    Attributes
    ----------
    x : ndarray
        (θ, β[, ψ]) at the optimum.
    state : PirlsState
        The conditional mode at ``x`` (with the family bound to ψ for a parametric family).
    objective : GlmmObjective
        The objective at the estimates (the one the fit keeps for later inference).
    deviance : float
        −2 log L (Laplace or AGQ).
    H, grad : ndarray or None
        Hessian and gradient of the deviance in ``x`` (None for nAGQ = 0).
    optimizer, message : str
        The optimiser that ended the fit and its message.
    n_evals : int
        Objective evaluations, all stages together.
    converged : bool
        Whether the optimiser (and the gradient test) reported convergence.
    pirls_failures : int
        How many PIRLS runs ended without reaching the mode.
    log : driver.RunLog
        Every optimiser run of the fit, in order.
    """

    x: np.ndarray
    state: object
    objective: object
    deviance: float
    H: np.ndarray | None
    grad: np.ndarray | None
    optimizer: str
    n_evals: int
    converged: bool
    message: str
    pirls_failures: int = 0
    log: driver.RunLog = field(default_factory=driver.RunLog)


def _warm(obj):
    """(get, set) of an objective's warm start: the last mode and the last evaluation's state that
    PIRLS's first-order start extrapolates from (both restored, so every trial starts alike)."""

    def get():
        joint = getattr(obj, "u_joint", None)
        mode_at = obj._mode_at
        # whether the last mode is that evaluation's own: then PIRLS may start from it to first order
        # with its factor (``_predicted_mode``, the chord steps), which it checks by identity
        own = mode_at is not None and getattr(mode_at[2], "u", None) is obj.u
        return obj.u.copy(), mode_at, None if joint is None else joint.copy(), own

    def set_(saved):
        obj.u, obj._mode_at = (saved[1][2].u if saved[3] else saved[0].copy()), saved[1]
        if saved[2] is not None:  # both parts' modes (a zero part with random effects)
            obj.u_joint = saved[2].copy()

    return get, set_


class _Context:
    """What strategies of one fit share: the problem, the GLM start, the run log, the objective."""

    def __init__(self, problem: GlmmProblem, beta0: np.ndarray):
        self.problem = problem
        self.beta0 = beta0
        self.log = driver.RunLog()
        self._obj = None

    @property
    def obj(self):
        """The PIRLS objective (built on first use, shared by the non-parametric strategies)."""
        if self._obj is None:
            self._obj = self.problem.objective(beta_start=self.beta0)
        return self._obj


# ----- strategies ---------------------------------------------------------------------------------------


class OneFactorLaplace:
    """One grouping factor (up to six effects), canonical link, Laplace: per-level Newton in a kernel."""

    name = "L-BFGS-B (exact Laplace gradient, one grouping factor)"

    @staticmethod
    def applies(problem: GlmmProblem) -> bool:
        """Whether this strategy fits ``problem``.

        Parameters
        ----------
        problem : GlmmProblem
            The problem to fit.

        Returns
        -------
        bool
            True for a family without its own parameters, one grouping factor, a canonical link and the
        Laplace approximation (what the per-level kernel handles).
        """
        return not problem.parametric and single_term.applies(problem.structure, problem.family, problem.nagq)

    def run(self, ctx: _Context) -> Estimate | None:
        """Estimate the problem with this strategy.

        L-BFGS-B on the kernel's exact Laplace gradient from the GLM's β, then the Hessian by differences
        of that gradient.

        Parameters
        ----------
        ctx : _Context
            The fit's shared context: the problem, the GLM's β (start), the run log and the
            PIRLS objective.

        Returns
        -------
        Estimate or None
            None when the kernel's PIRLS failed or the gradient test did not pass (the run is in the
            log and the next strategy is tried).
        """
        pb = ctx.problem
        s = pb.structure
        fast = single_term.SingleTermLaplace(s, pb.X, pb.y, pb.wt, pb.offset, pb.family)
        layout = pb.layout
        warm = (lambda: fast.u.copy()), (lambda u: fast.u.__setitem__(Ellipsis, u))
        theta0 = theta_start(s, lambda t: fast.value_and_grad(np.concatenate([t, ctx.beta0]))[0])
        res = driver.lbfgs(fast.value_and_grad, layout.join(theta=theta0, beta=ctx.beta0), layout, pb.nobs, warm)
        if fast.failures or not driver.gradient_converged(res.fun, res.success, res.jac, res.x, layout, pb.nobs):
            ctx.log.add(self.name, "initial", "first run", -0.5 * float(res.fun), False, fast.n_evals, False,
                        res.message)
            return None
        prm = layout.split(res.x)
        H, grad = driver.hessian_from_gradient(fast.value_and_grad, res.x, warm, g0=res.jac, layout=layout)
        u, n_evals = fast.u.ravel().copy(), fast.n_evals
        # the kernel's row-sorted copies (X, offset, counts, buffers: ~110 MB at 1e6 rows) go before
        # the PIRLS objective and state are built: otherwise both sets peak together
        del fast, warm
        state = ctx.obj.state_at(prm.theta, prm.beta, u)
        return Estimate(res.x, state, ctx.obj, float(res.fun), H, grad, self.name, n_evals, True,
                        str(res.message))


class GradientLaplace:
    """Canonical link, Laplace: Newton's direction on an approximate Hessian with the exact gradient of
    the PIRLS Laplace deviance, L-BFGS-B where that stalls or ends on a bound."""

    name = "Newton (approximate Laplace Hessian, exact gradient)"
    fallback_name = "L-BFGS-B (exact Laplace gradient)"

    @staticmethod
    def applies(problem: GlmmProblem) -> bool:
        """Whether this strategy fits ``problem``.

        Parameters
        ----------
        problem : GlmmProblem
            The problem to fit.

        Returns
        -------
        bool
            True for a family without its own parameters fitted by the Laplace approximation.
        """
        return not problem.parametric and problem.nagq == 1

    def run(self, ctx: _Context) -> Estimate | None:
        """Estimate the problem with this strategy.

        Newton steps on ``GlmmObjective.curvature`` (an approximate Hessian recomputed at each point)
        with the exact gradient of the PIRLS Laplace deviance; L-BFGS-B (with its probes off the bounds)
        from where they stop when they stall or leave a θ on its bound.  Then the Hessian by differences
        of that gradient.

        Parameters
        ----------
        ctx : _Context
            The fit's shared context: the problem, the GLM's β (start), the run log and the
            PIRLS objective.

        Returns
        -------
        Estimate or None
            None when the objective has no exact gradient (a non-canonical link) or the gradient test
            did not pass.
        """
        pb, obj = ctx.problem, ctx.obj
        if not obj.gradient_applies():
            return None
        s, layout = pb.structure, obj.layout
        warm = _warm(obj)
        theta0 = theta_start(s, lambda t: obj.laplace(layout.join(theta=t, beta=ctx.beta0)))
        x0 = layout.join(theta=theta0, beta=ctx.beta0)
        lb = driver.curvature_newton(obj.laplace_and_gradient, x0, layout, obj.curvature)
        if not (lb.success and driver.gradient_converged(lb.fun, True, lb.jac, lb.x, layout, pb.nobs)
                and not driver.on_boundary(lb.x, layout)):
            # a θ on its bound (the probes off it live in lbfgs) or a Newton run that stalled
            first = lb
            ctx.log.add(self.name, "initial", "first run", -0.5 * float(first.fun),
                        False, first.nfev, False, first.message)
            start = first.x if np.isfinite(first.fun) else x0
            lb = driver.lbfgs(obj.laplace_and_gradient, start, layout, pb.nobs, warm, value=obj.laplace)
            lb.nfev += first.nfev
            name = self.fallback_name
        else:
            name = self.name
        if not driver.gradient_converged(lb.fun, lb.success, lb.jac, lb.x, layout, pb.nobs):
            ctx.log.add(name, "initial", "first run", -0.5 * float(lb.fun), False, lb.nfev, False, lb.message)
            return None
        state = obj.state_at_params(lb.x)  # the last evaluation's when it was at the estimate
        H, grad = driver.hessian_from_gradient(obj.laplace_and_gradient, lb.x, warm, g0=lb.jac, layout=layout)
        return Estimate(lb.x, state, obj, state.laplace, H, grad, name, int(lb.nfev), True, str(lb.message),
                        pirls_failures=obj.pirls_failures)


class StagedBobyqa:
    """Stage 1: θ with β inside PIRLS (nAGQ = 0); stage 2: (θ, β) by BOBYQA on the Laplace or AGQ
    deviance (PIRLS to 1e-15); the Hessian by differences of the deviance."""

    @staticmethod
    def applies(problem: GlmmProblem) -> bool:
        """Whether this strategy fits ``problem``.

        Parameters
        ----------
        problem : GlmmProblem
            The problem to fit.

        Returns
        -------
        bool
            True for every family without its own parameters (the fallback of those).
        """
        return not problem.parametric

    def run(self, ctx: _Context) -> Estimate:
        """Estimate the problem with this strategy.

        Θ by BOBYQA with β inside PIRLS; for nAGQ = 0 that is the estimate, otherwise (θ, β) by BOBYQA
        on the Laplace or AGQ deviance and the Hessian by differences of the deviance.

        Parameters
        ----------
        ctx : _Context
            The fit's shared context: the problem, the GLM's β (start), the run log and the
            PIRLS objective.

        Returns
        -------
        Estimate
            Always an estimate (its ``converged`` says how the optimiser ended).
        """
        pb, obj = ctx.problem, ctx.obj
        s, nagq, layout = pb.structure, pb.nagq, obj.layout
        theta0 = theta_start(s, obj.nagq0)
        if nagq == 0:  # the final estimates: a second start and optimiser if this run ends badly
            res0 = minimize_with_restarts(obj.nagq0, theta0, s.theta_lower, upper=s.theta_upper, initial_step=0.5,
                                          ftol_abs=1e-10,
                                          alt_start=np.full(s.n_theta, 0.5) * np.isfinite(s.theta_lower))
            ctx.log.extend(res0.restarts)
        else:  # stage 2 refines: a start is enough
            res0 = minimize_bobyqa(obj.nagq0, theta0, s.theta_lower, upper=s.theta_upper, initial_step=0.5,
                                   ftol_abs=1e-6)
        state0 = obj.pirls(res0.x, None)
        theta, beta = res0.x, state0.beta
        obj.u = state0.u
        evals, res = res0.n_evals, res0
        if nagq == 0:
            state = obj.pirls(theta, None)
            if ctx.log.runs and not ctx.log.any_chosen():
                ctx.log.add_result(res, "nAGQ=0 estimates", "the first optimiser gave up", True)
            return Estimate(layout.join(theta=theta, beta=state.beta), state, obj, state.laplace, None, None,
                            res.optimizer, evals, bool(res.converged), res.message, obj.pirls_failures)
        # the deviance in (θ, β) for the final stage, with a tight PIRLS (see GlmmObjective's tol)
        fine = pb.objective(tol=1e-15, beta_start=ctx.beta0)
        fine.u = state0.u.copy()
        fun = fine.laplace if nagq == 1 else (lambda prm: fine.agq(prm, nagq))
        se0 = np.sqrt(np.diag(vcov_from_state(fine, state0, theta)))
        step = np.concatenate([np.maximum(0.1 * np.abs(theta), 0.05),
                               np.where(np.isfinite(se0), np.maximum(se0, 1e-3), 0.1)])
        res = minimize_with_restarts(fun, layout.join(theta=theta, beta=beta), layout.lower, upper=layout.upper,
                                     initial_step=step, alt_start=layout.join(theta=s.theta_start(), beta=ctx.beta0))
        prm = layout.split(res.x)
        theta, beta = prm.theta, prm.beta
        evals += res.n_evals
        ctx.log.extend(res.restarts)
        state = fine.pirls(theta, beta)
        x = layout.join(theta=theta, beta=state.beta)
        H, grad = driver.hessian_from_values(fun, x, layout=layout)
        fine.u = state.u
        dev = state.laplace if nagq == 1 else fine.agq_deviance(theta, beta, state, nagq)
        if ctx.log.runs and not ctx.log.any_chosen():
            ctx.log.add_result(res, "nAGQ=0 estimates", "the first optimiser gave up", True)
        return Estimate(x, state, fine, dev, H, grad, res.optimizer, evals, bool(res.converged), res.message,
                        obj.pirls_failures + fine.pirls_failures)


#: fewest coefficients (β, ψ, the sub-models' β) for which L-BFGS-B runs in the metric of the
#: fixed-effects model's curvature.  With many correlated coefficients (factor dummies in both parts)
#: L-BFGS-B spends most of its iterations learning that metric (Salamanders' zinb2: 67 evaluations
#: from the identity, 27 in the metric); a handful it learns in a few steps, and there the metric's
#: intercept, whose fixed-effects curvature (~n μ) is far above the GLMM's (~q/θ² once the levels'
#: effects are integrated out), costs more than it saves (the 1e5-row ZIP: 18 evaluations, 24).
METRIC_MIN_COEFS = 8


class ParametricLaplaceFit:
    """Families with their own parameters: L-BFGS-B on the exact Laplace gradient in (θ, β, log ψ)
    (BOBYQA on the deviance where the gradient's dense blocks would be too large, or when L-BFGS-B
    does not converge); with nagq > 1 BOBYQA on the AGQ deviance from the Laplace estimates."""

    name = "L-BFGS-B (exact Laplace gradient)"

    @staticmethod
    def applies(problem: GlmmProblem) -> bool:
        """Whether this strategy fits ``problem``.

        Parameters
        ----------
        problem : GlmmProblem
            The problem to fit.

        Returns
        -------
        bool
            True for a family with its own parameters (NB, Gamma, beta, Student-t, ...).
        """
        return problem.parametric

    def run(self, ctx: _Context) -> Estimate:
        """Estimate the problem with this strategy.

        L-BFGS-B on the exact Laplace gradient in (θ, β, log ψ, sub-models' β) from moment starts (BOBYQA
        when it fails or the gradient is not available), then BOBYQA on the AGQ deviance for nagq > 1.

        Parameters
        ----------
        ctx : _Context
            The fit's shared context: the problem, the GLM's β (start), the run log and the
            PIRLS objective.

        Returns
        -------
        Estimate
            Always an estimate (its ``converged`` says how the optimiser ended).
        """
        pb = ctx.problem
        s, fam, nagq = pb.structure, pb.family, pb.nagq
        obj = pb.objective()
        layout = obj.layout
        starts = family_parts_start(family_start(fam, pb, ctx.beta0), obj)
        lower, upper = layout.lower, layout.upper
        warm = _warm(obj)
        x_fixed, H_fixed = layout.join(theta=s.theta_start(), beta=ctx.beta0, **starts), None
        if getattr(fam, "zero_model", None) is not None:  # the zero part's slopes from the model without b
            x_fixed, H_fixed = fixed_effects_start(obj, x_fixed)

        def at_theta(t):
            x = x_fixed.copy()
            x[layout.slice("theta")] = t
            return x

        # one scalar term and fixed-effects-only sub-models: every level's mode on its own, no
        # blocked system per evaluation (objective/single_parametric.py); the general objective
        # gives the final state, and takes over if a level's Newton iterations fail
        fast = None
        if getattr(fam, "zero_model", None) is not None and one_factor_parametric.applies(s, obj.submodels, nagq):
            fast = one_factor_parametric.OneFactorParametric(obj)
        theta0 = theta_start(s, lambda t: (fast or obj).laplace(at_theta(t)))
        x0 = at_theta(theta0)
        if obj.gradient_applies():
            metric = None
            if H_fixed is not None and int(np.sum(np.diagonal(H_fixed) > 0)) >= METRIC_MIN_COEFS:
                metric = driver.metric_from_hessian(H_fixed, layout, theta_scales(obj, x0))
            if fast is not None:
                res = driver.lbfgs(fast.laplace_and_gradient, x0, layout, pb.nobs, fast.warm(), value=fast.laplace,
                                   metric=metric)
                if fast.failures:
                    fast = None
            if fast is None:
                res = driver.lbfgs(obj.laplace_and_gradient, x0, layout, pb.nobs, warm, value=obj.laplace,
                                   metric=metric)
            converged = driver.gradient_converged(res.fun, res.success, res.jac, res.x, layout, pb.nobs)
            x, evals, optimizer, message = res.x, int(res.nfev), self.name, str(res.message)
            g0 = res.jac
            fun_grad = obj.laplace_and_gradient
            if fast is not None:
                obj.u = fast.u.copy()
            if not converged:  # a second optimiser from where the first stopped (or from the start if it blew up)
                fast = None
                start = res.x if np.isfinite(res.fun) else x0
                tight = pb.objective(tol=1e-14)
                tight.u = obj.u.copy()
                alt = minimize_bobyqa(tight.laplace, start, lower, upper=upper, initial_step=layout.step)
                take = alt.converged and (not np.isfinite(res.fun) or alt.fun <= res.fun)
                ctx.log.add_result(driver.as_result(res, optimizer, False), "initial", "first run", not take)
                ctx.log.add_result(alt, "L-BFGS-B's end" if np.isfinite(res.fun) else "initial",
                                   f"L-BFGS-B did not converge ({message})", take)
                if take:
                    x, evals, optimizer, message, converged = alt.x, evals + alt.n_evals, alt.optimizer, alt.message, True
                    g0, obj, fun_grad = None, tight, tight.laplace_and_gradient
                    warm = _warm(obj)
            if fast is not None:  # as the general objective: each step's modes moved to first order from x's
                H, grad = driver.hessian_from_gradient(fast.gradient_near_mode, x, fast.warm(), g0=g0,
                                                       layout=layout, batch=fast.gradients_near_mode)
                obj.u = fast.u.copy()
            else:
                # the difference steps are 1e-6: the mode moved to first order is the mode to O(1e-12)
                near = getattr(obj, "gradient_near_mode", None) if fun_grad == obj.laplace_and_gradient else None
                H, grad = driver.hessian_from_gradient(near or fun_grad, x, warm, g0=g0, layout=layout)
        else:
            obj = pb.objective(tol=1e-14)
            res = minimize_with_restarts(obj.laplace, x0, lower, upper=upper, initial_step=layout.step)
            x, evals, optimizer, message, converged = res.x, res.n_evals, res.optimizer, res.message, res.converged
            ctx.log.extend(res.restarts)
            H, grad = driver.hessian_from_values(obj.laplace, x, layout=layout)
        if nagq > 1:
            agq_obj = pb.objective(tol=1e-14)
            agq_obj.u = obj.u.copy()
            agq_obj.laplace(x)  # modes at the Laplace estimates: the AGQ grid's centres
            fun = lambda prm: agq_obj.agq(prm, nagq)  # noqa: E731
            at = layout.split(x)
            step = layout.join(**{b.name: np.full(b.size, 0.1 if b.name == "psi" else 0.05) for b in layout.blocks
                                  if b.name != "theta"}, theta=np.maximum(0.1 * np.abs(at.theta), 0.05))
            res = minimize_bobyqa(fun, x, lower, upper=upper, initial_step=step)
            x, evals = res.x, evals + res.n_evals
            optimizer, message, converged = f"{optimizer}, then nlopt BOBYQA on the AGQ deviance", res.message, res.converged
            H, grad = driver.hessian_from_values(fun, x, layout=layout)
            x, H, grad, polished = driver.newton_polish(fun, x, H, grad, layout, fx=res.fun)
            evals += polished
            if polished:
                optimizer += f", then {polished} Newton step{'s' if polished > 1 else ''}"
            obj = agq_obj
        prm = layout.split(x)
        theta, beta = prm.theta, prm.beta
        state = obj.final_state(prm)
        joint = getattr(state, "joint", None)
        if joint is not None:  # the deviance integrates over both parts' random effects
            dev = joint.laplace
        else:
            dev = state.laplace if nagq == 1 else obj.agq_deviance(theta, beta, state, nagq)
        return Estimate(x, state, obj, dev, H, grad, optimizer, evals, bool(converged), str(message),
                        obj.pirls_failures)


#: tried in order; the first that applies and returns an estimate wins
STRATEGIES = (ParametricLaplaceFit, OneFactorLaplace, GradientLaplace, StagedBobyqa)


def family_start(family, problem: GlmmProblem, beta0) -> ParametricFamily:
    """The family bound to moment starts of its parameters at the GLM's fitted means.

    Parameters
    ----------
    family : ParametricFamily
        The problem's family.
    problem : GlmmProblem
        The problem (response, prior weights, X, offset).
    beta0 : ndarray, shape (p,)
        The fixed-effects GLM's β, whose means the moment starts use.

    Returns
    -------
    ParametricFamily
        A new family object with its parameters at those starts.
    """
    y, wt = problem.y, problem.wt
    mu = family.link.inverse(problem.X @ beta0 + problem.offset)
    return family.with_values(family.start(y, mu, wt))


def theta_scales(obj, x) -> np.ndarray:
    """A scale for each covariance parameter at the start ``x`` (ones elsewhere): |θ_j| (1 where θ_j
    is 0) over √(2q), q the levels of its term's grouping factor.

    Were the q effects of a scalar term observed, the information about their SD σ would be 2q/σ²;
    that is the curvature L-BFGS-B's coordinates are scaled by (``driver.metric_from_hessian``).

    Parameters
    ----------
    obj : ParametricLaplace
        The objective (its layout, structure and sub-models' structures).
    x : numpy.ndarray
        The start, in ``obj.layout`` order.

    Returns
    -------
    numpy.ndarray
        The shape of ``x``.
    """
    layout = obj.layout
    out = np.ones(layout.size)
    parts = [("theta", obj.structure)] + [(f"theta_{sub.part}", sub.structure) for sub in obj.submodels
                                          if sub.structure is not None]
    for name, structure in parts:
        if name not in layout:
            continue
        start = layout.slice(name).start
        for t in structure.terms:
            sl = slice(start + t.theta_slice.start, start + t.theta_slice.stop)
            mag = np.abs(x[sl])
            out[sl] = np.where(mag > 0, mag, 1.0) / np.sqrt(2.0 * max(t.factor.nlevels, 1))
    return out


def family_parts_start(started, obj) -> dict:
    """Starting values of the family's blocks: ψ of the parameters estimated as one value each, and
    each sub-model's β with its intercept at the moment start (its other coefficients 0).

    Parameters
    ----------
    started : ParametricFamily
        The family bound to moment starts (``family_start``).
    obj : ParametricLaplace or JointLaplace
        The objective (its scalar family parameters and sub-model predictors).

    Returns
    -------
    dict
        Layout block name -> start: ``"psi"`` (log scale), ``"beta_zi"``/``"beta_disp"`` and,
        for a sub-model with random effects, ``"theta_zi"``/``"theta_disp"``.
    """
    engine = dict(zip(started.free_names, started.log_params()))
    out = {}
    if obj.scalar_names:
        out["psi"] = np.array([engine[k] for k in obj.scalar_names])
    for sub in obj.submodels:
        b = np.zeros(sub.p)
        names = sub.names or ()
        if "(Intercept)" in names:
            b[list(names).index("(Intercept)")] = engine[sub.param] * sub.param_scale
        out[f"beta_{sub.part}"] = b
        if sub.structure is not None:
            out[f"theta_{sub.part}"] = sub.structure.theta_start()
    return out


def glm_start(problem: GlmmProblem) -> np.ndarray:
    """β of the fixed-effects-only GLM (for a parametric family at moment starts of its parameters).

    Parameters
    ----------
    problem : GlmmProblem
        The problem (X, response, prior weights, offset, family); a hurdle's GLM uses the positive
        rows only.

    Returns
    -------
    ndarray, shape (p,)
        The GLM's β by IRLS.
    """
    fam = problem.family
    y, wt = problem.y, problem.wt
    if getattr(fam, "zero_model", None) == "hurdle":  # the positive part's mean: from the positive rows
        wt = wt * (y > 0)
    if problem.parametric:
        fam = fam.with_values(fam.start(y, np.full(problem.nobs, float(np.average(y, weights=wt))), wt))
    if getattr(fam, "zero_model", None) == "zero-inflation":
        # the count family's GLM: IRLS's steps are the base's, and step halving judged by the
        # zero-inflated likelihood at π = ½ fights them (up to 30 halvings an iteration); the zero
        # part and the mean's shift come from fixed_effects_start
        fam = fam.base
    return glm_irls(problem.X, y, wt, problem.offset, fam)


def fit_glmm(problem: GlmmProblem, beta0=None):
    """Fit ``problem`` by the first strategy that applies and converges; returns a ``GlmmFit``.

    Parameters
    ----------
    problem : GlmmProblem
        The model to fit (frame, structure, kept columns, family, nagq).
    beta0 : ndarray, optional
        The GLM's β (computed when omitted).

    Returns
    -------
    GlmmFit
    """
    from ..scaling import choose_scaling

    # covariates of large or small magnitude (altitudes, ages, years, baseline counts) are fitted
    # centred/scaled, random slopes too where the model is invariant, and reported on the user's scale
    names = [problem.frame.x_names[j] for j in problem.kept]
    scaling = choose_scaling(problem.X, names, problem.structure, problem.frame, centre_slopes=problem.nagq <= 1)
    if not scaling.active:
        return _fit_strategies(problem, beta0)
    fit = _fit_scaled(problem, scaling, beta0)
    # a boundary fit in centred slope coordinates can stop on another rank-deficient covariance than
    # the user's coordinates lead to (the boundaries differ): fit with the slopes scaled only too
    if scaling.centred and (fit.singular or not fit.converged) and not problem.parametric:
        alt_scaling = choose_scaling(problem.X, names, problem.structure, problem.frame, centre_slopes=False)
        alt = _fit_scaled(problem, alt_scaling, beta0) if alt_scaling.active else _fit_strategies(problem, beta0)
        if (alt.converged, alt.loglik) > (fit.converged, fit.loglik + 1e-8):
            fit = alt
    return fit


def _fit_scaled(problem: GlmmProblem, scaling, beta0):
    """Fit ``problem`` in the coordinates ``scaling`` chose and map the fit back to the user's."""
    scaled = dataclasses.replace(problem, X=scaling.X, structure=scaling.structure)
    b0 = beta0 if beta0 is None or scaling.M is None else np.linalg.solve(scaling.M, beta0)
    return unscale(_fit_strategies(scaled, b0), scaling, problem)


def _fit_strategies(problem: GlmmProblem, beta0=None):
    beta0 = glm_start(problem) if beta0 is None else beta0
    ctx = _Context(problem, beta0)
    for strategy in STRATEGIES:
        if not strategy.applies(problem):
            continue
        est = strategy().run(ctx)
        if est is None:
            continue
        if ctx.log.runs and not ctx.log.any_chosen():
            ctx.log.add(est.optimizer, "initial", "the faster path gave up", -0.5 * est.deviance, est.converged,
                        est.n_evals, True, est.message)
        return package(problem, est, ctx.log)
    raise AssertionError("StagedBobyqa applies to every non-parametric problem")  # pragma: no cover


def unscale(fit, scaling, problem: GlmmProblem):
    """The fit made in the transformed coordinates of ``scaling`` as a fit of ``problem`` (the user's
    columns and structure).

    β = M β_fit, θ and the modes u through each transformed term's LQ map (``scaling.py``), their
    covariances through the Jacobian (also the joint (θ, β) one that profiles and Wald intervals
    use); the family's parameters and the log-likelihood do not depend on the parameterisation.
    The new fit's problem and objective hold the user's X and Z, so that later inference
    (profiles, simulation, prediction, ranef, refit) works in the reported parameters.

    Parameters
    ----------
    fit : GlmmFit
        The fit made in the transformed coordinates.
    scaling : Scaling
        The transformation (``scaling.choose_scaling``): the β map ``M`` and the terms' maps.
    problem : GlmmProblem
        The problem in the user's coordinates.

    Returns
    -------
    GlmmFit
        The same fit in the user's coordinates.
    """
    from ..results import GlmmFit
    from ..scaling import theta_jacobian, theta_to_user, u_to_user

    structure, p = problem.structure, problem.p
    M = scaling.M if scaling.M is not None else np.eye(p)
    theta = theta_to_user(structure, scaling.term_maps, fit._theta)
    beta = M @ fit._beta
    obj = problem.objective(tol=fit._objective.tol)
    obj.u = u_to_user(structure, scaling.term_maps, fit._theta, fit._state.u)
    if problem.parametric:
        state = obj.pirls(theta, beta, family=fit.family)
    else:
        state = obj.pirls(theta, beta)
    for extra in ("joint", "u_zi", "eta_zi"):  # the zero part's random effects are not rescaled
        if hasattr(fit._state, extra):
            setattr(state, extra, getattr(fit._state, extra))
    info = fit.optimizer_info
    info.rescaled = list(scaling.names)
    param_cov = None
    if fit._param_cov is not None:
        layout = problem.layout
        th, be = layout.slice("theta"), layout.slice("beta")
        B = np.eye(fit._param_cov.shape[0])
        B[th, th] = theta_jacobian(structure, scaling.term_maps, fit._theta)
        B[be, be] = M
        param_cov = B @ fit._param_cov @ B.T
    psi = fit._psi if fit._psi.shape[0] else None
    x, x_cov = None, None
    if fit._x is not None:  # the full estimate vector and its covariance, in the user's (θ, β)
        layout = problem.layout
        th, be = layout.slice("theta"), layout.slice("beta")
        x = fit._x.copy()
        x[th], x[be] = theta, beta
        if fit._x_cov is not None:
            B = np.eye(x.shape[0])
            B[th, th] = theta_jacobian(structure, scaling.term_maps, fit._theta)
            B[be, be] = M
            x_cov = B @ fit._x_cov @ B.T
    return GlmmFit(problem=problem, state=state, theta=theta, beta=beta, vcov=M @ fit._vcov @ M.T,
                   loglik=fit.loglik, info=info, family=fit.family, family_psi=psi,
                   family_psi_cov=fit._psi_cov if psi is not None else None, param_cov=param_cov, objective=obj,
                   estimates=x, estimates_cov=x_cov)


def vcov_from_state(obj, state, theta) -> np.ndarray:
    """(R_X'R_X)⁻¹ of the weighted PLS system with β at the mode (lme4's use.hessian = FALSE).

    Parameters
    ----------
    obj : GlmmObjective
        The objective (X, offset, structure, family).
    state : PirlsState
        The conditional mode whose working weights form the system.
    theta : ndarray, shape (n_theta,)
        Covariance parameters.

    Returns
    -------
    ndarray, shape (p, p)
        The covariance of β̂ at θ, not multiplied by any dispersion.
    """
    sys = obj._system(state.eta, obj.offset, obj.X)
    return sys.factor(obj.structure.templates(theta)).fixed_effects_covariance(sys.mz, sys.p)


def package(problem: GlmmProblem, est: Estimate, log: driver.RunLog):
    """The ``GlmmFit`` of an estimate: covariances from the Hessian (the PLS system's where it fails),
    the convergence record, and the family bound to its estimated parameters.

    Parameters
    ----------
    problem : GlmmProblem
        The problem the estimate is of.
    est : Estimate
        What the winning strategy found.
    log : driver.RunLog
        Every optimiser run of the fit (``optimizer_info.restarts``).

    Returns
    -------
    GlmmFit
    """
    from ..results import FitInfo, GlmmFit

    layout, p = problem.layout, problem.p
    est.objective._mode_at = None  # the fit keeps its own state; the optimiser's last one is not needed
    prm = layout.split(est.x)
    theta, beta, psi = prm.theta, prm.beta, getattr(prm, "psi", np.zeros(0))
    cov_all, hessian_pd = driver.covariance_from_hessian(est.H)
    vcov = layout.block("beta", cov_all) if cov_all is not None else None
    if vcov is None or not np.all(np.isfinite(vcov)) or np.any(np.diag(vcov) <= 0):
        if problem.parametric:  # the PLS system's curvature ignores the family's parameters
            vcov = np.full((p, p), np.nan) if vcov is None else vcov
        else:
            vcov = vcov_from_state(est.objective, est.state, theta)
        hessian_pd = False if est.H is not None else None
    messages = list(problem.messages)
    converged, message = est.converged, est.message
    failure = _non_finite(est.deviance, vcov, problem, est.state) or _submodel_se_failure(problem, layout, est.x,
                                                                                           cov_all)
    if failure:
        converged, message = False, failure
        messages.append(failure)
    info = FitInfo(est.optimizer, est.n_evals, converged, message,
                   driver.on_boundary(est.x, layout), messages=messages, restarts=log.runs)
    info.hessian_positive_definite = hessian_pd
    info.engine = str(getattr(getattr(est.state, "system", None), "engine", ""))
    info.pirls_failures = est.pirls_failures
    if est.grad is not None:
        info.gradient_norm = driver.free_gradient_norm(est.grad, est.x, layout)
    family = est.state.family if getattr(est.state, "family", None) is not None else problem.family
    n_psi = psi.shape[0]
    conditional = slice(0, layout.slice("beta").stop)  # (θ, β) of the conditional mean
    fit = GlmmFit(problem=problem, state=est.state, theta=theta, beta=beta, vcov=vcov, loglik=-0.5 * est.deviance,
                  info=info, family=family, family_psi=psi if n_psi else None,
                  family_psi_cov=(layout.block("psi", cov_all) if cov_all is not None
                                  else np.full((n_psi, n_psi), np.nan)) if n_psi else None,
                  param_cov=cov_all[conditional, conditional] if cov_all is not None else None,
                  objective=est.objective, estimates=est.x, estimates_cov=cov_all)
    return fit


def _submodel_se_failure(problem, layout, x, cov_all) -> str:
    """Why the sub-models' standard errors rule out convergence ('' when they do not): a covariance that
    is missing or not positive on the diagonal, naming the coefficients (typically a zero part near
    separation, whose coefficients run off towards ±∞)."""
    for sub in problem.submodels:
        sl = layout.slice(f"beta_{sub.part}")
        d = np.diag(cov_all)[sl] if cov_all is not None else np.full(sl.stop - sl.start, np.nan)
        bad = [n for n, v in zip(sub.names, d) if not (np.isfinite(v) and v > 0)]
        if bad:
            est = dict(zip(sub.names, x[sl]))
            what = "zero-inflation" if sub.part == "zi" else "dispersion"
            return (f"standard errors of the {what} coefficients {', '.join(bad)} are not finite (the Hessian is not "
                    f"positive definite there; estimates {', '.join(f'{n} = {est[n]:.3g}' for n in bad)}): a "
                    f"coefficient near separation or not identified; simplify {sub.formula!r}")
    return ""


def _non_finite(deviance, vcov, problem, state) -> str:
    """Why a fit cannot count as converged ('' when it can): a log-likelihood or a standard error that is
    not finite, naming the rows whose mean left the family's range where that is the cause."""
    se = np.sqrt(np.diag(vcov)) if vcov.size else np.zeros(0)
    if np.isfinite(deviance) and np.all(np.isfinite(se)):
        return ""
    what = "the log-likelihood" if not np.isfinite(deviance) else "standard errors"
    fam = state.family if getattr(state, "family", None) is not None else problem.family
    mu = state.mu if state is not None else None
    bad = np.zeros(0, dtype=bool)
    if mu is not None:
        with np.errstate(all="ignore"):
            ll = fam.loglik_kernel(problem.y, mu, problem.wt)
            W = fam.working(state.eta, problem.y, problem.wt)[1]
        # a mean on the edge of the family's range (μ = 0 under an identity link) has a finite
        # likelihood but infinite curvature: the Laplace approximation is undefined there too
        bad = ~np.isfinite(ll) | ~np.isfinite(mu) | ~np.isfinite(W)
    if bad.any():
        rows = np.flatnonzero(bad)
        return (f"{what} is not finite: the fitted mean reaches or leaves the edge of the {fam.name} family's range "
                f"in {rows.size} row(s) (first: row {int(rows[0])}, mu = {float(mu[rows[0]]):.4g}) with the "
                f"{fam.link.name} link, which does not keep it inside; use the family's default link "
                f"({type(fam).default_link}) or check the data")
    if mu is not None and fam.link.name != type(fam).default_link and np.all(np.isfinite(mu)):
        return (f"{what} is not finite at the estimates: with the {fam.link.name} link the fitted means of the "
                f"{fam.name} family are not kept inside its range (they run from {float(np.min(mu)):.3g} to "
                f"{float(np.max(mu)):.3g}); use the family's default link ({type(fam).default_link})")
    return f"{what} is not finite at the estimates; the fit has not converged (check fit.optimizer_info)"
