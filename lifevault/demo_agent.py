"""The agent's part of `lifevault demo`: a real `lifevault serve` subprocess on loopback, a scoped token, the
sample questions over HTTP and one through MCP (stdio), a refused out-of-scope request, then a clean stop.

The server owns the vault while it runs: the memories are indexed in it (POST /v1/index, as `lifevault index`
forwards), so the embedding model is loaded once, in the server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

SERVER_START_TIMEOUT_S = 180.0  # the server imports the model and opens the vault before it answers
SERVER_STOP_TIMEOUT_S = 30.0  # after SIGINT; then it is killed
REQUEST_TIMEOUT_S = 300.0  # one question, token or forget request
INDEX_TIMEOUT_S = 3600.0  # embedding a year of memories (~20,000) on a slow, busy machine
AGENT_SCOPES = ("memory:read", "calendar:read", "location:read")  # location at coarse precision (the token's caveat)
PLANNING_TASK = "plan my week around the gym and meetings"
PLANNING_BUDGET = 400
MCP_QUESTION = "check-up with Dr. Lee"


class DemoError(Exception):
    """A demo step that cannot go on; the message is one line without personal data."""


@dataclass(slots=True)
class AgentRun:
    token_id: str = ""
    answers: list[tuple[str, list[str]]] = field(default_factory=list)  # (question, answer lines)
    refused_status: int = 0
    audited: list[dict[str, Any]] = field(default_factory=list)  # the token's api.request bodies
    indexed: int = 0
    index_s: float = 0.0
    mcp_s: float = 0.0
    forgotten: int = 0


@dataclass(frozen=True, slots=True)
class Served:
    url: str
    owner: Any  # api.client.Running: requests with the owner secret of <home>/serve.token
    ready_s: float

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return self.owner.request(method, path, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(home: Path, passphrase: str) -> Iterator[Served]:
    """`lifevault serve` on a free loopback port for the duration of the block; always stopped after it.
    The passphrase goes through the environment (never argv, never a file)."""
    from api.client import running_server

    t0 = time.perf_counter()
    port = free_port()
    env = os.environ | {"LIFEVAULT_PASSPHRASE": passphrase}
    with tempfile.TemporaryFile() as log:  # the server logs error types only; shown when it fails to start
        proc = subprocess.Popen([sys.executable, "-m", "lifevault.cli", "serve", "--home", str(home),
                                 "--port", str(port)], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            running = None
            while running is None or not _healthy(running.url):
                if proc.poll() is not None:
                    log.seek(0)
                    last = (log.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
                    raise DemoError(f"lifevault serve exited with code {proc.returncode}: {last[:200]}")
                if time.monotonic() > deadline:
                    raise DemoError(f"lifevault serve did not answer within {SERVER_START_TIMEOUT_S:.0f} s")
                time.sleep(0.2)
                with contextlib.suppress(Exception):
                    running = running_server(home)
            yield Served(url=running.url, owner=running, ready_s=time.perf_counter() - t0)
        finally:
            _stop(proc)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: the lifespan closes the vault
    try:
        proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=SERVER_STOP_TIMEOUT_S)


def _check(r: httpx.Response, what: str) -> dict[str, Any]:
    if r.status_code >= 400:
        raise DemoError(f"{what}: HTTP {r.status_code}")
    out: dict[str, Any] = r.json()
    return out


def planning_now(period_end: datetime) -> datetime:
    """A Sunday evening (19:00 UTC) at least three days before the persona's data end."""
    t = (period_end - timedelta(days=3)).astimezone(UTC)
    t -= timedelta(days=(t.weekday() - 6) % 7)
    return t.replace(hour=19, minute=0, second=0, microsecond=0)


def run_agent(running: Any, home: Path, *, period: tuple[datetime, datetime], person: str,
              note: Callable[[str], None]) -> AgentRun:
    """Index in the server, make the agent's token, ask, refuse, and read back the token's audit trail."""
    out = AgentRun()
    note("indexing the memories in the server…")
    t0 = time.perf_counter()
    report = running.request("POST", "/v1/index", json_body={"rebuild": False}, timeout=INDEX_TIMEOUT_S)
    out.index_s = time.perf_counter() - t0
    out.indexed = int(report.get("vectors") or 0)
    issued = running.request("POST", "/v1/tokens", json_body={
        "agent": "demo-assistant", "scopes": list(AGENT_SCOPES), "location": "coarse", "ttl": "1d",
        "purpose": "demo: answer questions and plan the week", "rate_per_minute": 600})
    out.token_id = issued["token_id"]
    agent = httpx.Client(base_url=running.url, timeout=REQUEST_TIMEOUT_S,
                         headers={"Authorization": f"Bearer {issued['token']}"})
    # the MCP call from a thread, begun now: its subprocess starts (imports, ~1 s of CPU) while the HTTP
    # questions, which mostly wait on the server, are asked; its answer is shown after theirs
    with agent, ThreadPoolExecutor(1, thread_name_prefix="demo-mcp") as mcp_pool:
        mcp_call = mcp_pool.submit(_timed_mcp_search, home, issued["token"], MCP_QUESTION)
        start, end = period
        last_month = (end - timedelta(days=30)).isoformat()
        asks: list[tuple[str, dict[str, Any]]] = [
            ("when did I last go to the gym?", {"query": "when did I last go to the gym?", "k": 3}),
            (f"meetings with {person} in the last 30 days",
             {"query": f"meetings with {person}", "k": 3, "since": last_month, "until": end.isoformat()}),
            ("YouTube after 11pm", {"query": "YouTube after 11pm", "k": 3}),
        ]
        for label, body in asks:
            note(f"asking: {label}")
            hits = _check(agent.post("/v1/search", json=body), "search")["hits"]
            out.answers.append((label, [_hit_line(h) for h in hits] or ["(no memories)"]))
        now = planning_now(end)
        note(f"planning: {PLANNING_TASK}")
        pack = _check(agent.post("/v1/context", json={"task": PLANNING_TASK, "token_budget": PLANNING_BUDGET,
                                                       "now": now.isoformat()}), "context")
        lines = [f"as of {now:%a %Y-%m-%d %H:%M} UTC, {pack['tokens_used']}/{pack['token_budget']} tokens, "
                 f"{len(pack['snippets'])} snippets, {len(pack.get('free') or [])} free slots"]
        out.answers.append((f"POST /v1/context: {PLANNING_TASK}", lines + pack["text"].splitlines()))
        note("asking through MCP (stdio)…")
        mcp, out.mcp_s = mcp_call.result()
        out.answers.append((f"MCP tool search: {MCP_QUESTION}", mcp))
        refused = agent.get("/v1/audit/events", params={"limit": 10})
        out.refused_status = refused.status_code
        if refused.status_code != 403:
            raise DemoError(f"the out-of-scope request was answered with HTTP {refused.status_code}, not 403")
    note("the owner remembers a note, then forgets it…")
    made = running.request("POST", "/v1/memories", json_body={"text": "Demo note: the spare key is with a neighbour",
                                                              "tags": ["demo"]})
    preview = running.request("POST", "/v1/forget", json_body={"memory_ids": [made["id"]]})
    receipt = running.request("POST", "/v1/forget", json_body={"memory_ids": [made["id"]], "commit": True,
                                                               "digest": preview["digest"]})
    out.forgotten = int(receipt["memories"])
    events = running.request("GET", "/v1/audit/events", params={"kind": "api.request", "limit": 1000})["events"]
    out.audited = [e["body"] for e in events if e["body"].get("token_id") == out.token_id]
    return out


def _hit_line(h: dict[str, Any]) -> str:
    when = (h.get("start") or "undated")[:10]
    return f"{h.get('text', '')}  [memory {h.get('id')}, {h.get('kind')}, {when}]"


def _timed_mcp_search(home: Path, token: str, query: str) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    return _mcp_search(home, token, query), time.perf_counter() - t0


def _mcp_search(home: Path, token: str, query: str) -> list[str]:
    """One tool call through `lifevault mcp` (stdio), which forwards to the running server with the token."""
    import anyio
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    root = Path(__file__).resolve().parents[1]
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "lifevault.cli", "mcp", "--home", str(home)],
        env={"LIFEVAULT_TOKEN": token, "PYTHONPATH": str(root), "PATH": os.environ.get("PATH", "")}, cwd=str(root))

    async def call() -> Any:
        with open(os.devnull, "w") as devnull:
            async with stdio_client(params, errlog=devnull) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                return await s.call_tool("search", {"query": query, "k": 3})

    result = anyio.run(call)
    if result.is_error:
        raise DemoError("the MCP search failed")
    hits = (result.structured_content or {}).get("hits") or []
    return [_hit_line(h) for h in hits] or ["(no memories)"]
