"""glmmkit: linear and generalized linear mixed-effects models in Python.

>>> import glmmkit as gk
>>> fit = gk.lmer("Reaction ~ Days + (Days | Subject)", data=gk.datasets.load("sleepstudy"))
>>> print(fit.summary())  # doctest: +SKIP
"""

from . import datasets, diagnostics
from .exceptions import (
    ArgumentError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    DataTypeError,
    FormulaError,
    GlmmkitError,
    GlmmkitWarning,
    IdentifiabilityWarning,
    NotAvailableError,
    RankDeficiencyWarning,
    SeparationWarning,
    SingularFitWarning,
)
from .bayes import priors
from .bayes.api import bglmer, blmer
from .glmer import glmer
from .inference import anova, check_separation
from .inference.power import PowerResult, plot_power, power
from .lmer import lmer
from .results import GlmmFit, LmmFit, PqlFit

__version__ = "0.1.0"

__all__ = [
    "lmer",
    "glmer",
    "LmmFit",
    "GlmmFit",
    "PqlFit",
    "datasets",
    "diagnostics",
    "GlmmkitError",
    "FormulaError",
    "DataError",
    "DataWarning",
    "DataTypeError",
    "ArgumentError",
    "GlmmkitWarning",
    "RankDeficiencyWarning",
    "ConvergenceWarning",
    "IdentifiabilityWarning",
    "NotAvailableError",
    "SingularFitWarning",
    "SeparationWarning",
    "check_separation",
    "anova",
    "power",
    "plot_power",
    "PowerResult",
    "blmer",
    "bglmer",
    "priors",
]
