"""The append-only, hash-chained audit log: typed events in, verifiable history out.

    audit.record(vault, MemorySearched(actor=token.id, query_sha256=text_hash(vault, q), k=k, returned_ids=ids))

Event classes are frozen dataclasses deriving from AuditEvent with a `kind`; other packages define
their own (they import vault, never the reverse). Bodies carry ids, counts, hashes and parameters,
never contents, query text or coordinates; free text only as a keyed hash (text_hash).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from vault.chain import Chain, ChainRow, Verification

if TYPE_CHECKING:
    from vault.store import Vault

TABLE = "audit_log"
_deferred: ContextVar[list[AuditEvent] | None] = ContextVar("lifevault_audit_deferred", default=None)
APPEND_WORKERS = 2  # threads that commit the records written alongside a read (alongside()), made on first use
_workers: ThreadPoolExecutor | None = None
_workers_lock = threading.Lock()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    kind: ClassVar[str] = "event"
    actor: str = "owner"


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultCreated(AuditEvent):
    kind: ClassVar[str] = "vault.created"
    cipher: str
    kdf: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PassphraseChanged(AuditEvent):
    kind: ClassVar[str] = "keys.passphrase_changed"
    via: str  # "passphrase" | "recovery_code"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotated(AuditEvent):
    kind: ClassVar[str] = "keys.rotated"
    key: str
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupExported(AuditEvent):
    kind: ClassVar[str] = "backup.exported"
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupImported(AuditEvent):
    kind: ClassVar[str] = "backup.imported"
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainVerified(AuditEvent):
    kind: ClassVar[str] = "audit.verified"
    results: dict[str, bool]


def text_hash(vault: Vault, text: str) -> str:
    """The only form in which free text (queries, selectors, forgotten ids) enters the audit log: a keyed
    hash, HMAC-SHA256 under a vault key (Vault.text_hmac). Fields that hold it keep their `*_sha256` names."""
    return vault.text_hmac(text)


def record(vault: Vault, event: AuditEvent) -> ChainRow | None:
    """Append one event; inside `deferred()` it is held for the caller to append (and None is returned)."""
    held = _deferred.get()
    if held is not None:
        held.append(event)
        return None
    return Chain(vault, TABLE).append(event.kind, asdict(event))


def _appender() -> ThreadPoolExecutor:
    global _workers
    with _workers_lock:
        if _workers is None:
            _workers = ThreadPoolExecutor(APPEND_WORKERS, thread_name_prefix="lifevault-audit")
        return _workers


@contextlib.contextmanager
def alongside(vault: Vault, event: AuditEvent) -> Iterator[None]:
    """Append `event` while the block runs, e.g. reading the rows the event reports as returned: a worker thread
    writes and commits it (DuckDB releases the GIL for the INSERT and the WAL's sync, so the commit and the
    block's reads overlap), and leaving the block waits for that commit and raises its error. What the block
    produced is therefore never handed out before its record is durable, and never at all when the record
    cannot be written. Inside `deferred()` or a transaction the event is recorded as `record` does, first."""
    if _deferred.get() is not None or vault.in_transaction():
        record(vault, event)
        yield
        return
    appended = _appender().submit(Chain(vault, TABLE).append, event.kind, asdict(event))
    try:
        yield
    finally:
        appended.result()  # durable, or this raises (over any error of the block, which stays its __context__)


def record_many(vault: Vault, events: Sequence[AuditEvent]) -> list[ChainRow]:
    """Append events in order with one commit."""
    return Chain(vault, TABLE).append_many([(e.kind, asdict(e)) for e in events]) if events else []


@contextlib.contextmanager
def deferred() -> Iterator[list[AuditEvent]]:
    """Hold the events recorded in this context (this thread or task) instead of appending each with its own
    commit; the caller appends the list with record_many, e.g. a read request's events with its own record
    in one commit. Events held when the block raises are the caller's to drop or keep."""
    held: list[AuditEvent] = []
    token = _deferred.set(held)
    try:
        yield held
    finally:
        _deferred.reset(token)


def events(vault: Vault, *, kind: str | None = None, limit: int | None = None, after_seq: int = 0) -> Iterator[ChainRow]:
    return Chain(vault, TABLE).rows(kind=kind, limit=limit, after_seq=after_seq)


def verify(vault: Vault) -> Verification:
    return Chain(vault, TABLE).verify()
