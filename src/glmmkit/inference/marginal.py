"""Marginal (population-averaged) effects and moments of a GLMM (seed 001; Hedeker et al. 2018).

β is a conditional (subject-specific) effect.  Averaging the conditional mean
over the random effects gives the marginal mean of each row,

    E[y_i] = ∫ g⁻¹(x_i'β + o_i + t) φ(t; 0, v_i) dt,    v_i = Σ_terms z_i' Σ_term z_i,

a one-dimensional integral whatever the design (crossed, nested, slopes: z_i'b
is normal with variance v_i), done by 40-node Gauss-Hermite.  The marginal
coefficients are the least-squares fit of g(E[y]) on X (GLMMadaptive's
``marginal_coefs``); their standard errors come by the delta method from the
covariance of (θ, β) (central differences of the whole map).  Two rows of one
cluster share their random effects, (z_s'b, z_t'b) is bivariate normal, and the
covariance their effects induce is E[μ_s μ_t] − E[μ_s]E[μ_t] (a 2-D rule).

Zero-inflated, hurdle and truncated families: the averaged mean is the response's,
E[y_i] = ∫ m_i(g⁻¹(x_i'β + o_i + t)) φ(t; 0, v_i) dt with m_i the family's mean at that row's
parameters (the mixture (1 − π_i)μ, a hurdle's (1 − π_i)μ/(1 − p₀(μ)), a truncated mean); π has no
random effects, so it comes out of the integral unchanged.  ``marginal_coefs`` regresses
g(E[y]) on X (the zero part's coefficients and the conditional ones together make the population
mean) and takes its delta method in every estimated parameter (θ, β, ψ, β_zi, β_disp) from the
fit's joint covariance; ``marginal_moments`` uses the family's conditional variance of y.

Random effects in the ``ziformula`` too: E[y | b, b_zi] = (1 − π(ζ)) h(μ(η)), h the count (or
positive) part's mean, and the two parts' random effects are independent terms (any factors: z'b
and z_zi'b_zi of a row are independent normals), so E[y] = E[1 − π(ζ₀ + t_zi)] E[h(μ(η₀ + t))], a
product Gauss-Hermite rule (40 x 40 nodes) that is exact to quadrature accuracy; E[y²] likewise
from the count part's second moment, and two rows of one cluster have
E[y_s y_t] = E[(1 − π_s)(1 − π_t)] E[h_s h_t], each a bivariate rule.  ``marginal_coefs`` takes
its delta method in every parameter, θ_zi included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["marginal_coefs", "marginal_means", "marginal_moments"]

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _row_columns(fit, newdata):
    """Per random-effect term, its columns for the rows (fitted rows or newdata)."""
    from ..frame import term_columns

    if newdata is None:
        return [t.columns for t in fit.structure.terms]
    from ..frame import factor_labels

    nd = newdata.reset_index(drop=True)
    out = []
    for t in fit.structure.terms:
        if t.structure.kind == "relmat":  # the row's level picks its row of L
            codes = pd.Index(t.structure.levels).get_indexer(factor_labels(nd, t.source.spec.factors))
            out.append(t.structure.rows_for(codes.astype(np.int64)) * term_columns(t.source, nd)[:, :1])
        else:
            out.append(t.columns_from(term_columns(t.source, nd)))
    return out


def _inverse_link(fit):
    fam = getattr(fit, "family", None)
    return (lambda e: e) if fam is None else fam.link.inverse


def has_zero_part(fit) -> bool:
    """True when the fit's family has a zero part (zero inflation, a hurdle, truncation): its mean of y
    is not g⁻¹(η).

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model; an LMM (no ``family``) has no zero part.

    Returns
    -------
    bool
        True for a ``ZeroInflated``, ``Hurdle`` or ``Truncated`` family, False otherwise.
    """
    from ..families.zero_models import Truncated, _ZeroPart

    return isinstance(getattr(fit, "family", None), (Truncated, _ZeroPart))


def check_fixed_submodels(fit, what: str, supported=()) -> None:
    """Raise ``NotAvailableError`` when a sub-model (``ziformula``, ``dispformula``) has random effects
    that ``what`` does not handle (those whose θ block is not named in ``supported``, e.g. "theta_zi"):
    it would treat π or the dispersion as functions of their coefficients only.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model; one without sub-models (or an LMM) always passes.
    what : str
        The computation, for the message.
    supported : tuple of str, default ()
        The sub-models' θ blocks the computation handles (the objective layout's block names,
        ``"theta_zi"`` or ``"theta_disp"``); the default handles none.

    Returns
    -------
    None
    """
    layout = getattr(getattr(fit, "_problem", None), "layout", None)
    extra = [b.name for b in getattr(layout, "blocks", ()) if b.name.startswith("theta_") and b.name not in supported]
    if extra:
        from ..exceptions import NotAvailableError

        raise NotAvailableError(f"{what} is not available yet for a ziformula or dispformula with random effects "
                                f"({', '.join(extra)}): it would treat that part's parameter as fixed")


def _means_from(fit, eta0, v):
    """The conditional mean g⁻¹(η) averaged over the random effects (emmeans' population means)."""
    if has_zero_part(fit):
        from ..exceptions import NotAvailableError

        raise NotAvailableError(f"population-averaged means of g⁻¹(η) alone would leave out the zero part of this "
                                f"{type(fit.family).__name__} {fit.family.name} model (its E[y] is not g⁻¹(η)); "
                                f"use fit.predict(newdata, type='response', marginal=True), which averages the "
                                f"response's mean")
    inv = _inverse_link(fit)
    return inv(eta0[:, None] + np.sqrt(np.maximum(v, 0.0))[:, None] * _NODES[None, :]) @ _WEIGHTS


def _row_family(fit, newdata=None, x=None):
    """The fit's family bound to each row's parameters: at the estimates, or at ``x`` (the full
    estimate vector in the objective's layout: ψ and the sub-models' coefficients); None for an LMM."""
    fam = getattr(fit, "family", None)
    if fam is None:
        return None
    if x is None:
        return fam if newdata is None else fit._family_at(newdata)
    from ..objective.predictor import PSI_BOUND

    prm = fit._problem.layout.split(x)
    psi = {k: float(np.clip(prm.psi[j], -PSI_BOUND, PSI_BOUND)) for j, k in enumerate(fit._psi_names)}
    for sub in getattr(fit._problem, "submodels", ()):
        Xs = sub.X if newdata is None else sub.design_new(newdata)
        psi[sub.param] = np.clip(Xs @ prm[f"beta_{sub.part}"] / sub.scale, -PSI_BOUND, PSI_BOUND)
    return fam.with_psi(psi) if psi else fam


def _at_nodes(fam, eta, what="mean", rows=None):
    """The family's mean (or conditional variance) of y at linear predictors ``eta`` of shape
    (n, ...): row i's values at row i's parameters (``rows`` picks them when ``eta``'s rows are a
    selection)."""
    eta = np.asarray(eta, dtype=float)
    if fam is None:
        return eta if what == "mean" else None
    per_row = {k: np.asarray(v) for k, v in getattr(fam, "values", {}).items() if np.ndim(v)}
    if per_row and eta.ndim > 1:
        reps = int(np.prod(eta.shape[1:]))
        fam = fam.with_values({k: np.repeat(v if rows is None else v[rows], reps) for k, v in per_row.items()})
    elif per_row and rows is not None:
        fam = fam.with_values({k: v[rows] for k, v in per_row.items()})
    mu = fam.link.inverse(eta.ravel())
    out = fam.response_mean(mu) if what == "mean" else fam.response_variance(mu)
    return np.asarray(out, dtype=float).reshape(eta.shape)


def _response_means_from(fam, eta0, v):
    """E[y] per row: the family's mean of y averaged over t ~ N(0, v) added to η."""
    nodes = eta0[:, None] + np.sqrt(np.maximum(v, 0.0))[:, None] * _NODES[None, :]
    return _at_nodes(fam, nodes) @ _WEIGHTS


def _variances(fit, cols, theta):
    v = np.zeros(cols[0].shape[0]) if cols else np.zeros(0)
    for t, Z in zip(fit.structure.terms, cols):
        C = fit._term_cov(t, theta)
        v = v + np.einsum("ia,ab,ib->i", Z, C, Z)
    return v


# ----- random effects in the zero part too -----

def zero_part_structure(fit):
    """The random-effects structure of the fit's zero-inflation formula (None without one).

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model.

    Returns
    -------
    ModelStructure or None
        The ``ziformula``'s random-effects terms (``~ x + (1 | site)``); None for a fit without a
        ``ziformula``, or with one of fixed effects only.
    """
    for sub in getattr(getattr(fit, "_problem", None), "submodels", ()):
        if sub.part == "zi" and sub.structure is not None:
            return sub.structure
    return None


def _structure_columns(structure, newdata):
    """Per term of ``structure``, its columns for the rows (fitted rows or ``newdata``)."""
    if newdata is None:
        return [t.columns for t in structure.terms]
    from ..frame import term_columns

    nd = newdata.reset_index(drop=True)
    if any(t.structure.kind == "relmat" for t in structure.terms):
        from ..exceptions import NotAvailableError

        raise NotAvailableError("population-averaged means are not available for relmat= terms in the ziformula")
    return [t.columns_from(term_columns(t.source, nd)) for t in structure.terms]


def _structure_cov(structure, theta):
    """Per term, the covariance of its random effects at θ (its block's template, the term's columns)."""
    templates = structure.templates(np.asarray(theta, dtype=float))
    out = []
    for t in structure.terms:
        T = templates[t.block][np.ix_(t.block_cols, t.block_cols)]
        out.append(T @ T.T)
    return out


class _Mixture:
    """The rows' pieces of a zero-inflated (or hurdle) model with random effects in both parts:
    E[y | b, b_zi] = (1 − π(ζ)) h(μ(η)) with η = η₀ + z'b, ζ = ζ₀ + z_zi'b_zi, the two parts'
    effects independent normal terms; h is the count (or positive) part's mean (the family at π = 0)."""

    def __init__(self, fit, newdata=None):
        from ..exceptions import NotAvailableError

        if getattr(fit, "_x", None) is None:
            raise NotAvailableError("population-averaged means of a model with random effects in its ziformula need "
                                    "the fit's estimates of every part, which this fit does not keep")
        self.fit, self.nd = fit, None if newdata is None else newdata.reset_index(drop=True)
        self.layout = fit._problem.layout
        self.zsub = next(sub for sub in fit._problem.submodels if sub.part == "zi")
        self.zstruct = self.zsub.structure
        if self.nd is None:
            self.X, self.off = fit.frame.X[:, fit._x_kept], np.asarray(fit.frame.offset, dtype=float)
            self.Xz = self.zsub.X
        else:
            from ..newdata import fixed_design

            self.X, self.off = fixed_design(fit, self.nd), fit._new_offset(self.nd)
            self.Xz = self.zsub.design_new(self.nd)
        self.cols = _row_columns(fit, self.nd)
        self.zcols = _structure_columns(self.zstruct, self.nd)

    def parts(self, x):
        """(η₀, v, ζ₀, v_zi, family at π = 0) at the full estimate vector x."""
        prm = self.layout.split(x)
        eta0 = self.X @ prm.beta + self.off
        zeta0 = self.Xz @ prm["beta_zi"] / self.zsub.scale
        v = _variances(self.fit, self.cols, prm.theta)
        vz = np.zeros(eta0.shape[0])
        for Z, C in zip(self.zcols, _structure_cov(self.zstruct, prm["theta_zi"])):
            vz = vz + np.einsum("ia,ab,ib->i", Z, C, Z)
        fam = _row_family(self.fit, self.nd, x)
        fam0 = fam.with_values({"zi": np.zeros(eta0.shape[0])})
        return eta0, v, zeta0, vz, fam0

    def row_covariances(self, x):
        """Cov(z_s'b, z_t'b) and Cov(z_zi,s'b_zi, z_zi,t'b_zi) between the rows, at x."""
        prm = self.layout.split(x)
        n = self.X.shape[0]
        S, Sz = np.zeros((n, n)), np.zeros((n, n))
        for t, Z in zip(self.fit.structure.terms, self.cols):
            S += Z @ self.fit._term_cov(t, prm.theta) @ Z.T
        for Z, C in zip(self.zcols, _structure_cov(self.zstruct, prm["theta_zi"])):
            Sz += Z @ C @ Z.T
        return S, Sz

    def means(self, x):
        """E[y] per row: E[1 − π] E[h(μ)] (the parts' effects are independent), by Gauss-Hermite."""
        eta0, v, zeta0, vz, fam0 = self.parts(x)
        return _one_minus_pi(zeta0, vz) @ _WEIGHTS * _response_means_from(fam0, eta0, v)


def _one_minus_pi(zeta0, vz):
    """1 − π at the Gauss-Hermite nodes of ζ₀ + t, t ~ N(0, v_zi): (rows, nodes)."""
    nodes = zeta0[:, None] + np.sqrt(np.maximum(vz, 0.0))[:, None] * _NODES[None, :]
    return 0.5 * (1.0 - np.tanh(0.5 * nodes))


def _pair_expectation(f, mean0, S, s_idx, t_idx, rows_s=None, rows_t=None):
    """E[f_s(a_s) f_t(a_t)] for the pairs (s, t), (a_s, a_t) bivariate normal around (mean0_s, mean0_t)
    with covariance S (a 40 x 40 product Gauss-Hermite rule on its Cholesky factor)."""
    v = np.diag(S)
    l00 = np.sqrt(np.maximum(v[s_idx], 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        l10 = np.where(l00 > 0, S[s_idx, t_idx] / np.where(l00 > 0, l00, 1.0), 0.0)
    l11 = np.sqrt(np.maximum(v[t_idx] - l10**2, 0.0))
    a, c = _NODES[None, :, None], _NODES[None, None, :]
    first = mean0[s_idx][:, None, None] + l00[:, None, None] * a + 0.0 * c
    second = mean0[t_idx][:, None, None] + l10[:, None, None] * a + l11[:, None, None] * c
    return np.einsum("pij,i,j->p", f(first, s_idx) * f(second, t_idx), _WEIGHTS, _WEIGHTS)


def _mixture_moments(fit, newdata) -> dict:
    """``marginal_moments`` of a model with random effects in both parts (see ``_Mixture``)."""
    mix = _Mixture(fit, newdata)
    x = np.asarray(fit._x, dtype=float)
    eta0, v, zeta0, vz, fam0 = mix.parts(x)
    S, Sz = mix.row_covariances(x)
    n = eta0.shape[0]
    q = _one_minus_pi(zeta0, vz) @ _WEIGHTS  # E[1 − π]
    h = _response_means_from(fam0, eta0, v)  # E[h(μ)]
    mean = q * h
    # E[y²] = E[1 − π] E[h² + Var] (the count part's second moment, at π = 0)
    nodes = eta0[:, None] + np.sqrt(np.maximum(v, 0.0))[:, None] * _NODES[None, :]
    second = (_at_nodes(fam0, nodes) ** 2 + _at_nodes(fam0, nodes, what="variance")) @ _WEIGHTS
    variance = q * second - mean**2
    s_idx, t_idx = np.tril_indices(n, -1)

    def one_minus_pi(z, rows):
        return 0.5 * (1.0 - np.tanh(0.5 * z))

    def count_mean(e, rows):
        return _at_nodes(fam0, e, rows=rows)

    joint = (_pair_expectation(one_minus_pi, zeta0, Sz, s_idx, t_idx)
             * _pair_expectation(count_mean, eta0, S, s_idx, t_idx))
    cov = np.zeros((n, n))
    cov[s_idx, t_idx] = joint - mean[s_idx] * mean[t_idx]
    cov = cov + cov.T
    cov[np.diag_indices(n)] = variance
    sdv = np.sqrt(variance)
    idx = newdata.index
    return {"mean": pd.Series(mean, index=idx), "variance": pd.Series(variance, index=idx),
            "covariance": pd.DataFrame(cov, index=idx, columns=idx),
            "correlation": pd.DataFrame(cov / np.outer(sdv, sdv), index=idx, columns=idx)}


def marginal_means(fit, newdata=None) -> np.ndarray:
    """E[y] per row, averaging the mean of y over the random effects (response scale).

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM; one with a zero part is averaged on the mean of y, with random
        effects in its ``ziformula`` too (both parts' effects averaged over).
    newdata : pandas.DataFrame, optional
        Rows to average, with the columns of the fixed and random parts (the fitted rows when
        omitted); its index is not used.

    Returns
    -------
    ndarray, shape (n,)
        The population-averaged mean of each row on the response scale (E_b[g⁻¹(η)]; for a
        zero-inflated model E[(1 − π)] E_b[μ], a hurdle's or truncated family's mean of y likewise),
        in the rows' order.
    """
    nd = None if newdata is None else newdata.reset_index(drop=True)
    if zero_part_structure(fit) is not None:
        check_fixed_submodels(fit, "the population-averaged mean", supported=("theta_zi",))
        return _Mixture(fit, nd).means(np.asarray(fit._x, dtype=float))
    eta0 = fit._predict_array(nd, re_form="~0")
    v = _variances(fit, _row_columns(fit, nd), fit._theta)
    if not has_zero_part(fit):
        return _means_from(fit, eta0, v)
    check_fixed_submodels(fit, "the population-averaged mean")
    return _response_means_from(_row_family(fit, nd), eta0, v)


def _marginal_beta(fit, theta, beta, X, offset, cols, fam=None):
    eta0 = X @ beta + offset
    v = _variances(fit, cols, theta)
    mu = _means_from(fit, eta0, v) if fam is None else _response_means_from(fam, eta0, v)
    link = fit.family.link.link if fit.has_family else (lambda m: m)
    target = link(mu) - offset
    return np.linalg.lstsq(X, target, rcond=None)[0]


def _zero_part_coefs(fit, X, offset, cols):
    """Marginal coefficients of a fit with a zero part and their Jacobian in the full estimate vector."""
    from ..fitting.driver import central_jacobian

    layout = fit._problem.layout
    if zero_part_structure(fit) is not None:  # both parts' random effects averaged over
        mix = _Mixture(fit)
        link = fit.family.link.link

        def f(x):
            return np.linalg.lstsq(X, link(mix.means(x)) - offset, rcond=None)[0]

        return central_jacobian(f, np.asarray(fit._x, dtype=float))

    def f(x):
        prm = layout.split(x)
        return _marginal_beta(fit, prm.theta, prm.beta, X, offset, cols, _row_family(fit, None, x))

    return central_jacobian(f, np.asarray(fit._x, dtype=float))


def marginal_coefs(fit) -> pd.DataFrame:
    """Population-averaged coefficients with delta-method standard errors.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model. A GLMM's standard errors come from its covariance of (θ, β) (NaN without
        one); a model with a zero part needs its estimates of every part (``NotAvailableError``
        without them) and takes its standard errors from their joint covariance.

    Returns
    -------
    pandas.DataFrame
        Indexed by fixed effect: estimate (on the link scale), std_error, statistic (estimate /
        std_error, a z value), p_value (two-sided normal), conditional (β) and attenuation
        (estimate / conditional); an LMM's equal β;
        for a model with a zero part the coefficients of g(E[y]), the zero part included.
    """
    from scipy import stats

    X = fit.frame.X[:, fit._x_kept]
    offset = fit.frame.offset
    cols = _row_columns(fit, None)
    theta, beta = np.asarray(fit._theta, dtype=float), fit._beta
    zero = has_zero_part(fit)
    if zero:
        check_fixed_submodels(fit, "marginal_coefs", supported=("theta_zi",))
    if zero and getattr(fit, "_x", None) is None:
        from ..exceptions import NotAvailableError

        raise NotAvailableError(f"marginal coefficients of a {fit.family.name} model need its estimates of every "
                                "part, which this fit does not keep")
    zi_random = zero and zero_part_structure(fit) is not None
    if zi_random:
        est = None  # the coefficients come with their Jacobian
    else:
        est = _marginal_beta(fit, theta, beta, X, offset, cols, _row_family(fit) if zero else None)
    cov = getattr(fit, "_x_cov", None) if zero else getattr(fit, "_param_cov", None)
    if zero:
        est_j, J = _zero_part_coefs(fit, X, offset, cols)
        est = est_j if zi_random else est
        ok = cov is not None and np.all(np.isfinite(cov))
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, cov, J), 0.0)) if ok else np.full(est.shape, np.nan)
    elif fit.has_residual or not fit.has_family:
        se = np.sqrt(np.diag(fit._vcov))  # identity link: marginal = conditional
    elif cov is None or not np.all(np.isfinite(cov)):
        se = np.full(est.shape, np.nan)
    else:
        from ..fitting.driver import central_jacobian

        nt = theta.shape[0]
        _, J = central_jacobian(lambda x: _marginal_beta(fit, x[:nt], x[nt:], X, offset, cols),
                                np.concatenate([theta, beta]))
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, cov, J), 0.0))
    z = est / se
    out = pd.DataFrame({"estimate": est, "std_error": se, "statistic": z, "p_value": 2.0 * stats.norm.sf(np.abs(z)),
                        "conditional": beta}, index=fit.fixef.index)
    out["attenuation"] = out["estimate"] / out["conditional"]
    return out


def marginal_moments(fit, newdata) -> dict:
    """Marginal mean and variance of y per row of ``newdata`` and the covariance and correlation that
    the random effects induce between those rows when they belong to one cluster (every factor),
    plus σ² R between them for a residual correlation structure (at the rows' times, or their order
    for ``ar1(1 | g)``).

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM (a zero-inflated or hurdle one too, with or without random effects in
        its ``ziformula``).
    newdata : pandas.DataFrame
        The rows, with the columns of the fixed and random parts; every row is taken to belong to
        one cluster of every grouping factor. The n rows give n x n matrices, so keep n to one
        cluster's size.

    Returns
    -------
    dict
        ``"mean"`` and ``"variance"`` (pandas.Series of length n, on the response scale: E[y] and
        Var(y), the latter the within-row variance plus that of the averaged mean), ``"covariance"``
        and ``"correlation"`` (pandas.DataFrame, n x n, the variances on the diagonal), indexed by
        ``newdata``'s index.
    """
    if zero_part_structure(fit) is not None:
        check_fixed_submodels(fit, "marginal_moments", supported=("theta_zi",))
        return _mixture_moments(fit, newdata)
    nd = newdata.reset_index(drop=True)
    eta0 = fit._predict_array(nd, re_form="~0")
    cols = _row_columns(fit, nd)
    n = eta0.shape[0]
    S = np.zeros((n, n))  # Cov(z_s'b, z_t'b)
    for t, Z in zip(fit.structure.terms, cols):
        S += Z @ fit._term_cov(t) @ Z.T
    v = np.diag(S).copy()
    if has_zero_part(fit):
        check_fixed_submodels(fit, "marginal_moments")
    fam = _row_family(fit, nd) if has_zero_part(fit) else None
    if fam is None:
        inv = _inverse_link(fit)
    else:  # the family's mean of y at each row's parameters (rows: which rows' parameters)
        def inv(e, rows=None):
            return _at_nodes(fam, e, rows=rows)
    mean = _means_from(fit, eta0, v) if fam is None else _response_means_from(fam, eta0, v)
    sd = np.sqrt(np.maximum(v, 0.0))
    eta_nodes = eta0[:, None] + sd[:, None] * _NODES[None, :]
    mu_nodes = inv(eta_nodes)
    var_mu = (mu_nodes**2) @ _WEIGHTS - mean**2
    R = getattr(fit, "_residual", None)
    d = np.ones(n)
    if R is not None and R.variance is not None:
        d = np.exp(R.variance.log_sd_new(nd, R.split(fit._residual_psi)[0]))
    if fit.has_residual:
        within = fit.sigma**2 * d * d
    else:
        within = (fit.family.variance(mu_nodes) if fam is None
                  else _at_nodes(fam, eta_nodes, what="variance")) @ _WEIGHTS
    variance = within + var_mu
    # every pair at once: (z_s'b, z_t'b) = (l00 a, l10 a + l11 c), a, c independent standard normal
    s_idx, t_idx = np.tril_indices(n, -1)
    l00 = sd[s_idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        l10 = np.where(l00 > 0, S[s_idx, t_idx] / np.where(l00 > 0, l00, 1.0), 0.0)
    l11 = np.sqrt(np.maximum(v[t_idx] - l10**2, 0.0))
    a, c = _NODES[None, :, None], _NODES[None, None, :]
    first = eta0[s_idx][:, None, None] + l00[:, None, None] * a + 0.0 * c
    second = eta0[t_idx][:, None, None] + l10[:, None, None] * a + l11[:, None, None] * c
    joint = (inv(first) * inv(second) if fam is None else inv(first, rows=s_idx) * inv(second, rows=t_idx))
    cov = np.zeros((n, n))
    cov[s_idx, t_idx] = np.einsum("pij,i,j->p", joint, _WEIGHTS, _WEIGHTS) - mean[s_idx] * mean[t_idx]
    cov = cov + cov.T
    if R is not None and R.correlation is not None:  # the residual structure correlates the rows: σ² D R D
        spec = R.layout.spec
        times = np.arange(n, dtype=float) if spec.time is None else np.asarray(nd[spec.time], dtype=float)
        Rm = R.correlation_at(fit._residual_psi, times)
        off = ~np.eye(n, dtype=bool)
        cov[off] += (fit.sigma**2 * np.outer(d, d) * Rm)[off]
    cov[np.diag_indices(n)] = variance
    sdv = np.sqrt(variance)
    corr = cov / np.outer(sdv, sdv)
    idx = newdata.index
    return {"mean": pd.Series(mean, index=idx), "variance": pd.Series(variance, index=idx),
            "covariance": pd.DataFrame(cov, index=idx, columns=idx),
            "correlation": pd.DataFrame(corr, index=idx, columns=idx)}
