"""Choose glmmkit.bayes's NUTS engine by measurement: bulk ESS per second on two targets.

Targets (tests/_bayes_problems.py): cbpp's ``cbind(incidence, size - incidence) ~ period + (1 | herd)``
(binomial logit, non-centred, 20 parameters) and a 100-dimensional correlated Gaussian.
Candidates, each in a fresh process (so imports, JIT compilation and worker start-up are counted):

- ``nutpie-py``     nutpie with the numpy log density (Python callable, chains in threads, GIL)
- ``nutpie-numba``  nutpie with the numba log density through a C callback (no GIL)
- ``numpy-nuts``    glmmkit's own numpy NUTS, chains in forked processes
- ``numpyro``       numpyro's NUTS on a JAX log density (chains on 2 host devices)

4 chains x 1000 draws after 1000 tuning; ESS is arviz's rank-normalised bulk ESS, the minimum
over parameters.  ``ESS/s`` divides it by the wall time of the whole first sampling call (compilation
and worker start-up included; for nutpie-numba a second, warm call gives the compile time as the
difference); ``import`` is the library import time, reported apart.

Usage: ``python benchmarks/bench_bayes_sampler.py [--candidates a,b] [--targets cbpp,gauss100]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = ("nutpie-py", "nutpie-numba", "numpy-nuts", "numpyro")
TARGETS = ("cbpp", "gauss100")


def _jax_target(name):
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    from _bayes_problems import CbppLogp, GaussianLogp

    if name == "cbpp":
        m = CbppLogp()
        x, y, n, herd = (jnp.asarray(a) for a in m.numba_data)
        p = m.p

        def logp(theta):
            beta, s, z = theta[:p], theta[p], theta[p + 1:]
            sigma = jnp.exp(s)
            eta = x @ beta + sigma * z[herd]
            ll = jnp.sum(y * eta - n * jnp.logaddexp(0.0, eta))
            return ll - 0.5 * jnp.sum(beta**2) / 6.25 + s - sigma - 0.5 * jnp.sum(z**2)

        return m, logp
    m = GaussianLogp()
    mean, prec = jnp.asarray(m.mean), jnp.asarray(m.prec)

    def logp(theta):
        d = theta - mean
        return -0.5 * d @ (prec @ d)

    return m, logp


def _worker(candidate, target, seed):
    t_start = time.perf_counter()
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "src"))
    from _bayes_problems import CbppLogp, GaussianLogp

    m = CbppLogp() if target == "cbpp" else GaussianLogp()
    x0s = np.random.default_rng(seed).normal(scale=0.3, size=(4, m.dim))
    out = {"candidate": candidate, "target": target}
    if candidate == "numpyro":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        t0 = time.perf_counter()
        import jax
        from numpyro.infer import MCMC, NUTS

        jax.config.update("jax_enable_x64", True)
        out["import_s"] = time.perf_counter() - t0
        _, logp = _jax_target(target)
        t0 = time.perf_counter()
        mcmc = MCMC(NUTS(potential_fn=lambda th: -logp(th), target_accept_prob=0.8), num_warmup=1000,
                    num_samples=1000, num_chains=4, chain_method="parallel", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), init_params=jax.numpy.asarray(x0s))
        draws = np.asarray(mcmc.get_samples(group_by_chain=True))
        out["sample_s"] = time.perf_counter() - t0
        out["compile_s"] = None
        extra = mcmc.get_extra_fields(group_by_chain=True)
        out["divergent"] = int(np.sum(np.asarray(extra["diverging"])))
    else:
        t0 = time.perf_counter()
        from glmmkit.bayes.sampler import sample

        engine = "numpy" if candidate == "numpy-nuts" else "nutpie"
        if engine == "nutpie":
            import nutpie  # noqa: F401
        out["import_s"] = time.perf_counter() - t0
        f = m
        if candidate == "nutpie-py":
            f = _PythonOnly(m)
        out["compile_s"] = None
        t0 = time.perf_counter()
        res = sample(f, x0s, draws=1000, tune=1000, chains=4, seed=seed, engine=engine, n_jobs=2)
        out["sample_s"] = time.perf_counter() - t0
        draws = res.draws
        out["divergent"] = res.n_divergent
        if candidate == "nutpie-numba":
            t0 = time.perf_counter()
            sample(f, x0s, draws=1000, tune=1000, chains=4, seed=seed + 1, engine=engine, n_jobs=2)
            out["warm_sample_s"] = time.perf_counter() - t0
            # JIT compilation of the log density and of the C callback: the cold call's excess
            out["compile_s"] = out["sample_s"] - out["warm_sample_s"]
    import arviz as az

    ess = np.asarray(az.ess(az.convert_to_dataset({"x": draws}), method="bulk")["x"].values)
    out["ess_bulk_min"] = float(ess.min())
    out["ess_bulk_median"] = float(np.median(ess))
    out["ess_per_s"] = out["ess_bulk_min"] / out["sample_s"]
    out["process_s"] = time.perf_counter() - t_start
    out["mean_first"] = float(draws[..., 0].mean())
    print(json.dumps(out))


class _PythonOnly:
    """The numpy log density without its numba attributes (forces nutpie's Python path)."""

    def __init__(self, m):
        self.m = m

    def __call__(self, x):
        return self.m(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        _worker(a.worker[0], a.worker[1], a.seed)
        return
    rows = []
    for target in a.targets.split(","):
        for cand in a.candidates.split(","):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--worker", cand, target, "--seed", str(a.seed)],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            wall = time.perf_counter() - t0
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not line:
                print(f"{cand} on {target} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(line[-1])
            row["wall_s"] = wall
            rows.append(row)
            print(f"{target:9s} {cand:13s} ESS/s {row['ess_per_s']:8.0f}  min bulk ESS {row['ess_bulk_min']:6.0f}"
                  f"  sample {row['sample_s']:6.2f}s  compile {row['compile_s'] or 0:5.2f}s"
                  f"  import {row['import_s']:5.2f}s  process {wall:6.2f}s  div {row['divergent']}"
                  + (f"  warm {row['warm_sample_s']:.2f}s" if "warm_sample_s" in row else ""), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
