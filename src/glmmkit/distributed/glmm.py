"""``glmer`` on a Dask DataFrame: one grouping factor, canonical link, Laplace; one pass per evaluation.

With one grouping factor the Laplace deviance is a sum over its levels, and so is its exact gradient
(``objective.single``: each level's mode is a small Newton problem of its own rows).  So each partition,
holding whole levels, builds the in-memory fast path's ``SingleTermLaplace`` of its rows once (held on
its worker between passes) and each evaluation of (θ, β) is one pass: every partition runs its levels'
Newton steps, warm-started from its last modes, and returns its deviance and gradient pieces, which a
tree of pairwise sums adds.  The optimiser (the in-memory strategy's L-BFGS-B policy,
``fitting.driver.lbfgs``) and the Hessian by forward differences of the gradient run on the driver, on
the same function the in-memory fit optimises, so estimates, standard errors, the log-likelihood and
the summary are the in-memory fit's.  A level split across partitions would give each part its own
mode (a wrong answer): such data are shuffled by the grouping factor first, with a message.

Passes: the schema pass, the pass that builds the held partitions (with the rank, scaling and response
checks' sums), the GLM start's IRLS rounds (one each), one per evaluation of the deviance and
gradient, and one that collects the modes.  Per-row results (fitted values, residuals, simulations)
are lazy Dask collections over the partitions.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, DataError, FormulaError, GlmmkitError, NotAvailableError, RankDeficiencyWarning
from ..formula import parse_formula
from ..results import GlmmFit

__all__ = ["glmer_dask", "DistributedGlmmFit", "DistributedGlmmProblem", "RepartitionWarning"]


class RepartitionWarning(UserWarning):
    """The Dask DataFrame was shuffled so that each level of the grouping factor is in one partition."""


class _HeldPartition:
    """One partition's rows as the one-factor Laplace kernel holds them (lives on a worker).

    ``levels`` are the global codes of the levels it holds (the kernel numbers them 0..); ``kernel``
    the ``SingleTermLaplace`` of its rows; ``saved`` the modes at the driver's warm-start tokens.
    """

    def __init__(self, part, plan, family, index):
        from ..frame import GroupingFactor
        from ..objective.single import SingleTermLaplace
        from ..structure import build_structure
        from ..validate import check_glmm_weights
        from .crossprod import partition_frame

        self.index = index
        self.saved = {}
        try:
            made = partition_frame(part, plan)
            if made is None:
                self.kernel, self.info = None, {"empty": True, "n_dropped": len(part)}
                return
            frame, structure = made
            wt = np.ones(frame.nobs) if frame.weights is None else frame.weights
            family.check_response(frame.y, wt, frame.response_name)
            check_glmm_weights(wt)
        except GlmmkitError as exc:
            raise type(exc)(f"partition {index} of the Dask DataFrame: {exc}") from None
        factor = structure.blocks[0].factor
        levels, local = np.unique(factor.codes, return_inverse=True)
        self.levels = levels.astype(np.int64)
        labels = [factor.levels[i] for i in self.levels]
        lf = GroupingFactor(factor.name, local.astype(np.int64), labels)
        random = [dataclasses.replace(rt, factor=lf) for rt in frame.random]
        local_structure = build_structure(dataclasses.replace(frame, random=random))
        X = frame.X
        self.kernel = SingleTermLaplace(local_structure, X, frame.y, wt, frame.offset, family)
        y = frame.y
        self.info = {
            "empty": False, "n": frame.nobs, "n_dropped": frame.n_dropped, "levels": self.levels,
            "R": np.linalg.qr(X, mode="r") if X.shape[1] else np.zeros((0, 0)),
            "colsum": X.sum(axis=0), "sumsq": np.einsum("ij,ij->j", X, X),
            "indicator": np.all((X == 0.0) | (X == 1.0), axis=0),
            "y_range": (float(np.min(y[wt > 0])) if np.any(wt > 0) else np.nan,
                        float(np.max(y[wt > 0])) if np.any(wt > 0) else np.nan),
            "wt_max": float(np.max(wt)), "has_trials": bool(np.any(wt != 1.0)),
            "wy": float(np.sum(wt * y)), "w": float(np.sum(wt)),
            # per random term, Σ z² of its columns: the unit-scale θ start (ModelStructure.scaled_theta_start)
            "zsq": [np.sum(np.asarray(t.columns, dtype=float) ** 2, axis=0) for t in structure.terms],
            # per random term of the frame, its columns' sums, squares and 0/1-ness (the slope scaling check)
            "rt_moments": [(np.sum(c, axis=0), np.sum(c * c, axis=0), np.all((c == 0.0) | (c == 1.0), axis=0))
                           for c in (np.asarray(rt.columns, dtype=float) for rt in frame.random)],
        }

    # ----- the GLM start (IRLS rounds) -----
    def irls(self, family, beta):
        """X'WX, X'W(z - offset) and the log-likelihood kernel at β (at the family's μ start when None)."""
        if self.kernel is None:
            return None
        from .pirls import glm_irls_pieces

        k = self.kernel
        y = np.divide(k.k, k.n, out=np.zeros_like(k.n), where=k.n > 0)
        return glm_irls_pieces(family, k.X, y, k.n, k.offset, beta)

    # ----- one evaluation -----
    def evaluate(self, params, save, restore):
        """(deviance, gradient, failures) of this partition's levels at ``params`` (θ, β of all X columns)."""
        if self.kernel is None:
            return None
        k = self.kernel
        if save is not None:  # the modes at the driver's warm-start token (after its last evaluation)
            if len(self.saved) > 8:
                self.saved.pop(next(iter(self.saved)))
            self.saved[save] = k.u.copy()
        if restore is not None and restore in self.saved:  # absent on a rebuilt partition: start from its modes
            k.u[...] = self.saved[restore]
        f0 = k.failures
        value, grad = k.value_and_grad(np.asarray(params, dtype=float))
        return {"value": value, "grad": grad, "failures": k.failures - f0}

    def hat_pieces(self, family, T, beta):
        """Per level Z_g'WZ_g and Z_g'WX, and X'WX, with the working weights at the modes (``edf``)."""
        if self.kernel is None:
            return None
        k = self.kernel
        nl = len(self.levels)
        codes = np.repeat(np.arange(nl), np.diff(k.gptr))
        U = k.u.reshape(nl, -1)
        eta = k.X @ beta + k.offset + np.einsum("ik,ik->i", k.Zmat, (U @ T.T)[codes])
        wt = k.n
        y = np.divide(k.k, wt, out=np.zeros_like(wt), where=wt > 0)
        W = family.working(eta, y, wt)[1]
        Zw = k.Zmat * W[:, None]
        K, p = k.Zmat.shape[1], k.X.shape[1]
        A11 = np.zeros((nl, K, K))
        G = np.zeros((nl, K, p))
        for a in range(K):
            for c in range(K):
                A11[:, a, c] = np.bincount(codes, Zw[:, a] * k.Zmat[:, c], minlength=nl)
            G[:, a, :] = np.add.reduceat(Zw[:, a, None] * k.X, k.gptr[:-1], axis=0) if len(codes) else 0.0
        return {"levels": self.levels, "A11": A11, "G": G, "Axx": (k.X.T * W) @ k.X}

    def modes(self, restore):
        """(global level codes, their spherical modes u): those saved at the token ``restore`` if any."""
        if self.kernel is None:
            return None
        u = self.saved.get(restore, self.kernel.u) if restore is not None else self.kernel.u
        return {"levels": self.levels, "u": u.reshape(len(self.levels), -1).copy()}


def _build(part, plan, family, index):
    return _HeldPartition(part, plan, family, index)


def _info(held):
    return held.info


def _irls(held, family, beta):
    return held.irls(family, beta)


def _evaluate(held, params, save, restore):
    return held.evaluate(params, save, restore)


def _modes(held, restore):
    return held.modes(restore)


def _hat(held, family, T, beta):
    return held.hat_pieces(family, T, beta)


def _concat_hat(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return {"levels": np.concatenate([a["levels"], b["levels"]]), "A11": np.concatenate([a["A11"], b["A11"]]),
            "G": np.concatenate([a["G"], b["G"]]), "Axx": a["Axx"] + b["Axx"]}


def _add_sums(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return {k: a[k] + b[k] for k in a}


def _merge_info(a, b):
    from .pirls import merge_pattern

    if a.get("empty"):
        return dict(b, n_dropped=a["n_dropped"] + b["n_dropped"])
    if b.get("empty"):
        return dict(a, n_dropped=a["n_dropped"] + b["n_dropped"])
    R = np.vstack([a["R"], b["R"]])
    return {
        "empty": False, "n": a["n"] + b["n"], "n_dropped": a["n_dropped"] + b["n_dropped"],
        "levels": np.concatenate([a["levels"], b["levels"]]),
        "R": np.linalg.qr(R, mode="r") if R.shape[1] else R,
        "colsum": a["colsum"] + b["colsum"], "sumsq": a["sumsq"] + b["sumsq"],
        "indicator": a["indicator"] & b["indicator"],
        "y_range": (np.fmin(a["y_range"][0], b["y_range"][0]), np.fmax(a["y_range"][1], b["y_range"][1])),
        "wt_max": max(a["wt_max"], b["wt_max"]), "has_trials": a["has_trials"] or b["has_trials"],
        "zsq": [za + zb for za, zb in zip(a["zsq"], b["zsq"])],
        "rt_moments": [(sa + sb, qa + qb, ia & ib) for (sa, qa, ia), (sb, qb, ib) in zip(a["rt_moments"],
                                                                                        b["rt_moments"])],
        "wy": a["wy"] + b["wy"], "w": a["w"] + b["w"],
        # the PIRLS path's pattern of M⁻¹ that the rows read (the exact gradient's leverages)
        **(merge_pattern(a, b) if "keys_cross" in a else {}),
    }


class _DistributedLaplace:
    """The one-factor Laplace deviance and gradient over held partitions: one pass per evaluation.

    Parameters (θ, β) are in the engine's coordinates: β of the kept columns, transformed by ``M``
    (the scaling of extreme columns) when given; the partitions see β of all columns of X.
    """

    def __init__(self, runner, held, n_theta, p_full, kept, M=None):
        self.runner, self.held = runner, held
        self.n_theta, self.p_full, self.kept, self.M = n_theta, p_full, list(kept), M
        self.n_evals = 0
        self.failures = 0
        self._token = 0
        self._save = None
        self._restore = None

    def _full(self, params):
        params = np.asarray(params, dtype=float)
        beta = params[self.n_theta:]
        if self.M is not None:
            beta = self.M @ beta
        full = np.zeros(self.n_theta + self.p_full)
        full[: self.n_theta] = params[: self.n_theta]
        full[self.n_theta + np.asarray(self.kept, dtype=int)] = beta
        return full

    def value_and_grad(self, params):
        """The Laplace deviance and its gradient at (θ, β): one pass over the partitions.

        Parameters
        ----------
        params : ndarray
            (θ, β) in the engine's coordinates.

        Returns
        -------
        value : float
            −2 log L (Laplace); inf where a partition's modes overflowed.
        grad : ndarray
            Its gradient (zeros with an infinite value).
        """
        import dask

        from .crossprod import tree_reduce

        self.n_evals += 1
        full = self._full(params)
        save, restore = self._save, self._restore
        self._save = self._restore = None
        ev = dask.delayed(_evaluate, pure=True)
        total = tree_reduce([ev(h, full, save, restore) for h in self.held], _add_sums)
        out = self.runner.compute([total], "evaluation")[0]
        self.failures += int(out["failures"])
        value = float(out["value"])
        g = out["grad"]
        grad = np.empty(np.asarray(params).shape[0])
        grad[: self.n_theta] = g[: self.n_theta]
        gb = g[self.n_theta + np.asarray(self.kept, dtype=int)]
        grad[self.n_theta:] = gb if self.M is None else self.M.T @ gb
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(grad)
        return value, grad

    def value(self, params):
        """The Laplace deviance alone (one pass).

        Parameters
        ----------
        params : ndarray
            (θ, β).

        Returns
        -------
        float
        """
        return self.value_and_grad(params)[0]

    def warm(self):
        """(get, set) of the partitions' modes for the driver, by token: ``get`` marks the modes after
        the last evaluation to be saved by the next pass, ``set`` asks the next pass to start from them.

        Returns
        -------
        tuple of callable
        """

        def get():
            self._token += 1
            self._save = self._token
            return self._token

        def set_(token):
            self._restore = token

        return get, set_


@dataclasses.dataclass(frozen=True)
class DistributedGlmmProblem:
    """A one-factor GLMM on a Dask DataFrame as the fit holds it (no rows).

    Attributes
    ----------
    frame : DistributedFrame
        What the fit knows of the rows.
    structure : ModelStructure
        The random-effects structure on the global levels (no rows).
    family : Family
        The family.
    kept, dropped : list
        Indices of the kept fixed-effect columns, names of those dropped as aliased.
    plan : EncodingPlan
        The encoding (per-row results rebuild each partition's frame with it).
    ddf : dask.dataframe.DataFrame
        The data as fitted (shuffled by the grouping factor where that was needed).
    has_trials : bool
        Whether some row has a weight (binomial trials) other than 1.
    nagq : int
        1 (Laplace).
    data_name : str or None
        Name shown in the summary.
    messages : tuple of str
        Messages from building the model.
    passes : tuple
        (what, seconds) per pass over the partitions.
    submodels : tuple
        Empty (no zero-inflation or dispersion formulas).
    held : list of dask.delayed.Delayed
        The partitions held on the workers (the ``edf`` pass reads them).
    runner : _Runner
        Computes passes on the fit's client.
    """

    frame: object
    structure: object
    family: object
    kept: list
    dropped: list
    plan: object
    ddf: object
    has_trials: bool
    nagq: int = 1
    data_name: str | None = None
    messages: tuple = ()
    passes: tuple = ()
    submodels: tuple = ()
    held: list = dataclasses.field(default_factory=list, repr=False, compare=False)
    runner: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def nobs(self) -> int:
        """Number of rows fitted.

        Returns
        -------
        int
        """
        return self.frame.nobs

    def with_response(self, y):
        """Not available: a new response needs a new pass over the partitions.

        Parameters
        ----------
        y : array-like
            The new response.

        Returns
        -------
        NoReturn
            Always raises NotAvailableError.
        """
        raise NotAvailableError("refit(y=...) of a Dask fit needs the new response as a column: add it with "
                                "ddf.assign(...) and fit again with glmer")

    def fit(self, *args, **kwargs):
        """Not available: fit again with ``glmer`` on the Dask DataFrame.

        Parameters
        ----------
        *args, **kwargs
            Ignored.

        Returns
        -------
        NoReturn
            Always raises NotAvailableError.
        """
        raise NotAvailableError("refit() of a Dask GLMM is not available; call glmer on the Dask DataFrame again")


@dataclasses.dataclass
class _ModeState:
    """The conditional modes (all a Dask fit keeps of PIRLS's state)."""

    u: np.ndarray
    family: object = None
    eta = None
    mu = None


def _glmm_rows(part, shared, kept, beta, family, what, kind):
    from .lmm import _partition_eta

    plan, b_blocks = shared
    frame, _, eta = _partition_eta(part, plan, kept, beta, b_blocks, None)
    if frame is None:
        return pd.Series(np.zeros(0), index=part.index[:0], name=what)
    if what == "link":
        return pd.Series(eta, index=frame.data.index, name=what)
    mu_c = family.link.inverse(eta)
    mu = family.response_mean(mu_c)
    if what == "fitted":
        return pd.Series(mu, index=frame.data.index, name=what)
    y = frame.y
    wt = np.ones(frame.nobs) if frame.weights is None else frame.weights
    if kind == "response":
        vals = y - mu
    elif kind == "pearson":
        trials = (wt,) if getattr(family, "trials_response", False) else ()
        vals = (y - mu) * np.sqrt(wt) / np.sqrt(family.response_variance(mu_c, *trials))
    elif kind == "deviance":
        d = np.maximum(family.deviance_residuals(y, mu_c, wt), 0.0)
        vals = np.sign(y - mu) * np.sqrt(d)
    else:  # working
        vals = (y - mu_c) / family.link.mu_eta(eta)
    return pd.Series(vals, index=frame.data.index, name=what)


def _glmm_simulate(part, shared, kept, beta, family, cols, partition_info=None):
    from .lmm import _partition_eta

    plan, b_sims, entropy = shared
    number = 0 if partition_info is None else int(partition_info["number"])
    frame, structure, fixed = _partition_eta(part, plan, kept, beta, [], number)
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols}, index=part.index[:0])
    wt = np.ones(frame.nobs) if frame.weights is None else frame.weights
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(1, number)))
    out = np.empty((frame.nobs, len(cols)))
    for s in range(len(cols)):
        eta = fixed.copy()
        for blk, (name, bs) in zip(structure.blocks, b_sims):
            eta += np.einsum("ik,ik->i", blk.columns, bs[:, :, s][blk.factor.codes])
        out[:, s] = family.simulate(family.link.inverse(eta), wt, rng)
    return pd.DataFrame(out, index=frame.data.index, columns=cols)


class DistributedGlmmFit(GlmmFit):
    """A GLMM fitted to a Dask DataFrame (``glmer(formula, ddf, family=...)``).

    Estimates, standard errors, θ, the log-likelihood, ``vcov``, ``ranef``, ``varcorr`` and
    ``summary()`` are in memory and equal the in-memory fit's; per-row results (``fitted`` on the
    response scale, ``residuals``, ``predict()`` on the training data, ``simulate``) are lazy Dask
    collections over the data's partitions; methods that need the rows in memory raise
    ``NotAvailableError``.

    Parameters
    ----------
    **kwargs
        As :class:`~glmmkit.results.GlmmFit` (the problem a ``DistributedGlmmProblem``).
    """

    def _b_blocks(self):
        return [(blk.factor.name, self._b[blk.offset: blk.offset + blk.size].reshape(blk.q, blk.K))
                for blk in self.structure.blocks]

    def _lazy_rows(self, what: str, kind: str = "deviance"):
        import dask

        problem = self._problem
        shared = dask.delayed((problem.plan, self._b_blocks()), traverse=False)
        return problem.ddf.map_partitions(_glmm_rows, shared, list(self._x_kept), self._beta.copy(), self.family,
                                          what, kind, meta=pd.Series(dtype=float, name=what))

    def fitted(self):
        """Fitted means E[y | b] (the response scale), lazily, partition by partition.

        Returns
        -------
        dask.dataframe.Series
            Named "fitted", the complete rows of each partition with their index labels.
        """
        return self._lazy_rows("fitted")

    def residuals(self, kind: str = "deviance"):
        """Residuals of the fitted rows, lazily (see :meth:`GlmmFit.residuals` for ``kind``).

        Parameters
        ----------
        kind : {"deviance", "pearson", "response", "working"}
            As for the in-memory fit.

        Returns
        -------
        dask.dataframe.Series
            Named "residuals".
        """
        if kind not in ("deviance", "pearson", "response", "working"):
            raise ArgumentError(f"residuals kind must be 'deviance', 'pearson', 'response' or 'working', got {kind!r}")
        return self._lazy_rows("residuals", kind)

    def predict(self, newdata=None, re_form=None, type="link", **kwargs):
        """Predictions: lazily on the training partitions, or in memory for new pandas rows.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            New rows (in memory); the training data when omitted.
        re_form : None or str
            As :meth:`GlmmFit.predict` (None only on the training rows).
        type : {"link", "response"}
            The scale.
        **kwargs
            As :meth:`GlmmFit.predict` (new rows only).

        Returns
        -------
        dask.dataframe.Series or pandas.Series
            Lazy conditional predictions on the training data, or the in-memory predictions.
        """
        if newdata is None:
            if re_form is not None or kwargs or type not in ("link", "response"):
                raise NotAvailableError("predict(re_form=..., se_fit=..., marginal=...) on a Dask fit's training "
                                        "rows is not available; pass newdata=ddf.compute() (or a part of it)")
            return self._lazy_rows("link" if type == "link" else "fitted")
        return super().predict(newdata, re_form=re_form, type=type, **kwargs)

    def _eta(self):
        raise NotAvailableError("this result needs the fitted rows in memory, which a Dask fit does not hold; "
                                "use fit.fitted() / fit.residuals() (lazy), or fit in memory on ddf.compute()")

    def _residuals_array(self, kind: str = "deviance"):
        return self._eta()

    def _hat_weights(self):
        return self._eta()

    @property
    def _edf_one_factor(self) -> float:
        """Effective degrees of freedom, the trace of the PIRLS hat matrix at the modes (one pass).

        With M_g = T'Z_g'WZ_g T + I per level, F = M⁻¹T'Z'WX and R_X'R_X = X'WX - (Z'WX)'T F:
        trace(H) = q - Σ_g tr(M_g⁻¹) + p - ||F R_X⁻¹||²_F (the sum of the in-memory leverages).

        Returns
        -------
        float
            Between p and p + q.
        """
        if getattr(self, "_edf", None) is None:
            import dask

            from .crossprod import tree_reduce

            pb = self._problem
            held = pb.held
            full = np.zeros(len(pb.frame.x_names))
            full[list(self._x_kept)] = self._beta
            T = self._templates[0]
            hd = dask.delayed(_hat, pure=True)
            pieces = pb.runner.compute([tree_reduce([hd(h, self.family, T, full) for h in held], _concat_hat)],
                                       "edf")[0]
            kept = list(self._x_kept)
            A11, G, Axx = pieces["A11"], pieces["G"][:, :, kept], pieces["Axx"][np.ix_(kept, kept)]
            Mg = np.einsum("ba,gbc,cd->gad", T, A11, T) + np.eye(T.shape[0])
            TG = np.einsum("ba,gbj->gaj", T, G)
            F = np.linalg.solve(Mg, TG)
            S = Axx - np.einsum("gaj,gak->jk", TG, F)
            tr_minv = float(np.trace(np.linalg.inv(Mg), axis1=1, axis2=2).sum())
            q = Mg.shape[0] * Mg.shape[1]
            p = len(kept)
            fit_term = 0.0
            if p:
                L = np.linalg.cholesky(S)
                Y = np.linalg.solve(L, F.reshape(-1, p).T)
                fit_term = float(np.sum(Y * Y))
            self._edf = float(q - tr_minv + p - fit_term)
        return self._edf

    def hatvalues(self):
        """Not available: the leverages are per row (their sum, :attr:`edf`, is available).

        Returns
        -------
        NoReturn
            Always raises NotAvailableError.
        """
        raise NotAvailableError("hatvalues() of a Dask fit is per row and not available; fit.edf (their sum) is, "
                                "or fit in memory on ddf.compute()")

    @property
    def _condvar(self) -> dict:
        """Factor name -> (levels, K, K) conditional covariances at the mode, from the engine's system there:
        the PIRLS path keeps it; the one-factor path takes one pass for each level's M_g = T'Z_g'WZ_g T + I."""
        system = getattr(self._state, "system", None)
        if system is not None:
            return self._condvar_at(system, self._state.factor)
        cached = self.__dict__.get("_condvar_one")
        if cached is None:
            import dask

            from .crossprod import tree_reduce

            pb = self._problem
            full = np.zeros(len(pb.frame.x_names))
            full[list(self._x_kept)] = self._beta
            T = self._templates[0]
            hd = dask.delayed(_hat, pure=True)
            pieces = pb.runner.compute([tree_reduce([hd(h, self.family, T, full) for h in pb.held], _concat_hat)],
                                       "condvar")[0]
            blk = self.structure.blocks[0]
            Mg = np.einsum("ba,gbc,cd->gad", T, pieces["A11"], T) + np.eye(T.shape[0])
            V = np.zeros((blk.q, blk.K, blk.K))
            V[pieces["levels"]] = np.linalg.inv(Mg)
            cached = self.__dict__["_condvar_one"] = {blk.factor.name: np.einsum("ab,gbc,dc->gad", T, V, T)}
        return cached

    @property
    def edf(self) -> float:  # noqa: F811 - the PIRLS path has no per-level pieces held
        """Effective degrees of freedom (one pass; the one-factor path only).

        Returns
        -------
        float
            Between p and p + q; NaN for a fit by the PIRLS path (several grouping factors or a
            non-canonical link), which does not compute it.
        """
        if getattr(self._state, "system", None) is not None:
            # the PIRLS path keeps no per-level pieces on its workers: not computed (NaN), not guessed
            return float("nan")
        return self._edf_one_factor

    def refit(self, y=None, *, nagq=None):
        """Not available for a Dask fit.

        Parameters
        ----------
        y : ignored
            A new response.
        nagq : ignored
            Another method.

        Returns
        -------
        NoReturn
            Always raises NotAvailableError.
        """
        return self._problem.fit() if y is None else self._problem.with_response(y)

    def dispersion_check(self) -> dict | None:
        """Pearson over-dispersion check (one pass over the partitions); see :meth:`GlmmFit.dispersion_check`.

        Returns
        -------
        dict or None
            As the in-memory fit's.
        """
        from scipy.stats import chi2

        if self.family.name not in ("poisson", "binomial"):
            return None
        if self.family.name == "binomial" and not self._problem.has_trials:
            return None
        stat = float(np.sum(self._pearson() ** 2))
        df = self.df_resid
        return {"pearson_chisq": stat, "df": df, "ratio": stat / df if df > 0 else np.nan,
                "p_value": float(chi2.sf(stat, df)) if df > 0 else np.nan}

    def _pearson(self):
        cached = self.__dict__.setdefault("_computed_residuals", {})
        if "pearson" not in cached:
            cached["pearson"] = self.residuals("pearson").compute().to_numpy()
        return cached["pearson"]

    def simulate(self, nsim: int = 1, seed=None, re_form="~0", *, as_frame: bool = True):
        """Responses simulated from the fitted model, lazily, partition by partition.

        New random effects (``re_form="~0"``) are drawn once, here, for every level; each partition
        draws its responses from a generator seeded by ``seed`` and its partition number.

        Parameters
        ----------
        nsim : int
            Number of simulated responses.
        seed : int, optional
            Makes the draws reproducible.
        re_form : "~0" or None, default "~0"
            "~0": new random effects for each simulation; None: condition on the predicted ones.
        as_frame : bool, default True
            Must be True.

        Returns
        -------
        dask.dataframe.DataFrame
            Columns sim_1 .. sim_<nsim> (binomial: proportions of the trials).
        """
        import dask

        if re_form not in ("~0", "~ 0", None) or not as_frame:
            raise NotAvailableError("a Dask fit simulates with re_form='~0' or None as a Dask DataFrame; for "
                                    "other re_form or an ndarray, fit in memory on ddf.compute()")
        nsim = int(nsim)
        if nsim < 1:
            raise ArgumentError(f"nsim must be at least 1, got {nsim}")
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ArgumentError("seed must be an int for a Dask fit (each partition seeds its own generator)")
        root = np.random.SeedSequence(seed)
        rng = np.random.default_rng(root.spawn(1)[0])
        sims = []
        for blk, T in zip(self.structure.blocks, self._templates):
            if re_form is None:
                b = self._b[blk.offset: blk.offset + blk.size].reshape(blk.q, blk.K)
                sims.append((blk.factor.name, np.repeat(b[:, :, None], nsim, axis=2)))
            else:
                u = rng.standard_normal((blk.q, blk.K, nsim))
                sims.append((blk.factor.name, np.einsum("ab,gbs->gas", T, u)))
        problem = self._problem
        shared = dask.delayed((problem.plan, sims, root.entropy), traverse=False)
        cols = [f"sim_{i + 1}" for i in range(nsim)]
        return problem.ddf.map_partitions(_glmm_simulate, shared, list(self._x_kept), self._beta.copy(), self.family,
                                          cols, meta=pd.DataFrame({c: pd.Series(dtype=float) for c in cols}))

    def summary(self):
        """lme4-style summary (the Pearson residuals' quantiles take one pass over the partitions).

        Returns
        -------
        GlmmSummary
            Equal to the in-memory fit's summary.
        """
        from ..summary import GlmmSummary

        return GlmmSummary(_SummaryView(self))


class _SummaryView:
    """The fit as the summary reads it, with the Pearson residuals computed (one pass)."""

    def __init__(self, fit):
        self._fit = fit

    def __getattr__(self, name):
        return getattr(self._fit, name)

    def residuals(self, kind="deviance"):
        if kind == "pearson":
            return self._fit._pearson()
        return self._fit.residuals(kind).compute().to_numpy()


def _refuse(family, nagq, structure, method, kwargs):
    for arg, value in kwargs.items():
        if value not in (None, False):
            raise NotAvailableError(f"{arg}= is not available for glmer on a Dask DataFrame yet; fit in memory on "
                                    "ddf.compute() (or a sample of it)")
    if method not in (None, "laplace"):
        raise NotAvailableError(f"method={method!r} is not available for glmer on a Dask DataFrame; it fits by the "
                                "Laplace approximation (nagq=1)")
    if nagq != 1:
        raise NotAvailableError(f"nagq={nagq} is not available for glmer on a Dask DataFrame yet (Laplace, nagq=1, "
                                "is); fit in memory on ddf.compute() for nAGQ = 0 or adaptive quadrature")
    if not dask_family(family):
        raise NotAvailableError(f"glmer on a Dask DataFrame fits the {', '.join(DASK_FAMILIES)} families (any "
                                f"link); {family.name} needs the data in memory (ddf.compute())")


#: the families glmer fits on a Dask DataFrame (the others' starts or sub-models need the rows in memory)
DASK_FAMILIES = ("binomial", "poisson", "nbinom2", "Gamma")


def dask_family(family) -> bool:
    """Whether glmer on a Dask DataFrame fits ``family``: binomial and Poisson (any link), and the
    negative binomial (NB2) and Gamma with their parameter estimated (any link).

    Parameters
    ----------
    family : Family
        The family.

    Returns
    -------
    bool
    """
    from ..families.gamma import Gamma
    from ..families.negbin import NegativeBinomial2
    from ..families.parametric import ParametricFamily

    if isinstance(family, ParametricFamily):
        return type(family) in (NegativeBinomial2, Gamma)
    return family.name in ("binomial", "poisson")


def choose_strategy(structure, family, nagq) -> str:
    """Which distributed path fits the model: the one place that chooses.

    Parameters
    ----------
    structure : ModelStructure
        The random-effects structure.
    family : Family
        The family (with its link).
    nagq : int
        1 (Laplace).

    Returns
    -------
    str
        ``"one-factor"`` (partitions by level, each worker running its levels' Newton steps, one
        pass per evaluation of the deviance and its gradient) where ``objective.single`` applies
        (one grouping factor, binomial-logit or Poisson-log); ``"pirls"`` (one pass per PIRLS round,
        BOBYQA over (θ, β)) otherwise.
    """
    from ..objective import single

    return "one-factor" if single.applies(structure, family, nagq) else "pirls"


def glmer_dask(formula, data, family="binomial", *, link=None, nagq=1, method=None, weights=None, offset=None,
               data_name=None, client=None, progress=None, **unsupported):
    """Fit a GLMM to a Dask DataFrame by the Laplace approximation (what ``glmer`` runs for one).

    One grouping factor (up to six random effects per level), binomial-logit or Poisson-log: each
    evaluation of the deviance and its exact gradient is one pass over the partitions, every
    partition running the Newton steps of its own levels (see the module docstring).  Anything else
    (several grouping factors, other links, nbinom2 and Gamma) takes the PIRLS path
    (``distributed.pirls``): one pass per PIRLS round, one per exact gradient where there is one.

    Parameters
    ----------
    formula : str
        lme4 formula (binomial: 0/1, a two-level factor, a proportion with ``weights=`` trials, or
        ``cbind(successes, failures)``).
    data : dask.dataframe.DataFrame
        The data.
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"nbinom2"`` or ``"Gamma"`` (``DASK_FAMILIES``); the last two
        estimate their parameter (NB θ, Gamma shape) with (θ, β), as in memory.
    link : str, optional
        Any of the family's links.
    nagq : int, default 1
        1 only (Laplace).
    method : None or "laplace"
        As :func:`glmmkit.glmer`.
    weights, offset : str, optional
        Column names of prior weights (binomial trials) and an offset.
    data_name : str, optional
        Name shown in the summary.
    client : distributed.Client, optional
        As :func:`glmmkit.distributed.lmm.lmer_dask`.
    progress : bool, optional
        A one-line pass counter on stderr (default: when stderr is a terminal).
    **unsupported
        ``glmer``'s other options; given (not None), NotAvailableError.

    Returns
    -------
    DistributedGlmmFit
        The fit (estimates in memory, per-row results lazy).
    """
    import dask

    from ..families import get_family
    from ..fitting import driver
    from ..frame import GroupingFactor, drop_aliased_columns
    from ..fitting.finish import check_grouping, finish_fit
    from ..objective.predictor import LinearPredictor, model_layout
    from ..scaling import GLMM_SCALE_LIMIT
    from ..structure import build_structure
    from ..validate import check_nagq, check_not_constant
    from .crossprod import make_plan, model_columns, tree_reduce
    from .lmm import DistributedFrame, _Runner, _runner_client, _scaling_matrix
    from ..families.parametric import ParametricFamily
    from .pirls import _start_pieces, build_partition
    from .schema import merge_schemas, partition_schema

    t0 = time.perf_counter()
    fam = get_family(family, link, None)
    nagq = check_nagq(1 if method == "laplace" else nagq)
    _refuse(fam, nagq, None, method, unsupported)
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError(f"formula {formula!r} has no random-effects term such as (1 | group)")
    for term in parsed.random:
        if getattr(term, "structure", None) is not None:
            raise NotAvailableError(f"the covariance structure of {term.source} is not available for a Dask "
                                    "DataFrame yet; fit in memory on ddf.compute()")
    meta = data._meta
    used, factor_cols, interactions = model_columns(parsed, meta, weights, offset)
    runner = _Runner(_runner_client(client), progress)
    sch = dask.delayed(partition_schema, pure=True)
    reports = runner.compute([sch(p, used, factor_cols, interactions) for p in data[used].to_delayed()], "schema")
    unknown = {c for c in used if isinstance(meta[c].dtype, pd.CategoricalDtype)
               and "__UNKNOWN_CATEGORIES__" in list(meta[c].cat.categories)}
    schema = merge_schemas(reports, used, factor_cols, interactions, unknown)
    plan = make_plan(parsed, schema, used, factor_cols, interactions, weights, offset, family=fam)
    strategy = choose_strategy(build_structure(plan.prototype), fam, nagq)
    messages = []
    ddf = data[used]
    plan_d = dask.delayed(plan, traverse=False)
    build = dask.delayed(_build if strategy == "one-factor" else build_partition, pure=False)
    info_d = dask.delayed(_info, pure=True)
    for attempt in range(2):
        held = runner.persist([build(p, plan_d, fam, i) for i, p in enumerate(ddf.to_delayed())], "partition")
        info = runner.compute([tree_reduce([info_d(h) for h in held], _merge_info)], "partition")[0]
        if info.get("empty"):
            raise DataError("no complete rows in any partition of the Dask DataFrame")
        levels = info["levels"]
        if strategy == "pirls" or np.unique(levels).shape[0] == levels.shape[0]:
            break
        if attempt:  # pragma: no cover - a shuffle by the factor puts each level in one partition
            raise DataError("levels of the grouping factor are still split across partitions after shuffling")
        cols = list(plan.prototype.random[0].spec.factors)
        msg = (f"levels of the grouping factor {':'.join(cols)} were split across partitions; the Dask DataFrame "
               f"was shuffled by {', '.join(cols)} so that each level's rows are in one partition (write the data "
               "grouped by it, or ddf.shuffle(on=...) once, to avoid this)")
        warnings.warn(msg, RepartitionWarning, stacklevel=3)
        messages.append(msg)
        del held
        ddf = ddf.shuffle(on=cols)
    if info["n_dropped"]:
        messages.insert(0, f"{info['n_dropped']} row(s) dropped because of missing values")
    lo, hi = info["y_range"]
    check_not_constant(np.array([lo, hi]), plan.prototype.response_name, fam)
    _, kept, dropped = drop_aliased_columns(info["R"], plan.x_names)
    if dropped:
        msg = (f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): "
               f"{', '.join(dropped)}")
        warnings.warn(msg, RankDeficiencyWarning, stacklevel=3)
        messages.append(msg)
    made, random = {}, []
    for rt in plan.prototype.random:
        name = rt.factor.name
        if name not in made:
            made[name] = GroupingFactor(name, np.zeros(0, dtype=np.int64), list(plan.factors[name][2]))
        random.append(dataclasses.replace(rt, factor=made[name], columns=rt.columns[:0]))
    frame = DistributedFrame(parsed, meta[used], int(info["n_dropped"]), int(info["n"]), list(plan.x_names),
                             None, weights is not None, random, plan.prototype.fixed_spec,
                             plan.prototype.response_name, messages)
    structure = build_structure(frame)
    check_grouping(structure, frame.nobs, lmm=False)
    names = [plan.x_names[j] for j in kept]
    p_full, p = len(plan.x_names), len(kept)
    # the in-memory glmer's transform of extreme fixed-effect columns (scaling.choose_scaling's rule)
    M = _scaling_matrix(info, kept, names, GLMM_SCALE_LIMIT)
    _check_slopes(plan.prototype.random, info["rt_moments"], frame.nobs, GLMM_SCALE_LIMIT)

    # the GLM start: IRLS rounds of one pass each (step halving as fitting.start.glm_irls)
    irls_d = dask.delayed(_irls, pure=True)
    parametric = isinstance(fam, ParametricFamily)
    start_d = dask.delayed(_start_pieces, pure=True)

    def family_start(beta_user, mu):  # the in-memory fit's moment start of the family's parameters
        full = None
        if beta_user is not None:
            full = np.zeros(p_full)
            full[kept] = beta_user
        pieces = runner.compute([tree_reduce([start_d(h, fam, full, mu) for h in held], _add_sums)], "start")[0]
        return fam.with_values(fam.start_from_pieces(pieces))

    # a family with parameters: its GLM at their moment start from the mean response (fitting.glmm.glm_start)
    irls_fam = family_start(None, info["wy"] / info["w"]) if parametric else fam

    def irls_pass(beta_user):
        full = None
        if beta_user is not None:
            full = np.zeros(p_full)
            full[kept] = beta_user
        out = runner.compute([tree_reduce([irls_d(h, irls_fam, full) for h in held], _add_sums)], "GLM start")[0]
        return out["A"][np.ix_(kept, kept)], out["b"][kept], out["ll"]

    A, b, _ = irls_pass(None)
    beta, ll_old = np.zeros(p), -np.inf
    for _ in range(50):
        try:
            new = np.linalg.solve(A, b)
        except np.linalg.LinAlgError:
            new = np.linalg.lstsq(A, b, rcond=None)[0]
        A_new, b_new, ll_new = irls_pass(new)
        if np.isfinite(ll_old):
            step, t = new - beta, 1.0
            for _ in range(30):
                if np.isfinite(ll_new) and ll_new >= ll_old - 1e-8 * abs(ll_old):
                    break
                t *= 0.5
                new = beta + t * step
                A_new, b_new, ll_new = irls_pass(new)
        if not np.all(np.isfinite(new)):
            break
        done = np.max(np.abs(new - beta)) < 1e-7 * (1.0 + np.max(np.abs(new))) if p else True
        beta, ll_old, A, b = new, ll_new, A_new, b_new
        if done:
            break
    beta0 = beta if M is None else np.linalg.solve(M, beta)
    if strategy == "pirls":
        psi0 = family_start(beta, None).log_params() if parametric else None
        return _fit_pirls(runner, held, structure, fam, frame, info, plan, ddf, kept, dropped, names, M, beta0, A,
                          messages, data_name, t0, psi0)

    obj = _DistributedLaplace(runner, held, structure.n_theta, p_full, kept, M)
    layout = model_layout([LinearPredictor(np.empty((0, p)), np.zeros(0), structure, tuple(names))], fam)
    warm = obj.warm()
    theta0 = _theta_start(structure, [np.sqrt(z / frame.nobs) for z in info["zsq"]],
                          lambda t: obj.value(np.concatenate([t, beta0])))
    res = driver.lbfgs(obj.value_and_grad, layout.join(theta=theta0, beta=beta0), layout, frame.nobs, warm)
    converged = driver.gradient_converged(res.fun, res.success, res.jac, res.x, layout, frame.nobs)
    H, grad = driver.hessian_from_gradient(obj.value_and_grad, res.x, warm, g0=res.jac, layout=layout)
    # the modes at the estimates: the Hessian's probes moved them, and its last step restored the
    # token of the modes at x for the next pass
    restore, obj._restore = obj._restore, None
    if restore is None:
        obj.value_and_grad(res.x)
    modes = runner.compute([tree_reduce([dask.delayed(_modes, pure=True)(h, restore) for h in held],
                                        _concat_modes)], "modes")[0]
    runner.done()
    blk = structure.blocks[0]
    u = np.zeros((blk.q, blk.K))
    u[modes["levels"]] = modes["u"]
    u = u.ravel()
    x, theta, beta_e, cov_all, vcov, hessian_pd = _user_scale(res.x, H, M, layout, p)
    from ..results import FitInfo

    message = str(res.message)
    if obj.failures:
        converged = False
        message = f"the Newton steps of {obj.failures} level evaluation(s) did not converge"
    if not (np.all(np.isfinite(vcov)) and np.all(np.diag(vcov) > 0)):
        converged, message = False, "standard errors are not finite at the estimates (the Hessian is not positive definite)"
        messages.append(message)
    info_fit = FitInfo("L-BFGS-B (exact Laplace gradient, one grouping factor)", int(obj.n_evals), bool(converged),
                       message, driver.on_boundary(res.x, layout), messages=list(messages), restarts=[])
    info_fit.hessian_positive_definite = hessian_pd
    info_fit.gradient_norm = driver.free_gradient_norm(grad, res.x, layout)
    if M is not None:
        info_fit.rescaled = [names[j] for j in np.flatnonzero(np.diag(M) != 1.0)]
    info_fit.pirls_failures = obj.failures
    problem = DistributedGlmmProblem(frame=frame, structure=structure, family=fam, kept=kept, dropped=dropped,
                                     plan=plan, ddf=ddf, has_trials=bool(info["has_trials"]), data_name=data_name,
                                     messages=tuple(messages), passes=tuple(runner.times), held=held,
                                     runner=runner)
    fit = DistributedGlmmFit(problem=problem, state=_ModeState(u), theta=theta, beta=beta_e, vcov=vcov,
                             loglik=-0.5 * float(res.fun), info=info_fit, family=fam, objective=obj,
                             param_cov=cov_all, estimates=x, estimates_cov=cov_all)
    info_fit.passes = _pass_counts(runner.times)
    info_fit.distributed = {"strategy": "one-factor", "passes": len(runner.times)}
    return finish_fit(fit, t0)


def _fit_pirls(runner, held, structure, fam, frame, info, plan, ddf, kept, dropped, names, M, beta0, A, messages,
               data_name, t0, psi0=None):
    """The general path's fit: L-BFGS-B on the exact Laplace gradient where it applies (a canonical link,
    or a family with its own parameters: ψ optimised alongside), as the in-memory ``GradientLaplace`` /
    ``ParametricLaplaceFit``, the Hessian by differences of that gradient; otherwise (or when L-BFGS-B
    does not pass the gradient test) BOBYQA over (θ, β[, ψ]) on the PIRLS Laplace deviance, the
    Hessian by differences of the deviance and Newton steps on it (``pirls``)."""
    from ..fitting import driver
    from ..fitting.finish import finish_fit
    from ..objective.predictor import LinearPredictor, model_layout
    from ..optimize import minimize_bobyqa
    from ..results import FitInfo
    from .pirls import DistributedPirls

    p = len(kept)
    layout = model_layout([LinearPredictor(np.empty((0, p)), np.zeros(0), structure, tuple(names))], fam)
    pattern = {k: info[k] for k in ("keys_cross", "keys_rest")} if "keys_cross" in info else None
    obj = DistributedPirls(runner, held, structure, fam, layout, len(plan.x_names), kept, M, pattern=pattern)
    starts = {} if psi0 is None else {"psi": np.asarray(psi0, dtype=float)}
    x_fixed = layout.join(theta=structure.theta_start(), beta=beta0, **starts)

    def at_theta(t):
        x = x_fixed.copy()
        x[layout.slice("theta")] = t
        return x

    theta0 = _theta_start(structure, [np.sqrt(z / frame.nobs) for z in info["zsq"]],
                          lambda t: obj.laplace(at_theta(t)))
    x0 = at_theta(theta0)
    restarts = []
    gradient = obj.gradient_applies()
    x = None
    if gradient:
        warm = obj.warm()
        lb = driver.lbfgs(obj.laplace_and_gradient, x0, layout, frame.nobs, warm, value=obj.laplace)
        if driver.gradient_converged(lb.fun, lb.success, lb.jac, lb.x, layout, frame.nobs):
            x = np.asarray(lb.x, dtype=float).copy()
            H, grad = driver.hessian_from_gradient(obj.laplace_and_gradient, x, warm, g0=lb.jac, layout=layout)
            optimizer = "L-BFGS-B (exact Laplace gradient; one pass per PIRLS round and per gradient)"
            res_converged, res_message = True, str(lb.message)
        else:  # BOBYQA from where it stopped, as the in-memory strategies fall back
            restarts.append({"optimizer": "L-BFGS-B", "loglik": -0.5 * float(lb.fun), "converged": False,
                             "message": str(lb.message)})
            if np.isfinite(lb.fun):
                x0 = np.asarray(lb.x, dtype=float)
    if x is None:
        # first steps: θ's as the in-memory stage 2, β's the GLM's standard errors (engine coordinates), ψ 0.1
        try:
            cov_glm = np.linalg.inv(A)
            if M is not None:
                Mi = np.linalg.inv(M)
                cov_glm = Mi @ cov_glm @ Mi.T
            se0 = np.sqrt(np.maximum(np.diag(cov_glm), 0.0))
        except np.linalg.LinAlgError:
            se0 = np.full(p, 0.1)
        step = layout.join(theta=np.maximum(0.1 * np.abs(layout.split(x0).theta), 0.05),
                           beta=np.where(np.isfinite(se0), np.maximum(se0, 1e-3), 0.1),
                           **({"psi": np.full(len(psi0), 0.1)} if psi0 is not None else {}))
        if psi0 is not None:  # the in-memory ParametricLaplaceFit's fallback: the layout's steps
            step = layout.step
        res = minimize_bobyqa(obj.laplace, x0, layout.lower, upper=layout.upper, initial_step=step)
        x = np.asarray(res.x, dtype=float).copy()
        if gradient and psi0 is not None:  # as in memory: the Hessian from the exact gradient
            H, grad = driver.hessian_from_gradient(obj.laplace_and_gradient, x, obj.warm(), layout=layout)
        else:
            H, grad = driver.hessian_from_values(obj.laplace, x, layout=layout)
            # BOBYQA stops with a gradient ~1e-4 where the in-memory fit's is ~1e-6 (fixed effects ~1e-5 apart)
            x, H, grad, _ = driver.newton_polish(obj.laplace, x, H, grad, layout, maxit=2, fx=res.fun)
        optimizer = "nlopt BOBYQA (PIRLS Laplace deviance, one pass per PIRLS round)"
        if restarts:
            optimizer = "L-BFGS-B (exact Laplace gradient), then " + optimizer
        res_converged, res_message = bool(res.converged), str(res.message)
    n_opt = int(obj.n_evals)
    prm = layout.split(x)
    fam_x = obj.family_at(prm)
    dev, u, system, fac, pirls_ok = obj.pirls(prm.theta, prm.beta, fam_x)
    runner.done()
    x, theta, beta_e, cov_all, vcov, hessian_pd = _user_scale(x, H, M, layout, p)
    converged, message = res_converged and bool(pirls_ok), res_message
    if not pirls_ok:
        message = "PIRLS did not converge at the estimates"
    if obj.pirls_failures:
        messages.append(f"the step halving of {obj.pirls_failures} PIRLS round(s) ran out")
    if not np.isfinite(dev):
        converged, message = False, "the Laplace deviance is not finite at the estimates"
    if not (np.all(np.isfinite(vcov)) and np.all(np.diag(vcov) > 0)):
        converged, message = False, "standard errors are not finite at the estimates (the Hessian is not positive definite)"
        messages.append(message)
    info_fit = FitInfo(optimizer, n_opt, converged, message, driver.on_boundary(x, layout), messages=list(messages),
                       restarts=restarts)
    info_fit.hessian_positive_definite = hessian_pd
    info_fit.gradient_norm = driver.free_gradient_norm(grad, x, layout)
    if M is not None:
        info_fit.rescaled = [names[j] for j in np.flatnonzero(np.diag(M) != 1.0)]
    info_fit.pirls_failures = obj.pirls_failures
    problem = DistributedGlmmProblem(frame=frame, structure=structure, family=fam, kept=kept, dropped=dropped,
                                     plan=plan, ddf=ddf, has_trials=bool(info["has_trials"]), data_name=data_name,
                                     messages=tuple(messages), passes=tuple(runner.times), held=held,
                                     runner=runner)
    state = _ModeState(u)
    state.system, state.factor = system, fac
    psi = layout.split(x).psi if "psi" in layout else np.zeros(0)
    n_psi = psi.shape[0]
    conditional = slice(0, layout.slice("beta").stop)  # (θ, β) of the conditional mean
    fit = DistributedGlmmFit(problem=problem, state=state, theta=theta, beta=beta_e, vcov=vcov,
                             loglik=-0.5 * float(dev), info=info_fit, family=fam_x,
                             family_psi=psi if n_psi else None,
                             family_psi_cov=(layout.block("psi", cov_all) if cov_all is not None
                                             else np.full((n_psi, n_psi), np.nan)) if n_psi else None,
                             objective=obj, param_cov=cov_all[conditional, conditional] if cov_all is not None
                             else None, estimates=x, estimates_cov=cov_all)
    info_fit.passes = _pass_counts(runner.times)
    rounds = info_fit.passes.get("PIRLS round", {"count": 0, "seconds": 0.0})
    grads = info_fit.passes.get("gradient", {"count": 0, "seconds": 0.0})
    info_fit.distributed = {"strategy": "pirls", "passes": len(runner.times), "pirls_rounds": rounds["count"],
                            "gradient_passes": grads["count"], "deviance_evaluations": int(obj.n_evals),
                            "exact_gradient": bool(gradient and not restarts),
                            "seconds_per_round": rounds["seconds"] / max(rounds["count"], 1)}
    return finish_fit(fit, t0)


def _user_scale(x, H, M, layout, p):
    """The estimates and their covariance (from the deviance's Hessian H) in the user's columns:
    β = M β_engine and (θ, β)'s covariance through M (M None: the columns were not rescaled).

    Parameters
    ----------
    x : numpy.ndarray
        The estimates in the engine's scale, ``layout`` order.
    H : numpy.ndarray
        The deviance's Hessian at ``x``.
    M : numpy.ndarray or None
        The fixed-effects columns' rescaling.
    layout : ParameterLayout
        The parameters' blocks.
    p : int
        Number of fixed effects.

    Returns
    -------
    tuple
        ``(x, theta, beta, cov_all, vcov, hessian_pd)``: a new x in the user's scale, its θ and β, the
        covariance of all parameters (None where H is singular), β's block of it (NaN then) and whether
        H was positive definite.
    """
    from ..fitting import driver

    x = np.asarray(x, dtype=float).copy()
    prm = layout.split(x)
    theta, beta = prm.theta, prm.beta
    cov_all, hessian_pd = driver.covariance_from_hessian(H)
    if M is not None:
        B = np.eye(x.shape[0])
        B[layout.slice("beta"), layout.slice("beta")] = M
        beta = M @ beta
        x[layout.slice("beta")] = beta
        cov_all = None if cov_all is None else B @ cov_all @ B.T
    vcov = layout.block("beta", cov_all) if cov_all is not None else np.full((p, p), np.nan)
    return x, theta, beta, cov_all, vcov, hessian_pd


def _check_slopes(random, moments, n, limit):
    """NotAvailableError for a random slope on a column the in-memory fit would centre or scale
    (``scaling._extreme_columns``): that transform of the random terms is not done here."""
    for rt, (s, q, ind) in zip(random, moments):
        mean, rms = s / n, np.sqrt(q / n)
        sd = np.sqrt(np.maximum(q / n - mean**2, 0.0))
        extreme = (rms > limit) | ((rms < 1.0 / limit) & (rms > 0))
        extreme |= (sd > 0) & (rms > limit * sd)
        extreme &= ~ind & (sd > 0)
        bad = [nm for nm, e in zip(rt.names, extreme) if e and nm != "(Intercept)"]
        if bad:
            raise NotAvailableError(
                f"the random slope on {', '.join(bad)} in ({' + '.join(rt.names)} | {rt.factor.name}) has a large "
                f"magnitude or offset (mean {mean[list(rt.names).index(bad[0])]:.4g}); glmer on a Dask DataFrame "
                "does not rescale random-effect columns: centre and scale it first "
                "(ddf.assign(x_c=(ddf.x - m) / s)) and use that column")


def _theta_start(structure, rms, deviance_at):
    """``fitting.start.theta_start`` with the random-term columns' rms from the partitions' sums."""
    start = structure.theta_start()
    scaled = np.concatenate([np.zeros(0)] + [np.asarray(t.structure.scaled_start(r), dtype=float)
                                             for t, r in zip(structure.terms, rms)])
    if np.array_equal(start, scaled):
        return start
    with np.errstate(all="ignore"):
        f_start, f_scaled = deviance_at(start), deviance_at(scaled)
    if np.isfinite(f_scaled) and (not np.isfinite(f_start) or f_scaled < f_start - 0.1 * abs(f_start)):
        return scaled
    return start


def _concat_modes(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return {"levels": np.concatenate([a["levels"], b["levels"]]), "u": np.concatenate([a["u"], b["u"]])}


def _pass_counts(times) -> dict:
    """Passes by kind: {"evaluation": {"count": n, "seconds": s}, ...}."""
    out = {}
    for what, sec in times:
        rec = out.setdefault(what, {"count": 0, "seconds": 0.0})
        rec["count"] += 1
        rec["seconds"] += float(sec)
    return out
