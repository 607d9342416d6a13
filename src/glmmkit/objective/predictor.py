"""Linear predictors: η = Xβ + offset + Zb for one part of a model.

A GLMM has one linear predictor, the conditional mean's; models with a
zero-inflation or dispersion formula have one per part, each with its own
fixed-effect columns, offset and random-effect structure.  A predictor owns its
parameters: ``parameter_blocks`` gives the θ block of its random terms and the β
block of its columns, named by the part (``theta``/``beta`` for the conditional
mean, ``theta_zi``/``beta_zi`` for a zero-inflation part, ...), and the
objective's ``ParameterLayout`` is the concatenation over the parts and the
family's own parameters (``model_layout``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import ParameterBlock, ParameterLayout

__all__ = ["LinearPredictor", "model_layout", "PSI_BOUND"]

#: bounds of ψ = log(parameter): e^±15 covers every NB θ, shape or precision that a fit can tell apart
PSI_BOUND = 15.0


@dataclass(frozen=True)
class LinearPredictor:
    """One part's linear predictor.

    Attributes
    ----------
    X : ndarray, shape (n, p)
        Fixed-effect columns (as the engine sees them).
    offset : ndarray, shape (n,)
    structure : ModelStructure
        The part's random-effect terms.
    names : tuple of str or None
        Fixed-effect labels (``beta[j]`` when omitted).
    part : str
        ``"cond"`` for the conditional mean; ``"zi"``, ``"disp"`` for the sub-models.
    """

    X: np.ndarray
    offset: np.ndarray
    structure: object
    names: tuple | None = None
    part: str = "cond"

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def suffix(self) -> str:
        """What the part's block names carry: '' for the conditional mean, '_zi' for zero inflation, ..."""
        return "" if self.part == "cond" else f"_{self.part}"

    def fixed(self, beta: np.ndarray) -> np.ndarray:
        """Xβ + offset."""
        return self.X @ beta + self.offset

    def parameter_blocks(self) -> tuple:
        """(θ block, β block) of this predictor, named by its part."""
        theta = ParameterBlock.covariance(self.structure)
        names = self.names if self.names is not None else tuple(f"beta[{j}]" for j in range(self.p))
        beta = ParameterBlock.free("beta", names)
        if self.suffix:
            theta = ParameterBlock(f"theta{self.suffix}", theta.names, theta.lower, theta.upper, theta.step, True,
                                   theta.sign_flips)
            beta = ParameterBlock(f"beta{self.suffix}", beta.names, beta.lower, beta.upper, beta.step)
        return theta, beta


def model_layout(predictors, family) -> ParameterLayout:
    """The parameters of a model: each predictor's (θ, β), then the family's free parameters on the log
    scale (ψ, bounded by ``PSI_BOUND``) when it has any."""
    blocks = [b for pred in predictors for b in pred.parameter_blocks()]
    free = tuple(getattr(family, "free_names", ()) or ())
    if free:
        blocks.append(ParameterBlock.bounded("psi", free, PSI_BOUND))
    return ParameterLayout(blocks)
