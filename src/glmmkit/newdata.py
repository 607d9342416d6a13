"""New rows in a fitted model's encoding: the fixed-effect columns and each random-effect term's
columns and levels, with the checks that ``predict``, ``simulate`` and the prediction SEs share
(levels not in the fit, missing grouping factors)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import build_design
from .exceptions import DataError
from .frame import factor_labels, term_columns

__all__ = ["fixed_design", "term_rows"]


def fixed_design(fit, nd: pd.DataFrame) -> np.ndarray:
    """The kept fixed-effect columns for the rows of ``nd`` (default index), in the fit's encoding."""
    try:
        X = np.asarray(build_design(fit.frame.parsed.fixed_rhs, nd, fit.frame.fixed_spec)[0], dtype=float)
    except Exception as exc:
        raise DataError(f"cannot build the fixed-effects design for newdata: {exc}") from None
    return X.reshape(len(nd), -1)[:, fit._x_kept]


def term_rows(fit, t, nd: pd.DataFrame, allow_new_levels: bool):
    """(columns, level index, missing) of random-effect term ``t`` for the rows of ``nd``: the term's
    columns, each row's level in its block (−1 for a level not in the fit, a ``DataError`` unless
    ``allow_new_levels``), and the rows whose grouping factor is missing."""
    block = fit.structure.blocks[t.block]
    labels = factor_labels(nd, t.source.spec.factors)
    if t.structure.kind == "relmat":  # one block level; the row's level picks its row of L
        codes = pd.Index(t.structure.levels).get_indexer(labels).astype(np.int64)
        cols = t.structure.rows_for(codes) * term_columns(t.source, nd)[:, :1]
        idx = np.where(codes >= 0, 0, -1)
    else:
        cols = t.columns_from(term_columns(t.source, nd))
        idx = pd.Index(block.factor.levels).get_indexer(labels).astype(np.int64)
    missing_rows = pd.isna(nd[list(t.source.spec.factors)]).any(axis=1).to_numpy()
    new = (idx < 0) & ~missing_rows
    if new.any() and not allow_new_levels:
        examples = sorted(set(labels[new]))[:3]
        raise DataError(
            f"newdata has {int(new.sum())} row(s) with level(s) of {block.factor.name!r} not in the fit "
            f"(e.g. {examples}); pass allow_new_levels=True to predict them at the population level"
        )
    return cols, idx, missing_rows
