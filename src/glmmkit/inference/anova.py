"""Likelihood-ratio tests between nested mixed models (lme4's ``anova(fit0, fit1, ...)``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["anova", "AnovaTable"]


class AnovaTable(pd.DataFrame):
    """lme4's anova table as a DataFrame whose text shows every column whatever the terminal width
    (pandas would cut it at 80 characters) and the notes (ML refits, boundary tests) below it.

    Anything computed from it (a column, a slice) is a plain pandas object."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def to_text(self) -> str:
        """The table as lme4 prints it: every column, numbers to 5 significant digits, then the notes.

        Returns
        -------
        str
            The whole table (no column or width cut; ``npar`` and ``df`` as integers, NaN cells blank),
            followed by one ``note: ...`` line per entry of ``self.attrs["notes"]``.
        """
        with pd.option_context("display.width", None, "display.max_columns", None, "display.max_colwidth", None,
                               "display.expand_frame_repr", False):
            shown = pd.DataFrame(self).copy()
            for c in ("npar", "df"):
                if c in shown:
                    shown[c] = shown[c].map(lambda v: "" if not np.isfinite(v) else f"{int(v)}")
            text = shown.to_string(na_rep="", float_format=lambda v: f"{v:.5g}")
        notes = self.attrs.get("notes") or []
        return text + "".join(f"\nnote: {n}" for n in notes)

    def __repr__(self) -> str:
        return self.to_text()

    def __str__(self) -> str:
        return self.to_text()


def _model_labels(fits) -> list[str]:
    """Each model named by its formula (with the residual structure or family where two formulas agree)."""
    labels = []
    for f in fits:
        label = f.formula
        R = getattr(f, "residual_structure", None)
        if R is not None:
            label += f", residual={getattr(R, 'formula', R)}"
        labels.append(label)
    if len(set(labels)) < len(labels) and any(getattr(f, "has_family", False) for f in fits):
        labels = [lab + (f" [{_family_label(f)}]" if f.has_family else " [gaussian]") for lab, f in zip(labels, fits)]
    seen = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 and labels.count(lab) == 1 else f"{lab} ({seen[lab]})")
    return out


def _ml_version(fit):
    """An ML fit of the same model (REML fits are refitted, as lme4's anova does)."""
    if not getattr(fit, "reml", False):
        return fit, False
    return fit.refit(reml=False), True


def anova(*fits, names=None) -> pd.DataFrame:
    """Likelihood-ratio table for nested models, smallest first.

    Parameters
    ----------
    *fits : LmmFit or GlmmFit
        Two or more fits of nested models to the same rows.
    names : list of str, optional
        Row labels (default: each model's formula, as lme4's "Models:" lines name them).

    Returns
    -------
    AnovaTable
        A DataFrame (its text shows every column and the notes, however wide) with columns
        npar, aic, bic, loglik, deviance, chisq, df, p_value (lme4's columns), ordered by
        npar.  ``attrs["notes"]`` says when REML fits were refitted by ML and when a test
        puts a variance on its boundary (then the χ² p-value is conservative: for one
        variance the correct reference is the 50:50 mixture of χ²₀ and χ²₁, half the p-value).
    """
    from scipy import stats  # imported here: scipy.stats costs ~0.8 s of glmmkit's import

    from ..exceptions import ArgumentError

    if len(fits) < 2:
        raise ArgumentError("anova needs at least two fitted models")
    names = list(names) if names is not None else _model_labels(fits)
    if len(names) != len(fits):
        raise ArgumentError(f"{len(names)} names for {len(fits)} models")
    no_lik = [n for n, f in zip(names, fits) if not f.has_likelihood]
    if no_lik:
        from ..exceptions import NotAvailableError

        raise NotAvailableError(f"a likelihood-ratio test needs likelihoods; {', '.join(no_lik)} "
                                "(PQL) has none: refit with nagq=1 (Laplace) or nagq>1")
    nobs = {f.nobs for f in fits}
    if len(nobs) > 1:
        raise ArgumentError(f"the models were fitted to different numbers of rows ({sorted(nobs)}); "
                            "a likelihood-ratio test needs the same data")
    notes = []
    ml = []
    refitted = False
    for f in fits:
        g, r = _ml_version(f)
        ml.append(g)
        refitted |= r
    if refitted:
        notes.append("refitting model(s) with ML (instead of REML)")
    order = sorted(range(len(ml)), key=lambda i: ml[i].npar)
    rows = []
    prev = None
    for i in order:
        f = ml[i]
        row = {"npar": f.npar, "aic": f.aic, "bic": f.bic, "loglik": f.loglik, "deviance": -2.0 * f.loglik,
               "chisq": np.nan, "df": np.nan, "p_value": np.nan}
        if prev is not None:
            chisq = max(2.0 * (f.loglik - prev.loglik), 0.0)
            df = f.npar - prev.npar
            row.update(chisq=chisq, df=df, p_value=float(stats.chi2.sf(chisq, df)) if df > 0 else np.nan)
            if f.structure.n_theta > prev.structure.n_theta:
                notes.append(f"{names[i]} adds variance parameters: the null puts a variance on its boundary, so "
                             "the chi-square p-value is conservative (for one variance, halve it)")
        rows.append(row)
        prev = f
    table = AnovaTable(rows, index=[names[i] for i in order])
    table.attrs["notes"] = notes
    return table


def _family_label(fit) -> str:
    """The family with the sub-model formulas, which tell apart models of one conditional formula."""
    subs = getattr(getattr(fit, "_problem", None), "submodels", ())
    return ", ".join([fit.family.name] + [f"{s.part} {s.formula}" for s in subs])
