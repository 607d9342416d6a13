"""The fitted model: estimates, tables, random effects, prediction.

A fit is built once from the engine's output and then only read.  Every table is
a pandas object named in lme4's vocabulary (fixef, ranef, varcorr, vcov, loglik).

* ``info.py``: ``FitInfo``, the record of how the fit went;
* ``base.py``: ``MixedModelFit``, the estimates and their views, shared by every fit;
* ``prediction.py``: linear predictors, ``predict`` for new data, ``simulate``;
* ``interpretation.py``: ICC, marginal effects, posterior random effects, shrinkage, hat values;
* ``lmm.py``: ``LmmFit``; ``glmm.py``: ``GlmmFit`` and ``PqlFit``.
"""

from .base import MixedModelFit
from .glmm import GlmmFit, PqlFit
from .info import FitInfo
from .lmm import LmmFit

__all__ = ["FitInfo", "GlmmFit", "LmmFit", "MixedModelFit", "PqlFit"]
