"""Formula names of covariance structures (glmmTMB's and lme4 2.0's vocabulary) -> structures.

``structure_for_term`` turns one structured term of a model frame -- its name, the
columns its formula gives and their names -- into the term's :class:`CovStructure`
and its random-effect columns:

* ``us``, ``diag``, ``homdiag``, ``cs``, ``homcs`` take the columns as they are;
* ``ar1``, ``hetar1``, ``toep``, ``homtoep`` order the columns: a factor's indicator
  columns (``ar1(0 + f | g)``) in level order, equally spaced as in glmmTMB, or with
  one numeric column (``ar1(visit | g)``) its distinct integer values as positions,
  so a missing visit keeps its lag;
* ``ou``, ``exp``, ``gau``, ``mat`` read coordinates from their numeric columns
  (``exp(x + y | g)``) and have one random effect per distinct position.
"""

from __future__ import annotations

import difflib

import numpy as np

from .correlated import AR1, CompoundSymmetry, Toeplitz
from .positions import unique_positions
from .spatial import Exponential, GaussianCorrelation, Matern
from .unstructured import Diagonal, HomDiagonal, Scalar, Unstructured

__all__ = ["STRUCTURE_NAMES", "structure_for_term", "suggest_structure"]

ORDERED = ("ar1", "hetar1", "toep", "homtoep")
SPATIAL = ("ou", "exp", "gau", "mat")
PLAIN = ("us", "diag", "homdiag", "cs", "homcs")
STRUCTURE_NAMES = PLAIN + ORDERED + SPATIAL


def suggest_structure(name: str) -> str:
    """A hint for an unknown structure name, for error messages.

    Parameters
    ----------
    name : str
        The structure name as written in the formula.

    Returns
    -------
    str
        ``" (did you mean 'ar1'?)"`` for the closest known name, or ``""`` when none is close.
    """
    close = difflib.get_close_matches(name, STRUCTURE_NAMES, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_indicator(cols: np.ndarray) -> bool:
    return cols.shape[1] > 0 and bool(np.all((cols == 0) | (cols == 1))) and bool(np.all(cols.sum(axis=1) == 1))


def _fmt(v: float) -> str:
    return f"{v:g}"


def _coordinate_columns(name, raw, raw_names, source):
    from ..exceptions import FormulaError

    idx = [j for j, n in enumerate(raw_names) if n != "(Intercept)"]
    if not idx:
        raise FormulaError(f"{source}: {name}() needs coordinate columns before '|', e.g. "
                           f"{name}(time | g) or {name}(x + y | g)")
    C = np.asarray(raw, dtype=float)[:, idx]
    if np.all((C == 0) | (C == 1)) and len(idx) > 1:
        raise FormulaError(f"{source}: {name}() reads numeric coordinates, but the columns "
                           f"{[raw_names[j] for j in idx]} look like a factor's indicators; give the "
                           "coordinates as numeric columns (exp(x + y | g))")
    return idx, C


def _position_names(coord_names, positions):
    if positions.shape[1] == 1:
        return [f"{coord_names[0]}({_fmt(p[0])})" for p in positions]
    return ["(" + ",".join(_fmt(v) for v in p) + ")" for p in positions]


def structure_for_term(name: str, raw: np.ndarray, raw_names: list[str], source: str):
    """The covariance structure of a structured term, and its columns.

    Parameters
    ----------
    name : str
        The structure's formula name (``"ar1"``).
    raw : ndarray, shape (n, m)
        The columns of the term's formula (model matrix, intercept included where written).
    raw_names : list of str
        Their names.
    source : str
        The term as written, for messages.

    Returns
    -------
    structure : CovStructure
    columns : ndarray, shape (n, k)
    names : list of str

    Raises
    ------
    FormulaError
        Unknown structure, or columns the structure cannot use (naming the fix).
    """
    from ..exceptions import FormulaError

    raw = np.asarray(raw, dtype=float)
    k = raw.shape[1]
    names = list(raw_names)
    if name not in STRUCTURE_NAMES:
        raise FormulaError(f"unknown covariance structure {name!r} in {source}{suggest_structure(name)}; "
                           f"known: {', '.join(STRUCTURE_NAMES)}")
    if name == "us":
        return (Scalar() if k == 1 else Unstructured(k)), raw, names
    if name == "diag":
        return Diagonal(k), raw, names
    if name == "homdiag":
        return HomDiagonal(k), raw, names
    if name in ("cs", "homcs"):
        if k < 2:
            raise FormulaError(f"{source}: {name}() needs at least two columns (a correlation between "
                               "them); write (1 | g) for one")
        return CompoundSymmetry(k, heterogeneous=name == "cs"), raw, names

    if name in ORDERED:
        make = AR1 if name in ("ar1", "hetar1") else Toeplitz
        het = name in ("hetar1", "toep")
        nonint = [j for j, n in enumerate(names) if n != "(Intercept)"]
        numeric_time = len(nonint) == 1 and not np.all((raw[:, nonint[0]] == 0) | (raw[:, nonint[0]] == 1))
        if not numeric_time:
            if k < 2:
                raise FormulaError(f"{source}: {name}() needs a time factor with at least two levels "
                                   f"(write {name}(0 + f | g) with f a factor, or {name}(time | g))")
            return make(k, heterogeneous=het), raw, names
        j = nonint[0]
        t = raw[:, j]
        if not np.allclose(t, np.round(t)):
            bad = t[np.flatnonzero(~np.isclose(t, np.round(t)))[0]]
            raise FormulaError(f"{source}: {name}() needs integer times, but {names[j]} has {_fmt(bad)}; for "
                               f"continuous time use ou({names[j]} | g) or exp({names[j]} | g)")
        positions, codes = unique_positions(np.round(t)[:, None])
        if positions.shape[0] < 2:
            raise FormulaError(f"{source}: {names[j]} takes one value only; {name}() needs at least two times")
        cols = np.zeros((raw.shape[0], positions.shape[0]))
        cols[np.arange(raw.shape[0]), codes] = 1.0
        cs = make(positions.shape[0], heterogeneous=het, positions=positions[:, 0].astype(np.int64))
        col_names = _position_names([names[j]], positions)
        cs.coordinates = ([j], positions, col_names)
        return cs, cols, col_names

    idx, C = _coordinate_columns(name, raw, names, source)
    positions, codes = unique_positions(C)
    if positions.shape[0] < 2:
        raise FormulaError(f"{source}: the coordinates take one value only; {name}() needs at least two positions")
    cols = np.zeros((raw.shape[0], positions.shape[0]))
    cols[np.arange(raw.shape[0]), codes] = 1.0
    if name in ("ou", "exp"):
        if name == "ou" and positions.shape[1] != 1:
            raise FormulaError(f"{source}: ou() is one-dimensional (time); use exp() for several coordinates")
        cs = Exponential(positions, label=name)
    elif name == "gau":
        cs = GaussianCorrelation(positions)
    else:
        cs = Matern(positions)
    col_names = _position_names([names[j] for j in idx], positions)
    cs.coordinates = (idx, positions, col_names)
    return cs, cols, col_names
