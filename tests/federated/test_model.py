"""The on-device model: deterministic, exact flat round trips, and it learns a habit a phone shows."""

from __future__ import annotations

import numpy as np
import pytest

from federated import features as feat
from federated import model as fmodel
from federated import vocab
from ingest.apps import CATEGORIES
from tests.federated.test_flower_client import fill_device


@pytest.fixture(scope="module")
def habits(tmp_path_factory: pytest.TempPathFactory) -> feat.Examples:
    from tests.conftest import FAST_KDF, PASSPHRASE
    from vault.store import Vault

    vault, _ = Vault.create(tmp_path_factory.mktemp("model") / "home", PASSPHRASE, kdf=FAST_KDF)
    with vault:
        fill_device(vault, seed=4, days=42)
        return feat.examples(vault)


def test_the_vocabularies_are_the_categories_ingest_assigns_and_the_place_types_features_map_to():
    assert vocab.APP_CATEGORIES == CATEGORIES
    assert set(feat.SEMANTIC_PLACES.values()) | {k for k, _ in feat.NAME_WORDS} <= set(vocab.PLACE_TYPES)
    assert vocab.PLACE_TYPES[-1] == "unknown" and "other" in vocab.PLACE_TYPES


def test_the_same_seed_builds_identical_weights_and_another_seed_does_not():
    a, b, c = (fmodel.get_flat(fmodel.build(seed=s)) for s in (3, 3, 4))
    assert a.dtype == np.float64 and a.shape == (fmodel.size(),)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_flat_weights_round_trip_exactly_in_float64():
    net = fmodel.build(seed=0)
    v = np.random.default_rng(0).normal(size=fmodel.size())  # not representable in float32
    fmodel.set_flat(net, v)
    assert np.array_equal(fmodel.get_flat(net), v)


@pytest.mark.parametrize("bad", [np.zeros(3), np.full(fmodel.size(), np.nan), np.zeros((2, fmodel.size()))])
def test_set_flat_rejects_wrong_shapes_and_non_finite_values(bad):
    with pytest.raises(ValueError):
        fmodel.set_flat(fmodel.build(), bad)


def test_encoding_has_one_hot_blocks_and_the_scalar_columns(habits):
    x = fmodel.encode(habits)
    assert x.shape == (len(habits), fmodel.N_INPUTS)
    blocks = [(2, 9), (9, 9 + len(vocab.PLACE_TYPES)),
              (9 + len(vocab.PLACE_TYPES), 9 + len(vocab.PLACE_TYPES) + len(vocab.APP_CATEGORIES) + 1)]
    for lo, hi in blocks:
        assert np.array_equal(x[:, lo:hi].sum(axis=1), np.ones(len(habits)))
    assert np.array_equal(x[:, 0], habits.hour_sin) and np.array_equal(x[:, -2], habits.unlock)
    assert np.array_equal(x[:, -1], habits.meeting_soon)


def test_local_training_is_deterministic_given_the_seeds(habits):
    def run(seed: int) -> np.ndarray:
        net = fmodel.build(seed=1)
        fmodel.train_local(net, habits, steps=5, batch_size=16, lr=0.1, seed=seed)
        return fmodel.get_flat(net)

    assert np.array_equal(run(0), run(0)) and not np.array_equal(run(0), run(1))


def test_training_learns_the_habits_better_than_the_most_common_category(habits):
    past, future = habits.split_by_time(0.7)
    majority = np.bincount(past.y_app, minlength=len(vocab.APP_CATEGORIES)).argmax()
    baseline = float(np.mean(future.y_app == majority))
    net = fmodel.build(seed=0)
    before = fmodel.evaluate(net, future)
    fmodel.train_local(net, past, steps=1000, batch_size=64, lr=0.5, seed=0)
    after = fmodel.evaluate(net, future)
    assert after["app_total"] == len(future) and after["place_total"] == int(np.sum(future.y_place >= 0))
    # the habits' own ceiling is about 0.47 here (the most common app at each place): 0.37 -> above 0.42
    assert after["app_correct"] / after["app_total"] > max(baseline + 0.05, before["app_correct"] / len(future))
    assert after["place_correct"] / after["place_total"] > 0.6  # the next place follows from the day plan


def test_a_training_step_follows_the_gradient_of_the_loss(habits):
    """The gradient written out in numpy is the loss's: each parameter's step matches a central difference."""
    net = fmodel.build(seed=2)
    x = fmodel.encode(habits)[:40]
    y_app, y_place = np.asarray(habits.y_app[:40]), np.asarray(habits.y_place[:40]).copy()
    y_place[::3] = -1  # some examples without a next place: the place head ignores them
    start = fmodel.get_flat(net)

    def loss(v: np.ndarray) -> float:
        fmodel.set_flat(net, v)
        _, app, place = fmodel._forward(net, x)
        known = y_place >= 0
        return fmodel._cross_entropy(app, y_app)[0] + fmodel.PLACE_LOSS_WEIGHT * fmodel._cross_entropy(
            place[known], y_place[known])[0]

    lr = 1e-3
    fmodel.set_flat(net, start)
    fmodel._step(net, x, y_app, y_place, lr)
    step = (start - fmodel.get_flat(net)) / lr
    picks = np.random.default_rng(0).choice(fmodel.size(), size=60, replace=False)
    for i in picks:
        e = np.zeros(fmodel.size())
        e[i] = 1e-6
        numeric = (loss(start + e) - loss(start - e)) / 2e-6
        assert abs(numeric - step[i]) < 1e-6 + 1e-5 * abs(numeric)


def test_training_and_evaluating_the_model_import_no_torch():
    """The model is numpy: a Ray worker running a device round never pays torch's import (~3 s of CPU)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        import numpy as np
        from federated import model as m
        from federated.features import Examples
        rng, n = np.random.default_rng(0), 50
        ints = lambda k: rng.integers(0, k, n)
        ex = Examples(at=np.arange(n), day=np.arange(n) // 10, hour_sin=rng.random(n), hour_cos=rng.random(n),
                      weekday=ints(7), place=ints(3), prev_app=ints(3), unlock=rng.random(n),
                      meeting_soon=np.zeros(n), y_app=ints(3), y_place=ints(3) - 1)
        net = m.build(seed=0)
        m.train_local(net, ex, steps=3, batch_size=16, lr=0.1)
        m.evaluate(net, ex)
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
