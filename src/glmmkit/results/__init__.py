"""The fitted model: estimates, tables, random effects, prediction.

A fit is built once from the engine's output and then only read.  Every table is
a pandas object named in lme4's vocabulary (fixef, ranef, varcorr, vcov, loglik, condvar).
Per-row results (``fitted``, ``residuals``, ``predict``, ``simulate``) are Series/DataFrames
labelled by the data's own index (rows dropped for missing values absent, as R's na.omit);
internal code reads them as ndarrays through the ``_fitted_array``, ``_residuals_array``,
``_predict_array`` and ``_simulate_array`` methods.

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
