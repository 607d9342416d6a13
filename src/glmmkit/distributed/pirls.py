"""``glmer`` on a Dask DataFrame by PIRLS: any number of grouping factors, any link; one pass per round.

The general path (``glmm.glmer_dask`` takes it for what the one-factor, canonical-link path cannot):
the rows stay on the workers (``_PirlsPartition``, built once per partition in the fit's global
encoding).  Each PIRLS round is one pass: the driver broadcasts β and b = Λθ u, each partition forms
η = Xβ + offset + Zb, its log-likelihood kernel and, with the working weights W and response z at η,
the crossproducts of [Z | z - Xβ - offset] with √W as row multipliers (``chunk_crossproducts``); a
tree of pairwise sums adds them and ``BlockedSystem.from_crossproducts`` gives the in-memory
engine's system, whose factor the driver solves for the next mode.  The round that evaluates a
trial mode's deviance is the round that brings its system, so a PIRLS iteration (step halving
included) costs one pass per point tried, as ``objective.glmm.GlmmObjective.pirls`` does in memory.
The Laplace deviance at (θ, β) is the penalised deviance at the mode plus log |Λ'Z'WZΛ + I|, W at
the mode.  The outer optimisation is BOBYQA over (θ, β) (the in-memory glmer's derivative-free
stage), the Hessian by differences of the deviance.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import GlmmkitError

__all__ = ["DistributedPirls", "build_partition", "glm_irls_pieces", "rows_info"]


def rows_info(frame, structure, wt) -> dict:
    """The checks' sums of one partition's rows (rank, scaling, response, θ start).

    Parameters
    ----------
    frame : ModelFrame
        The partition's model frame (global encoding).
    structure : ModelStructure
        Its random-effects structure.
    wt : numpy.ndarray
        Prior weights.

    Returns
    -------
    dict
        Summable pieces (``glmm._merge_info`` adds two).
    """
    X, y = frame.X, frame.y
    return {
        "empty": False, "n": frame.nobs, "n_dropped": frame.n_dropped,
        "R": np.linalg.qr(X, mode="r") if X.shape[1] else np.zeros((0, 0)),
        "colsum": X.sum(axis=0), "sumsq": np.einsum("ij,ij->j", X, X),
        "indicator": np.all((X == 0.0) | (X == 1.0), axis=0),
        "y_range": (float(np.min(y[wt > 0])) if np.any(wt > 0) else np.nan,
                    float(np.max(y[wt > 0])) if np.any(wt > 0) else np.nan),
        "wt_max": float(np.max(wt)), "has_trials": bool(np.any(wt != 1.0)),
        # per random term, Σ z² of its columns: the unit-scale θ start (ModelStructure.scaled_theta_start)
        "zsq": [np.sum(np.asarray(t.columns, dtype=float) ** 2, axis=0) for t in structure.terms],
        # per random term of the frame, its columns' sums, squares and 0/1-ness (the slope scaling check)
        "rt_moments": [(np.sum(c, axis=0), np.sum(c * c, axis=0), np.all((c == 0.0) | (c == 1.0), axis=0))
                       for c in (np.asarray(rt.columns, dtype=float) for rt in frame.random)],
    }


class _PirlsPartition:
    """One partition's complete rows in the global encoding (lives on a worker between passes)."""

    def __init__(self, part, plan, family, index):
        from ..validate import check_glmm_weights
        from .crossprod import partition_frame

        self.index = index
        try:
            made = partition_frame(part, plan)
            if made is None:
                self.X = None
                self.info = {"empty": True, "n_dropped": len(part)}
                return
            frame, structure = made
            wt = np.ones(frame.nobs) if frame.weights is None else frame.weights
            family.check_response(frame.y, wt, frame.response_name)
            check_glmm_weights(wt)
        except GlmmkitError as exc:
            raise type(exc)(f"partition {index} of the Dask DataFrame: {exc}") from None
        self.X, self.y, self.wt, self.offset = frame.X, frame.y, wt, frame.offset
        self.blocks = structure.blocks
        self.const = float(np.sum(family.loglik_constant(frame.y, wt)))
        self.info = rows_info(frame, structure, wt)
        self.info["levels"] = np.zeros(0, dtype=np.int64)

    def irls(self, family, beta):
        """X'WX, X'W(z - offset) and the log-likelihood kernel at β (the family's μ start when None)."""
        if self.X is None:
            return None
        return glm_irls_pieces(family, self.X, self.y, self.wt, self.offset, beta)

    def round(self, family, beta, b):
        """One PIRLS round's pieces at (β of all X columns, b): the log-likelihood and the crossproducts
        of [Z | z - Xβ - offset] with the working weights' roots as row multipliers."""
        from ..linalg.blocked import chunk_crossproducts

        if self.X is None:
            return None
        fixed = self.X @ beta
        fixed += self.offset
        eta = fixed.copy()
        for blk in self.blocks:
            bq = b[blk.offset: blk.offset + blk.size].reshape(blk.q, blk.K)
            eta += np.einsum("ik,ik->i", blk.columns, bq[blk.factor.codes])
        with np.errstate(all="ignore"):
            direct = family.loglik_kernel_eta(self.y, eta, self.wt)
            if direct is None:
                direct = family.loglik_kernel(self.y, family.link.inverse(eta), self.wt)
            _, W, z = family.working(eta, self.y, self.wt)
        z -= fixed
        np.sqrt(W, out=W)
        out = chunk_crossproducts(self.blocks, np.empty((eta.shape[0], 0)), z, W)
        out["ll"] = float(np.sum(direct)) + self.const
        return out


def glm_irls_pieces(family, X, y, wt, offset, beta):
    """One partition's pieces of a fixed-effects IRLS step (the GLM start of both Dask GLMM paths).

    Parameters
    ----------
    family : Family
        The family.
    X : numpy.ndarray, shape (n, p)
        The partition's fixed-effects design.
    y, wt, offset : numpy.ndarray, shape (n,)
        Response, prior weights and offset.
    beta : numpy.ndarray or None
        The current β; None starts from the family's μ start.

    Returns
    -------
    dict
        ``A`` = X'WX, ``b`` = X'W(z - offset) and ``ll`` the log-likelihood kernel at β (0 at the start).
    """
    if beta is None:
        eta = family.link.link(family.mu_start(y, wt))
        ll = 0.0
    else:
        eta = X @ beta + offset
        with np.errstate(all="ignore"):
            ll = float(np.sum(family.loglik_kernel(y, family.link.inverse(eta), wt)))
    _, W, z = family.working(eta, y, wt)
    XtW = X.T * W
    return {"A": XtW @ X, "b": XtW @ (z - offset), "ll": ll}


def build_partition(part, plan, family, index):
    """The held partition of the PIRLS path (run on a worker).

    Parameters
    ----------
    part : pandas.DataFrame
        One partition.
    plan : EncodingPlan
        The encoding.
    family : Family
        The family.
    index : int
        The partition's number (named in errors).

    Returns
    -------
    _PirlsPartition
    """
    return _PirlsPartition(part, plan, family, index)


def _round(held, family, beta, b):
    return held.round(family, beta, b)


def _add_round(a, b):
    if a is None:
        return b
    if b is None:
        return a
    out = {}
    for k, v in a.items():
        out[k] = None if v is None else v + b[k]
    return out


class DistributedPirls:
    """The Laplace deviance of a GLMM over held partitions: one pass per PIRLS round.

    Parameters
    ----------
    runner : _Runner
        Computes passes on the fit's client.
    held : list of dask.delayed.Delayed
        The held partitions (``build_partition``).
    structure : ModelStructure
        The random-effects structure on the global levels (no rows).
    family : Family
        The family.
    layout : ParameterLayout
        (θ, β) of the kept columns in the engine's coordinates.
    p_full : int
        Number of columns of X.
    kept : list of int
        The kept columns.
    M : numpy.ndarray, optional
        The scaling of extreme columns: β of the kept columns = M β (engine).
    tol : float
        PIRLS's relative tolerance on the penalised deviance (as the in-memory objective's).
    maxit : int
        Most PIRLS iterations per evaluation.
    """

    def __init__(self, runner, held, structure, family, layout, p_full, kept, M=None, tol=1e-15, maxit=60):
        self.runner, self.held, self.structure, self.family, self.layout = runner, held, structure, family, layout
        self.p_full, self.kept, self.M = p_full, list(kept), M
        self.tol, self.maxit = tol, maxit
        self.u = np.zeros(structure.q)
        self.n_evals = 0
        self.n_rounds = 0
        self.pirls_failures = 0
        self.last = None  # (θ, β, u, system, factor, deviance) of the last mode found

    def _beta_full(self, beta):
        beta = np.asarray(beta, dtype=float)
        if self.M is not None:
            beta = self.M @ beta
        full = np.zeros(self.p_full)
        full[np.asarray(self.kept, dtype=int)] = beta
        return full

    def _pass(self, templates, beta_full, u):
        """(penalised deviance, system) at u: one pass over the partitions."""
        import dask

        from ..linalg.blocked import BlockedSystem
        from .crossprod import tree_reduce

        self.n_rounds += 1
        b = self.structure.b_of(templates, u)
        rd = dask.delayed(_round, pure=True)
        total = tree_reduce([rd(h, self.family, beta_full, b) for h in self.held], _add_round)
        out = self.runner.compute([total], "PIRLS round")[0]
        ll = out.pop("ll")
        dev = -2.0 * ll + float(u @ u)
        if not np.isfinite(dev):
            return np.inf, None
        system = BlockedSystem.from_crossproducts(self.structure.blocks, 0, **out)
        return dev, system

    def pirls(self, theta, beta):
        """The conditional mode at (θ, β), warm-started from the last one.

        Parameters
        ----------
        theta : numpy.ndarray
            Covariance parameters.
        beta : numpy.ndarray
            Fixed effects (engine coordinates).

        Returns
        -------
        tuple
            (Laplace deviance, u, system, factor, converged); the deviance is inf where the mode
            could not be found.
        """
        templates = self.structure.templates(np.asarray(theta, dtype=float))
        beta_full = self._beta_full(beta)
        u = self.u.copy()
        dev, system = self._pass(templates, beta_full, u)
        if system is None:
            u = np.zeros_like(u)
            dev, system = self._pass(templates, beta_full, u)
            if system is None:
                return np.inf, u, None, None, False
        converged = False
        for _ in range(self.maxit):
            fac = system.factor(templates)
            if not fac.ok:
                return np.inf, u, system, fac, False
            u_lead, u_rest, _ = system.solve(templates, fac)
            du = np.concatenate([u_lead.ravel(), u_rest]) - u
            step, accepted = 1.0, None
            for _ in range(30):
                u_try = u + step * du
                dev_try, sys_try = self._pass(templates, beta_full, u_try)
                if sys_try is not None and dev_try <= dev + 1e-12 * abs(dev):
                    accepted = (u_try, dev_try, sys_try)
                    break
                step *= 0.5
            if accepted is None:
                self.pirls_failures += 1
                break
            u, dev_new, system = accepted
            change, dev = dev - dev_new, dev_new
            if change < self.tol * (abs(dev) + 0.1) and step == 1.0:
                converged = True
                break
        fac = system.factor(templates)
        if not fac.ok:
            return np.inf, u, system, fac, False
        logdet = fac.logdet_lead + 2.0 * float(np.sum(np.log(np.diagonal(fac.L)[: system.mz])))
        self.last = (np.array(theta, dtype=float), np.array(beta, dtype=float), u, system, fac, dev)
        return dev + logdet, u, system, fac, converged

    def laplace(self, params):
        """The Laplace deviance at (θ, β) (several passes: one per PIRLS round).

        Parameters
        ----------
        params : numpy.ndarray
            (θ, β) in the layout's order.

        Returns
        -------
        float
            −2 log L (Laplace); inf where the mode could not be found.
        """
        self.n_evals += 1
        prm = self.layout.split(np.asarray(params, dtype=float))
        value, u, _, _, _ = self.pirls(prm.theta, prm.beta)
        if np.isfinite(value):
            self.u = u
        return float(value)
