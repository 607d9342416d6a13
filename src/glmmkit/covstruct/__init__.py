"""Covariance structures of random-effect terms (see ``base.py`` for the contract)."""

from .base import CovStructure
from .correlated import AR1, CompoundSymmetry, ScaledCorrelation, Toeplitz
from .registry import STRUCTURE_NAMES, structure_for_term
from .spatial import Exponential, GaussianCorrelation, Matern, SpatialCorrelation
from .unstructured import Diagonal, HomDiagonal, Scalar, Unstructured

__all__ = ["CovStructure", "Unstructured", "Scalar", "Diagonal", "HomDiagonal", "ScaledCorrelation",
           "CompoundSymmetry", "AR1", "Toeplitz", "SpatialCorrelation", "Exponential", "GaussianCorrelation",
           "Matern", "STRUCTURE_NAMES", "structure_for_term"]
