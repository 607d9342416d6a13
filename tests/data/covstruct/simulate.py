"""Simulated repeated-measures and spatial data for the covariance-structure reference fits.

Run from this folder: ``python simulate.py``; writes ``repeated.csv`` and ``spatial.csv``
(make_covstruct.R fits them with glmmTMB).
"""
import numpy as np
import pandas as pd

rng = np.random.default_rng(20261202)

# 80 subjects x 6 visits, AR(1) subject-by-visit effects (rho 0.6, sd 1.2) plus white noise (sd 0.5)
n_id, n_t = 80, 6
lag = np.abs(np.subtract.outer(np.arange(n_t), np.arange(n_t)))
G = 1.2 ** 2 * 0.6 ** lag
b = rng.multivariate_normal(np.zeros(n_t), G, size=n_id)
id_ = np.repeat(np.arange(n_id), n_t)
t = np.tile(np.arange(1, n_t + 1), n_id)
x = rng.normal(size=n_id * n_t)
grp = np.where(id_ % 2 == 0, "A", "B")
eta = 1.0 + 0.5 * x + 0.3 * (grp == "B") + b.ravel()
y = eta + rng.normal(scale=0.5, size=eta.shape)
# counts from the same effects (scaled down)
lam = np.exp(0.5 + 0.3 * x + 0.5 * b.ravel())
count = rng.poisson(lam)
keep = rng.uniform(size=y.shape) > 0.08  # unbalanced: some visits missing
df = pd.DataFrame({"id": [f"s{i:02d}" for i in id_], "visit": t, "x": np.round(x, 4), "grp": grp,
                   "y": np.round(y, 4), "count": count})[keep]
df.to_csv("repeated.csv", index=False)

# spatial: 60 sites on a 10 x 10 grid, exponential correlation with range 2.5, 3 obs per site
sites = rng.choice(100, size=60, replace=False)
sx, sy = sites % 10, sites // 10
d = np.hypot(np.subtract.outer(sx, sx), np.subtract.outer(sy, sy))
S = 0.8 ** 2 * np.exp(-d / 2.5)
u = rng.multivariate_normal(np.zeros(60), S)
site = np.repeat(np.arange(60), 3)
z = rng.normal(size=site.shape)
ys = 2.0 + 0.4 * z + u[site] + rng.normal(scale=0.4, size=site.shape)
pd.DataFrame({"site": site, "xc": sx[site], "yc": sy[site], "z": np.round(z, 4), "y": np.round(ys, 4),
              "group": "all"}).to_csv("spatial.csv", index=False)
