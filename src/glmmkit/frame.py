"""Model frame: from a data frame and a parsed formula to clean numeric arrays.

This is where data enters the engine, so this is where it is checked: unknown
columns, rows with missing values (dropped and counted, as lme4 does), grouping
factors coded to integers, fixed-effect design built by formulaic with R's
conventions (treatment contrasts, first level as reference), and R-style
column names (``(Intercept)``, ``trtB``, ``trtB:week``).
"""

from __future__ import annotations

import ast

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from .exceptions import DataError, DataTypeError, FormulaError, ArgumentError
from .design import (FUNCTIONS, ColumnReader, build_design, formula_variables, model_matrix, quote_dotted,
                     r_column_name)
from .formula import ParsedFormula, RandomTermSpec
from .formula.parser import _python_powers
from .validate import (check_finite_array, check_finite_columns, check_numbers_as_text, is_text, suggest,
                       text_as_factor)

__all__ = ["GroupingFactor", "RandomTermData", "ModelFrame", "build_model_frame", "r_column_name"]


@dataclass
class GroupingFactor:
    """A grouping factor coded as integers.

    Attributes
    ----------
    name : str
        As lme4 prints it, e.g. ``"pen:room"``.
    codes : ndarray of int64, shape (n,)
        Level index of every row, in ``0 .. len(levels) - 1``.
    levels : list of str
        Level labels in R's order (interactions: ``"P1:R01"``, first component slowest).
    """

    name: str
    codes: np.ndarray
    levels: list[str]

    @property
    def nlevels(self) -> int:
        """Number of levels of the factor.

        Returns
        -------
        int
            ``len(levels)``.
        """
        return len(self.levels)


@dataclass
class RandomTermData:
    """The numeric content of one random-effects term.

    Attributes
    ----------
    spec : RandomTermSpec
        The parsed term (its left-hand side, grouping factors and covariance structure).
    factor : GroupingFactor
        The term's grouping factor coded on the model frame's rows.
    columns : ndarray, shape (n, k)
        The term's model-matrix columns (``[1, Days]`` for ``(Days | Subject)``).
    names : list of str
        Their R names.
    model_spec : formulaic ModelSpec or None
        Encoding of the left-hand side's design, reused to build the columns for new data;
        None for an intercept-only term.
    """

    spec: RandomTermSpec
    factor: GroupingFactor
    columns: np.ndarray
    names: list[str]
    model_spec: object = None


@dataclass
class ModelFrame:
    """Complete-case arrays for one model.

    Attributes
    ----------
    parsed : ParsedFormula
        The parsed model formula.
    data : DataFrame
        The used columns of the complete rows (original index kept).
    n_dropped : int
        Rows dropped because a used column was missing.
    y : ndarray, shape (n,)
        The response of the n complete rows (a binomial ``cbind(s, f)`` response: the proportion
        of successes, with the trials in ``weights``).
    X : ndarray, shape (n, p)
        The fixed-effects design matrix (before aliased columns are dropped).
    x_names : list of str
        The p column names of ``X`` in R's spelling.
    offset : ndarray, shape (n,)
        The offset on the linear-predictor scale (``offset=`` plus every ``offset()`` term;
        zeros when there is none).
    weights : ndarray, shape (n,), or None
        Prior weights (binomial trials folded in); None when there are none.
    random : list of RandomTermData
        One entry per random-effects term, in formula order.
    fixed_spec : formulaic ModelSpec or None
        Spec of the fixed design, reused to build X for new data.
    response_name : str
        The response as written on the formula's left-hand side.
    messages : list of str
        Notes for the user from building the frame (rows dropped for missing values).
    """

    parsed: ParsedFormula
    data: pd.DataFrame
    n_dropped: int
    y: np.ndarray
    X: np.ndarray
    x_names: list[str]
    offset: np.ndarray
    weights: np.ndarray | None
    random: list[RandomTermData]
    fixed_spec: object = None
    response_name: str = ""
    messages: list[str] = field(default_factory=list)

    @property
    def nobs(self) -> int:
        """Number of complete rows the model is fitted to.

        Returns
        -------
        int
            n, the length of ``y``.
        """
        return self.y.shape[0]


def _used_variables(text: str, df: pd.DataFrame) -> set:
    """Columns a formula piece reads (names of known functions are not columns unless the data has them)."""
    return {v for v in formula_variables(quote_dotted(text, df.columns)) if v in df.columns or v not in FUNCTIONS}


def _as_dataframe(data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        df = data
    elif hasattr(data, "to_pandas"):  # polars, pyarrow tables
        df = data.to_pandas()
    else:
        raise DataTypeError(
            f"data must be a pandas DataFrame (or a polars/pyarrow table), got {type(data).__name__}; "
            "wrap it with pandas.DataFrame(...)"
        )
    if df.columns.duplicated().any():
        dup = sorted(set(map(str, df.columns[df.columns.duplicated()])))
        raise DataError(f"data has duplicate column names {dup}; rename them so every column is unique")
    return df


def _suggest(name: str, columns) -> str:
    return suggest(name, columns)


def _check_columns(names, df: pd.DataFrame, where: str) -> None:
    missing = [n for n in names if n not in df.columns and n not in FUNCTIONS]
    if missing:
        hints = "; ".join(f"{m!r}{_suggest(m, df.columns)}" for m in sorted(missing))
        raise FormulaError(f"{where} uses column(s) not in the data: {hints}")


def _missing(col: pd.Series) -> np.ndarray:
    """Boolean mask of missing values (pandas' isna is slow on categoricals: read the codes)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.array.codes < 0
    if isinstance(col.dtype, np.dtype):
        if col.dtype.kind in "iub":
            return np.zeros(len(col), dtype=bool)
        if col.dtype.kind == "f":
            return np.isnan(col.to_numpy())
    return col.isna().to_numpy()


def _level_labels(values) -> list[str]:
    """Labels as R prints factor levels: whole floats without a trailing '.0'."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    return [str(v) for v in arr.tolist()]


def _code_column(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes and level labels of one column, unused levels dropped."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        arr = col.array
        codes = arr.codes.astype(np.int64)
        cats = arr.categories
        used = np.bincount(codes, minlength=len(cats)) > 0
        if used.all():
            return codes, _level_labels(cats)
        remap = np.cumsum(used) - 1
        return remap[codes], _level_labels(cats[used])
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_extension_array_dtype(col):
        uniques, codes = np.unique(col.to_numpy(), return_inverse=True)
        return codes.astype(np.int64).ravel(), _level_labels(uniques)
    codes, uniques = pd.factorize(col, sort=True)
    return codes.astype(np.int64), _level_labels(uniques)


def _grouping_factor(factors: tuple[str, ...], data: pd.DataFrame, cache: dict) -> GroupingFactor:
    """The (interaction) grouping factor of ``factors``; ``cache`` holds factors and coded columns."""
    key = factors
    if key in cache:
        return cache[key]
    coded = []
    for f in factors:
        if ("column", f) not in cache:
            cache[("column", f)] = _code_column(data[f])
        coded.append(cache[("column", f)])
    if len(coded) == 1:
        codes, levels = coded[0]
    else:
        # interaction: levels in lexicographic order of the components, first slowest (R's a:b)
        sizes = [len(lv) for _, lv in coded]
        if float(np.prod(sizes, dtype=float)) < 2.0**62:
            combined = np.zeros(len(data), dtype=np.int64)
            for c, s in zip((c for c, _ in coded), sizes):
                combined = combined * s + c
            uniq, codes = np.unique(combined, return_inverse=True)
            parts = []
            for s in reversed(sizes):
                parts.append(uniq % s)
                uniq = uniq // s
            parts = parts[::-1]
        else:
            stacked = np.column_stack([c for c, _ in coded])
            uniq_rows, codes = np.unique(stacked, axis=0, return_inverse=True)
            parts = [uniq_rows[:, j] for j in range(len(coded))]
        levels = [":".join(t) for t in zip(*[np.asarray(lv, dtype=object)[p] for (_, lv), p in zip(coded, parts)])]
        codes = codes.astype(np.int64).ravel()
    gf = GroupingFactor(":".join(factors), codes, levels)
    cache[key] = gf
    return gf


def _term_columns(lhs: str, data: pd.DataFrame, model_spec=None):
    text = lhs.strip()
    if text == "1":
        return np.ones((len(data), 1)), ["(Intercept)"], None
    cols, names, spec = build_design(text, data, model_spec)
    if cols.shape[1] == 0:
        raise FormulaError(f"random-effects term ({lhs} | ...) has no columns; write (1 | g) for an intercept")
    return cols, names, spec


def _numeric_vector(arg, name: str, data: pd.DataFrame, n_total: int) -> np.ndarray | None:
    if arg is None:
        return None
    if isinstance(arg, str):
        _check_columns([arg], data, f"{name}=")
        arg = data[arg]
    try:
        vec = np.asarray(arg, dtype=float).ravel()
    except (TypeError, ValueError):
        raise DataTypeError(f"{name} must be numeric; convert it with pandas.to_numeric first") from None
    if vec.shape[0] != n_total:
        raise ArgumentError(f"{name} has length {vec.shape[0]} but the data has {n_total} rows; give one value per row")
    return vec


_CBIND = re.compile(r"^cbind\((.*)\)$", re.S)


def _cbind_parts(lhs: str) -> list[str] | None:
    """The two expressions of ``cbind(successes, failures)``, or None."""
    m = _CBIND.match(lhs.strip())
    if not m:
        return None
    parts, depth, start = [], 0, 0
    inner = m.group(1)
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    if len(parts) != 2 or not all(parts):
        raise FormulaError(f"cbind() response {lhs!r} needs exactly two expressions: cbind(successes, failures)")
    return parts


def _response_variables(lhs: str, df: pd.DataFrame) -> set:
    parts = _cbind_parts(lhs)
    if parts is not None:
        return set().union(*(_used_variables(f"~ I({p})", df) for p in parts))
    name = lhs[1:-1] if lhs.startswith("`") and lhs.endswith("`") else lhs
    if name in df.columns:
        return {name}
    return _used_variables(f"{lhs} ~ 1", df)


_FAST_OPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
_FAST_CALLS = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt}


@lru_cache(maxsize=256)
def _parsed_expression(text: str):
    """The expression's syntax tree (never modified), or None; cached: parsing cost ~20 µs a fit."""
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError:
        return None


def _fast_arithmetic(expr: str, data: pd.DataFrame) -> np.ndarray | None:
    """Values of + - * / and log/exp/sqrt over numeric columns and numbers (``size - incidence``,
    ``log(BroodSize)``) with numpy directly, or None for anything else (formulaic evaluates it):
    building a formulaic model matrix cost more than fitting a small model."""
    tree = _parsed_expression(expr.strip())
    if tree is None:
        return None

    def ev(node):
        if isinstance(node, ast.BinOp) and type(node.op) in _FAST_OPS:
            left, right = ev(node.left), ev(node.right)
            return None if left is None or right is None else _FAST_OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = ev(node.operand)
            return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in data.columns:
            col = data[node.id]
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                return col.to_numpy(dtype=float)
            return None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FAST_CALLS
                and len(node.args) == 1 and not node.keywords):
            inner = ev(node.args[0])
            return None if inner is None else _FAST_CALLS[node.func.id](inner)
        return None

    out = ev(tree)
    if out is None or np.ndim(out) != 1:
        return None
    return np.asarray(out, dtype=float)


def _expression(expr: str, data: pd.DataFrame, what: str) -> np.ndarray:
    name = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
    if name in data.columns and pd.api.types.is_numeric_dtype(data[name]) and not pd.api.types.is_bool_dtype(data[name]):
        return data[name].to_numpy(dtype=float)
    fast = _fast_arithmetic(expr, data)
    if fast is not None:
        return fast
    try:
        mm = model_matrix(f"~ 0 + I({expr})", data)
    except Exception as exc:
        raise FormulaError(f"cannot evaluate {expr!r} in {what}: {exc}") from None
    return np.asarray(mm, dtype=float).reshape(len(data))


def _has_top_level_operator(expr: str) -> bool:
    """True when an arithmetic operator (+ - * / ^ %) appears outside parentheses and quotes."""
    depth, quote = 0, None
    for ch in expr:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch in "+-*/^%":
            return True
    return False


def _binary_factor(col: pd.Series, name: str) -> np.ndarray:
    """0/1 from a two-level factor, bool or text column: the first level is failure (R)."""
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=float)
    codes, levels = _code_column(col)
    if len(levels) == 1:
        raise DataError(
            f"binomial response {name!r} has the single level {levels[0]!r} in all {len(codes)} row(s): "
            "a binary response needs both outcomes; check the column and the rows kept"
        )
    if len(levels) > 2:
        raise DataError(
            f"binomial response {name!r} has {len(levels)} levels ({', '.join(levels[:4])}...); a binary response needs "
            "two: recode it (e.g. df[col] == 'level') or fit a multinomial model elsewhere"
        )
    return (codes == len(levels) - 1).astype(float) if len(levels) == 2 else np.zeros(len(codes))


def _response(parsed: ParsedFormula, data: pd.DataFrame, family=None) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Response values, their name, and binomial trials (None unless the response implies them)."""
    lhs = parsed.response.strip()
    binomial = family is not None and (family.name == "binomial" or getattr(family, "trials_response", False))
    parts = _cbind_parts(lhs)
    if parts is not None:
        if not binomial:
            raise FormulaError(f"a cbind(successes, failures) response needs family='binomial' or 'betabinomial', not {getattr(family, 'name', 'gaussian')!r}")
        succ = _expression(parts[0], data, "cbind()")
        fail = _expression(parts[1], data, "cbind()")
        for vals, expr in ((succ, parts[0]), (fail, parts[1])):
            if np.any(vals < 0):
                raise DataError(f"cbind() column {expr!r} has {int(np.sum(vals < 0))} negative value(s); counts must be >= 0")
        n = succ + fail
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(n > 0, succ / np.where(n > 0, n, 1.0), 0.0)
        return y, lhs, n
    name = lhs[1:-1] if lhs.startswith("`") and lhs.endswith("`") else lhs
    if name in data.columns:
        col = data[name]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        if binomial and not numeric:
            if col.dtype == object or pd.api.types.is_string_dtype(col):
                as_num = pd.to_numeric(pd.Series(col.to_numpy(dtype=object, na_value=None)), errors="coerce")
                if as_num.notna().all():  # (on Arrow strings to_numeric gives NaN, not NA: read as objects)
                    raise DataError(f"response {name!r} holds numbers stored as text; convert with pandas.to_numeric")
            return _binary_factor(col, name), name, None
        if not numeric and not pd.api.types.is_bool_dtype(col):
            hint = " (numbers stored as text? convert with pandas.to_numeric)" if col.dtype == object or pd.api.types.is_string_dtype(col) else ""
            raise DataError(f"response {name!r} must be numeric, got dtype {col.dtype}{hint}")
        return col.to_numpy(dtype=float), name, None
    # R evaluates the left-hand side as an expression: `succ / trials` divides (formula syntax would nest)
    expr = _python_powers(f"I({lhs})") if _has_top_level_operator(lhs) else lhs
    try:
        mm = model_matrix(f"{expr} ~ 1", data)
    except Exception as exc:
        raise FormulaError(f"cannot evaluate the response {lhs!r}: {exc}") from None
    y = np.asarray(mm.lhs, dtype=float)
    if y.ndim == 2 and y.shape[1] != 1:
        raise DataError(f"response {lhs!r} gives {y.shape[1]} columns; a numeric response needs one")
    return y.reshape(-1), lhs, None


def build_model_frame(parsed: ParsedFormula, data, weights=None, offset=None, family=None,
                      extra_columns=(), extra_what: str = "", specs=None) -> ModelFrame:
    """Validate ``data`` against the formula and build the numeric model frame.

    Parameters
    ----------
    parsed : ParsedFormula
        The parsed model formula (response, fixed part, random terms, offsets).
    data : DataFrame
        The user's data (a polars or pyarrow table is converted); every column the formula
        uses must be present.
    weights, offset : array-like, column name, or None
        Prior weights and an offset, one value per row of ``data``.
    family : Family, optional
        GLMM family; decides which response forms are accepted (``cbind(s, f)``
        and two-level factors for the binomial).  The binomial's number of
        trials is folded into the returned weights.
    extra_columns : sequence of str
        Further columns the model uses outside the formula (a residual structure's time and cluster),
        checked and kept in ``data``, and counted for complete cases; ``extra_what`` names their
        argument in messages.
    extra_what : str, default ""
        The argument ``extra_columns`` came from, as error messages name it
        (``"residual='ar1(time | g)'"``); ``"the model"`` when empty.
    specs : tuple, optional
        ``(fixed_spec, term_specs)``: a fixed encoding (the ``fixed_spec`` and each random term's
        ``model_spec`` of a frame built before) so that chunks of one data set (a Dask frame's
        partitions) give the same columns whatever levels each holds; learned from ``data`` when None.

    Returns
    -------
    ModelFrame
    """
    df = _as_dataframe(data)
    n_total = len(df)
    if n_total == 0:
        raise DataError("data has no rows")

    fixed_vars = _response_variables(parsed.response, df) | _used_variables("~ " + parsed.fixed_rhs, df)
    _check_columns(sorted(fixed_vars), df, f"formula {parsed.text!r}")
    used = set(fixed_vars)
    for off in parsed.offsets:
        v = _used_variables(f"~ I({off})", df)
        _check_columns(sorted(v), df, f"offset({off})")
        used |= v
    for term in parsed.random:
        lhs_vars = set() if term.lhs.strip() in ("1", "0", "-1") else _used_variables("~ " + term.lhs, df)
        _check_columns(sorted(lhs_vars), df, f"random-effects term {term.source}")
        _check_columns(list(term.factors), df, f"grouping factor of {term.source}")
        used |= lhs_vars | set(term.factors)

    if extra_columns:
        _check_columns(list(extra_columns), df, extra_what or "the model")
        used |= set(extra_columns)

    w = _numeric_vector(weights, "weights", df, n_total)
    off_arg = _numeric_vector(offset, "offset", df, n_total)

    ordered = [c for c in df.columns if c in used]
    reader = ColumnReader(df)  # every used column read once (see ColumnReader)
    complete = np.ones(n_total, dtype=bool)
    for c in ordered:
        complete &= ~_missing(reader[c])
    for vec in (w, off_arg):
        if vec is not None:
            complete &= ~np.isnan(vec)
    n_dropped = int(n_total - complete.sum())
    sub = df
    if n_dropped:
        sub = df.loc[complete, ordered]
        w = None if w is None else w[complete]
        off_arg = None if off_arg is None else off_arg[complete]
    if len(sub) == 0:
        raise DataError(
            f"no complete rows: every one of the {n_total} rows has a missing value in a column the model uses "
            f"({', '.join(map(str, ordered))})"
        )
    view = reader if sub is df else ColumnReader(sub)

    # ±inf in a column: name the column before it is buried in a design matrix
    check_finite_columns(view, ordered)
    covariates = set(fixed_vars) - _response_variables(parsed.response, df)
    for term in parsed.random:
        if term.lhs.strip() not in ("1", "0", "-1"):
            covariates |= _used_variables("~ " + term.lhs, df)
    check_numbers_as_text(view, [c for c in ordered if c in covariates])

    y, response_name, trials = _response(parsed, view, family)
    if trials is not None:
        w = trials if w is None else w * trials

    # text columns are factors (R's character columns): formulaic would read a StringDtype column of
    # digits as numbers and fail on letters; a categorical also takes the fast design path
    text = [c for c in ordered if c != response_name and is_text(view[c])]
    if text:
        sub = sub.copy() if sub is not df else df[ordered].copy()
        for c in text:
            sub[c] = text_as_factor(view[c])
        view = ColumnReader(sub)

    fixed_spec, term_specs = (None, None) if specs is None else specs
    X, x_names, spec = build_design(parsed.fixed_rhs, view, fixed_spec)

    off = np.zeros(len(sub)) if off_arg is None else off_arg.copy()
    for expr in parsed.offsets:
        vals = offset_values(expr, view)
        check_finite_array(vals, f"offset({expr})", view)
        off += vals

    cache: dict = {}
    random = []
    for i_term, term in enumerate(parsed.random):
        factor = _grouping_factor(term.factors, view, cache)
        if term_specs is not None:
            cols, names, spec_rt = _term_columns(term.lhs, view, term_specs[i_term])
        elif term.lhs.strip() == parsed.fixed_rhs.strip() and X.shape[1] and term.lhs.strip() != "1":
            # (x | g) next to ~ x: the same design, built once (a design build cost ~0.2 ms of a small fit)
            cols, names, spec_rt = X.copy(), list(x_names), spec
        else:
            cols, names, spec_rt = _term_columns(term.lhs, view)
        check_finite_array(cols, f"random-effects term {term.source}", view)
        random.append(RandomTermData(term, factor, cols, names, spec_rt))

    if not np.all(np.isfinite(X)):
        bad_cols = [x_names[j] for j in np.flatnonzero(~np.isfinite(X).all(axis=0))]
        check_finite_array(X, f"fixed-effect column(s) {', '.join(map(repr, bad_cols))}", sub)
    for arr, what in ((y, f"the response {response_name!r}"), (off, "the offset")):
        if not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.isfinite(arr).reshape(len(sub), -1).all(axis=1)))
            raise DataError(f"{what} has {bad} row(s) with an infinite value; remove or correct them")
    if w is not None:
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise DataError(f"weights must be finite and non-negative; {int(np.sum(~(w >= 0)))} row(s) are not")

    messages = []
    if n_dropped:
        messages.append(f"{n_dropped} row(s) dropped because of missing values")
    return ModelFrame(parsed, sub, n_dropped, y, X, x_names, off, w, random, spec, response_name, messages)


def offset_values(expr: str, data: pd.DataFrame) -> np.ndarray:
    """Values of the expression inside ``offset(...)`` (a Python/R arithmetic expression).

    Parameters
    ----------
    expr : str
        The text inside ``offset(...)``, e.g. ``"log(hours)"``.
    data : DataFrame
        Rows to evaluate it on, with the columns it names.

    Returns
    -------
    ndarray of float, shape (len(data),)
        The offset of every row (not checked for finiteness here).
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) and the like: reported by the caller's check
        fast = _fast_arithmetic(expr, data)
    if fast is not None:
        return fast
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            om = model_matrix(f"~ 0 + I({expr})", data)
    except Exception as exc:
        raise FormulaError(f"cannot evaluate offset({expr}): {exc}") from None
    return np.asarray(om, dtype=float).reshape(len(data), -1).sum(axis=1)


def drop_aliased_columns(X: np.ndarray, names: list[str], tol: float = 1e-7):
    """Drop fixed-effect columns that are linear combinations of earlier ones.

    Mirrors R's ``qr(X, tol = 1e-7)`` with limited pivoting, which lme4 uses: a
    column is aliased when its norm after projection on the columns kept before
    it falls below ``tol`` times its own norm; later columns are the ones dropped.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        The fixed-effects design matrix.
    names : list of str
        The p column names.
    tol : float, default 1e-7
        Relative tolerance on a column's residual norm (R's ``qr`` default).

    Returns
    -------
    X_kept : ndarray, shape (n, len(kept))
        ``X`` itself when nothing is dropped.
    kept : list of int
        Indices of the kept columns.
    dropped : list of str
        Names of the dropped columns.
    """
    p = X.shape[1]
    if p == 0:
        return X, [], []
    R = np.linalg.qr(X, mode="r")
    norms = np.linalg.norm(R, axis=0)
    if np.all(np.abs(np.diagonal(R)) >= tol * norms) and np.all(norms > 0):
        return X, list(range(p)), []  # unpivoted R already gives each column's residual norm
    kept: list[int] = []
    dropped: list[str] = []
    for j in range(p):
        if norms[j] == 0.0:
            dropped.append(names[j])
            continue
        cand = kept + [j]
        Rj = np.linalg.qr(R[:, cand], mode="r")
        if abs(Rj[-1, -1]) < tol * norms[j]:
            dropped.append(names[j])
        else:
            kept.append(j)
    if not dropped:
        return X, kept, dropped
    return np.ascontiguousarray(X[:, kept]), kept, dropped


def factor_labels(data: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    """Level label of every row for the grouping factor ``factors`` (as in GroupingFactor.levels).

    Parameters
    ----------
    data : DataFrame
        Rows to label (fitted or new data), with the factor columns.
    factors : tuple of str
        The columns of the grouping factor; several make an interaction (``("pen", "room")``).

    Returns
    -------
    ndarray of object, shape (len(data),)
        Each row's label, components joined by ``":"`` (``"P1:R01"``); a missing value gives
        an empty component.
    """
    out = None
    for f in factors:
        codes, uniques = pd.factorize(data[f], use_na_sentinel=True)
        labels = np.asarray(_level_labels(uniques) + [""], dtype=object)[codes]  # NA -> "" (code -1)
        out = labels if out is None else out + ":" + labels
    return out


def term_columns(term: RandomTermData, data: pd.DataFrame) -> np.ndarray:
    """A fitted random term's columns evaluated on new data, with the training encoding.

    Parameters
    ----------
    term : RandomTermData
        The fitted term (its left-hand side and design encoding).
    data : DataFrame
        New rows with the columns the term's left-hand side uses.

    Returns
    -------
    ndarray, shape (len(data), k)
        The term's model-matrix columns for the new rows, in the order of ``term.names``.
    """
    return _term_columns(term.spec.lhs, data, term.model_spec)[0]
