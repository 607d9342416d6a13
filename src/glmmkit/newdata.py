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
    """The kept fixed-effect columns for the rows of ``nd``, in the fit's encoding.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model (its formula, fixed-effects spec and kept columns).
    nd : pandas.DataFrame
        New rows, with a default (0..n-1) index.

    Returns
    -------
    numpy.ndarray, shape (len(nd), p)
        The fixed-effects design, columns as ``fit.fixef`` (aliased columns dropped).

    Raises
    ------
    DataError
        When the design cannot be built (a missing column, a factor level not in the fit, ...).
    """
    try:
        X = np.asarray(build_design(fit.frame.parsed.fixed_rhs, nd, fit.frame.fixed_spec)[0], dtype=float)
    except Exception as exc:
        raise DataError(f"cannot build the fixed-effects design for newdata: {exc}") from None
    return X.reshape(len(nd), -1)[:, fit._x_kept]


def term_rows(fit, t, nd: pd.DataFrame, allow_new_levels: bool):
    """The columns and levels of random-effect term ``t`` for the rows of ``nd``.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model.
    t : Term
        One of ``fit.structure.terms``.
    nd : pandas.DataFrame
        New rows, with a default index.
    allow_new_levels : bool
        Accept levels of the grouping factor not in the fit (they get index -1, the population
        prediction) instead of raising.

    Returns
    -------
    tuple
        ``(cols, idx, missing)``: the term's columns for the rows (n, k), each row's level in its
        block (int array, -1 for a level not in the fit) and a boolean array of the rows whose grouping
        factor is missing.

    Raises
    ------
    DataError
        Rows with levels not in the fit, unless ``allow_new_levels``.
    """
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
