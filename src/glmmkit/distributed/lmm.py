"""``lmer`` on a Dask DataFrame: two passes over the partitions, then a fit that never touches the rows.

Pass 1 (``schema.py``) learns the types and levels; pass 2 (``crossprod.py``) forms each partition's
crossproducts of [Z X y] in that one encoding and sums them on the workers (a tree of pairwise
sums).  The rank check (pivoted R of X, from the stacked partitions' R factors), the scaling check
(column sums and sums of squares) and the fit itself read only those sums: the same
``BlockedSystem`` the in-memory fit builds from its rows (``BlockedSystem.from_crossproducts``),
so estimates, standard errors, the log-likelihood and the summary are the in-memory fit's.

A GLMM fit plugs in the same way: each PIRLS round is one pass of ``partition_crossproducts``
with the working response and the square roots of the working weights as row multipliers
(``chunk_crossproducts(..., sqrt_w=...)``), the blocked factor solves for the new modes, and the
next pass reads them (β, b) to form the next working weights.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..exceptions import (DataError, DistributedError, FormulaError, GlmmkitError, NotAvailableError,
                          RankDeficiencyWarning)
from ..formula import parse_formula
from ..results import LmmFit

__all__ = ["lmer_dask", "DistributedLmmFit", "DistributedLmmProblem", "DistributedFrame"]

_LOCAL_CLIENT = None


def _runner_client(client):
    """The client to run on: the one given, the current one, none under a local Dask scheduler
    setting (``dask.config.set(scheduler="sync")``), else a LocalCluster started once."""
    global _LOCAL_CLIENT
    if client is not None:
        return client
    import dask

    if dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded", "threads", "threading",
                                              "processes", "multiprocessing"):
        return None
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        pass
    if _LOCAL_CLIENT is None or _LOCAL_CLIENT.status != "running":
        from distributed import Client, LocalCluster

        _LOCAL_CLIENT = Client(LocalCluster(processes=False))
    return _LOCAL_CLIENT


class _Runner:
    """Computes delayed objects on the chosen client; a client that goes away is a DistributedError.

    Every pass is computed with ``retries`` (a task lost with a worker, or failing on one, runs again:
    it costs a round, not the fit); ``passes`` counts them, and a one-line counter on stderr shows
    them when stderr is a terminal.
    """

    #: how often a failed task of a pass is run again before the pass (and the fit) fails
    RETRIES = 3

    def __init__(self, client, progress=None):
        import sys

        self.client = client
        self.times = []
        self.passes = 0
        self.progress = bool(progress if progress is not None else getattr(sys.stderr, "isatty", lambda: False)())

    def _where(self) -> str:
        if self.client is None:
            return "the local Dask scheduler"
        try:
            return f"the Dask scheduler at {self.client.scheduler.address}"
        except Exception:
            return "the Dask scheduler"

    def _tick(self, what: str, seconds: float):
        self.passes += 1
        self.times.append((what, seconds))
        if self.progress:
            import sys

            sys.stderr.write(f"\rglmmkit dask: pass {self.passes} ({what}, {seconds:.2f} s)\x1b[K")
            sys.stderr.flush()

    def done(self):
        """End the progress line (a newline after the counter).

        Returns
        -------
        None
        """
        if self.progress and self.passes:
            import sys

            sys.stderr.write("\n")
            sys.stderr.flush()

    def _check(self):
        if self.client.status not in ("running", "newly-created"):
            raise DistributedError(f"the Dask client is {self.client.status} ({self._where()}); no fit was made: "
                                   "start a client (distributed.Client(...)) or pass --scheduler ADDRESS")

    def compute(self, objs: list, what: str) -> list:
        import dask

        t0 = time.perf_counter()
        if self.client is None:
            out = list(dask.compute(*objs))
            self._tick(what, time.perf_counter() - t0)
            return out
        self._check()
        try:
            out = list(self.client.gather(self.client.compute(objs, retries=self.RETRIES)))
        except GlmmkitError:
            raise
        except Exception as exc:
            raise DistributedError(f"the {what} pass on {self._where()} failed ({type(exc).__name__}: {exc}); "
                                   "no fit was made: check that the scheduler and its workers are running") from exc
        self._tick(what, time.perf_counter() - t0)
        return out

    def persist(self, objs: list, what: str) -> list:
        """Objects held on the workers between passes (recomputed from the data if a worker is lost).

        Parameters
        ----------
        objs : list of dask.delayed.Delayed
            What to hold.
        what : str
            Named in errors.

        Returns
        -------
        list of dask.delayed.Delayed
            The held objects (in memory here under a local scheduler).
        """
        import dask

        if self.client is None:
            return list(dask.persist(*objs))
        self._check()
        try:
            return list(self.client.persist(objs, retries=self.RETRIES))
        except Exception as exc:
            raise DistributedError(f"the {what} pass on {self._where()} failed ({type(exc).__name__}: {exc}); "
                                   "no fit was made: check that the scheduler and its workers are running") from exc


@dataclass
class DistributedFrame:
    """What a distributed fit knows of its rows (a ``ModelFrame`` without the rows).

    Attributes
    ----------
    parsed : ParsedFormula
        The parsed formula.
    data : pandas.DataFrame
        An empty frame with the used columns (the Dask frame's meta).
    n_dropped : int
        Rows dropped for missing values.
    nobs : int
        Complete rows fitted.
    x_names : list of str
        The fixed-effect columns (before aliased columns are dropped).
    weights : None
        Prior weights are not held (``has_weights`` says whether there are any).
    has_weights : bool
        Whether the fit has prior weights.
    random : list of RandomTermData
        The random terms with the global grouping factors (no rows).
    fixed_spec : object
        The fixed design's spec (prediction on new data).
    response_name : str
        The response as written.
    messages : list of str
        Notes from building the model.
    offset : None
        Not held.
    """

    parsed: object
    data: pd.DataFrame
    n_dropped: int
    nobs: int
    x_names: list
    weights: object
    has_weights: bool
    random: list
    fixed_spec: object
    response_name: str
    messages: list
    offset: object = None


def _pieces_at(pieces: dict, idx: list, M: np.ndarray | None, p_full: int) -> dict:
    """The crossproducts of the kept X columns (``idx``), transformed to ``X M`` when M is given."""
    sel = list(idx) + [p_full]
    G = pieces["G"][:, sel, :]
    Axx = pieces["Axx"][np.ix_(sel, sel)]
    Azx = None if pieces["Azx"] is None else pieces["Azx"][:, sel]
    if M is not None:
        Mf = np.eye(len(sel))
        Mf[:-1, :-1] = M
        G = np.einsum("ji,gjk->gik", Mf, G)
        Axx = Mf.T @ Axx @ Mf
        Azx = None if Azx is None else Azx @ Mf
    return {"A11": pieces["A11"], "G": G, "Axx": Axx, "Azz": pieces["Azz"], "Azx": Azx, "Az1": pieces["Az1"],
            "n": pieces["n"]}


def _scaling_matrix(pieces: dict, kept: list, names: list, limit: float):
    """``scaling.rescale_columns``'s M from the column sums and sums of squares (None: nothing to do)."""
    n = pieces["n"]
    p = len(kept)
    if n < 2 or p == 0:
        return None
    mean = pieces["colsum"][kept] / n
    rms = np.sqrt(pieces["sumsq"][kept] / n)
    sd = np.sqrt(np.maximum(pieces["sumsq"][kept] / n - mean**2, 0.0))
    indicator = pieces["indicator"][kept]
    intercept = names.index("(Intercept)") if "(Intercept)" in names else None
    extreme = (rms > limit) | ((rms < 1.0 / limit) & (rms > 0))
    if intercept is not None:
        extreme |= (sd > 0) & (rms > limit * sd)
        extreme &= sd > 0
        extreme[intercept] = False
    else:
        extreme &= rms > 0
    extreme &= ~indicator
    if not extreme.any():
        return None
    M = np.eye(p)
    cols = np.flatnonzero(extreme)
    if intercept is not None:
        M[intercept, cols] = -mean[cols] / sd[cols]
        M[cols, cols] = 1.0 / sd[cols]
    else:
        M[cols, cols] = 1.0 / rms[cols]
    return M


@dataclass(frozen=True)
class DistributedLmmProblem:
    """An LMM on a Dask DataFrame, held as its summed crossproducts (what ``refit`` reuses).

    Attributes
    ----------
    frame : DistributedFrame
        What the fit knows of the rows.
    structure : ModelStructure
        The random-effects structure on the global levels (no rows).
    pieces : dict
        The summed crossproducts of all columns of X.
    kept, dropped : list
        Indices of the kept fixed-effect columns and names of those dropped as aliased.
    reml : bool
        REML or ML.
    plan : EncodingPlan
        The encoding (per-row results rebuild each partition's frame with it).
    ddf : dask.dataframe.DataFrame
        The data (per-row results map over its partitions).
    data_name : str or None
        Name shown in the summary.
    messages : tuple of str
        Messages from building the model.
    passes : dict
        Seconds per pass over the partitions.
    """

    frame: object
    structure: object
    pieces: dict
    kept: list
    dropped: list
    reml: bool
    plan: object
    ddf: object
    data_name: str | None = None
    messages: tuple = ()
    passes: tuple = ()
    residual = None

    def objective(self, reml=None, M=None):
        """The profiled (RE)ML objective from the crossproducts (of ``X M`` when M is given).

        Parameters
        ----------
        reml : bool, optional
            REML or ML; the problem's own by default.
        M : numpy.ndarray, shape (p, p), optional
            A column transformation of the kept X.

        Returns
        -------
        LmmObjective
            Evaluates without touching the rows.
        """
        from ..linalg.blocked import BlockedSystem
        from ..objective.lmm import LmmObjective

        pc = _pieces_at(self.pieces, self.kept, M, len(self.frame.x_names))
        system = BlockedSystem.from_crossproducts(self.structure.blocks, len(self.kept), **pc)
        return LmmObjective.from_system(self.structure, system, pc["n"], len(self.kept), self.pieces["log_w"],
                                        reml=self.reml if reml is None else bool(reml))

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
                                "ddf.assign(...) and fit again with lmer")

    def fit(self, start=None):
        """Fit this problem from its crossproducts.

        Parameters
        ----------
        start : numpy.ndarray, optional
            θ to start from (default lme4's start).

        Returns
        -------
        DistributedLmmFit
            A new fit.
        """
        return _fit(self, start)


def _fit(problem: DistributedLmmProblem, start=None):
    from .._threads import single_blas_thread
    from ..fitting import driver
    from ..fitting.lmm import _check_identified
    from ..objective.layout import covariance_layout
    from ..optimize import minimize_bobyqa, minimize_with_restarts
    from ..results import FitInfo
    from ..scaling import SCALE_LIMIT

    from .start import start_from_pieces

    structure = problem.structure
    names = [problem.frame.x_names[j] for j in problem.kept]
    M = _scaling_matrix(problem.pieces, problem.kept, names, SCALE_LIMIT)
    with single_blas_thread():
        objective = problem.objective(M=M)
        if start is None:
            theta0, step = start_from_pieces(problem.plan.start, structure, problem.pieces, problem.kept)
            res = minimize_with_restarts(objective, theta0, structure.theta_lower, upper=structure.theta_upper,
                                         initial_step=step, alt_start=structure.theta_start())
        else:
            res = minimize_bobyqa(objective, np.asarray(start, dtype=float), structure.theta_lower,
                                  upper=structure.theta_upper, initial_step=0.1)
            res.restarts = []
        info = FitInfo(res.optimizer, res.n_evals, res.converged, res.message,
                       driver.on_boundary(res.x, covariance_layout(structure)), messages=list(problem.messages),
                       restarts=res.restarts)
        fit = DistributedLmmFit(frame=problem.frame, structure=structure, objective=objective, theta=res.x, info=info,
                                x_kept=problem.kept, dropped_columns=problem.dropped, data_name=problem.data_name,
                                problem=problem)
        if M is not None:
            fit._beta = M @ fit._beta
            fit._vcov = M @ fit._vcov @ M.T
            if problem.reml:
                fit.loglik += float(np.linalg.slogdet(M)[1])
            fit._objective = problem.objective()
            fit.optimizer_info.rescaled = [fit.x_names[j] for j in np.flatnonzero(np.diag(M) != 1.0)]
    fit.optimizer_info.passes = dict(problem.passes)
    _check_identified(fit)
    return fit


def _edf_from_system(objective, structure, theta) -> float:
    """trace(H) from the blocked system (see ``DistributedLmmFit.edf``)."""
    from scipy.linalg import solve_triangular

    system = objective.system
    templates = structure.templates(theta)
    fac = objective.factor(theta)
    mz, p, K1, q1 = system.mz, system.p, system.K1, system.q1
    tr_minv = float(sum(np.einsum("gaa->", blk) for blk in system.u_condvar(templates, fac)))
    q = q1 * K1 + mz
    if p == 0:
        return q - tr_minv
    T1 = templates[0]
    lead = np.einsum("ba,gjb->gaj", T1, system.G[:, :p, :]).reshape(q1 * K1, p)  # T1' Z_g'X per level
    cols = []
    for j in range(p):
        rest = system._lambda_rest(templates, system.Arr[:mz, mz + j].copy(), transpose=True) if mz else np.zeros(0)
        cols.append(system.solve_rhs(templates, fac, np.concatenate([lead[:, j], rest])))
    F = np.column_stack(cols)
    Lxx = np.tril(fac.L[mz : mz + p, mz : mz + p])
    Y = solve_triangular(Lxx, F.T, lower=True)
    return float(q - tr_minv + p - np.sum(Y * Y))


def _partition_eta(part, plan, kept, beta, b_blocks, index):
    """(complete rows' frame, structure, η = Xβ + offset + Σ Z b over ``b_blocks``) of one partition;
    (None, None, None) without complete rows."""
    from .crossprod import partition_frame

    made = partition_frame(part, plan)
    if made is None:
        return None, None, None
    frame, structure = made
    eta = frame.X[:, kept] @ beta + frame.offset
    for blk, (name, bq) in zip(structure.blocks, b_blocks):
        if blk.factor.name != name:  # the engine order is fixed by the global levels: a changed model
            raise DataError(f"partition {index}: the random-effects blocks differ from the fit's")
        eta += np.einsum("ik,ik->i", blk.columns, bq[blk.factor.codes])
    return frame, structure, eta


def _partition_rows(part, shared, kept, beta, sigma, what, kind):
    plan, b_blocks = shared
    frame, _, eta = _partition_eta(part, plan, kept, beta, b_blocks, None)
    if frame is None:
        return pd.Series(np.zeros(0), index=part.index[:0], name=what)
    if what == "fitted":
        vals = eta
    else:
        vals = frame.y - eta
        if kind != "response":
            if frame.weights is not None:
                vals = vals * np.sqrt(frame.weights)
            if kind != "pearson":
                vals = vals / sigma
    return pd.Series(vals, index=frame.data.index, name=what)


def _partition_simulate(part, shared, kept, beta, sigma, cols, partition_info=None):
    """Simulated responses of one partition: Xβ + offset + Z b_sim (b_sim drawn for all levels once, on
    the driver) + σ ε (ε from a generator seeded by the root seed and the partition's number)."""
    plan, b_sims, entropy = shared
    number = 0 if partition_info is None else int(partition_info["number"])
    frame, structure, fixed = _partition_eta(part, plan, kept, beta, [], number)
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols}, index=part.index[:0])
    out = np.repeat(fixed[:, None], len(cols), axis=1)
    for blk, (name, bs) in zip(structure.blocks, b_sims):
        if blk.factor.name != name:
            raise DataError(f"partition {number}: the random-effects blocks differ from the fit's")
        out += np.einsum("ik,iks->is", blk.columns, bs[blk.factor.codes])
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(1, number)))
    noise = sigma * rng.standard_normal(out.shape)
    if frame.weights is not None:
        noise /= np.sqrt(frame.weights)[:, None]
    return pd.DataFrame(out + noise, index=frame.data.index, columns=cols)


class DistributedLmmFit(LmmFit):
    """A linear mixed model fitted to a Dask DataFrame (``lmer(formula, ddf)``).

    Estimates, standard errors, θ, σ, the log-likelihood, ``vcov``, ``ranef``, ``condvar``,
    ``varcorr`` and ``summary()`` are in memory and equal the in-memory fit's; per-row results
    (``fitted``, ``residuals``, ``predict()`` on the training data) are lazy Dask Series over the
    data's partitions; methods that need the rows in memory raise ``NotAvailableError``.

    Parameters
    ----------
    **kwargs
        As :class:`~glmmkit.results.LmmFit` (the problem a ``DistributedLmmProblem``).
    """

    def _b_blocks(self):
        out = []
        for blk in self.structure.blocks:
            out.append((blk.factor.name, self._b[blk.offset: blk.offset + blk.size].reshape(blk.q, blk.K)))
        return out

    def _lazy_rows(self, what: str, kind: str = "response"):
        import dask

        problem = self._problem
        shared = dask.delayed((problem.plan, self._b_blocks()), traverse=False)  # one key, not walked per partition
        return problem.ddf.map_partitions(
            _partition_rows, shared, list(self._x_kept), self._beta.copy(), self.sigma, what, kind,
            meta=pd.Series(dtype=float, name=what))

    def fitted(self):
        """Conditional fitted values Xβ + Zb + offset, lazily, partition by partition.

        Returns
        -------
        dask.dataframe.Series
            Named "fitted", the complete rows of each partition with their index labels.
        """
        return self._lazy_rows("fitted")

    def residuals(self, kind: str = "response"):
        """Residuals of the fitted rows, lazily (see :meth:`LmmFit.residuals` for ``kind``).

        Parameters
        ----------
        kind : {"response", "pearson", "scaled", "normalized"}
            As for the in-memory fit ("normalized" is "scaled": no residual structure here).

        Returns
        -------
        dask.dataframe.Series
            Named "residuals".
        """
        from ..exceptions import ArgumentError

        if kind not in ("response", "pearson", "scaled", "normalized", "normalised"):
            raise ArgumentError(
                f"residuals kind must be 'response', 'pearson', 'scaled' or 'normalized', got {kind!r}")
        return self._lazy_rows("residuals", kind)

    def predict(self, newdata=None, **kwargs):
        """Predictions: lazily on the training partitions, or in memory for new pandas rows.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            New rows (in memory); the training data when omitted.
        **kwargs
            As :meth:`LmmFit.predict`.

        Returns
        -------
        dask.dataframe.Series or pandas.Series
            Lazy conditional predictions on the training data, or the in-memory predictions.
        """
        if newdata is None:
            if kwargs.get("re_form", None) is not None or kwargs.get("se_fit"):
                raise NotAvailableError("predict(re_form=..., se_fit=...) on a Dask fit's training rows is not "
                                        "available; pass newdata=ddf.compute() (or a part of it)")
            return self.fitted()
        return super().predict(newdata, **kwargs)

    def _eta(self):
        raise NotAvailableError("this result needs the fitted rows in memory, which a Dask fit does not hold; "
                                "use fit.fitted() / fit.residuals() (lazy), or fit in memory on ddf.compute()")

    def _residuals_array(self, kind: str = "response"):
        return self._eta()

    def _residual_noise(self, rng, n_sim: int):
        return self._eta()

    def simulate(self, nsim: int = 1, seed=None, re_form="~0", *, as_frame: bool = True):
        """Responses simulated from the fitted model, lazily, partition by partition.

        New random effects (``re_form="~0"``, lme4's default) are drawn once, here, for every level
        (they are shared by the partitions); each partition draws its residual noise from a
        generator seeded by ``seed`` and its partition number, so the result is reproducible.

        Parameters
        ----------
        nsim : int
            Number of simulated responses.
        seed : int, optional
            Makes the draws reproducible.
        re_form : "~0" or None, default "~0"
            "~0": new random effects for each simulation; None: condition on the predicted ones.
        as_frame : bool, default True
            Must be True (a Dask fit's simulations are a Dask DataFrame).

        Returns
        -------
        dask.dataframe.DataFrame
            Columns sim_1 .. sim_<nsim>, the complete rows of each partition with their labels.
        """
        import dask

        from ..exceptions import ArgumentError

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
                sims.append((blk.factor.name, self.sigma * np.einsum("ab,gbs->gas", T, u)))
        problem = self._problem
        shared = dask.delayed((problem.plan, sims, root.entropy), traverse=False)
        cols = [f"sim_{i + 1}" for i in range(nsim)]
        return problem.ddf.map_partitions(
            _partition_simulate, shared, list(self._x_kept), self._beta.copy(), self.sigma, cols,
            meta=pd.DataFrame({c: pd.Series(dtype=float) for c in cols}))

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
    def edf(self) -> float:
        """Effective degrees of freedom, the trace of the hat matrix, from the crossproducts alone.

        With M = Λ'Z'WZΛ + I, F = M⁻¹Λ'Z'WX and R_X the fixed-effects block of the factor,
        trace(H) = q - trace(M⁻¹) + p - ||F R_X⁻¹||²_F (the sum of ``inference.hat``'s leverages).

        Returns
        -------
        float
            Between p and p + q.
        """
        if getattr(self, "_edf", None) is None:
            self._edf = _edf_from_system(self._objective, self.structure, self._theta)
        return self._edf

    def summary(self):
        """lme4-style summary (the scaled residuals' quantiles take one pass over the partitions).

        Returns
        -------
        LmmSummary
            Equal to the in-memory fit's summary.
        """
        from ..summary import LmmSummary

        return LmmSummary(_SummaryView(self))


class _SummaryView:
    """The fit as the summary reads it, with the scaled residuals computed (one pass)."""

    def __init__(self, fit):
        self._fit = fit

    def __getattr__(self, name):
        return getattr(self._fit, name)

    def residuals(self, kind="response"):
        cached = self._fit.__dict__.setdefault("_computed_residuals", {})
        if kind not in cached:
            cached[kind] = self._fit.residuals(kind).compute().to_numpy()
        return cached[kind]


def lmer_dask(formula, data, *, reml=True, weights=None, offset=None, data_name=None, client=None,
              residual=None, dispformula=None, relmat=None):
    """Fit a linear mixed model to a Dask DataFrame by REML or ML (what ``lmer`` runs for one).

    Parameters
    ----------
    formula : str
        lme4 formula.
    data : dask.dataframe.DataFrame
        The data, e.g. from ``dask.dataframe.read_parquet``.
    reml : bool, default True
        REML or maximum likelihood.
    weights, offset : str, optional
        Column names of prior weights and an offset.
    data_name : str, optional
        Name shown in the summary.
    client : distributed.Client, optional
        The client to run on; default the current one, none under a local scheduler setting
        (``dask.config.set(scheduler="sync")``), else a LocalCluster started once.
    residual, dispformula, relmat : None
        Not available on Dask frames (NotAvailableError when given).

    Returns
    -------
    DistributedLmmFit
        The fit (estimates in memory, per-row results lazy).
    """
    import dask

    from ..fitting.finish import check_grouping, finish_fit
    from ..structure import build_structure
    from ..validate import check_not_constant, check_reml
    from .crossprod import combine, make_plan, model_columns, partition_crossproducts, tree_reduce
    from .schema import merge_schemas, partition_schema

    t0 = time.perf_counter()
    for arg, name in ((residual, "residual"), (dispformula, "dispformula"), (relmat, "relmat")):
        if arg is not None:
            raise NotAvailableError(f"{name}= is not available for a Dask DataFrame yet; fit in memory on "
                                    "ddf.compute() (or a sample of it)")
    reml = check_reml(reml)
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError(f"formula {formula!r} has no random-effects term such as (1 | group)")
    for term in parsed.random:
        if getattr(term, "structure", None) is not None:
            raise NotAvailableError(f"the covariance structure of {term.source} is not available for a Dask "
                                    "DataFrame yet; fit in memory on ddf.compute()")
    meta = data._meta
    used, factor_cols, interactions = model_columns(parsed, meta, weights, offset)
    runner = _Runner(_runner_client(client))
    parts = data[used].to_delayed()
    sch = dask.delayed(partition_schema, pure=True)
    reports = runner.compute([sch(p, used, factor_cols, interactions) for p in parts], "schema")
    unknown = {c for c in used if isinstance(meta[c].dtype, pd.CategoricalDtype)
               and "__UNKNOWN_CATEGORIES__" in list(meta[c].cat.categories)}
    schema = merge_schemas(reports, used, factor_cols, interactions, unknown)
    plan = make_plan(parsed, schema, used, factor_cols, interactions, weights, offset)
    from .start import start_kind

    plan = dataclasses.replace(plan, start=start_kind(build_structure(plan.prototype)))
    cp = dask.delayed(partition_crossproducts, pure=True)
    # one graph key for the plan: passed as is, dask would walk its arrays and lists once per partition
    plan_d = dask.delayed(plan, traverse=False)
    total = tree_reduce([cp(p, plan_d, i) for i, p in enumerate(parts)], combine)
    pieces = runner.compute([total], "crossproducts")[0]
    if pieces.get("empty"):
        raise DataError("no complete rows in any partition of the Dask DataFrame")

    messages = []
    if pieces["n_dropped"]:
        messages.append(f"{pieces['n_dropped']} row(s) dropped because of missing values")
    lo, hi = pieces["y_range"]
    check_not_constant(np.array([lo, hi]), plan.prototype.response_name, None)
    if pieces["zero_w"]:
        raise DataError(f"{pieces['zero_w']} row(s) have weight 0; lmer needs positive weights: drop those rows")
    from ..frame import drop_aliased_columns

    _, kept, dropped = drop_aliased_columns(pieces["R"], plan.x_names)
    if dropped:
        msg = (f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): "
               f"{', '.join(dropped)}")
        warnings.warn(msg, RankDeficiencyWarning, stacklevel=3)
        messages.append(msg)

    from .crossprod import GroupingFactor

    made, random = {}, []
    for rt in plan.prototype.random:
        name = rt.factor.name
        if name not in made:
            made[name] = GroupingFactor(name, np.zeros(0, dtype=np.int64), list(plan.factors[name][2]))
        random.append(dataclasses.replace(rt, factor=made[name], columns=rt.columns[:0]))
    frame = DistributedFrame(parsed, meta[used], int(pieces["n_dropped"]), int(pieces["n"]), list(plan.x_names),
                             None, weights is not None, random, plan.prototype.fixed_spec,
                             plan.prototype.response_name, messages)
    structure = build_structure(frame)
    check_grouping(structure, frame.nobs, lmm=True)
    problem = DistributedLmmProblem(frame=frame, structure=structure, pieces=pieces, kept=kept, dropped=dropped,
                                    reml=reml, plan=plan, ddf=data[used], data_name=data_name,
                                    messages=tuple(messages), passes=tuple(runner.times))
    fit = problem.fit()
    return finish_fit(fit, t0)
