"""The MCMC sampler behind glmmkit's Bayesian fits: NUTS on an unconstrained log density.

``sample(logp_and_grad, x0s, ...)`` runs ``chains`` chains of the No-U-Turn sampler and returns a
:class:`SampleResult`.  Two engines, chosen by measurement (benchmarks/bench_bayes_sampler.py):

- ``"nutpie"`` (the extra ``glmmkit[bayes]``): nutpie's Rust NUTS.  When the model offers a
  numba-compiled log density (attributes ``numba_logp_and_grad``, an ``@numba.njit`` function
  ``f(x, *arrays) -> (float, ndarray)``, and ``numba_data``, the tuple of its arrays) it is wrapped
  in a C callback so that the chains run in parallel threads without the GIL; otherwise nutpie
  calls the Python callable (chains in threads that share the GIL).
- ``"numpy"``: glmmkit's own NUTS (:mod:`glmmkit.bayes._nuts`), no dependency beyond numpy; chains
  in forked processes.

``engine="auto"`` picks nutpie when it is importable and the model has a numba log density, and
the numpy NUTS otherwise.  Measured (4 chains x 1000 draws after 1000 tuning, 2 cores; see the
benchmark's docstring): nutpie on the numba callback reaches 700 bulk-ESS/s on cbpp cold (1.5 s of
the 1.7 s are JIT compilation) and about 5000 warm, against 200 (nutpie, Python callable: the GIL
serialises the chains) and 290 (own numpy NUTS in two processes); on a 100-dimensional Gaussian
2600, 490 and 440.  So a Python callable goes to the numpy NUTS, which needs nothing but numpy.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from glmmkit.exceptions import ArgumentError

__all__ = ["SampleResult", "sample", "nutpie_available"]

from .sample_result import _STAT_KEYS, SampleResult  # noqa: E402  (re-exported)


def nutpie_available() -> bool:
    """Whether nutpie (glmmkit's ``bayes`` extra) can be imported.

    Returns
    -------
    bool
        True when ``import nutpie`` succeeds.
    """
    try:
        import nutpie  # noqa: F401
    except ImportError:
        return False
    return True


def _ebfmi(energy: np.ndarray) -> np.ndarray:
    e = np.asarray(energy, dtype=float)
    num = np.sum(np.diff(e, axis=1) ** 2, axis=1)
    den = np.sum((e - e.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def _check_args(x0s, draws, tune, chains, target_accept, max_treedepth):
    x0s = np.asarray(x0s, dtype=float)
    if x0s.ndim == 1:
        x0s = np.tile(x0s, (chains, 1))
    if x0s.ndim != 2 or x0s.shape[0] != chains:
        raise ArgumentError(
            f"x0s must hold one starting point per chain, shape (chains={chains}, dim); got shape "
            f"{np.shape(x0s)}: pass a 2-D array with one row per chain"
        )
    if not np.all(np.isfinite(x0s)):
        raise ArgumentError("x0s has non-finite values: start every chain at a finite point")
    for name, val, lo in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1),
                          ("max_treedepth", max_treedepth, 1)):
        if int(val) != val or val < lo:
            raise ArgumentError(f"{name} must be an integer >= {lo}; got {val!r}")
    if not 0.0 < target_accept < 1.0:
        raise ArgumentError(f"target_accept must lie strictly between 0 and 1; got {target_accept!r}")
    return x0s


def sample(logp_and_grad, x0s, *, draws=1000, tune=1000, chains=4, seed=None, target_accept=0.8,
           max_treedepth=10, n_jobs=None, progress=False, engine="auto") -> SampleResult:
    """Draw from a log density with the No-U-Turn sampler.

    Parameters
    ----------
    logp_and_grad : callable
        ``x -> (log density, gradient)`` on the unconstrained scale, ``x`` a float array of length
        ``dim``.  It must not keep mutable state that chains could share.  If it also has the
        attributes ``numba_logp_and_grad`` (an ``@numba.njit`` function ``f(x, *arrays)``
        returning ``(float, ndarray)``) and ``numba_data`` (the tuple of those arrays, each
        C-contiguous), the nutpie engine runs that compiled version instead.
    x0s : array_like, shape (chains, dim) or (dim,)
        One starting point per chain (a single point is used for every chain).
    draws : int, default 1000
        Kept draws per chain.
    tune : int, default 1000
        Warm-up draws per chain (step size and diagonal mass matrix adaptation), discarded.
    chains : int, default 4
        Number of chains.
    seed : int, optional
        Seed; the same seed gives the same draws (tested for the numpy engine and nutpie's
        compiled path).
    target_accept : float, default 0.8
        Target mean acceptance statistic for the step-size adaptation; raise it (0.9, 0.95) when
        there are divergences.
    max_treedepth : int, default 10
        Largest number of trajectory doublings (at most ``2**max_treedepth`` leapfrog steps per
        draw).
    n_jobs : int, optional
        Chains run at once (default: the smaller of ``chains`` and the CPU count).
    progress : bool, default False
        Show nutpie's progress bar (the numpy engine has none).
    engine : {"auto", "nutpie", "numpy"}, default "auto"
        ``"auto"`` uses nutpie when it is installed and the model offers a numba log density, and
        glmmkit's own numpy NUTS otherwise.  nutpie rejects a starting point where a gradient
        component is exactly zero.

    Returns
    -------
    SampleResult
        Draws ``(chains, draws, dim)``, per-draw statistics, warm-up information and E-BFMI.

    Raises
    ------
    ImportError
        ``engine="nutpie"`` without nutpie installed (``pip install glmmkit[bayes]``).
    ArgumentError
        Bad ``x0s``, counts or ``target_accept``.
    """
    x0s = _check_args(x0s, draws, tune, chains, target_accept, max_treedepth)
    if not callable(logp_and_grad):
        raise ArgumentError("logp_and_grad must be a callable x -> (log density, gradient)")
    if n_jobs is None:
        n_jobs = min(chains, os.cpu_count() or 1)
    n_jobs = max(1, min(int(n_jobs), chains))
    if engine not in ("auto", "nutpie", "numpy"):
        raise ArgumentError(f"engine must be 'auto', 'nutpie' or 'numpy'; got {engine!r}")
    if engine == "auto":
        compiled = getattr(logp_and_grad, "numba_logp_and_grad", None) is not None
        engine = "nutpie" if compiled and nutpie_available() else "numpy"
    if engine == "nutpie":
        if not nutpie_available():
            raise ImportError(
                "engine='nutpie' needs nutpie, part of glmmkit's bayes extra: pip install 'glmmkit[bayes]' "
                "(or use engine='numpy', glmmkit's slower own NUTS)"
            )
        from glmmkit.bayes import _nutpie

        res = _nutpie.run(logp_and_grad, x0s, draws=draws, tune=tune, chains=chains, seed=seed,
                          target_accept=target_accept, max_treedepth=max_treedepth, cores=n_jobs,
                          progress=progress)
    else:
        res = _run_numpy(logp_and_grad, x0s, draws=draws, tune=tune, chains=chains, seed=seed,
                         target_accept=target_accept, max_treedepth=max_treedepth, n_jobs=n_jobs)
    res.seed = seed
    res.ebfmi = _ebfmi(res.stats["energy"])
    return res


# ---------------------------------------------------------------------------------------------
# numpy engine: one process per chain (fork), sequential where fork is unavailable
# ---------------------------------------------------------------------------------------------

_FORKED_TARGET = None


def _chain_task(args):
    from glmmkit.bayes._nuts import run_chain

    x0, seed, kw = args
    return run_chain(_FORKED_TARGET, x0, seed=seed, **kw)


def _run_numpy(f, x0s, *, draws, tune, chains, seed, target_accept, max_treedepth, n_jobs):
    from glmmkit.bayes._nuts import run_chain

    seeds = np.random.SeedSequence(seed).spawn(chains)
    kw = dict(draws=draws, tune=tune, target_accept=target_accept, max_treedepth=max_treedepth)
    tasks = [(x0s[c], seeds[c], kw) for c in range(chains)]
    results = None
    if n_jobs > 1:
        import multiprocessing as mp

        try:
            ctx = mp.get_context("fork")
        except ValueError:
            ctx = None
        if ctx is not None:
            global _FORKED_TARGET
            with _FORK_LOCK:
                _FORKED_TARGET = f
                try:
                    with ctx.Pool(n_jobs) as pool:
                        results = pool.map(_chain_task, tasks, chunksize=1)
                finally:
                    _FORKED_TARGET = None
    if results is None:
        results = [run_chain(f, x0, seed=s, **k) for x0, s, k in tasks]
    stats = {k: np.stack([r["stats"][k] for r in results]) for k in _STAT_KEYS}
    wstats = {k: np.stack([r["warmup_stats"][k] for r in results]) for k in _STAT_KEYS}
    return SampleResult(
        draws=np.stack([r["draws"] for r in results]),
        stats=stats,
        warmup={"step_size": np.array([r["step_size"] for r in results]),
                "inv_mass": np.stack([r["inv_mass"] for r in results]),
                "tune": tune, "stats": wstats},
        ebfmi=np.empty(0), engine="numpy",
    )


_FORK_LOCK = threading.Lock()
