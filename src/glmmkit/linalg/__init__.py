"""Linear algebra of the penalised least-squares system: precomputed blocks and the blocked Cholesky."""

from .blocked import BlockedSystem, BlockedFactor

__all__ = ["BlockedSystem", "BlockedFactor"]
