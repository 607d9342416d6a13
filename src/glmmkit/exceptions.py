"""glmmkit's own exception and warning classes.

Every error raised on bad user input is one of these, so callers can catch
``glmmkit.GlmmkitError`` and know the message names the culprit (column,
level, argument) and what to do about it.
"""

from __future__ import annotations


class GlmmkitError(Exception):
    """Base class of every error glmmkit raises on purpose."""


class FormulaError(GlmmkitError, ValueError):
    """The model formula cannot be parsed or names something that does not exist."""


class DataError(GlmmkitError, ValueError):
    """The data cannot support the requested model (missing column, no rows, bad values)."""


class ArgumentError(GlmmkitError, ValueError):
    """An argument has a value that is not allowed (unknown option, wrong length)."""


class DataTypeError(GlmmkitError, TypeError):
    """An argument or column has the wrong type (e.g. data that is not a data frame)."""


class NotAvailableError(GlmmkitError, NotImplementedError):
    """A method that does not apply to this kind of fit (e.g. a profile of a PQL fit, which has no
    likelihood); the message says why and what to use instead."""


class DistributedError(GlmmkitError, RuntimeError):
    """The Dask scheduler or client a distributed fit runs on went away or failed; no fit was made."""


class GlmmkitWarning(UserWarning):
    """Base class of glmmkit's warnings: each says what happened and what to do."""


class DataWarning(GlmmkitWarning):
    """The data are usable but probably not what was meant (e.g. numbers stored as text)."""


class RankDeficiencyWarning(GlmmkitWarning):
    """Fixed-effect columns were dropped because they are linear combinations of others."""


class ConvergenceWarning(GlmmkitWarning):
    """The optimiser stopped without meeting its convergence criteria."""


class IdentifiabilityWarning(GlmmkitWarning):
    """The data cannot determine every parameter (no more observations than parameters): the optimiser
    may have converged, but to one of many equally good points."""


class SingularFitWarning(GlmmkitWarning):
    """A variance component is estimated on the boundary (zero variance or |correlation| = 1)."""


class SeparationWarning(GlmmkitWarning):
    """The binomial response is (quasi-)completely separated by the fixed-effect design: the
    maximum-likelihood estimates of some coefficients are infinite."""
