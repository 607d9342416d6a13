"""lme4-style text and HTML summaries of a fit (reads a fit, computes nothing new)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["LmmSummary", "GlmmSummary"]


def format_column(values, digits: int = 4) -> list[str]:
    """Format numbers with a common number of decimals, as R's ``format(x, digits = 4)``:
    enough decimals that the smallest non-zero magnitude shows ``digits`` significant digits.

    Parameters
    ----------
    values : array-like of float
        The column's numbers.
    digits : int, default 4
        Significant digits of the smallest non-zero magnitude.

    Returns
    -------
    list of str
        One string per value; scientific notation for all when a magnitude is at least 1e15 or
        below 1e-10; ``"NaN"`` for a non-finite value.
    """
    v = np.asarray(values, dtype=float)
    finite = np.abs(v[np.isfinite(v) & (v != 0)])
    if finite.size == 0:
        return ["0" if x == 0 else str(x) for x in v]
    if finite.max() >= 1e15 or finite.min() < 1e-10:
        return [f"{x:.{digits - 1}e}" for x in v]
    decimals = int(np.clip(digits - 1 - np.floor(np.log10(finite.min())), 0, 12))
    return [f"{x:.{decimals}f}" if np.isfinite(x) else "NaN" for x in v]


def coef_columns(estimate, std_error, digits: int = 4) -> tuple[list[str], list[str]]:
    """Estimate and standard error formatted together, as R's ``printCoefmat``: one number of decimals
    for both columns, enough for the smallest magnitude among them to show ``digits`` significant
    digits (sleepstudy: 251.405 and 6.825, not 251.41).

    Parameters
    ----------
    estimate, std_error : array-like of float, shape (p,)
        The coefficients and their standard errors.
    digits : int, default 4
        Significant digits of the smallest non-zero magnitude of either column.

    Returns
    -------
    estimate, std_error : list of str
        The two columns formatted with one shared number of decimals.
    """
    both = format_column(np.concatenate([np.asarray(estimate, float), np.asarray(std_error, float)]), digits)
    n = len(estimate)
    return both[:n], both[n:]


def statistic_column(values, digits: int = 4, max_decimals: int = 3) -> list[str]:
    """t or z values as ``printCoefmat`` shows them: rounded to ``max_decimals`` (R's dig.tst = 3), then
    ``digits`` significant digits for the smallest (36.838 and 6.771; 28.41).

    Parameters
    ----------
    values : array-like of float
        The test statistics.
    digits : int, default 4
        Significant digits of the smallest non-zero magnitude.
    max_decimals : int, default 3
        Decimals the values are rounded to first, and the most ever shown.

    Returns
    -------
    list of str
        One string per value, ``"NaN"`` for a non-finite one.
    """
    v = np.round(np.asarray(values, dtype=float), max_decimals)
    finite = np.abs(v[np.isfinite(v) & (v != 0)])
    if finite.size == 0:
        return ["NaN" if not np.isfinite(x) else f"{x:.{max_decimals}f}" for x in v]
    decimals = int(np.clip(digits - 1 - np.floor(np.log10(finite.min())), 0, max_decimals))
    return [f"{x:.{decimals}f}" if np.isfinite(x) else "NaN" for x in v]


def _decimals_needed(x: float, digits: int) -> int:
    """Decimals that show ``x`` to ``digits`` significant digits, trailing zeros dropped (0.5, not 0.500)."""
    if x == 0 or not np.isfinite(x):
        return 0
    full = max(int(digits - 1 - np.floor(np.log10(abs(x)))), 0)
    target = round(x, full)
    return next(k for k in range(full + 1) if round(x, k) == target)


def pvalue_column(p, digits: int = 3, eps: float = 2.220446e-16) -> list[str]:
    """p-values as R prints them (``format.pval``, digits 3): from 1e-4 up in fixed notation with one shared
    number of decimals (0.001068, 0.000474), smaller ones in scientific notation (1.47e-09), ``<2e-16``
    below the machine epsilon.

    Parameters
    ----------
    p : array-like of float, shape (m,)
        The p-values.
    digits : int, default 3
        Significant digits shown.
    eps : float, default 2.220446e-16
        Values below it print as ``"<2e-16"`` (R's ``.Machine$double.eps``).

    Returns
    -------
    list of str
        One string per p-value, ``"NaN"`` for a non-finite one.
    """
    p = np.asarray(p, dtype=float)
    out = ["NaN"] * p.shape[0]
    fixed = [i for i, v in enumerate(p) if np.isfinite(v) and v >= eps and (v == 0 or np.floor(np.log10(v)) >= -4)]
    if fixed:
        decimals = max(_decimals_needed(p[i], digits) for i in fixed)
        for i in fixed:
            out[i] = f"{p[i]:.{decimals}f}"
    for i, v in enumerate(p):
        if np.isfinite(v) and i not in fixed:
            if v < eps:
                out[i] = "<2e-16"
            else:
                mant, exp = f"{v:.{digits - 1}e}".split("e")
                out[i] = (mant.rstrip("0").rstrip(".") if "." in mant else mant) + "e" + exp
    return out


def signif_stars(p) -> list[str]:
    """R's significance codes: *** < 0.001 < ** < 0.01 < * < 0.05 < . < 0.1.

    Parameters
    ----------
    p : array-like of float
        The p-values.

    Returns
    -------
    list of str
        ``"***"``, ``"**"``, ``"*"``, ``"."`` or ``""`` per p-value (``""`` for a non-finite one).
    """
    out = []
    for v in np.asarray(p, dtype=float):
        out.append("" if not np.isfinite(v) else "***" if v < 0.001 else "**" if v < 0.01 else "*" if v < 0.05
                   else "." if v < 0.1 else "")
    return out


SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def abbreviate(name: str, minlength: int = 6) -> str:
    """Short column labels for the correlation block, as R's ``abbreviate``: drop lower-case vowels from
    the right (never the first character), then other lower-case letters, then spaces, until ``minlength``
    is reached
    ("(Intercept)" -> "(Intr)", "period2" -> "perid2").

    Parameters
    ----------
    name : str
        A coefficient name.
    minlength : int, default 6
        Length to shorten to; a name that still has more characters after all deletions is
        cut to it.

    Returns
    -------
    str
        The abbreviation (``name`` itself when it is no longer than ``minlength``).
    """
    chars = list(name)
    for pick in ("aeiou", "abcdefghijklmnopqrstuvwxyz", " "):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in pick:
                del chars[i]
            i -= 1
    return "".join(chars[:max(minlength, 1)]) if len(chars) > minlength else "".join(chars)


def correlation_lines(fit, names) -> list[str]:
    """lme4's "Correlation of Fixed Effects" block (not shown above 12 coefficients, as lme4).

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fit whose ``vcov`` gives the correlations.
    names : list of str
        The fixed-effect names, in ``vcov``'s order.

    Returns
    -------
    list of str
        The block's lines, a blank line first; empty for fewer than two coefficients.
    """
    p = len(names)
    if p < 2:
        return []
    if p > 12:
        return ["", f"Correlation matrix not shown by default, as p = {p} > 12."]
    V = fit.vcov.to_numpy()
    sd = np.sqrt(np.diag(V))
    with np.errstate(invalid="ignore", divide="ignore"):
        R = V / np.outer(sd, sd)
    short = [abbreviate(n) for n in names]
    rows = [[names[i]] + [f"{R[i, j]:.3f}" for j in range(i)] for i in range(1, p)]
    return ["", "Correlation of Fixed Effects:"] + _table(rows, [False] + [True] * (p - 1), [""] + short[:-1])


def data_label(fit) -> str:
    """What the summary's ``Data:`` line names: the ``data_name`` given, a bundled data set's name, or the
    data's shape (lme4 prints the expression; Python has no name for an argument).

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fit (its ``data_name`` and model frame are read).

    Returns
    -------
    str
        The name, or ``"a DataFrame of N rows (name it with data_name=)"``.
    """
    if fit.data_name:
        return str(fit.data_name)
    name = fit.frame.data.attrs.get("name") if hasattr(fit.frame.data, "attrs") else None
    if name:
        return str(name)
    dropped = getattr(fit.frame, "n_dropped", 0)
    rows = fit.nobs + dropped
    extra = f", {dropped} with missing values dropped" if dropped else ""
    return f"a DataFrame of {rows} rows{extra} (name it with data_name=)"


def _table(rows: list[list[str]], align_right: list[bool], header: list[str] | None = None) -> list[str]:
    data = ([header] if header else []) + rows
    ncol = max(len(r) for r in data)
    data = [list(r) + [""] * (ncol - len(r)) for r in data]
    align_right = list(align_right) + [True] * (ncol - len(align_right))
    widths = [max(len(r[j]) for r in data) for j in range(len(data[0]))]
    out = []
    for r in data:
        cells = [c.rjust(w) if ar else c.ljust(w) for c, w, ar in zip(r, widths, align_right)]
        out.append(" ".join(cells).rstrip())
    return out


def _structure_rows(term, C, sd, theta):
    """Rows of a structured term (glmmTMB's compact layout): one row when every column has the same
    variance (ar1, homcs, spatial, homdiag), else one per column; the structure and its parameters
    (``ar1: rho 0.642``) in the Corr column of the first row.  None for lme4's terms (full matrix)."""
    from .covstruct import Diagonal, HomDiagonal, ScaledCorrelation

    cs = term.structure
    if not isinstance(cs, (ScaledCorrelation, HomDiagonal, Diagonal)):
        return None
    phi = theta[term.theta_slice]
    params = ", ".join(f"{k} {v:.3g}" if abs(v) >= 1e3 else f"{k} {v:.3f}" for k, v in cs.report(phi).items())
    text = cs.label + (f": {params}" if params else "")
    if isinstance(cs, Diagonal):
        text = ""
    homogeneous = not getattr(cs, "heterogeneous", isinstance(cs, Diagonal))
    if cs.kind == "relmat":
        return [([term.label, "(Intercept)", "", "", "relmat"], C[0, 0], sd[0])]
    if homogeneous:
        name = term.names[0] if term.k == 1 else f"{term.names[0]} .. {term.names[-1]} ({term.k})"
        return [([term.label, name, "", "", text], C[0, 0], sd[0])]
    return [([term.label if i == 0 else "", n, "", "", text if i == 0 else ""], C[i, i], sd[i])
            for i, n in enumerate(term.names)]


class LmmSummary:
    """Summary of an :class:`~glmmkit.results.LmmFit`; ``str()`` gives lme4's layout.

    Parameters
    ----------
    fit : LmmFit
        The fitted model to summarise (read only; nothing is recomputed).
    """

    def __init__(self, fit):
        self.fit = fit

    # tables as data --------------------------------------------------------------
    def fixed_table(self) -> pd.DataFrame:
        """The fixed-effects table with t values (Wald, no p-values: lme4's ``summary``).

        Returns
        -------
        DataFrame
            Index the coefficient names; columns ``Estimate``, ``Std. Error``, ``t value``.
        """
        f = self.fit
        se = np.sqrt(np.diag(f.vcov.to_numpy())) if len(f.fixef) else np.empty(0)
        return pd.DataFrame(
            {"Estimate": f.fixef.to_numpy(), "Std. Error": se, "t value": f.fixef.to_numpy() / se},
            index=f.fixef.index,
        )

    def random_rows(self) -> list[list[str]]:
        """The rows of the "Random effects" table as formatted strings.

        Returns
        -------
        list of list of str
            Per row: group, name, variance, standard deviation, then the correlations with the
            term's earlier columns (or a structure's parameters); a ``Residual`` row last when
            the model has one.  All rows padded to one length.
        """
        f = self.fit
        rows, variances, sds = [], [], []
        for t in f.structure.terms:
            C = f._term_cov(t)
            sd = np.sqrt(np.diag(C))
            compact = _structure_rows(t, C, sd, f.theta.to_numpy())
            if compact is not None:
                for row, v, s in compact:
                    rows.append(row)
                    variances.append(v)
                    sds.append(s)
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = C / np.outer(sd, sd)
            for i, name in enumerate(t.names):
                rows.append([t.label if i == 0 else "", name, "", ""] + [f"{corr[i, j]:.2f}" for j in range(i)])
                variances.append(C[i, i])
                sds.append(sd[i])
        if f.has_residual:
            rows.append(["Residual", "", "", ""])
            variances.append(f.sigma**2)
            sds.append(f.sigma)
        fv, fs = format_column(variances), format_column(sds)
        wv, ws = max(map(len, fv)), max(map(len, fs))
        for row, v, s in zip(rows, fv, fs):  # as R's format: right-aligned among themselves, left under the header
            row[2], row[3] = v.rjust(wv), s.rjust(ws)
        width = max(len(r) for r in rows)
        return [r + [""] * (width - len(r)) for r in rows]

    # text ------------------------------------------------------------------------
    def residual_and_random_lines(self, residuals) -> list[str]:
        """'Scaled residuals' quantiles, the random-effects table and the group counts.

        Parameters
        ----------
        residuals : array-like of float, shape (n,)
            The residuals whose quantiles are shown (scaled for an LMM, Pearson for a GLMM).

        Returns
        -------
        list of str
            The lines, the residual-structure block and the effective-df line included.
        """
        f = self.fit
        q = np.quantile(residuals, [0, 0.25, 0.5, 0.75, 1.0])
        lines = ["Scaled residuals:"]
        lines += _table([[f"{v:.4f}" for v in q]], [True] * 5, ["Min", "1Q", "Median", "3Q", "Max"])
        rows = self.random_rows()
        if f.structure.terms:
            lines += ["", "Random effects:"]
            header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] if len(rows[0]) > 4 else [])
            lines += [" " + s for s in _table(rows, [False, False, False, False] + [True] * (len(rows[0]) - 4), header)]
            groups = "; ".join(f"{k}, {v}" for k, v in f.ngroups.items())  # lme4: "plate, 24; sample, 6"
            lines.append(f"Number of obs: {f.nobs}, groups:  {groups}")
        else:
            lines += ["", f"Residual standard error: {f.sigma:.4f}"]
        lines += self.residual_structure_lines()
        if not f.structure.terms:
            lay = f.residual_structure.layout
            clusters = f", clusters:  {lay.spec.group_name}, {lay.n_clusters}" if lay.spec is not None else ""
            lines.append(f"Number of obs: {f.nobs}{clusters}")
        edf = self.edf_line()
        if edf:
            lines.append(edf)
        return lines

    def residual_structure_lines(self) -> list[str]:
        """nlme's block on the residual correlation structure ('Correlation Structure: AR(1)').

        Returns
        -------
        list of str
            The lines (with a variance function's SD ratios); empty without a residual structure.
        """
        R = getattr(self.fit, "residual_structure", None)
        if R is None:
            return []
        lines = []
        params = self.fit.residual_params
        ratio = [n.startswith("sd_ratio_") for n in params.index]

        def block(names, values):
            vals = format_column(values)
            out = []
            for at in range(0, len(names), 6):
                out += [" " + s for s in _table([vals[at:at + 6]], [True] * len(vals[at:at + 6]), names[at:at + 6])]
            return out

        if R.correlation is not None:
            corr = params[[not r for r in ratio]]
            lines += ["", f"Correlation Structure: {R.description}", f" Formula: {R.formula}",
                      " Parameter estimate(s):"]
            lines += block([R.nlme_names.get(n, n) for n in corr.index], corr.to_numpy())
        if R.variance is not None:
            rat = params[ratio]
            lines += ["", "Variance function: residual SD = sigma * exp(x'delta)",
                      f" Formula: {R.variance.formula}", " SD ratios to the reference:"]
            lines += block([n[len("sd_ratio_"):] for n in rat.index], rat.to_numpy())
        return lines

    def edf_line(self) -> str | None:
        """Effective df beside the parameter count (skipped where M⁻¹'s dense cross block would be large).

        Returns
        -------
        str or None
            The line, or None for PQL, a model without random effects, or a large model.
        """
        f = self.fit
        blocks = f.structure.blocks
        if f.kind == "pql" or not blocks or sum(b.size for b in blocks[1:]) * blocks[0].size > 5_000_000:
            return None
        q = f.structure.q
        p = len(f.x_names)
        return (f"Effective df (trace of the hat matrix): {f.edf:.2f}  [fixed effects {p}, random effects {q}; "
                f"estimated parameters {f.npar}]")

    def __str__(self) -> str:
        f = self.fit
        lines = []
        how = "REML" if f.reml else "maximum likelihood"
        lines.append(f"Linear mixed model fit by {how}  [glmmkit lmer]")
        lines.append(f"Formula: {f.formula}")
        lines.append(f"   Data: {data_label(f)}")
        lines.append("")
        if f.reml:
            lines.append(f"REML criterion at convergence: {f.reml_criterion:.4f}")
        else:
            lines += _table(
                [[f"{f.aic:.1f}", f"{f.bic:.1f}", f"{f.loglik:.1f}", f"{f.deviance:.1f}", f"{f.df_resid}"]],
                [True] * 5,
                ["AIC", "BIC", "logLik", "deviance", "df.resid"],
            )
        lines.append("")
        lines += self.residual_and_random_lines(f.residuals("scaled"))
        lines.append("")
        ft = self.fixed_table()
        if len(ft):
            lines.append("Fixed effects:")
            est, se = coef_columns(ft["Estimate"].to_numpy(), ft["Std. Error"].to_numpy())
            tv = statistic_column(ft["t value"].to_numpy())
            rows = [[name, est[i], se[i], tv[i]] for i, name in enumerate(ft.index)]
            lines += _table(rows, [False, True, True, True], ["", "Estimate", "Std. Error", "t value"])
            lines += correlation_lines(f, list(ft.index))
        lines += submodel_lines(f)
        notes = list(f.optimizer_info.messages)
        if notes:
            lines.append("")
            lines += [f"note: {m}" for m in notes]
        return "\n".join(lines)

    # HTML ------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        from .report import fit_tables_html

        return fit_tables_html(self.fit)


class GlmmSummary(LmmSummary):
    """Summary of a :class:`~glmmkit.results.GlmmFit` in lme4's glmer layout (z tests)."""

    def fixed_table(self) -> pd.DataFrame:
        """The fixed-effects table with Wald z tests (lme4's glmer ``summary``).

        Returns
        -------
        DataFrame
            Index the coefficient names; columns ``Estimate``, ``Std. Error``, ``z value``,
            ``Pr(>|z|)`` (two-sided, normal reference).
        """
        from scipy.stats import norm

        t = super().fixed_table().rename(columns={"t value": "z value"})
        t["Pr(>|z|)"] = 2.0 * norm.sf(np.abs(t["z value"].to_numpy()))
        return t

    def __str__(self) -> str:
        f = self.fit
        how = {"Laplace": "Laplace Approximation", "nAGQ=0": "nAGQ = 0: fixed effects inside PIRLS"}.get(
            f.method, f"Adaptive Gauss-Hermite Quadrature, nAGQ = {f.nagq}")
        by = "penalized quasi-likelihood (PQL)" if f.kind == "pql" else f"maximum likelihood ({how})"
        lines = [f"Generalized linear mixed model fit by {by}  [glmmkit glmer]",
                 f" Family: {f.family.name}  ( {f.link} )" + _zero_model_note(f), f"Formula: {f.formula}",
                 f"   Data: {data_label(f)}"]
        lines.append("")
        if f.kind == "pql":
            lines.append(f"Quasi-likelihood: no log-likelihood, AIC or BIC.  Dispersion (residual variance of the "
                         f"working model): {f.sigma ** 2:.4g}")
        else:
            lines += _table([[f"{f.aic:.1f}", f"{f.bic:.1f}", f"{f.loglik:.1f}", f"{f.deviance:.1f}", f"{f.df_resid}"]],
                            [True] * 5, ["AIC", "BIC", "logLik", "deviance", "df.resid"])
        lines.append("")
        lines += self.residual_and_random_lines(f.residuals("pearson"))
        lines.append("")
        fp = f.family_params_table() if f.kind != "pql" else None
        if fp is not None and len(fp):
            labels, kinds = getattr(f.family, "engine_scale_labels", {}), getattr(f.family, "param_scales", {})
            scales = [labels.get(k, f"{kinds.get(k, 'log')}({k})") for k in fp.index]
            where = "the log scale" if all(s == f"log({k})" for s, k in zip(scales, fp.index)) else " and ".join(scales)
            lines.append(f"Family parameters ({f.family.name}; standard errors and 95% intervals from {where}):")
            rows = [[name, f"{r['estimate']:.4g}", f"{r['log_se']:.3g}", f"{r.iloc[3]:.4g}", f"{r.iloc[4]:.4g}"]
                    for name, r in fp.iterrows()]
            se_head = "SE(log)" if where == "the log scale" else "SE"
            lines += _table(rows, [False, True, True, True, True], ["", "Estimate", se_head, "2.5 %", "97.5 %"])
            fixed = getattr(f.family, "fixed", {})
            if fixed:
                lines.append("  held fixed: " + ", ".join(f"{k} = {v:g}" for k, v in fixed.items()))
            lines.append("")
        disp = f.dispersion_check() if f.kind != "pql" else None
        if disp is not None:
            flag = "  <- overdispersion: consider olre=True or family='negative_binomial'" if (
                disp["p_value"] < 0.05 and disp["ratio"] > 1) else ""
            lines.append(f"Pearson dispersion (no simulation): chi2 = {disp['pearson_chisq']:.1f} on {disp['df']} df, "
                         f"chi2/df = {disp['ratio']:.3f}, p = {disp['p_value']:.3g}{flag}")
            lines.append("")
        ft = self.fixed_table()
        if len(ft):
            lines.append("Fixed effects:")
            est, se = coef_columns(ft["Estimate"].to_numpy(), ft["Std. Error"].to_numpy())
            zv = statistic_column(ft["z value"].to_numpy())
            pv = ft["Pr(>|z|)"].to_numpy()
            pcol, stars = pvalue_column(pv), signif_stars(pv)
            rows = [[name, est[i], se[i], zv[i], pcol[i], stars[i]] for i, name in enumerate(ft.index)]
            lines += _table(rows, [False, True, True, True, True, False],
                            ["", "Estimate", "Std. Error", "z value", "Pr(>|z|)", ""])
            if any(stars):
                lines += ["---", SIGNIF_LEGEND]
            lines += correlation_lines(f, list(ft.index))
            ratio = {"logit": "Odds ratios", "log": "Rate ratios"}.get(f.link)
            if ratio and f.kind != "pql":
                if f.family.name in ("gamma", "inverse_gaussian", "gaussian", "student_t"):
                    ratio = "Ratios of means"
                et = f.coef_table(exponentiate=True)
                lines += ["", f"{ratio} (exp(Estimate)) with 95% Wald intervals exp(Estimate ± 1.96 SE):"]
                cols = [format_column(et[c].to_numpy(), 4) for c in ("estimate", "ci_lower", "ci_upper")]
                rows = [[name] + [c[i] for c in cols] for i, name in enumerate(et.index)]
                header = {"Odds ratios": "Odds ratio", "Rate ratios": "Rate ratio"}.get(ratio, "Ratio")
                lines += _table(rows, [False, True, True, True], ["", header, "2.5 %", "97.5 %"])
        lines += submodel_lines(f)
        notes = list(f.optimizer_info.messages)
        if notes:
            lines.append("")
            lines += [f"note: {m}" for m in notes]
        return "\n".join(lines)


def submodel_lines(f) -> list:
    """glmmTMB's blocks for the zero-inflation and dispersion models (none without those formulas).

    Parameters
    ----------
    f : GlmmFit or LmmFit
        The fitted model; its sub-models (``ziformula``, ``dispformula``) are read.

    Returns
    -------
    list of str
        The blocks' lines; empty when the model has no sub-model.
    """
    from .results.submodels import part_table

    subs = getattr(getattr(f, "_problem", None), "submodels", ())
    if not subs:
        return []
    lines = []
    titles = {"zi": ("Hurdle (zero) model" if getattr(f.family, "zero_model", "") == "hurdle"
                     else "Zero-inflation model") + " (logit of the zero probability)",
              "disp": "Dispersion model (glmmTMB's log scale)"}
    for sub in subs:
        t = part_table(f, sub.part)
        lines += ["", f"{titles[sub.part]}: {sub.formula}"]
        if sub.structure is not None:  # glmmTMB's random-effects block of the part
            from .results.submodels import part_varcorr

            vc = part_varcorr(f, sub.part)
            var = vc[vc["term2"].isna()]
            rows = [[" " + str(r.group), str(r.term1), f"{r.vcov:.4g}", f"{r.sdcor:.4g}"] for r in var.itertuples()]
            lines += [" Random effects:"]
            lines += _table(rows, [False, False, True, True], [" Groups", "Name", "Variance", "Std.Dev."])
            cor = vc[vc["term2"].notna()]
            for r in cor.itertuples():
                lines.append(f"  Corr({r.term1}, {r.term2} | {r.group}) = {r.sdcor:.3f}")
        est, se = coef_columns(t["estimate"].to_numpy(), t["std_error"].to_numpy())
        zv = statistic_column(t["statistic"].to_numpy())
        pv = t["p_value"].to_numpy()
        pcol, stars = pvalue_column(pv), signif_stars(pv)
        rows = [[name, est[i], se[i], zv[i], pcol[i], stars[i]] for i, name in enumerate(t.index)]
        lines += _table(rows, [False, True, True, True, True, False], ["", "Estimate", "Std. Error", "z value",
                                                                       "Pr(>|z|)", ""])
    return lines


def _zero_model_note(f) -> str:
    kind = getattr(f.family, "zero_model", None)
    return f", with a {kind} model of the zeros" if kind else ""
