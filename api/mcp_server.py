"""The same capabilities over MCP: search, context, remember, timeline, places, calendar, usage, forget.

Every tool is a thin call to the /v1 API with the caller's own capability token, so MCP clients get exactly
the same scopes, redaction, rate limits and audit records as HTTP clients (audit records say via="mcp").

    lifevault mcp                 # stdio; the token comes from $LIFEVAULT_TOKEN
    lifevault mcp --http          # streamable HTTP on 127.0.0.1; each request sends Authorization: Bearer

The upstream is the running `lifevault serve` when there is one (it owns the vault), else an in-process
app on the same vault (opened with the passphrase). Reads are annotated readOnlyHint, forget
destructiveHint, remember additive (not read-only, not destructive).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from api.bodylimit import MAX_BODY_BYTES
from api.client import detail

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTROY = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
INSTRUCTIONS = ("The user's personal memory (places, calendar, app usage, notes), local to the device. What you "
                "can see depends on your token's scopes; every call is audited. Times are ISO 8601 (2025-03-01T09:30+01:00); "
                "a date, or a time without an offset, is read in the user's home time zone.")

TokenSource = Callable[[Context], str | None]


def env_token(token: str | None) -> TokenSource:
    """stdio: one token for the whole session (from $LIFEVAULT_TOKEN)."""
    return lambda _ctx: token


def header_token(ctx: Context) -> str | None:
    """streamable HTTP: the bearer token of the HTTP request carrying this tool call."""
    request = ctx.request_context.request
    auth = request.headers.get("authorization", "") if request is not None else ""
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def build(upstream: httpx.AsyncClient, token_of: TokenSource) -> MCPServer:
    server = MCPServer(name="lifevault", instructions=INSTRUCTIONS, log_level="WARNING")

    async def call(ctx: Context, method: str, path: str, *, body: dict[str, Any] | None = None,
                   params: dict[str, Any] | None = None) -> dict[str, Any]:
        token = token_of(ctx)
        if not token:
            raise ToolError("no capability token: set LIFEVAULT_TOKEN (stdio) or send Authorization: Bearer (HTTP)")
        r = await upstream.request(method, path, json=body, params=_clean(params or {}) or None,
                                   headers={"Authorization": f"Bearer {token}", "X-Lifevault-Via": "mcp"})
        if r.status_code >= 400:
            raise ToolError(f"{r.status_code}: {detail(r)}")
        out: dict[str, Any] = r.json()
        return out

    @server.tool(annotations=READ, description="Search the user's memories (hybrid, best first). Time phrases "
                 "like 'last week' become filters; kinds: visit, event, usage, trip, note, routine.")
    async def search(ctx: Context, query: str, k: int = 10, since: str | None = None, until: str | None = None,
                     kinds: list[str] | None = None, tags: list[str] | None = None) -> dict[str, Any]:
        return await call(ctx, "POST", "/v1/search", body=_clean(
            {"query": query, "k": k, "since": since, "until": until, "kinds": kinds, "tags": tags}))

    @server.tool(annotations=READ, description="A token-budgeted context pack of memories relevant to a task, "
                 "with numbered citations.")
    async def context(ctx: Context, task: str, token_budget: int = 1500, since: str | None = None,
                      until: str | None = None) -> dict[str, Any]:
        return await call(ctx, "POST", "/v1/context", body=_clean(
            {"task": task, "token_budget": token_budget, "since": since, "until": until}))

    @server.tool(annotations=WRITE, description="Remember a note about the user (searchable at once). "
                 "Returns its memory id.")
    async def remember(ctx: Context, text: str, tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                       occurred_at: str | None = None) -> dict[str, Any]:
        return await call(ctx, "POST", "/v1/memories", body=_clean(
            {"text": text, "tags": tags, "metadata": metadata, "occurred_at": occurred_at}))

    @server.tool(annotations=READ, description="Visits and trips between two times, in order (needs location:read).")
    async def timeline(ctx: Context, start: str | None = None, end: str | None = None, limit: int = 200) -> dict[str, Any]:
        return await call(ctx, "GET", "/v1/timeline", params={"from": start, "to": end, "limit": limit})

    @server.tool(annotations=READ, description="Places visited between two times, most time spent first.")
    async def places(ctx: Context, start: str | None = None, end: str | None = None, limit: int = 50) -> dict[str, Any]:
        return await call(ctx, "GET", "/v1/places", params={"from": start, "to": end, "limit": limit})

    @server.tool(annotations=READ, description="Calendar events between two times; free=true lists free slots "
                 "of at least min_minutes instead.")
    async def calendar(ctx: Context, start: str | None = None, end: str | None = None, free: bool = False,
                       min_minutes: int = 30) -> dict[str, Any]:
        if free:
            return await call(ctx, "GET", "/v1/calendar/free", params={"from": start, "to": end,
                                                                        "min_minutes": min_minutes})
        return await call(ctx, "GET", "/v1/calendar/events", params={"from": start, "to": end})

    @server.tool(annotations=READ, description="Screen time between two times, by app, category or day.")
    async def usage(ctx: Context, start: str | None = None, end: str | None = None, by: str = "app") -> dict[str, Any]:
        return await call(ctx, "GET", "/v1/usage/summary", params={"from": start, "to": end, "by": by})

    @server.tool(annotations=DESTROY, description="Forget memories for good. First call with commit=false to "
                 "preview (returns a digest); then commit=true with that digest deletes them and returns a receipt.")
    async def forget(ctx: Context, memory_ids: list[int] | None = None, query: str | None = None,
                     source: str | None = None, since: str | None = None, until: str | None = None,
                     kinds: list[str] | None = None, commit: bool = False, digest: str | None = None) -> dict[str, Any]:
        return await call(ctx, "POST", "/v1/forget", body=_clean(
            {"memory_ids": memory_ids, "query": query, "source": source, "since": since, "until": until,
             "kinds": kinds, "commit": commit, "digest": digest}))

    return server


@contextlib.asynccontextmanager
async def upstream_client(url: str | None, app: Any = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the running server at `url`, or for `app` in process (its lifespan opens the vault)."""
    if url is not None:
        async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:
            yield client
        return
    if app is None:
        raise ValueError("either a server url or an app")
    async with app.router.lifespan_context(app):
        settings = app.state.backend.settings
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{settings.host}:{settings.port}",
                                     timeout=120.0) as client:
            yield client


async def serve_stdio(url: str | None, app: Any, token: str | None) -> None:
    async with upstream_client(url, app) as upstream:
        await build(upstream, env_token(token)).run_stdio_async()


def http_app(upstream: httpx.AsyncClient, *, host: str) -> Any:
    """The streamable HTTP app (stateless, JSON responses; the SDK's Host/Origin checks for loopback and its
    413 for a body over MAX_BODY_BYTES, the API's own bound)."""
    return build(upstream, header_token).streamable_http_app(stateless_http=True, json_response=True, host=host,
                                                             max_request_body_size=MAX_BODY_BYTES)


async def serve_http(url: str | None, app: Any, *, host: str, port: int) -> None:
    import uvicorn

    async with upstream_client(url, app) as upstream:
        config = uvicorn.Config(http_app(upstream, host=host), host=host, port=port, access_log=False,
                                log_level="warning")
        await uvicorn.Server(config).serve()
