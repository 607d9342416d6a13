"""Linear algebra of the penalised least-squares system: precomputed blocks and the blocked Cholesky."""

from .blocked import BlockedSystem, BlockedFactor
from .choose import make_system
from .nested import NestedChainSystem
from .sparse import SparseSchurSystem

__all__ = ["BlockedSystem", "BlockedFactor", "NestedChainSystem", "SparseSchurSystem", "make_system"]
