"""PIRLS and the Laplace / adaptive Gauss-Hermite deviance of a GLMM.

Given θ (and β for the Laplace and AGQ objectives), penalised iteratively
reweighted least squares finds the conditional mode û of the spherical random
effects u (b = Λθ u) by Fisher scoring on

    pdev(u) = -2 Σ log p(y_i | η_i) + ||u||²,    η = Xβ + offset + ZΛθ u.

Each iteration is one weighted penalised least-squares solve, done by the same
blocked Cholesky as the LMM (``linalg.BlockedSystem`` with the working weights
and response), with step halving when pdev does not decrease.  Then

    Laplace:  -2 log L ≈ pdev(û) + log |Λ'Z'WZΛ + I|          (W at û)
    nAGQ = 0: the same at β̂(θ) found inside PIRLS (β joins u, unpenalised)
    AGQ:      the integral over each level's random effects by a product
              Gauss-Hermite rule centred at û and scaled by the curvature there
              (one grouping factor only, any number of terms on it).

The log-likelihood has all constants (binomial coefficients, log y!), so Laplace
and AGQ values of one model compare (lme4 drops them at nAGQ > 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..linalg import BlockedFactor, BlockedSystem, make_system
from ..linalg.choose import choose_engine
from .agq import level_nodes
from .predictor import LinearPredictor, model_layout

__all__ = ["GlmmObjective", "PirlsState"]


@dataclass
class PirlsState:
    """The conditional mode and what comes with it.

    Attributes
    ----------
    u : ndarray, shape (q,)
        Spherical random effects at the mode (engine order).
    beta : ndarray
        Fixed effects (estimated inside PIRLS for nAGQ = 0, else as given).
    eta, mu : ndarray, shape (n,)
        The linear predictor and the conditional mean at the mode.
    pdev : float
        Penalised deviance -2 Σ log p(y | η) + ||u||² at the mode.
    logdet : float
        log |Λ'Z'WZΛ + I| with W at the mode.
    system, factor
        The weighted PLS system and its factor at the mode (for conditional
        variances and the fixed-effects covariance).
    converged : bool
        Whether PIRLS (or Newton's method) met its tolerance.
    iterations : int
        Iterations taken (0 for a state built at a known mode).
    family : Family or None
        The family the mode was found with (bound to its parameters for a parametric family);
        None means the objective's own.
    """

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    pdev: float
    logdet: float
    system: BlockedSystem
    factor: BlockedFactor
    converged: bool
    iterations: int
    #: the family the mode was found with (bound to its parameters for a parametric family)
    family: object = None

    @property
    def laplace(self) -> float:
        """The Laplace deviance at the mode, −2 log L ≈ pdev + logdet.

        Returns
        -------
        float
        """
        return self.pdev + self.logdet


def random_effect_entries(structure) -> list:
    """Per random-effect column of every row: (block, component, index in u), lead block first.

    Parameters
    ----------
    structure : ModelStructure
        The model's random-effects structure.

    Returns
    -------
    list of (int, int, ndarray of int64)
        One entry per block and column: the block index, the column within the block, and each
        row's index of that effect in u (shape (n,)).
    """
    out = []
    for bi, blk in enumerate(structure.blocks):
        for c in range(blk.K):
            out.append((bi, c, blk.offset + blk.factor.codes.astype(np.int64) * blk.K + c))
    return out


#: one-block models with more columns than this take their leverages by batched products
LEVERAGE_MATRIX_MIN_K = 4


def row_leverages(structure, parts, templates, entries=None):
    """c_i = z̃_i' M⁻¹ z̃_i (z̃_i = Λ'z_i, M = Λ'Z'WZΛ + I) for every row, from M⁻¹ on the pattern of
    Z'Z (``BlockedSystem.inverse_parts``), and per entry the vectors P = M⁻¹[row, row] z̃ (the Laplace
    gradient's trace terms reuse them).  Gathers only: no loop over rows or levels.

    Parameters
    ----------
    structure : ModelStructure
        The model's random-effects structure.
    parts : inverse parts
        M⁻¹ on the pattern of Z'Z (``BlockedSystem.inverse_parts``).
    templates : list of ndarray
        The blocks' templates at θ.
    entries : list, optional
        ``random_effect_entries(structure)``, computed when omitted.

    Returns
    -------
    c_diag : ndarray, shape (n,)
        The leverages c_i.
    P : list of ndarray, shape (n,) each
        One vector per entry, in the order of ``entries``.
    """
    blocks = structure.blocks
    entries = random_effect_entries(structure) if entries is None else entries
    lead = blocks[0]
    n1, K1 = lead.size, lead.K
    n = lead.columns.shape[0]
    if len(blocks) == 1 and K1 > LEVERAGE_MATRIX_MIN_K:
        # one block with many columns (a structured term over visits or positions): P = Z̃_g M⁻¹_g by
        # row chunks, not K1² entry pairs
        ZT = lead.columns @ templates[0]
        Minv = parts.lead.reshape(lead.q, K1, K1)
        g1 = lead.factor.codes
        Pm = np.empty((n, K1))
        step = max(1, 4_000_000 // (K1 * K1))
        for s in range(0, n, step):  # chunks of rows, each a batched product
            sl = slice(s, s + step)
            Pm[sl] = np.einsum("ik,ijk->ij", ZT[sl], Minv[g1[sl]])
        return np.einsum("ij,ij->i", ZT, Pm), [Pm[:, c] for c in range(K1)]
    zt = {}
    for bi, blk in enumerate(blocks):
        ZT = blk.columns @ templates[bi]
        for c in range(blk.K):
            zt[(bi, c)] = ZT[:, c]
    g1 = lead.factor.codes.astype(np.int64)
    lead_flat = parts.lead.reshape(-1)
    # a sparse cross block's inverse parts hold the cross part at the pairs (lead level, other row),
    # which is where every row reads it: entry j > K1's pair of each row is the plan's pair_inv[j - K1]
    pairs = getattr(parts, "cross_pairs", None)
    pair_inv = parts.plan.pair_inv if pairs is not None else None
    P = []
    for ei, (bi, ci, ui) in enumerate(entries):
        acc = np.zeros(n)
        for ej, (bj, cj, uj) in enumerate(entries):
            if bi == 0 and bj == 0:
                m_ef = lead_flat[g1 * (K1 * K1) + ci * K1 + cj]
            elif bi == 0:
                m_ef = (pairs[pair_inv[ej - K1], ci] if pairs is not None
                        else parts.cross.reshape(-1)[(uj - n1) * n1 + g1 * K1 + ci])
            elif bj == 0:
                m_ef = (pairs[pair_inv[ei - K1], cj] if pairs is not None
                        else parts.cross.reshape(-1)[(ui - n1) * n1 + g1 * K1 + cj])
            else:
                m_ef = parts.s_inv_at(ui - n1, uj - n1)
            acc += m_ef * zt[(bj, cj)]
        P.append(acc)
    c_diag = sum(zt[(bi, ci)] * Pe for (bi, ci, _), Pe in zip(entries, P))
    return c_diag, P


def dense_parts_fit(blocks, max_cross: int = 5_000_000) -> bool:
    """Whether the exact gradient's dense parts of M⁻¹ are small enough: at most 5,000 other (non-lead)
    effects, and the cross part (other blocks' random effects x the lead block's) of at most
    ``max_cross`` entries, unless the non-lead blocks are scalar and large enough for the compiled
    kernels (``KERNEL_MIN_DENSE``): then the gradient reads the cross part at the pairs only
    (``BlockedSystem._pairs_inverse_parts``) and never forms it.

    Parameters
    ----------
    blocks : list of ReBlock
        A structure's blocks, lead block first.
    max_cross : int, default 5_000_000
        The largest cross part allowed.

    Returns
    -------
    bool
    """
    from ..linalg.blocked import KERNEL_MIN_DENSE
    from ..linalg.kernels import numba_available

    mz = sum(b.size for b in blocks[1:])
    if mz > 5_000:
        return False
    if mz * blocks[0].size <= max_cross:
        return True
    # a crossed design with a large dense block (users x items): the pair kernel's path
    return all(b.K == 1 for b in blocks[1:]) and mz >= KERNEL_MIN_DENSE and numba_available()


class GlmmObjective:
    """The deviance functions of one GLMM.

    Parameters
    ----------
    structure : ModelStructure
        The random-effects terms and θ parameterisation.
    X : ndarray, shape (n, p)
        Full-rank fixed-effects design (as the engine sees it).
    y : ndarray, shape (n,)
        Response (a proportion for the binomial).
    wt : ndarray, shape (n,)
        Prior weights (times the number of trials for the binomial).
    offset : ndarray, shape (n,)
        Offset on the linear-predictor scale.
    family : Family
        The response family and link (bound to its parameters where it has any).
    beta_start : ndarray, optional
        β that PIRLS starts from when it estimates β itself (nAGQ = 0): the GLM's estimate.
    tol : float
        PIRLS's relative tolerance on the penalised deviance.  Fisher scoring (non-canonical
        links) converges linearly, so BOBYQA on the deviance and the Hessian's differences need a
        tight one (1e-15): a loose stop is noise they amplify.
    maxit : int, default 60
        Most PIRLS iterations per evaluation.
    beta_names : sequence of str, optional
        Fixed-effect labels for the parameter layout.
    submodels : sequence of LinearPredictor, default ()
        The zero-inflation and dispersion predictors (used by the subclasses with family
        parameters); their blocks follow in the layout.

    Attributes
    ----------
    predictor : LinearPredictor
        The conditional mean's η = Xβ + offset + Zb.
    layout : ParameterLayout
        The blocks of the parameter vector (θ, β[, ψ]).
    """

    #: the sparse Schur engine reweights with non-negative PIRLS weights only
    _sparse_engine_ok = True

    def __init__(self, structure, X, y, wt, offset, family, *, beta_start=None, tol=1e-10, maxit=60,
                 beta_names=None, submodels=()):
        self.structure = structure
        self.predictor = LinearPredictor(X, offset, structure, None if beta_names is None else tuple(beta_names))
        self.submodels = tuple(submodels)
        self.layout = model_layout([self.predictor], family, self.submodels)
        self.X, self.y, self.wt, self.offset, self.family = X, y, wt, offset, family
        self.n, self.p = X.shape
        self.n_theta = structure.n_theta
        self.Z = structure.z_matrix()
        self._Zt = self.Z.T  # built once: scipy makes a new transposed matrix at every .T
        self._X0 = np.empty((self.n, 0))
        self.u = np.zeros(structure.q)  # warm start: the last mode found
        self._mode_at = None  # (θ, β, state[, ψ]) of the last gradient evaluation: PIRLS's first-order start
        self._bases = {}  # unweighted BlockedSystem by number of fixed-effects columns
        self.tol, self.maxit = tol, maxit
        # the last β PIRLS estimated (nAGQ = 0): each θ's PIRLS starts there
        self._beta_warm = None if beta_start is None else np.asarray(beta_start, dtype=float).copy()
        self.n_evals = 0
        self.pirls_failures = 0
        # the parts of log p(y | η) that do not depend on η, summed once
        self._loglik_const = float(np.sum(family.loglik_constant(y, wt)))

    # ----- pieces -----
    def b_of(self, templates, u: np.ndarray) -> np.ndarray:
        """b = Λθ u, block by block (engine order).

        Parameters
        ----------
        templates : list of ndarray
            The blocks' templates at θ.
        u : ndarray, shape (q,)
            Spherical random effects.

        Returns
        -------
        ndarray, shape (q,)
        """
        return self.structure.b_of(templates, u)

    def _pdev(self, eta: np.ndarray, u: np.ndarray, family=None) -> tuple[float, np.ndarray | None]:
        """Penalised deviance (with ``family``, bound to its parameters, or the objective's own);
        μ is returned only when it had to be computed (None otherwise)."""
        fam = self.family if family is None else family
        mu = None
        summed = getattr(fam, "loglik_sum_eta", None)
        total = summed(self.y, eta, self.wt) if summed is not None else None
        if total is None:
            direct = fam.loglik_kernel_eta(self.y, eta, self.wt)
            if direct is None:
                mu = fam.link.inverse(eta)
                direct = fam.loglik_kernel(self.y, mu, self.wt)
            total = float(np.sum(direct))
        ll = total + self._loglik_const
        return -2.0 * ll + float(u @ u), mu

    def state_at(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray) -> PirlsState:
        """The PIRLS state at a known mode (no iterations): for results after a fast-path fit.

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters.
        beta : ndarray, shape (p,)
            Fixed effects.
        u : ndarray, shape (q,)
            The conditional mode found elsewhere (copied).

        Returns
        -------
        PirlsState
            With the working system and its factor at that mode.
        """
        theta = np.asarray(theta, dtype=float)
        templates = self.structure.templates(theta)
        # in place where a sum would make another n-sized temporary (this step sets the peak memory
        # of a large one-factor fit)
        fixed = self.X @ beta
        fixed += self.offset
        eta = self.Z @ self.b_of(templates, u)
        eta += fixed
        dev, _ = self._pdev(eta, u)
        system, mu = self._working_system(eta, fixed, self._X0)
        fac = system.factor(templates)
        logdet = fac.logdet_lead + 2.0 * float(np.sum(np.log(np.diagonal(fac.L)[: system.mz])))
        return PirlsState(u.copy(), np.asarray(beta, dtype=float), eta, mu, dev, logdet, system, fac, True, 0)

    def _base_system(self, X: np.ndarray) -> BlockedSystem:
        """The unweighted system of this model with fixed-effects columns ``X``, built once: every
        PIRLS or Newton iteration reweights it (the pattern of Z'WZ never changes)."""
        p = X.shape[1]
        base = self._bases.get(p)
        if base is None:
            blocks = self.structure.blocks
            engine = None
            if not self._sparse_engine_ok and choose_engine(blocks, glmm=True).startswith("sparse"):
                engine = "blocked"  # signed Newton weights (observed information): the blocked engine's
            base = self._bases[p] = make_system(blocks, X, np.zeros(self.n), by_plan=True, engine=engine)
        return base

    def _system(self, eta: np.ndarray, fixed: np.ndarray, X: np.ndarray) -> BlockedSystem:
        return self._working_system(eta, fixed, X)[0]

    def _working_system(self, eta: np.ndarray, fixed: np.ndarray, X: np.ndarray) -> tuple[BlockedSystem, np.ndarray]:
        """The weighted PLS system at η, and μ there (``working`` computes it anyway).  The working
        response and weights are fresh arrays, turned into z - fixed and √W in place."""
        mu, W, z = self.family.working(eta, self.y, self.wt)
        z -= fixed
        np.sqrt(W, out=W)
        return self._base_system(X).reweighted(X, z, W), mu

    # ----- PIRLS -----
    def pirls(self, theta: np.ndarray, beta: np.ndarray | None, u0: np.ndarray | None = None,
              start=None, chord=None, own_chord: bool = False) -> PirlsState:
        """Conditional mode at θ; β given (Laplace, AGQ) or estimated with u (``beta=None``: nAGQ = 0).
        ``start``: (η, penalised deviance) at the start u and the given β when the caller has them
        (``_predicted_mode``), so that they are not computed twice.  ``chord``: a factor of M at a
        nearby point, with which the iterations start (``_chord``), so that a start close to the mode
        costs one factorisation (at the mode, for log |M|) instead of two or three.

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters.
        beta : ndarray, shape (p,), or None
            Fixed effects held at these values; None estimates them with u (nAGQ = 0).
        u0 : ndarray, shape (q,), optional
            Start of u; the last mode found (``self.u``) by default.
        start : tuple of (ndarray, float), optional
            (η, penalised deviance) at ``u0`` and ``beta``.
        chord : tuple, optional
            (templates, system, factor) of a factor of M at another point (the previous gradient
            evaluation's mode); used with β given only.
        own_chord : bool, default False
            Try chord steps with each Newton iteration's own factor before the next factorisation
            (β given only): from a far start two or three factorisations fewer.  The exact-gradient
            route asks for it; the derivative-free routes keep plain Newton, whose values their
            difference Hessians were matched with.

        Returns
        -------
        PirlsState
            ``converged`` False when the iterations or the step halving ran out; ``laplace`` inf
            when the final factor failed.
        """
        theta = np.asarray(theta, dtype=float)
        templates = self.structure.templates(theta)
        joint = beta is None
        beta = np.zeros(self.p) if joint else np.asarray(beta, dtype=float)
        if joint and u0 is None and self._beta_warm is not None:
            beta = self._beta_warm.copy()
        u = (self.u if u0 is None else u0).copy()
        fixed = self.X @ beta + self.offset
        if start is not None and not joint:
            eta, dev = start
        else:
            eta = fixed + self.Z @ self.b_of(templates, u)
            dev, _ = self._pdev(eta, u)
        converged, it, newton = False, 0, True
        if chord is not None and not joint:
            converged, u, eta, dev, it = self._chord(templates, chord, u, eta, dev, fixed)
            newton = not converged
        for it in range(it + 1, self.maxit + 1 if newton else it + 1):
            if joint:
                system = self._system(eta, self.offset, self.X)
            else:
                system = self._system(eta, fixed, self._X0)
            fac = system.factor(templates)
            if not fac.ok:
                break
            u_lead, u_rest, beta_new = system.solve(templates, fac)
            du = np.concatenate([u_lead.ravel(), u_rest]) - u
            db = beta_new - beta if joint else None
            trial = self._halved_step(templates, u, du, dev, fixed, beta, db)
            if trial is None:
                break
            step, u, beta, fixed, eta, dev_new, mu = trial
            change, dev = dev - dev_new, dev_new
            if change < self.tol * (abs(dev) + 0.1) and step == 1.0:
                converged = True
                break
            if own_chord and not joint and step == 1.0:
                # this factor as the chord for the next steps: from a far start (u = 0) Newton's
                # iterations cost a factorisation each, the chord's an O(n) pass, at a linear rate
                # that _chord checks (it hands back to Newton when the rate is slow)
                converged, u, eta, dev, _ = self._chord(templates, (templates, system, fac), u, eta, dev, fixed)
                if converged:
                    break
        system, mu = self._working_system(eta, fixed if not joint else self.offset, self._X0 if not joint else self.X)
        fac = system.factor(templates)
        mz = system.mz
        logdet = fac.logdet_lead + 2.0 * float(np.sum(np.log(np.diagonal(fac.L)[:mz]))) if fac.ok else np.inf
        return PirlsState(u, beta, eta, mu, dev, logdet, system, fac, converged, it)

    def _chord(self, templates, chord, u, eta, dev, fixed, maxit=30):
        """Newton steps on the penalised deviance at fixed β with M from another point's factor (the
        chord method): du = M₀⁻¹ (Λ'Z's - u), s = ∂ℓ/∂η = W (z - η), each an O(n) pass and two
        triangular solves instead of a factorisation.  The fixed point is the mode whatever M₀ is;
        it converges linearly, at the rate at which M₀ differs from M at the mode, so near an
        optimum (short steps in θ, β) in a few steps.  It stops on a change 1e-4 times PIRLS's
        tolerance (a linear rate leaves about one change's worth of deviance, a Newton step far less)
        together with a step below 1e-9 of max(1, |u|), and gives up to Newton's method (False) after a halved step, a slow rate (a change
        over a quarter of the last) or ``maxit`` steps.  Returns (converged, u, η, deviance, steps)."""
        tpl0, system0, factor0 = chord
        tight = 1e-4 * self.tol
        last = np.inf
        with np.errstate(all="ignore"):
            for k in range(1, maxit + 1):
                _, W, z = self.family.working(eta, self.y, self.wt)
                z -= eta
                z *= W
                g = self.structure.lambda_t(templates, self._Zt @ z) - u
                du = system0.solve_rhs(tpl0, factor0, g)
                if not np.all(np.isfinite(du)):
                    return False, u, eta, dev, k
                trial = self._halved_step(templates, u, du, dev, fixed, None, halvings=1)
                if trial is None:
                    return False, u, eta, dev, k
                step, u, _, _, eta, dev_new, _ = trial
                change, dev = dev - dev_new, dev_new
                # the deviance's change alone stops a linear rate early: it is quadratic in u's error,
                # and the gradient at the mode is linear in it, so the step must be small too
                flat = change < tight * (abs(dev) + 0.1)
                if flat and step * np.max(np.abs(du), initial=0.0) < 1e-9 * max(
                        1.0, float(np.max(np.abs(u), initial=0.0))):
                    return True, u, eta, dev, k
                if not flat and change > 0.25 * last:  # (a flat deviance's changes are rounding)
                    return False, u, eta, dev, k
                last = change
        return False, u, eta, dev, maxit

    def _halved_step(self, templates, u, du, dev, fixed, beta, db=None, family=None, halvings=30):
        """Step-halving line search along a Newton step (du, and db when β moves with u): the first
        of 1, 1/2, 1/4, ... that does not raise the penalised deviance, as (step, u, β, Xβ + offset,
        η, deviance, μ); None after ``halvings`` tries (after 30 counted in ``pirls_failures``)."""
        step = 1.0
        for _ in range(halvings):
            u_try = u + step * du
            if db is None:
                beta_try, fixed_try = beta, fixed
            else:
                beta_try = beta + step * db
                fixed_try = self.X @ beta_try + self.offset
            eta_try = fixed_try + self.Z @ self.b_of(templates, u_try)
            dev_try, mu_try = self._pdev(eta_try, u_try, family)
            if dev_try <= dev + 1e-12 * abs(dev):
                return step, u_try, beta_try, fixed_try, eta_try, dev_try, mu_try
            step *= 0.5
        if halvings >= 30:
            self.pirls_failures += 1
        return None

    # ----- objectives -----
    def laplace(self, params: np.ndarray) -> float:
        """Laplace deviance at (θ, β), warm-started from the last mode.

        Parameters
        ----------
        params : ndarray
            The parameter vector in ``layout`` order.

        Returns
        -------
        float
            −2 log L (Laplace); inf where the mode could not be found.
        """
        self.n_evals += 1
        prm = self.layout.split(params)
        theta, beta = prm.theta, prm.beta
        state = self.pirls(theta, beta)
        if np.isfinite(state.laplace):
            self.u = state.u
        return state.laplace

    def nagq0(self, theta: np.ndarray) -> float:
        """Laplace deviance at θ with β found inside PIRLS (lme4's nAGQ = 0).

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters.

        Returns
        -------
        float
            −2 log L (Laplace) with β at its PIRLS estimate.
        """
        self.n_evals += 1
        state = self.pirls(theta, None)
        if np.isfinite(state.laplace):
            self.u, self._beta_warm = state.u, state.beta
        return state.laplace

    # ----- exact Laplace gradient (canonical links) -----
    def gradient_applies(self, max_cross: int = 5_000_000) -> bool:
        """True when ``laplace_and_gradient`` is available: a canonical link, and M⁻¹'s dense
        cross part (other blocks' random effects x lead random effects) of at most ``max_cross`` entries.

        Parameters
        ----------
        max_cross : int, default 5_000_000
            Largest dense cross part allowed (the non-lead blocks are also limited to 5000 effects).

        Returns
        -------
        bool
        """
        if self.family.canonical_derivatives(np.zeros(1), np.zeros(1), np.ones(1)) is None:
            return False
        if getattr(self._base_system(self._X0), "engine", "") == "nested":  # M⁻¹'s pattern only, no dense part
            return True
        if getattr(self._base_system(self._X0), "engine", "").startswith("sparse"):
            return False  # no inverse_parts on the sparse Schur engine: the derivative-free route
        return dense_parts_fit(self.structure.blocks, max_cross)

    def _entries(self):
        """Per random-effect column of every row: (block, component, index in u) (lead block first)."""
        if getattr(self, "_entry_cache", None) is None:
            self._entry_cache = random_effect_entries(self.structure)
        return self._entry_cache

    def laplace_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Laplace deviance at (θ, β) and its exact gradient (implicit function theorem).

        With D = F(û) + log|M|, F = -2ℓ(η) + ||u||², M = Λ'Z'WZΛ + I, s = ∂ℓ/∂η,
        W' = ∂W/∂η, c_i = [ZΛM⁻¹Λ'Z']_ii and v = W'c (∂ log|M| / ∂η at fixed θ):

            dD/dβ   = X'(-2s + v - W e),                   e = ZΛt, t = M⁻¹Λ'Z'v
            dD/dτ   = (Λ_τ û)'Z'(-2s + v - W e) + (Λ_τ t)'Z's + 2 tr(M⁻¹Λ'Z'WZΛ_τ)

        for each template entry τ = T_b[r, c] (Λ_τ = ∂Λ/∂τ; the last term at fixed W,
        the others carry û's and W's dependence on the parameters, dû/dφ =
        M⁻¹ ∂(Λ'Z's)/∂φ), and dD/dθ = Σ_τ dD/dτ · dτ/dθ with the Jacobian of the
        terms' covariance structures (``ModelStructure.contract``).  Everything needs M⁻¹ only on
        the pattern of Z'Z (``BlockedSystem.inverse_parts``) and one solve.

        Parameters
        ----------
        params : ndarray
            The parameter vector (θ, β) in ``layout`` order.

        Returns
        -------
        value : float
            −2 log L (Laplace); inf where the mode could not be found.
        grad : ndarray
            Its gradient in ``params`` (NaN with an infinite value).
        """
        self.n_evals += 1
        params = np.asarray(params, dtype=float)
        prm = self.layout.split(params)
        theta, beta = prm.theta, prm.beta
        u0, start = self._predicted_mode(theta, beta)
        chord = None
        if start is not None:  # the previous evaluation's mode is the warm start: its factor serves too
            th0, _, st0 = self._mode_at[:3]
            chord = (self.structure.templates(th0), st0.system, st0.factor)
        state = self.pirls(theta, beta, u0, start, chord=chord, own_chord=True)
        if not np.isfinite(state.laplace):
            return np.inf, np.full(params.shape[0], np.nan)
        self.u = state.u
        grad = self.gradient_at(state, theta)
        self._mode_at = (theta.copy(), beta.copy(), state)
        return state.laplace, grad

    def curvature(self, params: np.ndarray) -> np.ndarray:
        """An approximate Hessian of the Laplace deviance at (θ, β) (``objective.curvature``), from the
        mode of the last ``laplace_and_gradient`` evaluation when it was at ``params``.

        Parameters
        ----------
        params : ndarray
            The parameter vector (θ, β) in ``layout`` order.

        Returns
        -------
        ndarray, shape (n_theta + p, n_theta + p)
            See :func:`glmmkit.objective.curvature.laplace_curvature`.
        """
        from .curvature import laplace_curvature

        prm = self.layout.split(np.asarray(params, dtype=float))
        return laplace_curvature(self, self.state_at_params(params), prm.theta)

    def state_at_params(self, params: np.ndarray) -> PirlsState:
        """The mode at (θ, β): the last ``laplace_and_gradient`` evaluation's when it was at ``params``
        (its factor and all), else found by PIRLS.

        Parameters
        ----------
        params : ndarray
            The parameter vector (θ, β) in ``layout`` order.

        Returns
        -------
        PirlsState
        """
        prm = self.layout.split(np.asarray(params, dtype=float))
        last = getattr(self, "_mode_at", None)
        if last is not None and np.array_equal(last[0], prm.theta) and np.array_equal(last[1], prm.beta):
            return last[2]
        return self.pirls(prm.theta, prm.beta)

    def _predicted_mode(self, theta, beta, family=None, score_shift=None, compare=True):
        """PIRLS's start at (θ, β) from the mode of the previous gradient evaluation, moved to first
        order (implicit function theorem, with that evaluation's factor: one solve, no new one):

            du = M⁻¹ [ΔΛ'Z's - Λ'Z'W (X Δβ + Z ΔΛ û)],   M = Λ'Z'WZΛ + I at the previous mode,

        whichever of it and the previous mode has the lower penalised deviance at (θ, β).  L-BFGS-B's
        steps are short near the optimum, where a start to first order saves one of ~3-4 PIRLS
        iterations.  Returns (u0, start) for ``pirls``: u0 None (PIRLS starts from ``self.u``) when the
        previous mode is kept or when ``self.u`` is not that mode (a caller's warm start, the driver's
        (get, set) pair, is used as given); ``start`` (η, deviance) at that start, or None.  ``family`` is the family at the
        new point and ``score_shift`` (per row) the change of s with its parameters, for a family
        with parameters of its own (``ParametricLaplace``). ``compare`` False keeps a finite prediction
        without the previous mode's deviance (a difference step, where the prediction is the better)."""
        last = getattr(self, "_mode_at", None)
        if last is None or last[2].u is not self.u:
            return None, None
        theta0, beta0, st = last[:3]
        s, W = getattr(st, "_score_weights", (None, None))
        if s is None:
            return None, None
        st_ = self.structure
        tpl0, tpl1 = st_.templates(theta0), st_.templates(theta)
        dtpl = [t1 - t0 for t0, t1 in zip(tpl0, tpl1)]
        with np.errstate(all="ignore"):
            shift = self.X @ (beta - beta0) + self.Z @ st_.b_of(dtpl, st.u)
            r_eta = W * shift if score_shift is None else W * shift - score_shift
            rhs = st_.lambda_t(dtpl, self._Zt @ s) - st_.lambda_t(tpl0, self._Zt @ r_eta)
            if not np.all(np.isfinite(rhs)):
                return None, None
            u_pred = st.u + st.system.solve_rhs(tpl0, st.factor, rhs)
            fixed = self.X @ beta + self.offset
            eta_pred = fixed + self.Z @ st_.b_of(tpl1, u_pred)
            dev_pred = self._pdev(eta_pred, u_pred, family)[0]
            if not compare and np.isfinite(dev_pred):
                return u_pred, (eta_pred, dev_pred)
            eta_old = fixed + self.Z @ st_.b_of(tpl1, st.u)
            dev_old = self._pdev(eta_old, st.u, family)[0]
        if np.isfinite(dev_pred) and dev_pred < dev_old:
            return u_pred, (eta_pred, dev_pred)
        return None, ((eta_old, dev_old) if np.isfinite(dev_old) else None)

    def gradient_at(self, state: PirlsState, theta: np.ndarray) -> np.ndarray:
        """The exact gradient of the Laplace deviance at a converged PIRLS state (see laplace_and_gradient).

        Parameters
        ----------
        state : PirlsState
            The mode at (θ, β); it keeps the score and weights for the next evaluation's start.
        theta : ndarray, shape (n_theta,)
            The covariance parameters of ``state``.

        Returns
        -------
        ndarray, shape (n_theta + p,)
            dD/dθ then dD/dβ.
        """
        _, s, W, dW = self.family.canonical_derivatives(state.eta, self.y, self.wt)
        state._score_weights = (s, W)  # for the next evaluation's start (_predicted_mode)
        return self._gradient_core(state, theta, s, W, dW)[0]

    def _gradient_core(self, state: PirlsState, theta, s, W, dW):
        """Gradient in (θ, β) from the row derivatives s = ∂ℓ/∂η, W = -∂²ℓ/∂η², dW = ∂W/∂η, with the
        leverages c = diag(ZΛM⁻¹Λ'Z') and e = ZΛM⁻¹Λ'Z'(dW c) that a family parameter's term reuses."""
        blocks = self.structure.blocks
        templates = self.structure.templates(theta)
        system = state.system
        parts = system.inverse_parts(templates, state.factor)
        entries = self._entries()
        c_diag, P = row_leverages(self.structure, parts, templates, entries)
        v = dW * c_diag
        Zt = self._Zt
        r_s, r_v = Zt @ s, Zt @ v
        w = self._lambda_t(templates, r_v)
        t = system.solve_m(parts, w)
        e = self.Z @ self.b_of(templates, t)
        comb = -2.0 * s + v - W * e
        r_c = Zt @ comb
        grad = np.empty(self.n_theta + self.p)
        grad[self.n_theta :] = self.X.T @ comb
        # dD/dT_b[r, c] for every template entry the structures use, then θ through their Jacobians
        P_of = {(bi, ci): Pe for (bi, ci, _), Pe in zip(entries, P)}
        entry_grads = []
        for bi, blk in enumerate(blocks):
            sl = slice(blk.offset, blk.offset + blk.size)
            U = state.u[sl].reshape(blk.q, blk.K)
            Tt = t[sl].reshape(blk.q, blk.K)
            Rc = r_c[sl].reshape(blk.q, blk.K)
            Rs = r_s[sl].reshape(blk.q, blk.K)
            entry_grads.append(np.array([float(U[:, c] @ Rc[:, r] + Tt[:, c] @ Rs[:, r])
                                         + 2.0 * float(np.dot(W * blk.columns[:, r], P_of[(bi, c)]))
                                         for r, c in zip(blk.tpl_rows, blk.tpl_cols)]))
        grad[: self.n_theta] = self.structure.contract(theta, entry_grads)
        return grad, c_diag, e

    def _lambda_t(self, templates, r: np.ndarray) -> np.ndarray:
        """Λ'r for a vector r in the random-effects (b) coordinates."""
        return self.structure.lambda_t(templates, r)

    def agq(self, params: np.ndarray, nagq: int) -> float:
        """Adaptive Gauss-Hermite deviance at (θ, β) (one grouping factor).

        Parameters
        ----------
        params : ndarray
            The parameter vector (θ, β) in ``layout`` order.
        nagq : int
            Quadrature nodes per random-effect dimension.

        Returns
        -------
        float
            −2 log L; inf where the mode could not be found.
        """
        self.n_evals += 1
        prm = self.layout.split(params)
        theta, beta = prm.theta, prm.beta
        state = self.pirls(theta, beta)
        if not np.isfinite(state.laplace):
            return np.inf
        self.u = state.u
        return self.agq_deviance(theta, beta, state, nagq)

    def agq_deviance(self, theta, beta, state: PirlsState, nagq: int) -> float:
        """-2 log L by a product Gauss-Hermite rule around the mode of each level (with the family
        the state was found with: bound to its parameters for a parametric family).

        Parameters
        ----------
        theta : ndarray, shape (n_theta,)
            Covariance parameters.
        beta : ndarray, shape (p,)
            Fixed effects.
        state : PirlsState
            The conditional mode at (θ, β): the centres of the quadrature grids.
        nagq : int
            Quadrature nodes per random-effect dimension.

        Returns
        -------
        float
            −2 log L.
        """
        fam = getattr(state, "family", None) or self.family
        blk = self.structure.blocks[0]
        q, K = blk.q, blk.K
        nodes = level_nodes(blk, blk.template(theta), self.X @ beta + self.offset, state.u[: q * K].reshape(q, K),
                            self.y, self.wt, fam, state.eta, nagq)
        log_lik = logsumexp(nodes.log_terms, axis=0) - nodes.logdet_L - 0.5 * K * np.log(2.0 * np.pi)
        return -2.0 * float(np.sum(log_lik))
