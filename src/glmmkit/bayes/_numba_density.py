"""numba kernel of :meth:`glmmkit.bayes.model.PosteriorModel.logp_and_grad` (the nutpie engine's callback).

The kernel computes the same log posterior density and gradient as the numpy method, on the same
unconstrained vector, for the model's "fast" kinds (gaussian identity, binomial logit, poisson log,
negative_binomial log, gamma log, beta logit) written in η, and the six families' other links
(probit, cloglog, cauchit, identity, log, inverse, sqrt) written in μ = g⁻¹(η): there the density
is -inf wherever μ leaves the family's range (η <= 0 under Gamma's inverse link), which the sampler
takes as a divergence, and it equals the numpy density up to a constant of the data (the family
objects' normalising terms); any number of random-effects terms with K >= 1
columns each: decov terms, and the structured terms whose correlation R(u) has a closed form (cs,
ar1, exp/ou, gau, and the Toeplitz terms through Durbin-Levinson; diag, homdiag and relmat terms are
diagonal), whose Cholesky factor and its derivatives dL = L Φ(L⁻¹ dR L⁻ᵀ) the kernel computes
itself.  Matérn terms stay on the numpy density (``supports_term``).  The random effects enter row by row through each term's level codes and columns
(no dense Z).

Every data array is an argument (nothing is closed over), so the kernel is compiled once per array
layout and ``cache=True`` keeps the machine code on disk for the next process.  The per-term data
are packed into a few arrays (:func:`pack`):

``obs`` (5, n)
    y, prior weights, offset, log y, log(1 - y) (the last two only where the family uses them).
``Xc`` (n, p)
    The fixed-effect model matrix with its non-intercept columns centred.
``cols`` (n, ΣK)
    Every term's random-effect columns side by side (term t in columns ``col0 .. col0 + K - 1``).
``codes`` (n, number of terms)
    Every term's level code of each row.
``bprior`` (p, 5)
    Per coefficient: prior kind (0 flat, 1 normal, 2 Student-t), location, 1/scale², df, the
    log-density's normalising constant.
``tint`` (terms, 10)
    Per term: K, number of levels q, start of its parameters in x, start of its z in x, col0, kind
    (0 decov, 1 a diagonal template: diag / homdiag / relmat, 2 standard deviations times chol(R(u)):
    cs / ar1 / exp / gau / toep), its number of standard deviations, the correlation's code (1 cs,
    2 ar1, 3 exponential, 4 Gaussian, 5 Toeplitz), its first row in ``sprior``, its number of
    correlation coordinates.
``tflt`` (terms, 5)
    Per decov term: Gamma shape and rate of τ, LKJ regularization, the τ prior's and the Dirichlet's
    normalising constants; per cs term: a = 1/(K-1) first.
``sprior`` (structured coordinates, 6)
    Per structured coordinate its prior (:func:`_struct_prior`): kind, three parameters, constant, slope.
``geom`` (terms, Kmax, Kmax)
    The lags (ar1, toep) or distances (exp, gau) between a structured term's columns.
``conc`` (ΣK,)
    The Dirichlet concentrations, term after term.
``info`` (4,) int64
    Family code (:data:`FAMILY_NUMBERS`), index of log aux in x (-1: none), the aux prior's kind
    (0 flat or none, 1 half-normal, 2 half-Student-t, 3 exponential), the link's code
    (:data:`LINK_CODES`; 0 for the pairs of :data:`FAMILY_CODES`, written in η).
``aux`` (6,)
    The aux prior's location, 1/scale², df, constant and exponential rate; the sum of the weights.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["FAMILY_CODES", "FAMILY_NUMBERS", "LINK_CODES", "logp_and_grad", "pack", "supports_term"]

#: family code of each supported (family, link)
FAMILY_CODES = {("gaussian", "identity"): 0, ("binomial", "logit"): 1, ("poisson", "log"): 2,
                ("negative_binomial", "log"): 3, ("gamma", "log"): 4, ("beta", "logit"): 5}

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
#: the kernel's family code by name, and its code of every link it takes (0: the family's own path)
FAMILY_NUMBERS = {"gaussian": 0, "binomial": 1, "poisson": 2, "negative_binomial": 3, "gamma": 4, "beta": 5}
LINK_CODES = {"identity": 1, "log": 2, "logit": 3, "probit": 4, "cloglog": 5, "cauchit": 6, "inverse": 7, "sqrt": 8}


def supports_term(t) -> bool:
    """Whether the kernel takes a model term (``PosteriorModel.terms``' entry).

    Parameters
    ----------
    t : _Term
        The term.

    Returns
    -------
    bool
        True for decov terms and the structures :func:`_struct_code` knows (diag, homdiag, relmat, cs,
        homcs, ar1, hetar1, toep, homtoep, exp, ou, gau); Matérn terms (a Bessel function) are left to
        the numpy density.
    """
    return t.struct is None or _struct_code(t.struct) is not None


def _struct_code(info):
    """(kind, correlation code) of a structured term in the kernel, or None: kind 1 a diagonal template,
    2 standard deviations times chol(R(u)) with R of code 1 cs, 2 ar1, 3 exponential, 4 Gaussian, 5 Toeplitz."""
    from ..covstruct.correlated import AR1, CompoundSymmetry, Toeplitz
    from ..covstruct.spatial import Exponential, GaussianCorrelation

    if info.diagonal:
        return 1, 0
    cs = info.cs
    for cls, code in ((CompoundSymmetry, 1), (AR1, 2), (Exponential, 3), (GaussianCorrelation, 4), (Toeplitz, 5)):
        if type(cs) is cls:
            return 2, code
    return None
_LOG2 = math.log(2.0)


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _digamma(x):
    """ψ(x) for x > 0: the recurrence up to x >= 10, then the asymptotic series (error < 1e-16)."""
    r = 0.0
    while x < 10.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132 + f * (
        691.0 / 32760 + f * (-1.0 / 12)))))))
    return r + math.log(x) - 0.5 / x + t


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _real_prior(kind, v, loc, inv_s2, nu, const):
    """(log-density, derivative) of one normal / Student-t / flat prior at v."""
    if kind == 0:
        return 0.0, 0.0
    d = v - loc
    if kind == 1:
        return const - 0.5 * d * d * inv_s2, -d * inv_s2
    r2 = d * d * inv_s2
    return const - 0.5 * (nu + 1.0) * math.log1p(r2 / nu), -(nu + 1.0) * d * inv_s2 / (nu + r2)


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _softplus(e):
    if e > 0.0:
        return e + math.log1p(math.exp(-e))
    return math.log1p(math.exp(e))


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _expit(e):
    if e >= 0.0:
        return 1.0 / (1.0 + math.exp(-e))
    a = math.exp(e)
    return a / (1.0 + a)


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _link_inverse(lk, e):
    """(μ, dμ/dη) of link code lk (:data:`LINK_CODES`), unclipped."""
    if lk == 1:
        return e, 1.0
    if lk == 2:
        m = math.exp(e)
        return m, m
    if lk == 3:
        m = _expit(e)
        return m, m * (1.0 - m)
    if lk == 4:
        return 0.5 * math.erfc(-e * _SQRT_HALF), math.exp(-0.5 * e * e) * _INV_SQRT_2PI
    if lk == 5:
        ee = math.exp(e)
        return -math.expm1(-ee), math.exp(e - ee)
    if lk == 6:
        return 0.5 + math.atan(e) / math.pi, 1.0 / (math.pi * (1.0 + e * e))
    if lk == 7:
        return 1.0 / e, -1.0 / (e * e)
    return e * e, 2.0 * e


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _struct_prior(kind, u, p1, p2, p3, const, c):
    """(log-density, derivative) in u of one structured coordinate's prior (Jacobian included): kind 0
    flat on exp(u), 1 gamma(p1, rate p2) on exp(u), 2 / 3 half-normal / half-Student-t on exp(u)
    (1/scale² p2, df p3), 4 beta(p1, p2) of logistic(c u)."""
    if kind == 4:
        cu = c * u
        lp_ = -_softplus(-cu)
        lq = -_softplus(cu)
        pp = math.exp(lp_)
        return const + p1 * lp_ + p2 * lq, c * (p1 * (1.0 - pp) - p2 * pp)
    if kind == 0:
        return u, 1.0
    v = math.exp(u)
    if kind == 1:
        return const + p1 * u - p2 * v, p1 - p2 * v
    a, g = _real_prior(kind - 1, v, 0.0, p2, p3, const)
    return a + u, g * v + 1.0


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _corr_and_derivative(code, u, geom, K, a_cs, R, dR):
    """R(u) and dR/du of a one-parameter correlation (code 1 cs, 2 ar1 over lags, 3 exponential and
    4 Gaussian over distances ``geom``)."""
    if code == 1:
        pp = _expit(u)
        rho = -a_cs + (1.0 + a_cs) * pp
        dr = (1.0 + a_cs) * pp * (1.0 - pp)
        for i in range(K):
            for j in range(K):
                R[i, j] = 1.0 if i == j else rho
                dR[i, j] = 0.0 if i == j else dr
    elif code == 2:
        rho = math.tanh(u)
        dr = 1.0 - rho * rho
        for i in range(K):
            for j in range(K):
                lag = int(geom[i, j])
                if lag == 0:
                    R[i, j] = 1.0
                    dR[i, j] = 0.0
                else:
                    R[i, j] = rho**lag
                    dR[i, j] = lag * rho ** (lag - 1) * dr
    else:
        inv = math.exp(-u)
        for i in range(K):
            for j in range(K):
                d = geom[i, j]
                if code == 3:
                    R[i, j] = math.exp(-d * inv)
                    dR[i, j] = R[i, j] * d * inv
                else:
                    R[i, j] = math.exp(-d * d * inv * inv)
                    dR[i, j] = R[i, j] * 2.0 * d * d * inv * inv


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _toeplitz_and_derivatives(u, geom, K, m, R, dR):
    """R and dR/du_k of a Toeplitz correlation whose partial autocorrelations are π_k = tanh(u_k): the
    lag correlations by Durbin-Levinson, their derivatives carried forward through the recursion."""
    rho = np.zeros(m + 1)
    drho = np.zeros((m, m + 1))
    rho[0] = 1.0
    coef = np.zeros(m)
    dcoef = np.zeros((m, m))
    new = np.zeros(m)
    dnew = np.zeros((m, m))
    for n in range(m):
        p = math.tanh(u[n])
        dp = 1.0 - p * p
        for j in range(n):
            new[j] = coef[j] - p * coef[n - 1 - j]
            for k in range(m):
                dnew[k, j] = dcoef[k, j] - p * dcoef[k, n - 1 - j]
            dnew[n, j] -= dp * coef[n - 1 - j]
        new[n] = p
        for k in range(m):
            dnew[k, n] = dp if k == n else 0.0
        for j in range(n + 1):
            coef[j] = new[j]
            for k in range(m):
                dcoef[k, j] = dnew[k, j]
        v = 0.0
        for j in range(n + 1):
            v += coef[j] * rho[n - j]
        rho[n + 1] = v
        for k in range(m):
            dv = 0.0
            for j in range(n + 1):
                dv += dcoef[k, j] * rho[n - j] + coef[j] * drho[k, n - j]
            drho[k, n + 1] = dv
    for i in range(K):
        for j in range(K):
            lag = int(geom[i, j])
            R[i, j] = rho[lag]
            for k in range(m):
                dR[k, i, j] = drho[k, lag]


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _chol(R, K, L):
    """L = chol(R); False when R is not numerically positive definite."""
    for j in range(K):
        sj = R[j, j]
        for k in range(j):
            sj -= L[j, k] * L[j, k]
        if not sj > 0.0:
            return False
        L[j, j] = math.sqrt(sj)
        for i in range(j + 1, K):
            si = R[i, j]
            for k in range(j):
                si -= L[i, k] * L[j, k]
            L[i, j] = si / L[j, j]
        for i in range(j):
            L[i, j] = 0.0
    return True


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _chol_derivative(L, Li, dR, K, dL):
    """dL = L Φ(L⁻¹ dR L⁻ᵀ) (Φ: the lower triangle, its diagonal halved), Li = L⁻¹."""
    M = np.zeros((K, K))
    for i in range(K):
        for j in range(K):
            v = 0.0
            for k in range(i + 1):
                v += Li[i, k] * dR[k, j]
            M[i, j] = v
    P = np.zeros((K, K))
    for i in range(K):
        for j in range(i + 1):
            v = 0.0
            for k in range(j + 1):
                v += M[i, k] * Li[j, k]
            P[i, j] = 0.5 * v if i == j else v
    for i in range(K):
        for j in range(i + 1):
            v = 0.0
            for k in range(j, i + 1):
                v += L[i, k] * P[k, j]
            dL[i, j] = v


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def _lower_inverse(L, K):
    """L⁻¹ of a lower-triangular L, by forward substitution."""
    Li = np.zeros((K, K))
    for c in range(K):
        for i in range(c, K):
            v = 1.0 if i == c else 0.0
            for k in range(c, i):
                v -= L[i, k] * Li[k, c]
            Li[i, c] = v / L[i, i]
    return Li


@nb.njit(cache=True, fastmath=False, error_model="numpy")
def logp_and_grad(x, obs, Xc, cols, codes, bprior, tint, tflt, conc, info, aux, sprior, geom):
    """Log posterior density (up to a constant) and its gradient; see the module docstring for the arrays.

    Parameters
    ----------
    x : ndarray, shape (dim,)
        The unconstrained point.
    obs, Xc, cols, codes, bprior, tint, tflt, conc, info, aux, sprior, geom : ndarray
        The model's packed data (:func:`pack`).

    Returns
    -------
    (float, ndarray of shape (dim,))
        -inf and a zero gradient where the likelihood is not finite.
    """
    dim = x.shape[0]
    n, p = Xc.shape
    nt = tint.shape[0]
    fam = info[0]
    aux_i = info[1]
    aux_kind = info[2]
    lk = info[3]
    grad = np.zeros(dim)
    lp = 0.0
    # fixed-effect priors
    for j in range(p):
        a, g = _real_prior(int(bprior[j, 0]), x[j], bprior[j, 1], bprior[j, 2], bprior[j, 3], bprior[j, 4])
        lp += a
        grad[j] += g
    # auxiliary parameter
    av = 1.0
    if aux_i >= 0:
        la = x[aux_i]
        av = math.exp(la)
        if aux_kind == 3:
            rate = aux[4]
            a = math.log(rate) - rate * av
            g = -rate
        else:
            a, g = _real_prior(aux_kind, av, aux[0], aux[1], aux[2], aux[3])
        lp += a + la
        grad[aux_i] += g * av + 1.0
    sig = av if aux_i >= 0 else 1.0  # rstanarm scales the covariance by the auxiliary parameter
    # random effects: the standard-normal z
    z0 = tint[0, 3] if nt > 0 else dim
    for i in range(z0, dim):
        lp -= 0.5 * x[i] * x[i]
        grad[i] -= x[i]
    # per term: decov prior, T = diag(sd) L (times the auxiliary parameter where there is one) and B = Z T'
    kmax = 1
    qk_all = 0
    for t in range(nt):
        kmax = max(kmax, tint[t, 0])
        qk_all += tint[t, 0] * tint[t, 1]
    Tall = np.zeros((nt, kmax, kmax))    # T times the auxiliary parameter
    Lall = np.zeros((nt, kmax, kmax))
    Pall = np.ones((nt, kmax, kmax))
    Zall = np.zeros((nt, kmax, kmax))    # tanh of the canonical partial correlations
    sdall = np.zeros((nt, kmax))
    piall = np.zeros((nt, kmax))
    cmax = 1
    for t in range(nt):
        cmax = max(cmax, tint[t, 9])
    dLall = np.zeros((nt, cmax, kmax, kmax))  # structured terms: dL/du of each correlation coordinate
    B = np.zeros(qk_all)                # every term's b, level-major, in x's z order
    GB = np.zeros(qk_all)               # the likelihood's gradient in B
    gbeta = np.zeros(p)                 # ... and in β
    for t in range(nt):
        K = tint[t, 0]
        q = tint[t, 1]
        u0 = tint[t, 2]
        zs = tint[t, 3]
        kind = tint[t, 5]
        if kind != 0:
            nsd = tint[t, 6]
            sp0 = tint[t, 8]
            ncorr = tint[t, 9]
            npar = nsd + ncorr
            for j in range(npar):
                pa, pg = _struct_prior(int(sprior[sp0 + j, 0]), x[u0 + j], sprior[sp0 + j, 1], sprior[sp0 + j, 2],
                                       sprior[sp0 + j, 3], sprior[sp0 + j, 4], sprior[sp0 + j, 5])
                lp += pa
                grad[u0 + j] += pg
            for k in range(K):
                sdall[t, k] = math.exp(x[u0 + (k if nsd > 1 else 0)])
            if kind == 1:
                for k in range(K):
                    Lall[t, k, k] = 1.0
                    Tall[t, k, k] = sdall[t, k] * sig
            else:
                R = np.empty((K, K))
                dR = np.empty((ncorr, K, K))
                if tint[t, 7] == 5:
                    _toeplitz_and_derivatives(x[u0 + nsd:u0 + nsd + ncorr], geom[t], K, ncorr, R, dR)
                else:
                    _corr_and_derivative(tint[t, 7], x[u0 + nsd], geom[t], K, tflt[t, 0], R, dR[0])
                if not _chol(R, K, Lall[t]):
                    return -np.inf, np.zeros(dim)
                Li = _lower_inverse(Lall[t], K)
                for c in range(ncorr):
                    _chol_derivative(Lall[t], Li, dR[c], K, dLall[t, c])
                for i in range(K):
                    for j in range(i + 1):
                        Tall[t, i, j] = sdall[t, i] * Lall[t, i, j] * sig
            off = zs - z0
            for g in range(q):
                for a in range(K):
                    s = 0.0
                    bl = a if kind == 1 else 0  # a diagonal template: one product per effect
                    for b in range(bl, a + 1):
                        s += Tall[t, a, b] * x[zs + g * K + b]
                    B[off + g * K + a] = s
            continue
        shape = tflt[t, 0]
        rate = tflt[t, 1]
        tau = math.exp(x[u0])
        lp += tflt[t, 3] + shape * x[u0] - rate * tau
        grad[u0] += shape - rate * tau
        if K == 1:
            sdall[t, 0] = tau
            piall[t, 0] = 1.0
            Lall[t, 0, 0] = 1.0
            Tall[t, 0, 0] = tau * sig
        else:
            c0 = tint[t, 4]
            ymax = 0.0
            for k in range(K - 1):
                ymax = max(ymax, x[u0 + 1 + k])
            es = 0.0
            for k in range(K):
                yk = x[u0 + 1 + k] if k < K - 1 else 0.0
                piall[t, k] = math.exp(yk - ymax)
                es += piall[t, k]
            asum = 0.0
            for k in range(K):
                piall[t, k] /= es
                sdall[t, k] = tau * math.sqrt(K * piall[t, k])
                asum += conc[c0 + k]
            # Dirichlet and the softmax Jacobian
            lp += tflt[t, 4]
            for k in range(K):
                lp += conc[c0 + k] * math.log(piall[t, k])
            for k in range(K - 1):
                grad[u0 + 1 + k] += conc[c0 + k] - asum * piall[t, k]
            # LKJ on the Cholesky factor through tanh, with the Jacobians
            eta_lkj = tflt[t, 2]
            m = u0 + K
            for i in range(1, K):
                for j in range(i):
                    v = x[m]
                    zz = math.tanh(v)
                    c = abs(v)
                    log_om = 2.0 * (_LOG2 - c - math.log1p(math.exp(-2.0 * c)))
                    coef = 0.5 * (K - j - 2.0) + eta_lkj
                    lp += coef * log_om
                    grad[m] += -2.0 * coef * zz
                    Zall[t, i, j] = zz
                    m += 1
            for i in range(K):
                prod = 1.0
                for j in range(K):
                    Pall[t, i, j] = math.sqrt(prod)
                    if j < i:
                        prod *= 1.0 - Zall[t, i, j] * Zall[t, i, j]
                for j in range(i + 1):
                    Lall[t, i, j] = Pall[t, i, j] * (Zall[t, i, j] + (1.0 if i == j else 0.0))
                    Tall[t, i, j] = sdall[t, i] * Lall[t, i, j] * sig
        off = zs - z0
        for g in range(q):
            for a in range(K):
                s = 0.0
                for b in range(a + 1):
                    s += Tall[t, a, b] * x[zs + g * K + b]
                B[off + g * K + a] = s
    # the likelihood, one pass over the rows
    ll = 0.0
    acc = 0.0  # family-specific sum for the aux derivative (gaussian: the residual sum of squares)
    for r in range(n):
        e = obs[2, r]
        for j in range(p):
            e += Xc[r, j] * x[j]
        for t in range(nt):
            K = tint[t, 0]
            base = tint[t, 3] - z0 + codes[r, t] * K
            c0 = tint[t, 4]
            for a in range(K):
                e += cols[r, c0 + a] * B[base + a]
        yr = obs[0, r]
        w = obs[1, r]
        if lk != 0:  # a non-default link: the family's density in μ = g⁻¹(η), -inf outside μ's range
            mu, dmu = _link_inverse(lk, e)
            if fam == 1 or fam == 5:
                if not (0.0 < mu < 1.0):
                    return -np.inf, np.zeros(dim)
            elif fam != 0 and not mu > 0.0:
                return -np.inf, np.zeros(dim)
            if fam == 0:
                res = yr - mu
                wr = w * res
                acc += res * wr
                s = wr * dmu
            elif fam == 1:
                lr = 0.0
                if yr > 0.0:
                    lr += yr * math.log(mu)
                if yr < 1.0:
                    lr += (1.0 - yr) * math.log1p(-mu)
                ll += w * lr
                s = w * (yr - mu) / (mu * (1.0 - mu)) * dmu
            elif fam == 2:
                ll += w * ((yr * math.log(mu) if yr > 0.0 else 0.0) - mu)
                s = w * (yr / mu - 1.0) * dmu
            elif fam == 3:
                th = av
                tm = th + mu
                ltm = math.log(tm)
                yt = yr + th
                ll += w * (math.lgamma(yt) + (yr * math.log(mu) if yr > 0.0 else 0.0) - yt * ltm)
                acc += w * (_digamma(yt) - ltm - yt / tm)
                s = w * th * (yr - mu) / (mu * tm) * dmu
            elif fam == 4:
                sh = av
                lmu = math.log(mu)
                ymu = yr / mu
                ll += w * (-sh * lmu + (sh - 1.0) * obs[3, r] - sh * ymu)
                acc += w * (obs[3, r] - lmu - ymu)
                s = w * sh * (ymu - 1.0) / mu * dmu
            else:
                phi = av
                am = mu * phi
                bm = (1.0 - mu) * phi
                ly = obs[3, r]
                l1y = obs[4, r]
                ll += w * ((am - 1.0) * ly + (bm - 1.0) * l1y - math.lgamma(am) - math.lgamma(bm))
                da = _digamma(am)
                db = _digamma(bm)
                acc += w * (mu * (ly - da) + (1.0 - mu) * (l1y - db))
                s = w * phi * (db - da + ly - l1y) * dmu
        elif fam == 0:
            res = yr - e
            wr = w * res
            acc += res * wr
            s = wr
        elif fam == 1:
            ll += w * (yr * e - _softplus(e))
            s = w * (yr - _expit(e))
        elif fam == 2:
            mu = math.exp(e)
            ll += w * (yr * e - mu)
            s = w * (yr - mu)
        elif fam == 3:
            th = av
            mu = math.exp(e)
            tm = th + mu
            ltm = math.log(tm)
            yt = yr + th
            ll += w * (math.lgamma(yt) + yr * e - yt * ltm)
            acc += w * (_digamma(yt) - ltm - yt / tm)
            s = w * th * (yr - mu) / tm
        elif fam == 4:
            sh = av
            ymu = yr * math.exp(-e)
            ll += w * (-sh * e + (sh - 1.0) * obs[3, r] - sh * ymu)
            acc += w * (obs[3, r] - e - ymu)
            s = w * sh * (ymu - 1.0)
        else:
            phi = av
            mu = _expit(e)
            am = mu * phi
            bm = (1.0 - mu) * phi
            ly = obs[3, r]
            l1y = obs[4, r]
            ll += w * ((am - 1.0) * ly + (bm - 1.0) * l1y - math.lgamma(am) - math.lgamma(bm))
            da = _digamma(am)
            db = _digamma(bm)
            acc += w * (mu * (ly - da) + (1.0 - mu) * (l1y - db))
            s = w * phi * (db - da + ly - l1y) * mu * (1.0 - mu)
        for j in range(p):
            gbeta[j] += Xc[r, j] * s
        for t in range(nt):
            K = tint[t, 0]
            base = tint[t, 3] - z0 + codes[r, t] * K
            c0 = tint[t, 4]
            for a in range(K):
                GB[base + a] += s * cols[r, c0 + a]
    sw = aux[5]
    g_aux = 0.0
    if fam == 0:
        inv = 1.0 / (av * av)
        ll = -0.5 * acc * inv - n * math.log(av) - n * _HALF_LOG_2PI
        g_aux = acc * inv - n
        for i in range(qk_all):
            GB[i] *= inv
        for j in range(p):
            gbeta[j] *= inv
    elif fam == 3:
        th = av
        ll += sw * (th * math.log(th) - math.lgamma(th))
        g_aux = th * (acc + sw * (math.log(th) + 1.0 - _digamma(th)))
    elif fam == 4:
        sh = av
        ll += sw * (sh * math.log(sh) - math.lgamma(sh))
        g_aux = sh * (acc + sw * (math.log(sh) + 1.0 - _digamma(sh)))
    elif fam == 5:
        phi = av
        ll += sw * math.lgamma(phi)
        g_aux = phi * (acc + sw * _digamma(phi))
    if not np.isfinite(ll):
        return -np.inf, np.zeros(dim)
    lp += ll
    for j in range(p):
        grad[j] += gbeta[j]
    if aux_i >= 0:
        grad[aux_i] += g_aux
    # chain rule through B = Z T' into z and the decov parameters
    GT = np.zeros((kmax, kmax))
    for t in range(nt):
        K = tint[t, 0]
        q = tint[t, 1]
        u0 = tint[t, 2]
        zs = tint[t, 3]
        off = zs - z0
        for a in range(K):
            for b in range(K):
                GT[a, b] = 0.0
        kind = tint[t, 5]
        for g in range(q):
            for b in range(K):
                s = 0.0
                au = b + 1 if kind == 1 else K
                for a in range(b, au):
                    s += GB[off + g * K + a] * Tall[t, a, b]
                grad[zs + g * K + b] += s
            for a in range(K):
                ga = GB[off + g * K + a]
                bl = a if kind == 1 else 0
                for b in range(bl, a + 1):
                    GT[a, b] += ga * x[zs + g * K + b]
        # A = GT * T, lower triangular: d/dlog of each entry of T
        atot = 0.0
        for a in range(K):
            bl = a if kind == 1 else 0
            for b in range(bl, a + 1):
                atot += GT[a, b] * Tall[t, a, b]
        if aux_i >= 0:
            grad[aux_i] += atot
        if kind != 0:
            nsd = tint[t, 6]
            for a in range(K):
                arow = 0.0
                bl = a if kind == 1 else 0
                for b in range(bl, a + 1):
                    arow += GT[a, b] * Tall[t, a, b]
                grad[u0 + (a if nsd > 1 else 0)] += arow
            for c in range(tint[t, 9]):
                gc = 0.0
                for a in range(K):
                    for b in range(a + 1):
                        gc += GT[a, b] * sig * sdall[t, a] * dLall[t, c, a, b]
                grad[u0 + nsd + c] += gc
            continue
        grad[u0] += atot
        if K == 1:
            continue
        for k in range(K - 1):
            arow = 0.0
            for b in range(k + 1):
                arow += GT[k, b] * Tall[t, k, b]
            grad[u0 + 1 + k] += 0.5 * (arow - piall[t, k] * atot)
        m = u0 + K
        for i in range(1, K):
            ssc = sdall[t, i] * sig
            for j in range(i):
                # S = Σ_{l = j+1..i} gL[i, l] L[i, l]
                S = 0.0
                for l in range(j + 1, i + 1):
                    S += GT[i, l] * ssc * Lall[t, i, l]
                zz = Zall[t, i, j]
                grad[m] += GT[i, j] * ssc * Pall[t, i, j] * (1.0 - zz * zz) - S * zz
                m += 1
    return lp, grad


def _real_entry(rp, k):
    """(kind, location, 1/scale², df, constant) of entry k of a RealPrior (kind 0 flat, 1 normal, 2 Student-t)."""
    kind = {"flat": 0, "normal": 1, "student_t": 2}[rp.dist]
    if kind == 0:
        return (0.0, 0.0, 1.0, 1.0, 0.0)
    loc, sc, nu = float(rp.location[k]), float(rp.scale[k]), float(rp.df[k])
    if kind == 1:
        const = -math.log(sc) - _HALF_LOG_2PI
    else:
        const = math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi) - math.log(sc)
    if rp.half:
        const += _LOG2
    return (float(kind), loc, 1.0 / sc**2, nu, const)


def _struct_prior_row(used):
    """(kind, p1, p2, p3, constant, c) of a structured coordinate's prior (see :func:`_struct_prior`)."""
    from . import priors as _priors

    if isinstance(used, _priors.BoundedPrior):
        return (4.0, used.a, used.b, 0.0, used._const, used.c)
    if used.dist == "gamma":
        return (1.0, used.shape, used.rate, 0.0, used._const, 1.0)
    if used.dist == "flat":
        return (0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    kind, _, inv_s2, nu, const = _real_entry(used.real, 0)
    return (kind + 1.0, 0.0, inv_s2, nu, const, 1.0)


def pack(model):
    """The arrays :func:`logp_and_grad` takes, from a :class:`~glmmkit.bayes.model.PosteriorModel`.

    Parameters
    ----------
    model : PosteriorModel
        A model of one of the kinds in :data:`FAMILY_CODES`.

    Returns
    -------
    tuple of ndarray
        ``(obs, Xc, cols, codes, bprior, tint, tflt, conc, info, aux, sprior, geom)``, each C-contiguous.
    """
    from . import priors as _priors

    fam_code = FAMILY_NUMBERS[model.family_name]
    link_code = 0 if model._kind in FAMILY_CODES else LINK_CODES[model.link_name]
    n, p = model.n, model.p
    obs = np.zeros((5, n))
    obs[0], obs[1], obs[2] = model.y, model.wt, model.offset
    if model._logy is not None:
        obs[3] = model._logy
    if model._log1my is not None:
        obs[4] = model._log1my
    terms = model.terms
    ktot = sum(t.K for t in terms)
    cols = np.zeros((n, ktot))
    codes = np.zeros((n, len(terms)), dtype=np.int64)
    tint = np.zeros((len(terms), 10), dtype=np.int64)
    tflt = np.zeros((len(terms), 5))
    conc = np.zeros(ktot)
    kmax = max([1] + [t.K for t in terms])
    geom = np.zeros((len(terms), kmax, kmax))
    srows = []
    c0 = 0
    for j, t in enumerate(terms):
        cols[:, c0:c0 + t.K] = t.cols
        codes[:, j] = t.codes
        if t.struct is None:
            tint[j] = (t.K, t.q, t.par.start, t.z.start, c0, 0, 0, 0, 0, 0)
            tflt[j] = (t.shape, t.rate, t.eta_lkj, t.tau_const, t.dir_const)
            conc[c0:c0 + t.K] = t.conc
        else:
            kind, code = _struct_code(t.struct)
            tint[j] = (t.K, t.q, t.par.start, t.z.start, c0, kind, t.struct.n_sd, code, len(srows),
                       t.struct.n_par - t.struct.n_sd)
            cs = t.struct.cs
            if code == 1:
                tflt[j, 0] = cs._a
            elif code in (2, 5):
                geom[j, :t.K, :t.K] = cs._lags
            elif code in (3, 4):
                geom[j, :t.K, :t.K] = cs.distances
            srows.extend(_struct_prior_row(sp.used) for sp in t.struct.priors)
        c0 += t.K
    sprior = np.array(srows, dtype=float).reshape(-1, 6) if srows else np.zeros((1, 6))
    ps = model.prior_set
    bprior = np.zeros((p, 5))
    if model.has_intercept:
        bprior[model.icpt] = _real_entry(ps.intercept[1], 0)
    for idx, rp, _ in ps._groups:
        for k, i in enumerate(idx):
            bprior[int(model.coef_idx[i])] = _real_entry(rp, k)
    info = np.array([fam_code, -1 if model.aux_i is None else model.aux_i, 0, link_code], dtype=np.int64)
    aux = np.zeros(6)
    aux[5] = model._sw
    if model.aux_i is not None:
        used = ps.aux[1]
        if isinstance(used, _priors.ExponentialPrior):
            info[2] = 3
            aux[4] = float(used.rate)
        else:
            e = _real_entry(used, 0)
            info[2] = int(e[0])
            aux[:4] = e[1:]
    arrays = (obs, model.Xc, cols, codes, bprior, tint, tflt, conc, info, aux, sprior, geom)
    return tuple(np.ascontiguousarray(a) for a in arrays)
