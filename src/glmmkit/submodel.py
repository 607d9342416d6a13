"""Sub-models of a GLMM: the ``ziformula`` and ``dispformula`` (glmmTMB's), each a linear predictor
for one family parameter per row.

``build_submodel`` turns a one-sided formula and the model frame's complete rows into a
``SubModel``: the design (columns, names, the encoding that new data reuse), which family
parameter it drives and on what scale.  The engine sees its ``predictor`` (a
``LinearPredictor`` with ``param`` set); results use ``design_new`` for predictions.

* ``ziformula``: logit π, π the zero-inflation (or hurdle zero) probability.
* ``dispformula``: glmmTMB's log-dispersion (log θ for NB2, log φ for NB1 and beta, log shape for Gamma, log σ for
  Gaussian and Student-t), which is ``a`` times the family's own log-parameter
  (``family.disp_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .exceptions import ArgumentError, FormulaError
from .objective.predictor import LinearPredictor

__all__ = ["SubModel", "build_submodel", "one_sided", "is_trivial"]


def one_sided(formula, argument: str) -> str:
    """``formula`` as a one-sided formula text ('~ x'), with an error naming ``argument`` otherwise."""
    text = str(formula).strip()
    if not text.startswith("~"):
        if "~" in text:
            raise FormulaError(f"{argument}={formula!r} must be one-sided (no response), e.g. '~ x'")
        text = "~ " + text
    rhs = text[1:].strip()
    if not rhs:
        raise FormulaError(f"{argument}={formula!r} is empty; write '~ 1' for a constant")
    if "|" in rhs:
        raise FormulaError(
            f"{argument}={formula!r} has a random-effects term; random effects in the {argument} are not "
            f"available yet: write its fixed part only (e.g. '~ {rhs.split('(')[0].strip(' +') or '1'}')")
    return "~ " + rhs


def is_trivial(formula) -> bool:
    """True for '~ 1' (the family's parameter estimated as one value, as without a formula)."""
    return formula is not None and str(formula).replace(" ", "") in ("~1", "1")


@dataclass(frozen=True)
class SubModel:
    """A one-sided formula's model of one family parameter.

    Attributes
    ----------
    formula : str
    part : str
        ``"zi"`` or ``"disp"``.
    param : str
        The family parameter it models.
    scale : float
        The parameter on the engine's scale is the linear predictor / ``scale``.
    X : ndarray, shape (n, k)
    names : tuple of str
    spec : object
        The design's encoding (for new data).
    """

    formula: str
    part: str
    param: str
    scale: float
    X: np.ndarray
    names: tuple
    spec: object

    @property
    def predictor(self) -> LinearPredictor:
        return LinearPredictor(self.X, np.zeros(self.X.shape[0]), None, self.names, part=self.part, param=self.param,
                               param_scale=self.scale)

    def design_new(self, data: pd.DataFrame) -> np.ndarray:
        """The columns of this sub-model for new rows (the fitted data's encoding)."""
        from .design import build_design

        X = build_design(self.formula[1:].strip(), data, self.spec)[0]
        return np.asarray(X, dtype=float).reshape(len(data), -1)


def build_submodel(formula, data: pd.DataFrame, part: str, family) -> SubModel:
    """The ``SubModel`` of ``formula`` on the complete rows ``data``.

    Parameters
    ----------
    formula : str
        One-sided formula ('~ mined', '~ 1').
    data : DataFrame
        The model frame's complete rows.
    part : {"zi", "disp"}
    family : ParametricFamily
        The model's family (a zero-inflated or hurdle one for ``part="zi"``).

    Returns
    -------
    SubModel
    """
    from .design import build_design

    argument = "ziformula" if part == "zi" else "dispformula"
    text = one_sided(formula, argument)
    if part == "zi":
        param, scale = "zi", 1.0
    else:
        param = getattr(family, "disp_param", None)
        if param is None:
            raise ArgumentError(f"dispformula does not apply to the {family.name} family, which has no dispersion "
                                f"parameter (its variance is fixed by the mean); drop dispformula, or use a family "
                                f"that has one (negative_binomial, nbinom1, gamma, beta, student_t, ...)")
        if param in getattr(family, "fixed", {}):
            raise ArgumentError(f"dispformula models {param!r}, which family_params holds fixed; drop one of them")
        scale = float(getattr(family, "disp_scale", 1.0))
    X, names, spec = build_design(text[1:].strip(), data)
    X = np.ascontiguousarray(np.asarray(X, dtype=float).reshape(len(data), -1))
    if X.shape[1] == 0:
        raise FormulaError(f"{argument}={formula!r} has no columns; write '~ 1' for a constant")
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        raise FormulaError(f"{argument}={formula!r}: its model matrix is rank deficient ({X.shape[1]} columns, "
                           f"rank {rank}) on the complete rows; drop the aliased terms")
    return SubModel(text, part, param, scale, X, tuple(names), spec)
