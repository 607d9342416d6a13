"""Predictions with standard errors (glmmTMB's ``predict(se.fit = TRUE)``) and lme4's partial ``re_form``.

The conditional prediction of a row is φ = x'β̂ + off + z'b̂(θ̂, β̂), b̂ the conditional mode.
Its variance follows TMB's generalised delta method (``sdreport``, what glmmTMB reports):

    Var(φ − φ_true) = z' H⁻¹ z + J Σ J',

H⁻¹ the conditional covariance of the random effects at the estimates (lme4's ``condVar``;
for a GLMM from the working weights at the mode), J the total derivative of φ with respect
to the fixed parameters (x + z ∂b̂/∂β for β, z ∂b̂/∂θ for θ) and Σ their covariance.
``theta_uncertainty=False`` keeps θ (and σ) at their estimates: Σ = Cov(β̂) only (for an LMM
exactly Henderson's inverse of the mixed-model equations).  ``theta_uncertainty=True`` uses the
covariance of every fixed parameter: for an ML LMM the inverse Hessian of the deviance in
(θ, log σ, β), for a REML LMM β is treated as glmmTMB's REML does (integrated, so the θ-fixed
part plus θ's share through β̂(θ) and b̂(θ)), for a GLMM the (θ, β) covariance of the fit's
Hessian.  Population predictions have Var = x'Σ_ββ x.

The computations are dense in the q random effects (fine up to a few thousand levels × terms).

Models with a ``ziformula`` or ``dispformula`` (and zero-inflated or hurdle families) go through
``submodel_predict_se``: one prediction φ per row on the requested scale (η, g⁻¹(η), the mixture's
mean, π, logit π, the dispersion) as a function of every fixed parameter x = (θ, β, ψ, β_zi, β_disp)
and the random effects b,

    Var(φ) = (∂φ/∂η)² z' Cov(b | y) z + J Σ J',    J = dφ(x, b̂(x))/dx,

Σ the fit's joint covariance (``fit._x_cov``), Cov(b | y) = Λ(Λ'Z'WZΛ + I)⁻¹Λ' with W the observed
information at the mode, and J by central differences of φ with b̂(x) re-solved at each step (in a
zero-inflated model the modes move with β_zi too).  For the mixture mean μ(1 − π) this carries
both parts' coefficients, and their covariance, into the standard error.

Random effects in the ``ziformula`` too (a ``JointLaplace`` fit): φ depends on both parts' effects,
η = x'β + z'b and ζ = x_zi'β_zi + z_zi'b_zi, and

    Var(φ) = g' Cov((b, b_zi) | y) g + J Σ J',    g = (∂φ/∂η z, ∂φ/∂ζ z_zi),

with the joint conditional covariance Λ M⁻¹ Λ' of the joint Newton system at the joint mode (its
pseudo-rows' weights from each row's 2 x 2 information, so the two parts' effects of a level are
correlated given y), and J by central differences with the joint mode re-solved at each step (so
every scale, π's included, moves with β, β_zi, θ and θ_zi through the modes).  ``re_form="~0"``
drops both parts' effects (glmmTMB 1.1.5's ``re.form = NA`` drops only the conditional part's);
a formula of some conditional terms keeps those and every zero-part term.

``re_form`` spellings: None (every random term), ``"~0"`` / ``"NA"`` (none), or a formula of
random terms such as ``"~(1 | Subject)"`` that keeps the named terms only (lme4's
``re.form = ~(1 | g)``): terms are matched by their columns' formula and grouping factor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, DataError, NotAvailableError

__all__ = ["resolve_re_form", "term_columns_mask", "predict_se", "submodel_predict_se", "new_random_design",
           "simulate_re_form"]

#: the scales ``submodel_predict_se`` offers (GlmmFit.predict's types)
SUBMODEL_TYPES = ("link", "response", "conditional", "zprob", "zlink", "disp")


# ----- re_form -----

def _norm(text: str) -> str:
    return str(text).replace(" ", "")


def resolve_re_form(fit, re_form):
    """The random terms a prediction keeps: None (all), () (none) or a tuple of indices into
    ``fit.structure.terms``.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model whose random terms (``fit.structure.terms``) are matched.
    re_form : None, "~0", "NA", NaN or str
        None keeps every random term; ``"~0"``, ``"NA"`` (or NaN, R's ``NA``) none; a formula of
        random terms (``"~(1 | Subject)"``, ``"~(1 | a) + (0 + x | b)"``) keeps those, matched by
        their columns' formula and grouping factor (spaces ignored).

    Returns
    -------
    None or tuple of int
        None (every term), ``()`` (none, the population level) or the sorted indices of the kept
        terms in ``fit.structure.terms``.
    """
    from ..validate import population_level

    if re_form is None:
        return None
    if isinstance(re_form, float) and np.isnan(re_form):
        return ()
    if not isinstance(re_form, str):
        raise ArgumentError(f"re_form must be None, '~0' or a formula of random terms, got {re_form!r}")
    try:
        if population_level(re_form):
            return ()
    except ArgumentError:
        pass
    text = re_form.strip()
    if not text.startswith("~"):
        raise ArgumentError(f"re_form must be a one-sided formula such as '~(1 | g)', got {re_form!r}")
    from ..formula.parser import parse_formula

    try:
        parsed = parse_formula("__y__ " + text)
    except Exception as exc:
        raise ArgumentError(f"cannot read re_form {re_form!r}: {exc}") from None
    if not parsed.random:
        raise ArgumentError(f"re_form {re_form!r} names no random term; use '~0' for the population level")
    terms = fit.structure.terms
    keys = [(_norm(t.source.spec.lhs), tuple(t.source.spec.factors)) for t in terms]
    chosen = []
    for spec in parsed.random:
        key = (_norm(spec.lhs), tuple(spec.factors))
        hits = [i for i, k in enumerate(keys) if k == key]
        if not hits:
            have = ", ".join(t.source.spec.source for t in terms)
            raise ArgumentError(f"re_form term {spec.source!r} is not a random term of the model (it has {have})")
        chosen.extend(h for h in hits if h not in chosen)
    return tuple(sorted(chosen))


def term_columns_mask(fit, keep) -> np.ndarray:
    """Boolean mask over the q random effects (engine order): True for those of the kept terms.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model (its ``structure`` gives q and each term's place in the blocks).
    keep : None or tuple of int
        The kept terms as :func:`resolve_re_form` returns them: None for every term, else indices
        into ``fit.structure.terms`` (``()`` for none).

    Returns
    -------
    ndarray of bool, shape (q,)
        True at the random effects of the kept terms (every level, the kept columns of the block).
    """
    q = fit.structure.q
    if keep is None:
        return np.ones(q, dtype=bool)
    mask = np.zeros(q, dtype=bool)
    for i in keep:
        t = fit.structure.terms[i]
        blk = fit.structure.blocks[t.block]
        idx = blk.offset + (np.arange(blk.q)[:, None] * blk.K + np.asarray(t.block_cols)[None, :])
        mask[idx.ravel()] = True
    return mask


# ----- designs of new rows -----

def _check_supported(fit):
    if any(t.structure.kind == "relmat" for t in fit.structure.terms):
        raise NotAvailableError("standard errors of predictions are not available for relmat= terms")
    if getattr(fit, "_residual", None) is not None:
        raise NotAvailableError("standard errors of predictions are not available with a residual= structure")


def new_random_design(fit, nd: pd.DataFrame, keep, allow_new_levels: bool) -> np.ndarray:
    """Dense Z (rows of ``nd`` × q, engine order) of the kept terms; rows of levels not in the fit
    are zero (a ``DataError`` unless ``allow_new_levels``), rows with a missing factor NaN.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model, or any object with the ``structure`` to build Z for.
    nd : pandas.DataFrame
        The new rows with a default (0..n-1) index, holding the random terms' columns and grouping
        factors.
    keep : None or tuple of int
        The terms to fill in (:func:`resolve_re_form`'s result): None for every term; the other
        terms' columns stay zero.
    allow_new_levels : bool
        Give rows whose level is not in the fit zero in that term (its population-level prediction)
        instead of raising ``DataError``.

    Returns
    -------
    ndarray, shape (len(nd), q)
        The rows' random-effects design in the engine's order of the q random effects; a row with a
        missing grouping factor in a kept term is NaN throughout.
    """
    from ..newdata import term_rows

    Z = np.zeros((len(nd), fit.structure.q))
    for i, t in enumerate(fit.structure.terms):
        if keep is not None and i not in keep:
            continue
        blk = fit.structure.blocks[t.block]
        cols, idx, missing = term_rows(fit, t, nd, allow_new_levels)
        rows = np.flatnonzero(idx >= 0)
        for c, bc in enumerate(t.block_cols):
            Z[rows, blk.offset + idx[rows] * blk.K + bc] = cols[rows, c]
        Z[missing] = np.nan
    return Z


class _StructureView:
    """What ``new_random_design`` reads of a fit (its structure), for a sub-model's structure."""

    def __init__(self, structure):
        self.structure = structure


def zero_part_design(fit, sub, newdata, allow_new_levels: bool) -> np.ndarray:
    """Dense Z_zi (rows × q_zi, the zero part's engine order) of a sub-model with random effects: the
    fitted rows' (``newdata`` None) or ``newdata``'s (NaN rows where a grouping factor is missing).

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model (not read: the sub-model carries its own structure).
    sub : SubModel
        The sub-model (the ``ziformula``'s), with random effects (``sub.structure`` not None).
    newdata : pandas.DataFrame or None
        New rows with a default (0..n-1) index, or None for the fitted rows.
    allow_new_levels : bool
        Give rows whose zero-part level is not in the fit zero random effects instead of raising
        ``DataError`` (new rows only).

    Returns
    -------
    ndarray, shape (n, q_zi)
        The zero part's random-effects design: of the n fitted rows or of ``newdata``'s rows, every
        term kept.
    """
    if newdata is None:
        Z = sub.structure.z_matrix()
        return np.asarray(Z.toarray()) if hasattr(Z, "toarray") else np.asarray(Z, dtype=float)
    return new_random_design(_StructureView(sub.structure), newdata, None, allow_new_levels)


def joint_b_covariance(obj, mode, theta_all) -> np.ndarray:
    """Cov((b, b_zi) | y) in the stacked order of a ``JointLaplace`` objective at its joint mode:
    Λ M⁻¹ Λ' with M = Λ'Z̃'W̃Z̃Λ + I, W̃ the pseudo-rows' weights of the exact row information
    [[a, b], [b, c]] there (dense in the stacked random effects).

    Parameters
    ----------
    obj : JointLaplace
        The joint objective of a fit with random effects in both parts (its stacked structure,
        design ``Zs``, response and prior weights).
    mode : JointMode
        The joint mode (``obj.joint_mode``).
    theta_all : ndarray
        θ of the stacked structure (``obj.joint_theta``).

    Returns
    -------
    ndarray, shape (q, q)
        The conditional covariance of the q stacked random effects (the conditional part's and the
        zero part's) on the scale of b (not of the spherical u).
    """
    st = obj.stacked
    templates = st.templates(np.asarray(theta_all, dtype=float))
    L = st.b_of(templates, np.eye(st.q))
    A = np.asarray(obj.Zs @ L)
    _, _, a, b, c = mode.family.joint_newton_terms(mode.eta, obj.y, obj.wt)
    w = np.concatenate([a - b, c - b, b])
    M = A.T @ (w[:, None] * A) + np.eye(st.q)
    return L @ np.linalg.solve(M, L.T)


# ----- the conditional modes as functions of (θ, β) -----

class _Modes:
    """Dense conditional-mode algebra of a fit: b̂(θ, β), H⁻¹ and ∂b̂/∂β, the (non-profiled) deviances."""

    def __init__(self, fit):
        self.fit = fit
        self.s = fit.structure
        self.Z = np.asarray(fit._z.toarray()) if hasattr(fit._z, "toarray") else np.asarray(fit._z)
        self.X = fit.frame.X[:, fit._x_kept]
        self.y = np.asarray(fit.frame.y, dtype=float)
        self.off = np.asarray(fit.frame.offset, dtype=float)
        self.glmm = fit.has_family
        if self.glmm:
            self.wt = np.asarray(fit._problem.wt, dtype=float)
            self.family = fit.family
        else:
            w = fit.frame.weights
            self.wt = np.ones(len(self.y)) if w is None else np.asarray(w, dtype=float)
        self.u0 = None
        if self.glmm and getattr(fit, "_state", None) is not None:
            self.u0 = np.asarray(fit._state.u, dtype=float).copy()

    def lam(self, theta):
        return self.s.b_of(self.s.templates(np.asarray(theta, dtype=float)), np.eye(self.s.q))

    def solve(self, theta, beta):
        """(b̂, Λ, A = ZΛ, W, M = A'WA + I, v̂) at (θ, β)."""
        L = self.lam(theta)
        A = self.Z @ L
        fixed = self.off + self.X @ beta
        q = self.s.q
        if not self.glmm:
            W = self.wt
            M = A.T @ (W[:, None] * A) + np.eye(q)
            v = np.linalg.solve(M, A.T @ (W * (self.y - fixed)))
            return L @ v, L, A, W, M, v
        v = np.zeros(q) if self.u0 is None else self.u0.copy()
        for _ in range(200):
            eta = fixed + A @ v
            mu, W, z = self.family.working(eta, self.y, self.wt)
            M = A.T @ (W[:, None] * A) + np.eye(q)
            v_new = np.linalg.solve(M, A.T @ (W * (z - fixed)))
            step = np.max(np.abs(v_new - v))
            v = v_new
            if step < 1e-12 * (1.0 + np.max(np.abs(v))):
                break
        eta = fixed + A @ v
        _, W, _ = self.family.working(eta, self.y, self.wt)
        M = A.T @ (W[:, None] * A) + np.eye(q)
        return L @ v, L, A, W, M, v

    def b_hat(self, theta, beta):
        return self.solve(theta, beta)[0]

    def pieces(self, theta, beta, sigma2):
        """H⁻¹ (conditional covariance of b) and ∂b̂/∂β at (θ, β)."""
        b, L, A, W, M, _ = self.solve(theta, beta)
        Minv = np.linalg.inv(M)
        Hinv = sigma2 * L @ Minv @ L.T
        dbdbeta = -L @ Minv @ (A.T @ (W[:, None] * self.X))
        return b, Hinv, dbdbeta

    def gls_beta(self, theta):
        """β̂(θ) of an LMM (the PLS solution) and the REML log|X'V⁻¹X| part."""
        L = self.lam(theta)
        A = self.Z @ L
        W = self.wt
        M = A.T @ (W[:, None] * A) + np.eye(self.s.q)
        AtWX = A.T @ (W[:, None] * self.X)
        AtWy = A.T @ (W * (self.y - self.off))
        XtWX = self.X.T @ (W[:, None] * self.X) - AtWX.T @ np.linalg.solve(M, AtWX)
        XtWy = self.X.T @ (W * (self.y - self.off)) - AtWX.T @ np.linalg.solve(M, AtWy)
        return np.linalg.solve(XtWX, XtWy), XtWX

    def ml_deviance(self, theta, log_sigma, beta):
        """−2 log L of an LMM at (θ, σ, β), not profiled."""
        b, L, A, W, M, v = self.solve(theta, beta)
        r = self.y - self.off - self.X @ beta - A @ v
        s2 = np.exp(2.0 * log_sigma)
        n = len(self.y)
        pwrss = float(np.sum(W * r * r) + v @ v)
        return (n * np.log(2 * np.pi * s2) - np.sum(np.log(W)) + np.linalg.slogdet(M)[1] + pwrss / s2)

    def reml_deviance(self, theta, log_sigma):
        """−2 × REML log-likelihood of an LMM at (θ, σ), not profiled."""
        beta, XtWX = self.gls_beta(theta)
        b, L, A, W, M, v = self.solve(theta, beta)
        r = self.y - self.off - self.X @ beta - A @ v
        s2 = np.exp(2.0 * log_sigma)
        n, p = self.X.shape
        pwrss = float(np.sum(W * r * r) + v @ v)
        return ((n - p) * np.log(2 * np.pi * s2) - np.sum(np.log(W)) + np.linalg.slogdet(M)[1]
                + np.linalg.slogdet(XtWX)[1] + pwrss / s2)


def _hessian(f, x, rel=1e-3):
    """Central-difference Hessian of a scalar function (relative steps, at least ``rel`` · 0.1)."""
    from ..fitting.driver import central_hessian

    x = np.asarray(x, dtype=float)
    return central_hessian(f, x, rel * np.maximum(np.abs(x), 0.1))


def _theta_jacobian(g, theta, rel=1e-4):
    """Central differences of a vector function g(θ): (len(g), len(θ))."""
    theta = np.asarray(theta, dtype=float)
    cols = []
    for j in range(theta.shape[0]):
        h = rel * max(abs(theta[j]), 0.1)
        e = np.zeros_like(theta)
        e[j] = h
        cols.append((g(theta + e) - g(theta - e)) / (2 * h))
    return np.column_stack(cols) if cols else np.zeros((len(g(theta)), 0))


def _lmm_fixed_cov(fit, modes):
    """Covariance of (θ, log σ, β) of an ML LMM: the inverse of half the deviance's Hessian."""
    nt = fit._theta.shape[0]
    x0 = np.concatenate([fit._theta, [np.log(fit.sigma)], fit._beta])

    def dev(x):
        return modes.ml_deviance(x[:nt], x[nt], x[nt + 1:])

    return np.linalg.inv(0.5 * _hessian(dev, x0))


def _reml_theta_cov(fit, modes):
    nt = fit._theta.shape[0]
    x0 = np.concatenate([fit._theta, [np.log(fit.sigma)]])
    return np.linalg.inv(0.5 * _hessian(lambda x: modes.reml_deviance(x[:nt], x[nt]), x0))


# ----- predict with standard errors -----

def predict_se(fit, newdata=None, re_form=None, type="link", theta_uncertainty=False, allow_new_levels=False,
               keep=None) -> pd.DataFrame:
    """Predictions with delta-method standard errors (see the module's text); ``fit.predict(se_fit=True)``.

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fitted model, without ``relmat=`` terms or a ``residual=`` structure. With
        ``theta_uncertainty`` a PQL fit is refused, and a GLMM's prediction with random effects
        needs the fit's (θ, β) covariance (``NotAvailableError`` without it).
    newdata : pandas.DataFrame, optional
        Rows to predict (the fitted rows when omitted).
    re_form : None, "~0" or a formula of random terms, default None
        Which random effects the prediction adds at their conditional modes: every term (None),
        none (``"~0"``, the population level: Var = x'Σ_ββ x) or the named terms
        (:func:`resolve_re_form`).
    type : {"link", "response"}, default "link"
        The scale: the linear predictor η, or the mean g⁻¹(η) with its standard error by the delta
        method (|dμ/dη| times η's); the same for an LMM.
    theta_uncertainty : bool, default False
        Include the uncertainty of θ (and σ): glmmTMB's standard errors; False holds them at their
        estimates (Σ = Cov(β̂)).
    allow_new_levels : bool, default False
        Rows whose grouping-factor level is not in the fit get that term's random effect at zero
        (and no conditional variance from it) instead of a ``DataError``.
    keep : tuple of int, optional
        The kept terms (:func:`resolve_re_form`'s result), when the caller has resolved
        ``re_form`` already; it then overrides ``re_form``.

    Returns
    -------
    pandas.DataFrame
        Columns ``fit`` (the prediction on the ``type`` scale) and ``se_fit`` (its standard error),
        indexed as ``newdata`` (or the fitted rows); NaN in rows whose grouping factor of a kept
        term is missing.
    """
    if type not in ("link", "response"):
        raise ArgumentError(f"type must be 'link' or 'response', got {type!r}")
    if fit.kind == "pql" and theta_uncertainty:
        raise NotAvailableError("a PQL fit has no likelihood, so no covariance of θ: use theta_uncertainty=False")
    _check_supported(fit)
    if keep is None:
        keep = resolve_re_form(fit, re_form)
    mask = term_columns_mask(fit, keep)
    if newdata is None:
        X = fit.frame.X[:, fit._x_kept]
        off = np.asarray(fit.frame.offset, dtype=float)
        Z = np.asarray(fit._z.toarray()) if fit.structure.q else np.zeros((fit.nobs, 0))
        Z = Z * mask[None, :]
        index = fit.frame.data.index
    else:
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
        index = newdata.index
        nd = newdata.reset_index(drop=True)
        from ..newdata import fixed_design

        X = fixed_design(fit, nd)
        off = fit._new_offset(nd)
        Z = new_random_design(fit, nd, keep, allow_new_levels)
    population = keep == () or fit.structure.q == 0
    beta, theta = fit._beta, fit._theta
    sigma2 = fit.sigma**2 if not fit.has_family else 1.0
    modes = _Modes(fit)
    bad = np.isnan(Z).any(axis=1) if Z.size else np.zeros(len(X), dtype=bool)
    Zc = np.where(np.isnan(Z), 0.0, Z)
    if population:
        eta = X @ beta + off
        if theta_uncertainty and not fit.has_family and not fit.reml:
            V = _lmm_fixed_cov(fit, modes)[len(theta) + 1:, len(theta) + 1:]
        elif theta_uncertainty and fit.has_family and fit._param_cov is not None:
            V = fit._param_cov[len(theta):, len(theta):]
        else:
            V = fit._vcov
        var = np.einsum("ij,jk,ik->i", X, V, X)
    else:
        b, Hinv, dbdbeta = modes.pieces(theta, beta, sigma2)
        eta = X @ beta + off + Zc @ b
        Jb = X + Zc @ dbdbeta
        var = np.einsum("ij,jk,ik->i", Zc, Hinv, Zc)
        if not theta_uncertainty:
            var = var + np.einsum("ij,jk,ik->i", Jb, fit._vcov, Jb)
        elif not fit.has_family and not fit.reml:
            nt = len(theta)
            Jt = Zc @ _theta_jacobian(lambda th: modes.b_hat(th, beta), theta)
            J = np.hstack([Jt, np.zeros((len(X), 1)), Jb])
            var = var + np.einsum("ij,jk,ik->i", J, _lmm_fixed_cov(fit, modes), J)
        elif not fit.has_family:  # REML: β integrated out with the random effects; θ, σ enter via β̂(θ), b̂(θ)
            var = var + np.einsum("ij,jk,ik->i", Jb, fit._vcov, Jb)

            def phi(th):
                be = modes.gls_beta(th)[0]
                return X @ be + Zc @ modes.b_hat(th, be)

            Jt = _theta_jacobian(phi, theta)
            J = np.hstack([Jt, np.zeros((len(X), 1))])
            var = var + np.einsum("ij,jk,ik->i", J, _reml_theta_cov(fit, modes), J)
        else:
            if fit._param_cov is None:
                raise NotAvailableError("this fit has no (θ, β) covariance (its Hessian was not formed)")
            Jt = Zc @ _theta_jacobian(lambda th: modes.b_hat(th, beta), theta)
            J = np.hstack([Jt, Jb])
            var = var + np.einsum("ij,jk,ik->i", J, fit._param_cov, J)
    se = np.sqrt(np.maximum(var, 0.0))
    eta = np.where(bad, np.nan, eta)
    se = np.where(bad, np.nan, se)
    if type == "response" and fit.has_family:
        link = fit.family.link
        se = se * np.abs(link.mu_eta(eta))
        eta = link.inverse(eta)
    return pd.DataFrame({"fit": eta, "se_fit": se}, index=index)


# ----- sub-models: every part's parameters -----

class _PartsPredictor:
    """φ(x, b) of the rows on one scale, x the fit's full estimate vector (its objective's layout)."""

    def __init__(self, fit, newdata, keep, allow_new_levels, type):
        from ..objective.predictor import PSI_BOUND

        self.fit, self.type, self.bound = fit, type, PSI_BOUND
        self.layout = fit._problem.layout
        self.obj = fit._problem.objective(tol=1e-12)
        self.subs = {sub.part: sub for sub in getattr(fit._problem, "submodels", ())}
        self.scalar_names = tuple(getattr(self.obj, "scalar_names", ()))
        mask = term_columns_mask(fit, keep)
        if newdata is None:
            self.X = fit.frame.X[:, fit._x_kept]
            self.off = np.asarray(fit.frame.offset, dtype=float)
            Z = np.asarray(fit._z.toarray()) if fit.structure.q else np.zeros((fit.nobs, 0))
            Z = Z * mask[None, :]
            self.sub_X = {part: sub.X for part, sub in self.subs.items()}
        else:
            from ..newdata import fixed_design

            self.X = fixed_design(fit, newdata)
            self.off = fit._new_offset(newdata)
            Z = new_random_design(fit, newdata, keep, allow_new_levels)
            self.sub_X = {part: sub.design_new(newdata) for part, sub in self.subs.items()}
        self.bad = np.isnan(Z).any(axis=1) if Z.size else np.zeros(self.X.shape[0], dtype=bool)
        self.Z = np.where(np.isnan(Z), 0.0, Z)
        # the zero part's random effects (a JointLaplace fit): kept unless re_form is population-level
        self.zi_sub = next((sub for sub in self.subs.values() if sub.structure is not None), None)
        self.Zzi = None
        if self.zi_sub is not None and keep != ():
            Zzi = zero_part_design(fit, self.zi_sub, newdata, allow_new_levels)
            self.bad = self.bad | np.isnan(Zzi).any(axis=1)
            self.Zzi = np.where(np.isnan(Zzi), 0.0, Zzi)
        self.population = (keep == () or fit.structure.q == 0 or not self.Z.any()) and self.Zzi is None

    def modes(self, x):
        """b̂ at the parameters x (Newton from the fit's own modes) and the PIRLS state; with random
        effects in the zero part ((b̂, b̂_zi), the joint mode), both re-solved jointly."""
        prm = self.layout.split(x)
        if self.zi_sub is not None:
            mode = self.obj.joint_mode(prm, u0=np.asarray(self.fit._state.joint.u, dtype=float).copy())
            s, zs = self.fit.structure, self.zi_sub.structure
            b = s.b_of(s.templates(prm.theta), mode.u[self.obj.index_cond])
            b_zi = zs.b_of(zs.templates(prm["theta_zi"]), mode.u[self.obj.index_zi])
            return (b, b_zi), mode
        self.obj.u = np.asarray(self.fit._state.u, dtype=float).copy()
        state = self.obj.pirls(prm.theta, prm.beta, family=self.obj.family_at(prm))
        s = self.fit.structure
        return s.b_of(s.templates(prm.theta), state.u), state

    def eta(self, x, b):
        """The conditional linear predictor η of the rows at x, with the random effects b (None: without;
        a pair (b, b_zi) for a zero part with random effects)."""
        prm = self.layout.split(x)
        eta = self.X @ prm.beta + self.off
        if isinstance(b, tuple):
            b = b[0]
        return eta if b is None else eta + self.Z @ b

    def zeta(self, x, b=None):
        """Each sub-model's linear predictor of the rows at x (the zero part's with b_zi when ``b`` is a
        pair (b, b_zi) and the prediction keeps the zero part's random effects)."""
        prm = self.layout.split(x)
        zeta = {part: X @ prm[f"beta_{part}"] for part, X in self.sub_X.items()}
        if isinstance(b, tuple) and self.Zzi is not None:
            part = self.zi_sub.part
            zeta[part] = zeta[part] + self.zi_sub.scale * (self.Zzi @ b[1])
        return zeta

    def value(self, x, eta, zeta=None):
        """φ of every row from the parameters x, the conditional linear predictor η and the sub-models'
        linear predictors ``zeta`` (from x alone when omitted)."""
        prm = self.layout.split(x)
        t = self.type
        if t == "link":
            return eta
        if zeta is None:
            zeta = self.zeta(x)
        if t == "zlink":
            return zeta["zi"] if "zi" in zeta else self._scalar_zi(prm, eta, logit=True)
        if t == "zprob":
            return (0.5 * (1.0 + np.tanh(0.5 * zeta["zi"])) if "zi" in zeta
                    else self._scalar_zi(prm, eta, logit=False))
        psi = {k: float(np.clip(prm.psi[j], -self.bound, self.bound)) for j, k in enumerate(self.scalar_names)}
        for part, sub in self.subs.items():
            psi[sub.param] = np.clip(zeta[part] / sub.scale, -self.bound, self.bound)
        fam = self.fit.family.with_psi(psi)
        if t == "disp":
            if "disp" in zeta:
                return fam.disp_sigma(np.exp(zeta["disp"]))
            v = fam.values[fam.disp_param]
            return np.full(eta.shape[0], float(fam.disp_sigma(v)))
        mu = fam.link.inverse(eta)
        return fam.conditional_mean(mu) if t == "conditional" else fam.response_mean(mu)

    def _scalar_zi(self, prm, eta, logit):
        """π (or its logit) of a zero model whose π is one estimated value (or none: π = 0)."""
        if "zi" not in self.scalar_names:
            return np.full(eta.shape[0], -np.inf if logit else 0.0)
        z = float(prm.psi[self.scalar_names.index("zi")])
        return np.full(eta.shape[0], z if logit else 0.5 * (1.0 + np.tanh(0.5 * z)))

    def joint_conditional_variance(self, x, mode, eta, zeta):
        """g' Cov((b, b_zi) | y) g per row, g the row's gradient of φ in both parts' random effects
        (∂φ/∂η z and ∂φ/∂ζ z_zi, placed in the stacked order of the joint mode)."""
        part = self.zi_sub.part
        h = 1e-5 * np.maximum(np.abs(eta), 1.0)
        d_eta = (self.value(x, eta + h, zeta) - self.value(x, eta - h, zeta)) / (2.0 * h)
        hz = 1e-5 * np.maximum(np.abs(zeta[part]), 1.0)
        up, down = dict(zeta), dict(zeta)
        up[part], down[part] = zeta[part] + hz, zeta[part] - hz
        d_zeta = (self.value(x, eta, up) - self.value(x, eta, down)) / (2.0 * hz)
        d_zeta = d_zeta * self.zi_sub.scale  # ζ moves by scale · z_zi'b_zi
        prm = self.layout.split(x)
        C = joint_b_covariance(self.obj, mode, self.obj.joint_theta(prm))
        G = np.zeros((eta.shape[0], C.shape[0]))
        G[:, self.obj.index_cond] = d_eta[:, None] * self.Z
        if self.Zzi is not None:
            G[:, self.obj.index_zi] = d_zeta[:, None] * self.Zzi
        return np.einsum("ij,jk,ik->i", G, C, G)

    def b_covariance(self, state, theta):
        """Cov(b | y) = Λ (Λ'Z'WZΛ + I)⁻¹ Λ' at the mode, W the observed information (dense)."""
        s = self.fit.structure
        L = s.b_of(s.templates(theta), np.eye(s.q))
        Zf = np.asarray(self.fit._z.toarray()) if hasattr(self.fit._z, "toarray") else np.asarray(self.fit._z)
        A = Zf @ L
        W = np.asarray(state.derivs.W, dtype=float)
        M = A.T @ (W[:, None] * A) + np.eye(s.q)
        return L @ np.linalg.solve(M, L.T)


def submodel_predict_se(fit, newdata=None, re_form=None, type="link", theta_uncertainty=False,
                        allow_new_levels=False) -> pd.DataFrame:
    """Predictions with delta-method standard errors for a model with sub-models (``ziformula``,
    ``dispformula``) or a zero-inflated / hurdle family: glmmTMB's ``predict(se.fit = TRUE)``.

    Parameters
    ----------
    fit : GlmmFit
        Fitted by the Laplace approximation, with its joint covariance (``fit._x_cov``).
    newdata : DataFrame, optional
        Rows to predict (the fitted rows when omitted).
    re_form : None, "~0" or a formula of random terms
        Conditional on the random effects' modes (None; both parts' joint modes when the ziformula
        has random effects), at the population level (``"~0"``: every part's effects at 0) or on the
        named conditional terms only (a zero part keeps its own).
    type : {"link", "response", "conditional", "zprob", "zlink", "disp"}
        The scale, as :meth:`GlmmFit.predict`'s: η, the mixture mean E[y] = μ(1 − π) (a hurdle's
        mean for a hurdle family), g⁻¹(η), π, logit π, the dispersion on glmmTMB's scale.
    theta_uncertainty : bool
        Include the uncertainty of θ (and of a zero part's θ_zi; glmmTMB always does); False holds
        them at their estimates and keeps that of every coefficient and family parameter.
    allow_new_levels : bool
        Levels not seen in the fit get random effects of zero instead of an error.

    Returns
    -------
    pandas.DataFrame
        Columns ``fit`` and ``se_fit``, indexed as ``newdata`` (or the fitted rows); NaN where a
        needed value of ``newdata`` is missing.
    """
    from ..fitting.driver import central_jacobian

    if type not in SUBMODEL_TYPES:
        raise ArgumentError(f"type must be one of {', '.join(map(repr, SUBMODEL_TYPES))}, got {type!r}")
    _check_supported(fit)
    from .marginal import check_fixed_submodels

    check_fixed_submodels(fit, "se_fit", supported=("theta_zi",))
    if getattr(fit, "_x", None) is None or getattr(fit, "_state", None) is None:
        raise NotAvailableError("standard errors of predictions need the fit's estimates of every part, which "
                                f"a {fit.method} fit does not keep; refit with nagq=1 (Laplace)")
    if fit._x_cov is None or not np.all(np.isfinite(fit._x_cov)):
        raise NotAvailableError("this fit has no covariance of its parameters (its Hessian was not formed or is "
                                "not positive definite), so its predictions have no standard errors")
    if type == "disp" and "disp" not in {s.part for s in getattr(fit._problem, "submodels", ())} \
            and getattr(fit.family, "disp_param", None) not in fit.family_params:
        raise ArgumentError(f"the {fit.family.name} family has no dispersion parameter")
    if newdata is not None and not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
    index = pd.RangeIndex(fit.nobs) if newdata is None else newdata.index
    nd = None if newdata is None else newdata.reset_index(drop=True)
    pred = _PartsPredictor(fit, nd, resolve_re_form(fit, re_form), allow_new_levels, type)
    x0 = np.asarray(fit._x, dtype=float)
    layout = pred.layout
    # with the zero part's random effects every scale moves with the joint mode (π's with b̂_zi, and
    # b̂_zi with β, the conditional part's with β_zi)
    uses_modes = not pred.population and (pred.zi_sub is not None or type in ("link", "response", "conditional"))

    def phi(x):
        b = pred.modes(x)[0] if uses_modes else None
        return pred.value(x, pred.eta(x, b), pred.zeta(x, b))

    b0, state = pred.modes(x0) if uses_modes else (None, None)
    eta0 = pred.eta(x0, b0)
    zeta0 = pred.zeta(x0, b0)
    value = pred.value(x0, eta0, zeta0)
    free = np.ones(x0.shape[0], dtype=bool)
    if not theta_uncertainty:
        for blk in layout.blocks:
            if blk.name == "theta" or blk.name.startswith("theta_"):
                free[layout.slice(blk.name)] = False
    V = fit._x_cov[np.ix_(free, free)]
    idx = np.flatnonzero(free)

    def phi_free(y):
        x = x0.copy()
        x[idx] = y
        return phi(x)

    _, J = central_jacobian(phi_free, x0[idx], rel=1e-4 if uses_modes else 1e-5)
    var = np.einsum("ij,jk,ik->i", J, V, J)
    if uses_modes and pred.zi_sub is not None:
        var = var + pred.joint_conditional_variance(x0, state, eta0, zeta0)
    elif uses_modes:
        # ∂φ/∂η row by row (each row's φ depends on its own η only)
        h = 1e-5 * np.maximum(np.abs(eta0), 1.0)
        d_eta = (pred.value(x0, eta0 + h, zeta0) - pred.value(x0, eta0 - h, zeta0)) / (2.0 * h)
        C = pred.b_covariance(state, layout.split(x0).theta)
        var = var + d_eta**2 * np.einsum("ij,jk,ik->i", pred.Z, C, pred.Z)
    se = np.sqrt(np.maximum(var, 0.0))
    return pd.DataFrame({"fit": np.where(pred.bad, np.nan, value), "se_fit": np.where(pred.bad, np.nan, se)},
                        index=index)


# ----- simulate with a partial re_form -----

def simulate_re_form(fit, n_sim: int, rng, keep) -> np.ndarray:
    """Responses simulated with the kept terms' random effects at their conditional modes and new
    draws for the other terms (lme4's ``simulate(re.form = ~(1 | g))``): (nobs, n_sim).

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model, without ``relmat=`` terms; its fitted rows are simulated.
    n_sim : int
        The number of simulated response vectors.
    rng : numpy.random.Generator
        The source of the random effects' draws and of the response noise.
    keep : None or tuple of int
        The terms held at their conditional modes (:func:`resolve_re_form`'s result: indices into
        ``fit.structure.terms``); the others' random effects are drawn anew from their fitted
        distribution in every simulation.

    Returns
    -------
    ndarray, shape (nobs, n_sim)
        One simulated response per fitted row (rows) and simulation (columns), on the response's
        scale: for an LMM η plus the residual noise, for a GLMM draws from the family at g⁻¹(η).
    """
    if any(t.structure.kind == "relmat" for t in fit.structure.terms):
        raise NotAvailableError("a partial re_form is not available for relmat= terms")
    mask = term_columns_mask(fit, keep)
    fixed = fit.frame.X[:, fit._x_kept] @ fit._beta + fit.frame.offset
    u = rng.standard_normal((fit.structure.q, n_sim))
    b = fit.structure.b_of(fit._templates, u) * (fit.sigma if fit.has_residual else 1.0)
    b[mask] = fit._b[mask, None]
    eta = fixed[:, None] + np.asarray(fit._z @ b)
    if not fit.has_family:
        return eta + fit._residual_noise(rng, n_sim)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.ascontiguousarray(fit._simulate_response(eta.T, rng).T)
