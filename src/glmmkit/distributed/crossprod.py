"""One fixed encoding for every partition, and the crossproducts of one partition.

``EncodingPlan`` holds what the merged schema fixed: each factor-like column's levels, each grouping
factor's levels (interactions: their combinations, in R's order), and the fixed-effect and
random-term designs' specs, learned once from a small prototype frame that holds every level (so
every partition gives the same columns whatever levels it holds).  ``partition_frame`` applies it:
the in-memory frame builder on one partition, its grouping factors recoded to the global levels.
``partition_crossproducts`` turns that into summable pieces (``linalg.blocked.chunk_crossproducts``
plus what the rank and scaling checks read), and ``combine`` adds two pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..exceptions import DataError, GlmmkitError, NotAvailableError
from ..frame import GroupingFactor, _check_columns, _level_labels, _response_variables, _used_variables, build_model_frame
from ..linalg.blocked import chunk_crossproducts
from ..structure import build_structure
from .schema import column_kind

__all__ = ["EncodingPlan", "model_columns", "make_plan", "partition_frame", "partition_crossproducts", "combine"]

#: formula functions whose result depends on the whole column (scale(), poly(), ...): learned from one
#: partition they would differ from the in-memory fit's
_STATEFUL = re.compile(r"\b(scale|center|standardize|poly|bs|cr|cs|cc|te|hashed)\s*\(")


def model_columns(parsed, meta: pd.DataFrame, weights=None, offset=None):
    """The columns a model reads, its factor-like columns and its interaction grouping factors.

    Parameters
    ----------
    parsed : ParsedFormula
        The parsed formula.
    meta : pandas.DataFrame
        An empty frame with the Dask frame's columns and dtypes (``ddf._meta``).
    weights, offset : str or None
        Column names of prior weights and an offset.

    Returns
    -------
    tuple
        ``(used, factor_columns, interactions)``: the used columns in the data's order, the columns
        whose levels the encoding needs (grouping factors and non-numeric columns), and the
        grouping factors of several columns.

    Raises
    ------
    FormulaError
        A column the model names is not in the data.
    NotAvailableError
        The formula uses a function learned from the whole column (``scale()``, ``poly()``), or
        weights / offset not given as column names.
    """
    for arg, what in ((weights, "weights"), (offset, "offset")):
        if arg is not None and not isinstance(arg, str):
            raise NotAvailableError(f"{what}= must name a column of the Dask DataFrame (arrays cannot be split "
                                    f"into its partitions); add it with ddf.assign(...) and pass its name")
    texts = [parsed.fixed_rhs] + [t.lhs for t in parsed.random]
    for text in texts:
        m = _STATEFUL.search(text)
        if m:
            raise NotAvailableError(
                f"{m.group(1)}() learns from the whole column, which a Dask DataFrame's partitions do not hold "
                f"one at a time; compute the column first (ddf.assign(x_s=...)) and use it in the formula")
    fixed = _response_variables(parsed.response, meta) | _used_variables("~ " + parsed.fixed_rhs, meta)
    _check_columns(sorted(fixed), meta, f"formula {parsed.text!r}")
    used = set(fixed)
    for off in parsed.offsets:
        v = _used_variables(f"~ I({off})", meta)
        _check_columns(sorted(v), meta, f"offset({off})")
        used |= v
    groups, interactions = set(), []
    for term in parsed.random:
        lhs = set() if term.lhs.strip() in ("1", "0", "-1") else _used_variables("~ " + term.lhs, meta)
        _check_columns(sorted(lhs), meta, f"random-effects term {term.source}")
        _check_columns(list(term.factors), meta, f"grouping factor of {term.source}")
        used |= lhs | set(term.factors)
        groups |= set(term.factors)
        if len(term.factors) > 1 and tuple(term.factors) not in interactions:
            interactions.append(tuple(term.factors))
    for arg, what in ((weights, "weights="), (offset, "offset=")):
        if arg is not None:
            _check_columns([arg], meta, what)
            used.add(arg)
    ordered = [c for c in meta.columns if c in used]
    factor_cols = [c for c in ordered if c in groups or column_kind(meta[c]) not in ("numeric",)]
    factor_cols = [c for c in factor_cols if c not in (weights, offset)]
    return ordered, factor_cols, interactions


@dataclass
class EncodingPlan:
    """The fixed encoding every partition is built with.

    Attributes
    ----------
    parsed : ParsedFormula
        The parsed formula.
    used : list of str
        The used columns.
    weights, offset : str or None
        Column names of prior weights and an offset.
    kinds : dict
        Column -> kind.
    levels : dict
        Factor-like column -> its global levels.
    factors : dict
        Grouping-factor name (``"a:b"``) -> (component columns, int64 keys of its levels or None
        for one column, level labels).
    specs : tuple
        ``(fixed_spec, term_specs)`` for ``build_model_frame``.
    x_names : list of str
        The fixed-effect columns every partition must give.
    prototype : ModelFrame
        The frame of the prototype rows (its random terms give the fit's term names and specs).
    start : str or None
        The in-memory start the pass collects sums for (``start.start_kind``): ``"two_stage"``
        adds the lead levels' [X y]'[X y] (``H``).
    family : Family or None
        A GLMM's family: each partition's response is read as the in-memory ``glmer`` reads it
        (a two-level factor, ``cbind(successes, failures)``); None for ``lmer``.
    """

    parsed: object
    used: list
    weights: str | None
    offset: str | None
    kinds: dict
    levels: dict
    factors: dict
    specs: tuple
    x_names: list
    prototype: object
    start: str | None = None
    family: object = None


def _radix(levels: dict, cols) -> np.ndarray:
    sizes = np.array([max(len(levels[c]), 1) for c in cols], dtype=np.int64)
    if float(np.prod(sizes.astype(float))) >= 2.0**62:
        raise NotAvailableError(f"the interaction {':'.join(cols)} has too many possible levels for a Dask fit; "
                                "combine its columns into one column first")
    return sizes


def _keys(idx: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    key = np.zeros(idx.shape[0], dtype=np.int64)
    for j in range(idx.shape[1]):
        key = key * sizes[j] + idx[:, j]
    return key


def cast_levels(part: pd.DataFrame, plan_levels: dict, kinds: dict) -> pd.DataFrame:
    """A partition whose text and categorical columns are categoricals on the global levels.

    Parameters
    ----------
    part : pandas.DataFrame
        One partition.
    plan_levels : dict
        Factor-like column -> global levels.
    kinds : dict
        Column -> kind.

    Returns
    -------
    pandas.DataFrame
        A shallow copy with those columns replaced (values outside the levels, which only incomplete
        rows hold, become missing).
    """
    out = part.copy(deep=False)
    for c, lv in plan_levels.items():
        kind = kinds[c]
        if kind == "text":
            vals = part[c].astype(object).where(part[c].notna(), None)
            strs = np.asarray([None if v is None else str(v) for v in vals.to_numpy()], dtype=object)
            out[c] = pd.Categorical(strs, categories=pd.Index(lv, dtype=object))
        elif kind == "categorical":  # map the categories, not the values (rows gather by code)
            col = part[c]
            at = np.append(pd.Index(lv, dtype=object).get_indexer(col.cat.categories.astype(object)), -1)
            out[c] = pd.Categorical.from_codes(at[col.cat.codes.to_numpy()], categories=pd.Index(lv, dtype=object))
    return out


def make_plan(parsed, schema, used, factor_cols, interactions, weights=None, offset=None, family=None) -> EncodingPlan:
    """The encoding plan from the merged schema: levels, grouping factors, design specs.

    The specs are learned from a prototype frame with one row per level of the largest factor
    (every factor cycling through its levels, numeric columns spanning their range), so categorical
    predictors are coded on all their levels with the in-memory frame's reference level.

    Parameters
    ----------
    parsed : ParsedFormula
        The parsed formula.
    schema : DataSchema
        The merged schema.
    used, factor_cols, interactions : list
        From :func:`model_columns`.
    weights, offset : str or None
        Column names.
    family : Family, optional
        A GLMM's family (its response forms: ``cbind``, a two-level factor).

    Returns
    -------
    EncodingPlan
    """
    levels = {c: schema.levels[c] for c in factor_cols}
    L = max([2] + [len(v) for v in levels.values()])
    proto = {}
    for c in used:
        kind = schema.kinds[c]
        if c in levels and len(levels[c]):
            vals = np.resize(np.asarray(levels[c]), L)
            if kind in ("text", "categorical"):
                vals = pd.Categorical(vals.astype(object), categories=pd.Index(levels[c], dtype=object))
            proto[c] = vals
        elif kind == "numeric":
            lo, hi = schema.ranges[c]
            proto[c] = np.linspace(lo, hi, L) if hi > lo else np.full(L, lo)
        else:
            raise DataError(f"column {c!r} is {kind}; the model can use numbers, text, categoricals and booleans")
    proto_df = pd.DataFrame(proto)
    frame0 = build_model_frame(parsed, proto_df, weights=weights, offset=offset, family=family)
    specs = (frame0.fixed_spec, [rt.model_spec for rt in frame0.random])
    factors = {}
    for rt in frame0.random:
        cols = tuple(rt.spec.factors)
        name = rt.factor.name
        if name in factors:
            continue
        if len(cols) == 1:
            factors[name] = (cols, None, _level_labels(levels[cols[0]]))
        else:
            combos = schema.combos[cols]
            sizes = _radix(levels, cols)
            comp = [np.asarray(_level_labels(levels[c]), dtype=object)[combos[:, j]] for j, c in enumerate(cols)]
            labels = [":".join(t) for t in zip(*comp)] if combos.shape[0] else []
            factors[name] = (cols, _keys(combos, sizes), labels)
    return EncodingPlan(parsed, list(used), weights, offset, dict(schema.kinds), levels, factors, specs,
                        list(frame0.x_names), frame0, family=family)


def _component_codes(col: pd.Series, lv) -> np.ndarray:
    index = pd.Index(lv)
    if isinstance(col.dtype, pd.CategoricalDtype):
        at = np.append(index.get_indexer(col.cat.categories), -1)
        return at[col.cat.codes.to_numpy()]
    return index.get_indexer(col.to_numpy())


def global_factor(plan: EncodingPlan, name: str, data: pd.DataFrame) -> GroupingFactor:
    """A grouping factor of a partition's complete rows coded on the global levels.

    Parameters
    ----------
    plan : EncodingPlan
        The encoding.
    name : str
        The factor's name (``"Subject"``, ``"a:b"``).
    data : pandas.DataFrame
        The partition's complete rows (``ModelFrame.data``).

    Returns
    -------
    GroupingFactor
        Codes into the global levels, which it lists.
    """
    cols, keys, labels = plan.factors[name]
    idx = np.column_stack([_component_codes(data[c], plan.levels[c]) for c in cols]).astype(np.int64)
    if (idx < 0).any():  # cannot happen for a schema learned from these rows: a changed partition
        raise DataError(f"grouping factor {name!r} has a level that the schema pass did not see; "
                        "the Dask DataFrame changed between passes: persist it or read it again")
    codes = idx[:, 0] if keys is None else np.searchsorted(keys, _keys(idx, _radix(plan.levels, cols)))
    return GroupingFactor(name, codes.astype(np.int64), labels)


def partition_frame(part: pd.DataFrame, plan: EncodingPlan):
    """The model frame and structure of one partition in the global encoding.

    Parameters
    ----------
    part : pandas.DataFrame
        One partition.
    plan : EncodingPlan
        The encoding.

    Returns
    -------
    tuple or None
        ``(frame, structure)``; None when the partition has no complete row.
    """
    if len(part) == 0:
        return None
    mask = np.ones(len(part), dtype=bool)
    for c in plan.used:
        mask &= ~part[c].isna().to_numpy()
    if not mask.any():
        return None
    frame = build_model_frame(plan.parsed, cast_levels(part, plan.levels, plan.kinds), weights=plan.weights,
                              offset=plan.offset, specs=plan.specs, family=plan.family)
    if list(frame.x_names) != plan.x_names:
        raise DataError(f"the fixed-effect columns differ from the other partitions' ({frame.x_names} vs "
                        f"{plan.x_names}); give every partition the same column types")
    made = {}
    random = []
    for rt in frame.random:
        name = rt.factor.name
        if name not in made:
            made[name] = global_factor(plan, name, frame.data)
        random.append(replace(rt, factor=made[name]))
    frame = replace(frame, random=random)
    return frame, build_structure(frame)


def partition_crossproducts(part: pd.DataFrame, plan: EncodingPlan, index: int):
    """The summable pieces of one partition (run on a worker).

    Parameters
    ----------
    part : pandas.DataFrame
        One partition.
    plan : EncodingPlan
        The encoding.
    index : int
        The partition's number (named in errors).

    Returns
    -------
    dict or None
        ``chunk_crossproducts``'s pieces plus ``R`` (the R factor of the unweighted X, for the rank
        check), ``colsum``, ``sumsq``, ``indicator`` (all entries 0/1) per X column, ``log_w``
        (Σ log w), ``zero_w`` (rows of weight 0), ``y_range``, ``ysum``, ``lead_counts`` (rows per
        lead level), ``H`` (``plan.start == "two_stage"``), ``unweighted`` (with prior weights and a
        start: the unweighted crossproducts the in-memory starts read) and ``n_dropped``; ``{"empty": True, ...}``
        without a complete row.
    """
    try:
        made = partition_frame(part, plan)
        if made is None:
            return {"n_dropped": len(part), "empty": True}
        frame, structure = made
        y = frame.y - frame.offset
        w = frame.weights
        sqrt_w = None if w is None else np.sqrt(w)
        pieces = chunk_crossproducts(structure.blocks, frame.X, y, sqrt_w)
    except GlmmkitError as exc:
        raise type(exc)(f"partition {index} of the Dask DataFrame: {exc}") from None
    X = frame.X
    pieces.update(
        R=np.linalg.qr(X, mode="r") if X.shape[1] else np.zeros((0, 0)),
        colsum=X.sum(axis=0), sumsq=np.einsum("ij,ij->j", X, X),
        indicator=np.all((X == 0.0) | (X == 1.0), axis=0),
        log_w=0.0 if w is None else float(np.sum(np.log(w[w > 0]))), zero_w=0 if w is None else int(np.sum(w == 0)),
        y_range=(float(np.min(y)), float(np.max(y))), n_dropped=frame.n_dropped, empty=False,
        ysum=float(np.sum(y)), lead_counts=np.bincount(structure.blocks[0].factor.codes,
                                                       minlength=structure.blocks[0].q).astype(float))
    if w is not None and plan.start is not None:  # the in-memory starts read the unweighted rows
        pieces["unweighted"] = chunk_crossproducts(structure.blocks, X, y)
    if plan.start == "two_stage":
        codes, q1 = structure.blocks[0].factor.codes, structure.blocks[0].q
        XY = np.column_stack([X, y])
        H = np.empty((q1, XY.shape[1], XY.shape[1]))
        for a in range(XY.shape[1]):
            for b in range(a + 1):
                H[:, a, b] = H[:, b, a] = np.bincount(codes, XY[:, a] * XY[:, b], minlength=q1)
        pieces["H"] = H
    return pieces


def combine(a: dict, b: dict) -> dict:
    """The pieces of two chunks together (sums; R factors stacked and refactored; ranges merged).

    Parameters
    ----------
    a, b : dict
        Pieces from :func:`partition_crossproducts` (or earlier combinations).

    Returns
    -------
    dict
        The pieces of both chunks' rows.
    """
    if a.get("empty"):
        return dict(b, n_dropped=a["n_dropped"] + b["n_dropped"])
    if b.get("empty"):
        return dict(a, n_dropped=a["n_dropped"] + b["n_dropped"])
    out = {}
    for k in ("A11", "G", "Axx", "n", "colsum", "sumsq", "log_w", "zero_w", "n_dropped", "ysum", "lead_counts"):
        out[k] = a[k] + b[k]
    if "H" in a:
        out["H"] = a["H"] + b["H"]
    if "unweighted" in a:
        ua, ub = a["unweighted"], b["unweighted"]
        out["unweighted"] = {k: (None if ua[k] is None else ua[k] + ub[k]) for k in ua}
    for k in ("Azz", "Azx", "Az1"):
        out[k] = None if a[k] is None else a[k] + b[k]
    out["indicator"] = a["indicator"] & b["indicator"]
    R = np.vstack([a["R"], b["R"]])
    out["R"] = np.linalg.qr(R, mode="r") if R.shape[1] else R
    out["y_range"] = (min(a["y_range"][0], b["y_range"][0]), max(a["y_range"][1], b["y_range"][1]))
    out["empty"] = False
    return out


def tree_reduce(items: list, fn):
    """Pairwise reduction of delayed objects (depth log2 of their number).

    Parameters
    ----------
    items : list of dask.delayed.Delayed
        The per-partition results.
    fn : callable
        Combines two results.

    Returns
    -------
    dask.delayed.Delayed
        The combination of all of them.
    """
    import dask

    combine_d = dask.delayed(fn, pure=True)
    while len(items) > 1:
        nxt = [combine_d(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]

