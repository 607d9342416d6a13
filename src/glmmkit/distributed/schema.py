"""The schema of a Dask DataFrame for one model, learned from its partitions in one pass.

Each partition reports, for the columns the model uses: the kind of each column (numeric, bool,
text, categorical with its categories), its missing values, the range of the numeric columns on
the complete rows, the distinct values of every factor-like column on the complete rows, and the
distinct combinations of interaction grouping factors (``(1 | a:b)``, ``(1 | a/b)``).  The
reports are merged here (an error names the column and the first partition that disagrees), and
the merged levels fix one encoding for every partition (``EncodingPlan`` in ``crossprod.py``):
the same levels in the same order as the in-memory frame would find in the whole data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import DataError

__all__ = ["PartitionSchema", "DataSchema", "partition_schema", "merge_schemas", "column_kind"]


def column_kind(col: pd.Series) -> str:
    """The kind of a column as the model frame reads it.

    Parameters
    ----------
    col : pandas.Series
        A column of one partition.

    Returns
    -------
    str
        ``"categorical"``, ``"bool"``, ``"numeric"``, ``"text"``, ``"datetime"`` or ``"other"``.
    """
    dt = col.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dt):
        return "bool"
    if pd.api.types.is_numeric_dtype(dt):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "datetime"
    if pd.api.types.is_string_dtype(dt) or dt == object:
        return "text"
    return "other"


@dataclass
class PartitionSchema:
    """What one partition holds of the model's columns.

    Attributes
    ----------
    n_rows, n_complete : int
        Rows, and rows with no missing value in a used column.
    kinds : dict
        Column -> kind (``column_kind``).
    categories : dict
        Categorical column -> its categories (all of them, used or not), as a tuple.
    missing : dict
        Column -> number of missing values.
    ranges : dict
        Numeric column -> (min, max) over the complete rows (None when there are none).
    values : dict
        Factor-like column -> array of its distinct values on the complete rows.
    combos : dict
        Interaction (tuple of columns) -> DataFrame of its distinct value combinations there.
    """

    n_rows: int
    n_complete: int
    kinds: dict
    categories: dict
    missing: dict
    ranges: dict
    values: dict
    combos: dict = field(default_factory=dict)


def _complete_mask(part: pd.DataFrame, columns) -> np.ndarray:
    mask = np.ones(len(part), dtype=bool)
    for c in columns:
        mask &= ~part[c].isna().to_numpy()
    return mask


def partition_schema(part: pd.DataFrame, used: list, factor_columns: list, interactions: list) -> PartitionSchema:
    """The schema report of one partition (run on a worker).

    Parameters
    ----------
    part : pandas.DataFrame
        One partition.
    used : list of str
        The columns the model uses (missing values in any of them drop a row).
    factor_columns : list of str
        The columns whose levels the encoding needs: grouping factors and every used non-numeric column.
    interactions : list of tuple of str
        Grouping factors of several columns.

    Returns
    -------
    PartitionSchema
    """
    complete = _complete_mask(part, used)
    kinds, cats, missing, ranges, values, combos = {}, {}, {}, {}, {}, {}
    sub = part.loc[complete]
    for c in used:
        col = part[c]
        kinds[c] = column_kind(col)
        missing[c] = int(col.isna().sum())
        if kinds[c] == "categorical":
            cats[c] = tuple(col.cat.categories.tolist())
        if kinds[c] == "numeric":
            vals = sub[c].to_numpy(dtype=float)
            ranges[c] = (float(vals.min()), float(vals.max())) if vals.size else None
    for c in factor_columns:
        col = sub[c]
        if kinds.get(c) == "categorical":
            codes = np.unique(col.cat.codes.to_numpy())
            values[c] = np.asarray(col.cat.categories)[codes[codes >= 0]]
        elif kinds.get(c) == "text":
            values[c] = np.unique(col.to_numpy(dtype=object).astype(str))
        else:
            values[c] = np.unique(col.to_numpy())
    for cols in interactions:
        frame = sub[list(cols)].copy()
        for c in cols:
            if kinds.get(c) == "text":
                frame[c] = frame[c].astype(str)
            elif kinds.get(c) == "categorical":
                frame[c] = frame[c].astype(object)
        combos[tuple(cols)] = frame.drop_duplicates().reset_index(drop=True)
    return PartitionSchema(len(part), int(complete.sum()), kinds, cats, missing, ranges, values, combos)


@dataclass
class DataSchema:
    """The merged schema of all partitions.

    Attributes
    ----------
    kinds : dict
        Column -> kind (the same in every partition).
    levels : dict
        Factor-like column -> array of its levels in the in-memory frame's order (categories'
        order for a categorical, sorted otherwise), complete rows only.
    ranges : dict
        Numeric column -> (min, max) over the complete rows.
    combos : dict
        Interaction -> int64 array (n_levels, n_columns) of its levels as indices into each
        component's ``levels``, in R's order (first component slowest).
    n_rows, n_complete : int
        Rows in all, rows with every used column present.
    partitions : list of PartitionSchema
        The per-partition reports (the crossproduct pass skips partitions without complete rows).
    """

    kinds: dict
    levels: dict
    ranges: dict
    combos: dict
    n_rows: int
    n_complete: int
    partitions: list


def _union_sorted(arrays, kind: str) -> np.ndarray:
    if not arrays:
        return np.array([], dtype=object)
    vals = np.concatenate([np.asarray(a, dtype=object if kind == "text" else None) for a in arrays])
    if kind == "text":
        return np.unique(vals.astype(str)).astype(object)
    return np.unique(vals)


def merge_schemas(parts: list, used: list, factor_columns: list, interactions: list, unknown=()) -> DataSchema:
    """Merge the partitions' reports; refuse partitions that disagree.

    Parameters
    ----------
    parts : list of PartitionSchema
        One report per partition, in partition order.
    used, factor_columns, interactions : list
        As :func:`partition_schema`.
    unknown : collection of str
        Categorical columns whose categories the Dask frame does not know (``read_parquet`` of files
        that each hold their own dictionary): their partitions may differ, and their levels are the
        sorted union of the values, as for text.

    Returns
    -------
    DataSchema

    Raises
    ------
    DataError
        A column's kind (numeric, text, categorical, ...) or a categorical's categories differ
        between partitions (naming the column and the first partition that differs), or no
        partition has a complete row.
    """
    first = parts[0]
    for i, ps in enumerate(parts[1:], start=1):
        for c in used:
            if ps.kinds[c] != first.kinds[c]:
                raise DataError(
                    f"column {c!r} is {first.kinds[c]} in partition 0 but {ps.kinds[c]} in partition {i} of the "
                    f"Dask DataFrame; give it one type in every partition (e.g. ddf[{c!r}].astype(...)) before fitting")
            if first.kinds[c] == "categorical" and c not in unknown and ps.categories[c] != first.categories[c]:
                shown = ", ".join(map(repr, ps.categories[c][:6]))
                raise DataError(
                    f"categorical column {c!r} has other categories in partition {i} ({shown}"
                    f"{', ...' if len(ps.categories[c]) > 6 else ''}) than in partition 0 of the Dask DataFrame; "
                    f"give every partition the same categories (ddf[{c!r}].cat.set_categories(...)) before fitting")
    n_complete = sum(p.n_complete for p in parts)
    if n_complete == 0:
        raise DataError(f"no complete rows: every row of the Dask DataFrame has a missing value in a column the model "
                        f"uses ({', '.join(used)})")
    kinds = dict(first.kinds)
    levels = {}
    for c in factor_columns:
        arrays = [p.values[c] for p in parts if p.n_complete]
        if kinds[c] == "categorical" and c in unknown:
            vals = np.concatenate([np.asarray(a) for a in arrays]) if arrays else np.array([])
            numeric = vals.dtype.kind in "iufb" or all(isinstance(v, (int, float, np.number)) for v in vals.tolist())
            levels[c] = np.unique(vals if numeric else vals.astype(str)).astype(object)
        elif kinds[c] == "categorical":  # the categories' order, those used on complete rows only
            present = set(np.concatenate(arrays).tolist()) if arrays else set()
            levels[c] = np.asarray([v for v in first.categories[c] if v in present], dtype=object)
        else:
            levels[c] = _union_sorted(arrays, kinds[c])
    ranges = {}
    for c in used:
        if kinds[c] == "numeric":
            rs = [p.ranges[c] for p in parts if p.ranges.get(c) is not None]
            ranges[c] = (min(r[0] for r in rs), max(r[1] for r in rs)) if rs else (0.0, 1.0)
    combos = {}
    for cols in interactions:
        frames = [p.combos[tuple(cols)] for p in parts if p.n_complete]
        allc = pd.concat(frames, ignore_index=True).drop_duplicates()
        idx = []
        for c in cols:
            lv = levels[c]
            vals = allc[c].to_numpy(dtype=object).astype(str) if kinds[c] == "text" else allc[c].to_numpy()
            idx.append(pd.Index(lv).get_indexer(vals))
        keys = np.column_stack(idx).astype(np.int64)
        order = np.lexsort(keys.T[::-1])  # first component slowest
        combos[tuple(cols)] = keys[order]
    return DataSchema(kinds, levels, ranges, combos, sum(p.n_rows for p in parts), n_complete, parts)
