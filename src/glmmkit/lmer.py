"""``lmer``: the linear mixed model pipeline, four steps that can be tested apart.

formula text -> ParsedFormula -> ModelFrame -> ModelStructure -> LmmObjective
-> optimiser -> LmmFit.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ._threads import single_blas_thread
from .exceptions import DataError, FormulaError, RankDeficiencyWarning
from .formula import parse_formula
from .frame import build_model_frame, drop_aliased_columns
from .fitting.lmm import LmmProblem, fit_lmm
from .structure import build_structure
from .fitting.finish import check_grouping, finish_fit
from .validate import check_not_constant, check_reml

__all__ = ["lmer"]


def lmer(formula, data, *, reml=True, weights=None, offset=None, residual=None, dispformula=None, relmat=None,
         data_name=None):
    """Fit a linear mixed model by REML (default) or maximum likelihood.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.  Random
        terms: ``(1 | g)``, ``(x | g)``, ``(0 + x | g)``, ``(x || g)``, nested
        ``(1 | a/b)``, interactions ``(1 | a:b)``, crossed ``(1 | a) + (1 | b)``.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        The data, one row per observation, with every column the formula names.  A Dask
        DataFrame (``dask.dataframe.read_parquet``; the extra ``glmmkit[dask]``) is fitted on the
        current ``dask.distributed`` client from its partitions' crossproducts: the same estimates,
        with per-row results as lazy Dask Series (``glmmkit.distributed``).
    reml : bool, default True
        REML (as lme4's ``lmer``) or maximum likelihood.
    weights : array-like or column name, optional
        Prior weights: observation i has residual variance σ² / w_i.
    offset : array-like or column name, optional
        Known part of the linear predictor (adds to ``offset()`` terms).
    residual : str, optional
        A residual correlation structure within clusters (nlme's ``correlation=``):
        ``"ar1(visit | Subject)"`` (integer times; ``"ar1(1 | Subject)"`` the rows' order,
        ``corAR1``), ``"exp(Time | Rat)"`` (continuous time, ``corCAR1``), ``"cs(1 | Subject)"``
        (``corCompSymm``), ``"un(visit | Subject)"`` (every pair of visits, ``corSymm``),
        ``"toep(visit | Subject)"`` (one correlation per lag).  The cluster must be nested in
        every grouping factor of the random effects.  With ``residual=`` the formula may have no
        random-effects term (nlme's ``gls``).  Estimates in ``fit.residual_params``.
    dispformula : str, optional
        A one-sided formula for the log residual standard deviation (glmmTMB's ``dispformula``):
        ``"~ Sex"`` gives each sex its own residual variance (nlme's ``varIdent(form = ~ 1 | Sex)``),
        a numeric covariate an exponential variance function (``varExp``).  With
        ``residual="un(visit | g)"`` and ``dispformula="~ factor(visit)"`` it is SAS's TYPE=UN.
        The ratios of residual SDs to the reference are in ``fit.residual_params``.
    relmat : dict, optional
        Known relationship matrices up to scale, ``{"animal": K}``: the random intercept
        ``(1 | animal)`` has covariance σ_animal² K across levels (pedigrees, kinship, phylogenies;
        glmmTMB's ``propto``, lme4qtl's ``relmat``).  K is a DataFrame labelled by level on both
        axes, with a row for every level in the data (levels only in K are ignored).
    data_name : str, optional
        Name shown in the summary.

    Returns
    -------
    LmmFit
        The fitted model: ``fixef``, ``varcorr``, ``loglik``, ``summary()``, ``predict()``, ...

    Examples
    --------
    >>> import glmmkit as gk
    >>> df = gk.datasets.load("sleepstudy")
    >>> fit = gk.lmer("Reaction ~ Days + (Days | Subject)", data=df)
    >>> round(fit.loglik, 3)
    -871.814
    """
    from .distributed import is_dask_frame

    if is_dask_frame(data):
        from .distributed import lmer_dask

        return lmer_dask(formula, data, reml=reml, weights=weights, offset=offset, residual=residual,
                         dispformula=dispformula, relmat=relmat, data_name=data_name)
    t0 = time.perf_counter()
    reml = check_reml(reml)
    parsed = parse_formula(formula)
    rspec = None
    if residual is not None:
        from .residual import parse_residual

        rspec = parse_residual(residual)
    if not parsed.random and rspec is None and dispformula is None:
        raise FormulaError(
            f"formula {formula!r} has no random-effects term such as (1 | group); "
            "a model without random effects is an ordinary linear model "
            "(or give residual= for a correlated-errors model, nlme's gls)"
        )
    extra = list(() if rspec is None else rspec.columns)
    if dispformula is not None:
        from .frame import _used_variables

        extra += sorted(_used_variables(dispformula if str(dispformula).strip().startswith("~")
                                        else "~ " + str(dispformula), data))
    frame = build_model_frame(parsed, data, weights=weights, offset=offset, extra_columns=tuple(dict.fromkeys(extra)),
                              extra_what=f"residual={residual!r}" if dispformula is None
                              else f"residual={residual!r} / dispformula={dispformula!r}")
    messages = list(frame.messages)
    check_not_constant(frame.y - frame.offset, frame.response_name, None)
    if frame.weights is not None and np.any(frame.weights == 0):
        raise DataError(
            f"{int(np.sum(frame.weights == 0))} row(s) have weight 0; lmer needs positive weights: drop those rows"
        )
    with single_blas_thread():
        X, kept, dropped = drop_aliased_columns(frame.X, frame.x_names)
    if dropped:
        msg = (f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): "
               f"{', '.join(dropped)}")
        warnings.warn(msg, RankDeficiencyWarning, stacklevel=2)
        messages.append(msg)
    structure = build_structure(frame, relmat=relmat)
    check_grouping(structure, frame.nobs, lmm=True)
    resid = None
    if rspec is not None or dispformula is not None:
        from .residual import ResidualModel, VarianceModel, make_residual

        corr = None
        if rspec is not None:
            corr = make_residual(rspec, frame.data)
            corr.layout.check_nested(structure)
        var = None if dispformula is None else VarianceModel(dispformula, frame.data)
        resid = ResidualModel(frame.nobs, variance=var, correlation=corr)

    problem = LmmProblem(frame=frame, structure=structure, X=X, kept=kept, dropped=dropped, reml=reml,
                         data_name=data_name, messages=tuple(messages), residual=resid)
    fit = fit_lmm(problem)
    return finish_fit(fit, t0)
