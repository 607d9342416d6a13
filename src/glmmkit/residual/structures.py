"""Residual correlation structures: R = diag(R_1, ..., R_m) over clusters, with a few parameters ψ.

Each structure *whitens*: given rows sorted by (cluster, time) (``ClusterLayout``) it
applies W with W'W = R⁻¹ to the columns of a matrix and returns log|R|, so that the
whitened model is an ordinary LMM with residual σ² I and

    -2 log L(y) = -2 log L*(W y) + log|R|

(the same shift for the REML criterion).  ``color`` applies W⁻¹ (simulation).

* ``ar1`` (nlme ``corAR1``) and ``exp`` (``corCAR1``): a Markov chain in time, so W is
  bidiagonal: w_i = (a_i - φ_i a_{i-1}) / sqrt(1 - φ_i²), φ_i = ρ^(t_i - t_{i-1}): O(n);
* ``cs`` (``corCompSymm``), ``un`` (``corSymm``), ``toep``: dense R_c per cluster; clusters
  with the same times (the same *pattern*) share one Cholesky factor, so one evaluation
  costs one small factorisation per pattern and one batched product over the rows.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from .names import RESIDUAL_STRUCTURES, suggest
from ..covstruct.correlated import _acf_from_pacf, pacf_from_acf, param_from_rho, rho_from_param

__all__ = ["RESIDUAL_STRUCTURES", "make_residual", "ResidualStructure", "suggest"]

def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


class ResidualStructure:
    """Base class.  Subclasses set ``name``, ``description``, ``n_params`` and implement
    ``whiten``, ``color``, ``report`` and ``param_names``.

    Parameters
    ----------
    layout : ClusterLayout
        The fitted rows sorted by (cluster, time).
    """

    name = ""
    description = ""
    n_params = 0
    integer_times = False
    #: nlme's names of the reported parameters, for the summary (``rho`` is printed as ``Phi``, ...)
    nlme_names: dict = {}

    def __init__(self, layout):
        self.layout = layout

    # parameters
    def param_names(self) -> list[str]:
        """Names of ψ's entries, e.g. ``Subject.rho``.

        Returns
        -------
        list of str
            ``n_params`` names.
        """
        raise NotImplementedError

    def lower(self) -> np.ndarray:
        """Lower bounds of ψ (-inf: the parameters are unbounded).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            The bounds.
        """
        return np.full(self.n_params, -np.inf)

    def upper(self) -> np.ndarray:
        """Upper bounds of ψ (inf: the parameters are unbounded).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            The bounds.
        """
        return np.full(self.n_params, np.inf)

    def start(self) -> np.ndarray:
        """Starting ψ (0 by default).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting ψ.
        """
        return np.zeros(self.n_params)

    # the transform
    def whiten(self, psi: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, float]:
        """W A (W'W = R⁻¹) and log|R|: the whitened model is an ordinary LMM with residual σ² I.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).
        A : numpy.ndarray, shape (n, m)
            Columns over the fitted rows, sorted by the layout (cluster, time).

        Returns
        -------
        tuple
            ``(WA, logdet)``: WA of A's shape and log|R| (float); ``(None, inf)`` when ψ gives no valid R.
        """
        raise NotImplementedError

    def color(self, psi: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """W⁻¹ Z: independent standard normal rows -> rows correlated by R (simulation).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).
        Z : numpy.ndarray, shape (n, m)
            Independent standard normal rows, sorted by the layout.

        Returns
        -------
        numpy.ndarray, shape (n, m)
            Correlated rows, sorted by the layout.
        """
        raise NotImplementedError

    def report(self, psi: np.ndarray) -> dict:
        """The reported parameters at ψ.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).

        Returns
        -------
        dict
            ``rho`` (ar1, exp: the correlation at a lag of one time unit, nlme's Phi; cs: the common
            correlation, nlme's Rho), every pair's correlation (un), the lag correlations (toep).
        """
        raise NotImplementedError

    def correlation_at(self, psi: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The correlation matrix of one cluster's residuals at the given times.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).
        times : numpy.ndarray, shape (m,)
            Times of one cluster's residuals.

        Returns
        -------
        numpy.ndarray, shape (m, m)
            R at those times.
        """
        raise NotImplementedError

    def pair_correlation(self, psi: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
        """R between pairs of residuals of one cluster at times t1[k] and t2[k] (fitted times).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).
        t1 : numpy.ndarray
            Times of the first residual of each pair.
        t2 : numpy.ndarray
            Times of the second residual of each pair (same shape as ``t1``).

        Returns
        -------
        numpy.ndarray
            One correlation per pair, the shape of ``t1``.
        """
        raise NotImplementedError

    def natural(self, psi: np.ndarray) -> list[tuple]:
        """``report``'s parameters with their bounds, for intervals and profiles.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).

        Returns
        -------
        list of tuple
            ``(name, value, lower, upper)`` each.
        """
        lo, hi = self.natural_bounds()
        return [(k, v, lo, hi) for k, v in self.report(psi).items()]

    def natural_bounds(self) -> tuple[float, float]:
        """Bounds of the reported parameters (correlations: -1, 1).

        Returns
        -------
        tuple of float
            ``(lower, upper)``.
        """
        return -1.0, 1.0

    def from_natural(self, values: np.ndarray) -> np.ndarray | None:
        """ψ from the reported parameters' values (the inverse of ``report``).

        Parameters
        ----------
        values : numpy.ndarray
            Values of the reported parameters, in ``report``'s order.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (n_params,), or None when the values are not valid.
        """
        raise NotImplementedError

    @property
    def formula(self) -> str:
        """nlme's form of the structure, ``~time | group`` (``~1 | group`` for the rows' order).

        Returns
        -------
        str
            The formula.
        """
        s = self.layout.spec
        return f"~{s.time or '1'} | {s.group_name}"


class _Markov(ResidualStructure):
    """AR(1) in (integer) time and its continuous-time version: φ_i = ρ^(Δt_i)."""

    n_params = 1

    def __init__(self, layout):
        super().__init__(layout)
        lay = layout
        self._rest = np.flatnonzero(~lay.first)
        self._dt = lay.times[self._rest] - lay.times[self._rest - 1]
        # every lag that occurs, and each row's (rows after the first of a cluster): ρ^lag is then
        # a handful of powers and one gather, not n powers
        self._lags, self._lag_idx = np.unique(self._dt, return_inverse=True)
        # for color: rows by position within their cluster
        self._by_within = [np.flatnonzero(lay.within == j) for j in range(1, int(lay.sizes.max()))]

    def rho(self, psi):
        raise NotImplementedError

    def _phi(self, psi):
        """φ_i = ρ^(Δt_i) for every sorted row, 0 where a cluster starts."""
        phi = np.zeros(self.layout.n)
        phi[self._rest] = (self.rho(float(psi[0])) ** self._lags)[self._lag_idx.reshape(-1)]
        return phi

    def whiten(self, psi, A):
        phi = self._phi(psi)
        one_m = 1.0 - phi * phi
        if not np.all(one_m > 0):
            return None, np.inf
        # w_i = (a_i - φ_i a_{i-1}) / sqrt(1 - φ_i²), with φ = 0 at a cluster's first row: contiguous
        # slices over all rows, no gathers
        out = np.empty_like(A, order="F")  # column-major: each whitened column is contiguous for the engine
        out[0] = A[0]
        inv_s = 1.0 / np.sqrt(one_m[1:])
        p1 = phi[1:]
        for j in range(A.shape[1]):  # a few columns, each one contiguous pass
            col = out[1:, j]
            np.multiply(A[:-1, j], p1, out=col)
            np.subtract(A[1:, j], col, out=col)
            col *= inv_s
        return out, float(np.sum(np.log(one_m)))

    def color(self, psi, Z):
        phi = self._phi(psi)
        out = Z.copy()
        for rows in self._by_within:  # a loop over positions within a cluster, vectorised over clusters
            p = phi[rows][:, None]
            out[rows] = p * out[rows - 1] + np.sqrt(1.0 - p * p) * Z[rows]
        return out

    def correlation_at(self, psi, times):
        t = np.asarray(times, dtype=float)
        return self.rho(float(psi[0])) ** np.abs(np.subtract.outer(t, t))

    def pair_correlation(self, psi, t1, t2):
        return self.rho(float(psi[0])) ** np.abs(np.asarray(t1, dtype=float) - np.asarray(t2, dtype=float))

    def report(self, psi):
        return {"rho": float(self.rho(float(psi[0])))}

    def param_names(self):
        return [f"{self.layout.spec.group_name}.rho"]


class ResidualAR1(_Markov):
    """``ar1(time | g)`` (nlme ``corAR1``): ρ^|t_i - t_j| for integer times; ``ar1(1 | g)`` uses the
    rows' order.  ρ = ψ / sqrt(1 + ψ²)."""

    name = "ar1"
    description = "AR(1)"
    integer_times = True
    nlme_names = {"rho": "Phi"}

    def rho(self, psi):
        """ρ = ψ / sqrt(1 + ψ²), the lag-1 correlation.

        Parameters
        ----------
        psi : float
            The unbounded parameter.

        Returns
        -------
        float
            ρ in (-1, 1).
        """
        return rho_from_param(psi)

    def from_natural(self, values):
        """ψ of a given ρ.

        Parameters
        ----------
        values : numpy.ndarray, shape (1,)
            ρ.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (1,), or None unless -1 < ρ < 1.
        """
        r = float(values[0])
        return None if not -1.0 < r < 1.0 else np.atleast_1d(param_from_rho(r))


class ResidualExp(_Markov):
    """``exp(time | g)`` (nlme ``corCAR1``): ρ^|t_i - t_j| for continuous times, 0 < ρ < 1 the
    correlation at a lag of one time unit (nlme's Phi); ρ = logistic(ψ)."""

    name = "exp"
    description = "Continuous AR(1)"
    nlme_names = {"rho": "Phi"}

    def rho(self, psi):
        """ρ = logistic(ψ), the correlation at a lag of one time unit (nlme's Phi).

        Parameters
        ----------
        psi : float
            The unbounded parameter.

        Returns
        -------
        float
            ρ in (0, 1).
        """
        return _logistic(psi)

    def start(self):
        """Start at ρ = 0.2.

        Returns
        -------
        numpy.ndarray, shape (1,)
            logit(0.2).
        """
        return np.array([np.log(0.2 / 0.8)])

    def natural_bounds(self):
        """ρ's bounds (0, 1).

        Returns
        -------
        tuple of float
            ``(0.0, 1.0)``.
        """
        return 0.0, 1.0

    def from_natural(self, values):
        """ψ = logit ρ.

        Parameters
        ----------
        values : numpy.ndarray, shape (1,)
            ρ.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (1,), or None unless 0 < ρ < 1.
        """
        r = float(values[0])
        return None if not 0.0 < r < 1.0 else np.array([np.log(r / (1.0 - r))])


class _Dense(ResidualStructure):
    """Structures with a dense R_c: clusters grouped by pattern, one Cholesky per pattern."""

    def __init__(self, layout):
        super().__init__(layout)
        lay = layout
        starts = np.flatnonzero(lay.first)
        self._visit_values, self._visit = lay.visits()
        keys = self._pattern_keys(starts)
        self._patterns = []
        order = np.argsort(keys, kind="stable")
        bounds = np.flatnonzero(np.diff(keys[order])) + 1
        for group in np.split(order, bounds):  # a loop over distinct patterns, not clusters
            m = int(lay.sizes[group[0]])
            rows = starts[group][:, None] + np.arange(m)[None, :]
            visits = self._visit[rows[0]]
            self._patterns.append((rows, visits))

    def _pattern_keys(self, starts):
        raise NotImplementedError

    def cluster_correlation(self, psi, visits) -> np.ndarray:
        raise NotImplementedError

    def whiten(self, psi, A):
        out = np.empty_like(A)
        logdet = 0.0
        for rows, visits in self._patterns:
            R = self.cluster_correlation(psi, visits)
            try:
                L = np.linalg.cholesky(R)
            except np.linalg.LinAlgError:
                return None, np.inf
            Linv = solve_triangular(L, np.eye(L.shape[0]), lower=True)
            out[rows] = np.einsum("ij,cjk->cik", Linv, A[rows])
            logdet += rows.shape[0] * 2.0 * float(np.sum(np.log(np.diag(L))))
        return out, logdet

    def color(self, psi, Z):
        out = np.empty_like(Z)
        for rows, visits in self._patterns:
            L = np.linalg.cholesky(self.cluster_correlation(psi, visits))
            out[rows] = np.einsum("ij,cjk->cik", L, Z[rows])
        return out


class ResidualCS(_Dense):
    """``cs(1 | g)`` (nlme ``corCompSymm``): one correlation ρ between any two residuals of a cluster.

    -1/(m - 1) < ρ < 1 for the largest cluster size m; ρ = -a + (1 + a) logistic(ψ), a = 1/(m - 1).

    Parameters
    ----------
    layout : ClusterLayout
        The fitted rows sorted by (cluster, time).
    """

    name = "cs"
    description = "Compound symmetry"
    n_params = 1
    nlme_names = {"rho": "Rho"}

    def __init__(self, layout):
        super().__init__(layout)
        m = int(layout.sizes.max())
        self._a = 1.0 / (m - 1) if m > 1 else 1.0

    def _pattern_keys(self, starts):
        return self.layout.sizes.astype(np.int64)

    def rho(self, psi):
        """The common correlation ρ = -a + (1 + a) logistic(ψ).

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            The unbounded parameter.

        Returns
        -------
        float
            ρ in (-1/(m - 1), 1).
        """
        return -self._a + (1.0 + self._a) * _logistic(float(psi[0]))

    def start(self):
        """Start at ρ = 0.

        Returns
        -------
        numpy.ndarray, shape (1,)
            ψ of ρ = 0.
        """
        p = self._a / (1.0 + self._a)
        return np.array([np.log(p / (1.0 - p))])

    def cluster_correlation(self, psi, visits):
        """(1 - ρ) I + ρ 11' for a cluster of m rows.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).
        visits : numpy.ndarray of int, shape (m,)
            One cluster's rows as indices among the fitted visits (for ``cs``: only their number counts).

        Returns
        -------
        numpy.ndarray, shape (m, m)
            The cluster's correlation matrix.
        """
        m = visits.shape[0]
        r = self.rho(psi)
        return (1.0 - r) * np.eye(m) + r

    def correlation_at(self, psi, times):
        """(1 - ρ) I + ρ 11' for as many residuals as ``times`` has.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).
        times : numpy.ndarray, shape (m,)
            Times of one cluster's residuals.

        Returns
        -------
        numpy.ndarray, shape (m, m)
            The correlation matrix.
        """
        return self.cluster_correlation(psi, np.asarray(times))

    def pair_correlation(self, psi, t1, t2):
        """1 for equal times, ρ otherwise.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).
        t1 : numpy.ndarray
            Times of the first residual of each pair.
        t2 : numpy.ndarray
            Times of the second residual of each pair (same shape as ``t1``).

        Returns
        -------
        numpy.ndarray
            The shape of ``t1``.
        """
        return np.where(np.asarray(t1) == np.asarray(t2), 1.0, self.rho(psi))

    def report(self, psi):
        """The common correlation (nlme's Rho).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).

        Returns
        -------
        dict
            ``{"rho": float}``.
        """
        return {"rho": float(self.rho(psi))}

    def natural_bounds(self):
        """ρ's bounds (-1/(m - 1), 1).

        Returns
        -------
        tuple of float
            ``(lower, upper)``.
        """
        return -self._a, 1.0

    def from_natural(self, values):
        """ψ of a given ρ.

        Parameters
        ----------
        values : numpy.ndarray, shape (1,)
            ρ.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (1,), or None outside (-1/(m - 1), 1).
        """
        r = float(values[0])
        if not -self._a < r < 1.0:
            return None
        p = (r + self._a) / (1.0 + self._a)
        return np.array([np.log(p / (1.0 - p))])

    def param_names(self):
        """The name ``group.Rho``.

        Returns
        -------
        list of str
            One name.
        """
        return [f"{self.layout.spec.group_name}.Rho"]


class _ByVisit(_Dense):
    def _pattern_keys(self, starts):
        k = self._visit_values.shape[0]
        if k > 62:
            # many distinct times: a pattern per cluster from its visit list (rare for un/toep)
            keys = np.empty(starts.shape[0], dtype=np.int64)
            seen: dict = {}
            for c, (s, m) in enumerate(zip(starts, self.layout.sizes)):
                keys[c] = seen.setdefault(tuple(self._visit[s : s + m]), len(seen))
            return keys
        bits = np.left_shift(np.int64(1), self._visit.astype(np.int64))
        return np.bitwise_or.reduceat(bits, starts)

    def correlation_at(self, psi, times):
        from ..exceptions import ArgumentError

        t = np.asarray(times, dtype=float)
        idx = np.clip(np.searchsorted(self._visit_values, t), 0, self._visit_values.shape[0] - 1)
        bad = ~np.isclose(self._visit_values[idx], t)
        if bad.any():
            raise ArgumentError(f"time {t[bad][0]:g} is not one of the fitted visits "
                                f"{self._visit_values.tolist()}; a {self.name} structure has correlations for those only")
        return self.full_correlation(psi)[np.ix_(idx, idx)]

    def cluster_correlation(self, psi, visits):
        return self.full_correlation(psi)[np.ix_(visits, visits)]

    def pair_correlation(self, psi, t1, t2):
        v = self._visit_values
        i = np.clip(np.searchsorted(v, np.asarray(t1, dtype=float)), 0, v.shape[0] - 1)
        j = np.clip(np.searchsorted(v, np.asarray(t2, dtype=float)), 0, v.shape[0] - 1)
        return self.full_correlation(psi)[i, j]


class ResidualUN(_ByVisit):
    """``un(visit | g)`` (nlme ``corSymm``, SAS TYPE=UN with one variance): a free correlation for every pair of visits.

    R = normalise(L L') with L unit lower triangular (its k(k-1)/2 entries below the diagonal are
    ψ), so every ψ gives a valid correlation matrix.

    Parameters
    ----------
    layout : ClusterLayout
        The fitted rows sorted by (cluster, time).
    """

    name = "un"
    description = "General correlation"

    def __init__(self, layout):
        super().__init__(layout)
        self.k = self._visit_values.shape[0]
        self.n_params = self.k * (self.k - 1) // 2
        self._tril = np.tril_indices(self.k, -1)

    def full_correlation(self, psi):
        """The k x k correlation matrix over all fitted visits, normalise(L L').

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            R, visits in sorted order.
        """
        L = np.eye(self.k)
        L[self._tril] = psi
        S = L @ L.T
        d = np.sqrt(np.diag(S))
        return S / np.outer(d, d)

    def report(self, psi):
        """Every pair's correlation, ``cor(t_i,t_j)``.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).

        Returns
        -------
        dict
            Name -> float, pairs (i, j > i) row by row.
        """
        R = self.full_correlation(np.asarray(psi, dtype=float))
        v = self._visit_values
        return {f"cor({v[i]:g},{v[j]:g})": float(R[j, i]) for i in range(self.k) for j in range(i + 1, self.k)}

    def param_names(self):
        """Names ``group.L<r><c>`` of L's entries below the diagonal.

        Returns
        -------
        list of str
            k(k-1)/2 names.
        """
        g = self.layout.spec.group_name
        return [f"{g}.L{r + 1}{c + 1}" for r, c in zip(*self._tril)]

    def from_natural(self, values):
        """ψ (L's entries) from the pairs' correlations.

        Parameters
        ----------
        values : numpy.ndarray
            The correlations in ``report``'s order.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (k(k-1)/2,), or None when they are not a positive definite correlation matrix.
        """
        R = np.eye(self.k)
        at = 0
        for i in range(self.k):  # report's order: pairs (i, j > i), row by row
            for j in range(i + 1, self.k):
                R[i, j] = R[j, i] = values[at]
                at += 1
        try:
            C = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            return None
        L = C / np.diag(C)[:, None]  # chol(Λ R Λ) = Λ chol(R): unit diagonal for Λ = 1 / diag(C)
        return L[self._tril]


class ResidualToep(_ByVisit):
    """``toep(visit | g)``: a correlation for each lag between integer visits (SAS TYPE=TOEP with one variance).

    Parameterised by partial autocorrelations, so every ψ gives a positive definite R.

    Parameters
    ----------
    layout : ClusterLayout
        The fitted rows sorted by (cluster, time).
    """

    name = "toep"
    description = "Toeplitz"
    integer_times = True

    def __init__(self, layout):
        super().__init__(layout)
        v = self._visit_values
        self._lags = np.abs(np.subtract.outer(v, v)).round().astype(np.int64)
        self.n_params = int(self._lags.max())

    def lag_correlations(self, psi):
        """ρ_0 = 1, ρ_1, ..., ρ_m from the partial autocorrelations ψ_j / sqrt(1 + ψ_j²).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).

        Returns
        -------
        numpy.ndarray, shape (m + 1,)
            The lag correlations.
        """
        return np.asarray(_acf_from_pacf(rho_from_param(np.asarray(psi, dtype=float))), dtype=float)

    def full_correlation(self, psi):
        """The correlation matrix over all fitted visits, ρ_|lag| in each cell.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            R, visits in sorted order.
        """
        return self.lag_correlations(psi)[self._lags]

    def report(self, psi):
        """The lag correlations ``rho1`` .. ``rhom``.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            The structure's parameters ψ (unbounded).

        Returns
        -------
        dict
            Name -> float.
        """
        rho = self.lag_correlations(psi)
        return {f"rho{h}": float(rho[h]) for h in range(1, self.n_params + 1)}

    def param_names(self):
        """Names ``group.pacf1`` .. ``group.pacfm``.

        Returns
        -------
        list of str
            m names.
        """
        g = self.layout.spec.group_name
        return [f"{g}.pacf{h + 1}" for h in range(self.n_params)]

    def from_natural(self, values):
        """ψ from the lag correlations.

        Parameters
        ----------
        values : numpy.ndarray, shape (m,)
            ρ_1..ρ_m.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (m,), or None when they are not a positive definite Toeplitz correlation.
        """
        pacf = pacf_from_acf(np.concatenate([[1.0], np.asarray(values, dtype=float)]))
        return None if pacf is None else param_from_rho(pacf)


_CLASSES = {"ar1": ResidualAR1, "exp": ResidualExp, "cs": ResidualCS, "un": ResidualUN, "toep": ResidualToep}


def make_residual(spec, data):
    """The residual structure of ``spec`` over the model frame's rows ``data``.

    Parameters
    ----------
    spec : ResidualSpec
        The parsed ``residual=`` text.
    data : DataFrame
        The complete rows, in fit order.

    Returns
    -------
    ResidualStructure
    """
    from .layout import ClusterLayout

    cls = _CLASSES[spec.name]
    layout = ClusterLayout(spec, data, integer_times=cls.integer_times, unique_times=spec.time is not None)
    return cls(layout)
