"""Per-factorisation time of the blocked dense-Schur engine against the nested-chain engine on small
nested designs (8 rows x 5 wards per hospital), for ``linalg.choose.NESTED_MIN_DENSE``; results in
benchmarks/results/issue16_nested.md.

usage: python benchmarks/bench_nested_threshold.py
"""
import sys, os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import numpy as np, pandas as pd, time
import glmmkit
from glmmkit.linalg.blocked import BlockedSystem
from glmmkit.linalg.nested import NestedChainSystem
rng = np.random.default_rng(2)
def tm(f, rep):
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(rep): f()
        best = min(best, (time.perf_counter() - t) / rep)
    return best
for form in ["y ~ x + (1 | region/hospital/ward)", "y ~ x + (1 | hospital/ward)", "y ~ x + (1 + x | hospital/ward)"]:
  for nh in [10, 30, 60, 100, 200, 400, 1000]:
    nw = 5 * nh; n = 8 * nw; nreg = max(2, nh // 10)
    w = np.repeat(np.arange(nw), 8); h = w % nh; r = h % nreg
    x = rng.normal(size=n); y = rng.normal(size=n) + rng.normal(size=nh)[h]
    df = pd.DataFrame(dict(y=y, x=x, region=pd.Categorical(r), hospital=pd.Categorical(h), ward=pd.Categorical(w)))
    import warnings; warnings.simplefilter("ignore")
    fit = glmmkit.lmer(form, df, reml=False)
    st = fit._objective.structure; X = np.column_stack([np.ones(n), x])
    tpl = st.templates(fit.theta)
    bs = BlockedSystem(st.blocks, X, y); ns = NestedChainSystem(st.blocks, X, y)
    rep = max(1, int(2000 / nh))
    tb, tn = tm(lambda: bs.factor(tpl), rep), tm(lambda: ns.factor(tpl), rep)
    print(f"{form:40s} nhosp {nh:5d} mz {bs.mz:5d} blocked {tb*1e3:8.3f} ms nested {tn*1e3:8.3f} ms  ratio {tb/tn:6.2f}", flush=True)
