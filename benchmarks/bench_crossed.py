"""Benchmark glmmkit's blocked Cholesky on many-level designs (issue 16).

usage: python benchmarks/bench_crossed.py KIND SIZE [NHOSP] [--profile] [--warm]

KIND crossed: a MovieLens-1M-shaped LMM y ~ x + (1 | user) + (1 | item), 6,040 users x 3,706 items with
lognormal popularity skew, SIZE rows; bern: the same design with a Bernoulli response (glmer); nested:
y ~ x + (1 | region/hospital/ward) with SIZE wards of 10 rows over NHOSP hospitals (default 2000) in 20
regions; ml16: issue 16's shape, y ~ x + (1 | user) + (1 | item) with 50,000 users x 5,000 items (the same
skewed simulation), SIZE rows (GLMMKIT_ENGINE forces an engine; the JSON gives the chooser's prediction);
nestedslope: y ~ x + (1 + x | hospital/ward) on the same design (slopes simulated); nestedbern: the
nested design with a Bernoulli response (glmer).  Prints one JSON line (fit time, factor
time, peak RSS, the engine path, the BLAS threading decision) and the estimates.  GLMMKIT_SRC points at
another checkout's src (a before/after comparison); results in benchmarks/results/issue16_crossed.md.
--warm fits the model once untimed first, so that the timed fit finds numba's kernels loaded and the BLAS
threading decided (as a Julia timing after compilation); the JSON's cold_fit_s is that first fit.
"""
import sys, os, time, threading, json, resource
import numpy as np, pandas as pd

LIMIT = float(os.environ.get("BENCH_RSS_LIMIT", 18e9))  # bytes; lower it on a shared machine
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

kind, size = sys.argv[1], int(float(sys.argv[2]))
profile = "--profile" in sys.argv
rng = np.random.default_rng(16)

def nested(nward, nhosp=2000, nreg=20, per_ward=10, slopes=False, binary=False):
    # hospitals evenly over regions, wards evenly over hospitals; labels local within parent (needs the / formula)
    hosp_of_ward = np.arange(nward) % nhosp
    reg_of_hosp = np.arange(nhosp) % nreg
    ward = np.repeat(np.arange(nward), per_ward)
    rng.shuffle(ward)
    hosp = hosp_of_ward[ward]; reg = reg_of_hosp[hosp]
    n = ward.shape[0]
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(0, 0.7, nreg)[reg] + rng.normal(0, 0.5, nhosp)[hosp]
         + rng.normal(0, 0.3, nward)[ward] + rng.normal(0, 1.0, n))
    if binary:  # a Bernoulli response on the same linear predictor (without the residual noise)
        y = (rng.random(n) < 1 / (1 + np.exp(-(y - 2.0)))).astype(float)
    if slopes:  # random slopes on hospitals and wards; hospitals labelled globally (no region term)
        y += x * (rng.normal(0, 0.3, nhosp)[hosp] + rng.normal(0, 0.2, nward)[ward])
        return pd.DataFrame({"y": y, "x": x, "hospital": pd.Categorical(hosp), "ward": pd.Categorical(ward // nhosp)})
    # local labels: hospital number within region, ward number within hospital
    return pd.DataFrame({"y": y, "x": x, "region": pd.Categorical(reg),
                         "hospital": pd.Categorical(hosp // nreg), "ward": pd.Categorical(ward // nhosp)})

def crossed(n, nu=6040, ni=3706, binary=False):
    wu = rng.lognormal(0, 1.2, nu); wu /= wu.sum()
    wi = rng.lognormal(0, 1.5, ni); wi /= wi.sum()
    m = int(n * 1.4)
    key = np.unique(rng.choice(nu, m, p=wu).astype(np.int64) * ni + rng.choice(ni, m, p=wi))
    key = rng.choice(key, min(n, key.shape[0]), replace=False)
    u, i = key // ni, key % ni
    n = u.shape[0]
    x = rng.normal(size=n)
    eta = 0.3 * x + rng.normal(0, 0.6, nu)[u] + rng.normal(0, 0.8, ni)[i]
    if binary:
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = 3.5 + eta + rng.normal(0, 0.9, n)
    cu, ci = np.bincount(u, minlength=nu), np.bincount(i, minlength=ni)
    print(f"rows {n}; per user mean {cu.mean():.0f} max {cu.max()} zero {np.sum(cu==0)}; per item mean {ci.mean():.0f} max {ci.max()} zero {np.sum(ci==0)}; sum cnt_u^2 {np.sum(cu.astype(float)**2):.3g}")
    return pd.DataFrame({"y": y, "x": x, "user": pd.Categorical(u), "item": pd.Categorical(i)})

t0 = time.perf_counter()
if kind in ("nested", "nestedslope", "nestedbern"):
    df = nested(size, nhosp=int(float(sys.argv[3])) if len(sys.argv) > 3 and not sys.argv[3].startswith("-") else 2000,
                slopes=kind == "nestedslope", binary=kind == "nestedbern")
    formula = "y ~ x + (1 + x | hospital/ward)" if kind == "nestedslope" else "y ~ x + (1 | region/hospital/ward)"
    fam = "binomial" if kind == "nestedbern" else None
elif kind == "crossed":
    df = crossed(size); formula = "y ~ x + (1 | user) + (1 | item)"; fam = None
elif kind == "ml16":
    df = crossed(size, nu=50_000, ni=5_000); formula = "y ~ x + (1 | user) + (1 | item)"; fam = None
elif kind == "bern":
    df = crossed(size, binary=True); formula = "y ~ x + (1 | user) + (1 | item)"; fam = "binomial"
t_sim = time.perf_counter() - t0
print(f"simulated {len(df)} rows in {t_sim:.1f}s", flush=True)

sys.path.insert(0, os.environ.get("GLMMKIT_SRC") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import glmmkit
from glmmkit.linalg import blocked
paths = []
orig_init = blocked.BlockedSystem.__init__
def init(self, *a, **k):
    t = time.perf_counter()
    orig_init(self, *a, **k)
    paths.append(dict(q1=self.q1, K1=self.K1, mz=self.mz, m=self.m, R1_dense=self.R1 is not None,
                      use_kernel=bool(self.use_kernel), dprefix=int(self._dprefix),
                      prefix_fill=self._dprefix_fill is not None, plan=getattr(self, "plan", None) is not None,
                      init_s=round(time.perf_counter() - t, 3)))
blocked.BlockedSystem.__init__ = init
nfac = [0, 0.0]
orig_factor = blocked.BlockedSystem.factor
def factor(self, T):
    t = time.perf_counter(); r = orig_factor(self, T); nfac[0] += 1; nfac[1] += time.perf_counter() - t; return r
blocked.BlockedSystem.factor = factor
try:  # the nested-chain engine (issue 16): absent in a checkout from before it
    from glmmkit.linalg import nested as _nested
    orig_nfactor = _nested.NestedChainSystem.factor
    def nfactor(self, T):
        t = time.perf_counter(); r = orig_nfactor(self, T); nfac[0] += 1; nfac[1] += time.perf_counter() - t; return r
    _nested.NestedChainSystem.factor = nfactor
    orig_ninit = _nested.NestedChainSystem.__init__
    def ninit(self, *a, **k):
        t = time.perf_counter()
        orig_ninit(self, *a, **k)
        paths.append(dict(engine="nested", chain_q=self._q, chain_K=self._K, init_s=round(time.perf_counter() - t, 3)))
    _nested.NestedChainSystem.__init__ = ninit
except ImportError:
    pass
try:  # the sparse Schur engine and its chooser (issue 16)
    from glmmkit.linalg import sparse as _sparse, choose as _choose
    orig_sfactor = _sparse.SparseSchurSystem.factor
    def sfactor(self, T):
        t = time.perf_counter(); r = orig_sfactor(self, T); nfac[0] += 1; nfac[1] += time.perf_counter() - t; return r
    _sparse.SparseSchurSystem.factor = sfactor
    orig_pred = _choose.sparse_prediction
    def pred(blocks):
        t = time.perf_counter(); r = orig_pred(blocks); r["choose_s"] = round(time.perf_counter() - t, 2)
        paths.append(dict(prediction=r)); return r
    _choose.sparse_prediction = pred
except (ImportError, AttributeError):
    pass

def _fit():
    return glmmkit.lmer(formula, df, reml=False) if fam is None else glmmkit.glmer(formula, df, family=fam)


cold = None
if "--warm" in sys.argv:
    t0 = time.perf_counter()
    _fit()
    cold = round(time.perf_counter() - t0, 2)
    nfac[0], nfac[1] = 0, 0.0
if profile:
    import cProfile, pstats
    pr = cProfile.Profile(); pr.enable()
t0 = time.perf_counter()
fit = _fit()
t_fit = time.perf_counter() - t0
if profile:
    pr.disable()
info = fit.optimizer_info.as_dict()


def _blas():
    from glmmkit import _threads
    f = getattr(_threads, "blas_thread_decision", None)
    if f is None or not _threads._decision.cache_info().currsize:
        return "not asked / before"
    mz = max([p.get("mz", 0) for p in paths if isinstance(p.get("mz"), int)], default=0)
    try:  # the decision for the model's own dense order (older checkouts have one decision)
        return f(mz or None)
    except TypeError:
        return f()


print(json.dumps(dict(kind=kind, size=size, rows=len(df), fit_s=round(t_fit, 2), cold_fit_s=cold,
                      n_factor=nfac[0], factor_s=round(nfac[1], 2),
                      maxrss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
                      blas=_blas(), systems=paths[:3], n_systems=len(paths),
                      engine=info.get("engine", "before engine choice"),
                      info={k: info[k] for k in ("optimizer", "n_evals", "converged", "message", "time_s", "method",
                                                  "gradient_norm", "pirls_failures", "restarts", "singular", "on_boundary")}),
                 default=str))
print("loglik", fit.loglik if hasattr(fit, "loglik") else None)
try:
    print(fit.varcorr)
except Exception as e:
    print("varcorr", e)
print("fixef", fit.fixef)
if profile:
    pstats.Stats(pr).sort_stats("cumulative").print_stats(15)
    pstats.Stats(pr).sort_stats("tottime").print_stats(15)
