"""Non-interference: what a token receives from the vault equals what it would receive from a copy of the vault
that holds only what it may see.

The full vault is the persona (tests/embeddings/persona.py) with notes, indexed, with every token made before
it is copied. Each view (location precision none / coarse / precise, with or without calendar:read) gets a
copy of the vault files (same keys, so the same memory ids, row ids and tokens) projected to that view
through the real code paths: source rows it may not see are rewritten as it is shown them (place names and
addresses gone, coordinates at ~1 km, event locations and attendee addresses dropped) or forgotten through
the library (visits and trips for a token without location), then `index` re-renders and re-embeds the
memories. The projection never calls embeddings.redaction: it states the view independently.

For every read endpoint (search with and without explain, in every mode; context; memories/{id}; forget
preview; timeline; places; calendar events and free time; usage; the audit records of each request, read
through /v1/audit/events; the MCP tools) and tokens of every view (a reader holding every other scope, a
writer holding memory:write alone, and location:read with the caveat "none"), the response on the full vault
must equal the response on that view's copy: same status, texts, counts, scores, weights, explain, previews
and digests. Requests are built from names, words and dates that only hidden data holds (a fixed sweep over
every endpoint and token, then hypothesis, with a bounded number of examples).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server.mcpserver.exceptions import ToolError

from api.app import create_app
from api.mcp_server import build as mcp_build
from api.mcp_server import env_token
from api.state import ApiSettings
from api.tokens import TokenStore
from embeddings.forget import ForgetRequest
from embeddings.service import MemoryService
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.embeddings.conftest import SessionEncoder
from tests.embeddings.persona import at, seed
from vault import audit as vault_audit
from vault.store import Vault

HOST, PORT = "127.0.0.1", 8765
BASE = f"http://{HOST}:{PORT}"
VIEWS = [("none", False), ("none", True), ("coarse", False), ("coarse", True), ("precise", False)]
OTHER_SCOPES = ["memory:read", "memory:write", "usage:read", "audit:read"]
# Words, names and dates only hidden data holds (for some view), and a few every view sees.
HIDDEN_WORDS = ["PureGym", "Chelsea", "Fulham", "Harley", "Zyxquor", "Canary Bistro", "Lisbon", "Lisboa", "Belém",
                "Nero", "Kings Rd", "Elm Grove", "Finsbury", "Dental", "clinic.example", "ann.lee", "sousa",
                "gym", "visited", "trip", "walking", "home", "office", "café", "museum", "restaurant", "Time Out"]
VISIBLE_WORDS = ["Slack", "YouTube", "standup", "Dinner with Ana", "Lee", "check-up", "screen time", "sessions",
                 "passport", "birthday"]
HIDDEN_DAYS = [6, 8, 9, 12, 13, 15, 16]  # the clinic, the gym, the canary bistro, Lisbon
NOTES = [("Passport renewal: bring the old one to the Kings Rd office", at(5, 9), ["admin"]),
         ("Ana's birthday is on 16 March; she loves Belém pastries", at(10, 20), ["people"]),
         ("Gym plan: PureGym on Saturdays, swim on Sundays", at(7, 8), ["health"])]


@dataclass
class Pair:
    """One view: the full vault's client and the projected copy's, and that view's token secrets."""

    name: str
    full: TestClient
    copy: TestClient
    tokens: dict[str, str]  # role -> secret (reader, writer, and for precision none: caveat)
    auditor: str = "reader"


@dataclass
class World:
    pairs: list[Pair]
    memory_ids: list[int]  # every memory of the full vault, hidden ones included
    apps: dict[str, Any] = field(default_factory=dict)


def _grants(precision: str, emails: bool) -> dict[str, tuple[list[str], str]]:
    base = (["location:read"] if precision != "none" else []) + (["calendar:read"] if emails else [])
    out = {"reader": (base + OTHER_SCOPES, precision), "writer": (base + ["memory:write"], precision)}
    if precision == "none":
        out["caveat"] = (base + ["location:read", "memory:read", "memory:write"], "none")
    return out


def _view_name(precision: str, emails: bool) -> str:
    return f"{precision}{'+emails' if emails else ''}"


def _project(vault: Vault, encoder: SessionEncoder, precision: str, emails: bool) -> None:
    """Rewrite or forget what this view may not see, in the copy's source rows; then index."""
    if precision != "precise":
        vault.execute("UPDATE calendar_events SET location = NULL")
    if precision == "coarse":
        vault.execute("UPDATE stays SET name = NULL, address = NULL, place_id = NULL, lat = round(lat, 2), "
                      "lon = round(lon, 2)")
        vault.execute("UPDATE trips SET from_name = NULL, to_name = NULL, start_lat = round(start_lat, 2), "
                      "start_lon = round(start_lon, 2), end_lat = round(end_lat, 2), end_lon = round(end_lon, 2)")
    if not emails:
        for rid, attendees, organizer in vault.query("SELECT row_id, attendees, organizer FROM calendar_events"):
            people = [{k: v for k, v in a.items() if k != "email"} for a in json.loads(attendees or "[]")]
            name = re.sub(r"\s*<[^>]*>\s*", "", organizer).strip() if organizer else None
            vault.execute("UPDATE calendar_events SET attendees = ?, organizer = ? WHERE row_id = ?",
                          [json.dumps(people) if attendees else None, name or None, rid])
    svc = MemoryService(vault, encoder=encoder)
    svc.index()
    if precision == "none":
        svc.forget_commit(svc.forget_preview(ForgetRequest(kinds=frozenset({"visit", "trip"}))))
    svc.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    encoder = SessionEncoder()
    root = tmp_path_factory.mktemp("noninterference")
    full_home = root / "full"
    vault, _ = Vault.create(full_home, PASSPHRASE, kdf=FAST_KDF)
    secrets: dict[str, dict[str, str]] = {}
    try:
        seed(vault)
        svc = MemoryService(vault, encoder=encoder)
        svc.index()
        for text, when, tags in NOTES:
            svc.remember(text, occurred_at=when, tags=tags, metadata={"source": "test", "rank": 1})
        svc.close()
        memory_ids = [r[0] for r in vault.query("SELECT memory_id FROM memories ORDER BY memory_id")]
        store = TokenStore.load(vault)
        for precision, emails in VIEWS:
            name = _view_name(precision, emails)
            secrets[name] = {}
            for role, (scopes, loc) in _grants(precision, emails).items():
                issued = store.create(agent=f"{name}-{role}", scopes=scopes, location=loc, purpose="non-interference")
                secrets[name][role] = issued.secret
    finally:
        vault.close()
    homes: dict[str, Path] = {}
    for precision, emails in VIEWS:
        name = _view_name(precision, emails)
        homes[name] = root / name
        shutil.copytree(full_home, homes[name])
        copy = Vault.open(homes[name], PASSPHRASE)
        try:
            _project(copy, encoder, precision, emails)
        finally:
            copy.close()

    def app(home: Path) -> Any:
        return create_app(ApiSettings(home=home, passphrase=PASSPHRASE, host=HOST, port=PORT, warm=False),
                          encoder=encoder)

    full_app = app(full_home)
    with TestClient(full_app, base_url=BASE) as full:
        pairs, clients = [], []
        try:
            for precision, emails in VIEWS:
                name = _view_name(precision, emails)
                copy_app = app(homes[name])
                client = TestClient(copy_app, base_url=BASE)
                client.__enter__()
                clients.append(client)
                pairs.append(Pair(name=name, full=full, copy=client, tokens=secrets[name]))
            yield World(pairs=pairs, memory_ids=memory_ids)
        finally:
            for client in clients:
                client.__exit__(None, None, None)


# ---- comparing -----------------------------------------------------------------------------------------
_VOLATILE = {"updated_at", "seq", "at", "hash"}  # when a row was written in this copy, the log's own chain


def _norm(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items() if k not in _VOLATILE}
    if isinstance(x, list):
        return [_norm(v) for v in x]
    return x


def _differences(a: Any, b: Any, path: str = "$") -> list[str]:
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-5, abs_tol=2e-6)
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))} differ"]
        return [d for k in a for d in _differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _read(x: Any) -> list[Any]:
    """Every text, start or end a response carries (what a write-only token must never receive)."""
    if isinstance(x, dict):
        return [v for k, v in x.items() if k in ("text", "start", "end", "metadata") and v] + \
            [r for v in x.values() for r in _read(v)]
    if isinstance(x, list):
        return [r for v in x for r in _read(v)]
    return []


def _body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


_SEEN: dict[int, int] = {}  # client -> the last audit seq seen (the log is read forward, never again)


def _last_seq(client: TestClient) -> int:
    b = client.app.state.backend  # type: ignore[attr-defined]
    with b.lock.read():
        last = _SEEN.get(id(client), 0)
        while True:
            batch = list(vault_audit.events(b.vault, after_seq=last, limit=1000))
            if not batch:
                break
            last = batch[-1].seq
    _SEEN[id(client)] = last
    return last


def _audit_since(client: TestClient, token: str, after: int) -> Any:
    r = client.request("GET", "/v1/audit/events", params={"after_seq": after, "limit": 1000},
                       headers={"Authorization": f"Bearer {token}"})
    return r.status_code, _norm(_body(r))


def check(pair: Pair, role: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    """The same request by the same token on the full vault and on the view's copy: equal responses, and
    equal audit records of it (read by the view's own auditor token through /v1/audit/events)."""
    token = pair.tokens[role]
    out = []
    for client in (pair.full, pair.copy):
        before = _last_seq(client)
        r = client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)
        assert r.status_code < 500, (pair.name, role, path, r.text)
        out.append((r.status_code, _norm(_body(r)), _audit_since(client, pair.tokens[pair.auditor], before)))
    (status_a, body_a, audit_a), (status_b, body_b, audit_b) = out
    if role == "writer" and path == "/v1/forget":  # writing never implies reading: ids, kinds and counts
        assert not _read(body_a), f"{pair.name}/{role} {method} {path}: {_read(body_a)[:3]}"
    diffs = _differences([status_a, body_a], [status_b, body_b])
    assert not diffs, f"{pair.name}/{role} {method} {path} {kw}: " + "; ".join(diffs[:8])
    diffs = _differences(audit_a, audit_b)
    assert not diffs, f"{pair.name}/{role} {method} {path} {kw} audit: " + "; ".join(diffs[:8])
    return status_a, body_a


# ---- requests ------------------------------------------------------------------------------------------
def _day(d: int) -> str:
    return datetime(2025, 3, d, tzinfo=UTC).isoformat()


def _requests(query: str, day: int, k: int, explain: bool, mode: str, budget: int,
              memory_id: int, kinds: list[str] | None) -> list[tuple[str, str, dict[str, Any]]]:
    since, until = _day(day), (datetime(2025, 3, day, tzinfo=UTC) + timedelta(days=2)).isoformat()
    rng = {"from": since, "to": until}
    search: dict[str, Any] = {"query": query, "k": k, "explain": explain, "mode": mode}
    return [
        ("POST", "/v1/search", {"json": search}),
        ("POST", "/v1/search", {"json": search | {"since": since, "until": until} | ({"kinds": kinds} if kinds else {})}),
        ("POST", "/v1/context", {"json": {"task": query, "token_budget": budget}}),
        ("POST", "/v1/context", {"json": {"task": query, "token_budget": budget, "since": since, "until": until}}),
        ("GET", f"/v1/memories/{memory_id}", {}),
        ("POST", "/v1/forget", {"json": {"query": query.split()[0]}}),  # every word must match: one word
        ("POST", "/v1/forget", {"json": {"since": since, "until": until} | ({"kinds": kinds} if kinds else {})}),
        ("POST", "/v1/forget", {"json": {"memory_ids": [memory_id]}}),
        ("GET", "/v1/timeline", {"params": rng}),
        ("GET", "/v1/places", {"params": rng}),
        ("GET", "/v1/calendar/events", {"params": rng}),
        ("GET", "/v1/calendar/free", {"params": rng}),
        ("GET", "/v1/usage/summary", {"params": rng | {"by": "day"}}),
    ]


def _roles(pair: Pair) -> list[str]:
    return sorted(pair.tokens)


def test_every_endpoint_answers_every_view_as_a_vault_holding_only_that_view(world: World) -> None:
    """A fixed sweep: every view, every token, every read endpoint, with hidden-only words and dates."""
    hidden_ids = world.memory_ids[:: max(1, len(world.memory_ids) // 12)]
    for i, pair in enumerate(world.pairs):
        for role in _roles(pair):
            for j, word in enumerate(("Harley check-up Slack", "PureGym gym visits", "visited ann.lee clinic.example")):
                explain, mode = j != 1, ("hybrid", "lexical", "dense")[j]
                for method, path, kw in _requests(word, HIDDEN_DAYS[(i + j) % len(HIDDEN_DAYS)], 10, explain,
                                                  mode, 300, hidden_ids[(i + j) % len(hidden_ids)], None):
                    check(pair, role, method, path, **kw)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_requests_built_from_hidden_data_cannot_tell_the_vaults_apart(world: World, data: st.DataObject) -> None:
    pair = data.draw(st.sampled_from(world.pairs), label="view")
    role = data.draw(st.sampled_from(_roles(pair)), label="role")
    words = data.draw(st.lists(st.sampled_from(HIDDEN_WORDS + VISIBLE_WORDS), min_size=1, max_size=3), label="words")
    if data.draw(st.booleans(), label="with a date"):
        words.append(f"on {data.draw(st.sampled_from(HIDDEN_DAYS))} March 2025")
    requests = _requests(
        " ".join(words), day=data.draw(st.sampled_from(HIDDEN_DAYS)), k=data.draw(st.integers(1, 40)),
        explain=data.draw(st.booleans()), mode=data.draw(st.sampled_from(["hybrid", "lexical", "dense"])),
        budget=data.draw(st.sampled_from([40, 120, 400, 4000])), memory_id=data.draw(st.sampled_from(world.memory_ids)),
        kinds=data.draw(st.none() | st.lists(st.sampled_from(["visit", "event", "usage", "trip", "note"]),
                                             min_size=1, max_size=3, unique=True)))
    for method, path, kw in data.draw(st.lists(st.sampled_from(requests), min_size=1, max_size=4, unique_by=str)):
        check(pair, role, method, path, **kw)


def test_a_narrow_token_sees_fewer_memories_than_the_owner_so_the_comparison_can_fail(world: World) -> None:
    none_view = world.pairs[0]
    owner_like = none_view.full.request("POST", "/v1/forget", json={"query": "PureGym"},
                                        headers={"Authorization": f"Bearer {world.pairs[-1].tokens['reader']}"})
    assert owner_like.json()["memories"] >= 2  # precise location sees the gym by its name
    status, body = check(none_view, "reader", "POST", "/v1/search", json={"query": "gym", "k": 50})
    assert status == 200 and all(h["kind"] not in ("visit", "trip") for h in body["hits"])
    assert _differences({"x": [1.0, "a"]}, {"x": [1.1, "a"]}) and _differences({"a": 1}, {"b": 1})


async def _tools(client: TestClient, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as upstream:
        server = mcp_build(upstream, env_token(token))
        out = []
        for name, args in calls:
            try:
                result = await server.call_tool(name, args)
            except ToolError as e:  # a refusal (403, 404, 422) comes back as the tool's error: compare it too
                out.append({"error": str(e)})
                continue
            out.append(_norm(result.structured_content))
        return out


def test_mcp_tools_answer_every_view_as_a_vault_holding_only_that_view(world: World) -> None:
    window = {"start": _day(6), "end": _day(17)}
    calls = [("search", {"query": "PureGym Harley Slack", "k": 8}), ("context", {"task": "gym visits in Lisbon"}),
             ("timeline", window), ("places", window), ("calendar", window), ("calendar", window | {"free": True}),
             ("usage", window), ("forget", {"query": "Zyxquor Canary Bistro"}), ("forget", {"kinds": ["event"]})]
    for pair in world.pairs:
        for role in ("reader", "writer"):
            full = anyio.run(_tools, pair.full, pair.tokens[role], calls)
            copy = anyio.run(_tools, pair.copy, pair.tokens[role], calls)
            diffs = _differences(full, copy)
            assert not diffs, f"{pair.name}/{role} MCP: " + "; ".join(diffs[:8])
