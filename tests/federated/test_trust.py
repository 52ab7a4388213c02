"""federated/trust.py and the server's sampling: epsilon per trust assumption, amplification only where it holds."""

from __future__ import annotations

import math

import pytest

from federated import accounting, trust
from federated import client as dev
from federated import server_app as sapp


def body(mode: str, *, z: float = 2.0, t: int = 1, sampling: str = "none", sampler: str = "") -> dict:
    return {"mode": mode, "noise_multiplier": z, "noise_shares": t, "sampling": sampling,
            "sampling_rate": 0.05 if sampling == "poisson" else None, "sampler": sampler}


def eps(*zs: float) -> float:
    return accounting.epsilon([accounting.Release(noise_multiplier=z) for z in zs], 1e-6)


def test_each_assumption_counts_every_release_with_the_noise_it_guarantees():
    ledger = [body("central"), body("local"), body("distributed", t=4)]
    per = trust.by_assumption(ledger, delta=1e-6)
    assert per["as_declared"] == pytest.approx(eps(2.0, 2.0, 2.0))
    assert per["honest_server"] == pytest.approx(eps(2.0, 2.0, 1.0))
    assert per["honest_majority"] == math.inf and per["device_verifiable"] == math.inf


def test_a_distributed_release_recorded_without_t_gives_no_share_to_claim():
    old = body("distributed", t=4)
    del old["noise_shares"]
    per = trust.by_assumption([old], delta=1e-6)
    assert per["device_verifiable"] == math.inf and per["honest_majority"] == pytest.approx(eps(2.0))


@pytest.mark.parametrize("release,claimed", [
    (body("central", sampling="poisson", sampler=trust.SECRET_FIXED), True),
    (body("central", sampling="poisson"), False),  # a sampler anyone can replay, or a realised denominator
    (body("local", sampling="poisson", sampler=trust.SECRET_FIXED), False),  # the server sees whom it asked
    (body("distributed", t=4, sampling="poisson", sampler=trust.SECRET_FIXED), False),  # SecAgg+ reveals the count
    (body("central"), False),
])
def test_amplification_is_claimed_only_for_secret_fixed_denominator_central_sampling(release, claimed):
    per = trust.by_assumption([release, release], delta=1e-6)
    assert (per["amplified"] is not None) is claimed
    if claimed:
        assert per["amplified"] < per["as_declared"]
    else:
        assert per["amplified_reason"]


def test_the_server_declares_a_secret_sampler_only_for_central_poisson_rounds():
    central = sapp.ServerConfig(mode="central", sample_rate=0.1)
    local = sapp.ServerConfig(mode="local", sample_rate=0.1)
    assert sapp.round_spec(central, 1, 9).sampler == trust.SECRET_FIXED
    assert sapp.round_spec(local, 1, 9).sampler == "" and sapp.round_spec(local, 1, 9).sampling == "poisson"
    assert sapp.round_spec(sapp.ServerConfig(mode="central"), 1, 9).sampler == ""
    with pytest.raises(ValueError, match="central rounds"):
        dev.RoundSpec(round=1, model_id="m", mode="local", clip_norm=1.0, noise_multiplier=1.0, sampling="poisson",
                      sampling_rate=0.1, sampler=trust.SECRET_FIXED)


def test_a_central_poisson_round_divides_by_q_n_not_by_how_many_were_sampled():
    cfg = sapp.ServerConfig(mode="central", sample_rate=0.1)
    assert sapp.denominator(cfg, 200, 17) == pytest.approx(20.0)
    assert sapp.denominator(sapp.ServerConfig(mode="central"), 200, 200) == 200.0


def test_the_sample_cannot_be_replayed_from_the_public_seed():
    nodes = list(range(400))
    draws = {tuple(sapp.sample(nodes, 0.5)) for _ in range(3)}
    assert len(draws) == 3  # same config, same seed: different samples (CSPRNG)
    assert sapp.sample(nodes, 0.0) == nodes


def skellam_body(*, z: float = 2.0, t: int = 4, gamma: float = 5000.0) -> dict:
    from federated import skellam

    p = skellam.Params(clip_norm=1.0, noise_multiplier=z, gamma=gamma, dim=1651, noise_shares=t)
    return body("distributed", z=z, t=t) | {"mechanism": skellam.NAME, "skellam": p.to_record()}


def test_a_skellam_round_composes_with_gaussian_rounds_in_rdp_under_each_assumption():
    from federated import skellam

    sk = skellam_body(t=4)
    whole = skellam.Params.from_record(sk["skellam"])
    share = skellam.Params(clip_norm=1.0, noise_multiplier=1.0, gamma=5000.0, dim=1651, noise_shares=1)  # 2 / sqrt(4)
    assert share.lam == pytest.approx(whole.lam / 4) and share.l2_bound == whole.l2_bound
    per = trust.by_assumption([body("local"), sk], delta=1e-6)
    assert per["as_declared"] == per["honest_majority"] == accounting.compose([2.0, whole], 1e-6)[0]
    assert per["device_verifiable"] == per["honest_server"] == accounting.compose([2.0, share], 1e-6)[0]
    curve = [a / (2 * 2.0**2) + skellam.rdp(a, l1=whole.l1_bound, l2=whole.l2_bound, lam=whole.lam)
             for a in skellam.ORDERS]
    assert per["as_declared"] == pytest.approx(skellam.rdp_to_epsilon(curve, 1e-6), rel=1e-12)
    assert per["as_declared"] > eps(2.0, 2.0)  # never below the Gaussian figure at the same z
    mixed = trust.by_assumption([body("central"), sk], delta=1e-6)
    assert mixed["honest_majority"] == mixed["device_verifiable"] == math.inf
    assert mixed["honest_server"] == accounting.compose([2.0, share], 1e-6)[0]


def test_a_ledger_of_gaussian_rounds_only_keeps_the_pld_figure():
    assert accounting.compose([2.0, 3.0], 1e-6) == (eps(2.0, 3.0), accounting.epsilon(
        [accounting.Release(noise_multiplier=2.0), accounting.Release(noise_multiplier=3.0)], 1e-6, accountant="rdp"))


def test_the_server_declares_a_skellam_round_that_cannot_overflow_and_refuses_a_gamma_that_could():
    from federated import skellam

    spec = sapp.round_spec(sapp.ServerConfig(mode="distributed"), 1, 10, dim=1651)
    assert spec.mechanism == skellam.NAME and spec.bits == skellam.BITS and spec.dim == 1651
    assert spec.noise_shares == 8 and skellam.overflow_margin(10, spec.skellam_params()) >= 0
    assert spec.gamma == skellam.gamma_for(10, spec.skellam_params())
    with pytest.raises(ValueError, match="could overflow"):
        sapp.round_spec(sapp.ServerConfig(mode="distributed", gamma=spec.gamma * 1.01), 1, 10, dim=1651)
