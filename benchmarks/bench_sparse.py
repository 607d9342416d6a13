"""Sparse Schur engine vs the blocked dense-Schur engine on a large crossed LMM (issue 16).

usage: python benchmarks/bench_sparse.py NA NB ROWS ENGINE

y ~ x + (1 | a) + (1 | b) with NA x NB levels, ROWS rows, each row's a and b drawn independently (so a
lead level meets ~ROWS/NA levels of b: a sparse Schur complement).  ENGINE: blocked, sparse-cholmod,
sparse-superlu (GLMMKIT_ENGINE).  Prints one JSON line: fit time, factorisations, time per factorisation,
peak RSS, log-likelihood, engine.  A watchdog stops the run above BENCH_RSS_LIMIT (default 5 GB).
BENCH_CONDVAR=0 skips the conditional variances.  BENCH_LOCAL=1: a banded crossing instead (b near a's position
in b's range, +0..2: a design with locality, where the sparse factor stays sparse).  Results in
benchmarks/results/issue16_sparse.md.
"""
import json, os, resource, sys, threading, time

import numpy as np
import pandas as pd

LIMIT = float(os.environ.get("BENCH_RSS_LIMIT", 5e9))


def watchdog():
    while True:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    rss = int(line.split()[1]) * 1024
        if rss > LIMIT:
            print(f"WATCHDOG: RSS {rss/1e9:.1f} GB > {LIMIT/1e9:.0f} GB, stopping", flush=True)
            os._exit(3)
        time.sleep(0.3)


threading.Thread(target=watchdog, daemon=True).start()
na, nb, n, engine = int(float(sys.argv[1])), int(float(sys.argv[2])), int(float(sys.argv[3])), sys.argv[4]
os.environ["GLMMKIT_ENGINE"] = engine
import glmmkit  # noqa: E402

rng = np.random.default_rng(16)
a = np.concatenate([np.arange(na), rng.integers(0, na, n - na)])
b = np.concatenate([rng.permutation(np.arange(nb) % nb)[: min(n, nb)], rng.integers(0, nb, n - min(n, nb))])[:n]
if os.environ.get("BENCH_LOCAL") == "1":
    b = (a * nb // na + rng.integers(0, 3, n)) % nb
x = rng.normal(size=n)
y = 1.0 + 0.3 * x + rng.normal(0, 0.6, na)[a] + rng.normal(0, 0.4, nb)[b] + rng.normal(size=n)
df = pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b)})

t0 = time.perf_counter()
m = glmmkit.lmer("y ~ x + (1 | a) + (1 | b)", df, reml=False)
fit_s = time.perf_counter() - t0
obj = m._objective
th = m.theta.to_numpy()
t1 = time.perf_counter()
reps = 3
for _ in range(reps):
    obj.factor(th)
per = (time.perf_counter() - t1) / reps
t2 = time.perf_counter()
if os.environ.get("BENCH_CONDVAR", "1") == "1":  # BENCH_CONDVAR=0 skips it (minutes on a filled factor)
    cv = m.condvar
cv_s = time.perf_counter() - t2
from glmmkit.linalg.choose import sparse_prediction  # noqa: E402
t3 = time.perf_counter()
pr = sparse_prediction(obj.structure.blocks)
pr["choose_s"] = round(time.perf_counter() - t3, 2)
cpu = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps(dict(na=na, nb=nb, n=n, engine=m.optimizer_info.engine, fit_s=round(fit_s, 2),
                      n_evals=obj.n_evals, factor_s=round(per, 4), condvar_s=round(cv_s, 2),
                      peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
                      cpu_s=round(cpu.ru_utime + cpu.ru_stime, 1), local=os.environ.get("BENCH_LOCAL") == "1",
                      prediction=pr, loglik=m.loglik, theta=[float(t) for t in th])), flush=True)
