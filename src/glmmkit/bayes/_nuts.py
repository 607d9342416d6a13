"""glmmkit's own No-U-Turn sampler in numpy: the fallback when nutpie is not installed.

Multinomial NUTS (trajectory built by doubling, draws chosen by multinomial weights with biased
progressive sampling across doublings), the generalised no-U-turn criterion on the sharp momenta
including the two extra checks across merged subtrees, a diagonal mass matrix adapted in Stan's
expanding windows (75-draw initial buffer, windows of 25, 50, 100, ..., 50-draw terminal buffer)
and the step size adapted by dual averaging.  One chain per call; the caller runs chains in
parallel processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["run_chain"]

_MAX_ENERGY_ERROR = 1000.0


@dataclass
class _State:
    x: np.ndarray
    p: np.ndarray
    logp: float
    grad: np.ndarray


class _Leapfrog:
    """Leapfrog integrator for a diagonal inverse mass matrix ``inv_mass``."""

    def __init__(self, logp_and_grad, inv_mass):
        self.f = logp_and_grad
        self.inv_mass = inv_mass

    def step(self, s: _State, eps: float) -> _State:
        p = s.p + 0.5 * eps * s.grad
        x = s.x + eps * self.inv_mass * p
        logp, grad = self.f(x)
        grad = np.asarray(grad, dtype=float)
        p = p + 0.5 * eps * grad
        return _State(x, p, float(logp), grad)

    def energy(self, s: _State) -> float:
        return -s.logp + 0.5 * float(np.dot(s.p, self.inv_mass * s.p))


class _Tree:
    """A subtree: its two ends, its momentum sum, its log weight and its chosen draw."""

    __slots__ = ("left", "right", "rho", "log_w", "sample", "n", "diverging", "turning",
                 "sum_accept", "p_sharp_left", "p_sharp_right")


def _no_turn(p_sharp_minus, p_sharp_plus, rho) -> bool:
    return float(np.dot(p_sharp_minus, rho)) > 0.0 and float(np.dot(p_sharp_plus, rho)) > 0.0


class _NutsKernel:
    def __init__(self, logp_and_grad, dim, rng, max_treedepth):
        self.f = logp_and_grad
        self.dim = dim
        self.rng = rng
        self.max_treedepth = max_treedepth

    # -- one leaf or a doubled subtree, in direction ``sign`` starting next to ``s`` --------
    def _build(self, lf, s: _State, depth: int, sign: int, eps: float, h0: float) -> _Tree:
        if depth == 0:
            new = lf.step(s, sign * eps)
            h = lf.energy(new)
            t = _Tree()
            t.left = t.right = new
            t.sample = new
            t.rho = new.p.copy()
            t.p_sharp_left = t.p_sharp_right = lf.inv_mass * new.p
            t.n = 1
            if not math.isfinite(h):
                h = math.inf
            d_h = h - h0
            t.log_w = -d_h
            t.diverging = d_h > _MAX_ENERGY_ERROR
            t.turning = False
            t.sum_accept = math.exp(min(0.0, -d_h)) if math.isfinite(d_h) else 0.0
            return t
        first = self._build(lf, s, depth - 1, sign, eps, h0)
        if first.diverging or first.turning:
            return first
        second = self._build(lf, first.right if sign > 0 else first.left, depth - 1, sign, eps, h0)
        return self._merge(first, second, sign, progressive=False)

    def _merge(self, first: _Tree, second: _Tree, sign: int, progressive: bool) -> _Tree:
        """Join ``second`` (built after ``first`` in direction ``sign``) into one tree."""
        t = _Tree()
        t.n = first.n + second.n
        t.sum_accept = first.sum_accept + second.sum_accept
        t.diverging = second.diverging
        log_w = np.logaddexp(first.log_w, second.log_w)
        if second.diverging or second.turning:
            t.turning = second.turning
            t.log_w = log_w
            t.sample = first.sample
            t.left, t.right = first.left, first.right
            t.rho = first.rho
            t.p_sharp_left, t.p_sharp_right = first.p_sharp_left, first.p_sharp_right
            return t
        if progressive:  # biased progressive sampling at the top level
            accept = math.exp(min(0.0, second.log_w - first.log_w))
        else:  # uniform progressive sampling within a subtree
            accept = math.exp(second.log_w - log_w)
        t.sample = second.sample if self.rng.random() < accept else first.sample
        t.log_w = log_w
        # order the halves in time: ``lo`` precedes ``hi``
        lo, hi = (first, second) if sign > 0 else (second, first)
        t.left, t.right = lo.left, hi.right
        t.p_sharp_left, t.p_sharp_right = lo.p_sharp_left, hi.p_sharp_right
        t.rho = lo.rho + hi.rho
        turning = not _no_turn(t.p_sharp_left, t.p_sharp_right, t.rho)
        if not turning:
            # the extra checks: each half extended by the first point of the other
            rho_lo = lo.rho + hi.left.p
            turning = not _no_turn(lo.p_sharp_left, hi.p_sharp_left, rho_lo)
        if not turning:
            rho_hi = hi.rho + lo.right.p
            turning = not _no_turn(lo.p_sharp_right, hi.p_sharp_right, rho_hi)
        t.turning = turning
        return t

    def transition(self, s: _State, inv_mass: np.ndarray, eps: float):
        lf = _Leapfrog(self.f, inv_mass)
        p0 = self.rng.standard_normal(self.dim) / np.sqrt(inv_mass)
        s = _State(s.x, p0, s.logp, s.grad)
        h0 = lf.energy(s)
        tree = _Tree()
        tree.left = tree.right = tree.sample = s
        tree.rho = p0.copy()
        tree.p_sharp_left = tree.p_sharp_right = inv_mass * p0
        tree.log_w = 0.0
        tree.n = 0
        tree.sum_accept = 0.0
        tree.diverging = tree.turning = False
        depth = 0
        while depth < self.max_treedepth:
            sign = 1 if self.rng.random() < 0.5 else -1
            start = tree.right if sign > 0 else tree.left
            sub = self._build(lf, start, depth, sign, eps, h0)
            depth += 1
            tree = self._merge(tree, sub, sign, progressive=True)
            if tree.diverging or tree.turning:
                break
        n = max(tree.n, 1)
        chosen = tree.sample
        energy = lf.energy(_State(chosen.x, chosen.p, chosen.logp, chosen.grad))
        return chosen, {
            "diverging": bool(tree.diverging),
            "tree_depth": depth,
            "n_steps": tree.n,
            "acceptance": tree.sum_accept / n,
            "energy": energy,
        }


class _DualAveraging:
    """Nesterov dual averaging of log step size towards ``target`` acceptance (Hoffman & Gelman)."""

    def __init__(self, eps0, target, gamma=0.05, t0=10.0, kappa=0.75):
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.restart(eps0)

    def restart(self, eps0):
        self.mu = math.log(10.0 * eps0)
        self.h_bar = 0.0
        self.log_eps = math.log(eps0)
        self.log_eps_bar = 0.0
        self.t = 0

    def update(self, accept):
        self.t += 1
        t = self.t
        eta = 1.0 / (t + self.t0)
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target - accept)
        self.log_eps = self.mu - math.sqrt(t) / self.gamma * self.h_bar
        w = t ** (-self.kappa)
        self.log_eps_bar = w * self.log_eps + (1.0 - w) * self.log_eps_bar

    @property
    def eps(self):
        return math.exp(self.log_eps)

    @property
    def eps_final(self):
        return math.exp(self.log_eps_bar)


def _windows(tune: int):
    """Ends (exclusive draw indices) of the mass-matrix windows in a warm-up of ``tune`` draws."""
    init_buf, term_buf, base = 75, 50, 25
    if tune < 20:
        return []
    if init_buf + term_buf + base > tune:
        init_buf, term_buf = int(0.15 * tune), int(0.1 * tune)
        base = tune - init_buf - term_buf
    ends = []
    start, size = init_buf, base
    last = tune - term_buf
    while start < last:
        end = start + size
        if end + 2 * size > last:
            end = last
        ends.append((start, end))
        start, size = end, 2 * size
    return ends


def _initial_step_size(f, s: _State, inv_mass, rng, eps=1.0):
    """Double or halve ``eps`` until one leapfrog step's acceptance crosses 0.8 (Stan's heuristic)."""
    lf = _Leapfrog(f, inv_mass)
    dim = s.x.shape[0]
    p0 = rng.standard_normal(dim) / np.sqrt(inv_mass)
    s0 = _State(s.x, p0, s.logp, s.grad)
    h0 = lf.energy(s0)

    def delta(e):
        new = lf.step(s0, e)
        h = lf.energy(new)
        return h0 - h if math.isfinite(h) else -math.inf

    d = delta(eps)
    direction = 1 if d > math.log(0.8) else -1
    for _ in range(60):
        eps = eps * (2.0 if direction > 0 else 0.5)
        d = delta(eps)
        if direction > 0 and not d > math.log(0.8):
            break
        if direction < 0 and d > math.log(0.8):
            break
    return eps


def run_chain(logp_and_grad, x0, *, draws, tune, seed, target_accept, max_treedepth):
    """Run one chain of the numpy NUTS.

    Parameters
    ----------
    logp_and_grad : callable
        ``x -> (log density, gradient)``.
    x0 : ndarray
        Starting point.
    draws, tune : int
        Kept draws and warm-up draws.
    seed : numpy.random.SeedSequence or int
        This chain's seed.
    target_accept : float
        Target mean acceptance statistic of the step-size adaptation.
    max_treedepth : int
        Largest number of trajectory doublings.

    Returns
    -------
    dict
        ``draws`` (draws, dim), ``stats`` (dict of per-draw arrays), ``step_size`` (final),
        ``inv_mass`` (final diagonal) and ``warmup_stats`` (per warm-up draw arrays).
    """
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=float)
    dim = x.shape[0]
    logp, grad = logp_and_grad(x)
    logp = float(logp)
    grad = np.asarray(grad, dtype=float)
    if not math.isfinite(logp) or not np.all(np.isfinite(grad)):
        raise FloatingPointError("the log density or its gradient is not finite at the starting point")
    state = _State(x, np.zeros(dim), logp, grad)
    inv_mass = np.ones(dim)
    kernel = _NutsKernel(logp_and_grad, dim, rng, max_treedepth)
    eps = _initial_step_size(logp_and_grad, state, inv_mass, rng)
    da = _DualAveraging(eps, target_accept)
    windows = _windows(tune)
    window_ends = {end: start for start, end in windows}
    w_n, w_mean, w_m2 = 0, np.zeros(dim), np.zeros(dim)
    in_window = set()
    for start, end in windows:
        in_window.update(range(start, end))

    total = tune + draws
    out = np.empty((draws, dim))
    keys = ("diverging", "tree_depth", "n_steps", "step_size", "energy", "acceptance")
    stats = {k: np.empty(total, dtype=bool if k == "diverging" else (np.int64 if k in ("tree_depth", "n_steps") else float)) for k in keys}
    for i in range(total):
        tuning = i < tune
        step = da.eps if tuning else eps
        state, info = kernel.transition(state, inv_mass, step)
        for k, v in info.items():
            stats[k][i] = v
        stats["step_size"][i] = step
        if tuning:
            da.update(info["acceptance"])
            if i in in_window:
                w_n += 1
                delta = state.x - w_mean
                w_mean += delta / w_n
                w_m2 += delta * (state.x - w_mean)
            if i + 1 in window_ends:
                var = w_m2 / max(w_n - 1, 1)
                inv_mass = (w_n / (w_n + 5.0)) * var + 1e-3 * (5.0 / (w_n + 5.0))
                w_n, w_mean, w_m2 = 0, np.zeros(dim), np.zeros(dim)
                da.restart(_initial_step_size(logp_and_grad, state, inv_mass, rng, da.eps))
            if i + 1 == tune:
                eps = da.eps_final
        else:
            out[i - tune] = state.x
    if tune == 0:
        eps = da.eps
    return {
        "draws": out,
        "stats": {k: v[tune:] for k, v in stats.items()},
        "warmup_stats": {k: v[:tune] for k, v in stats.items()},
        "step_size": eps,
        "inv_mass": inv_mass,
    }
