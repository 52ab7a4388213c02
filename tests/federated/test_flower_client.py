"""The device side of federated learning, through the real Flower ClientApp called in-process.

Hand-built Messages (no Ray, no SuperLink) against a real encrypted vault whose derived tables hold a
small, habitual life (fill_device). What a device releases is checked against its ledger and audit log.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict

from federated import client as dev
from federated import client_app as capp
from federated import features as feat
from federated import model as fmodel
from tests.conftest import FAST_KDF, PASSPHRASE
from vault import audit
from vault import ledger as vledger
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2025, 10, 31, tzinfo=UTC)

# persona habits: (hours, weekdays, place) and what the user opens there
PLACES = {"home": ("Home", "HOME"), "work": ("Office", "WORK"), "gym": ("City Gym", "UNKNOWN"),
          "food": ("Corner Cafe", "UNKNOWN")}
APPS = {  # place -> [(package, app name, category, weight)]
    "home": [("com.google.android.youtube", "YouTube", "Video", 3), ("com.whatsapp", "WhatsApp", "Communication", 3),
             ("bbc.mobile.news.ww", "BBC News", "News", 1)],
    "work": [("com.slack", "Slack", "Communication", 3), ("com.google.android.apps.docs", "Docs", "Productivity", 4)],
    "gym": [("com.strava", "Strava", "Health & Fitness", 4), ("com.spotify.music", "Spotify", "Music", 3)],
    "food": [("com.instagram.android", "Instagram", "Social", 3), ("com.whatsapp", "WhatsApp", "Communication", 1)],
    None: [("com.spotify.music", "Spotify", "Music", 3), ("com.google.android.apps.maps", "Maps", "Navigation", 2)],
}


def _day_plan(weekday: int) -> list[tuple[float, float, str | None]]:
    """(start hour, end hour, place) for one local day; None = on the move."""
    if weekday < 5:
        plan = [(0, 8.2, "home"), (8.2, 8.8, None), (8.8, 17.3, "work"), (17.3, 17.8, None)]
        if weekday in (1, 3):
            plan += [(17.8, 19.0, "gym"), (19.0, 19.4, None), (19.4, 24, "home")]
        else:
            plan += [(17.8, 24, "home")]
        return plan
    return [(0, 10.0, "home"), (10.0, 10.3, None), (10.3, 12.0, "food"), (12.0, 12.3, None), (12.3, 24, "home")]


def fill_device(vault: Vault, *, seed: int, days: int, end: datetime = END, offset_min: int = 60) -> int:
    """Write `days` days of a habitual life into the derived tables; returns the number of app sessions."""
    rng = np.random.default_rng(seed)
    sessions, stays, unlocks, meetings = [], [], [], []
    off = timedelta(minutes=offset_min)
    first = (end - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    for d in range(days):
        local_midnight = first + timedelta(days=d)
        utc_midnight = local_midnight - off
        for h0, h1, place in _day_plan(local_midnight.weekday()):
            s, e = utc_midnight + timedelta(hours=h0), utc_midnight + timedelta(hours=h1)
            if place is not None:
                name, st = PLACES[place]
                stays.append((s, e, name, st))
            options = APPS[place]
            weights = np.array([w for *_, w in options], dtype=float)
            n_open = max(1, int(rng.poisson(2.2 * (h1 - h0) if place != "home" else 0.9 * (h1 - h0))))
            for t in np.sort(rng.uniform(h0, h1, size=n_open)):
                if place == "home" and (t < 7 or t > 23.5):
                    continue  # asleep
                pkg, app, cat, _ = options[int(rng.choice(len(options), p=weights / weights.sum()))]
                at = utc_midnight + timedelta(hours=float(t))
                unlocks.append(at - timedelta(minutes=float(rng.exponential(3.0))))
                sessions.append((at, at + timedelta(minutes=float(rng.uniform(1, 12))), pkg, app, cat))
        if local_midnight.weekday() < 5:
            m = utc_midnight + timedelta(hours=10)
            meetings.append((m, m + timedelta(minutes=45), f"standup-{d}"))
    _insert(vault, "app_sessions", [
        {"start_ts": s, "end_ts": e, "utc_offset_min": offset_min, "package": p, "app_name": a, "category": c,
         "origin": "test"} for s, e, p, a, c in sessions], key=lambda r: f"s\x1f{r['start_ts']}\x1f{r['package']}")
    _insert(vault, "stays", [
        {"start_ts": s, "end_ts": e, "utc_offset_min": offset_min, "name": n, "semantic_type": st, "origin": "test"}
        for s, e, n, st in stays], key=lambda r: f"st\x1f{r['start_ts']}")
    _insert(vault, "usage_events", [
        {"ts": t, "utc_offset_min": offset_min, "event_type": "KEYGUARD_HIDDEN", "format": "test", "load_id": "t"}
        for t in unlocks], key=lambda r: f"u\x1f{r['ts']}")
    _insert(vault, "calendar_events", [
        {"uid": uid, "recurrence_id": "", "start_ts": s, "end_ts": e, "utc_offset_min": offset_min, "all_day": False,
         "status": "CONFIRMED", "format": "test", "load_id": "t"} for s, e, uid in meetings],
        key=lambda r: f"c\x1f{r['uid']}")
    return len(sessions)


def _insert(vault: Vault, table: str, rows: list[dict], *, key) -> None:  # type: ignore[no-untyped-def]
    if rows:
        df = pl.DataFrame(rows).with_columns(pl.Series("row_id", vault.row_ids(key(r) for r in rows), dtype=pl.Int64))
        vault.insert_frame(table, df)


# ---- helpers: a device, hand-built messages ----------------------------------------------------------

@pytest.fixture
def device(tmp_path: Path) -> capp.Device:
    home = tmp_path / "device"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        fill_device(vault, seed=1, days=21)
    pf = tmp_path / "passphrase"
    pf.write_text(PASSPHRASE + "\n")
    return capp.Device(home=home, passphrase_file=pf, allow_evaluate=True)


def context_for(device: capp.Device, *, budget: float | None = None) -> Context:
    cfg = {"vault-home": str(device.home), "passphrase-file": str(device.passphrase_file), "allow-evaluate": True}
    if budget is not None:
        cfg["budget-epsilon"] = budget
    return Context(run_id=1, node_id=7, node_config=cfg, state=RecordDict(), run_config={})


def spec(rnd: int, *, mode: str = "local", z: float = 2.0, clip: float = 0.5) -> dev.RoundSpec:
    return dev.RoundSpec(round=rnd, model_id="test-model", mode=mode, clip_norm=clip, noise_multiplier=z,
                         local_steps=10, batch_size=32, learning_rate=0.5)


def message(content: RecordDict, message_type: str, group: str) -> Message:
    """A message as the SuperLink would deliver it to node 7 (explicit metadata: no Flower runtime needed)."""
    meta = Metadata(run_id=1, message_id=uuid.uuid4().hex, src_node_id=1, dst_node_id=7, reply_to_message_id="",
                    group_id=group, created_at=time.time(), ttl=3600.0, message_type=message_type)
    return Message(content=content, metadata=meta)


def train_message(weights: np.ndarray, s: dev.RoundSpec) -> Message:
    content = RecordDict({"arrays": ArrayRecord({"weights": Array(weights)}), "config": ConfigRecord(s.to_config())})
    return message(content, "train", str(s.round))


def initial() -> np.ndarray:
    return np.asarray(fmodel.get_flat(fmodel.build(seed=0)), dtype=np.float64)


def released(reply: Message) -> np.ndarray | None:
    if "arrays" not in reply.content.array_records:
        return None
    return np.asarray(reply.content.array_records["arrays"]["update"].numpy())


def reason(reply: Message) -> str | None:
    rec = reply.content.config_records.get("status")
    return None if rec is None else str(rec["reason"])


def ledger_rows(device: capp.Device) -> list[dict]:
    with device.vault() as v:
        return [r.body for r in vledger.releases(v)]


# ---- specs -------------------------------------------------------------------------------------------

def test_each_released_round_is_in_the_ledger_exactly_once_with_its_parameters(device):
    app, ctx, w = capp.make_app(), context_for(device), initial()
    replies = [app(train_message(w, spec(r)), ctx) for r in (1, 2, 3)]
    assert all(released(m) is not None and released(m).shape == w.shape for m in replies)
    rows = ledger_rows(device)
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert {(r["mode"], r["clip_norm"], r["noise_multiplier"], r["delta"], r["epsilon_label"]) for r in rows} == {
        ("local", 0.5, 2.0, vledger.DEFAULT_BUDGET_DELTA, "device-verifiable")}
    eps = [r["epsilon_after"] for r in rows]
    assert eps == sorted(eps) and eps[0] > 0  # composition only grows
    assert [m.content.metric_records["metrics"]["epsilon"] for m in replies] == eps
    assert all(abs(r["epsilon_after_rdp"] - r["epsilon_after"]) / r["epsilon_after"] < 0.5 for r in rows)


def test_round_is_refused_when_budget_is_exhausted_and_sends_nothing(device):
    app, w = capp.make_app(), initial()
    with device.vault() as v:
        one = dev.projected(v, spec(1), dev.Policy())[0]
    two = dev.composed([dev.gaussian(2.0)] * 2, delta=vledger.DEFAULT_BUDGET_DELTA)[0]
    ctx = context_for(device, budget=(one + two) / 2)  # room for one round, not two
    first = app(train_message(w, spec(1)), ctx)
    second = app(train_message(w, spec(2)), ctx)
    assert released(first) is not None
    assert released(second) is None and reason(second) == "budget"
    assert [r["round"] for r in ledger_rows(device)] == [1]
    with device.vault() as v:
        (refused,) = list(audit.events(v, kind="privacy.release_refused"))
        trained = list(audit.events(v, kind="federated.round_trained"))
    assert refused.body["round"] == 2 and refused.body["epsilon_would_be"] > refused.body["budget_epsilon"]
    assert [e.body["round"] for e in trained] == [1]  # the refused round never read the data


def test_budget_is_checked_before_training(device, monkeypatch):
    called = []
    monkeypatch.setattr(dev, "train_update", lambda *a, **k: called.append(1))
    with device.vault() as v, pytest.raises(dev.BudgetExhausted, match="nothing was sent"):
        dev.release_round(v, initial(), spec(1, z=0.05), dev.Policy(budget_epsilon=1.0))
    assert called == []


def test_exact_epsilon_is_the_floor_of_the_recorded_pld_figure():
    # reference: Gaussian z=4.8448 composed 10x at delta 1e-5 -> PLD 2.688, RDP 2.915 (dp_vectors.md)
    ten = [dev.gaussian(4.8448)] * 10
    pld, rdp = dev.composed(ten, delta=1e-5)
    assert pld == pytest.approx(2.688, abs=1e-3) and rdp == pytest.approx(2.915, abs=1e-3)
    mixed = [dev.gaussian(2.0), dev.gaussian(3.0), dev.gaussian(50.0)]
    for events in (ten, mixed):
        floor = dev.exact(events, delta=1e-5)
        pld, rdp = dev.composed(events, delta=1e-5)
        assert floor <= pld <= rdp and pld - floor < 1e-3


def test_a_tiny_noise_multiplier_is_refused_quickly(device):
    t0 = time.perf_counter()
    with device.vault() as v, pytest.raises(dev.BudgetExhausted):
        dev.release_round(v, initial(), spec(1, z=1e-3), dev.Policy())
    assert time.perf_counter() - t0 < 10  # the PLD accountant alone would take minutes at z = 0.001
    with device.vault() as v:
        (event,) = list(audit.events(v, kind="privacy.release_refused"))
        assert event.body["epsilon_would_be"] > 1000 and list(vledger.releases(v)) == []


def test_clipped_update_norm_is_at_most_c_in_central_mode(device):
    app, ctx, w = capp.make_app(), context_for(device), initial()
    for r, clip in enumerate((1e-3, 0.05, 0.5), start=1):
        u = released(app(train_message(w, spec(r, mode="central", clip=clip)), ctx))
        assert u is not None and u.dtype == np.float64
        assert np.linalg.norm(u) <= clip * (1 + 1e-9)
    rows = ledger_rows(device)
    assert [r["epsilon_label"] for r in rows] == ["central (honest server)"] * 3


def test_local_noise_has_the_calibrated_standard_deviation(device):
    with device.vault() as v:
        rel = dev.release_round(v, initial(), spec(1, z=3.0, clip=0.01), dev.Policy())
    d = rel.update.shape[0]
    # the clipped signal has norm <= 0.01; the noise per coordinate is N(0, (3 * 0.01)^2)
    s2 = float(np.sum(rel.update**2)) / (0.03**2)
    assert d - 5 * math.sqrt(2 * d) < s2 < d + 5 * math.sqrt(2 * d) + (0.01 / 0.03) ** 2


def test_a_distributed_share_is_a_skellam_share_of_the_clipped_update_and_its_row_records_the_mechanism(device):
    from federated import accounting, skellam

    s = _distributed(4, clip=0.01, z=3.0, sampled=4)
    with device.vault() as v:
        rel = dev.release_round(v, initial(), s, dev.Policy())
        (row,) = [r.body for r in vledger.releases(v)]
    assert np.array_equal(rel.update, np.rint(rel.update))  # integers: residues modulo 2^22
    assert np.all(rel.update >= -skellam.HALF) and np.all(rel.update < skellam.HALF)
    d, sigma = rel.update.shape[0], 3.0 * 0.01 / math.sqrt(4)  # four shares sum to Skellam of variance (gamma zC)^2
    s2 = float(np.sum((rel.update / s.gamma) ** 2)) / sigma**2
    assert d - 5 * math.sqrt(2 * d) < s2 < d + 5 * math.sqrt(2 * d) + (0.01 / sigma) ** 2 + d / (s.gamma * sigma) ** 2
    assert row["mechanism"] == "skellam" and row["noise_multiplier"] == 3.0 and row["noise_shares"] == 4
    assert row["epsilon_label"] == "distributed (honest majority)"
    p = s.skellam_params()
    assert row["skellam"] == p.to_record() and row["skellam"]["gamma"] == s.gamma
    assert row["skellam"]["skellam_lam"] == pytest.approx((s.gamma * 3.0 * 0.01) ** 2 / 2)
    assert rel.epsilon_after == pytest.approx(accounting.compose([p], vledger.DEFAULT_BUDGET_DELTA)[0])
    assert rel.epsilon_after > accounting.epsilon([accounting.Release(noise_multiplier=3.0)], vledger.DEFAULT_BUDGET_DELTA)
    assert rel.epsilon_device_verifiable > rel.epsilon_after  # its own share alone protects less than the sum
    with device.vault() as v:  # afterwards, from the ledger alone: the share's lambda / t, not infinity
        after = dev.epsilons(v)["device_verifiable"]
    assert after == pytest.approx(rel.epsilon_device_verifiable) and math.isfinite(after)


def test_a_distributed_round_declaring_another_model_size_is_refused_before_the_budget(device):
    s = dataclasses.replace(_distributed(4, sampled=4), dim=initial().size + 1)
    with device.vault() as v, pytest.raises(ValueError, match="skellam dim"):
        dev.release_round(v, initial(), s, dev.Policy())
    assert ledger_rows(device) == []


def test_a_ledger_mixing_gaussian_and_skellam_rounds_is_recomputed_by_audit_verify(device):
    from federated import accounting
    from lifevault.cli import main

    with device.vault() as v:
        dev.release_round(v, initial(), spec(1), dev.Policy())
        dev.release_round(v, initial(), _distributed(6, sampled=8, rnd=2), dev.Policy())
        bodies = [r.body for r in vledger.releases(v)]
    assert [b["mechanism"] for b in bodies] == ["gaussian", "skellam"]
    checked = accounting.recompute(bodies)
    assert all(c.ok for c in checked) and checked[1].pld == checked[1].rdp  # with a Skellam release: RDP
    for field, value in (("l2_bound", 1.0), ("noise_multiplier", 9.0)):  # a row whose figures disagree
        tampered = bodies[1] | {"skellam": bodies[1]["skellam"] | {field: value}}
        assert not accounting.recompute([bodies[0], tampered])[1].ok
    assert main(["audit", "verify", "--home", str(device.home), "--passphrase-file", str(device.passphrase_file)]) == 0


def test_release_round_sends_exactly_what_privatize_returns(device, monkeypatch):
    # privatize is the step the empirical audit submits its canaries through (federated/audit.py)
    marker = np.full(initial().size, 0.125)
    seen = []
    monkeypatch.setattr(dev, "privatize", lambda update, s: seen.append(update) or marker)
    with device.vault() as v:
        rel = dev.release_round(v, initial(), spec(1), dev.Policy())
    assert np.array_equal(rel.update, marker) and len(seen) == 1 and np.linalg.norm(seen[0]) == rel.norm_before_clip


def test_a_distributed_round_outside_secagg_is_refused(device):
    reply = capp.make_app()(train_message(initial(), _distributed(2, sampled=2)), context_for(device))
    assert released(reply) is None and reason(reply) == "distributed-needs-secagg"
    assert ledger_rows(device) == []


def test_a_device_with_too_little_data_refuses_to_train(tmp_path):
    home = tmp_path / "small"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        n = fill_device(vault, seed=3, days=3)
    assert n < feat.MIN_EXAMPLES or 3 < feat.MIN_DAYS
    pf = tmp_path / "pp"
    pf.write_text(PASSPHRASE)
    small = capp.Device(home=home, passphrase_file=pf)
    reply = capp.make_app()(train_message(initial(), spec(1)), context_for(small))
    assert released(reply) is None and reason(reply) == "too-little-data"
    assert ledger_rows(small) == []
    with small.vault() as v:
        (event,) = list(audit.events(v, kind="federated.training_refused"))
    assert event.body["reason"] == "too-little-data"


def test_evaluation_is_answered_only_when_the_owner_allows_it(device):
    w = initial()
    msg = message(RecordDict({"arrays": ArrayRecord({"weights": Array(w)})}), "evaluate", "1")
    ok = capp.make_app()(msg, context_for(device))
    met = ok.content.metric_records["metrics"]
    assert 0 <= met["correct"] <= met["total"] and met["total"] > 0
    ctx = context_for(device)
    ctx.node_config["allow-evaluate"] = False
    assert reason(capp.make_app()(msg, ctx)) == "evaluation-not-allowed"


def test_ledger_epsilon_is_recomputed_identically_after_reopening(device):
    app, ctx, w = capp.make_app(), context_for(device), initial()
    for r in (1, 2):
        app(train_message(w, spec(r, z=1.5)), ctx)
    with device.vault() as v:
        events = dev.recorded_events(v)
        recorded = [r.body["epsilon_after"] for r in vledger.releases(v)][-1]
    dev._composed.cache_clear()  # nothing remembered in memory: only the ledger carries the accountant's state
    with device.vault() as v:
        again = dev.composed(dev.recorded_events(v), delta=vledger.DEFAULT_BUDGET_DELTA)[0]
    assert len(events) == 2 and again == recorded


def test_ledger_survives_kill_9_and_its_chain_verifies(device, tmp_path):
    script = textwrap.dedent(f"""
        import numpy as np
        from federated import client as dev, model as fmodel
        from vault.store import Vault
        w = np.asarray(fmodel.get_flat(fmodel.build(seed=0)), dtype=np.float64)
        with Vault.open({str(device.home)!r}, {PASSPHRASE!r}) as v:
            for r in range(1, 10_000):
                s = dev.RoundSpec(round=r, model_id="kill", mode="central", clip_norm=0.1, noise_multiplier=50.0,
                                  local_steps=1, batch_size=8, learning_rate=0.1)
                dev.release_round(v, w, s, dev.Policy(budget_epsilon=1000.0))
                print(r, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        for _ in range(3):
            assert proc.stdout is not None and proc.stdout.readline().strip()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with device.vault() as v:
        assert vledger.verify(v).ok and audit.verify(v).ok
        rows = [r.body for r in vledger.releases(v)]
    assert len(rows) >= 3 and [r["round"] for r in rows] == list(range(1, len(rows) + 1))
    from lifevault.cli import main  # the owner's check: both chains and every recorded epsilon recomputed

    assert main(["audit", "verify", "--home", str(device.home), "--passphrase-file", str(device.passphrase_file)]) == 0


# ---- SecAgg+: the threshold the server declares ----------------------------------------------------------

def _declared(sampled: int, s: dev.RoundSpec, **changes) -> dict:
    from federated import aggregate

    kw = aggregate.secagg_settings(sampled=sampled, noise_shares=s.noise_shares)
    state = {"sample_num": sampled, "threshold": aggregate.reconstruction_threshold(kw, sampled),
             "clipping_range": kw["clipping_range"], "target_range": kw["quantization_range"],
             "mod_range": kw["modulus_range"], "max_weight": kw["max_weight"]}
    return state | changes


def _distributed(t: int, *, sampled: int, clip: float = 0.5, z: float = 2.0, rnd: int = 1,
                 gamma: float | None = None) -> dev.RoundSpec:
    """A distributed round's spec as server_app.round_spec declares it for `sampled` devices."""
    from federated import aggregate, skellam

    dim = initial().size
    g = gamma or aggregate.pick_gamma(sampled=sampled, dim=dim, clip_norm=clip, noise_multiplier=z, noise_shares=t)
    return dev.RoundSpec(round=rnd, model_id="test-model", mode="distributed", clip_norm=clip, noise_multiplier=z,
                         noise_shares=t, local_steps=10, batch_size=32, learning_rate=0.5, mechanism=skellam.NAME,
                         gamma=g, dim=dim, bits=skellam.BITS)


@pytest.mark.parametrize("sampled", [2, 3, 4, 7, 10, 40, 101, 1023])
def test_the_secagg_reconstruction_threshold_flower_computes_is_t(sampled):
    from flwr.server.workflow import SecAggPlusWorkflow

    from federated import aggregate

    for fraction in (0.5, 0.6, 0.75, 0.9, 1.0):
        t = aggregate.noise_shares_for(sampled, fraction)
        if t > sampled:
            continue
        kw = aggregate.secagg_settings(sampled=sampled, noise_shares=t)
        wf = SecAggPlusWorkflow(**kw)  # Flower validates the settings
        # SecAggPlusWorkflow.setup_stage: num_shares = round(num_shares * n) (= n here, a full graph);
        # threshold = max(round(reconstruction_threshold * num_shares), 2)
        num_shares = round(wf.num_shares * sampled)
        assert num_shares == sampled
        assert max(round(wf.reconstruction_threshold * num_shares), 2) == t


def test_a_distributed_round_over_1023_devices_is_refused_before_the_modular_sum_can_wrap():
    from federated import aggregate, skellam

    assert aggregate.SECAGG_MAX_DEVICES * skellam.MODULUS < skellam.SECAGG_MODULUS_RANGE
    aggregate.secagg_settings(sampled=1023, noise_shares=768)
    with pytest.raises(ValueError, match="2 to 1023 devices"):
        aggregate.secagg_settings(sampled=1024, noise_shares=768)


def test_a_device_drops_out_of_secagg_when_the_declared_threshold_is_below_t(device):
    s = _distributed(6, sampled=8)
    capp.check_secagg_settings(_declared(8, s), s)  # threshold 6 = t: fine
    with pytest.raises(ValueError, match="below t = 6"):
        capp.check_secagg_settings(_declared(8, s, threshold=4), s)  # the old 0.5 x n
    with pytest.raises(ValueError, match="clipping_range"):
        capp.check_secagg_settings(_declared(8, s, clipping_range=100.0), s)
    with pytest.raises(ValueError, match="overflow"):  # 8 shares at the gamma picked for 8 fit; 9 might wrap
        capp.check_secagg_settings(_declared(9, s), s)
    params = [initial().astype(np.float64)]
    with pytest.raises(ValueError, match="below t"):
        capp._SecAggDevice(device, _declared(8, s, threshold=4)).fit(params, s.to_config())
    assert ledger_rows(device) == []  # refused before the budget was touched
    update, _, _ = capp._SecAggDevice(device, _declared(8, s)).fit(params, s.to_config())
    assert len(ledger_rows(device)) == 1 and update[0].shape == initial().shape
