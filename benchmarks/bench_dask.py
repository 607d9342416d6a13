"""Benchmark lmer on a Dask DataFrame against the in-memory fit (issue 16, Dask part).

usage: python benchmarks/bench_dask.py [ROWS] [GROUPS] [PARTITIONS] [--workers N]

Simulates y ~ x + (x | g) with ROWS rows (default 1e6) on GROUPS levels (default 10,000), writes it as
Parquet (PARTITIONS files) under a temporary folder, then fits it (1) in memory: pandas.read_parquet +
lmer, and (2) on a local dask.distributed cluster of N worker processes (one thread each):
dask.dataframe.read_parquet + lmer.  Prints one JSON line: both wall times, the seconds of each pass
over the partitions and their number, each worker's peak RSS, the driver's peak RSS, and the
differences in log-likelihood and fixed effects.  A watchdog stops the run above 3 GB in the driver; each worker is limited to 1 GiB (5 GB in all).
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


if __name__ == "__main__":
    main(sys.argv[1:])
