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
        raise NotImplementedError

    def lower(self) -> np.ndarray:
        return np.full(self.n_params, -np.inf)

    def upper(self) -> np.ndarray:
        return np.full(self.n_params, np.inf)

    def start(self) -> np.ndarray:
        return np.zeros(self.n_params)

    # the transform
    def whiten(self, psi: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, float]:
        """W A (rows sorted by the layout) and log|R|."""
        raise NotImplementedError

    def color(self, psi: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """W⁻¹ Z: independent standard normal rows (sorted) -> rows correlated by R."""
        raise NotImplementedError

    def report(self, psi: np.ndarray) -> dict:
        """The reported parameters at ψ: ``rho`` (ar1, exp: the correlation at a lag of one time unit,
        nlme's Phi; cs: the common correlation, nlme's Rho), every pair's correlation (un), the lag
        correlations (toep)."""
        raise NotImplementedError

    def correlation_at(self, psi: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The correlation matrix of one cluster's residuals at the given times."""
        raise NotImplementedError

    def pair_correlation(self, psi: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
        """R between pairs of residuals of one cluster at times t1[k] and t2[k] (fitted times)."""
        raise NotImplementedError

    def natural(self, psi: np.ndarray) -> list[tuple]:
        """``(name, value, lower, upper)`` of the reported parameters (intervals, profiles)."""
        lo, hi = self.natural_bounds()
        return [(k, v, lo, hi) for k, v in self.report(psi).items()]

    def natural_bounds(self) -> tuple[float, float]:
        return -1.0, 1.0

    def from_natural(self, values: np.ndarray) -> np.ndarray | None:
        """ψ from the reported parameters' values (None when they are not valid)."""
        raise NotImplementedError

    @property
    def formula(self) -> str:
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
        return rho_from_param(psi)

    def from_natural(self, values):
        r = float(values[0])
        return None if not -1.0 < r < 1.0 else np.atleast_1d(param_from_rho(r))


class ResidualExp(_Markov):
    """``exp(time | g)`` (nlme ``corCAR1``): ρ^|t_i - t_j| for continuous times, 0 < ρ < 1 the
    correlation at a lag of one time unit (nlme's Phi); ρ = logistic(ψ)."""

    name = "exp"
    description = "Continuous AR(1)"
    nlme_names = {"rho": "Phi"}

    def rho(self, psi):
        return _logistic(psi)

    def start(self):
        return np.array([np.log(0.2 / 0.8)])

    def natural_bounds(self):
        return 0.0, 1.0

    def from_natural(self, values):
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
    """``cs(1 | g)`` (nlme ``corCompSymm``): one correlation ρ between any two residuals of a cluster,
    -1/(m - 1) < ρ < 1 for the largest cluster size m; ρ = -a + (1 + a) logistic(ψ), a = 1/(m - 1)."""

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
        return -self._a + (1.0 + self._a) * _logistic(float(psi[0]))

    def start(self):
        p = self._a / (1.0 + self._a)
        return np.array([np.log(p / (1.0 - p))])

    def cluster_correlation(self, psi, visits):
        m = visits.shape[0]
        r = self.rho(psi)
        return (1.0 - r) * np.eye(m) + r

    def correlation_at(self, psi, times):
        return self.cluster_correlation(psi, np.asarray(times))

    def pair_correlation(self, psi, t1, t2):
        return np.where(np.asarray(t1) == np.asarray(t2), 1.0, self.rho(psi))

    def report(self, psi):
        return {"rho": float(self.rho(psi))}

    def natural_bounds(self):
        return -self._a, 1.0

    def from_natural(self, values):
        r = float(values[0])
        if not -self._a < r < 1.0:
            return None
        p = (r + self._a) / (1.0 + self._a)
        return np.array([np.log(p / (1.0 - p))])

    def param_names(self):
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
    """``un(visit | g)`` (nlme ``corSymm``, SAS TYPE=UN with one variance): a free correlation for every
    pair of visits.  R = normalise(L L') with L unit lower triangular (its k(k-1)/2 entries below the
    diagonal are ψ), so every ψ gives a valid correlation matrix."""

    name = "un"
    description = "General correlation"

    def __init__(self, layout):
        super().__init__(layout)
        self.k = self._visit_values.shape[0]
        self.n_params = self.k * (self.k - 1) // 2
        self._tril = np.tril_indices(self.k, -1)

    def full_correlation(self, psi):
        L = np.eye(self.k)
        L[self._tril] = psi
        S = L @ L.T
        d = np.sqrt(np.diag(S))
        return S / np.outer(d, d)

    def report(self, psi):
        R = self.full_correlation(np.asarray(psi, dtype=float))
        v = self._visit_values
        return {f"cor({v[i]:g},{v[j]:g})": float(R[j, i]) for i in range(self.k) for j in range(i + 1, self.k)}

    def param_names(self):
        g = self.layout.spec.group_name
        return [f"{g}.L{r + 1}{c + 1}" for r, c in zip(*self._tril)]

    def from_natural(self, values):
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
    """``toep(visit | g)``: a correlation for each lag between integer visits (SAS TYPE=TOEP with one
    variance), parameterised by partial autocorrelations (always positive definite)."""

    name = "toep"
    description = "Toeplitz"
    integer_times = True

    def __init__(self, layout):
        super().__init__(layout)
        v = self._visit_values
        self._lags = np.abs(np.subtract.outer(v, v)).round().astype(np.int64)
        self.n_params = int(self._lags.max())

    def lag_correlations(self, psi):
        return np.asarray(_acf_from_pacf(rho_from_param(np.asarray(psi, dtype=float))), dtype=float)

    def full_correlation(self, psi):
        return self.lag_correlations(psi)[self._lags]

    def report(self, psi):
        rho = self.lag_correlations(psi)
        return {f"rho{h}": float(rho[h]) for h in range(1, self.n_params + 1)}

    def param_names(self):
        g = self.layout.spec.group_name
        return [f"{g}.pacf{h + 1}" for h in range(self.n_params)]

    def from_natural(self, values):
        pacf = pacf_from_acf(np.concatenate([[1.0], np.asarray(values, dtype=float)]))
        return None if pacf is None else param_from_rho(pacf)


_CLASSES = {"ar1": ResidualAR1, "exp": ResidualExp, "cs": ResidualCS, "un": ResidualUN, "toep": ResidualToep}


def make_residual(spec, data):
    """The residual structure of ``spec`` over the model frame's rows ``data``.

    Parameters
    ----------
    spec : ResidualSpec
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
