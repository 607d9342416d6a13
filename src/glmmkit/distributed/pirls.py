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
the mode.  Families with a parameter of their own (nbinom2, Gamma) take Newton rounds on the observed
information instead (``_PirlsPartition.newton_round``), as ``objective.parametric`` in memory.

The exact Laplace gradient (canonical links, and those families in (θ, β, log ψ)) costs one more
pass: the driver ships the entries of M⁻¹ the rows read (the pattern ``inverse_pattern`` collected at
the build) and the partitions return row sums (``_PirlsPartition.gradient``); the fit is L-BFGS-B on
it, as the in-memory ``GradientLaplace``, and BOBYQA where it does not apply (``glmm._fit_pirls``).
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
        "wy": float(np.sum(wt * y)), "w": float(np.sum(wt)),
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
        self.q = structure.q
        self.const = float(np.sum(family.loglik_constant(frame.y, wt)))
        self.info = rows_info(frame, structure, wt)
        self.info["levels"] = np.zeros(0, dtype=np.int64)
        # Z'v for any row vector v as one bincount: every row's random-effect indices and columns
        from ..objective.glmm import random_effect_entries

        self.entries = random_effect_entries(structure)
        self._zt_index = np.concatenate([ui for _, _, ui in self.entries])
        self._zt_column = np.concatenate([np.asarray(self.blocks[bi].columns[:, ci], dtype=float)
                                          for bi, ci, _ in self.entries])
        self._positions = None
        self.info.update(inverse_pattern(self.blocks, self.entries))

    def irls(self, family, beta):
        """X'WX, X'W(z - offset) and the log-likelihood kernel at β (the family's μ start when None)."""
        if self.X is None:
            return None
        return glm_irls_pieces(family, self.X, self.y, self.wt, self.offset, beta)

    def _eta(self, beta, b):
        """(Xβ + offset, η) at β (all X columns) and b."""
        fixed = self.X @ beta
        fixed += self.offset
        eta = fixed.copy()
        for blk in self.blocks:
            bq = b[blk.offset: blk.offset + blk.size].reshape(blk.q, blk.K)
            eta += np.einsum("ik,ik->i", blk.columns, bq[blk.factor.codes])
        return fixed, eta

    def zt(self, v):
        """Z'v (b coordinates, all q random effects) of a row vector v.

        Parameters
        ----------
        v : numpy.ndarray, shape (n,)
            One value per row.

        Returns
        -------
        numpy.ndarray, shape (q,)
        """
        return np.bincount(self._zt_index, self._zt_column * np.tile(v, len(self.entries)), minlength=self.q)

    def newton_round(self, family, beta, b, floor=None):
        """One Newton round's pieces at (β of all X columns, b) for a family with its own parameters
        (``family`` bound to them): the log-likelihood, Z's (s = ∂ℓ/∂η) and the crossproducts of Z with
        the observed information W = -∂²ℓ/∂η² as signed one-sided weights (floored at ``floor``
        when given: a descent direction away from the mode); ``wmax`` = max |W|."""
        from ..linalg.blocked import chunk_crossproducts

        if self.X is None:
            return None
        _, eta = self._eta(beta, b)
        with np.errstate(all="ignore"):
            ll = float(np.sum(family.loglik_kernel(self.y, family.link.inverse(eta), self.wt))) + self.const
            s, W = family.newton_weights(eta, self.y, self.wt)
        if floor is not None:
            W = np.maximum(W, floor)
        n = eta.shape[0]
        out = chunk_crossproducts(self.blocks, np.empty((n, 0)), np.zeros(n), weights=W)
        out["ll"] = ll
        out["zs"] = self.zt(s)
        out["wmax"] = float(np.max(np.abs(W))) if n else 0.0
        return out

    def gradient(self, family, beta, b, templates, inv, parametric):
        """The row sums of one partition that the exact Laplace gradient needs at a mode (``DistributedPirls.gradient``).

        ``inv`` holds M⁻¹ (M = Λ'Z'WZΛ + I) where the rows read it: ``lead`` (the lead block's diagonal
        blocks), ``cross`` and ``rest`` (its values at ``keys_cross`` / ``keys_rest``, the pattern
        ``inverse_pattern`` collected at the build).  Each row's leverage c_i = z̃_i'M⁻¹z̃_i and the
        vectors P = M⁻¹[row, row] z̃ come from gathers (as ``objective.glmm.row_leverages``); what returns
        is summed over rows: Z's, Z'v (v = c dW), X's, X'v, Z'WX, the trace terms Σ W z_r P_c per
        template entry and, per family parameter ψ, Σ (-2ℓ_ψ + c W_ψ) and Z's_ψ.
        """
        if self.X is None:
            return None
        _, eta = self._eta(beta, b)
        with np.errstate(all="ignore"):
            if parametric:
                d = family.eta_derivatives(eta, self.y, self.wt)
                s, W, dW, psi = d.s, d.W, d.dW, d.psi
            else:
                _, s, W, dW = family.canonical_derivatives(eta, self.y, self.wt)
                psi = []
        blocks, entries = self.blocks, self.entries
        lead = blocks[0]
        n1, K1 = lead.size, lead.K
        mz = sum(blk.size for blk in blocks[1:])
        if self._positions is None:  # where each entry pair of every row is in the shipped pattern (fixed per fit)
            self._positions = pattern_positions(entries, n1, mz, inv["keys_cross"], inv["keys_rest"])
        zt = [np.asarray(blocks[bi].columns @ templates[bi])[:, ci] for bi, ci, _ in entries]
        g1 = lead.factor.codes.astype(np.int64)
        lead_flat = np.asarray(inv["lead"]).reshape(-1)
        P = []
        for ei, (bi, ci, _) in enumerate(entries):
            acc = np.zeros(eta.shape[0])
            for ej, (bj, cj, _) in enumerate(entries):
                if bi == 0 and bj == 0:
                    m_ef = lead_flat[g1 * (K1 * K1) + ci * K1 + cj]
                elif bi == 0 or bj == 0:
                    m_ef = inv["cross"][self._positions[ei, ej]]
                else:
                    m_ef = inv["rest"][self._positions[ei, ej]]
                acc += m_ef * zt[ej]
            P.append(acc)
        c = sum(z * Pe for z, Pe in zip(zt, P))
        v = dW * c
        WX = self.X * W[:, None]
        out = {"zs": self.zt(s), "zv": self.zt(v), "xs": self.X.T @ s, "xv": self.X.T @ v,
               "zwx": np.column_stack([self.zt(WX[:, j]) for j in range(WX.shape[1])]) if WX.shape[1]
               else np.zeros((self.q, 0))}
        at = {(bi, ci): k for k, (bi, ci, _) in enumerate(entries)}
        out["trace"] = np.array([float(np.dot(W * np.asarray(blk.columns[:, r], dtype=float), P[at[(bi, cc)]]))
                                 for bi, blk in enumerate(blocks) for r, cc in zip(blk.tpl_rows, blk.tpl_cols)])
        out["psi_rows"] = np.array([float(np.sum(-2.0 * lp + c * Wp)) for lp, _, Wp in psi])
        out["psi_zs"] = np.array([self.zt(sp) for _, sp, _ in psi]).reshape(len(psi), self.q)
        return out

    def start_pieces(self, family, beta, mu):
        """The family's moment-start sums (``start_pieces``) at β (all X columns), or at the constant mean ``mu``."""
        if self.X is None:
            return None
        if beta is None:
            m = np.full(self.y.shape[0], float(mu))
        else:
            m = family.link.inverse(self.X @ beta + self.offset)
        return family.start_pieces(self.y, m, self.wt)

    def round(self, family, beta, b):
        """One PIRLS round's pieces at (β of all X columns, b): the log-likelihood and the crossproducts
        of [Z | z - Xβ - offset] with the working weights' roots as row multipliers."""
        from ..linalg.blocked import chunk_crossproducts

        if self.X is None:
            return None
        fixed, eta = self._eta(beta, b)
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


def _pair_keys(bi, ui, bj, uj, n1, mz):
    """Keys of M⁻¹'s entries (ui, uj) where a row reads them: ("cross", rest row x n1 + lead column) or
    ("rest", rest row x mz + rest column); None for two lead entries (the shipped diagonal blocks)."""
    if bi == 0 and bj == 0:
        return None
    if bi == 0:
        return "cross", (uj - n1) * n1 + ui
    if bj == 0:
        return "cross", (ui - n1) * n1 + uj
    return "rest", (ui - n1) * mz + (uj - n1)


def inverse_pattern(blocks, entries) -> dict:
    """The entries of M⁻¹ outside the lead diagonal blocks that one partition's rows read (the leverages
    of the exact gradient): sorted unique keys, merged over partitions by ``merge_pattern``.

    Parameters
    ----------
    blocks : list of ReBlock
        The partition's blocks (global levels).
    entries : list
        ``objective.glmm.random_effect_entries`` of its structure.

    Returns
    -------
    dict
        ``keys_cross`` (rest row x n1 + lead column) and ``keys_rest`` (rest row x mz + rest column),
        int64 arrays.
    """
    n1 = blocks[0].size
    mz = sum(b.size for b in blocks[1:])
    found = {"cross": [np.zeros(0, dtype=np.int64)], "rest": [np.zeros(0, dtype=np.int64)]}
    for bi, _, ui in entries:
        for bj, _, uj in entries:
            key = _pair_keys(bi, ui, bj, uj, n1, mz)
            if key is not None:
                found[key[0]].append(np.unique(key[1]))
    return {"keys_cross": np.unique(np.concatenate(found["cross"])),
            "keys_rest": np.unique(np.concatenate(found["rest"]))}


def merge_pattern(a: dict, b: dict) -> dict:
    """Two partitions' ``inverse_pattern`` together (sorted unions).

    Parameters
    ----------
    a, b : dict
        ``keys_cross`` and ``keys_rest`` of each.

    Returns
    -------
    dict
        The union of both.
    """
    return {k: np.union1d(a[k], b[k]) for k in ("keys_cross", "keys_rest")}


def pattern_positions(entries, n1, mz, keys_cross, keys_rest) -> dict:
    """For each pair of a row's entries outside the lead block, each row's position in the shipped keys.

    Parameters
    ----------
    entries : list
        ``random_effect_entries`` of the partition's structure.
    n1, mz : int
        Sizes of the lead block and of the other blocks.
    keys_cross, keys_rest : numpy.ndarray
        The fit's merged ``inverse_pattern``.

    Returns
    -------
    dict
        (entry i, entry j) -> int64 positions, one per row.

    Raises
    ------
    DataError
        A row reads an entry the pattern does not hold (the partitions changed between passes).
    """
    from ..exceptions import DataError

    out = {}
    for ei, (bi, _, ui) in enumerate(entries):
        for ej, (bj, _, uj) in enumerate(entries):
            key = _pair_keys(bi, ui, bj, uj, n1, mz)
            if key is None:
                continue
            keys = keys_cross if key[0] == "cross" else keys_rest
            pos = np.minimum(np.searchsorted(keys, key[1]), max(keys.shape[0] - 1, 0))
            if key[1].shape[0] and (keys.shape[0] == 0 or np.any(keys[pos] != key[1])):
                raise DataError("a partition reads random-effect pairs that the build pass did not see; the Dask "
                                "DataFrame changed between passes: persist it or read it again")
            out[ei, ej] = pos
    return out


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


def _newton_round(held, family, beta, b, floor):
    return held.newton_round(family, beta, b, floor)


def _gradient(held, family, beta, b, templates, inv, parametric):
    return held.gradient(family, beta, b, templates, inv, parametric)


def _start_pieces(held, family, beta, mu):
    return held.start_pieces(family, beta, mu)


def _add_round(a, b):
    if a is None:
        return b
    if b is None:
        return a
    out = {}
    for k, v in a.items():
        if k == "wmax":
            out[k] = max(v, b[k])
        else:
            out[k] = None if v is None else v + b[k]
    return out


class DistributedPirls:
    """The Laplace deviance of a GLMM over held partitions, and its exact gradient.

    One pass per PIRLS round (Fisher scoring; for a family with its own parameters, Newton's method
    on the observed information, as ``objective.parametric.ParametricLaplace``), and one more pass per
    gradient (``gradient``).

    Parameters
    ----------
    runner : _Runner
        Computes passes on the fit's client.
    held : list of dask.delayed.Delayed
        The held partitions (``build_partition``).
    structure : ModelStructure
        The random-effects structure on the global levels (no rows).
    family : Family
        The family (a ``ParametricFamily``: its free parameters are the layout's ψ block).
    layout : ParameterLayout
        (θ, β[, ψ]) of the kept columns in the engine's coordinates.
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
    pattern : dict, optional
        The merged ``inverse_pattern`` of the partitions (the gradient needs it).
    """

    def __init__(self, runner, held, structure, family, layout, p_full, kept, M=None, tol=1e-15, maxit=60,
                 pattern=None):
        from ..families.parametric import ParametricFamily

        self.runner, self.held, self.structure, self.family, self.layout = runner, held, structure, family, layout
        self.p_full, self.kept, self.M = p_full, list(kept), M
        self.tol, self.maxit = tol, maxit
        self.pattern = pattern
        self.parametric = isinstance(family, ParametricFamily)
        self.u = np.zeros(structure.q)
        self.n_evals = 0
        self.n_rounds = 0
        self.n_gradients = 0
        self.pirls_failures = 0
        self.last = None  # (θ, β, u, system, factor, deviance) of the last mode found

    def _beta_full(self, beta):
        beta = np.asarray(beta, dtype=float)
        if self.M is not None:
            beta = self.M @ beta
        full = np.zeros(self.p_full)
        full[np.asarray(self.kept, dtype=int)] = beta
        return full

    def family_at(self, prm):
        """The family bound to the ψ block of ``prm`` (the split parameters); the family itself without one.

        Parameters
        ----------
        prm : Parts
            The split parameter vector.

        Returns
        -------
        Family
            A new object for a ``ParametricFamily`` (its own is never changed).
        """
        if not self.parametric:
            return self.family
        from ..objective.predictor import PSI_BOUND

        psi = getattr(prm, "psi", np.zeros(0))
        return self.family.with_psi({k: float(np.clip(psi[j], -PSI_BOUND, PSI_BOUND))
                                     for j, k in enumerate(self.family.free_names)})

    def gradient_applies(self, max_cross: int = 5_000_000) -> bool:
        """Whether ``laplace_and_gradient`` is available: a canonical link or a family with its own
        parameters (the observed information), at most 5,000 non-lead random effects and M⁻¹'s dense
        cross part (non-lead x lead effects, formed on the driver) of at most ``max_cross`` entries.

        Parameters
        ----------
        max_cross : int, default 5_000_000
            The largest dense cross part allowed.

        Returns
        -------
        bool
        """
        if self.pattern is None:
            return False
        if not self.parametric and self.family.canonical_derivatives(np.zeros(1), np.zeros(1), np.ones(1)) is None:
            return False
        blocks = self.structure.blocks
        mz = sum(b.size for b in blocks[1:])
        return mz <= 5_000 and mz * blocks[0].size <= max_cross

    def _pass(self, templates, beta_full, u, family=None, floor=None):
        """(penalised deviance, system, Z's, max |W|) at u: one pass over the partitions (Z's and max |W|
        None for a Fisher-scoring round)."""
        import dask

        from ..linalg.blocked import BlockedSystem
        from .crossprod import tree_reduce

        fam = self.family if family is None else family
        self.n_rounds += 1
        b = self.structure.b_of(templates, u)
        if self.parametric:
            rd = dask.delayed(_newton_round, pure=True)
            parts = [rd(h, fam, beta_full, b, floor) for h in self.held]
        else:
            rd = dask.delayed(_round, pure=True)
            parts = [rd(h, fam, beta_full, b) for h in self.held]
        out = self.runner.compute([tree_reduce(parts, _add_round)], "PIRLS round")[0]
        ll = out.pop("ll")
        zs, wmax = out.pop("zs", None), out.pop("wmax", None)
        dev = -2.0 * ll + float(u @ u)
        if not np.isfinite(dev):
            return np.inf, None, None, None
        system = BlockedSystem.from_crossproducts(self.structure.blocks, 0, **out)
        system._azz = out["Azz"]  # Z_rest'WZ_rest as summed (the gradient's products with Z'WZ)
        return dev, system, zs, wmax

    def pirls(self, theta, beta, family=None):
        """The conditional mode at (θ, β), warm-started from the last one.

        Parameters
        ----------
        theta : numpy.ndarray
            Covariance parameters.
        beta : numpy.ndarray
            Fixed effects (engine coordinates).
        family : Family, optional
            The family bound to its parameters (``family_at``); the objective's own by default.

        Returns
        -------
        tuple
            (Laplace deviance, u, system, factor, converged); the deviance is inf where the mode
            could not be found.
        """
        if self.parametric:
            return self._newton(theta, beta, self.family if family is None else family)
        templates = self.structure.templates(np.asarray(theta, dtype=float))
        beta_full = self._beta_full(beta)
        u = self.u.copy()
        dev, system, _, _ = self._pass(templates, beta_full, u)
        if system is None:
            u = np.zeros_like(u)
            dev, system, _, _ = self._pass(templates, beta_full, u)
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
                dev_try, sys_try, _, _ = self._pass(templates, beta_full, u_try)
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

    def _newton(self, theta, beta, fam):
        """``pirls`` for a family with its own parameters: Newton's method on the observed information
        with step halving (``objective.parametric.newton_mode``'s loop), one pass per point tried; a
        Newton matrix that is not positive definite away from the mode is replaced by W floored from
        below (one more pass), as in memory."""
        from ..objective.parametric import newton_mode

        templates = self.structure.templates(np.asarray(theta, dtype=float))
        beta_full = self._beta_full(beta)
        mz = sum(b.size for b in self.structure.blocks[1:])
        u = self.u.copy()
        at = self._pass(templates, beta_full, u, fam)
        if at[1] is None:
            u = np.zeros_like(u)
            at = self._pass(templates, beta_full, u, fam)
            if at[1] is None:
                return np.inf, u, None, None, False
        dev = at[0]

        def direction(u, at):
            _, system, zs, wmax = at
            fac = system.factor(templates)
            if not fac.random_effects_ok(mz):
                floor = 1e-6 * max(float(wmax), 1e-12)
                system = self._pass(templates, beta_full, u, fam, floor=floor)[1]
                if system is None:
                    return None
                fac = system.factor(templates)
                if not fac.random_effects_ok(mz):
                    return None
            grad_u = self.structure.lambda_t(templates, zs) - u
            return grad_u, system.solve_rhs(templates, fac, grad_u)

        def halve(u, du, dev):
            step = 1.0
            for _ in range(30):
                u_try = u + step * du
                trial = self._pass(templates, beta_full, u_try, fam)
                if trial[1] is not None and trial[0] <= dev + 1e-12 * abs(dev):
                    return step, u_try, trial[0], trial
                step *= 0.5
            self.pirls_failures += 1
            return None

        u, dev, at, converged, _ = newton_mode(u, dev, at, direction, halve, self.tol, self.maxit)
        system = at[1]
        fac = system.factor(templates)
        if not fac.random_effects_ok(mz):
            return np.inf, u, system, fac, False
        logdet = fac.logdet_lead + 2.0 * float(np.sum(np.log(np.diagonal(fac.L)[:mz])))
        self.last = (np.array(theta, dtype=float), np.array(beta, dtype=float), u, system, fac, dev)
        return dev + logdet, u, system, fac, converged

    def laplace(self, params):
        """The Laplace deviance at (θ, β[, ψ]) (several passes: one per PIRLS round).

        Parameters
        ----------
        params : numpy.ndarray
            The parameters in the layout's order.

        Returns
        -------
        float
            −2 log L (Laplace); inf where the mode could not be found.
        """
        self.n_evals += 1
        prm = self.layout.split(np.asarray(params, dtype=float))
        value, u, _, _, _ = self.pirls(prm.theta, prm.beta, self.family_at(prm))
        if np.isfinite(value):
            self.u = u
        return float(value)

    def laplace_and_gradient(self, params):
        """The Laplace deviance and its exact gradient: PIRLS's passes, then one gradient pass.

        Parameters
        ----------
        params : numpy.ndarray
            The parameters in the layout's order.

        Returns
        -------
        value : float
            −2 log L (Laplace); inf where the mode could not be found.
        grad : numpy.ndarray
            Its gradient in ``params`` (NaN with an infinite value).
        """
        self.n_evals += 1
        params = np.asarray(params, dtype=float)
        prm = self.layout.split(params)
        fam = self.family_at(prm)
        value, u, system, fac, _ = self.pirls(prm.theta, prm.beta, fam)
        if not np.isfinite(value):
            return np.inf, np.full(params.shape[0], np.nan)
        self.u = u
        grad = self.gradient(prm.theta, prm.beta, u, system, fac, fam)
        if not np.all(np.isfinite(grad)):
            return np.inf, np.full(params.shape[0], np.nan)
        return float(value), grad

    def warm(self):
        """(get, set) of the warm-start mode for the driver (a copy of u).

        Returns
        -------
        tuple of callable
        """

        def get():
            return self.u.copy()

        def set_(u):
            self.u = u.copy()

        return get, set_

    def gradient(self, theta, beta, u, system, fac, family):
        """The exact gradient of the Laplace deviance at the mode u (one pass), as
        ``objective.glmm.GlmmObjective._gradient_core`` (and ``ParametricLaplace.gradient_at``) in memory.

        The driver forms M⁻¹ on the pattern of Z'Z from the system at the mode
        (``BlockedSystem.inverse_parts``) and ships the entries the rows read (the lead diagonal
        blocks, the cross and non-lead parts at the pattern the build collected); one pass returns
        the row sums ``_PirlsPartition.gradient`` lists.  The rest is on the driver: t = M⁻¹Λ'Z'v,
        and the terms with e = ZΛt as products of those sums with Λt: X'We = (Z'WX)'Λt and
        Z'We = (Z'WZ)Λt, the second from the system's own crossproducts.

        Parameters
        ----------
        theta, beta : numpy.ndarray
            The parameters (engine coordinates) of the mode.
        u : numpy.ndarray
            The mode.
        system, fac
            The system at the mode and its factor.
        family : Family
            The family (bound to its parameters).

        Returns
        -------
        numpy.ndarray
            dD/dθ, dD/dβ (engine coordinates) and dD/dψ, in the layout's order.
        """
        import dask

        from .crossprod import tree_reduce

        st = self.structure
        theta = np.asarray(theta, dtype=float)
        templates = st.templates(theta)
        parts = system.inverse_parts(templates, fac)
        blocks = st.blocks
        n1, mz = blocks[0].size, system.mz
        keys_c, keys_r = self.pattern["keys_cross"], self.pattern["keys_rest"]
        inv = {"lead": parts.lead, "keys_cross": keys_c, "keys_rest": keys_r,
               "cross": parts.cross.reshape(-1)[keys_c] if mz else np.zeros(0),
               "rest": parts.s_inv_at(keys_r // max(mz, 1), keys_r % max(mz, 1)) if mz else np.zeros(0)}
        b = st.b_of(templates, u)
        beta_full = self._beta_full(beta)
        gd = dask.delayed(_gradient, pure=True)
        total = tree_reduce([gd(h, family, beta_full, b, templates, inv, self.parametric) for h in self.held],
                            _add_round)
        self.n_gradients += 1
        out = self.runner.compute([total], "gradient")[0]
        t = system.solve_m(parts, st.lambda_t(templates, out["zv"]))
        bt = st.b_of(templates, t)
        r_s = out["zs"]
        r_c = -2.0 * r_s + out["zv"] - _zwz_times(system, bt)
        g_full = -2.0 * out["xs"] + out["xv"] - out["zwx"].T @ bt
        gb = g_full[np.asarray(self.kept, dtype=int)]
        if self.M is not None:
            gb = self.M.T @ gb
        entry_grads, at = [], 0
        for bi, blk in enumerate(blocks):
            sl = slice(blk.offset, blk.offset + blk.size)
            U, Tt = u[sl].reshape(blk.q, blk.K), t[sl].reshape(blk.q, blk.K)
            Rc, Rs = r_c[sl].reshape(blk.q, blk.K), r_s[sl].reshape(blk.q, blk.K)
            nt = len(blk.tpl_rows)
            tr = out["trace"][at: at + nt]
            at += nt
            entry_grads.append(np.array([float(U[:, c] @ Rc[:, r] + Tt[:, c] @ Rs[:, r]) + 2.0 * tr[k]
                                         for k, (r, c) in enumerate(zip(blk.tpl_rows, blk.tpl_cols))]))
        grad = [st.contract(theta, entry_grads), gb]
        if self.parametric:
            grad.append(out["psi_rows"] + out["psi_zs"] @ bt)
        return np.concatenate(grad)


def _zwz_times(system, x):
    """(Z'WZ) x from a system's crossproducts (A11 per lead level, Az1 and Z_rest'WZ_rest), b coordinates."""
    q1, K1, mz = system.q1, system.K1, system.mz
    n1 = q1 * K1
    x1 = x[:n1].reshape(q1, K1)
    lead = np.einsum("gab,gb->ga", system.A11, x1).ravel()
    if not mz:
        return lead
    xr = x[n1:]
    Az1 = system.Az1
    lead = lead + np.asarray(Az1.T @ xr).ravel()
    rest = np.asarray(Az1 @ x1.ravel()).ravel() + np.asarray(system._azz @ xr).ravel()
    return np.concatenate([lead, rest])
