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
