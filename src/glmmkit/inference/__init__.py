"""Inference and interpretation that read a fit (or its design), never the engine's internals."""

from .anova import anova
from .separation import SeparationResult, check_separation, separation_lp

__all__ = ["SeparationResult", "anova", "check_separation", "separation_lp"]
