"""federated.dp: the whole-update clip, CSPRNG Gaussian noise on an update, and the choice of calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from federated import accounting, dp, gaussian

# ---- clip ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e-300, 1e-3, 1.0, 7.3, 1e6, 1e200])
@pytest.mark.parametrize("C", [1e-3, 0.1, 1.0, 3.7])
def test_clipped_norm_never_exceeds_C_at_any_scale(scale, C):
    rng = np.random.default_rng(11)
    for dim in (1, 2, 1000):
        v = rng.standard_normal(dim) * scale
        out = dp.clip(v, C)
        assert out.dtype == np.float64
        assert dp.norm(out) <= C * (1 + 1e-9)
        if dp.norm(v) > C:
            assert dp.norm(out) == pytest.approx(C, rel=1e-12)
            assert np.allclose(out / dp.norm(out), v / dp.norm(v), rtol=1e-9, atol=0)  # direction kept


def test_an_update_inside_the_ball_is_released_unchanged_and_the_input_is_not_mutated():
    v = np.array([0.3, -0.4], dtype=np.float32)
    out = dp.clip(v, 1.0)
    assert out.dtype == np.float64 and np.array_equal(out, v.astype(np.float64))
    big = np.array([3.0, 4.0])
    dp.clip(big, 1.0)
    assert np.array_equal(big, [3.0, 4.0])


def test_the_whole_update_is_clipped_not_each_coordinate():
    out = dp.clip(np.full(100, 1.0), 1.0)  # per-coordinate clipping would leave norm 10
    assert dp.norm(out) == pytest.approx(1.0) and np.allclose(out, 0.1)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True, "1"])
def test_clip_norm_must_be_a_finite_positive_number(bad):
    with pytest.raises(ValueError):
        dp.clip(np.ones(3), bad)


def test_an_update_with_nan_or_inf_is_refused():
    for bad in (np.array([1.0, math.nan]), np.array([math.inf, 0.0])):
        with pytest.raises(ValueError, match="NaN or infinite"):
            dp.clip(bad, 1.0)
        with pytest.raises(ValueError):
            dp.add_noise(bad, 1.0)


# ---- noise ----------------------------------------------------------------------------------------


def test_noise_standard_deviation_is_inside_a_chi_square_band():
    n, sigma = 200_000, 2.5
    x = dp.add_noise(np.zeros(n), sigma)
    stat = (n - 1) * np.var(x, ddof=1) / sigma**2
    lo, hi = stats.chi2.ppf(1e-6, n - 1), stats.chi2.isf(1e-6, n - 1)
    assert lo < stat < hi
    assert abs(float(np.mean(x))) < 5.5 * sigma / math.sqrt(n)
    assert stats.kstest(x / sigma, "norm").pvalue > 1e-6


def test_noise_is_added_to_the_vector_and_keeps_its_shape():
    v = np.arange(12.0).reshape(3, 4)
    out = dp.add_noise(v, 1e-3)
    assert out.shape == (3, 4) and out.dtype == np.float64 and np.allclose(out, v, atol=0.1)


def test_every_call_draws_fresh_noise_never_a_reused_seed():
    n = 50_000
    a, b = dp.add_noise(np.zeros(n), 1.0), dp.add_noise(np.zeros(n), 1.0)
    assert not np.array_equal(a, b)
    assert abs(float(np.corrcoef(a, b)[0, 1])) < 6 / math.sqrt(n)
    lag = float(np.corrcoef(a[:-1], a[1:])[0, 1])  # samples within a call are independent too
    assert abs(lag) < 6 / math.sqrt(n)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, None])
def test_sigma_must_be_a_finite_positive_number(bad):
    with pytest.raises(ValueError):
        dp.add_noise(np.zeros(3), bad)


# ---- calibration ---------------------------------------------------------------------------------------


def test_the_analytic_calibration_is_the_gaussian_modules_and_pld_is_a_hair_larger():
    analytic = dp.calibrate(epsilon=8.0, delta=1e-6, rounds=30)
    assert analytic == gaussian.calibrate(epsilon=8.0, delta=1e-6, rounds=30)
    pld = dp.calibrate(epsilon=8.0, delta=1e-6, rounds=30, method="pld")
    assert pld == accounting.noise_multiplier_for_budget(8.0, 1e-6, 30)
    assert analytic <= pld <= analytic * (1 + 1e-4)


@pytest.mark.parametrize("kw", [
    {"epsilon": 0.0, "delta": 1e-6}, {"epsilon": -1.0, "delta": 1e-6}, {"epsilon": math.nan, "delta": 1e-6},
    {"epsilon": math.inf, "delta": 1e-6}, {"epsilon": 1.0, "delta": 0.0}, {"epsilon": 1.0, "delta": 1.0},
    {"epsilon": 1.0, "delta": math.nan}, {"epsilon": True, "delta": 1e-6}, {"epsilon": 1.0, "delta": 1e-6, "rounds": 0},
    {"epsilon": 1.0, "delta": 1e-6, "method": "classical"},
])
def test_calibration_parameters_are_open_intervals(kw):
    with pytest.raises(ValueError):
        dp.calibrate(**kw)


def test_numbers_that_are_easy_to_swap_are_keyword_only():
    with pytest.raises(TypeError):
        dp.calibrate(1.0, 1e-6)  # type: ignore[misc]
