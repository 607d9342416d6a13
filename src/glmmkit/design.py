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
from functools import lru_cache

import numpy as np
import pandas as pd

from .exceptions import FormulaError

__all__ = ["build_design", "r_column_name", "formulaic_formula", "FUNCTIONS", "model_matrix"]

#: Functions a formula may call, under R's names (formulaic adds its own: log, exp, scale, center, C, I, poly, ...)
FUNCTIONS = {
    "log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10, "exp": np.exp, "expm1": np.expm1,
    "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos, "tan": np.tan, "floor": np.floor,
    "ceiling": np.ceil, "round": np.round, "sign": np.sign, "plogis": lambda x: 1.0 / (1.0 + np.exp(-np.asarray(x))),
    "qlogis": lambda p: np.log(np.asarray(p) / (1.0 - np.asarray(p))), "pmin": np.minimum, "pmax": np.maximum,
}


def model_matrix(formula: str, data: pd.DataFrame):
    """formulaic's model_matrix with glmmkit's function context, numpy output, no row dropping."""
    from formulaic import model_matrix as _mm

    return _mm(formulaic_formula(formula), data, output="numpy", na_action="ignore", context=FUNCTIONS)

_T_LEVEL = re.compile(r"\[T\.(.*?)\]")
_LEVEL = re.compile(r"\[(.*?)\]")
_POLY = re.compile(r"C\((.*?), *contr\.poly\)\[\.?(.*?)\]")
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")


def r_column_name(name: str) -> str:
    """Translate a formulaic column name into the one R's model.matrix would give."""
    if name == "Intercept":
        return "(Intercept)"
    name = name.replace(" ** ", "^")  # the parser turned R's ^ inside calls into Python's **
    name = _POLY.sub(lambda m: f"{m.group(1)}.{m.group(2)}" if m.group(2) in "LQC" else f"{m.group(1)}^{m.group(2)}", name)
    name = _T_LEVEL.sub(r"\1", name)
    return _LEVEL.sub(r"\1", name)


@lru_cache(maxsize=256)
def formulaic_formula(text: str):
    """A parsed formulaic Formula, cached (parsing costs more than many fits)."""
    from formulaic import Formula

    try:
        return Formula(text)
    except Exception as exc:  # formulaic raises its own parser errors
        raise FormulaError(f"cannot parse {text!r}: {exc}") from None


@lru_cache(maxsize=256)
def _simple_terms(rhs: str):
    """(intercept, [column names]) when ``rhs`` is only 1/0/-1 and bare names, else None."""
    tokens = [t.strip() for t in rhs.replace("- 1", "+ -1").replace("-1", "+ -1").split("+")]
    intercept, names = True, []
    for tok in tokens:
        if tok in ("", "1"):
            continue
        if tok in ("0", "-1"):
            intercept = False
        elif _NAME.match(tok):
            names.append(tok[1:-1] if tok.startswith("`") else tok)
        else:
            return None
    if len(set(names)) != len(names):
        return None
    return intercept, tuple(names)


@dataclass(frozen=True)
class SimpleSpec:
    """Spec of an intercept-plus-numeric-columns design (formulaic's ModelSpec look-alike)."""

    intercept: bool
    columns: tuple

    @property
    def column_names(self) -> list[str]:
        return (["Intercept"] if self.intercept else []) + list(self.columns)

    def get_model_matrix(self, data: pd.DataFrame, output="numpy", na_action="ignore") -> np.ndarray:
        n = len(data)
        out = np.empty((n, len(self.columns) + self.intercept))
        at = 0
        if self.intercept:
            out[:, 0] = 1.0
            at = 1
        for j, c in enumerate(self.columns):
            out[:, at + j] = data[c].to_numpy(dtype=float, na_value=np.nan)
        return out


def _is_plain_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def build_design(rhs: str, data: pd.DataFrame, spec=None):
    """Design matrix of a right-hand side.

    Parameters
    ----------
    rhs : str
        Right-hand side, e.g. ``"trt * week"`` or ``"1 + Days"``.
    data : DataFrame
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
        simple = _simple_terms(rhs)
        if simple is not None and all(c in data.columns and _is_plain_numeric(data[c]) for c in simple[1]):
            spec = SimpleSpec(*simple)
    if isinstance(spec, SimpleSpec):
        return spec.get_model_matrix(data), [r_column_name(c) for c in spec.column_names], spec
    try:
        if spec is not None:
            mm = spec.get_model_matrix(data, output="numpy", na_action="ignore", context=FUNCTIONS)
        else:
            mm = model_matrix("~ " + rhs, data)
    except FormulaError:
        raise
    except Exception as exc:
        raise FormulaError(f"cannot build the design of {rhs!r}: {exc}") from None
    spec = mm.model_spec
    X = np.ascontiguousarray(np.asarray(mm, dtype=float).reshape(n, -1))
    return X, [r_column_name(c) for c in spec.column_names], spec
