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
table.gk th:first-child,table.gk td:first-child{text-align:left}
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
        return "NaN" if np.isnan(x) else ("Inf" if x > 0 else "-Inf")
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
        return "Inf" if x > 0 else "-Inf"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x)}"
    return f"{x:.10g}" if abs(x) >= 1 else f"{x:.8g}"


def _table(df: pd.DataFrame, index: bool = True, pcols=(), exact=()) -> str:
    """A DataFrame as a plain HTML table: numbers with 4 significant digits (the ``exact`` columns at full
    precision), p-values as R prints them, missing cells empty."""
    head = ([""] if index else []) + [html.escape(str(c)) for c in df.columns]
    rows = []
    for idx, r in df.iterrows():
        cells = [html.escape(str(idx))] if index else []
        for c, v in r.items():
            if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v)):
                cells.append("")  # not applicable (a variance row's partner term, a Wald interval of a variance)
            elif c in pcols and isinstance(v, (float, np.floating)):
                cells.append("&lt;2e-16" if v < 2e-16 else f"{v:.3g}")
            elif c in exact and isinstance(v, (float, np.floating)):
                cells.append(_exact(v))
            elif isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool):
                cells.append(_num(v))
            else:
                cells.append("" if v is None or (isinstance(v, float) and np.isnan(v)) else html.escape(str(v)))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table class='gk'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _model_line(fit) -> str:
    if not fit.has_family:
        return f"Linear mixed model fit by {'REML' if fit.reml else 'maximum likelihood'}"
    how = "penalized quasi-likelihood" if fit.kind == "pql" else f"maximum likelihood ({fit.method})"
    return f"Generalized linear mixed model, {fit.family.name} family, {fit.link} link, fit by {how}"


def _status_html(fit) -> str:
    info = fit.optimizer_info
    ok = fit.converged
    parts = [f"<p><span class='{'ok' if ok else 'warn'}'>{'Converged' if ok else 'Did not converge'}</span>"
             f" &middot; optimiser: {html.escape(str(info.optimizer))}, {info.n_evals} evaluations, "
             f"{info.time_s:.2f} s"]
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


def _fixed_html(fit) -> str:
    ct = fit.coef_table()
    cols = {"estimate": "Estimate", "std_error": "Std. Error", "df": "df", "statistic": "statistic",
            "p_value": "p-value", "ci_lower": "Wald 2.5 %", "ci_upper": "Wald 97.5 %"}
    if fit.has_family:
        cols["statistic"] = "z value"
    elif "df" in ct and np.isfinite(ct["df"]).any():
        cols["statistic"] = "t value"
    ct = ct.rename(columns=cols)
    if "df" in ct and not np.isfinite(ct["df"]).any():
        ct = ct.drop(columns="df")
    out = [_table(ct, pcols=("p-value",))]
    link = getattr(fit, "link", None)
    if link in ("logit", "log") and fit.kind != "pql":
        label = "Odds ratios" if link == "logit" else "Rate ratios"
        if fit.family.name in ("gamma", "inverse_gaussian", "gaussian", "student_t"):
            label = "Ratios of means"
        et = fit.coef_table(exponentiate=True)[["estimate", "ci_lower", "ci_upper"]]
        et.columns = ["exp(Estimate)", "Wald 2.5 %", "Wald 97.5 %"]
        out.append(f"<p>{label} with 95% Wald intervals (conditional on the random effects):</p>" + _table(et))
    return "".join(out)


def _random_html(fit) -> str:
    vc = fit.varcorr.copy()
    vc = vc.rename(columns={"group": "Group", "term1": "Term", "term2": "with", "vcov": "Variance / Cov",
                            "sdcor": "Std.Dev. / Corr"})
    out = [_table(vc, index=False)]
    fp = fit.family_params_table() if fit.kind == "glmm" else None
    if fp is not None and len(fp):
        out.append(f"<p>Parameters of the {html.escape(fit.family.name)} family:</p>" + _table(fp))
    if fit.kind != "pql":
        try:
            icc = fit.icc()
        except Exception as exc:  # an ICC is undefined for some families; say why instead of failing the page
            out.append(f"<p class='meta'>ICC not available: {html.escape(str(exc))}</p>")
        else:
            rows = pd.DataFrame({"value": [icc["adjusted"], icc["conditional"]]},
                                index=["ICC (adjusted)", "ICC (conditional on fixed effects)"])
            for g, v in icc.get("by_group", {}).items():
                rows.loc[f"share of {g}"] = v
            out.append("<p>Intraclass correlation (Nakagawa et al.; latent scale for GLMMs):</p>" + _table(rows))
    return "".join(out)


_CI_NAMES = {"wald": "Wald", "profile": "Profile-likelihood", "boot": "Parametric bootstrap (percentile)",
             "bootstrap": "Parametric bootstrap (percentile)"}


def _confint_html(ci, level=None) -> str:
    """The intervals the caller computed (``fit.confint(...)``), under the name of their method."""
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
    note = ""
    if method == "wald":
        note = " Wald intervals of variance parameters are not defined (left empty, as lme4)."
    elif "n_boot" in ci.attrs:
        note = f" {ci.attrs['n_boot']} bootstrap samples."
    return (f"<p>{html.escape(what)} confidence intervals{lv} of every parameter, as computed by this call "
            f"(<code>confint(method={method!r})</code>).{html.escape(note)}</p>" + _table(tab))


def fit_tables_html(fit) -> str:
    """The tables of a fit as an HTML fragment (notebook display; no plots, nothing simulated)."""
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
    """The first numeric, non-constant fixed-effect covariate (for the effect-curve plot)."""
    for name in fit.frame.data.columns:
        col = fit.frame.data[name]
        if name in fit.x_names and pd.api.types.is_numeric_dtype(col) and col.nunique() > 2:
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
            figs.append((f"{caption}: not drawn ({type(exc).__name__}: {exc})", ""))

    add("Random effects (conditional modes) with 95% conditional intervals", lambda: fit.plot_caterpillar())
    add("Shrinkage: no-pooling vs partial-pooling estimates by cluster", lambda: fit.plot_shrinkage())
    add(f"Simulated scaled (quantile) residuals, {n_sim} simulations",
        lambda: fit.plot_residuals(n_sim=n_sim, seed=seed, re_form=_re_form(fit)))
    if fit.kind == "lmm" and _has_time_correlation(fit):
        add("Within-cluster correlation by lag: data (points) against the fitted structure (line)",
            lambda: fit.plot_correlation())
    var = _effect_variable(fit)
    if fit.kind == "glmm" and var is not None:
        add(f"Conditional vs marginal effect of {var}", lambda: fit.plot_effects(var))
    return figs


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
        body += ["<h2>Confidence intervals</h2>", _confint_html(confint)]
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
            img = f"<img alt='{esc(caption)}' src='{uri}'>" if uri else ""
            body.append(f"<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>")
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
