"""Checks of the arguments and values that enter ``lmer`` and ``glmer``, in one place.

Every check raises one of glmmkit's exceptions (or warns with one of its
warnings) whose message names the culprit (argument, column, level, number of
rows) and says what to do, so that no bad input reaches numpy, scipy or
formulaic and surfaces as their traceback.  The model frame (``frame.py``)
calls the data checks; ``lmer``/``glmer`` call the argument checks before any
work is done.  All checks are vectorised: one pass per column, never per row.
"""

from __future__ import annotations

import difflib
import numbers
import re
import warnings

import numpy as np
import pandas as pd

from .exceptions import ArgumentError, DataError, DataWarning

__all__ = ["suggest", "check_reml", "check_nagq", "check_method", "check_finite_columns",
           "check_numbers_as_text", "check_not_constant", "check_glmm_weights"]

#: ``glmer(method=...)`` choices
METHODS = ("laplace", "agq", "pql")
#: most quadrature nodes per random effect: beyond this the integral does not change
MAX_NAGQ = 100


def suggest(name, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``name``, or ``""``.

    A match ignoring case wins first (``Y`` for ``y``), then difflib's closest.

    Parameters
    ----------
    name : object
        The unknown name as given (converted with ``str``).
    choices : iterable
        The valid names.

    Returns
    -------
    str
        The hint with a leading space, ready to append to an error message; ``""`` when nothing is close.
    """
    name = str(name)
    choices = [str(c) for c in choices]
    lower = {c.lower(): c for c in choices}
    if name.lower() in lower and lower[name.lower()] != name:
        return f" (did you mean {lower[name.lower()]!r}?)"
    close = difflib.get_close_matches(name, choices, n=1)
    if not close:
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=1)]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_reml(reml) -> bool:
    """``reml`` must be a bool: a string such as ``"ML"`` would silently count as True.

    Parameters
    ----------
    reml : object
        The ``reml=`` argument.

    Returns
    -------
    bool
        ``reml`` as a Python bool (numpy bools accepted).

    Raises
    ------
    ArgumentError
        For anything that is not a bool.
    """
    if not isinstance(reml, (bool, np.bool_)):
        raise ArgumentError(f"reml must be True (REML) or False (maximum likelihood), got {reml!r}")
    return bool(reml)


def check_nagq(nagq) -> int:
    """``nagq`` as an int: a whole number in 0 .. MAX_NAGQ (``5.0`` is accepted, ``True`` is not).

    Parameters
    ----------
    nagq : object
        The ``nagq=`` argument (0: nAGQ=0, 1: Laplace, k > 1: adaptive quadrature).

    Returns
    -------
    int
        The number of quadrature nodes.

    Raises
    ------
    ArgumentError
        Not a finite whole number, negative, or more than ``MAX_NAGQ`` (100).
    """
    ok = isinstance(nagq, numbers.Real) and not isinstance(nagq, (bool, np.bool_))
    if ok:
        ok = bool(np.isfinite(nagq)) and float(nagq) == int(nagq)
    if not ok or nagq < 0:
        raise ArgumentError(
            f"nagq must be a whole number >= 0 (0: nAGQ=0, 1: Laplace, k > 1: adaptive quadrature), got {nagq!r}"
        )
    if nagq > MAX_NAGQ:
        raise ArgumentError(f"nagq={nagq} is more nodes than any integral here needs; use at most {MAX_NAGQ}")
    return int(nagq)


def check_method(method) -> str | None:
    """Lower-cased ``method`` (``None`` stays None); an unknown one suggests the closest.

    Parameters
    ----------
    method : str or None
        The ``method=`` argument of ``glmer``.

    Returns
    -------
    str or None
        ``"laplace"``, ``"agq"`` or ``"pql"``; None when not given.

    Raises
    ------
    ArgumentError
        An unknown method.
    """
    if method is None:
        return None
    m = str(method).lower()
    if m not in METHODS:
        raise ArgumentError(
            f"method must be 'laplace', 'agq' (with nagq=k) or 'pql', got {method!r}{suggest(m, METHODS)}"
        )
    return m


def float_values(col: pd.Series) -> np.ndarray:
    """A numeric column as float64 with missing values as NaN.

    numpy-backed columns convert directly (their NaNs are already NaN; integers and bools have
    none): pandas' ``to_numpy(na_value=...)`` runs ``isna`` first, ~80 µs a column, more than a
    small fit's evaluation.

    Parameters
    ----------
    col : pandas.Series
        A numeric or boolean column (numpy-backed or a pandas extension type).

    Returns
    -------
    numpy.ndarray of float, shape (len(col),)
        The values, NaN where missing.
    """
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "biuf":
        return col.to_numpy(dtype=float)
    return col.to_numpy(dtype=float, na_value=np.nan)


def is_text(col: pd.Series) -> bool:
    """Whether a column holds strings, in any of pandas' forms.

    ``str``/``string``/``string[pyarrow]`` (StringDtype), Arrow-backed strings
    (``pd.ArrowDtype(pa.string())``) and object columns holding only strings count.  R makes
    every character column a factor; so does glmmkit.

    Parameters
    ----------
    col : pandas.Series
        Any column.

    Returns
    -------
    bool
        True for a text column; False for categoricals and everything else.
    """
    dtype = col.dtype
    if isinstance(dtype, pd.StringDtype):
        return True
    if isinstance(dtype, np.dtype):
        return dtype == object and pd.api.types.infer_dtype(col, skipna=True) == "string"
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    pa_type = getattr(dtype, "pyarrow_dtype", None)
    if pa_type is not None:
        import pyarrow as pa

        return bool(pa.types.is_string(pa_type) or pa.types.is_large_string(pa_type)
                    or getattr(pa.types, "is_string_view", lambda t: False)(pa_type))
    return False


def text_as_factor(col: pd.Series) -> pd.Series:
    """A text column as an unordered categorical with its values' sorted levels (R's factor() of a character vector).

    Missing values stay missing.  Digits stay labels: ``"10"`` is a level, not 10.

    Parameters
    ----------
    col : pandas.Series
        A text column (see :func:`is_text`).

    Returns
    -------
    pandas.Series
        Categorical, same index and name as ``col``, levels the sorted distinct strings.
    """
    values = col.to_numpy(dtype=object, na_value=None)
    keep = np.array([v is not None for v in values]) if col.hasnans else None
    if keep is not None:
        values = values[keep]
    levels = np.unique(values.astype(str)) if len(values) else np.array([], dtype=object)
    codes = np.full(len(col), -1, dtype=np.int64)
    idx = np.searchsorted(levels, values.astype(str))
    if keep is None:
        codes = idx
    else:
        codes[keep] = idx
    cat = pd.Categorical.from_codes(codes, categories=pd.Index(levels.tolist(), dtype=object))
    return pd.Series(cat, index=col.index, name=col.name)


def check_finite_columns(data: pd.DataFrame, columns) -> None:
    """DataError naming the first numeric column of ``columns`` that holds ±inf (with how many rows).

    Parameters
    ----------
    data : pandas.DataFrame
        The data.
    columns : iterable of str
        The columns the model uses; non-numeric, boolean and integer ones are skipped.

    Raises
    ------
    DataError
        Naming the column, the number of infinite values and the first row.
    """
    for c in columns:
        col = data[c]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu":
            continue  # integers cannot be infinite
        vals = float_values(col)
        bad = np.isinf(vals)
        if bad.any():
            raise DataError(
                f"column {c!r} has {int(bad.sum())} infinite value(s) (first in row {data.index[bad][0]!r}); "
                "correct them or set them to NaN so that those rows are dropped"
            )


def check_finite_array(values: np.ndarray, what: str, data: pd.DataFrame) -> None:
    """DataError naming ``what`` (a term, the offset) when a computed column is ±inf or NaN.

    Parameters
    ----------
    values : numpy.ndarray
        The computed values, one row (or one entry) per row of ``data``.
    what : str
        What the values are, for the message (e.g. ``"offset log(exposure)"``).
    data : pandas.DataFrame
        The rows the values belong to (their index labels the first bad row).

    Raises
    ------
    DataError
        Naming ``what``, the number of bad rows and the first one.
    """
    arr = np.asarray(values, dtype=float).reshape(len(data), -1)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise DataError(
            f"{what} is infinite or undefined in {int(bad.sum())} row(s) (first in row {data.index[bad][0]!r}), "
            "e.g. log(0) or division by zero: correct the data or the expression"
        )


_NUMBER_UNIT = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*([^\d\s.,;:+-].*?)\s*$")
#: a text column of numbers with a unit warns from this many distinct values on (or with any fraction):
#: fewer whole doses ("5 mg", "10 mg", "20 mg") are plausibly groups
UNIT_LEVELS = 10


def check_numbers_as_text(data: pd.DataFrame, columns) -> None:
    """Warn when a text column used as a covariate holds numbers: some of them fractional, or with a unit (``"4.7 mg"``).

    Text is a factor (as in R), which is right for codes such as ``"1"``, ``"2"``; but
    ``"0.25"``, ``"1.5"`` or ``"4.7 mg"`` are measurements read as text, and a factor with a level
    per distinct value is almost certainly not what was meant.  Only the distinct values are read.
    Whole numbers with a unit warn from ``UNIT_LEVELS`` (10) distinct values on.

    Parameters
    ----------
    data : pandas.DataFrame
        The data.
    columns : iterable of str
        The columns the fixed effects use; categoricals and non-text columns are skipped.

    Warns
    -----
    DataWarning
        Naming the column, an example value and the conversion to use.
    """
    for c in columns:
        col = data[c]
        if isinstance(col.dtype, pd.CategoricalDtype) or not (col.dtype == object or is_text(col)):
            continue
        uniq = pd.unique(col.to_numpy(dtype=object, na_value=None))
        uniq = np.array([str(v) for v in uniq if v is not None and v == v], dtype=object)
        if uniq.size == 0:
            continue
        example = uniq[len(uniq) // 2]
        as_num = pd.to_numeric(pd.Series(uniq), errors="coerce").to_numpy(dtype=float)
        if not np.isnan(as_num).any():
            if np.any(as_num != np.round(as_num)):
                warnings.warn(
                    f"column {c!r} holds numbers stored as text (e.g. {example!r}) and is treated as a factor "
                    f"with {uniq.size} levels; if it is a measurement, convert it: "
                    f"df[{c!r}] = pandas.to_numeric(df[{c!r}])",
                    DataWarning, stacklevel=4,
                )
            continue
        matches = [_NUMBER_UNIT.match(v) for v in uniq]
        if not all(matches):
            continue
        units = sorted({m.group(1) for m in matches})
        numbers = pd.to_numeric(pd.Series([v[: m.start(1)] for v, m in zip(uniq, matches)]),
                                errors="coerce").to_numpy(dtype=float)
        fractional = np.any(numbers != np.round(numbers))
        if len(units) <= 3 and (uniq.size >= UNIT_LEVELS or fractional):
            unit_text = ", ".join(repr(u) for u in units)
            warnings.warn(
                f"column {c!r} holds numbers with a unit ({unit_text}; e.g. {example!r}) and is treated as a "
                f"factor with {uniq.size} distinct values, one coefficient each; if it is a measurement, "
                f"convert it to numbers: df[{c!r}] = pandas.to_numeric(df[{c!r}].str.extract("
                r"r'([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)'"
                ", expand=False))",
                DataWarning, stacklevel=4,
            )


def check_not_constant(y: np.ndarray, name: str, family, wt: np.ndarray | None = None) -> None:
    """DataError when the response cannot inform a model: the same value in every row.

    A binary response that is always 0 (or always 1) or counts that are all zero have
    estimates at ±infinity; a constant Gaussian response has no residual variance.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        The response (proportions for binomial data).
    name : str
        The response's name, for the message.
    family : Family or None
        The family (None: Gaussian / ``lmer``).
    wt : numpy.ndarray, shape (n,), optional
        Weights; rows with weight 0 are ignored.

    Raises
    ------
    DataError
        Naming the response and the constant value.
    """
    fam = getattr(family, "name", "gaussian")
    n = y.shape[0]
    if wt is not None:
        keep = wt > 0
        y = y[keep]
    if y.size == 0:
        return
    if fam == "binomial":
        if np.all(y <= 0) or np.all(y >= 1):
            which = "0 (failure)" if np.all(y <= 0) else "1 (success)"
            raise DataError(
                f"binomial response {name!r} is {which} in all {n} row(s): there is nothing to model; "
                "check the response column and the rows kept"
            )
        return
    if fam in ("poisson", "negative_binomial", "nbinom1") and np.all(y == 0):
        raise DataError(f"count response {name!r} is 0 in all {n} row(s): there is nothing to model")
    if np.ptp(y) == 0:
        raise DataError(
            f"response {name!r} has the same value ({y[0]:g}) in all {n} row(s): there is nothing to model"
        )


def check_glmm_weights(wt: np.ndarray) -> None:
    """At least one row must carry weight (binomial trials or prior weights).

    Parameters
    ----------
    wt : numpy.ndarray, shape (n,)
        Prior weights or binomial trials.

    Raises
    ------
    DataError
        When every weight is 0.
    """
    if not np.any(wt > 0):
        raise DataError(
            f"all {wt.shape[0]} weights (or binomial trials) are 0: no row contributes to the likelihood; "
            "check the weights= argument or the cbind() columns"
        )


def population_level(re_form) -> bool:
    """Whether ``re_form`` asks for the population level (lme4's ``re.form = NA``).

    Parameters
    ----------
    re_form : None, str or float
        None (every random effect), or ``"~0"``, ``"~-1"``, ``"NA"`` or NaN (none).

    Returns
    -------
    bool
        True for the population level, False for None.

    Raises
    ------
    ArgumentError
        Any other value.
    """
    if re_form is None:
        return False
    if isinstance(re_form, str) and re_form.replace(" ", "") in ("~0", "NA", "~-1"):
        return True
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    raise ArgumentError(f"re_form must be None (all random effects) or '~0' (none), got {re_form!r}")


def binary_levels_message(structure, y: np.ndarray, wt: np.ndarray, family) -> str:
    """Why a binary GLMM's random effects are not identified ('' when they may be).

    A grouping factor all of whose levels have no more Bernoulli observations than random effects
    (two visits per patient with ``(1 + visit | patient)``).  The Laplace likelihood of such a model
    keeps rising towards very large variances (an artefact: quadrature with more nodes falls again),
    so its maximum says nothing about the data.

    Parameters
    ----------
    structure : ModelStructure
        The random-effects structure (blocks with their factor codes and K effects per level).
    y : numpy.ndarray, shape (n,)
        The response (not read: the number of rows per level decides).
    wt : numpy.ndarray, shape (n,)
        Binomial trials; only all-1 (Bernoulli) data are checked.
    family : Family
        The fit's family; only binomial is checked.

    Returns
    -------
    str
        A message naming the factor, its effects and the remedy; ``""`` when no factor is affected.
    """
    if family.name != "binomial" or not np.all(wt == 1.0):
        return ""
    for b in structure.blocks:
        if b.K < 2:
            continue
        per_level = np.bincount(b.factor.codes, minlength=b.q)
        if per_level.max() <= b.K:
            cols = ", ".join(n for t in structure.terms if t.group == b.factor.name for n in t.names)
            return (f"every level of {b.factor.name!r} has at most {int(per_level.max())} binary observations for "
                    f"its {b.K} random effects ({cols}): their covariance is not identified by the data, and the "
                    "Laplace approximation is unreliable here (its maximum can lie at very large variances); "
                    f"use fewer random effects per level, e.g. (1 | {b.factor.name})")
    return ""

