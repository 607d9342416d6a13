"""Self-contained HTML pages of a fit: ``fit.report(path)``, ``glmmkit fit --report`` and the
notebook display (``_repr_html_``).

The page needs nothing from the network: styles are inline and plots are PNGs in
``data:`` URIs, so it can be mailed, archived or opened offline.  This module only
reads a fit (tables, ICC, diagnostics); it computes no estimates of its own.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ReportMixin", "fit_report_html", "fit_tables_html"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.6em}
table.gk{border-collapse:collapse;margin:.5em 0 1em 0;font-size:.92em}
table.gk th,table.gk td{padding:.25em .7em;text-align:right;border-bottom:1px solid #e4e4e4}
table.gk th:first-child,table.gk td:first-child,table.gk td.txt,table.gk th.txt{text-align:left}
table.gk thead th{border-bottom:2px solid #888}
.meta{color:#555}.ok{color:#1a7f37;font-weight:600}.warn{color:#b35900;font-weight:600}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;margin:.4em 0}
pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:.85em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:.9em}
"""


def _num(v, digits: int = 4) -> str:
    if v is None:
        return ""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    if not np.isfinite(x):
        return "" if np.isnan(x) else ("Inf" if x > 0 else "-Inf")
    if x != 0 and (abs(x) < 1e-4 or abs(x) >= 1e6):
        return f"{x:.{digits - 1}e}"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{x:#.{digits}g}".rstrip(".")  # 237.0, not 237: four significant digits shown as such


def _exact(x) -> str:
    """A fit statistic at full precision (log-likelihood -1073.0475, not -1073): R's ``print(logLik)``
    digits and more, never rounded to the integer."""
    x = float(x)
    if not np.isfinite(x):
        return "" if np.isnan(x) else ("Inf" if x > 0 else "-Inf")
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x)}"
    return f"{x:.10g}" if abs(x) >= 1 else f"{x:.8g}"


def _is_missing(v) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and bool(np.isnan(v))


def _table(df: pd.DataFrame, index: bool = True, pcols=(), exact=()) -> str:
    """A DataFrame as a plain HTML table: numbers with 4 significant digits (the ``exact`` columns at full
    precision), p-values as R prints them, missing cells empty, text columns left-aligned."""
    text_cols = {c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])
                 or pd.api.types.is_bool_dtype(df[c])}
    head = ([("", "")] if index else []) + [(html.escape(str(c)), " class='txt'" if c in text_cols else "")
                                            for c in df.columns]
    rows = []
    for idx, r in df.iterrows():
        cells = [(html.escape(str(idx)), "")] if index else []
        for c, v in r.items():
            cls = " class='txt'" if c in text_cols else ""
            if _is_missing(v):
                cells.append(("", cls))  # not applicable (a variance row's partner term, a Wald interval of a variance)
            elif c in pcols and isinstance(v, (float, np.floating)):
                cells.append(("&lt;2e-16" if v < 2e-16 else f"{v:.3g}", cls))
            elif c in exact and isinstance(v, (float, np.floating)):
                cells.append((_exact(v), cls))
            elif isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_)):
                cells.append((_num(v), cls))
            else:
                cells.append((html.escape(str(v)), cls))
        rows.append("<tr>" + "".join(f"<td{k}>{c}</td>" for c, k in cells) + "</tr>")
    return ("<table class='gk'><thead><tr>" + "".join(f"<th{k}>{h}</th>" for h, k in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _model_line(fit) -> str:
    if not fit.has_family:
        return f"Linear mixed model fit by {'REML' if fit.reml else 'maximum likelihood'}"
    how = "penalized quasi-likelihood" if fit.kind == "pql" else f"maximum likelihood ({fit.method})"
    return f"Generalized linear mixed model, {_family_name(fit)} family, {fit.link} link, fit by {how}"


def _status_html(fit) -> str:
    info = fit.optimizer_info
    ok = fit.converged
    parts = [f"<p><span class='{'ok' if ok else 'warn'}'>{'Converged' if ok else 'Did not converge'}</span>"
             f" &middot; optimiser: {html.escape(str(info.optimizer))}, {info.n_evals} evaluations, "
             f"{info.time_s:.2f} s" + (f", engine: {html.escape(info.engine)}" if getattr(info, "engine", "") else "")]
    if fit.singular:
        parts.append(" &middot; <span class='warn'>singular fit</span> (a variance is zero or a correlation "
                     "is &plusmn;1: consider simplifying the random-effects structure)")
    parts.append("</p>")
    parts += [f"<div class='note'>{html.escape(m)}</div>" for m in info.messages]
    return "".join(parts)


def _fit_stats(fit) -> pd.DataFrame:
    rows = {"observations": fit.nobs}
    rows.update({f"groups: {k}": v for k, v in fit.ngroups.items()})
    if getattr(fit, "reml", False):
        rows["REML criterion"] = fit.reml_criterion
    elif np.isfinite(fit.loglik):
        rows.update({"log-likelihood": fit.loglik, "AIC": fit.aic, "BIC": fit.bic, "deviance": fit.deviance})
    rows["estimated parameters"] = fit.npar
    return pd.DataFrame({"value": list(rows.values())}, index=list(rows.keys()))


_FAMILY_NAMES = {"negative_binomial": "negative binomial (NB2)", "nbinom1": "negative binomial (NB1)",
                 "inverse_gaussian": "inverse Gaussian", "student_t": "Student-t", "gaussian": "Gaussian"}


def _family_name(fit) -> str:
    name = fit.family.name
    return _FAMILY_NAMES.get(name, name)


def _ratio_label(fit) -> str | None:
    """"Odds ratios" / "Rate ratios" / "Ratios of means" where exp(coefficient) reads as one, else None."""
    link = getattr(fit, "link", None)
    if link not in ("logit", "log") or fit.kind == "pql":
        return None
    if fit.family.name in ("gamma", "inverse_gaussian", "gaussian", "student_t"):
        return "Ratios of means"
    return "Odds ratios" if link == "logit" else "Rate ratios"


def _fixed_html(fit) -> str:
    ct = fit.coef_table()
    has_df = "df" in ct and bool(np.isfinite(ct["df"]).any())
    cols = {"estimate": "Estimate", "std_error": "Std. Error", "df": "df", "statistic": "statistic",
            "p_value": "p-value", "ci_lower": "Wald 2.5 %", "ci_upper": "Wald 97.5 %"}
    if fit.has_family or not has_df:
        cols["statistic"] = "z value"
        how = ("z tests and 95% Wald intervals (estimate &plusmn; 1.96 standard errors), conditional on the "
               "random effects.")
    else:
        cols.update({"statistic": "t value", "ci_lower": "2.5 % (t)", "ci_upper": "97.5 % (t)"})
        how = ("t tests and 95% intervals with Satterthwaite's denominator degrees of freedom (df), as "
               "lmerTest's summary.")
    ct = ct.rename(columns=cols)
    if "df" in ct and not has_df:
        ct = ct.drop(columns="df")
    out = [_table(ct, pcols=("p-value",)), f"<p class='meta'>{how}</p>"]
    label = _ratio_label(fit)
    if label is not None:
        et = fit.coef_table(exponentiate=True)[["estimate", "ci_lower", "ci_upper"]]
        et.columns = ["exp(Estimate)", "Wald 2.5 %", "Wald 97.5 %"]
        out.append(f"<p>{label} with 95% Wald intervals (conditional on the random effects):</p>" + _table(et))
    return "".join(out)


def _random_html(fit) -> str:
    vc = fit.varcorr.copy()
    vc = vc.rename(columns={"group": "Group", "term1": "Effect", "term2": "Correlated with",
                            "vcov": "Variance / Cov", "sdcor": "Std.Dev. / Corr"})
    if "Correlated with" in vc and vc["Correlated with"].isna().all():
        vc = vc.drop(columns="Correlated with")
    out = [_table(vc, index=False)]
    if "Correlated with" in vc:
        out.append("<p class='meta'>Rows with a &ldquo;Correlated with&rdquo; entry give the covariance and the "
                   "correlation of the two effects.</p>")
    fp = fit.family_params_table() if fit.kind == "glmm" else None
    if fp is not None and len(fp):
        fp = fp.rename(columns={"estimate": "Estimate", "log_estimate": "log(Estimate)", "log_se": "SE of log"})
        fp.index.name = None
        out.append(f"<p>Parameters of the {html.escape(_family_name(fit))} family (intervals: Wald on the log "
                   "scale, mapped back):</p>" + _table(fp))
    if fit.kind != "pql":
        try:
            icc = fit.icc()
        except Exception as exc:  # an ICC is undefined for some families; say why instead of failing the page
            out.append(f"<p class='meta'>ICC not available: {html.escape(str(exc))}</p>")
        else:
            rows = pd.DataFrame({"value": [icc["adjusted"], icc["conditional"]]},
                                index=["ICC (adjusted)", "ICC (conditional on fixed effects)"])
            for g, v in icc.get("by_group", {}).items():
                rows.loc[f"{g}: intercept variance share"] = v
            out.append("<p>Intraclass correlation (Nakagawa et al.; latent scale for GLMMs). Adjusted: random-effect "
                       "variance over random + distribution variance; conditional: the fixed effects' variance also "
                       "in the denominator; a group's share: its intercept variance over the adjusted "
                       "denominator.</p>" + _table(rows))
    return "".join(out)


_CI_NAMES = {"wald": "Wald", "profile": "Profile-likelihood", "boot": "Parametric bootstrap (percentile)",
             "bootstrap": "Parametric bootstrap (percentile)"}


def _parameter_estimates(fit) -> dict:
    """Point estimates under ``confint``'s row names (fixed effects, ``sd_T|G``, ``cor_T2.T1|G``, ``sigma``)."""
    est = {str(k): float(v) for k, v in fit.fixef.items()}
    for r in fit.varcorr.itertuples(index=False):
        if r.group == "Residual":
            est["sigma"] = float(r.sdcor)
        elif isinstance(r.term2, str):
            est[f"cor_{r.term2}.{r.term1}|{r.group}"] = float(r.sdcor)
        else:
            est[f"sd_{r.term1}|{r.group}"] = float(r.sdcor)
    if fit.has_family:  # the bootstrap's rows of the family's own parameters (theta, ...)
        est.update({str(k): float(v) for k, v in fit.family_params.items()})
    return est


def _confint_html(ci, level=None, fit=None) -> str:
    """The intervals the caller computed (``fit.confint(...)``), under the name of their method, with the
    point estimates beside them and, where the link makes ratios, the exponentiated fixed-effect rows."""
    method = str(ci.attrs.get("method", "")).lower()
    level = ci.attrs.get("level", level)
    what = _CI_NAMES.get(method, method.capitalize() or "Confidence")
    lv = ""
    if level is not None:
        lv = f", {100 * float(level):g}%"
        lo, hi = f"{50 * (1 - float(level)):g} %", f"{100 - 50 * (1 - float(level)):g} %"
    else:
        lo, hi = "lower", "upper"
    tab = ci.rename(columns={"lower": lo, "upper": hi})
    est = _parameter_estimates(fit) if fit is not None else {}
    if est:
        tab.insert(0, "Estimate", [est.get(str(i), np.nan) for i in tab.index])
    notes = []
    if method == "wald" and tab[[lo, hi]].isna().any().any():
        notes.append("Wald intervals of variance parameters are not defined (left empty, as lme4); "
                     "--confint profile or bootstrap gives them.")
    if "n_boot" in ci.attrs:
        notes.append(f"{ci.attrs['n_boot']} bootstrap samples.")
    names = [str(i) for i in tab.index]
    legend = [text for prefix, text in (("sd_", "sd_T|G: standard deviation of effect T across the levels of G"),
                                        ("cor_", "cor_T2.T1|G: correlation of effects T1 and T2 within G"),
                                        ("sigma", "sigma: residual standard deviation"))
              if any(n.startswith(prefix) for n in names)]
    if legend:
        notes.append("; ".join(legend) + ".")
    out = [f"<p>{html.escape(what)} confidence intervals{lv}, as computed by this call "
           f"(<code>confint(method={method!r})</code>). {html.escape(' '.join(notes))}</p>", _table(tab)]
    label = _ratio_label(fit) if fit is not None else None
    fixed = [i for i in tab.index if fit is not None and str(i) in {str(k) for k in fit.fixef.index}]
    if label is not None and method != "wald" and fixed:
        et = np.exp(tab.loc[fixed])
        et.columns = ["exp(Estimate)" if c == "Estimate" else c for c in et.columns]
        out.append(f"<p>{label} with these {html.escape(what.lower())} intervals (the fixed-effect rows "
                   "exponentiated):</p>" + _table(et))
    return "".join(out)


def fit_tables_html(fit) -> str:
    """The tables of a fit as an HTML fragment (notebook display; no plots, nothing simulated).

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fitted model.

    Returns
    -------
    str
        A ``<div class='glmmkit-summary'>`` with the model line, fit status, fixed-effect, random-effect
        and fit-statistic tables.
    """
    esc = html.escape
    parts = ["<div class='glmmkit-summary'>", f"<p><b>{esc(_model_line(fit))}</b><br>Formula: "
             f"<code>{esc(fit.formula)}</code></p>", _status_html(fit),
             "<p><b>Fixed effects</b></p>", _fixed_html(fit), "<p><b>Random effects</b></p>", _random_html(fit),
             "<p><b>Fit</b></p>", _table(_fit_stats(fit), exact=("value",)), "</div>"]
    return "".join(parts)


# ----- plots -----

def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _effect_variable(fit) -> str | None:
    """The first numeric data column with more than two values that the fixed effects use, also inside a
    transformation (``age`` of ``I(age - 60)`` or ``log(dose)``), for the effect-curve plot."""
    import re

    data = fit.frame.data
    skip = {fit.frame.response_name, *fit.ngroups}
    terms = [t for t in fit.x_names if t != "(Intercept)"]
    for name in data.columns:
        col = data[name]
        if (name in skip or not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
                or col.nunique() <= 2):
            continue
        word = re.compile(rf"(?<![A-Za-z0-9_.]){re.escape(str(name))}(?![A-Za-z0-9_.])")
        if any(t == name or word.search(t) for t in terms):
            return name
    return None


def _figures(fit, n_sim: int, seed) -> list[tuple[str, str]]:
    """(caption, data URI) of every diagnostic plot that applies to this fit; empty without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
    except ImportError:
        return []
    figs = []

    def add(caption, make):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figs.append((caption, _png(make())))
        except Exception as exc:  # one plot that does not apply must not cost the whole report
            figs.append((f"{caption.split(':')[0]}: not drawn ({type(exc).__name__}: {exc})", ""))

    shown, left_out = _plotted_factors(fit)
    if left_out:
        figs.append(("Random-effect plots leave out " + "; ".join(left_out)
                     + ": one row per level would be unreadable; their conditional modes are in fit.ranef.", ""))
    if shown:
        add("Random effects: each row is one level of a grouping factor, its conditional mode (point) with a "
            "95% conditional interval; rows whose interval misses the zero line differ from the population value.",
            lambda: fit.plot_caterpillar(factor=shown))
        add(f"Shrinkage of {shown[0]}: each point is one cluster, its estimate fitted alone (x, no pooling) "
            "against the mixed model's (y, partial pooling); the further a point lies from the dashed identity "
            "line towards the population line, the more the model pulled it in (small clusters most).",
            lambda: fit.plot_shrinkage(factor=shown[0]))
    add(f"Simulated scaled (quantile) residuals, {n_sim} simulations: under a model that fits they are uniform "
        "on (0, 1), so the points follow the QQ diagonal, the quartile lines stay flat at 0.25, 0.5 and 0.75, "
        "and each observed statistic (red line) lies inside its simulated histogram.",
        lambda: fit.plot_residuals(n_sim=n_sim, seed=seed, re_form=_re_form(fit)))
    if fit.kind == "lmm" and _has_time_correlation(fit):
        add("Within-cluster correlation by lag: data (points) against the fitted structure (line).",
            lambda: fit.plot_correlation())
    var = _effect_variable(fit)
    if fit.kind == "glmm" and var is not None:
        add(f"Effect of {var} on the response scale: conditional curve (a cluster with random effects at zero) "
            "against the marginal, population-averaged one; other covariates held at their mean (numeric) or "
            "reference level (factors).",
            lambda: fit.plot_effects(var))
    return figs


#: most levels a grouping factor may have to get its own caterpillar rows and shrinkage points
MAX_PLOTTED_LEVELS = 150


def _plotted_factors(fit) -> tuple[list[str], list[str]]:
    """Grouping factors drawn in the random-effect plots (most levels first, as the plots order them),
    and a note for each left out: an observation-level effect or a factor with very many levels."""
    shown, left_out = [], []
    for name, n in sorted(fit.ngroups.items(), key=lambda kv: -kv[1]):
        if n >= fit.nobs:
            left_out.append(f"{name} (an observation-level effect, {n} levels)")
        elif n > MAX_PLOTTED_LEVELS:
            left_out.append(f"{name} ({n} levels)")
        else:
            shown.append(name)
    return shown, left_out


def _has_time_correlation(fit) -> bool:
    from .diagnostics.correlation import _clusters_and_times

    try:
        _clusters_and_times(fit)
    except Exception:
        return False
    return True


def _re_form(fit):
    """Condition the residual simulations on the random effects, except with an observation-level
    effect (conditional draws of such a model look underdispersed whatever the truth)."""
    return "~0" if any(b.q == fit.nobs for b in fit.structure.blocks) else None


def _residual_tests_html(fit, n_sim: int, seed) -> str:
    try:
        res = fit.simulate_residuals(n_sim=n_sim, seed=seed, re_form=_re_form(fit))
    except Exception as exc:
        return f"<p class='meta'>Simulated residuals not available: {html.escape(str(exc))}</p>"
    rows = {}
    for label, test in (("uniformity (KS)", "uniformity_test"),
                        ("dispersion, simulated (observed / mean simulated variance of the residuals)",
                         "dispersion_test"),
                        ("zero inflation (observed / mean simulated number of zeros)", "zero_inflation_test")):
        fn = getattr(res, test, None)
        if fn is None:
            continue
        try:
            out = fn()
        except Exception:
            continue
        out = out if isinstance(out, dict) else getattr(out, "__dict__", {})
        rows[label] = {"statistic": out.get("statistic"), "p-value": out.get("p_value")}
    pearson = fit.dispersion_check() if fit.kind == "glmm" else None
    if pearson is not None:
        rows["dispersion, Pearson (chi2 / residual df, no simulation)"] = {"statistic": pearson["ratio"],
                                                                          "p-value": pearson["p_value"]}
    if not rows:
        return ""
    return ("<p>Tests on the simulated residuals (small p: the model does not reproduce this feature of the "
            "data):</p>" + _table(pd.DataFrame(rows).T, pcols=("p-value",)))


def fit_report_html(fit, *, title: str | None = None, plots: bool = True, n_sim: int = 250, seed=0,
                    confint=None) -> str:
    """One self-contained HTML page describing a fit: tables, ICC, diagnostics and plots.

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fitted model.
    title : str, optional
        Page heading; defaults to the formula.
    plots : bool, default True
        Embed diagnostic plots (needs matplotlib: ``pip install glmmkit[plot]``; without it
        the page says so and keeps the tables).
    n_sim : int, default 250
        Simulations behind the scaled residuals.
    seed : int or None, default 0
        Seed of those simulations (fixed by default so a report is reproducible).
    confint : pandas.DataFrame, optional
        Intervals already computed (``fit.confint(method=...)``, lower and upper columns; the
        method and level in its ``attrs``): shown in their own section under their method's name.
        Without it the page shows only the Wald intervals of the fixed-effect table.

    Returns
    -------
    str
        The HTML page.
    """
    from . import __version__

    esc = html.escape
    title = title or fit.formula
    head = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>glmmkit: {esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>")
    body = [f"<h1>{esc(title)}</h1>",
            f"<p class='meta'>{esc(_model_line(fit))}<br>Formula: <code>{esc(fit.formula)}</code>"
            + (f" &middot; data: {esc(str(fit.data_name))}" if fit.data_name else "")
            + f"<br>glmmkit {esc(__version__)}, {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
            "<h2>Fit status</h2>", _status_html(fit),
            "<h2>Fixed effects</h2>", _fixed_html(fit)]
    if confint is not None:
        body += ["<h2>Confidence intervals</h2>", _confint_html(confint, fit=fit)]
    body += ["<h2>Random effects and variance components</h2>", _random_html(fit),
             "<h2>Model fit</h2>", _table(_fit_stats(fit), exact=("value",))]
    if plots:
        body.append("<h2>Diagnostics</h2>")
        body.append(_residual_tests_html(fit, n_sim, seed))
        figs = _figures(fit, n_sim, seed)
        if not figs:
            body.append("<p class='note'>Plots omitted: matplotlib is not installed "
                        "(<code>pip install glmmkit[plot]</code>).</p>")
        for caption, uri in figs:
            if uri:
                body.append(f"<figure><img alt='{esc(caption)}' src='{uri}'><figcaption>{esc(caption)}"
                            "</figcaption></figure>")
            else:
                body.append(f"<p class='note'>{esc(caption)}</p>")
    body.append("<h2>Summary (lme4 layout)</h2><pre>" + esc(str(fit.summary())) + "</pre>")
    return head + "".join(body) + "</body></html>\n"


class ReportMixin:
    """``report`` and notebook display for every fitted model."""

    def report(self, path=None, *, title: str | None = None, plots: bool = True, n_sim: int = 250, seed=0,
               confint=None):
        """Write (or return) a self-contained HTML report of the fit.

        The page holds the fixed-effect table (with odds or rate ratios where the link
        gives them), variance components, ICC, fit statistics, convergence notes, tests
        on simulated scaled residuals and the diagnostic plots, all inline: it opens in a
        browser with no network.

        Parameters
        ----------
        path : str or Path, optional
            Where to write the page.  Without it the HTML text is returned.
        title : str, optional
            Heading of the page (default: the formula).
        plots : bool, default True
            Embed plots (needs matplotlib).
        n_sim : int, default 250
            Simulations for the scaled residuals.
        seed : int or None, default 0
            Seed of those simulations.
        confint : pandas.DataFrame, optional
            Intervals computed beforehand (``fit.confint(method="profile")``): the page shows
            them under their method's name (the command line's ``--confint`` passes its own).

        Returns
        -------
        Path or str
            The path written, or the HTML when no path is given.
        """
        page = fit_report_html(self, title=title, plots=plots, n_sim=n_sim, seed=seed, confint=confint)
        if path is None:
            return page
        path = Path(path)
        path.write_text(page, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return fit_tables_html(self)
