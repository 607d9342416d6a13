"""The variance parameters in lme4's parameterisation and names (``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``, ``sigma``), shared by the interval methods."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["variance_parameters", "natural_parameters", "all_parameters"]


def variance_parameters(fit) -> pd.Series:
    """The variance parameters on lme4's natural scale, with lme4's names.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.

    Returns
    -------
    pandas.Series
        sd / cor of every random-effect term (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``,
        or a structured term's own parameters: ``sd|id``, ``rho|id``, ``range|group``), ``sigma`` (models
        with a residual), and a residual structure's (``Phi|Subject``), in that order.
    """
    names, values = [], []
    for name, value, _, _ in natural_parameters(fit):
        names.append(name)
        values.append(value)
    return pd.Series(values, index=names, dtype=float)


def natural_parameters(fit) -> list[tuple]:
    """Every variance parameter with the bounds of its natural scale.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.

    Returns
    -------
    list of tuple
        ``(name, value, lower, upper)`` per parameter in :func:`variance_parameters`' order (e.g.
        ``(0, inf)`` for an SD, ``(-1, 1)`` for a correlation).
    """
    out = []
    sigma = fit.sigma if fit.has_residual else 1.0
    for t in fit.structure.terms:
        for name, value, lo, hi in t.structure.natural(fit._theta[t.theta_slice], sigma, t.names):
            out.append((f"{name}|{t.group}", value, lo, hi))
    if fit.has_residual:
        out.append(("sigma", float(fit.sigma), 0.0, np.inf))
    R = getattr(fit, "_residual", None)
    if R is not None:
        out += R.interval_parameters(fit._residual_psi, {n for n, *_ in out})
    return out


def all_parameters(fit) -> pd.Series:
    """Variance parameters then fixed effects: the rows an interval method reports.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.

    Returns
    -------
    pandas.Series
        :func:`variance_parameters` followed by ``fit.fixef``, indexed by lme4's names.
    """
    return pd.concat([variance_parameters(fit), fit.fixef])
