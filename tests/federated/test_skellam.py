"""The distributed Skellam mechanism: exact integer sums through flwr's own SecAgg+ arithmetic, its accountant
against the Gaussian's, the overflow bound, and a device refusing parameters it did not analyse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from federated import skellam as sk


def _params(**kw) -> sk.Params:
    base = {"clip_norm": 1.0, "noise_multiplier": 1.0, "gamma": 1000.0, "dim": 2000, "noise_shares": 8}
    return sk.Params(**(base | kw))


def test_flwr_quantization_is_the_identity_on_every_residue_bit_for_bit():
    from flwr.common.secure_aggregation.quantization import quantize

    settings = sk.secagg_settings(sampled=10, noise_shares=8)
    every = np.arange(-sk.HALF, sk.HALF, dtype=np.int64)  # all 2^22 residues
    q = quantize([every.astype(np.float64)], settings["clipping_range"], settings["quantization_range"])[0]
    assert np.array_equal(q.astype(np.int64), every + sk.HALF)


def test_the_decoded_sum_equals_the_integer_sum_modulo_2_to_the_b_exactly():
    p = _params(gamma=sk.gamma_for(10, _params()))
    rng = np.random.default_rng(7)
    shares = [sk.encode(rng.normal(size=p.dim) * 3, p) for _ in range(10)]
    exact = sk.residues(np.sum(shares, axis=0))
    decoded = sk.decode_sum(sk.secagg_mean(shares), len(shares))
    assert decoded.dtype == np.int64 and np.array_equal(decoded, exact)
    assert np.array_equal(decoded, np.sum(shares, axis=0))  # within the overflow bound: no wrap at all


def test_a_sum_that_wraps_the_modulus_is_decoded_modulo_2_to_the_b():
    shares = [np.full(4, sk.HALF - 1, dtype=np.int64), np.full(4, 5, dtype=np.int64)]
    decoded = sk.decode_sum(sk.secagg_mean(shares), 2)
    assert np.array_equal(decoded, sk.residues(np.full(4, sk.HALF + 4)))  # wrapped: why check_round exists


def test_the_decoded_update_is_the_clipped_mean_plus_noise_of_the_analysed_size():
    p = _params(gamma=sk.gamma_for(20, _params(noise_shares=15)), noise_shares=15, noise_multiplier=0.5)
    rng = np.random.default_rng(3)
    ups = [rng.normal(size=p.dim) for _ in range(20)]
    clipped = [u / max(1.0, np.linalg.norm(u)) for u in ups]
    mean = sk.to_update(sk.decode_sum(sk.secagg_mean([sk.encode(u, p) for u in ups]), 20), p, 20)
    err = mean - np.mean(clipped, axis=0)
    expected_sd = math.sqrt(20 / 15) * p.noise_multiplier * p.clip_norm / 20  # 20 shares of 1/t of (zC)^2
    assert abs(np.std(err) / expected_sd - 1) < 0.05


def test_conditional_rounding_never_exceeds_its_bound():
    rng = np.random.default_rng(1)
    p = _params(gamma=3.0, dim=400)  # small gamma: rounding dominates, the bound binds
    for _ in range(50):
        x = rng.normal(size=p.dim)
        r = sk.conditional_round(p.gamma * x / np.linalg.norm(x), p.l2_bound, rng)
        assert np.linalg.norm(r) <= p.l2_bound


def test_the_skellam_epsilon_is_never_below_the_gaussian_and_approaches_it_as_mu_grows():
    gauss = sk.gaussian_epsilon(1.0, 5, 1e-6)
    gaps = []
    for gamma in (10.0, 100.0, 1000.0, 10000.0, 100000.0):
        p = _params(gamma=gamma)
        eps = sk.epsilon([p] * 5, 1e-6)
        assert eps >= gauss
        gaps.append(eps - gauss)
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3 * gauss and gaps[0] > 0.1 * gauss


def test_the_rdp_bound_is_the_papers_with_mu_the_variance():
    # Agarwal, Kairouz & Liu 2021, Corollary 3.6: a D2^2/(2 mu) + min(((2a-1) D2^2 + 6 D1)/(4 mu^2), 3 D1/(2 mu))
    mu, d1, d2, a = 50.0, 30.0, 7.0, 4
    paper = a * d2**2 / (2 * mu) + min(((2 * a - 1) * d2**2 + 6 * d1) / (4 * mu**2), 3 * d1 / (2 * mu))
    assert sk.rdp(a, l1=d1, l2=d2, lam=mu / 2) == pytest.approx(paper, rel=1e-15)
    with pytest.raises(ValueError, match="integer orders"):
        sk.rdp(1, l1=d1, l2=d2, lam=1.0)


def test_epsilon_is_recomputed_from_the_record_alone():
    p = _params()
    again = sk.Params.from_record(p.to_record())
    assert again == p and sk.epsilon([again], 1e-6) == sk.epsilon([p], 1e-6)


def test_a_device_refuses_a_round_whose_declared_parameters_differ_from_what_it_analysed():
    p = _params()
    sk.check_declared(p.to_record(), p)
    for field, value in (("gamma", 2000.0), ("noise_shares", 4), ("bits", 16), ("mechanism", "gaussian"),
                         ("noise_multiplier", 0.5)):
        with pytest.raises(ValueError, match=f"declares skellam {field} .* refused"):
            sk.check_declared(p.to_record() | {field: value}, p)


def test_a_round_that_could_overflow_is_refused_just_over_the_bound():
    base = _params(noise_shares=75)
    g = sk.gamma_for(100, base)
    sk.check_round(100, _params(noise_shares=75, gamma=g))  # just under: passes
    with pytest.raises(ValueError, match="could overflow the 22-bit modular sum"):
        sk.check_round(100, _params(noise_shares=75, gamma=g * 1.001))
    with pytest.raises(ValueError, match="2 to 1023 devices"):
        sk.check_round(1024, _params(noise_shares=75, gamma=1.0))
    sk.check_round(1023, _params(noise_shares=75, gamma=1.0))


def test_parameters_outside_their_bounds_are_refused():
    with pytest.raises(ValueError, match="dim must be an integer in"):
        _params(dim=sk.MAX_DIM + 1)
    _params(dim=sk.MAX_DIM)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        _params(gamma=0.0)
    with pytest.raises(ValueError, match="only 22-bit"):
        _params(bits=16)


def test_conditional_rounding_that_cannot_meet_its_bound_stops_after_the_draw_limit():
    rng = np.random.default_rng(2)
    x = np.full(100, 0.5)  # a norm is never negative: no draw meets a bound of -1
    with pytest.raises(RuntimeError, match="failed 1000 times"):
        sk.conditional_round(x, -1.0, rng)
    assert np.linalg.norm(sk.conditional_round(x, 10.0, rng)) <= 10.0  # sqrt(100) = 10: always met


def test_a_device_share_rounds_within_the_bound_for_its_own_norm_which_is_at_most_d2():
    p = sk.Params(clip_norm=1.0, noise_multiplier=1.0, gamma=50.0, dim=256, noise_shares=4)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(256)
    x *= 0.5 / np.linalg.norm(x)  # inside the clip
    r = sk.device_share(x, p, sigma=0.0, rng=rng)
    assert np.linalg.norm(r) <= sk.rounded_l2_bound(25.0, 256) < p.l2_bound


def test_an_unclipped_share_passes_through_rather_than_failing_in_the_rounding():
    # the device round clips (dp.clip); were the clip missing, the share must show it to the audit
    p = sk.Params(clip_norm=1.0, noise_multiplier=1.0, gamma=50.0, dim=256, noise_shares=4)
    x = np.zeros(256)
    x[0] = 100.0
    r = sk.device_share(x, p, sigma=0.0, rng=np.random.default_rng(1))
    assert r[0] == 5000 and np.linalg.norm(r) > p.l2_bound


def test_the_skellam_share_noise_is_sized_by_the_sigma_it_is_given():
    p = sk.Params(clip_norm=1.0, noise_multiplier=2.0, gamma=100.0, dim=20_000, noise_shares=4)
    r = sk.device_share(np.zeros(20_000), p, sigma=1.0, rng=np.random.default_rng(5))  # variance (gamma sigma)^2
    assert float(np.var(r)) == pytest.approx(100.0**2, rel=0.05)
