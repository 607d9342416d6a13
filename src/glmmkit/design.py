"""Design matrices from formula right-hand sides, with R's column names.

formulaic handles every formula; but it costs ~1–2 ms per call, more than a
whole small LMM fit.  A right-hand side that is only an intercept and plain
numeric columns (``Days``, ``1 + x``, ``0 + x``) is built here directly.  Both
paths return a spec with ``get_model_matrix(data)`` so prediction on new data
reuses the training encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from .exceptions import FormulaError
from .validate import float_values, is_text, text_as_factor

__all__ = ["build_design", "r_column_name", "formulaic_formula", "formula_variables", "FUNCTIONS", "model_matrix"]

#: Functions a formula may call, under R's names (formulaic adds its own: log, exp, scale, center, C, I, poly, ...)
FUNCTIONS = {
    "log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10, "exp": np.exp, "expm1": np.expm1,
    "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos, "tan": np.tan, "floor": np.floor,
    "ceiling": np.ceil, "round": np.round, "sign": np.sign, "plogis": lambda x: 1.0 / (1.0 + np.exp(-np.asarray(x))),
    "qlogis": lambda p: np.log(np.asarray(p) / (1.0 - np.asarray(p))), "pmin": np.minimum, "pmax": np.maximum,
}


def _dummy(f, levels_to_keep=None, _state=None, _metadata=None, _spec=None):
    """lme4's ``dummy(f, levelsToKeep)``: 0/1 indicator columns of the levels ``levels_to_keep`` of the
    factor ``f`` (all levels but the first when omitted), as in ``(0 + dummy(service, "1") | d)``.

    Parameters
    ----------
    f : array-like
        A factor (categorical), text or numbers; its levels are R's (categories, else the sorted values).
    levels_to_keep : str or sequence of str, optional
        The levels to indicate, by their labels (``"1"`` for the number 1 too).

    Returns
    -------
    ndarray, shape (n,), for one level, else a DataFrame with one column per level (R names them
    ``dummy(f)b``, ``dummy(f)c``).  The training data's levels are kept in formulaic's state, so new
    data holding only some of them gives the same columns (rows of other levels are 0).
    """
    col = f if isinstance(f, pd.Series) else pd.Series(f)
    if isinstance(col.dtype, pd.CategoricalDtype):
        labels = [str(c) for c in _level_labels_of(col.array.categories)]
        codes = np.asarray(col.array.codes)
    else:
        codes, uniques = pd.factorize(col, sort=True)
        labels = [str(c) for c in _level_labels_of(uniques)]
    state = _state if _state is not None else {}
    if "keep" not in state:
        if levels_to_keep is None:
            keep = labels[1:]
        else:
            keep = [levels_to_keep] if isinstance(levels_to_keep, (str, int, float, np.number)) else list(levels_to_keep)
            keep = [str(int(k)) if isinstance(k, (float, np.floating)) and float(k).is_integer() else str(k)
                    for k in keep]
        unknown = [k for k in keep if k not in labels]
        if unknown or not keep:
            shown = ", ".join(map(repr, labels[:8])) + (", ..." if len(labels) > 8 else "")
            what = ", ".join(map(repr, unknown)) + (" is not a level" if len(unknown) == 1 else " are not levels")
            raise FormulaError(f"dummy(): {what if unknown else 'the factor has a single level'} of the factor "
                               f"(its levels: {shown}); give levels by their labels, e.g. dummy(f, {labels[-1]!r})")
        state["keep"] = keep
    keep = state["keep"]
    columns = {}
    for k in keep:
        ind = (codes == labels.index(k)).astype(float) if k in labels else np.zeros(len(codes))
        ind[codes < 0] = np.nan
        columns[k] = ind
    if len(keep) == 1:
        return columns[keep[0]]
    return pd.DataFrame(columns, index=col.index)


def _stateful_dummy():
    from formulaic.transforms import stateful_transform

    return stateful_transform(_dummy)


dummy = _stateful_dummy()


def _level_labels_of(values) -> list:
    """Labels as R prints factor levels: whole floats without a trailing '.0'."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    return arr.tolist()


FUNCTIONS["dummy"] = dummy
FUNCTIONS["c"] = lambda *values: list(values)  # R's c("a", "b") inside dummy()


def _register_factor():
    # R's factor(x) / as.factor(x) (the parser maps as.factor to factor) is formulaic's C(x): columns come
    # out as factor(x)[T.b] -> R's factor(x)b
    from formulaic.transforms import TRANSFORMS

    FUNCTIONS["factor"] = TRANSFORMS["C"]


_register_factor()


class ColumnReader:
    """A data frame whose columns are each read once.

    pandas builds a new Series at every ``df[name]`` (~30 µs here), and a small model's frame reads
    its columns a dozen times.  Offers what the model-frame code uses (``[name]``, ``columns``,
    ``index``, ``len``); formulaic gets the frame itself (``frame_of``).

    Parameters
    ----------
    frame : pandas.DataFrame
        The data; not copied (columns are cached as first read, so the frame must not change).
    """

    __slots__ = ("frame", "columns", "index", "_cols")

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.columns = frame.columns
        self.index = frame.index
        self._cols = {}

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, name):
        col = self._cols.get(name)
        if col is None:
            col = self._cols[name] = self.frame[name]
        return col


def frame_of(data):
    """The data frame behind a ``ColumnReader`` (or ``data`` itself).

    Parameters
    ----------
    data : pandas.DataFrame or ColumnReader
        The data as the model-frame code holds it.

    Returns
    -------
    pandas.DataFrame
        The underlying frame.
    """
    return data.frame if isinstance(data, ColumnReader) else data


def dotted_columns(columns) -> tuple:
    """The column names with a dot (R's ``days.deprived``), longest first.

    Parameters
    ----------
    columns : iterable
        Column labels (non-strings are ignored).

    Returns
    -------
    tuple of str
        The dotted names, longest first (so a name is quoted before any shorter name inside it).
    """
    return tuple(sorted((c for c in columns if isinstance(c, str) and "." in c), key=len, reverse=True))


@lru_cache(maxsize=512)
def _quote_dotted_cached(text: str, dotted: tuple) -> str:
    for name in dotted:
        if name in text:
            # outside backticks and quotes, not part of a longer name, not a call (np.log(...))
            pattern = r"(?<![\w.`'\"])" + re.escape(name) + r"(?![\w.`'\"(])"
            parts = re.split(r"(`[^`]*`|'[^']*'|\"[^\"]*\")", text)
            text = "".join(p if k % 2 else re.sub(pattern, f"`{name}`", p) for k, p in enumerate(parts))
    return text


def quote_dotted(text: str, columns) -> str:
    """``text`` with the unquoted dotted column names in backticks.

    R reads ``log(days.deprived)`` as a call on the column, Python (and formulaic) as an attribute
    of ``days``.  Unchanged when no column name has a dot (the usual case: nothing is scanned).

    Parameters
    ----------
    text : str
        A formula or formula side.
    columns : iterable
        The data's column labels.

    Returns
    -------
    str
        The text with each dotted column name outside backticks, quotes and calls in backticks.
    """
    dotted = dotted_columns(columns)
    return _quote_dotted_cached(text, dotted) if dotted else text


def model_matrix(formula: str, data: pd.DataFrame):
    """formulaic's model_matrix with glmmkit's function context, numpy output, no row dropping.

    Parameters
    ----------
    formula : str
        A formula (or right-hand side) in R syntax; dotted column names are quoted first.
    data : pandas.DataFrame or ColumnReader
        The data.

    Returns
    -------
    formulaic ModelMatrix or ModelMatrices
        numpy-backed model matrices, one row per row of ``data`` (missing values kept as NaN);
        their ``model_spec`` rebuilds the encoding on new data.
    """
    from formulaic import model_matrix as _mm

    frame = frame_of(data)
    return _mm(formulaic_formula(quote_dotted(formula, frame.columns)), frame, output="numpy",
               na_action="ignore", context=FUNCTIONS)

_T_LEVEL = re.compile(r"\[T\.(.*?)\]")
_LEVEL = re.compile(r"\[(.*?)\]")
_POLY = re.compile(r"C\((.*?), *contr\.poly\)\[(.*?)\]")
_SINGLE_QUOTED = re.compile(r"'([^'\"]*)'")
_SYNTACTIC_TICKED = re.compile(r"`([A-Za-z.][A-Za-z0-9._]*)`")
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")


def r_column_name(name: str) -> str:
    """Translate a formulaic column name into the one R's model.matrix would give.

    Parameters
    ----------
    name : str
        A formulaic column name (``Intercept``, ``x[T.b]``, ``C(o, contr.poly)[.L]``, ...).

    Returns
    -------
    str
        R's name: ``(Intercept)``, ``xb``, ``o.L``, with ``^`` for powers and R's quoting.
    """
    if name == "Intercept":
        return "(Intercept)"
    name = name.replace(" ** ", "^")  # the parser turned R's ^ inside calls into Python's **
    if "`" in name:  # R quotes only non-syntactic names: log(days.deprived), log(`dose mg`)
        name = _SYNTACTIC_TICKED.sub(r"\1", name)
    if "'" in name:  # formulaic prints strings in single quotes, R's deparse in double: dummy(f, "1")
        name = _SINGLE_QUOTED.sub(r'"\1"', name)
    name = _POLY.sub(lambda m: f"{m.group(1)}{m.group(2)}", name)  # R: o.L, o.Q, o.C, o^4
    name = _T_LEVEL.sub(r"\1", name)
    return _LEVEL.sub(r"\1", name)


@lru_cache(maxsize=256)
def formulaic_formula(text: str):
    """A parsed formulaic Formula, cached (parsing costs more than many fits).

    Parameters
    ----------
    text : str
        The formula in formulaic's syntax.

    Returns
    -------
    formulaic.Formula
        The parsed formula (shared between calls: do not change it).

    Raises
    ------
    FormulaError
        When formulaic cannot parse the text.
    """
    from formulaic import Formula

    try:
        return Formula(text)
    except Exception as exc:  # formulaic raises its own parser errors
        raise FormulaError(f"cannot parse {text!r}: {exc}") from None


_TICKED = re.compile(r"`([^`]+)`")


def _factor_variables(factor) -> set:
    """Data columns one formulaic factor reads, dotted names whole.

    formulaic reduces every name to its root (``days.deprived`` -> ``days``, Python's attribute access)
    and finds nothing inside backticks in a call (``I(`log.t`)``).  A plain name (formulaic's lookup) is
    the column itself; in a call, every backticked name is a column and so is every other name read as a
    value (``_python_names``).
    """
    from formulaic.parser.types import Factor

    if factor.eval_method == Factor.EvalMethod.LOOKUP:
        return {str(factor.expr)}
    if factor.eval_method != Factor.EvalMethod.PYTHON:
        return set()
    expr = str(factor.expr)
    ticked = _TICKED.findall(expr)
    plain = _TICKED.sub("_glmmkit_ticked_", expr)  # a placeholder name Python can parse
    found = _python_names(plain)
    if found is None:
        found = {str(v) for v in Factor(plain, eval_method=Factor.EvalMethod.PYTHON).required_variables}
    return (found - {"_glmmkit_ticked_"}) | set(ticked)


def _python_names(expr: str) -> set | None:
    """Names a Python expression reads as values (None when it does not parse).

    formulaic finds none inside its stateful transforms (``poly(x, 2)``, ``scale(x)``, ``center(x)``),
    so their columns were neither checked nor counted for complete cases.  A called name is a function;
    the root of a called attribute (``np.log``, ``x.fillna``) and every other name is a value, less the
    names formulaic itself provides (``np``, ``contr``).
    """
    import ast

    from formulaic.transforms import TRANSFORMS

    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return None
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in called and node.id not in TRANSFORMS:
            out.add(node.id)
    return out


@lru_cache(maxsize=512)
def formula_variables(text: str) -> frozenset:
    """Names of the data columns a formula (``"y ~ x + log(`dose.mg`)"``) reads, dotted names whole.

    Parameters
    ----------
    text : str
        A one- or two-sided formula in formulaic's syntax.

    Returns
    -------
    frozenset of str
        The column names, from both sides (cached per text).
    """
    formula = formulaic_formula(text)
    out: set = set()
    sides = [formula.lhs, formula.rhs] if hasattr(formula, "lhs") else [formula]
    for side in sides:
        for term in side:
            for factor in term.factors:
                out |= _factor_variables(factor)
    return frozenset(out)


@lru_cache(maxsize=256)
def _simple_terms(rhs: str):
    """Parse a right-hand side of bare names joined by ``+``, ``*`` and ``:``.

    Returns ``(intercept, terms)`` with terms as tuples of variable names, in
    R's order (by degree, then first appearance), or None when the formula uses
    anything else (calls, powers, subtraction other than ``- 1``).
    """
    if any(ch in rhs for ch in "()^/%|~"):
        return None
    text = rhs.replace("- 1", "+ -1").replace("-1", "+ -1")
    intercept, terms = True, []
    for tok in (t.strip() for t in text.split("+")):
        if tok in ("", "1"):
            continue
        if tok in ("0", "-1"):
            intercept = False
            continue
        if "-" in tok:
            return None
        expanded = [()]
        for factor in tok.split("*"):
            parts = tuple(p.strip() for p in factor.split(":"))
            if not all(_NAME.match(p) for p in parts):
                return None
            parts = tuple(p[1:-1] if p.startswith("`") else p for p in parts)
            expanded = expanded + [e + parts for e in expanded]
        for e in expanded[1:]:
            term = tuple(dict.fromkeys(e))  # a:a = a
            if frozenset(term) not in {frozenset(t) for t in terms}:
                terms.append(term)
    terms.sort(key=len)  # stable: R orders terms by degree, then as written
    return intercept, tuple(terms)


@dataclass(frozen=True)
class SimpleSpec:
    """Design spec for numeric and unordered categorical columns with treatment contrasts.

    Covers formulas whose interactions are hierarchical (every lower-order margin present) with an
    intercept: then R codes every factor by contrasts and the columns are the products of each
    term's variables' columns, the first variable varying fastest.

    Attributes
    ----------
    intercept : bool
        Whether the design has an intercept column.
    terms : tuple of tuple of str
        The terms as tuples of variable names, in R's order (by degree, then as written).
    levels : tuple
        ``((name, (level, ...)), ...)``: each categorical variable's levels, the first the reference.
    """

    intercept: bool
    terms: tuple
    levels: tuple  # ((name, (level, ...)), ...)

    @cached_property
    def column_names(self) -> list[str]:
        """formulaic-style names of the design's columns (``Intercept``, ``xb``, ``xb:z``).

        Returns
        -------
        list of str
            One name per column of ``get_model_matrix``, in order.
        """
        lv = dict(self.levels)
        names = ["Intercept"] if self.intercept else []
        for term in self.terms:
            cols = [""]
            for v in term:
                own = [f"{v}{level}" for level in lv[v][1:]] if v in lv else [v]
                cols = [f"{c}:{o}" if c else o for o in own for c in cols]
            names.extend(cols)
        return names

    def get_model_matrix(self, data: pd.DataFrame, output="numpy", na_action="ignore", context=None) -> np.ndarray:
        """The design for ``data``, in the call form of formulaic's ``ModelSpec.get_model_matrix``.

        Parameters
        ----------
        data : pandas.DataFrame or ColumnReader
            Rows with the spec's variables.
        output : str, default "numpy"
            Accepted for formulaic's interface; the result is always a numpy array.
        na_action : str, default "ignore"
            Accepted for formulaic's interface; missing values always stay NaN.
        context : dict, optional
            Accepted for formulaic's interface (unused).

        Returns
        -------
        numpy.ndarray, shape (len(data), len(column_names))
            The columns; a missing value or a level not in ``levels`` gives NaN in that variable's columns.
        """
        n = len(data)
        lv = dict(self.levels)
        values = {}
        for v in {v for t in self.terms for v in t}:
            col = data[v]
            if v in lv:
                if isinstance(col.dtype, pd.CategoricalDtype):  # map the few categories, then gather
                    arr = col.array
                    if tuple(arr.categories) == lv[v]:
                        idx = arr.codes
                    else:
                        idx = np.append(pd.Index(lv[v]).get_indexer(arr.categories), -1)[arr.codes]
                else:
                    idx = pd.Index(lv[v]).get_indexer(col.astype(object).to_numpy())
                dummies = (idx[:, None] == np.arange(1, len(lv[v]))[None, :]).astype(float)
                dummies[idx < 0] = np.nan  # missing or unseen level
                values[v] = dummies
            else:
                values[v] = float_values(col)[:, None]
        blocks = [np.ones((n, 1))] if self.intercept else []
        for term in self.terms:
            cols = np.ones((n, 1))
            for v in term:
                new = values[v]
                cols = (new[:, :, None] * cols[:, None, :]).reshape(n, -1)
            blocks.append(cols)
        return np.hstack(blocks) if blocks else np.empty((n, 0))


def _is_plain_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _simple_spec(rhs: str, data: pd.DataFrame):
    """A SimpleSpec for ``rhs`` on ``data`` when the fast path applies, else None."""
    parsed = _simple_terms(rhs)
    if parsed is None:
        return None
    intercept, terms = parsed
    present = {frozenset(t) for t in terms}
    levels = {}
    for v in {v for t in terms for v in t}:
        if v not in data.columns:
            return None
        col = data[v]
        dtype = col.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            if dtype.ordered:
                return None  # R uses polynomial contrasts: formulaic's path
            cats = col.array.categories
            used = np.bincount(col.array.codes[col.array.codes >= 0], minlength=len(cats)) > 0
            if used.sum() < 2:
                return None
            # (an Index of Arrow-backed strings is slow to mask: ~50 µs a column)
            levels[v] = tuple(cats) if used.all() else tuple(cats[used])
        elif not _is_plain_numeric(col):
            return None
    if levels:
        if not intercept:
            return None  # R's full-dummy coding of the first factor: formulaic's path
        for term in terms:  # hierarchical: every margin of a term with a factor is present
            if any(v in levels for v in term) and len(term) > 1:
                if any(frozenset(term) - {v} not in present for v in term):
                    return None
    return SimpleSpec(intercept, terms, tuple(sorted(levels.items())))


def _poly_contrasts(rhs: str, data: pd.DataFrame) -> str:
    """Wrap ordered categorical columns in ``C(x, contr.poly)``: R codes ordered factors by
    orthogonal polynomials (``x.L``, ``x.Q``, ``x.C``, ``x^4``), formulaic by treatment contrasts."""
    for name in data.columns:
        col = data[name]
        if isinstance(col.dtype, pd.CategoricalDtype) and col.dtype.ordered and isinstance(name, str):
            pattern = r"(?<![\w.`])" + re.escape(name) + r"(?![\w.(`])"
            rhs = re.sub(pattern, f"C({name}, contr.poly)", rhs)
    return rhs


def _text_as_factors(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns as factors (new data for a training spec: formulaic would read a
    StringDtype column as numbers)."""
    text = [c for c in frame.columns if is_text(frame[c])]
    if not text:
        return frame
    frame = frame.copy()
    for c in text:
        frame[c] = text_as_factor(frame[c])
    return frame


def build_design(rhs: str, data: pd.DataFrame, spec=None):
    """Design matrix of a right-hand side.

    Parameters
    ----------
    rhs : str
        Right-hand side, e.g. ``"trt * week"`` or ``"1 + Days"``.
    data : DataFrame
        The rows to build the design for (a ``ColumnReader`` too).
    spec : SimpleSpec or formulaic ModelSpec, optional
        Reuse a training spec (prediction on new data).

    Returns
    -------
    X : ndarray, shape (n, p)
    names : list of str
        R's column names.
    spec : the spec that built X
    """
    n = len(data)
    if spec is None:
        spec = _simple_spec(rhs, data)
    if isinstance(spec, SimpleSpec):
        return spec.get_model_matrix(data), [r_column_name(c) for c in spec.column_names], spec
    try:
        if spec is not None:
            mm = spec.get_model_matrix(_text_as_factors(frame_of(data)), output="numpy", na_action="ignore",
                                       context=FUNCTIONS)
        else:
            mm = model_matrix("~ " + _poly_contrasts(rhs, data), data)
    except FormulaError:
        raise
    except Exception as exc:
        raise FormulaError(f"cannot build the design of {rhs!r}: {exc}") from None
    spec = mm.model_spec
    X = np.ascontiguousarray(np.asarray(mm, dtype=float).reshape(n, -1))
    return X, [r_column_name(c) for c in spec.column_names], spec

