"""federated.gaussian: the CSPRNG noise source and the analytic Gaussian, pinned to the reference vectors
(../shared/reference/dp_vectors.md: "Calibration")."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest

from federated import gaussian


def test_standard_normals_use_the_whole_distribution_symmetrically():
    x = gaussian.standard_normals(100_000)
    assert np.all(np.isfinite(x)) and abs(float(np.mean(x > 0)) - 0.5) < 0.01
    assert 2.5 < float(np.max(np.abs(x))) < 8.3  # inverse CDF of a 53-bit uniform: tails up to ~8.3 sigma

# ---- calibration ---------------------------------------------------------------------------------------


def test_analytic_gaussian_matches_the_reference_numbers():
    assert gaussian.calibrate(epsilon=1.0, delta=1e-5) == pytest.approx(3.7306, abs=1e-4)
    assert gaussian.gaussian_epsilon(1.0, delta=1e-5) == pytest.approx(4.3772, abs=1e-4)


@pytest.mark.parametrize("eps,delta", [(0.1, 1e-6), (1.0, 1e-5), (4.0, 1e-6), (8.0, 1e-6), (20.0, 1e-10)])
def test_analytic_gaussian_agrees_with_dp_accounting_and_is_tight(eps, delta):
    z = gaussian.calibrate(epsilon=eps, delta=delta)
    assert z == pytest.approx(dp_accounting.get_sigma_gaussian(eps, delta), rel=1e-6)
    assert gaussian.gaussian_delta(z, epsilon=eps) <= delta < gaussian.gaussian_delta(z * (1 - 1e-6), epsilon=eps)
    assert gaussian.gaussian_epsilon(z, delta=delta) == pytest.approx(eps, rel=1e-6)


def test_rounds_compose_exactly_as_one_gaussian_with_sqrt_rounds_less_noise():
    one = gaussian.calibrate(epsilon=8.0, delta=1e-6)
    assert gaussian.calibrate(epsilon=8.0, delta=1e-6, rounds=30) == pytest.approx(one * math.sqrt(30), rel=1e-12)


@pytest.mark.parametrize("requested,true_eps", [(1, 0.751), (2, 1.610), (5, 4.540), (10, 10.394), (20, 25.443)])
def test_the_classical_formula_under_protects_above_epsilon_one(requested, true_eps):
    z = gaussian.classical_noise_multiplier(epsilon=requested, delta=1e-5)
    assert gaussian.gaussian_epsilon(z, delta=1e-5) == pytest.approx(true_eps, abs=1e-3)
    calibrated = gaussian.calibrate(epsilon=requested, delta=1e-5)
    assert gaussian.gaussian_epsilon(calibrated, delta=1e-5) <= requested * (1 + 1e-9)
    if requested >= 10:
        assert calibrated > z  # the classical sigma is too small: it would spend more than requested


def test_flower_local_dp_sigma_for_eps_1_is_really_eps_0751():
    assert gaussian.gaussian_epsilon(4.8448, delta=1e-5) == pytest.approx(0.751, abs=1e-3)


def test_releases_compose_to_one_gaussian_with_the_inverse_square_sum():
    assert gaussian.composed([2.0] * 4) == pytest.approx(1.0, rel=1e-15)
    assert gaussian.composed([1.0, 1.0]) == pytest.approx(1 / math.sqrt(2), rel=1e-15)
    assert gaussian.gaussian_epsilon(gaussian.composed([3.0] * 30), delta=1e-6) == pytest.approx(
        gaussian.gaussian_epsilon(3.0 / math.sqrt(30), delta=1e-6), rel=1e-12)


@pytest.mark.parametrize("bad", [-1, 1.0, True, None])
def test_a_sample_count_must_be_an_integer_at_least_zero(bad):
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        gaussian.standard_normals(bad)
    assert gaussian.standard_normals(0).shape == (0,)


def test_numbers_that_are_easy_to_swap_are_keyword_only():
    with pytest.raises(TypeError):
        gaussian.gaussian_epsilon(1.0, 1e-6)  # type: ignore[misc]
    with pytest.raises(TypeError):
        gaussian.calibrate(1.0, 1e-6)  # type: ignore[misc]
