"""Audit events of the memory layer: ids, counts, hashes and parameters only, never texts or queries.

Every `*_sha256` field holds a keyed hash (HMAC-SHA256 under a vault key, vault.audit.text_hash): equal
queries give equal values, but nobody reading the log can confirm a guess by hashing it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from vault.audit import AuditEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class MemorySearched(AuditEvent):
    kind: ClassVar[str] = "memory.searched"
    query_sha256: str
    k: int
    returned_ids: list[int]
    filters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextBuilt(AuditEvent):
    kind: ClassVar[str] = "memory.context"
    task_sha256: str
    token_budget: int
    tokens_used: int
    returned_ids: list[int]
    left_out: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRead(AuditEvent):
    kind: ClassVar[str] = "memory.read"
    returned_ids: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryWritten(AuditEvent):
    kind: ClassVar[str] = "memory.written"
    memory_id: int
    op: str  # "create" | "update"
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryForgotten(AuditEvent):
    """A deletion. Forgotten memory ids are kept only as keyed hashes; the selector (ids, source, time
    range or query) only as the keyed hash of the sha256 of its canonical form."""

    kind: ClassVar[str] = "memory.forget"
    target_kind: str  # "ids" | "source" | "time_range" | "query" | "kinds"
    selector_sha256: str
    items: int
    memory_id_sha256: list[str]
    rows_deleted: dict[str, int]
    vectors_removed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryIndexed(AuditEvent):
    kind: ClassVar[str] = "memory.indexed"
    added: int
    changed: int
    removed: int
    embedded: int
    vectors: int
    model: str
    model_version: str
    rebuilt: bool
