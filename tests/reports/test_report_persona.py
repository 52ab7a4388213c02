"""The privacy report of a vault built by the synthetic persona, read by agents through the real API.

Known accesses (real HTTP requests with real tokens) and known releases give exact counts; the report
served at /v1/privacy/report is for `audit:read` only and holds none of the persona's personal data.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiSettings
from api.tokens import TokenStore
from ingest.pipeline import run
from reports.html import render
from synth import generate
from tests.api.conftest import BASE, HOST, PORT
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.reports.test_report import _release
from vault import ledger
from vault.errors import BudgetExhausted
from vault.store import Vault

TABLES = ("location_points", "place_visits", "calendar_events", "usage_events", "stays", "app_sessions")


def test_report_of_a_persona_vault_counts_exactly_what_agents_read_and_what_left(tmp_path):
    manifest = generate(tmp_path / "exports", seed=5, days=21)
    home = tmp_path / "home"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        start, end = manifest.truth.period
        loaded = run(vault, [manifest.root], options={"window_start": start, "window_end": end})
        rows = {t: int(vault.scalar(f"SELECT count(*) FROM {t}")) for t in TABLES}
        store = TokenStore.load(vault)
        planner = store.create(agent="planner", scopes=["location:read"], location="coarse", purpose="day plans")
        auditor = store.create(agent="auditor", scopes=["audit:read"], location="none", purpose="audit")
        ledger.append(vault, _release(1, 2.5))
        ledger.append(vault, _release(2, 5.0))
        with pytest.raises(BudgetExhausted):
            ledger.append(vault, _release(3, 9.0))
    assert loaded.loaded > 10_000 and all(rows.values())

    app = create_app(ApiSettings(home=home, passphrase=PASSPHRASE, host=HOST, port=PORT))
    with TestClient(app, base_url=BASE) as client:
        def get(path: str, secret: str, **params: str):
            return client.get(path, params=params, headers={"Authorization": f"Bearer {secret}"})

        window = {"from": start.isoformat(), "to": end.isoformat()}
        returned = 0
        for _ in range(3):
            r = get("/v1/places", planner.secret, **window)
            assert r.status_code == 200
            returned += sum(p["visits"] for p in r.json()["places"])  # the stays behind the places
        for _ in range(2):  # out of scope: refused, and counted as refusals
            assert get("/v1/usage/summary", planner.secret, **window).status_code == 403
        assert get("/v1/privacy/report", planner.secret).status_code == 403  # no audit:read
        assert get("/v1/privacy/report", auditor.secret).status_code == 200
        served = get("/v1/privacy/report", auditor.secret)
        assert served.status_code == 200
        report = served.json()

    inventory = {t["table"]: t["rows"] for t in report["inventory"]["tables"]}
    assert {t: inventory[t] for t in TABLES} == rows
    tokens = {t["agent"]: t for t in report["access"]["tokens"]}
    p = tokens["planner"]
    assert (p["requests"], p["refusals"], p["rows_returned"]) == (6, 3, returned)
    assert tokens["auditor"]["requests"] == 1  # the report being built is audited after it is built
    assert {t["agent"] for t in report["access"]["tokens_created"]} >= {"planner", "auditor"}
    privacy = report["privacy"]
    assert [r["round"] for r in privacy["releases"]] == [1, 2] and len(privacy["refusals"]) == 1
    assert privacy["budget"]["spent"] == 5.0 and privacy["budget"]["remaining"] == 3.0
    assert all(c["ok"] for c in report["integrity"]["chains"].values())

    text = json.dumps(report) + render(report)
    persona = manifest.persona
    secrets = [persona.name, persona.email, persona.employer] + [pl.name for pl in manifest.truth.places]
    secrets += sorted({o.title for o in manifest.truth.occurrences})[:20]
    leaked = [s for s in secrets if s and s in text]
    assert not leaked, leaked
