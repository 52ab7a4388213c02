"""The privacy report, computed from a real vault with known loads, accesses and releases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from ingest.pipeline import run
from lifevault.cli import main
from reports.build import build
from reports.html import render
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.pipeline.test_pipeline_usage import a_morning, usage_csv
from vault import audit, ledger

CANARY_PKG = "com.canary.secretapp"


@dataclass(frozen=True, slots=True, kw_only=True)
class Access(audit.AuditEvent):
    """Shaped like an API read event: token id, agent, endpoint, status, returned ids, query hash."""

    kind: ClassVar[str] = "api.request"
    token_id: str
    agent: str
    endpoint: str
    status: int
    returned_ids: list[int]
    query_sha256: str


def _release(rnd: int, eps: float) -> ledger.Release:
    return ledger.Release(round=rnd, model_id="next-app-v1", mode="local", mechanism="gaussian", clip_norm=1.0,
                          noise_multiplier=1.2, sampling="none", sampling_rate=None, delta=1e-6,
                          epsilon_after=eps, epsilon_after_rdp=eps * 1.08, epsilon_label="device-verifiable",
                          budget_epsilon=8.0)


def seeded(vault, tmp_path):
    rows = a_morning() + [(1_730_000_000_000 + 5_000_000, 1, CANARY_PKG, "Secret"), (1_730_000_000_000 + 6_000_000, 2, CANARY_PKG, "Secret")]
    run(vault, [usage_csv(tmp_path / "usage_events.csv", rows)])
    for i in range(3):
        audit.record(vault, Access(actor="api", token_id="tok-a", agent="assistant", endpoint="/v1/search", status=200,
                                   returned_ids=[1, 2, 3][: i + 1], query_sha256=audit.text_hash(vault, "where is Dr Lee")))
    audit.record(vault, Access(actor="api", token_id="tok-b", agent="fitness", endpoint="/v1/places", status=403,
                               returned_ids=[], query_sha256=""))
    ledger.append(vault, _release(1, 2.5))
    ledger.append(vault, _release(2, 5.0))
    try:
        ledger.append(vault, _release(3, 9.0))
    except Exception:  # noqa: BLE001 - the refusal is what we want recorded
        pass
    return vault


def test_report_counts_are_exact(vault, tmp_path):
    r = build(seeded(vault, tmp_path))
    tables = {t["table"]: t["rows"] for t in r["inventory"]["tables"]}
    assert tables["usage_events"] == 10 and tables["app_sessions"] == 5
    tokens = {t["token_id"]: t for t in r["access"]["tokens"]}
    assert (tokens["tok-a"]["requests"], tokens["tok-a"]["rows_returned"], tokens["tok-a"]["refusals"]) == (3, 6, 0)
    assert (tokens["tok-b"]["requests"], tokens["tok-b"]["refusals"]) == (1, 1)
    p = r["privacy"]
    assert [x["round"] for x in p["releases"]] == [1, 2] and len(p["refusals"]) == 1
    assert p["budget"]["spent"] == 5.0 and p["budget"]["remaining"] == 3.0
    assert all(c["ok"] for c in r["integrity"]["chains"].values())
    assert r["integrity"]["versions"]["duckdb"] == "1.5.5"
    assert "2 privacy-protected model update(s)" in " ".join(r["summary"])


def test_report_never_contains_personal_data(vault, tmp_path):
    r = build(seeded(vault, tmp_path))
    text = json.dumps(r, default=str) + render(r)
    for secret in (CANARY_PKG, "Secret", "com.slack", "Dr Lee", "where is"):
        assert secret not in text


def test_html_is_self_contained_with_three_charts(vault, tmp_path):
    page = render(build(seeded(vault, tmp_path)))
    assert page.count('<svg class="chart"') == 3
    for external in ("http://", "https://", "<script", "src=", "@import", "url("):
        assert external not in page.replace("http://www.w3.org/2000/svg", "")


def test_report_command_writes_html_and_json(vault, tmp_path, monkeypatch, capsys):
    seeded(vault, tmp_path)
    vault.close()
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    out = tmp_path / "report.html"
    assert main(["report", "--home", str(vault.home), "--html", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["privacy"]["budget"]["spent"] == 5.0 and out.read_text().startswith("<!doctype html>")


def _mixed(vault, modes: list[str], *, z: float = 3.0, t: int = 4, sampling: str = "none", sampler: str = "") -> None:
    from federated import accounting

    for i, mode in enumerate(modes, start=1):
        events = [accounting.Release(noise_multiplier=z)] * i
        ledger.append(vault, ledger.Release(
            round=i, model_id="m", mode=mode, mechanism="gaussian", clip_norm=1.0, noise_multiplier=z,
            sampling=sampling, sampling_rate=0.1 if sampling == "poisson" else None, delta=1e-6,
            epsilon_after=accounting.epsilon(events, 1e-6), epsilon_after_rdp=accounting.epsilon(events, 1e-6, accountant="rdp"),
            epsilon_label={"local": "device-verifiable", "central": "central (honest server)",
                           "distributed": "distributed (honest majority)"}[mode],
            budget_epsilon=100.0, noise_shares=t if mode == "distributed" else 1, sampler=sampler))


def _figures(vault) -> dict:
    return {row["assumption"]: row["epsilon"] for row in build(vault)["privacy"]["epsilon_by_trust_assumption"]}


def test_after_central_central_local_rounds_device_verifiable_is_infinite_not_the_last_figure(vault):
    from federated import accounting

    _mixed(vault, ["central", "central", "local"])
    fig = _figures(vault)
    three = accounting.epsilon([accounting.Release(noise_multiplier=3.0)] * 3, 1e-6)
    assert fig["recorded (the ledger's figure)"] == three
    assert fig["honest-server"] == three  # every release's noise holds if the server is honest
    assert fig["device-verifiable"] == "inf" and fig["honest-majority"] == "inf"  # two rounds the device added nothing
    assert fig["amplified (by sampling)"].startswith("not claimed")
    json.dumps(build(vault), allow_nan=False)  # "inf" is a string: the report stays strict JSON


def test_a_distributed_round_counts_its_own_share_only_where_the_majority_is_not_trusted(vault):
    from federated import accounting

    _mixed(vault, ["local", "distributed"], z=3.0, t=4)
    fig = _figures(vault)
    own = [accounting.Release(noise_multiplier=3.0), accounting.Release(noise_multiplier=1.5)]  # 3 / sqrt(4)
    full = [accounting.Release(noise_multiplier=3.0)] * 2
    assert fig["device-verifiable"] == accounting.epsilon(own, 1e-6) == fig["honest-server"]
    assert fig["honest-majority"] == accounting.epsilon(full, 1e-6) == fig["recorded (the ledger's figure)"]
    assert fig["device-verifiable"] > fig["honest-majority"]


def test_a_skellam_round_after_gaussian_rounds_is_composed_per_trust_assumption(vault):
    from federated import accounting, skellam

    _mixed(vault, ["central", "local"], z=3.0)
    whole = skellam.Params(clip_norm=1.0, noise_multiplier=3.0, gamma=20000.0, dim=1651, noise_shares=4)
    share = skellam.Params(clip_norm=1.0, noise_multiplier=1.5, gamma=20000.0, dim=1651, noise_shares=1)
    recorded, rdp = accounting.compose([3.0, 3.0, whole], 1e-6)
    ledger.append(vault, ledger.Release(
        round=3, model_id="m", mode="distributed", mechanism="skellam", clip_norm=1.0, noise_multiplier=3.0,
        sampling="none", sampling_rate=None, delta=1e-6, epsilon_after=recorded, epsilon_after_rdp=rdp,
        epsilon_label="distributed (honest majority)", budget_epsilon=100.0, noise_shares=4,
        skellam=whole.to_record()))
    fig = _figures(vault)
    assert fig["recorded (the ledger's figure)"] == recorded
    assert fig["honest-server"] == accounting.compose([3.0, 3.0, share], 1e-6)[0]
    assert fig["device-verifiable"] == "inf" and fig["honest-majority"] == "inf"  # the central round
    gaussian_only = accounting.epsilon([accounting.Release(noise_multiplier=3.0)] * 3, 1e-6)
    assert recorded > gaussian_only  # RDP with the Skellam bound: never below the Gaussian figure


def test_amplification_is_claimed_only_for_central_rounds_with_a_secret_fixed_denominator_sampler(vault, tmp_path):
    from federated import accounting, trust
    from vault.store import Vault

    _mixed(vault, ["central", "central"], sampling="poisson", sampler=trust.SECRET_FIXED)
    amplified = accounting.epsilon([accounting.Release(noise_multiplier=3.0, sampling="poisson",
                                                       sampling_rate=0.1)] * 2, 1e-6)
    assert _figures(vault)["amplified (by sampling)"] == amplified < _figures(vault)["recorded (the ledger's figure)"]
    for modes, sampler in ((["central", "central"], ""), (["local", "local"], "")):
        other, _ = Vault.create(tmp_path / f"v-{modes[0]}-{sampler or 'replayable'}", PASSPHRASE, kdf=FAST_KDF)
        with other:
            _mixed(other, modes, sampling="poisson", sampler=sampler)
            assert _figures(other)["amplified (by sampling)"].startswith("not claimed")


def test_every_value_in_the_page_is_escaped_by_the_template_engine(vault, tmp_path):
    report = build(seeded(vault, tmp_path))
    hostile = '<script>alert("x")</script>'
    report["access"]["tokens"][0]["agent"] = hostile
    report["summary"].append(f"note {hostile}")
    report["access"]["requests_per_agent_per_day"].append({"agent": hostile, "day": "2025-01-02", "requests": 1})
    page = render(report)
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 3  # in the table, the summary and the chart's legend


def test_axis_ticks_are_round_numbers_written_in_full():
    from reports.svg import line_chart, nice_ticks, tick_label

    assert nice_ticks(11_500) == [0, 2500, 5000, 7500, 10000, 12500]
    assert [tick_label(v) for v in (0, 12_500, 0.25, 2.5)] == ["0", "12,500", "0.25", "2.5"]
    svg = line_chart({"a": [("2025-01", 11_500.0), ("2025-02", 9_000.0)]}, title="t", y_label="rows", chart_id="c")
    assert "e+" not in svg and "12,500" in svg and "Jan 2025" in svg and ">Feb<" in svg


def test_release_ticks_follow_numeric_order_and_an_empty_chart_is_one_line():
    from reports.svg import line_chart

    svg = line_chart({"x": [(f"r{i}", float(i)) for i in (1, 2, 10)]}, title="t", y_label="eps", chart_id="c")
    assert svg.index(">r2<") < svg.index(">r10<")
    empty = line_chart({}, title="Requests per agent per day", y_label="requests", chart_id="chart-access")
    assert empty == '<p class="note empty" id="chart-access">Requests per agent per day: no data yet.</p>'
