"""broom.mixed's tables of a fit (``tidy``, ``glance``, ``augment``) and lme4's ``coef``.

Each reads a fit's own views (coef_table, the variance parameters of ``parameters.py``,
ranef, condvar, confint) and lays them out with broom.mixed's rows and column names
(``.`` in R's names becomes ``_``: ``std_error``, ``p_value``, ``conf_low``); nothing is
estimated here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError

__all__ = ["tidy", "glance", "augment", "coef"]

EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")
CONF_METHODS = {"wald": "wald", "profile": "profile", "boot": "bootstrap", "bootstrap": "bootstrap"}


def _check_effects(effects) -> list[str]:
    if isinstance(effects, str):
        effects = (effects,)
    effects = list(effects)
    bad = [e for e in effects if e not in EFFECTS]
    if bad or not effects:
        raise ArgumentError(f"effects={bad or effects!r}: choose among {', '.join(EFFECTS)} (broom.mixed's names)")
    return effects


def _ran_par_rows(fit, scales: str) -> list[dict]:
    """broom.mixed's ran_pars rows: per term sd__<col> and cor__<col>.<col> (or var__/cov__), in
    lme4's order, then the residual's ``sd__Observation``; ``key`` is the parameter's lme4 name
    (``sd_(Intercept)|Subject``), under which ``confint`` reports it."""
    rows = []
    sigma = fit.sigma if fit.has_residual else 1.0
    for t in fit.structure.terms:
        cs = t.structure
        phi = fit._theta[t.theta_slice]
        pairs = {f"cor_{t.names[r]}.{t.names[c]}": (r, c) for c in range(t.k) for r in range(c + 1, t.k)}
        C = fit._term_cov(t)
        for name, value, _, _ in cs.natural(phi, sigma, t.names):
            key = f"{name}|{t.group}"
            if name.startswith("sd_") and name[3:] in t.names:
                col = name[3:]
                i = t.names.index(col)
                term, est = (f"sd__{col}", value) if scales == "sdcor" else (f"var__{col}", C[i, i])
            elif name in pairs:
                r, c = pairs[name]
                pair = f"{t.names[c]}.{t.names[r]}"
                term, est = (f"cor__{pair}", value) if scales == "sdcor" else (f"cov__{pair}", C[r, c])
            else:  # a structured term's own parameters (sd of homdiag/ar1, rho, range): their names as they are
                shared = t.names[0] if t.k == 1 else f"{t.names[0]}..{t.names[-1]}"  # one sd for every column
                term, est = (f"sd__{shared}" if name == "sd" else name), value
                if scales == "vcov" and name == "sd":
                    term, est = term.replace("sd__", "var__", 1), value**2
            rows.append({"effect": "ran_pars", "group": t.label, "term": term, "estimate": float(est), "key": key})
    if fit.has_residual:
        term, est = ("sd__Observation", fit.sigma) if scales == "sdcor" else ("var__Observation", fit.sigma**2)
        rows.append({"effect": "ran_pars", "group": "Residual", "term": term, "estimate": float(est), "key": "sigma"})
    R = getattr(fit, "_residual", None)
    if R is not None:
        g = R.layout.spec.group_name
        for name, value, _, _ in R.natural(fit._residual_psi):
            rows.append({"effect": "ran_pars", "group": "Residual", "term": f"{name}__{g}", "estimate": float(value),
                         "key": f"{name}|{g}"})
    return rows


def _ran_val_rows(fit, z: float | None) -> list[dict]:
    rows = []
    for factor, re in fit.ranef.items():
        cv = fit._condvar.get(factor)
        se = np.sqrt(np.maximum(np.einsum("gkk->gk", cv), 0.0)) if cv is not None else np.full(re.shape, np.nan)
        for j, term in enumerate(re.columns):
            for i, level in enumerate(re.index):
                row = {"effect": "ran_vals", "group": factor, "level": str(level), "term": term,
                       "estimate": float(re.iat[i, j]), "std_error": float(se[i, j])}
                if z is not None:
                    row["conf_low"] = row["estimate"] - z * row["std_error"]
                    row["conf_high"] = row["estimate"] + z * row["std_error"]
                rows.append(row)
    return rows


def tidy(fit, effects=("fixed", "ran_pars"), conf_int: bool = False, conf_level: float = 0.95,
         conf_method: str = "wald", scales: str = "sdcor", ddf=None, **confint_kwargs) -> pd.DataFrame:
    """broom.mixed's ``tidy``: one row per parameter; see :meth:`MixedModelFit.tidy` for the full story.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.
    effects : str or sequence of str, default ("fixed", "ran_pars")
        Any of ``"fixed"``, ``"ran_pars"`` (SDs and correlations), ``"ran_vals"`` (conditional modes
        per level) and ``"ran_coefs"`` (``coef()``).
    conf_int : bool, default False
        Add conf_low and conf_high columns.
    conf_level : float, default 0.95
        Confidence level of the intervals.
    conf_method : {"wald", "profile", "boot"}, default "wald"
        Interval method of ``confint`` (``"bootstrap"`` is an alias of ``"boot"``).
    scales : {"sdcor", "vcov"}, default "sdcor"
        ran_pars as SDs and correlations or as variances and covariances.
    ddf : {None, "satterthwaite", "kenward-roger", "z"}, optional
        Degrees of freedom of the fixed-effect tests, as ``coef_table``.
    **confint_kwargs
        Passed to ``confint`` (``n_boot``, ``seed``, ``progress``, ``n_jobs``).

    Returns
    -------
    pandas.DataFrame
        Columns effect, group, [level,] term, estimate, std_error, statistic, [df (LMMs),] p_value,
        [conf_low, conf_high]; ``group`` is None for fixed effects.
    """
    from scipy.stats import norm

    effects = _check_effects(effects)
    if scales not in ("sdcor", "vcov"):
        raise ArgumentError(f"scales={scales!r}: use 'sdcor' (standard deviations and correlations) or 'vcov'")
    method = CONF_METHODS.get(str(conf_method).lower())
    if method is None:
        raise ArgumentError(f"conf_method={conf_method!r}: use 'wald', 'profile' or 'boot'")
    if not 0 < conf_level < 1:
        raise ArgumentError(f"conf_level={conf_level!r} must lie between 0 and 1")
    ci = None
    if conf_int and method != "wald" and ({"fixed", "ran_pars"} & set(effects)):
        ci = fit.confint(method=method, level=conf_level, **confint_kwargs)
    lmm_df = fit.kind == "lmm"
    frames = []
    for eff in effects:
        if eff == "fixed":
            ct = fit.coef_table(ddf=ddf, level=conf_level)
            d = pd.DataFrame({"effect": "fixed", "group": None, "term": list(ct.index),
                              "estimate": ct["estimate"].to_numpy(), "std_error": ct["std_error"].to_numpy(),
                              "statistic": ct["statistic"].to_numpy()})
            if lmm_df:
                d["df"] = ct["df"].to_numpy()
            d["p_value"] = ct["p_value"].to_numpy()
            if ci is not None:
                d["conf_low"] = ci.loc[list(ct.index), "lower"].to_numpy()
                d["conf_high"] = ci.loc[list(ct.index), "upper"].to_numpy()
            elif conf_int:  # Wald: the coefficient table's own intervals (t with its df for LMMs, as broom.mixed)
                d["conf_low"], d["conf_high"] = ct["ci_lower"].to_numpy(), ct["ci_upper"].to_numpy()
            frames.append(d)
        elif eff == "ran_pars":
            rows = _ran_par_rows(fit, scales)
            d = pd.DataFrame(rows, columns=["effect", "group", "term", "estimate", "key"])
            d["std_error"] = np.nan
            d["statistic"] = np.nan
            if lmm_df:
                d["df"] = np.nan
            d["p_value"] = np.nan
            if conf_int and ci is None:
                d["conf_low"], d["conf_high"] = np.nan, np.nan
            if ci is not None:
                lo = ci["lower"].reindex(d["key"]).to_numpy()
                hi = ci["upper"].reindex(d["key"]).to_numpy()
                if scales == "vcov":  # intervals are for sd and cor: square the sd ones, leave cov rows empty
                    var = d["term"].str.startswith("var__").to_numpy()
                    lo, hi = np.where(var, lo**2, np.nan), np.where(var, hi**2, np.nan)
                d["conf_low"], d["conf_high"] = lo, hi
            frames.append(d.drop(columns="key"))
        elif eff == "ran_vals":
            z = norm.ppf(0.5 + conf_level / 2) if conf_int else None
            frames.append(pd.DataFrame(_ran_val_rows(fit, z)))
        else:  # ran_coefs
            rows = []
            for factor, tab in coef(fit).items():
                for term in tab.columns:
                    for level, v in tab[term].items():
                        rows.append({"effect": "ran_coefs", "group": factor, "level": str(level), "term": term,
                                     "estimate": float(v)})
            frames.append(pd.DataFrame(rows))
    out = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else frames[0]
    cols = ["effect", "group"] + (["level"] if "level" in out else []) + ["term", "estimate", "std_error",
                                                                          "statistic"]
    cols += (["df"] if lmm_df else []) + ["p_value"]
    if conf_int:
        cols += ["conf_low", "conf_high"]
    out = out.reindex(columns=cols)
    out["group"] = out["group"].astype(object).where(out["group"].notna(), None)
    if "level" in out:
        out["level"] = out["level"].astype(object).where(out["level"].notna(), None)
    out.attrs.update({"conf_level": conf_level if conf_int else None, "conf_method": method if conf_int else None})
    return out


def glance(fit) -> pd.DataFrame:
    """broom.mixed's ``glance``: a one-row summary of the fit; see :meth:`MixedModelFit.glance`.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.

    Returns
    -------
    pandas.DataFrame
        One row: nobs, sigma, logLik, AIC, BIC, deviance (REMLcrit for REML fits), df.residual.
    """
    has_lik = fit.has_likelihood
    row = {"nobs": int(fit.nobs), "sigma": float(fit.sigma),
           "logLik": float(fit.loglik) if has_lik else np.nan,
           "AIC": float(fit.aic) if has_lik else np.nan,
           "BIC": float(fit.bic) if has_lik else np.nan}
    if getattr(fit, "reml", False):
        row["REMLcrit"] = float(fit.reml_criterion)  # broom.mixed: REML fits have REMLcrit, no deviance
    elif fit.has_family:
        # lme4's deviance() of a GLMM (and so glance's): the sum of squared deviance residuals, not -2 logLik
        row["deviance"] = float(np.sum(np.asarray(fit.residuals("deviance"), dtype=float) ** 2))
    else:
        row["deviance"] = float(fit.deviance)
    row["df.residual"] = int(fit.df_resid)
    return pd.DataFrame([row])


def _link_predictor(fit) -> np.ndarray:
    return np.asarray(fit._eta(), dtype=float)


def augment(fit, data=None) -> pd.DataFrame:
    """broom.mixed's ``augment``: the data with the fit's per-row values; see :meth:`MixedModelFit.augment`.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.
    data : pandas.DataFrame, optional
        The data the model was fitted to (all columns kept, unused rows get NaN); default the used
        columns of the fitted rows.

    Returns
    -------
    pandas.DataFrame
        The data plus ``.fitted``, ``.resid``, ``.fixed`` and (LMMs) ``.hat``, ``.cooksd`` or
        (GLMMs) ``.mu``.
    """
    used = fit.frame.data
    index = used.index
    fixed = fit.frame.X[:, fit._x_kept] @ fit._beta if len(fit._x_kept) else np.zeros(fit.nobs)
    if fit.has_family:
        cols = {".fitted": _link_predictor(fit), ".resid": np.asarray(fit.residuals(), dtype=float),
                ".fixed": fixed, ".mu": np.asarray(fit.fitted(), dtype=float)}
    else:
        resid = np.asarray(fit.residuals(), dtype=float)
        cols = {".fitted": np.asarray(fit.fitted(), dtype=float), ".resid": resid, ".fixed": fixed}
        if getattr(fit, "residual_structure", None) is None:
            # lme4's hatvalues and cooks.distance (as broom.mixed adds them): D = r² h / (p σ² (1 - h)²)
            h = np.asarray(fit.hatvalues(), dtype=float)
            p = max(len(fit.x_names), 1)
            w = np.ones_like(resid) if fit.frame.weights is None else np.asarray(fit.frame.weights, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                cols[".hat"] = h
                cols[".cooksd"] = w * resid**2 * h / (p * fit.sigma**2 * (1.0 - h) ** 2)
    if data is None:
        out = used.copy()
    else:
        if not isinstance(data, pd.DataFrame):
            from ..exceptions import DataTypeError

            raise DataTypeError(f"data must be the pandas DataFrame the model was fitted to, not {type(data).__name__}")
        missing = index.difference(data.index)
        if len(missing):
            raise ArgumentError(
                f"data lacks {len(missing)} of the fitted rows (index {list(missing[:3])}...): augment() adds columns "
                "to the data the model was fitted to; for new data use fit.predict(newdata)")
        out = data.copy()
    for name, values in cols.items():
        out[name] = pd.Series(values, index=index).reindex(out.index)
    return out


def coef(fit) -> dict:
    """lme4's ``coef``: fixed plus random effects per level; see :meth:`MixedModelFit.coef`.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.

    Returns
    -------
    dict
        Grouping-factor name -> DataFrame (levels x coefficients) of each level's coefficients.
    """
    fe = fit.fixef
    out = {}
    for factor, re in fit.ranef.items():
        re = re.T.groupby(level=0, sort=False).sum().T  # a column in two terms on one factor: their sum
        extra = [c for c in re.columns if c not in fe.index]
        cols = list(fe.index) + extra
        tab = pd.DataFrame(np.tile(fe.reindex(cols).fillna(0.0).to_numpy(), (len(re), 1)), index=re.index,
                           columns=cols)
        tab[list(re.columns)] = tab[list(re.columns)].to_numpy() + re.to_numpy()
        out[factor] = tab
    return out
