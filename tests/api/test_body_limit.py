"""Request bodies are bounded: 413 before the body is parsed or the token checked, on every route."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from api.bodylimit import MAX_BODY_BYTES
from tests.api.conftest import Live, Served

CHUNK = 64 * 1024


def chunks(total: int, head: bytes = b'{"query": "coffee"}') -> Iterator[bytes]:
    """A valid JSON body padded with spaces to `total` bytes, streamed without Content-Length (chunked) and
    never held whole by the client."""
    yield head
    sent = len(head)
    while sent < total:
        n = min(CHUNK, total - sent)
        sent += n
        yield b" " * n


@pytest.mark.parametrize("path", ["/v1/search", "/v1/memories", "/v1/forget", "/v1/ingest", "/v1/tokens"])
def test_a_declared_body_over_the_limit_gets_413_before_authentication(served: Served, path: str) -> None:
    r = served.call("POST", path, content=b" " * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(MAX_BODY_BYTES) in r.json()["detail"]


def test_a_body_at_the_limit_is_read_and_then_refused_for_want_of_a_token(served: Served) -> None:
    body = b'{"query": "coffee"}'.ljust(MAX_BODY_BYTES)
    r = served.call("POST", "/v1/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 401


def test_a_body_at_the_limit_with_a_token_is_parsed(served: Served) -> None:
    body = b'{"query": "coffee"}'.ljust(MAX_BODY_BYTES)
    r = served.call("POST", "/v1/search", "memory:read", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_a_chunked_body_over_the_limit_gets_413_even_with_a_valid_token(served: Served) -> None:
    r = served.call("POST", "/v1/search", "owner", content=chunks(MAX_BODY_BYTES + 1),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(MAX_BODY_BYTES) in r.json()["detail"]


def test_a_chunked_body_just_under_the_limit_is_not_refused_for_its_size(served: Served) -> None:
    r = served.call("POST", "/v1/search", content=chunks(MAX_BODY_BYTES), headers={"content-type": "application/json"})
    assert r.status_code == 401


def test_a_large_unauthenticated_body_streamed_to_the_live_server_is_not_buffered(live: Live) -> None:
    total = 48 * MAX_BODY_BYTES  # 48 MiB: without the bound the server would hold all of it to parse JSON
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        r = httpx.post(f"{live.url}/v1/search", content=chunks(total), timeout=120,
                       headers={"content-type": "application/json"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 413
    assert peak < 4 * MAX_BODY_BYTES, f"peak {peak / 2**20:.1f} MiB traced while the body streamed"
    assert httpx.get(f"{live.url}/v1/health").status_code == 200


def test_the_mcp_http_server_refuses_a_body_over_the_same_limit(live: Live) -> None:
    from starlette.testclient import TestClient

    from api.mcp_server import http_app

    upstream = httpx.AsyncClient(base_url=live.url)  # never called: the bound comes before any tool runs
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "authorization": f"Bearer {live.tokens['memory:read']}"}
    with TestClient(http_app(upstream, host="127.0.0.1"), base_url="http://127.0.0.1:8766") as client:
        over = client.post("/mcp", content=b" " * (MAX_BODY_BYTES + 1), headers=headers)
        under = client.post("/mcp", content=b"{}".ljust(MAX_BODY_BYTES), headers=headers)
        client.portal.call(upstream.aclose)
    assert over.status_code == 413
    assert under.status_code != 413  # parsed (and refused as no JSON-RPC message), not refused for its size
