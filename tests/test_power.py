"""gk.power: simr's powerSim / powerCurve by simulation.  Fixed seeds; bounds from the binomial SE."""

import numpy as np
import pytest

import glmmkit as gk
from glmmkit.exceptions import ArgumentError


@pytest.fixture(scope="module")
def sleep():
    d = gk.datasets.load("sleepstudy")
    return d, gk.lmer("Reaction ~ Days + (1 | Subject)", d, reml=False)


def test_power_near_alpha_under_the_null(sleep):
    d, fit = sleep
    n, a = 200, 0.05
    r = gk.power(fit, "Days", n_sim=n, effect={"Days": 0.0}, method="lrt", seed=11, progress=False)
    p = float(r.table["power"].iloc[0])
    assert abs(p - a) < 4 * np.sqrt(a * (1 - a) / n)  # 4 binomial SEs: ±0.062
    assert r.table["n_failed"].iloc[0] == 0
    lo, hi = r.table[["ci_lower", "ci_upper"]].iloc[0]
    assert lo <= p <= hi


def test_power_increases_with_size_and_is_reproducible(sleep):
    d, fit = sleep
    kw = dict(n_sim=40, effect={"Days": 1.5}, method="lrt", along="Subject", sizes=[4, 36], data=d, seed=3,
              progress=False)
    r = gk.power(fit, "Days", **kw)
    pw = r.power
    assert list(pw.index) == [4, 36]
    # expected roughly 0.2 and 0.9; the difference exceeds 4 binomial SEs of each
    assert pw[36] - pw[4] > 4 * np.sqrt(0.25 / 40)
    again = gk.power(fit, "Days", **kw)
    assert r.table.equals(again.table)
    par = gk.power(fit, "Days", n_jobs=2, **kw)
    np.testing.assert_array_equal(par.table["n_significant"], r.table["n_significant"])


def test_power_glmm_wald_and_errors():
    c = gk.datasets.load("cbpp")
    g = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", c, family="binomial")
    r = gk.power(g, "period2", n_sim=10, seed=1, progress=False)
    assert 0.0 <= r.table["power"].iloc[0] <= 1.0 and "period2" in repr(r)
    with pytest.raises(ArgumentError):
        gk.power(g, "nope", n_sim=2)
    with pytest.raises(ArgumentError):
        gk.power(g, "period2", n_sim=2, sizes=[5])  # sizes without along
    r2 = gk.power(g, "period2", n_sim=3, along="herd", sizes=[6], seed=1, progress=False)  # data: the fitted rows
    assert list(r2.power.index) == [6]


def test_plot_power(sleep):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    d, fit = sleep
    r = gk.power(fit, "Days", n_sim=5, method="lrt", along="Subject", sizes=[4, 8], data=d, seed=1, progress=False)
    ax = gk.plot_power(r)
    assert ax.get_ylabel().startswith("power")
