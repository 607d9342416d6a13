"""Formula layer: lme4 formula text -> a :class:`ParsedFormula` (no data involved)."""

from .parser import ParsedFormula, RandomTermSpec, parse_formula

__all__ = ["ParsedFormula", "RandomTermSpec", "parse_formula"]
