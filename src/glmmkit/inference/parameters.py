"""The variance parameters in lme4's parameterisation and names (``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``, ``sigma``), shared by the interval methods."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["variance_parameters", "all_parameters"]


def variance_parameters(fit) -> pd.Series:
    """sd / cor of every random-effect term and σ, with lme4's names."""
    names, values = [], []
    for t in fit.structure.terms:
        C = fit._term_cov(t)
        sd = np.sqrt(np.diag(C))
        for c in range(t.k):
            for r in range(c, t.k):
                if r == c:
                    names.append(f"sd_{t.names[c]}|{t.group}")
                    values.append(sd[c])
                else:
                    names.append(f"cor_{t.names[r]}.{t.names[c]}|{t.group}")
                    values.append(C[r, c] / (sd[r] * sd[c]) if sd[r] * sd[c] > 0 else np.nan)
    if fit.has_residual:
        names.append("sigma")
        values.append(fit.sigma)
    return pd.Series(values, index=names, dtype=float)


def all_parameters(fit) -> pd.Series:
    return pd.concat([variance_parameters(fit), fit.fixef])
