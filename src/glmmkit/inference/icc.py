"""Intraclass correlation (Nakagawa, Johnson & Schielzeth 2017), as performance::icc.

    adjusted    = σ²_RE / (σ²_RE + σ²_d)
    conditional = σ²_RE / (σ²_fixed + σ²_RE + σ²_d)

σ²_RE sums, over the random-effect terms, the mean over rows of z_i'Σz_i (a
random slope's variance depends on x); σ²_fixed is the sample variance of Xβ;
σ²_d is the distribution-specific variance on the latent scale: σ² (Gaussian),
π²/3 (logit), 1 (probit), π²/6 (cloglog), and for log-link counts the
log-normal approximation log(1 + Var(y)/μ²) with μ = exp(intercept of the null
model, same random effects) (Poisson: log(1 + 1/μ); NB2: log(1 + 1/μ + 1/θ));
for the Gamma trigamma(shape), the variance of log y.  Per grouping factor the
ICC is that factor's intercept variance over σ²_RE + σ²_d.
"""

from __future__ import annotations

import numpy as np
from scipy.special import polygamma

__all__ = ["icc"]

_LATENT = {"logit": np.pi**2 / 3.0, "probit": 1.0, "cloglog": np.pi**2 / 6.0}


def _random_variance(fit) -> tuple[float, dict]:
    total, intercepts = 0.0, {}
    for t in fit.structure.terms:
        C = fit._term_cov(t)
        Z = t.columns  # rows x the term's columns (1 for an intercept)
        total += float(np.mean(np.einsum("ia,ab,ib->i", Z, C, Z)))
        if "(Intercept)" in t.names:
            i = t.names.index("(Intercept)")
            intercepts[t.group] = intercepts.get(t.group, 0.0) + float(C[i, i])
    return total, intercepts


def _distribution_variance(fit) -> float:
    from ..exceptions import ArgumentError

    fam = getattr(fit, "family", None)
    if fam is None:  # a linear mixed model
        return float(fit.sigma**2)
    name, link = fam.name, fam.link.name
    if name == "binomial":
        if link not in _LATENT:
            raise ArgumentError(f"ICC on the latent scale is defined for logit, probit and cloglog links, not {link!r}")
        return _LATENT[link]
    if name == "gamma":
        return float(polygamma(1, fit.family_params["shape"]))
    if name in ("poisson", "negative_binomial") and link == "log":
        mu = _null_model_mean(fit)
        extra = 1.0 / fit.family_params["theta"] if name == "negative_binomial" else 0.0
        return float(np.log1p(1.0 / mu + extra))
    if name == "gaussian":
        return float(fit.family_params["sigma"] ** 2)
    raise ArgumentError(f"the ICC is not defined here for the {name} family with the {link} link")


def _null_model_mean(fit) -> float:
    """exp(intercept) of the model with the same random effects (the fit's own structure, not a formula
    rebuilt from term names) and an intercept as the only fixed effect."""
    import dataclasses

    problem = fit._problem
    ones = np.ones((fit.nobs, 1))
    frame = dataclasses.replace(problem.frame, X=ones, x_names=["(Intercept)"], messages=[])
    null = dataclasses.replace(problem, frame=frame, X=ones, kept=[0], dropped=[], messages=()).fit()
    return float(np.exp(null._beta[0]))


def icc(fit) -> dict:
    """Intraclass correlation (Nakagawa et al. 2017, as performance::icc); see :meth:`MixedModelFit.icc`.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.

    Returns
    -------
    dict
        ``"adjusted"`` (random / (random + distribution variance)), ``"conditional"`` (the same with
        the fixed effects' variance added to the denominator), ``"variances"`` (a dict of the
        ``"random"``, ``"fixed"`` and ``"distribution"`` variances used, on the latent scale) and, when
        terms have random intercepts, ``"by_group"`` (factor -> its intercept variance over the
        adjusted denominator).
    """
    var_re, intercepts = _random_variance(fit)
    var_d = _distribution_variance(fit)
    var_fixed = float(np.var(fit.frame.X[:, fit._x_kept] @ fit._beta, ddof=1)) if fit._beta.shape[0] else 0.0
    out = {"adjusted": var_re / (var_re + var_d), "conditional": var_re / (var_fixed + var_re + var_d),
           "variances": {"random": var_re, "fixed": var_fixed, "distribution": var_d}}
    if len(intercepts) > 0:
        out["by_group"] = {g: v / (var_re + var_d) for g, v in intercepts.items()}
    return out
