"""Objectives: each maps the optimiser's parameters to a number to minimise."""

from .lmm import LmmObjective

__all__ = ["LmmObjective"]
