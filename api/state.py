"""What the server holds while it runs (built in create_app's lifespan, never at import time).

One vault, one MemoryService, one TokenStore, one lock: the DuckDB connection is not for concurrent use, so
every handler touches the vault inside `backend.lock` (the service's own lock nests inside it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anyio

from api.tokens import Actor, RateLimiter, TokenStore
from embeddings.service import MemoryService
from vault import audit
from vault.audit import AuditEvent
from vault.store import Vault

LOOPBACK = ("127.0.0.1", "localhost", "::1")
T = TypeVar("T")
PREFIX = "/v1"
SESSION_FILE = "serve.token"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    """How to run the API. `passphrase` is used once, to open the vault, and never logged."""

    home: Path
    passphrase: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8765
    announce: bool = False  # write the port to the lock file and the CLI's owner secret to <home>/serve.token
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK:
            from vault.errors import VaultError

            raise VaultError(f"--host {self.host} is not a loopback address; lifevault serves 127.0.0.1 only")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiRequest(AuditEvent):
    """One request made with a token, whatever its outcome. Query texts appear only as sha256."""

    kind: ClassVar[str] = "api.request"
    token_id: str
    agent: str
    endpoint: str  # "POST /v1/search" (the route template, never the filled-in path)
    scopes: list[str]  # granted to the token
    scopes_used: list[str]  # the scope this endpoint required
    purpose: str | None
    query_sha256: str | None
    returned_ids: list[int] | None  # ids of memories or rows returned; None for aggregates
    returned: int
    status: int
    via: str  # "http" | "mcp"


@dataclass(slots=True)
class RequestAudit:
    """Filled in by the auth dependency and the handler; written by the audit middleware."""

    actor: Actor
    scope: str
    endpoint: str = "?"
    via: str = "http"
    query_sha256: str | None = None
    returned_ids: list[int] | None = field(default_factory=list)
    returned: int = 0
    recorded: bool = False

    def result(self, ids: list[int] | None = None, *, count: int | None = None, query: str | None = None) -> None:
        if query is not None:
            self.query_sha256 = audit.sha256_text(query)
        self.returned_ids = ids
        self.returned = len(ids) if ids is not None else int(count or 0)


class Backend:
    def __init__(self, settings: ApiSettings, vault: Vault, service: MemoryService, tokens: TokenStore) -> None:
        self.settings = settings
        self.vault = vault
        self.service = service
        self.tokens = tokens
        self.limiter = RateLimiter()
        self.lock = threading.RLock()
        self.allowed_hosts = allowed_hosts(settings.host, settings.port)
        self.origins = {f"http://{h}" for h in self.allowed_hosts}

    def record(self, event: AuditEvent) -> None:
        with self.lock:
            audit.record(self.vault, event)

    def record_request(self, info: RequestAudit, status: int) -> None:
        """The api.request audit record of one request (written once, before its response leaves)."""
        a, ok = info.actor, status < 400
        self.record(ApiRequest(
            actor=a.token_id, token_id=a.token_id, agent=a.agent, endpoint=info.endpoint, scopes=sorted(a.scopes),
            scopes_used=[info.scope] if ok else [], purpose=a.purpose, query_sha256=info.query_sha256,
            returned_ids=info.returned_ids if ok else [], returned=info.returned if ok else 0, status=status,
            via=info.via))
        info.recorded = True

    async def call(self, info: RequestAudit, work: Callable[[], T], *, status: int = 200, read: bool = False) -> T:
        """Run `work` (which reads the vault and fills `info`) and write its audit record, in one thread hop
        under the vault lock: the record exists before the response is sent. `read`: `work` only reads (and
        appends audit records), so it and the api.request record commit as one transaction (one commit
        instead of two: the audit append dominates the API's overhead)."""

        def job() -> T:
            with self.lock:
                if not read:
                    out = work()
                    self.record_request(info, status)
                    return out
                with self.vault.transaction():
                    out = work()
                    self.record_request(info, status)
                return out

        return await anyio.to_thread.run_sync(job)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.vault.query(sql, params)


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """Host header values the server answers: the bound loopback name (and its loopback aliases) with port."""
    names = {host}
    if host in LOOPBACK:
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return frozenset({f"{n}:{port}" for n in names} | names)
