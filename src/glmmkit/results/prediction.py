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

__all__ = ["PredictionMixin", "add_random_effects", "fixed_predictor"]


def fixed_predictor(fit, nd: pd.DataFrame) -> np.ndarray:
    """Xβ + offset for the rows of ``nd`` (a DataFrame with a default index)."""
    return fixed_design(fit, nd) @ fit._beta + fit._new_offset(nd)


def add_random_effects(fit, nd: pd.DataFrame, eta: np.ndarray, allow_new_levels: bool, terms=None) -> np.ndarray:
    """``eta`` plus every random-effect term's z'b for the rows of ``nd``: 0 for a level not in the
    fit (a ``DataError`` unless ``allow_new_levels``), NaN where a grouping factor is missing.
    ``terms``: indices of the terms to add (all when None)."""
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
    """``predict`` and ``simulate``, and the fitted rows' linear predictor they share."""

    def condvar_frame(self) -> pd.DataFrame:
        """``condvar`` labelled: a long DataFrame with columns group, level, term1, term2, condvar.

        Returns
        -------
        pandas.DataFrame
            One row per grouping factor, level and pair of random-effect columns (lower triangle).
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
            with columns ``fit`` and ``se_fit`` indexed as ``newdata``; conditional predictions
            include the conditional variance of the random effects (see
            :mod:`glmmkit.inference.prediction_se`).
        type : "link" or "response"
            The scale (the same for an LMM).
        theta_uncertainty : bool
            With ``se_fit``: include the uncertainty of the variance parameters θ (and σ), as
            glmmTMB does; False holds them at their estimates (Cov(β̂) and the conditional
            variances only).

        Returns
        -------
        ndarray, or DataFrame with columns fit and se_fit when ``se_fit``
            NaN where a needed value of ``newdata`` is missing.
        """
        if se_fit:
            from ..inference.prediction_se import predict_se

            return predict_se(self, newdata, re_form=re_form, type=type, theta_uncertainty=theta_uncertainty,
                              allow_new_levels=allow_new_levels)
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
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        nd = newdata.reset_index(drop=True)
        eta = fixed_predictor(self, nd)
        if population:
            return eta
        return add_random_effects(self, nd, eta, allow_new_levels)

    def simulate(self, nsim: int = 1, seed=None, re_form="~0", *, as_frame: bool = False):
        """Responses simulated from the fitted model (lme4's ``simulate``).

        Parameters
        ----------
        nsim : int
        seed : int or numpy Generator, optional
        re_form : "~0", None or a formula of random terms, default "~0"
            "~0" (lme4's default ``re.form = NA``): new random effects for each simulation;
            None: condition on the predicted random effects; ``"~(1 | Subject)"``: condition on
            the named terms' predicted effects and draw new ones for the other terms.

        as_frame : bool
            Return a DataFrame with columns sim_1 .. sim_n indexed as the fitted rows of the data
            (rows dropped for missing values absent, as R's na.omit), as lme4's ``simulate``.

        Returns
        -------
        ndarray, shape (nobs, nsim), or DataFrame when ``as_frame``
            On the response's scale as fitted (proportions of the weights' trials for binomial data).
        """
        if as_frame:
            sims = self.simulate(nsim, seed=seed, re_form=re_form)
            return pd.DataFrame(sims, index=self.frame.data.index,
                                columns=[f"sim_{i + 1}" for i in range(sims.shape[1])])
        from ..diagnostics.residuals import simulate_matrix

        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        keep = _terms_kept(self, re_form)
        if keep is not None and keep != ():
            from ..inference.prediction_se import simulate_re_form

            return simulate_re_form(self, int(nsim), rng, keep)
        return simulate_matrix(self, int(nsim), rng, conditional=keep is None)


def condvar_frame(fit) -> pd.DataFrame:
    """The conditional covariances of the random effects labelled, one row per (factor, level, pair of
    columns): columns group, level, term1, term2, condvar (variances where term1 == term2)."""
    rows = []
    for blk in fit.structure.blocks:
        C = fit.condvar[blk.factor.name]
        related = C.shape[1] == 1 and getattr(blk.terms[0].structure, "kind", "") == "relmat"
        levels = blk.terms[0].structure.levels if related else blk.factor.levels
        names = ["(Intercept)"] if related else list(blk.names)
        for g, lev in enumerate(levels):
            for c in range(len(names)):
                for r in range(c, len(names)):
                    rows.append((blk.factor.name, lev, names[r] if r == c else names[c], names[r], C[g, r, c]))
    return pd.DataFrame(rows, columns=["group", "level", "term1", "term2", "condvar"])


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
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
    nd = newdata.reset_index(drop=True)
    return add_random_effects(fit, nd, fixed_predictor(fit, nd), allow_new_levels, terms=keep)
