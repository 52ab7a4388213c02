"""federated.params: one validator per kind of privacy parameter, each bound tested just inside and outside."""

from __future__ import annotations

import math

import numpy as np
import pytest

from federated import params


@pytest.mark.parametrize("good", [0, -3, 2.5, np.float64(1.5), np.int64(7)])
def test_a_finite_real_number_of_any_numeric_type_is_a_number(good):
    assert params.number("x", good) == float(good)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, False, "1", None, [1.0]])
def test_nan_infinities_bools_and_non_numbers_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="^x must be a finite number, got"):
        params.number("x", bad)


def test_positive_is_the_open_interval_from_zero():
    assert params.positive("z", 5e-324) == 5e-324
    for bad in (0, 0.0, -5e-324, math.inf):
        with pytest.raises(ValueError, match="^z must be a finite number"):
            params.positive("z", bad)


def test_non_negative_includes_zero():
    assert params.non_negative("epsilon", 0.0) == 0.0
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        params.non_negative("epsilon", -5e-324)


def test_delta_is_the_open_unit_interval():
    assert params.delta(5e-324) == 5e-324 and params.delta(math.nextafter(1.0, 0.0)) < 1
    for bad in (0.0, 1.0, -1e-9, math.nan):
        with pytest.raises(ValueError, match="^delta must be"):
            params.delta(bad)


def test_an_open_interval_refuses_both_ends():
    assert params.open_interval("q", 0.5, 0.0, 1.0) == 0.5
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"q must be in \(0, 1\), got"):
            params.open_interval("q", bad, 0.0, 1.0)


def test_an_integer_must_be_of_an_integer_type_and_at_least_the_minimum():
    assert params.integer("rounds", 1, minimum=1) == 1 and params.integer("rounds", np.int64(3), minimum=1) == 3
    for bad in (0, 3.0, True, "3"):
        with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
            params.integer("rounds", bad, minimum=1)


def test_a_count_from_a_config_record_may_be_an_integral_float():
    assert params.count("local_steps", 50.0) == 50 and params.count("local_steps", 1) == 1
    for bad in (0, 0.0, 50.5, -1, True, math.inf):
        with pytest.raises(ValueError, match="local_steps must be a finite integer > 0"):
            params.count("local_steps", bad)
