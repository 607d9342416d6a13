"""Benchmark lmer on a Dask DataFrame against the in-memory fit (issue 16, Dask part).

usage: python benchmarks/bench_dask.py [ROWS] [GROUPS] [PARTITIONS] [--workers N]
       python benchmarks/bench_dask.py --glmm [ROWS] [GROUPS] [PARTITIONS] [--workers N]
       python benchmarks/bench_dask.py --big-lmm [ROWS] [GROUPS] [PARTITIONS] [--workers N] [--probe]

Simulates y ~ x + (x | g) with ROWS rows (default 1e6) on GROUPS levels (default 10,000), writes it as
Parquet (PARTITIONS files) under a temporary folder, then fits it (1) in memory: pandas.read_parquet +
lmer, and (2) on a local dask.distributed cluster of N worker processes (one thread each):
dask.dataframe.read_parquet + lmer.  Prints one JSON line: both wall times, the seconds of each pass
over the partitions and their number, each worker's peak RSS, the driver's peak RSS, and the
differences in log-likelihood and fixed effects.  A watchdog stops the run above 3 GB in the driver; each worker is limited to 1 GiB (5 GB in all).

``--glmm``: a Bernoulli random intercept, y ~ x + (1 | g) (default 2e6 rows, 20,000 groups), written as
Parquet files each holding whole levels (the data grouped by g: no shuffle), fitted in memory and by
glmer on the cluster in the same run: passes per fit, seconds per evaluation pass, worker peak RSS,
the log-likelihood and fixed-effect differences.

``--big-lmm``: y ~ x + (x | g) with ROWS rows (default 2e7) simulated and written to Parquet under /tmp
one file at a time (never all rows in memory), fitted by lmer on the cluster only; ``--probe`` first
measures the in-memory fit's peak RSS at 1e6 and 4e6 rows (each in a fresh process) for the bytes per
row the in-memory path needs.
``--glmm-crossed``: a Bernoulli model with two crossed random intercepts, y ~ x + (1 | a) + (1 | b)
(default 1e6 rows, 2,000 x 500 levels), fitted in memory and by glmer's PIRLS path on the cluster
(one pass per PIRLS round): passes per fit, seconds per round, deviance evaluations, worker peak RSS.
Results in benchmarks/results/issue16_dask.md.
"""

import json
import os
import resource
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
import pandas as pd

LIMIT = 3.0e9


def _watchdog():
    while True:
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))
        if rss > LIMIT:
            print(f"WATCHDOG: driver RSS {rss / 1e9:.1f} GB > {LIMIT / 1e9:.1f} GB, stopping", flush=True)
            os._exit(3)
        time.sleep(0.3)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker_peak():
    """(pid, peak RSS in MB) of the process this runs in (VmHWM)."""
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    return os.getpid(), round(hwm / 1024.0)


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    rows = int(float(args[0])) if args else 1_000_000
    groups = int(float(args[1])) if len(args) > 1 else 10_000
    nparts = int(args[2]) if len(args) > 2 else 8
    workers = int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 2
    threading.Thread(target=_watchdog, daemon=True).start()

    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import glmmkit as gk

    rng = np.random.default_rng(16)
    g = rng.integers(0, groups, rows)
    x = rng.normal(size=rows)
    b = rng.normal(size=(groups, 2)) * [1.0, 0.4]
    y = 2.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=rows)
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    formula = "y ~ x + (x | g)"
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "pq")
        os.makedirs(folder)
        for i, part in enumerate(np.array_split(np.arange(rows), nparts)):
            df.iloc[part].to_parquet(os.path.join(folder, f"part{i:03d}.parquet"))
        del df

        t0 = time.perf_counter()
        mem_df = pd.read_parquet(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mem = gk.lmer(formula, mem_df)
        t_mem = time.perf_counter() - t0
        mem_summary = {"loglik": mem.loglik, "fixef": mem.fixef.to_numpy().tolist()}
        del mem_df, mem
        rss_driver_mem = _peak_rss_mb()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   memory_limit="1GiB")
            client = Client(cluster)
        # workers import glmmkit (numba, formulaic) on their first task: done here, not inside a pass
        client.run(lambda: __import__("glmmkit.distributed.lmm"))
        try:
            t0 = time.perf_counter()
            ddf = dd.read_parquet(folder)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = gk.lmer(formula, ddf)
            t_dask = time.perf_counter() - t0
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                again = gk.lmer(formula, ddf)  # warm workers: the steady-state cost of the passes
            t_again = time.perf_counter() - t0
            worker_peak = client.run(_worker_peak)
        finally:
            client.close()
            cluster.close()
    out = {
        "rows": rows, "groups": groups, "partitions": nparts, "workers": workers,
        "in_memory_s": round(t_mem, 2), "dask_s": round(t_dask, 2), "ratio": round(t_dask / t_mem, 2),
        "passes": {k: round(v, 2) for k, v in fit.optimizer_info.passes.items()},
        "dask_again_s": round(t_again, 2),
        "passes_again": {k: round(v, 2) for k, v in again.optimizer_info.passes.items()},
        "passes_per_fit": len(fit.optimizer_info.passes),
        "optimiser_evals": fit.optimizer_info.n_evals,
        "worker_peak_rss_mb": {f"pid {pid}": mb for pid, mb in worker_peak.values()},
        "driver_pid": os.getpid(),
        "driver_peak_rss_mb_after_in_memory_fit": round(rss_driver_mem),
        "loglik_rel_diff": abs(fit.loglik - mem_summary["loglik"]) / abs(mem_summary["loglik"]),
        "fixef_max_rel_diff": float(np.max(np.abs(fit.fixef.to_numpy() - mem_summary["fixef"])
                                           / np.abs(mem_summary["fixef"]))),
    }
    print(json.dumps(out))


def _cluster(workers, memory_limit):
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               memory_limit=memory_limit)
        client = Client(cluster)
    client.run(lambda: __import__("glmmkit.distributed.glmm"))
    return cluster, client


def _pass_table(passes):
    return {k: {"count": v["count"], "seconds": round(v["seconds"], 2),
                "per_pass_s": round(v["seconds"] / v["count"], 3)} for k, v in passes.items()}


def main_glmm(argv):
    """Bernoulli random intercept: in memory and on the cluster in one run."""
    args = [a for a in argv if not a.startswith("--")]
    args = [a for a in args if not (argv.index(a) > 0 and argv[argv.index(a) - 1] == "--workers")]
    rows = int(float(args[0])) if args else 2_000_000
    groups = int(float(args[1])) if len(args) > 1 else 20_000
    nparts = int(args[2]) if len(args) > 2 else 8
    workers = int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 2
    threading.Thread(target=_watchdog, daemon=True).start()

    import dask.dataframe as dd

    import glmmkit as gk

    rng = np.random.default_rng(16)
    g = np.sort(rng.integers(0, groups, rows))  # grouped by level, as data written per group are
    x = rng.normal(size=rows)
    b = rng.normal(size=groups) * 0.8
    eta = -0.5 + 0.6 * x + b[g]
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    del g, x, eta, y
    formula = "y ~ x + (1 | g)"
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "pq")
        os.makedirs(folder)
        codes = df["g"].cat.codes.to_numpy()
        cuts = np.searchsorted(codes, np.linspace(0, groups, nparts + 1)[1:-1].astype(int))
        for i, part in enumerate(np.split(np.arange(rows), cuts)):  # whole levels per file
            df.iloc[part].to_parquet(os.path.join(folder, f"part{i:03d}.parquet"))
        del df, codes

        t0 = time.perf_counter()
        mem_df = pd.read_parquet(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mem = gk.glmer(formula, mem_df, family="binomial")
        t_mem = time.perf_counter() - t0
        ref = {"loglik": mem.loglik, "fixef": mem.fixef.to_numpy(), "theta": mem.theta.to_numpy(),
               "se": np.sqrt(np.diag(mem.vcov)), "evals": mem.optimizer_info.n_evals}
        del mem_df, mem
        rss_driver_mem = _peak_rss_mb()

        cluster, client = _cluster(workers, "2GiB")
        try:
            ddf = dd.read_parquet(folder)
            # the numba kernels compile (or load from cache) once per worker: a small fit first
            small = dd.from_pandas(pd.DataFrame({"y": [0.0, 1, 0, 1, 1, 0] * 50, "x": np.linspace(-1, 1, 300),
                                                 "g": np.repeat(np.arange(10), 30)}), npartitions=2, sort=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gk.glmer(formula, small, family="binomial")
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = gk.glmer(formula, ddf, family="binomial")
            t_dask = time.perf_counter() - t0
            worker_peak = client.run(_worker_peak)
        finally:
            client.close()
            cluster.close()
    passes = fit.optimizer_info.passes
    out = {
        "model": formula + " (binomial)", "rows": rows, "groups": groups, "partitions": nparts, "workers": workers,
        "in_memory_s": round(t_mem, 2), "dask_s": round(t_dask, 2), "ratio": round(t_dask / t_mem, 2),
        "passes": _pass_table(passes), "passes_per_fit": sum(v["count"] for v in passes.values()),
        "optimiser_evals": fit.optimizer_info.n_evals, "in_memory_evals": ref["evals"],
        "worker_peak_rss_mb": {f"pid {pid}": mb for pid, mb in worker_peak.values()},
        "driver_peak_rss_mb_after_in_memory_fit": round(rss_driver_mem),
        "loglik_rel_diff": abs(fit.loglik - ref["loglik"]) / abs(ref["loglik"]),
        "fixef_max_rel_diff": float(np.max(np.abs(fit.fixef.to_numpy() - ref["fixef"]) / np.abs(ref["fixef"]))),
        "theta_rel_diff": float(np.max(np.abs(fit.theta.to_numpy() - ref["theta"]) / np.abs(ref["theta"]))),
        "se_max_rel_diff": float(np.max(np.abs(np.sqrt(np.diag(fit.vcov)) - ref["se"]) / ref["se"])),
    }
    print(json.dumps(out))


def main_glmm_crossed(argv):
    """Two crossed random intercepts, Bernoulli: in memory and by the PIRLS path in one run."""
    args = [a for a in argv if not a.startswith("--")]
    args = [a for a in args if not (argv.index(a) > 0 and argv[argv.index(a) - 1] == "--workers")]
    rows = int(float(args[0])) if args else 1_000_000
    qa = int(float(args[1])) if len(args) > 1 else 2_000
    qb = int(float(args[2])) if len(args) > 2 else 500
    nparts = int(args[3]) if len(args) > 3 else 4
    workers = int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 2
    threading.Thread(target=_watchdog, daemon=True).start()

    import dask.dataframe as dd

    import glmmkit as gk

    rng = np.random.default_rng(16)
    a, b = rng.integers(0, qa, rows), rng.integers(0, qb, rows)
    x = rng.normal(size=rows)
    eta = -0.5 + 0.6 * x + rng.normal(size=qa)[a] * 0.7 + rng.normal(size=qb)[b] * 0.5
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    df = pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b)})
    del a, b, x, eta, y
    formula = "y ~ x + (1 | a) + (1 | b)"
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "pq")
        os.makedirs(folder)
        for i, part in enumerate(np.array_split(np.arange(rows), nparts)):
            df.iloc[part].to_parquet(os.path.join(folder, f"part{i:03d}.parquet"))
        del df
        t0, c0 = time.perf_counter(), time.process_time()
        mem_df = pd.read_parquet(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mem = gk.glmer(formula, mem_df, family="binomial")
        t_mem, c_mem = time.perf_counter() - t0, time.process_time() - c0
        ref = {"loglik": mem.loglik, "fixef": mem.fixef.to_numpy(), "evals": mem.optimizer_info.n_evals}
        del mem_df, mem
        rss_driver_mem = _peak_rss_mb()
        cluster, client = _cluster(workers, "2GiB")
        try:
            ddf = dd.read_parquet(folder)
            t0, c0 = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = gk.glmer(formula, ddf, family="binomial")
            t_dask, c_dask = time.perf_counter() - t0, time.process_time() - c0
            worker_peak = client.run(_worker_peak)
        finally:
            client.close()
            cluster.close()
    passes = fit.optimizer_info.passes
    out = {
        "model": formula + " (binomial)", "rows": rows, "levels": [qa, qb], "partitions": nparts,
        "workers": workers, "in_memory_s": round(t_mem, 2), "in_memory_cpu_s": round(c_mem, 2),
        "dask_s": round(t_dask, 2), "dask_driver_cpu_s": round(c_dask, 2),
        "distributed": fit.optimizer_info.distributed, "passes": _pass_table(passes),
        "passes_per_fit": sum(v["count"] for v in passes.values()),
        "optimiser_evals": fit.optimizer_info.n_evals, "in_memory_evals": ref["evals"],
        "worker_peak_rss_mb": {f"pid {pid}": mb for pid, mb in worker_peak.values()},
        "driver_peak_rss_mb": round(_peak_rss_mb()), "driver_peak_rss_mb_after_in_memory_fit": round(rss_driver_mem),
        "loglik_rel_diff": abs(fit.loglik - ref["loglik"]) / abs(ref["loglik"]),
        "fixef_max_rel_diff": float(np.max(np.abs(fit.fixef.to_numpy() - ref["fixef"]) / np.abs(ref["fixef"]))),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(out))


def _probe_in_memory(rows, groups):
    """Peak RSS (MB) of a fresh process that simulates ``rows`` rows and fits them in memory."""
    import subprocess

    code = (
        "import numpy as np, pandas as pd, resource, warnings, glmmkit as gk\n"
        f"rng = np.random.default_rng(16); n = {rows}; G = {groups}\n"
        "g = rng.integers(0, G, n); x = rng.normal(size=n); b = rng.normal(size=(G, 2)) * [1.0, 0.4]\n"
        "df = pd.DataFrame({'y': 2.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=n), 'x': x,"
        " 'g': pd.Categorical(g)}); del g, x\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "warnings.simplefilter('ignore'); fit = gk.lmer('y ~ x + (x | g)', df)\n"
        "print(base // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base, peak = map(int, out.stdout.split())
    return base, peak


def main_big_lmm(argv):
    """A large LMM written to Parquet in chunks and fitted on the cluster only."""
    args = [a for a in argv if not a.startswith("--")]
    args = [a for a in args if not (argv.index(a) > 0 and argv[argv.index(a) - 1] == "--workers")]
    rows = int(float(args[0])) if args else 20_000_000
    groups = int(float(args[1])) if len(args) > 1 else 40_000
    nparts = int(args[2]) if len(args) > 2 else 40
    workers = int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 2
    threading.Thread(target=_watchdog, daemon=True).start()
    probe = {}
    if "--probe" in argv:
        for n in (1_000_000, 4_000_000):
            probe[n] = _probe_in_memory(n, groups)

    import dask.dataframe as dd

    import glmmkit as gk

    rng = np.random.default_rng(16)
    b = rng.normal(size=(groups, 2)) * [1.0, 0.4]
    folder = tempfile.mkdtemp(prefix="glmmkit_big_lmm_", dir="/tmp")
    t0 = time.perf_counter()
    for i, part in enumerate(np.array_split(np.arange(rows, dtype=np.int64), nparts)):
        m = part.shape[0]
        g = rng.integers(0, groups, m)
        x = rng.normal(size=m)
        y = 2.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=m)
        pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g, categories=np.arange(groups))}).to_parquet(
            os.path.join(folder, f"part{i:03d}.parquet"))
    t_write = time.perf_counter() - t0
    rss_after_write = _peak_rss_mb()
    cluster, client = _cluster(workers, "2GiB")
    try:
        t0 = time.perf_counter()
        ddf = dd.read_parquet(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = gk.lmer("y ~ x + (x | g)", ddf)
        t_dask = time.perf_counter() - t0
        worker_peak = client.run(_worker_peak)
    finally:
        client.close()
        cluster.close()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    out = {
        "model": "y ~ x + (x | g) (lmer, REML)", "rows": rows, "groups": groups, "partitions": nparts,
        "workers": workers, "write_s": round(t_write, 1), "dask_s": round(t_dask, 2),
        "passes": {k: round(v, 2) for k, v in fit.optimizer_info.passes.items()},
        "optimiser_evals": fit.optimizer_info.n_evals, "loglik": fit.loglik,
        "fixef": fit.fixef.to_numpy().tolist(), "theta": fit.theta.to_numpy().tolist(),
        "worker_peak_rss_mb": {f"pid {pid}": mb for pid, mb in worker_peak.values()},
        "driver_peak_rss_mb": round(_peak_rss_mb()), "driver_peak_rss_mb_after_write": round(rss_after_write),
    }
    if probe:
        (n1, (b1, p1)), (n2, (b2, p2)) = probe.items()
        per_row = (p2 - p1) * 1e6 / (n2 - n1)
        out["in_memory_probe_mb"] = {str(n): {"after_data": bb, "peak": pp} for n, (bb, pp) in probe.items()}
        out["in_memory_bytes_per_row"] = round(per_row)
        out["in_memory_extrapolated_gb_at_rows"] = round((p1 * 1e6 + per_row * (rows - n1)) / 1e9, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    if "--glmm-crossed" in sys.argv:
        main_glmm_crossed([a for a in sys.argv[1:] if a != "--glmm-crossed"])
    elif "--glmm" in sys.argv:
        main_glmm([a for a in sys.argv[1:] if a != "--glmm"])
    elif "--big-lmm" in sys.argv:
        main_big_lmm([a for a in sys.argv[1:] if a != "--big-lmm"])
    else:
        main(sys.argv[1:])
