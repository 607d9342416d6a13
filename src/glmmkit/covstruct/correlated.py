"""Structures Σ = D R(ψ) D: standard deviations times a correlation matrix of a few parameters.

The template is T = D L with L the Cholesky factor of R(ψ) (for D >= 0 diagonal,
chol(D R D) = D chol(R)), so a standard deviation at 0 -- a singular fit -- is a
zero row of T, on the boundary like lme4's.  Standard deviations are relative to
σ (the residual SD of a Gaussian model, 1 otherwise) and bounded below by 0;
correlation parameters are unbounded and mapped into the valid range.

The Jacobian of T's entries needs dL/dψ, which follows from dR/dψ:
dL = L Φ(L⁻¹ dR L⁻ᵀ), Φ taking the lower triangle with the diagonal halved.
dR/dψ comes by complex-step differentiation of ``correlation`` (exact to
rounding for the analytic maps used here), or central differences for a
structure whose correlation is not analytic in its parameters
(``complex_step = False``).

Subclasses set ``n_corr`` and implement ``correlation(psi)`` (valid for complex
ψ when ``complex_step``), ``corr_start``, ``corr_from_matrix`` (a projection used
for starts), ``corr_names`` and ``report``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from .base import CovStructure

__all__ = ["ScaledCorrelation", "CompoundSymmetry", "AR1", "Toeplitz", "lag_matrix",
           "rho_from_param", "param_from_rho", "pacf_from_acf"]

_H = 1e-30  # complex step


def rho_from_param(psi):
    """glmmTMB's map of an unbounded parameter into (-1, 1): ψ / sqrt(1 + ψ²).

    Parameters
    ----------
    psi : float or numpy.ndarray
        Unbounded parameter(s); complex values allowed.

    Returns
    -------
    float or numpy.ndarray
        ρ, the shape of ``psi`` (complex for a complex step).
    """
    return psi / np.sqrt(1.0 + psi * psi)


def param_from_rho(rho):
    """Inverse of :func:`rho_from_param`: ψ = ρ / sqrt(1 - ρ²).

    Parameters
    ----------
    rho : float or array-like
        Correlation(s), clipped to [-0.999, 0.999] first so ψ stays finite.

    Returns
    -------
    numpy.ndarray
        ψ, the shape of ``rho``.
    """
    rho = np.clip(np.asarray(rho, dtype=float), -0.999, 0.999)
    return rho / np.sqrt(1.0 - rho * rho)


def lag_matrix(positions) -> np.ndarray:
    """|p_i - p_j| for positions on one axis (integers for AR(1) and Toeplitz).

    Parameters
    ----------
    positions : array-like, shape (k,)
        Position of each column (time points).

    Returns
    -------
    numpy.ndarray, shape (k, k)
        Symmetric, zero diagonal, float.
    """
    p = np.asarray(positions, dtype=float)
    return np.abs(np.subtract.outer(p, p))


class ScaledCorrelation(CovStructure):
    """Σ = D R(ψ) D, D = diag(s), with one s per column (heterogeneous) or one for all.

    Parameters
    ----------
    k : int
        Number of columns (random effects per level).
    heterogeneous : bool
        One standard deviation per column (True) or one shared by all (False).
    """

    n_corr: int = 0
    complex_step: bool = True

    def __init__(self, k: int, heterogeneous: bool):
        self.k = int(k)
        self.heterogeneous = bool(heterogeneous)
        self.n_sd = self.k if self.heterogeneous else 1
        self.n_params = self.n_sd + self.n_corr
        rows, cols = np.tril_indices(self.k)
        self.pattern = (rows.astype(np.int64), cols.astype(np.int64))

    # ----- to be provided -----
    def correlation(self, psi: np.ndarray) -> np.ndarray:
        """The k x k correlation matrix R(ψ) (complex ψ allowed when ``complex_step``).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_corr,)
            The correlation parameters (unbounded).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            A correlation matrix (unit diagonal), complex when ``psi`` is.
        """
        raise NotImplementedError

    def corr_start(self) -> np.ndarray:
        """Starting correlation parameters (ψ = 0 by default).

        Returns
        -------
        numpy.ndarray, shape (n_corr,)
            Starting ψ.
        """
        return np.zeros(self.n_corr)

    def corr_from_matrix(self, R: np.ndarray) -> np.ndarray:
        """ψ whose correlation matrix is close to the correlation matrix R (a projection used for starts).

        Parameters
        ----------
        R : numpy.ndarray, shape (k, k)
            A correlation matrix.

        Returns
        -------
        numpy.ndarray, shape (n_corr,)
            ψ (the default start here; subclasses project).
        """
        return self.corr_start()

    def corr_names(self, label: str) -> list[str]:
        """Names of the correlation parameters, ``label.cor1``, ``label.cor2``, ... by default.

        Parameters
        ----------
        label : str
            The term's label.

        Returns
        -------
        list of str
            ``n_corr`` names.
        """
        return [f"{label}.cor{j + 1}" for j in range(self.n_corr)]

    # ----- parameters -----
    def names(self, label, columns):
        """The standard deviations' names (``label.col`` each, or ``label.sd``) then ``corr_names``.

        Parameters
        ----------
        label : str
            The term's label (e.g. ``"Subject"``), the names' prefix.
        columns : list of str
            The term's column names (e.g. ``["(Intercept)", "Days"]``).

        Returns
        -------
        list of str
            ``n_params`` names.
        """
        sds = [f"{label}.{c}" for c in columns] if self.heterogeneous else [f"{label}.sd"]
        return sds + self.corr_names(label)

    def lower(self):
        """Lower bounds: 0 for the standard deviations, -inf for the (unbounded) correlation parameters.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            The bounds.
        """
        return np.concatenate([np.zeros(self.n_sd), np.full(self.n_corr, -np.inf)])

    def start(self):
        """Standard deviations 1 and the correlation's ``corr_start``.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ.
        """
        return np.concatenate([np.ones(self.n_sd), self.corr_start()])

    def scaled_start(self, column_rms):
        """Standard deviations 1 / rms (per column, or one from the mean square) and ``corr_start``.

        Parameters
        ----------
        column_rms : numpy.ndarray, shape (k,)
            Root mean square of each of the term's columns over the rows.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ.
        """
        rms = np.asarray(column_rms, dtype=float)
        good = (rms > 0) & np.isfinite(rms)
        if self.heterogeneous:
            sd = np.where(good, 1.0 / np.where(good, rms, 1.0), 1.0)
        else:
            sd = np.array([1.0 / np.sqrt(np.mean(rms[good] ** 2))]) if good.any() else np.ones(1)
        return np.concatenate([sd, self.corr_start()])

    # ----- the template -----
    def _sd(self, phi):
        s = np.asarray(phi[: self.n_sd], dtype=float)
        return s if self.heterogeneous else np.full(self.k, s[0])

    def _chol(self, psi):
        R = self.correlation(np.asarray(psi, dtype=float))
        try:
            return np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            return None

    def template(self, phi):
        """T = D L, L = chol(R(ψ)) and D = diag(s).

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            The template; all NaN when R(ψ) is numerically singular (a correlation at ±1).
        """
        phi = np.asarray(phi, dtype=float)
        L = self._chol(phi[self.n_sd:])
        if L is None:  # numerically singular R (a correlation at ±1): no valid template
            return np.full((self.k, self.k), np.nan)
        return self._sd(phi)[:, None] * L

    def correlation_derivatives(self, psi: np.ndarray) -> np.ndarray:
        """dR/dψ_j by complex step (exact to rounding) or, without ``complex_step``, central differences.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_corr,)
            The correlation parameters.

        Returns
        -------
        numpy.ndarray, shape (n_corr, k, k)
            One derivative matrix per correlation parameter.
        """
        psi = np.asarray(psi, dtype=float)
        out = np.empty((self.n_corr, self.k, self.k))
        for j in range(self.n_corr):
            if self.complex_step:
                z = psi.astype(complex)
                z[j] += 1j * _H
                out[j] = self.correlation(z).imag / _H
            else:
                h = 1e-5 * max(1.0, abs(psi[j]))
                up, dn = psi.copy(), psi.copy()
                up[j] += h
                dn[j] -= h
                out[j] = (self.correlation(up) - self.correlation(dn)) / (2 * h)
        return out

    def jacobian(self, phi):
        """d T[pattern] / dφ: rows of L for the standard deviations, D L Φ(L⁻¹ dR L⁻ᵀ) for each ψ.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (k (k + 1) / 2, n_params)
            Rows in ``pattern`` order; all NaN when R(ψ) is numerically singular.
        """
        phi = np.asarray(phi, dtype=float)
        k, rows, cols = self.k, *self.pattern
        J = np.zeros((rows.shape[0], self.n_params))
        psi = phi[self.n_sd:]
        L = self._chol(psi)
        if L is None:
            return np.full(J.shape, np.nan)
        if self.heterogeneous:  # dT/ds_i = row i of L
            J[np.arange(rows.shape[0]), rows] = L[rows, cols]
        else:
            J[:, 0] = L[rows, cols]
        if self.n_corr:
            sd = self._sd(phi)
            Linv = solve_triangular(L, np.eye(k), lower=True)
            for j, dR in enumerate(self.correlation_derivatives(psi)):
                X = Linv @ dR @ Linv.T
                P = np.tril(X)
                P[np.diag_indices(k)] *= 0.5
                dT = sd[:, None] * (L @ P)
                J[:, self.n_sd + j] = dT[rows, cols]
        return J

    def from_template(self, T):
        """φ from T T': its standard deviations and ``corr_from_matrix`` of its correlations.

        Parameters
        ----------
        T : numpy.ndarray, shape (k, k)
            A lower-triangular template.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ.
        """
        T = np.asarray(T, dtype=float)
        S = T @ T.T
        d = np.sqrt(np.maximum(np.diag(S), 0.0))
        sd = d if self.heterogeneous else np.array([np.sqrt(np.mean(d**2))])
        with np.errstate(divide="ignore", invalid="ignore"):
            R = S / np.outer(d, d)
        R[~np.isfinite(R)] = 0.0
        np.fill_diagonal(R, 1.0)
        return np.concatenate([sd, self.corr_from_matrix(R)])

    def is_singular(self, phi, tol=1e-4):
        """A standard deviation within ``tol`` of 0.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).
        tol : float, default 1e-4
            How close to the boundary counts as on it.

        Returns
        -------
        bool
            True when the term is on the boundary.
        """
        return bool(np.any(np.abs(np.asarray(phi[: self.n_sd])) < tol))

    # interval parameters: the standard deviations, then the correlation's own (rho, range, ...)
    def corr_natural(self, psi) -> list[tuple]:
        """The correlation's natural parameters for intervals (``rho``, ``range``, ...).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_corr,)
            The correlation parameters.

        Returns
        -------
        list of tuple
            ``(name, value, lower, upper)`` each.
        """
        raise NotImplementedError

    def corr_from_natural(self, values) -> np.ndarray | None:
        """ψ from the values ``corr_natural`` reports (the inverse map).

        Parameters
        ----------
        values : numpy.ndarray
            The natural correlation parameters (as ``corr_natural`` reports them), in its order.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (n_corr,), or None when the values are outside the valid range.
        """
        raise NotImplementedError

    def natural(self, phi, sigma, columns):
        """The standard deviations ``sd_<col>`` (or ``sd``) times σ, then ``corr_natural``.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).
        sigma : float
            Residual standard deviation (1 for models without a scale).
        columns : list of str
            The term's column names (e.g. ``["(Intercept)", "Days"]``).

        Returns
        -------
        list of tuple
            ``(name, value, lower, upper)`` each.
        """
        phi = np.asarray(phi, dtype=float)
        sds = ([(f"sd_{c}", float(sigma * p), 0.0, np.inf) for c, p in zip(columns, phi[: self.n_sd])]
               if self.heterogeneous else [("sd", float(sigma * phi[0]), 0.0, np.inf)])
        return sds + self.corr_natural(phi[self.n_sd:])

    def from_natural(self, values, sigma):
        """φ from ``natural``'s values: standard deviations over σ, then ``corr_from_natural``.

        Parameters
        ----------
        values : numpy.ndarray
            Values of the parameters ``natural`` reports, in its order.
        sigma : float
            Residual standard deviation (1 for models without a scale).

        Returns
        -------
        numpy.ndarray or None
            φ of shape (n_params,), or None when the correlation values are invalid.
        """
        values = np.asarray(values, dtype=float)
        psi = self.corr_from_natural(values[self.n_sd:])
        if psi is None:
            return None
        return np.concatenate([values[: self.n_sd] / sigma, psi])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, heterogeneous={self.heterogeneous})"


class CompoundSymmetry(ScaledCorrelation):
    """``cs(f + 0 | g)`` (one variance per column, glmmTMB's ``cs``) and ``homcs`` (one variance).

    Every pair of columns has the same correlation ρ, -1/(k-1) < ρ < 1;
    ρ = -a + (1 + a) · logistic(ψ), a = 1/(k-1) (glmmTMB's map).

    Parameters
    ----------
    k : int
        Number of columns, at least 2.
    heterogeneous : bool, default True
        One standard deviation per column (``cs``) or one shared (``homcs``).

    Raises
    ------
    ValueError
        k < 2.
    """

    n_corr = 1
    kind = "cs"
    description = "compound symmetry"

    def __init__(self, k: int, heterogeneous: bool = True):
        if int(k) < 2:
            raise ValueError("compound symmetry needs at least 2 columns")
        super().__init__(k, heterogeneous)
        self.label = "cs" if heterogeneous else "homcs"
        self._a = 1.0 / (self.k - 1)

    def rho(self, psi):
        """The common correlation ρ = -a + (1 + a) · logistic(ψ), a = 1/(k-1).

        Parameters
        ----------
        psi : float or numpy.ndarray
            The unbounded correlation parameter (complex allowed).

        Returns
        -------
        float or numpy.ndarray
            ρ in (-1/(k-1), 1).
        """
        return -self._a + (1.0 + self._a) / (1.0 + np.exp(-psi))

    def correlation(self, psi):
        """R with ρ off the diagonal and 1 on it.

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            The correlation parameter.

        Returns
        -------
        numpy.ndarray, shape (k, k)
            The correlation matrix (complex when ``psi`` is).
        """
        r = self.rho(psi[0])
        R = np.full((self.k, self.k), r, dtype=np.result_type(psi, float))
        np.fill_diagonal(R, 1.0)
        return R

    def corr_start(self):
        """ψ of ρ = 0.

        Returns
        -------
        numpy.ndarray, shape (1,)
            Starting ψ.
        """
        return self.corr_from_rho(0.0)

    def corr_from_rho(self, rho):
        """ψ of a common correlation ρ (clipped just inside its range).

        Parameters
        ----------
        rho : float
            The correlation.

        Returns
        -------
        numpy.ndarray, shape (1,)
            ψ.
        """
        p = (float(np.clip(rho, -self._a + 1e-6, 1 - 1e-6)) + self._a) / (1.0 + self._a)
        return np.array([np.log(p / (1.0 - p))])

    def corr_from_matrix(self, R):
        """ψ of the mean off-diagonal correlation of R.

        Parameters
        ----------
        R : numpy.ndarray, shape (k, k)
            A correlation matrix.

        Returns
        -------
        numpy.ndarray, shape (1,)
            ψ.
        """
        off = R[~np.eye(self.k, dtype=bool)]
        return self.corr_from_rho(float(np.mean(off)))

    def corr_names(self, label):
        """The name ``label.rho``.

        Parameters
        ----------
        label : str
            The term's label.

        Returns
        -------
        list of str
            One name.
        """
        return [f"{label}.rho"]

    def report(self, phi):
        """The common correlation, for summaries.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        dict
            ``{"rho": float}``.
        """
        return {"rho": float(self.rho(float(phi[self.n_sd])))}

    def corr_natural(self, psi):
        """ρ with its bounds (-1/(k-1), 1).

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            The correlation parameter.

        Returns
        -------
        list of tuple
            ``[("rho", value, -1/(k-1), 1.0)]``.
        """
        return [("rho", float(self.rho(float(psi[0]))), -self._a, 1.0)]

    def corr_from_natural(self, values):
        """ψ of a given ρ.

        Parameters
        ----------
        values : numpy.ndarray, shape (1,)
            ρ.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (1,), or None when ρ is outside (-1/(k-1), 1).
        """
        r = float(values[0])
        return None if not -self._a < r < 1.0 else self.corr_from_rho(r)


class AR1(ScaledCorrelation):
    """``ar1(0 + f | g)`` (one variance, glmmTMB's ``ar1``) and ``hetar1`` (one per column).

    Correlation ρ^|p_i - p_j| between positions p (the columns' order 0, 1, ..., or integer
    times), ρ = ψ / sqrt(1 + ψ²).

    Parameters
    ----------
    k : int
        Number of columns (time points), at least 2.
    heterogeneous : bool, default False
        One standard deviation per column (``hetar1``) or one shared (``ar1``).
    positions : array of int, optional
        Integer position of each column (default 0..k-1).

    Raises
    ------
    ValueError
        k < 2.
    """

    n_corr = 1
    kind = "ar1"
    description = "AR(1)"

    def __init__(self, k: int, heterogeneous: bool = False, positions=None):
        if int(k) < 2:
            raise ValueError("AR(1) needs at least 2 columns (time points)")
        super().__init__(k, heterogeneous)
        self.label = "hetar1" if heterogeneous else "ar1"
        self.positions = np.arange(self.k) if positions is None else np.asarray(positions)
        self._lags = lag_matrix(self.positions).astype(np.int64)

    def correlation(self, psi):
        """R = ρ^lag with ρ = ψ / sqrt(1 + ψ²).

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            The correlation parameter.

        Returns
        -------
        numpy.ndarray, shape (k, k)
            The correlation matrix (complex when ``psi`` is).
        """
        r = rho_from_param(psi[0])
        return r ** self._lags

    def corr_from_matrix(self, R):
        """ψ of the mean lag-1 correlation of R (0 when no pair is one apart).

        Parameters
        ----------
        R : numpy.ndarray, shape (k, k)
            A correlation matrix.

        Returns
        -------
        numpy.ndarray, shape (1,)
            ψ.
        """
        one = self._lags == 1
        r = float(np.mean(R[one])) if one.any() else 0.0
        return np.atleast_1d(param_from_rho(r))

    def corr_names(self, label):
        """The name ``label.rho``.

        Parameters
        ----------
        label : str
            The term's label.

        Returns
        -------
        list of str
            One name.
        """
        return [f"{label}.rho"]

    def report(self, phi):
        """The lag-1 correlation, for summaries.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        dict
            ``{"rho": float}``.
        """
        return {"rho": float(rho_from_param(float(phi[self.n_sd])))}

    def corr_natural(self, psi):
        """ρ with its bounds (-1, 1).

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            The correlation parameter.

        Returns
        -------
        list of tuple
            ``[("rho", value, -1.0, 1.0)]``.
        """
        return [("rho", float(rho_from_param(float(psi[0]))), -1.0, 1.0)]

    def corr_from_natural(self, values):
        """ψ of a given ρ.

        Parameters
        ----------
        values : numpy.ndarray, shape (1,)
            ρ.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (1,), or None when ρ is outside (-1, 1).
        """
        r = float(values[0])
        return None if not -1.0 < r < 1.0 else np.atleast_1d(param_from_rho(r))


def pacf_from_acf(acf) -> np.ndarray | None:
    """Partial autocorrelations from ρ_0 = 1, ρ_1, ..., ρ_m (Levinson's recursion).

    Parameters
    ----------
    acf : array-like, shape (m + 1,)
        Autocorrelations, starting with ρ_0 = 1.

    Returns
    -------
    numpy.ndarray or None
        π_1..π_m, shape (m,); None when the autocorrelations are not those of a positive definite
        Toeplitz matrix (some |π| >= 1).
    """
    acf = np.asarray(acf, dtype=float)
    m = acf.shape[0] - 1
    pacf = np.zeros(m)
    phi = np.zeros(0)
    v = 1.0
    for n in range(m):
        num = acf[n + 1] - (phi @ acf[n:0:-1] if n else 0.0)
        p = num / v
        if not -1.0 < p < 1.0:
            return None
        phi = np.concatenate([phi - p * phi[::-1], [p]])
        v *= 1.0 - p * p
        pacf[n] = p
    return pacf


def _acf_from_pacf(pacf):
    """Autocorrelations ρ_1..ρ_m from partial autocorrelations (Durbin-Levinson); every pacf in
    (-1, 1) gives a positive definite Toeplitz matrix, and every such matrix has one."""
    m = pacf.shape[0]
    rho = [1.0 + 0 * pacf[0]] if m else [1.0]
    coef = []
    for n in range(m):
        p = pacf[n]
        coef = [c - p * coef[n - 1 - j] for j, c in enumerate(coef)] + [p]
        rho.append(sum(coef[j] * rho[n - j] for j in range(n + 1)))
    return rho  # rho[0] = 1


class Toeplitz(ScaledCorrelation):
    """``toep(0 + f | g)``: a correlation for each lag between positions.

    Heterogeneous variances as glmmTMB's ``toep``; ``homtoep`` one variance.  The lag correlations
    are parameterised by partial autocorrelations π_j = ψ_j / sqrt(1 + ψ_j²), so every ψ gives a
    positive definite R (glmmTMB maps each lag's correlation directly, which can leave that set;
    the estimates agree inside it).

    Parameters
    ----------
    k : int
        Number of columns (time points), at least 2.
    heterogeneous : bool, default True
        One standard deviation per column (``toep``) or one shared (``homtoep``).
    positions : array of int, optional
        Integer position of each column (default 0..k-1); the largest lag is the number of
        correlation parameters.

    Raises
    ------
    ValueError
        k < 2.
    """

    kind = "toep"
    description = "Toeplitz"

    def __init__(self, k: int, heterogeneous: bool = True, positions=None):
        if int(k) < 2:
            raise ValueError("a Toeplitz structure needs at least 2 columns (time points)")
        self.positions = np.arange(int(k)) if positions is None else np.asarray(positions)
        self._lags = lag_matrix(self.positions).astype(np.int64)
        self.n_corr = int(self._lags.max())
        super().__init__(k, heterogeneous)
        self.label = "toep" if heterogeneous else "homtoep"

    def lag_correlations(self, psi):
        """The lag correlations from the partial autocorrelations (Durbin-Levinson).

        Parameters
        ----------
        psi : numpy.ndarray, shape (m,)
            The unbounded partial-autocorrelation parameters.

        Returns
        -------
        list
            ρ_0 = 1, ρ_1, ..., ρ_m (m the largest lag), floats (complex for complex ψ).
        """
        return _acf_from_pacf(rho_from_param(np.asarray(psi)))

    def correlation(self, psi):
        """R with ρ_|p_i - p_j| in cell (i, j).

        Parameters
        ----------
        psi : numpy.ndarray, shape (m,)
            The correlation parameters.

        Returns
        -------
        numpy.ndarray, shape (k, k)
            The correlation matrix.
        """
        rho = self.lag_correlations(psi)
        return np.asarray(rho)[self._lags]

    def corr_from_matrix(self, R):
        # the lags' mean correlations, then their partial autocorrelations (shrunk until valid)
        """ψ of R's mean correlation per lag, shrunk towards 0 until it is a valid Toeplitz correlation.

        Parameters
        ----------
        R : numpy.ndarray, shape (k, k)
            A correlation matrix.

        Returns
        -------
        numpy.ndarray, shape (m,)
            ψ (partial autocorrelations clipped to ±0.95).
        """
        m = self.n_corr
        acf = np.array([1.0] + [float(np.mean(R[self._lags == h])) if (self._lags == h).any() else 0.0
                                for h in range(1, m + 1)])
        for shrink in (1.0, 0.9, 0.7, 0.5, 0.0):
            pacf = pacf_from_acf(np.concatenate([[1.0], shrink * acf[1:]]))
            if pacf is not None:
                return param_from_rho(np.clip(pacf, -0.95, 0.95))
        return self.corr_start()

    def corr_natural(self, psi):
        """The lag correlations ``rho1`` .. ``rhom`` with bounds (-1, 1).

        Parameters
        ----------
        psi : numpy.ndarray, shape (m,)
            The correlation parameters.

        Returns
        -------
        list of tuple
            ``(f"rho{h}", value, -1.0, 1.0)`` per lag.
        """
        rho = self.lag_correlations(np.asarray(psi, dtype=float))
        return [(f"rho{h}", float(rho[h]), -1.0, 1.0) for h in range(1, self.n_corr + 1)]

    def corr_from_natural(self, values):
        """ψ from lag correlations ρ_1..ρ_m.

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

    def corr_names(self, label):
        """Names ``label.pacf1`` .. ``label.pacfm`` (the parameters are partial autocorrelations).

        Parameters
        ----------
        label : str
            The term's label.

        Returns
        -------
        list of str
            m names.
        """
        return [f"{label}.pacf{h + 1}" for h in range(self.n_corr)]

    def report(self, phi):
        """The lag correlations, for summaries.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        dict
            ``{"rho1": ..., ..., "rhom": ...}``.
        """
        rho = self.lag_correlations(np.asarray(phi[self.n_sd:], dtype=float))
        return {f"rho{h}": float(rho[h]) for h in range(1, self.n_corr + 1)}
