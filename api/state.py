"""What the server holds while it runs (built in create_app's lifespan, never at import time).

One vault, one MemoryService, one TokenStore, one readers-writer lock: handlers that only read take its read
side and run side by side (each worker thread on its own DuckDB cursor); handlers that write take the write
side and run alone (the service's own lock nests inside it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import ClassVar, TypeVar

import anyio

from api.heap import IdleTrim
from api.tokens import Actor, RateLimiter, TokenStore
from embeddings.service import MemoryService
from vault import audit
from vault.audit import AuditEvent
from vault.homezone import home_zone
from vault.rwlock import RWLock
from vault.store import Vault

LOOPBACK = ("127.0.0.1", "localhost", "::1")
T = TypeVar("T")
PREFIX = "/v1"
SESSION_FILE = "serve.token"
# DuckDB's memory (its buffer pool: cached table blocks, the primary-key index, query state) in the server.
# Unbounded (DuckDB's default is 80% of RAM) it keeps every block a search has read: at 1M memories 68 MB after
# the warm-up, 138 MB after 1,000 searches and still growing. Past the limit it evicts blocks and spills work
# to the vault's encrypted temp files. Not lower: a catalog rebuilt from the rows at 1M (a stale snapshot)
# sorts them in DuckDB, which fails at 64MB (it needs ~96MB); bench/README.md "serve memory in use".
SERVE_MEMORY_LIMIT = "128MB"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    """How to run the API. `passphrase` is used once, to open the vault, and never logged."""

    home: Path
    passphrase: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8765
    announce: bool = False  # write the port to the lock file and the CLI's owner secret to <home>/serve.token
    memory_limit: str | None = SERVE_MEMORY_LIMIT  # None: DuckDB's default (80% of RAM)
    warm: bool = True  # load the memory index in the background as the server starts, not in the first search

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK:
            from vault.errors import VaultError

            raise VaultError(f"--host {self.host} is not a loopback address; lifevault serves 127.0.0.1 only")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiRequest(AuditEvent):
    """One request made with a token, whatever its outcome. Query texts appear only as a keyed hash:
    `query_sha256` is HMAC-SHA256 under a vault key (audit.text_hash), so equal queries link but a reader of
    the log cannot test guesses."""

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
    query: str | None = field(default=None, repr=False)  # held in memory only; the record keeps its keyed hash
    returned_ids: list[int] | None = field(default_factory=list)
    returned: int = 0
    recorded: bool = False

    def result(self, ids: list[int] | None = None, *, count: int | None = None, query: str | None = None) -> None:
        if query is not None:
            self.query = query
        self.returned_ids = ids
        self.returned = len(ids) if ids is not None else int(count or 0)


class Backend:
    def __init__(self, settings: ApiSettings, vault: Vault, service: MemoryService, tokens: TokenStore) -> None:
        self.settings = settings
        self.vault = vault
        self.service = service
        self.tokens = tokens
        self.limiter = RateLimiter()
        self.heap = IdleTrim()  # started and closed by create_app's lifespan; touched as each request's work ends
        self.lock = RWLock()  # `with lock:` / lock.write(): alone; lock.read(): side by side
        self.allowed_hosts = allowed_hosts(settings.host, settings.port)
        self.origins = {f"http://{h}" for h in self.allowed_hosts}
        self.home_zones: dict[tuple[bool, bool], tzinfo] = {}
        self.refresh_home_zones()

    def refresh_home_zones(self) -> None:
        """The home time zone as each kind of caller may derive it (vault/homezone.py), keyed by (may read
        visits, may read calendar events); at start and after each ingest."""
        self.home_zones = {(v, c): home_zone(self.vault, visits=v, calendar=c)
                           for v in (True, False) for c in (True, False)}

    def home_zone_for(self, actor: Actor | None) -> tzinfo:
        """Times without an offset are read in the home zone computed over what `actor` may read (visits with
        location:read; calendar events with calendar:read or memory:read); UTC for no one in particular."""
        if actor is None:
            return UTC
        return self.home_zones[(actor.has("location:read"),
                                actor.has("calendar:read") or actor.has("memory:read"))]

    def record(self, event: AuditEvent) -> None:
        with self.lock.read():  # the chain serialises appends itself
            audit.record(self.vault, event)

    def request_event(self, info: RequestAudit, status: int) -> ApiRequest:
        a, ok = info.actor, status < 400
        return ApiRequest(
            actor=a.token_id, token_id=a.token_id, agent=a.agent, endpoint=info.endpoint, scopes=sorted(a.scopes),
            scopes_used=[info.scope] if ok else [], purpose=a.purpose,
            query_sha256=audit.text_hash(self.vault, info.query) if info.query is not None else None,
            returned_ids=info.returned_ids if ok else [], returned=info.returned if ok else 0, status=status,
            via=info.via)

    def record_request(self, info: RequestAudit, status: int) -> None:
        """The api.request audit record of one request (written once, before its response leaves)."""
        self.record(self.request_event(info, status))
        info.recorded = True

    async def call(self, info: RequestAudit, work: Callable[[], T], *, status: int = 200, read: bool = False) -> T:
        """Run `work` (which uses the vault and fills `info`) and write its audit records, in one thread hop:
        the records exist before the response is sent. A writing `work` runs alone (the write side of
        `lock`). A `read` work only reads (and records audit events): reads run side by side (the read side,
        each worker thread on its own DuckDB cursor), and the events it records are held and appended with
        the api.request record in one commit (the audit append dominates the API's overhead)."""

        def job() -> T:
            if not read:
                with self.lock.write():
                    out = work()
                    self.record_request(info, status)
                    return out
            with self.lock.read():
                with audit.deferred() as held:
                    out = work()  # if it raises, its held events go with it (the error is recorded instead)
                audit.record_many(self.vault, [*held, self.request_event(info, status)])
                info.recorded = True
                return out

        try:
            return await anyio.to_thread.run_sync(job)
        finally:
            self.heap.touch()

    def read(self, reader: Callable[[Vault], T]) -> T:
        """`reader(vault)` under the read side of the lock (a vault.read function, typically)."""
        try:
            with self.lock.read():
                return reader(self.vault)
        finally:
            self.heap.touch()


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """Host header values the server answers: the bound loopback name (and its loopback aliases) with port."""
    names = {host}
    if host in LOOPBACK:
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return frozenset({f"{n}:{port}" for n in names} | names)
