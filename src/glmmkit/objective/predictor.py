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
        The part's offset on its linear-predictor scale (zeros for a sub-model).
    structure : ModelStructure
        The part's random-effect terms.
    names : tuple of str or None
        Fixed-effect labels (``beta[j]`` when omitted).
    part : str
        ``"cond"`` for the conditional mean; ``"zi"``, ``"disp"`` for the sub-models.
    param : str or None
        For a sub-model: the family parameter it models (``"zi"``, ``"theta"``, ``"sigma"``, ...).
    param_scale : float
        The family parameter on the engine's scale is η / ``param_scale`` (glmmTMB models the
        log of its dispersion, which is ``a`` times the family's own log-parameter: a Gamma's
        log σ = −½ log shape).
    """

    X: np.ndarray
    offset: np.ndarray
    structure: object
    names: tuple | None = None
    part: str = "cond"
    param: str | None = None
    param_scale: float = 1.0

    @property
    def p(self) -> int:
        """Number of fixed-effect columns.

        Returns
        -------
        int
        """
        return self.X.shape[1]

    @property
    def suffix(self) -> str:
        """What the part's block names carry: '' for the conditional mean, '_zi' for zero inflation, ...

        Returns
        -------
        str
        """
        return "" if self.part == "cond" else f"_{self.part}"

    def fixed(self, beta: np.ndarray) -> np.ndarray:
        """Xβ + offset.

        Parameters
        ----------
        beta : ndarray, shape (p,)
            The part's fixed effects.

        Returns
        -------
        ndarray, shape (n,)
            The fixed part of the linear predictor per row.
        """
        return self.X @ beta + self.offset

    def engine_param(self, beta: np.ndarray) -> np.ndarray:
        """The modelled family parameter per row on the engine's scale (bounded by ±``PSI_BOUND``
        like an intercept-only one, so that no row's parameter leaves the range a fit can tell apart).

        Parameters
        ----------
        beta : ndarray, shape (p,)
            The sub-model's fixed effects.

        Returns
        -------
        ndarray, shape (n,)
            (Xβ + offset) / ``param_scale``, clipped to [-PSI_BOUND, PSI_BOUND].
        """
        return np.clip(self.fixed(beta) / self.param_scale, -PSI_BOUND, PSI_BOUND)

    def parameter_blocks(self) -> tuple:
        """(θ block, β block) of this predictor, named by its part; a sub-model without random
        effects has its β block only.

        Returns
        -------
        tuple of ParameterBlock
            ``(theta, beta)`` (``theta_zi``/``beta_zi`` etc. for a sub-model), or ``(beta,)``.
        """
        names = self.names if self.names is not None else tuple(f"beta[{j}]" for j in range(self.p))
        beta = ParameterBlock.free(f"beta{self.suffix}", names)
        if self.structure is None:
            return (beta,)
        theta = ParameterBlock.covariance(self.structure)
        if self.suffix:
            theta = ParameterBlock(f"theta{self.suffix}", tuple(f"{self.part}~{n}" for n in theta.names), theta.lower,
                                   theta.upper, theta.step, True, theta.sign_flips)
        return theta, beta


def model_layout(predictors, family, submodels=()) -> ParameterLayout:
    """The parameters of a model: each predictor's (θ, β), the family's free parameters that no
    sub-model models, on the engine's scale (ψ, bounded by ``PSI_BOUND``), then each sub-model's
    blocks (``beta_zi``, ``beta_disp``).

    Parameters
    ----------
    predictors : sequence of LinearPredictor
        The conditional mean's predictor(s).
    family : Family
        The family; its ``free_names`` are the ψ candidates.
    submodels : sequence of LinearPredictor, default ()
        The sub-models' predictors (``param`` set); the parameters they model leave ψ.

    Returns
    -------
    ParameterLayout
    """
    blocks = [b for pred in predictors for b in pred.parameter_blocks()]
    modelled = {sub.param for sub in submodels}
    free = tuple(k for k in (getattr(family, "free_names", ()) or ()) if k not in modelled)
    if free:
        blocks.append(ParameterBlock.bounded("psi", free, PSI_BOUND))
    blocks += [b for sub in submodels for b in sub.parameter_blocks()]
    return ParameterLayout(blocks)
