"""Li & Ma and Cash significances: hand-computed values, limits, symmetry and the Poisson likelihoods."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import poisson

from gpcube.estimators import cash_significance, li_ma_significance


def test_li_ma_hand_computed():
    # n_on=10, n_off=20, alpha=0.25: 2 [10 ln(5 * 10/30) + 20 ln(1.25 * 20/30)] = 2.92365...
    # n_on=2, n_off=40, alpha=0.25: excess 2 - 10 = -8 < 0, so the sign is negative.
    ts2 = 2 * (2 * math.log(5 * 2 / 42) + 40 * math.log(1.25 * 40 / 42))
    out = li_ma_significance([10, 2], [20, 40], 0.25)
    np.testing.assert_allclose(out, [1.7098684755154796, -math.sqrt(ts2)], rtol=1e-13)
    assert out.dtype == np.float64 and out.shape == (2,)


def test_li_ma_zero_limits_are_finite():
    out = li_ma_significance([0, 10, 0], [20, 0, 0], 0.25)
    # n_on = 0: -sqrt(2 n_off ln(1 + alpha)); n_off = 0: +sqrt(2 n_on ln((1 + alpha) / alpha)); both 0: 0
    np.testing.assert_allclose(out, [-2.9875980406621623, 5.6735137479944475, 0.0], rtol=1e-13)


def test_li_ma_is_zero_without_excess_and_tends_to_the_limits():
    np.testing.assert_allclose(li_ma_significance(30.0, 120.0, 0.25), 0.0, atol=1e-7)
    eps = 1e-9
    np.testing.assert_allclose(
        li_ma_significance(eps, 20.0, 0.25), li_ma_significance(0.0, 20.0, 0.25), rtol=1e-6
    )
    np.testing.assert_allclose(
        li_ma_significance(10.0, eps, 0.25), li_ma_significance(10.0, 0.0, 0.25), rtol=1e-6
    )


def test_li_ma_symmetry_on_off_swap():
    """Swapping ON and OFF with alpha -> 1/alpha flips the sign only."""
    rng = np.random.default_rng(3)
    n_on, n_off, alpha = rng.integers(0, 50, 200), rng.integers(0, 50, 200), rng.uniform(0.05, 3, 200)
    np.testing.assert_allclose(
        li_ma_significance(n_on, n_off, alpha),
        -li_ma_significance(n_off, n_on, 1 / alpha),
        rtol=1e-9,
        atol=1e-12,
    )


def test_li_ma_equals_the_wstat_likelihood_ratio():
    """sqrt(TS) of Poisson ON (s + alpha b) and OFF (b): b profiled, s free (scipy's Poisson pmf)."""
    rng = np.random.default_rng(7)
    n_on, n_off, alpha = rng.integers(0, 60, 300), rng.integers(0, 60, 300), rng.uniform(0.02, 2, 300)
    b_null = (n_on + n_off) / (1 + alpha)
    log_max = poisson.logpmf(n_on, n_on) + poisson.logpmf(n_off, n_off)  # s = n_on - alpha n_off, b = n_off
    log_null = poisson.logpmf(n_on, alpha * b_null) + poisson.logpmf(n_off, b_null)
    ts = 2 * (log_max - log_null)
    expected = np.sign(n_on - alpha * n_off) * np.sqrt(np.maximum(ts, 0))
    np.testing.assert_allclose(li_ma_significance(n_on, n_off, alpha), expected, rtol=1e-9, atol=1e-6)


UNDEFINED = [
    (5, 5, 0.0),
    (5, 5, -1.0),
    (5, 5, np.inf),
    (5, 5, np.nan),
    (-1, 5, 0.5),
    (5, -1, 0.5),
    (np.nan, 5, 0.5),
]


@pytest.mark.parametrize(("n_on", "n_off", "alpha"), UNDEFINED)
def test_li_ma_nan_only_where_undefined(n_on, n_off, alpha):
    assert np.isnan(li_ma_significance(n_on, n_off, alpha))


def test_li_ma_broadcasts_and_warns_nothing():
    with np.errstate(all="raise"):
        out = li_ma_significance(np.array([[0.0], [3.0]]), np.array([0.0, 4.0, 9.0]), 0.5)
    assert out.shape == (2, 3) and np.isfinite(out).all()


def test_cash_hand_computed_and_limits():
    # n=10, mu=4: 2 [10 ln(10/4) - 6]; n=2, mu=8: 2 [2 ln(2/8) + 6], negative excess
    out = cash_significance([10, 2, 0, 0, 3], [4, 8, 9, 0, 0])
    np.testing.assert_allclose(out[:3], [2.5151172214199287, -2.5406342821272876, -math.sqrt(18)], rtol=1e-13)
    assert out[3] == 0.0 and out[4] == np.inf


def test_cash_equals_the_poisson_likelihood_ratio():
    rng = np.random.default_rng(11)
    n_on, mu = rng.integers(0, 80, 300), rng.uniform(0.1, 60, 300)
    ts = 2 * (poisson.logpmf(n_on, n_on) - poisson.logpmf(n_on, mu))
    expected = np.sign(n_on - mu) * np.sqrt(ts)
    np.testing.assert_allclose(cash_significance(n_on, mu), expected, rtol=1e-9, atol=1e-6)


def test_li_ma_tends_to_cash_for_a_large_off_region():
    """alpha -> 0 with alpha n_off = mu fixed: the OFF estimate becomes exact, Li & Ma becomes Cash."""
    n_on, mu, alpha = np.array([0.0, 3.0, 12.0, 40.0]), 10.0, 1e-7
    np.testing.assert_allclose(
        li_ma_significance(n_on, mu / alpha, alpha), cash_significance(n_on, mu), rtol=1e-5
    )


@pytest.mark.parametrize(("n_on", "mu"), [(-1, 3), (3, -1), (np.nan, 3), (3, np.inf)])
def test_cash_nan_only_where_undefined(n_on, mu):
    assert np.isnan(cash_significance(n_on, mu))
