"""Residual (R-side) correlation structures of Gaussian models: ``lmer(..., residual="ar1(visit | Subject)")``."""

from .layout import ClusterLayout, ResidualSpec, parse_residual
from .names import RESIDUAL_STRUCTURES
from .model import ResidualModel, VarianceModel
from .structures import ResidualStructure, make_residual

__all__ = ["ClusterLayout", "ResidualSpec", "parse_residual", "RESIDUAL_STRUCTURES", "ResidualStructure",
           "make_residual", "ResidualModel", "VarianceModel"]
