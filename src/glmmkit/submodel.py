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


def one_sided(formula, argument: str, random: bool = False) -> str:
    """``formula`` as a one-sided formula text ('~ x'), with an error naming ``argument`` otherwise.

    Parameters
    ----------
    formula : str
        The user's formula ('~ mined', 'mined', '~ mined + (1 | site)').
    argument : str
        Its argument's name, for messages.
    random : bool, default False
        Whether random-effects terms ``(... | g)`` are allowed in it.

    Returns
    -------
    str
        '~ ' followed by the right-hand side.
    """
    text = str(formula).strip()
    if not text.startswith("~"):
        if "~" in text:
            raise FormulaError(f"{argument}={formula!r} must be one-sided (no response), e.g. '~ x'")
        text = "~ " + text
    rhs = text[1:].strip()
    if not rhs:
        raise FormulaError(f"{argument}={formula!r} is empty; write '~ 1' for a constant")
    if "|" in rhs and not random:
        raise FormulaError(
            f"{argument}={formula!r} has a random-effects term; random effects are available in the "
            f"ziformula, not yet in the {argument}: write its fixed part only (e.g. '~ {rhs.split('(')[0].strip(' +') or '1'}')")
    return "~ " + rhs


def is_trivial(formula) -> bool:
    """True for '~ 1' (the family's parameter estimated as one value, as without a formula).

    Parameters
    ----------
    formula : str or None
        A one-sided formula (``"~ 1"``, ``"~ mined"``) or None (no formula given).

    Returns
    -------
    bool
        True when ``formula`` is ``"~ 1"`` or ``"1"`` (spaces ignored); False for None or any other.
    """
    return formula is not None and str(formula).replace(" ", "") in ("~1", "1")


@dataclass(frozen=True)
class SubModel:
    """A one-sided formula's model of one family parameter.

    Attributes
    ----------
    formula : str
        The one-sided formula as given, normalised to start with ``"~ "``.
    part : str
        ``"zi"`` or ``"disp"``.
    param : str
        The family parameter it models.
    scale : float
        The parameter on the engine's scale is the linear predictor / ``scale``.
    X : ndarray, shape (n, k)
        The fixed part's design matrix on the model frame's n rows (k columns).
    names : tuple of str
        The k column names of ``X`` (``"(Intercept)"``, ``"mined"``, ...).
    spec : object
        The design's encoding (for new data).
    structure : ModelStructure or None
        The formula's random-effects terms (``ziformula = ~ mined + (1 | site)``), None without any.
    frame : ModelFrame or None
        The model frame the random terms were built from (their levels and columns, for new data).
    """

    formula: str
    part: str
    param: str
    scale: float
    X: np.ndarray
    names: tuple
    spec: object
    structure: object = None
    frame: object = None

    @property
    def fixed_formula(self) -> str:
        """The formula's fixed part ('~ mined' of '~ mined + (1 | site)').

        Returns
        -------
        str
            The whole formula when it has no random-effects terms.
        """
        if self.frame is None:
            return self.formula
        return "~ " + self.frame.parsed.fixed_rhs

    @property
    def predictor(self) -> LinearPredictor:
        """The sub-model's linear predictor (``LinearPredictor`` with ``param`` set).

        Returns
        -------
        LinearPredictor
        """
        return LinearPredictor(self.X, np.zeros(self.X.shape[0]), self.structure, self.names, part=self.part,
                               param=self.param, param_scale=self.scale)

    def design_new(self, data: pd.DataFrame) -> np.ndarray:
        """The columns of this sub-model for new rows (the fitted data's encoding).

        Parameters
        ----------
        data : DataFrame
            New rows with the columns the fixed part names; factor levels must be ones seen in
            the fitted data.

        Returns
        -------
        ndarray, shape (len(data), k)
            The fixed-part design of the new rows, columns as ``names``.
        """
        from .design import build_design

        X = build_design(self.fixed_formula[1:].strip(), data, self.spec)[0]
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
        Which family parameter the formula models: the zero probability (logit scale) or the
        dispersion (the family's log scale).
    family : ParametricFamily
        The model's family (a zero-inflated or hurdle one for ``part="zi"``).

    Returns
    -------
    SubModel
    """
    from .design import build_design

    argument = "ziformula" if part == "zi" else "dispformula"
    text = one_sided(formula, argument, random=part == "zi")
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
    structure, re_frame, fixed_text = None, None, text
    if "|" in text:
        structure, re_frame = _random_part(text, data, argument)
        fixed_text = "~ " + re_frame.parsed.fixed_rhs
    X, names, spec = build_design(fixed_text[1:].strip(), data)
    X = np.ascontiguousarray(np.asarray(X, dtype=float).reshape(len(data), -1))
    if X.shape[1] == 0:
        raise FormulaError(f"{argument}={formula!r} has no columns; write '~ 1' for a constant")
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        raise FormulaError(f"{argument}={formula!r}: its model matrix is rank deficient ({X.shape[1]} columns, "
                           f"rank {rank}) on the complete rows; drop the aliased terms")
    return SubModel(text, part, param, scale, X, tuple(names), spec, structure, re_frame)


#: the response column a sub-model's own frame is built with (its random terms need a frame; the
#: response is the conditional model's)
_PLACEHOLDER = "zi_placeholder_response__"


def _random_part(text: str, data: pd.DataFrame, argument: str):
    """(ModelStructure, ModelFrame) of the random-effects terms of a one-sided formula on the complete
    rows ``data`` (the rows the conditional model uses, so no row is dropped here)."""
    from .formula import parse_formula
    from .frame import build_model_frame
    from .structure import build_structure

    d = data.copy()
    d[_PLACEHOLDER] = 0.0
    parsed = parse_formula(f"{_PLACEHOLDER} {text}")
    if parsed.offsets:
        raise FormulaError(f"{argument}={text!r}: offsets in the {argument} are not available")
    frame = build_model_frame(parsed, d)
    if frame.nobs != len(data):  # pragma: no cover - the columns were counted for complete cases
        raise FormulaError(f"{argument}={text!r} drops rows the conditional model keeps")
    structure = build_structure(frame)
    return structure, frame
