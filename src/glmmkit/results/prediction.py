"""Linear predictors and simulation: the fitted rows' η, predictions for new data, ``simulate``.

``PredictionMixin`` gives every fit ``predict`` and ``simulate``; the functions
below build η for new rows: the fixed-effects design from the fit's own
formulaic spec, offsets, and each random-effect term's columns times the
predicted effects of the levels it has (zero, or an error, for levels it has not).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..frame import offset_values, term_columns
from ..newdata import fixed_design, term_rows
from ..validate import population_level as _population_level

__all__ = ["PredictionMixin", "add_random_effects", "condvar_frame", "condvar_tables", "fixed_predictor"]


def fixed_predictor(fit, nd: pd.DataFrame) -> np.ndarray:
    """The fixed part of the linear predictor for new rows.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model (an ``LmmFit`` or ``GlmmFit``).
    nd : pandas.DataFrame
        The new rows, with a default index.

    Returns
    -------
    ndarray
        Xβ + offset per row of ``nd``.
    """
    return fixed_design(fit, nd) @ fit._beta + fit._new_offset(nd)


def add_random_effects(fit, nd: pd.DataFrame, eta: np.ndarray, allow_new_levels: bool, terms=None) -> np.ndarray:
    """Add the random-effect terms' z'b to the linear predictor of new rows.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model (an ``LmmFit`` or ``GlmmFit``).
    nd : pandas.DataFrame
        The new rows, with a default index.
    eta : ndarray
        Their linear predictor so far (``fixed_predictor``).
    allow_new_levels : bool
        A level not in the fit contributes 0 instead of raising ``DataError``.
    terms : collection of int, optional
        Indices of the terms to add (all when None).

    Returns
    -------
    ndarray
        ``eta`` plus each term's contribution; NaN where a grouping factor is missing.
    """
    for i, t in enumerate(fit.structure.terms):
        if terms is not None and i not in terms:
            continue
        block = fit.structure.blocks[t.block]
        cols, idx, missing_rows = term_rows(fit, t, nd, allow_new_levels)
        bvals = fit._b[block.offset : block.offset + block.size].reshape(block.q, block.K)[:, t.block_cols]
        contrib = np.einsum("ik,ik->i", cols, bvals[np.maximum(idx, 0)])
        contrib[idx < 0] = 0.0
        contrib[missing_rows] = np.nan
        eta = eta + contrib
    return eta


class PredictionMixin:
    """``predict`` and ``simulate``, and the fitted rows' linear predictor they share.

    The public methods return pandas objects indexed by the data's own row labels (the
    fitted rows: those of ``fit.frame.data``, rows dropped for missing values absent, as R's
    ``na.omit``; new data: ``newdata.index``).  The engine and ``inference/`` use the
    ``_..._array`` methods, which return plain ndarrays in the same row order.
    """

    def condvar_frame(self) -> pd.DataFrame:
        """``condvar`` in long form: one row per grouping factor, level and pair of columns.

        Returns
        -------
        pandas.DataFrame
            Columns group, level, term1, term2, condvar: the lower triangle (diagonal included)
            of each level's conditional covariance matrix; variances where term1 == term2.  The
            same numbers and labels as ``fit.condvar`` (whose level labels are ``fit.ranef``'s).
        """
        return condvar_frame(self)

    @cached_property
    def _z(self):
        if not self.structure.blocks:  # a gls model: no random effects
            import scipy.sparse as sp

            return sp.csr_matrix((self.nobs, 0))
        return self.structure.z_matrix()

    def _eta(self) -> np.ndarray:
        """Conditional linear predictor Xβ + Zb + offset of the fitted rows."""
        return self.frame.X[:, self._x_kept] @ self._beta + self._z @ self._b + self.frame.offset

    def _new_offset(self, nd: pd.DataFrame) -> np.ndarray:
        off = np.zeros(len(nd))
        for expr in self.frame.parsed.offsets:
            off += offset_values(expr, nd)
        return off

    def _row_index(self, newdata=None) -> pd.Index:
        """The row labels of per-row results: the fitted rows' (``frame.data.index``) or ``newdata``'s."""
        return self.frame.data.index if newdata is None else newdata.index

    def _row_series(self, values, newdata=None, name: str = "") -> pd.Series:
        """Per-row ``values`` (in row order) as a Series labelled by :meth:`_row_index`."""
        return pd.Series(np.asarray(values, dtype=float), index=self._row_index(newdata), name=name)

    def _predict_array(self, newdata=None, re_form=None, allow_new_levels=False, type="link") -> np.ndarray:
        """:meth:`predict` without ``se_fit``, as an ndarray in row order (the engine's form)."""
        if type not in ("link", "response"):
            from ..exceptions import ArgumentError

            raise ArgumentError(f"type must be 'link' or 'response', got {type!r}")
        keep = _terms_kept(self, re_form)
        if keep is not None and keep != ():
            return _predict_terms(self, newdata, keep, allow_new_levels)
        population = keep == ()
        if newdata is None:
            if population:
                return self.frame.X[:, self._x_kept] @ self._beta + self.frame.offset
            return self._eta()
        _check_newdata(newdata)
        nd = newdata.reset_index(drop=True)
        eta = fixed_predictor(self, nd)
        if population:
            return eta
        return add_random_effects(self, nd, eta, allow_new_levels)

    def predict(self, newdata=None, re_form=None, allow_new_levels=False, *, se_fit=False, type="link",
                theta_uncertainty=False):
        """Predictions of the linear predictor (the response for an LMM).

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict; the fitted rows when omitted.
        re_form : None, "~0" or a formula of random terms
            None: conditional on the predicted random effects; ``"~0"`` (or ``"NA"``):
            the population level, fixed effects only; ``"~(1 | Subject)"``: only the named
            random terms (lme4's ``re.form = ~(1 | Subject)``), the others at zero.
        allow_new_levels : bool
            Levels not seen in the fit get random effects of zero instead of an error.
        se_fit : bool
            Also return delta-method standard errors (glmmTMB's ``se.fit = TRUE``): a DataFrame
            with columns ``fit`` and ``se_fit``; conditional predictions include the conditional
            variance of the random effects (see :mod:`glmmkit.inference.prediction_se`).
        type : "link" or "response"
            The scale (the same for an LMM).
        theta_uncertainty : bool
            With ``se_fit``: include the uncertainty of the variance parameters θ (and σ), as
            glmmTMB does; False holds them at their estimates (Cov(β̂) and the conditional
            variances only).

        Returns
        -------
        pandas.Series named "predicted", or DataFrame with columns fit and se_fit when ``se_fit``
            Indexed as ``newdata``, or, without it, by the data's labels of the fitted rows (rows
            dropped for missing values absent).  NaN where a needed value of ``newdata`` is missing.
        """
        if se_fit:
            return self._predict_se(newdata, re_form=re_form, type=type, theta_uncertainty=theta_uncertainty,
                                    allow_new_levels=allow_new_levels)
        eta = self._predict_array(newdata, re_form=re_form, allow_new_levels=allow_new_levels, type=type)
        return self._row_series(eta, newdata, "predicted")

    def _predict_se(self, newdata, **kwargs) -> pd.DataFrame:
        from ..inference.prediction_se import predict_se

        if newdata is not None:
            _check_newdata(newdata)
        out = predict_se(self, newdata, **kwargs)
        out.index = self._row_index(newdata)
        return out

    def _simulate_array(self, nsim: int = 1, seed=None, re_form="~0") -> np.ndarray:
        """:meth:`simulate` as an ndarray (nobs, nsim): what the bootstrap and power code use."""
        from ..diagnostics.residuals import simulate_matrix

        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        keep = _terms_kept(self, re_form)
        if keep is not None and keep != ():
            from ..inference.prediction_se import simulate_re_form

            return simulate_re_form(self, int(nsim), rng, keep)
        return simulate_matrix(self, int(nsim), rng, conditional=keep is None)

    def simulate(self, nsim: int = 1, seed=None, re_form="~0", *, as_frame: bool = True):
        """Responses simulated from the fitted model (lme4's ``simulate``).

        Parameters
        ----------
        nsim : int
            Number of simulated responses.
        seed : int or numpy Generator, optional
            Makes the draws reproducible.
        re_form : "~0", None or a formula of random terms, default "~0"
            "~0" (lme4's default ``re.form = NA``): new random effects for each simulation;
            None: condition on the predicted random effects; ``"~(1 | Subject)"``: condition on
            the named terms' predicted effects and draw new ones for the other terms.
        as_frame : bool, default True
            A DataFrame, as lme4's ``simulate``; False: the bare ndarray (nobs, nsim), the same
            numbers for the same seed.

        Returns
        -------
        pandas.DataFrame
            Columns sim_1 .. sim_<nsim>, indexed by the data's labels of the fitted rows (rows
            dropped for missing values absent, as R's na.omit).  On the response's scale as
            fitted (proportions of the weights' trials for binomial data).  An ndarray of shape
            (nobs, nsim) when ``as_frame=False``.
        """
        sims = self._simulate_array(nsim, seed=seed, re_form=re_form)
        if not as_frame:
            return sims
        return pd.DataFrame(sims, index=self._row_index(), columns=[f"sim_{i + 1}" for i in range(sims.shape[1])])


def condvar_tables(fit, arrays: dict) -> dict:
    """The engine's conditional covariances labelled as ``fit.ranef``.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model (an ``LmmFit`` or ``GlmmFit``).
    arrays : dict
        Factor name -> ndarray (levels, K, K).

    Returns
    -------
    dict
        Factor name -> DataFrame with a (level, term) MultiIndex on the rows and the terms as
        columns: the levels and terms of ``fit.ranef[factor]``, in its order.
    """
    out = {}
    for name, C in arrays.items():
        re = fit.ranef[name]
        terms = list(re.columns)
        K = len(terms)
        rows = pd.MultiIndex.from_product([re.index, terms], names=[re.index.name, "term"])
        out[name] = pd.DataFrame(np.asarray(C, dtype=float).reshape(len(re.index) * K, K), index=rows,
                                 columns=pd.Index(terms, name="term"))
    return out


def condvar_frame(fit) -> pd.DataFrame:
    """The conditional covariances of the random effects in long form.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted model (an ``LmmFit`` or ``GlmmFit``).

    Returns
    -------
    pandas.DataFrame
        One row per (factor, level, pair of columns), lower triangle with the diagonal: columns
        group, level, term1, term2, condvar (variances where term1 == term2).
    """
    parts = []
    for name, C in fit._condvar.items():
        re = fit.ranef[name]
        terms = np.asarray(list(re.columns), dtype=object)
        c, r = np.triu_indices(len(terms))  # pairs (c <= r) in column-major lower-triangle order
        G, npair = len(re.index), c.shape[0]
        parts.append(pd.DataFrame({"group": name, "level": np.repeat(re.index.to_numpy(dtype=object), npair),
                                   "term1": np.tile(terms[c], G), "term2": np.tile(terms[r], G),
                                   "condvar": np.asarray(C, dtype=float)[:, r, c].ravel()}))
    if not parts:
        return pd.DataFrame(columns=["group", "level", "term1", "term2", "condvar"])
    return pd.concat(parts, ignore_index=True)


def _check_newdata(newdata) -> None:
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")


def _terms_kept(fit, re_form):
    """None (every random term), () (none) or the kept terms' indices; a partial formula that names
    every term is None."""
    if re_form is None:
        return None
    from ..inference.prediction_se import resolve_re_form

    keep = resolve_re_form(fit, re_form)
    if keep is not None and len(keep) == len(fit.structure.terms):
        return None
    return keep


def _predict_terms(fit, newdata, keep, allow_new_levels):
    """η with only the kept random terms (the fitted rows when ``newdata`` is None)."""
    from ..inference.prediction_se import term_columns_mask

    if newdata is None:
        b = np.where(term_columns_mask(fit, keep), fit._b, 0.0)
        return fit.frame.X[:, fit._x_kept] @ fit._beta + fit._z @ b + fit.frame.offset
    _check_newdata(newdata)
    nd = newdata.reset_index(drop=True)
    return add_random_effects(fit, nd, fixed_predictor(fit, nd), allow_new_levels, terms=keep)
