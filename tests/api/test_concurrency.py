"""Reads run side by side: concurrent searches through the real app all succeed, each is audited exactly
once, and the audit chain stays intact (appends from many worker threads, one commit per request)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiSettings
from embeddings.encoder import Encoder
from tests.api.conftest import BASE, HOST, PORT, Served, make_vault
from tests.conftest import PASSPHRASE

QUERIES = ["gym", "dentist", "coffee with Sam", "trip to Lisbon", "standup meeting", "youtube at night",
           "when did I last see Dr. Lee", "lunch"]


def test_concurrent_searches_are_each_audited_and_the_chain_holds(served: Served) -> None:
    before = len(served.audit("memory:read"))

    def one(i: int) -> tuple[int, list[int]]:
        r = served.call("POST", "/v1/search", "memory:read", json={"query": QUERIES[i % len(QUERIES)], "k": 5})
        return r.status_code, [h["id"] for h in r.json().get("hits", [])]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(48)))
    assert all(status == 200 and ids for status, ids in results)
    records = served.audit("memory:read")[before:]
    assert len(records) == 48
    assert sorted(tuple(int(i) for i in r["returned_ids"]) for r in records) == sorted(tuple(ids) for _, ids in results)
    searched = served.call("GET", "/v1/audit/events", "owner", params={"kind": "memory.searched", "limit": 1000})
    assert len([e for e in searched.json()["events"] if e["body"]["actor"] == served.ids["memory:read"]]) >= 48
    verified = served.call("GET", "/v1/audit/verify", "audit:read").json()
    assert verified["ok"], verified


def test_the_server_loads_the_memory_index_as_it_starts_not_in_the_first_search(tmp_path: Path,
                                                                                api_encoder: Encoder) -> None:
    home = tmp_path / "home"
    make_vault(home, api_encoder)
    for warm in (True, False):
        app = create_app(ApiSettings(home=home, passphrase=PASSPHRASE, host=HOST, port=PORT, warm=warm),
                         encoder=api_encoder)
        with TestClient(app, base_url=BASE):
            service = app.state.backend.service
            deadline = time.monotonic() + 60
            while warm and not service.ready and time.monotonic() < deadline:
                time.sleep(0.02)
            assert service.ready is warm  # no request was made
