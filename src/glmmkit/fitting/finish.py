"""The steps every entry point (``lmer``, ``glmer``, the Dask and Bayesian paths) shares around a fit:
refusing grouping factors the data cannot estimate, and recording what the user must know afterwards."""

from __future__ import annotations

import time
import warnings

from ..exceptions import ConvergenceWarning, DataError, SingularFitWarning

__all__ = ["check_grouping", "finish_fit", "singular_message"]


def check_grouping(structure, nobs: int, lmm: bool) -> None:
    """Refuse grouping factors whose random effects the data cannot estimate.

    Terms with a correlation structure or a relationship matrix are exempt (one level is a model there).

    Parameters
    ----------
    structure : ModelStructure
        The random-effects structure (its ``blocks``, one per grouping factor).
    nobs : int
        Number of observations (complete rows) in the model frame.
    lmm : bool
        True for a linear mixed model, where a factor with as many effects as rows (``q * K >= nobs``)
        cannot be told apart from the residual; a GLMM has no residual variance, so only the
        fewer-than-2-levels check applies.

    Raises
    ------
    DataError
        A factor has fewer than 2 levels, or (``lmm``) one effect per row or more.
    """
    from ..covstruct import ScaledCorrelation
    from ..covstruct.relmat import RelatedLevels

    for b in structure.blocks:
        if all(isinstance(t.structure, (ScaledCorrelation, RelatedLevels)) for t in b.terms):
            # a correlation structure (or a relationship matrix) tells its effects from white noise, and
            # one level (a spatial field over all rows, a relmat term's block) is a model (glmmTMB's)
            continue
        if b.q < 2:
            raise DataError(
                f"grouping factor {b.factor.name!r} has only {b.q} level in the complete rows; "
                "a random effect needs at least 2 levels: remove the term or check the column"
            )
        if lmm and b.q * b.K >= nobs:
            raise DataError(
                f"grouping factor {b.factor.name!r} has {b.q} levels for {nobs} observations: "
                "its random effects cannot be told apart from the residual in a linear mixed model "
                "(one level per row); remove the term or use a GLMM"
            )


def finish_fit(fit, t0: float):
    """Record what the user must know (singular fit, no convergence) and the fit's wall time.

    Warns with ``SingularFitWarning`` / ``ConvergenceWarning`` and appends those messages to
    ``fit.optimizer_info.messages``; sets ``optimizer_info.method``, ``.singular`` and ``.time_s``.

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fitted model, changed in place.
    t0 : float
        ``time.perf_counter()`` when fitting began.

    Returns
    -------
    LmmFit or GlmmFit
        The same ``fit`` object.
    """
    info = fit.optimizer_info
    info.method = fit.method
    info.singular = bool(fit.singular)
    if fit.singular:
        msg = singular_message(fit)
        warnings.warn(msg, SingularFitWarning, stacklevel=3)
        info.messages.append(msg)
    if not info.converged:
        msg = f"the optimiser did not converge ({info.message}); check fit.optimizer_info"
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
        info.messages.append(msg)
    info.time_s = time.perf_counter() - t0
    return fit


def singular_message(fit) -> str:
    """lme4's "boundary (singular) fit" message, naming the terms on the boundary.

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        A fit whose ``_theta`` puts at least one term on the boundary (variance 0 or correlation ±1).

    Returns
    -------
    str
        One sentence naming each singular term as written (e.g. ``(Days | Subject)``) and what to do.
    """
    theta = fit._theta
    terms = [t for t in fit.structure.terms if t.structure.is_singular(theta[t.theta_slice])]
    def label(t):
        spec = getattr(t.source, "spec", None)
        if spec is not None and (spec.correlated or spec.structure):  # the term as written, on its factor
            return f"{spec.structure or ''}({spec.lhs} | {t.group})"
        cols = ["1" if n == "(Intercept)" else n for n in t.names]  # one column of a (x || g) term
        return f"({'' if '1' in cols else '0 + '}{' + '.join(cols)} | {t.group})"

    named = ", ".join(label(t) for t in terms) or "a random-effects term"
    verb = "have" if len(terms) > 1 else "has"
    return (f"boundary (singular) fit: {named} {verb} a variance estimated as zero or a correlation as ±1; "
            "the data do not support that much random-effects structure: consider simplifying it "
            "(see fit.varcorr and fit.singular, lme4's isSingular)")
