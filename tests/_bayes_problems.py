"""Log-densities for testing and measuring the MCMC sampler (glmmkit.bayes.sampler).

Not the project's general model log-density (that lives in glmmkit.bayes.model): these are
hand-written targets with analytic gradients, each offered as a plain numpy callable and, for the
compiled paths, as a numba function with its data passed as arrays.

- ``CbppLogp``: cbpp's ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial logit,
  non-centred: beta ~ N(0, 2.5^2) per coefficient, s = log(sigma) with sigma ~ exponential(1) plus
  the Jacobian, z ~ N(0, 1), b = sigma * z. Parameter vector: (beta[4], s, z[15]).
- ``GaussianLogp``: a 100-dimensional correlated Gaussian (AR(1) correlation 0.7, scales 0.5..2).
- ``StdNormalLogp``, ``FunnelLogp``: simple targets for the tests.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a base dependency
    numba = None


def _cbpp_arrays():
    from glmmkit.datasets import load

    df = load("cbpp")
    period = df["period"].cat.codes.to_numpy()
    x = np.zeros((len(df), 4))
    x[:, 0] = 1.0
    for k in range(1, 4):
        x[:, k] = period == k
    herd = df["herd"].cat.codes.to_numpy().astype(np.int64)
    y = df["incidence"].to_numpy().astype(float)
    n = df["size"].to_numpy().astype(float)
    return x, y, n, herd, int(herd.max()) + 1


class CbppLogp:
    """cbpp random-intercept logistic model, non-centred, with rstanarm-like priors."""

    prior_sd = 2.5

    def __init__(self):
        self.x, self.y, self.n, self.herd, self.n_herd = _cbpp_arrays()
        self.p = self.x.shape[1]
        self.dim = self.p + 1 + self.n_herd

    def __call__(self, theta):
        p, x, herd = self.p, self.x, self.herd
        beta = theta[:p]
        s = theta[p]
        z = theta[p + 1:]
        sigma = np.exp(s)
        eta = x @ beta + sigma * z[herd]
        # log1p(exp(eta)) without overflow
        softplus = np.logaddexp(0.0, eta)
        mu = np.exp(eta - softplus)
        ll = np.sum(self.y * eta - self.n * softplus)
        lp = (ll - 0.5 * np.sum(beta * beta) / self.prior_sd**2 + s - sigma - 0.5 * np.sum(z * z))
        r = self.y - self.n * mu
        rz = np.bincount(herd, weights=r, minlength=self.n_herd)
        grad = np.empty_like(theta)
        grad[:p] = x.T @ r - beta / self.prior_sd**2
        grad[p] = sigma * np.dot(rz, z) + 1.0 - sigma
        grad[p + 1:] = sigma * rz - z
        return float(lp), grad

    @property
    def numba_data(self):
        return (self.x, self.y, self.n, self.herd)


if numba is not None:

    @numba.njit(cache=False, fastmath=False)
    def _cbpp_numba(theta, x, y, n, herd):
        nobs, p = x.shape
        nz = theta.shape[0] - p - 1
        sigma = np.exp(theta[p])
        grad = np.zeros_like(theta)
        rz = np.zeros(nz)
        lp = 0.0
        for i in range(nobs):
            eta = sigma * theta[p + 1 + herd[i]]
            for k in range(p):
                eta += x[i, k] * theta[k]
            if eta > 0:
                sp = eta + np.log1p(np.exp(-eta))
            else:
                sp = np.log1p(np.exp(eta))
            mu = np.exp(eta - sp)
            lp += y[i] * eta - n[i] * sp
            r = y[i] - n[i] * mu
            for k in range(p):
                grad[k] += x[i, k] * r
            rz[herd[i]] += r
        for k in range(p):
            lp -= 0.5 * theta[k] ** 2 / 6.25
            grad[k] -= theta[k] / 6.25
        lp += theta[p] - sigma
        acc = 0.0
        for j in range(nz):
            zj = theta[p + 1 + j]
            lp -= 0.5 * zj * zj
            acc += rz[j] * zj
            grad[p + 1 + j] = sigma * rz[j] - zj
        grad[p] = sigma * acc + 1.0 - sigma
        return lp, grad

    @numba.njit(cache=False)
    def _gauss_numba(theta, mean, prec):
        d = theta - mean
        g = -(prec @ d)
        return 0.5 * np.dot(d, g), g

    CbppLogp.numba_logp_and_grad = staticmethod(_cbpp_numba)


class GaussianLogp:
    """Correlated Gaussian: AR(1) correlation ``rho`` and scales log-spaced from 0.5 to 2."""

    def __init__(self, dim=100, rho=0.7):
        self.dim = dim
        idx = np.arange(dim)
        scales = np.geomspace(0.5, 2.0, dim)
        self.cov = rho ** np.abs(idx[:, None] - idx[None, :]) * np.outer(scales, scales)
        self.mean = np.linspace(-1.0, 1.0, dim)
        self.prec = np.linalg.inv(self.cov)
        self.prec = 0.5 * (self.prec + self.prec.T)

    def __call__(self, theta):
        d = theta - self.mean
        g = -(self.prec @ d)
        return float(0.5 * np.dot(d, g)), g

    @property
    def numba_data(self):
        return (self.mean, self.prec)


class StdNormalLogp:
    """Standard normal in ``dim`` dimensions."""

    def __init__(self, dim=5):
        self.dim = dim

    def __call__(self, theta):
        return float(-0.5 * np.dot(theta, theta)), -theta


class FunnelLogp:
    """Neal's funnel: v ~ N(0, 3^2), x_k | v ~ N(0, exp(v)); divergences are expected."""

    def __init__(self, dim=10):
        self.dim = dim

    def __call__(self, theta):
        v = theta[0]
        x = theta[1:]
        k = x.shape[0]
        ev = np.exp(-v)
        lp = -0.5 * v * v / 9.0 - 0.5 * k * v - 0.5 * ev * np.dot(x, x)
        grad = np.empty_like(theta)
        grad[0] = -v / 9.0 - 0.5 * k + 0.5 * ev * np.dot(x, x)
        grad[1:] = -ev * x
        return float(lp), grad


if numba is not None:
    GaussianLogp.numba_logp_and_grad = staticmethod(_gauss_numba)
