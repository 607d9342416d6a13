"""lme4's ``as.data.frame(VarCorr())`` rows of one term's covariance, shared by the conditional model's
``varcorr`` and the zero part's ``varcorr_part`` (a module of its own: both results modules import it)."""

from __future__ import annotations

import numpy as np

__all__ = ["covariance_rows"]


def covariance_rows(group: str, names, C) -> list:
    """A variance row per column (term2 NaN, sdcor the SD), then a row per pair (the covariance and the
    correlation).

    Parameters
    ----------
    group : str
        The grouping factor's label.
    names : sequence of str
        The term's columns.
    C : ndarray, shape (k, k)
        Their covariance.

    Returns
    -------
    list of tuple
        (group, term1, term2, vcov, sdcor) rows.
    """
    sd = np.sqrt(np.diag(C))
    rows = [(group, name, np.nan, C[i, i], sd[i]) for i, name in enumerate(names)]
    for c in range(len(names)):
        for r in range(c + 1, len(names)):
            denom = sd[r] * sd[c]
            rows.append((group, names[c], names[r], C[r, c], C[r, c] / denom if denom > 0 else np.nan))
    return rows
