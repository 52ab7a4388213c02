"""A real uvicorn server on 127.0.0.1: the CLI forwards jobs to it, and MCP clients use it with agent tokens."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from lifevault.cli import main
from tests.api.conftest import Live
from tests.conftest import PASSPHRASE
from vault.errors import VaultLocked
from vault.store import Vault, read_lock_info

ICS = Path(__file__).resolve().parents[1] / "ingest" / "fixtures" / "calendar" / "work.ics"
ROOT = Path(__file__).resolve().parents[2]


def get(live: Live, path: str, token: str, **params: str) -> httpx.Response:
    return httpx.get(f"{live.url}{path}", params=params, headers={"Authorization": f"Bearer {live.tokens[token]}"})


def test_the_server_owns_the_vault_and_announces_its_port(live: Live) -> None:
    info = read_lock_info(live.home)
    assert info is not None and info["port"] == live.port and info["pid"] == os.getpid()
    session = live.home / "serve.token"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    with pytest.raises(VaultLocked):
        Vault.open(live.home, PASSPHRASE)
    assert httpx.get(f"{live.url}/v1/health").json()["status"] == "ok"


def test_ingest_is_sent_to_the_running_server_instead_of_failing_on_the_lock(live: Live, capsys, monkeypatch) -> None:
    monkeypatch.delenv("LIFEVAULT_PASSPHRASE", raising=False)  # no passphrase needed: the server holds the vault
    window = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "limit": "5000"}
    before = len(get(live, "/v1/calendar/events", "calendar:read", **window).json()["events"])
    code = main(["ingest", str(ICS), "--home", str(live.home), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["loaded"] > 0 and "in the server" in out.err
    events = get(live, "/v1/calendar/events", "calendar:read", **window)
    assert events.status_code == 200 and len(events.json()["events"]) == before + report["loaded"]
    code = main(["ingest", str(ICS), "--home", str(live.home), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["loaded"] == 0  # idempotent through the server too


def test_index_and_forget_are_sent_to_the_running_server(live: Live, capsys, monkeypatch) -> None:
    monkeypatch.delenv("LIFEVAULT_PASSPHRASE", raising=False)
    assert main(["index", "--home", str(live.home), "--json"]) == 0
    out = capsys.readouterr()
    assert "in the server" in out.err and json.loads(out.out)["vectors"] > 0
    owner = {"Authorization": f"Bearer {live.tokens['memory:write']}"}
    made = httpx.post(f"{live.url}/v1/memories", headers=owner,
                      json={"text": "Locker code at the climbing gym is 4417", "tags": ["forward-test"]})
    assert made.status_code in (200, 201), made.text
    mid = made.json()["id"]
    assert httpx.get(f"{live.url}/v1/memories/{mid}",
                     headers={"Authorization": f"Bearer {live.tokens['memory:read']}"}).status_code == 200
    assert main(["forget", "--id", str(mid), "--home", str(live.home), "--dry-run", "--json"]) == 0
    preview = json.loads(capsys.readouterr().out)
    assert preview["dry_run"] is True and preview["memories"] == 1
    assert main(["forget", "--id", str(mid), "--home", str(live.home), "--yes", "--json"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["dry_run"] is False and receipt["memories"] == 1
    reader = {"Authorization": f"Bearer {live.tokens['memory:read']}"}
    assert httpx.get(f"{live.url}/v1/memories/{mid}", headers=reader).status_code == 404


def test_search_context_and_remember_are_sent_to_the_running_server(live: Live, capsys, monkeypatch) -> None:
    monkeypatch.delenv("LIFEVAULT_PASSPHRASE", raising=False)  # the vault is held by the server: no passphrase
    home = ["--home", str(live.home)]
    start = httpx.get(f"{live.url}/v1/audit/verify",  # the records so far: ours come after them
                      headers={"Authorization": f"Bearer {live.tokens['owner']}"}).json()["checked"]
    assert main(["remember", "Bike lock combination is 3141", "--at", "2025-03-02", "--tag", "cli-forward",
                 "--json", *home]) == 0
    out = capsys.readouterr()
    note = json.loads(out.out)
    assert f"Remembered as memory {note['id']}" in out.err and note["tags"] == ["cli-forward"]
    assert note["start"].startswith("2025-03-0") and note["provenance"]["source"] == "owner"
    assert main(["search", "bike lock combination", "--k", "3", "--kind", "note", "--explain", *home]) == 0
    out = capsys.readouterr()
    assert "Bike lock combination is 3141" in out.err and f"(id {note['id']})" in out.err and "fused" in out.err
    assert main(["search", "3141", "--mode", "lexical", "--json", *home]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["hits"][0]["id"] == note["id"] and found["candidates"] > 0
    assert main(["context", "what is my bike lock combination?", "--budget", "200", "--kind", "note", "--json",
                 *home]) == 0
    pack = json.loads(capsys.readouterr().out)
    assert pack["tokens_used"] <= 200 and any(sn["id"] == note["id"] for sn in pack["snippets"])
    assert all(sn["kind"] == "note" for sn in pack["snippets"])
    trail = get(live, "/v1/audit/events", "owner", kind="api.request", limit="1000", after_seq=str(start))
    assert trail.status_code == 200, trail.text
    endpoints = {(e["body"]["endpoint"], e["body"]["token_id"]) for e in trail.json()["events"]}
    assert {("POST /v1/search", "serve-owner"), ("POST /v1/context", "serve-owner"),
            ("POST /v1/memories", "serve-owner")} <= endpoints  # each forwarded job audited as the CLI's


def test_tokens_are_created_listed_and_revoked_through_the_running_server(live: Live, capsys) -> None:
    assert main(["token", "create", "--agent", "cli-made", "--scope", "usage:read", "--home", str(live.home), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    ok = httpx.get(f"{live.url}/v1/usage/summary", headers={"Authorization": f"Bearer {made['token']}"})
    assert ok.status_code == 200
    assert main(["token", "list", "--home", str(live.home), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["tokens"]
    assert made["token_id"] in {t["token_id"] for t in listed} and all("token" not in t for t in listed)
    assert main(["token", "revoke", made["token_id"], "--home", str(live.home)]) == 0
    assert httpx.get(f"{live.url}/v1/usage/summary",
                     headers={"Authorization": f"Bearer {made['token']}"}).status_code == 401


async def _mcp_session(live: Live, token: str) -> dict[str, object]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "lifevault.cli", "mcp", "--home", str(live.home)],
        env={"LIFEVAULT_TOKEN": live.tokens[token], "PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    out: dict[str, object] = {}
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            out["tools"] = {t.name: t.annotations for t in tools}
            out["search"] = await session.call_tool("search", {"query": "coffee at the café", "k": 3})
            out["timeline"] = await session.call_tool("timeline", {"start": "2025-03-01T00:00:00Z",
                                                                    "end": "2025-03-05T00:00:00Z"})
            out["forget"] = await session.call_tool("forget", {"query": "café"})
    return out


def test_mcp_tools_over_stdio_use_the_agent_token_and_are_audited(live: Live) -> None:
    result = anyio.run(_mcp_session, live, "coarse")
    tools = result["tools"]
    assert set(tools) == {"search", "context", "remember", "timeline", "places", "calendar", "usage", "forget"}
    for name in ("search", "context", "timeline", "places", "calendar", "usage"):
        assert tools[name].read_only_hint is True and tools[name].destructive_hint is False
    assert tools["forget"].destructive_hint is True and tools["forget"].read_only_hint is False
    assert tools["remember"].read_only_hint is False and tools["remember"].destructive_hint is False
    search = result["search"]
    assert not search.is_error and search.structured_content["hits"]
    text = json.dumps(search.structured_content) + json.dumps(result["timeline"].structured_content)
    assert "Café Nero" not in text and "Elm Grove" not in text  # the coarse token's redaction holds over MCP
    forget = result["forget"]
    assert forget.is_error and "403" in forget.content[0].text  # the coarse token has no memory:write
    sent = httpx.get(f"{live.url}/v1/audit/events", params={"kind": "api.request", "limit": 1000},
                     headers={"Authorization": f"Bearer {live.tokens['owner']}"}).json()["events"]
    mine = [e["body"] for e in sent if e["body"]["token_id"] == live.ids["coarse"]]
    assert [(b["endpoint"], b["status"], b["via"]) for b in mine] == [
        ("POST /v1/search", 200, "mcp"), ("GET /v1/timeline", 200, "mcp"), ("POST /v1/forget", 403, "mcp")]
    assert mine[0]["query_sha256"] == get(live, "/v1/audit/events", "owner", kind="memory.searched",
                                          limit="1000").json()["events"][-1]["body"]["query_sha256"]


def test_mcp_over_streamable_http_takes_the_bearer_token_of_each_request(live: Live) -> None:
    import httpx2
    import uvicorn
    from mcp.client.streamable_http import streamable_http_client

    from api.mcp_server import http_app
    from tests.api.conftest import HOST, free_port

    port = free_port()
    upstream = httpx.AsyncClient(base_url=live.url, timeout=60)
    server = uvicorn.Server(uvicorn.Config(http_app(upstream, host=HOST), host=HOST, port=port, access_log=False,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)

    async def session(token: str | None) -> object:
        headers = {"Authorization": f"Bearer {live.tokens[token]}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as client, \
                streamable_http_client(f"http://{HOST}:{port}/mcp", http_client=client) as (read, write), \
                ClientSession(read, write) as s:
            await s.initialize()
            return await s.call_tool("usage", {"start": "2025-03-01T00:00:00Z", "end": "2025-03-21T00:00:00Z"})

    try:
        ok = anyio.run(session, "usage:read")
        refused = anyio.run(session, "calendar:read")
        anonymous = anyio.run(session, None)
        rebound = httpx.post(f"http://{HOST}:{port}/mcp", json={}, headers={
            "Host": "evil.example", "Accept": "application/json, text/event-stream"})
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not ok.is_error and ok.structured_content["rows"]
    assert refused.is_error and "403" in refused.content[0].text
    assert anonymous.is_error and "no capability token" in anonymous.content[0].text
    assert rebound.status_code in (403, 421)  # the MCP app refuses DNS-rebound requests too
