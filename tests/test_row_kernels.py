"""The compiled log-likelihood row sum of large logit models equals numpy's expression."""

import numpy as np
import pytest

from glmmkit.families import _row_kernels
from glmmkit.families.binomial import Binomial


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_logit_sum_equals_numpy(monkeypatch, threads):
    monkeypatch.setattr(_row_kernels, "ROW_KERNEL_MIN_ROWS", 10)
    monkeypatch.setattr(_row_kernels, "kernel_threads", lambda: threads)
    rng = np.random.default_rng(4)
    n = 1001
    eta = rng.normal(0, 5, n)
    eta[:4] = [800.0, -800.0, 0.0, 40.0]  # overflow of e^η either way, and the kink
    y = rng.integers(0, 4, n) / 3.0
    wt = np.full(n, 3.0)
    ref = float(np.sum(wt * (y * eta - np.logaddexp(0.0, eta))))
    got = _row_kernels.logit_loglik_sum(y, eta, wt)
    assert got == pytest.approx(ref, rel=1e-13)
    assert Binomial().loglik_sum_eta(y, eta, wt) == pytest.approx(ref, rel=1e-13)


def test_small_or_odd_arrays_stay_with_numpy(monkeypatch):
    eta = np.linspace(-3, 3, 50)
    y = (eta > 0).astype(float)
    assert _row_kernels.logit_loglik_sum(y, eta, np.ones(50)) is None  # under the row threshold
    monkeypatch.setattr(_row_kernels, "ROW_KERNEL_MIN_ROWS", 10)
    assert _row_kernels.logit_loglik_sum(y[::2], eta[::2], np.ones(50)[::2]) is None  # strided views
    probit = Binomial(link="probit")
    assert probit.loglik_sum_eta(y, eta, np.ones(50)) is None
