"""Inference and interpretation that read a fit (or its design), never the engine's internals."""

from .separation import SeparationResult, check_separation, separation_lp

__all__ = ["SeparationResult", "check_separation", "separation_lp"]
