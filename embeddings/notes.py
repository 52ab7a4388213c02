"""Agent-written memories (notes): text, when it happened, tags, a free-form JSON object, and a source.

Two time axes: `occurred_at` (start_ts/end_ts, may be in the past) and `ingested_at`/`updated_at`.
`metadata` must be a JSON object; it is stored as the exact JSON text written here and returned as the
same object. Updating a note copies the previous version into memory_history (version numbers grow);
deleting a note deletes its history with it (see forget.py for the cascade and the vectors).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from embeddings import memories
from embeddings.records import InvalidMemory, MemoryNotFound, NotEditable, metadata_problem, stored_metadata
from vault.store import Vault

MAX_TEXT_CHARS = 20_000  # a note's text; its metadata: records.MAX_METADATA_DEPTH and MAX_METADATA_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteVersion:
    memory_id: int
    version: int
    text: str
    occurred_at: datetime | None
    tags: tuple[str, ...]
    metadata: dict[str, Any] | None
    source: str | None
    updated_at: datetime
    replaced_at: datetime | None  # None for the current version


def _check(text: str | None, tags: Iterable[str] | None, metadata: Any) -> None:
    if text is not None and (not text.strip() or len(text) > MAX_TEXT_CHARS):
        raise InvalidMemory(f"a note needs between 1 and {MAX_TEXT_CHARS} characters of text")
    problem = metadata_problem(metadata) if metadata is not None else None
    if problem:
        raise InvalidMemory(problem)
    if tags is not None and any(not isinstance(t, str) or not t.strip() for t in tags):
        raise InvalidMemory("tags must be non-empty strings")


def _dump(metadata: dict[str, Any]) -> str:
    try:
        return json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidMemory(f"metadata is not JSON: {type(e).__name__}") from None


def _offset(at: datetime | None) -> int | None:
    off = at.utcoffset() if at is not None and at.tzinfo is not None else None
    return int(off.total_seconds() // 60) if off is not None else None


def _aware(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)


def new_id() -> int:
    return int.from_bytes(os.urandom(8), "big") >> 1


def build(memory_id: int, *, text: str, occurred_at: datetime | None, tags: Iterable[str], metadata: dict[str, Any] | None,
          source: str) -> memories.Memory:
    at = _aware(occurred_at)
    return memories.Memory(
        memory_id=memory_id, kind="note", text=text.strip(), text_redacted=None, start_ts=at, end_ts=at,
        utc_offset_min=_offset(occurred_at), tags=tuple(dict.fromkeys(t.strip() for t in tags)),
        details={}, source=source, source_table=None, source_row_ids=(),
        metadata=_dump(metadata) if metadata is not None else None,
    )


def remember(vault: Vault, *, text: str, occurred_at: datetime | None = None, tags: Iterable[str] = (),
             metadata: dict[str, Any] | None = None, source: str = "agent", now: datetime | None = None) -> memories.Memory:
    tags = list(tags)
    _check(text, tags, metadata)
    now = now or datetime.now(UTC)
    note = build(new_id(), text=text, occurred_at=occurred_at or now, tags=tags, metadata=metadata, source=source)
    memories.insert(vault, [note], now=now)
    return note


def _current(vault: Vault, memory_id: int) -> tuple[Any, ...]:
    row = vault.query(
        "SELECT kind, text, start_ts, end_ts, utc_offset_min, tags, metadata, source, version, ingested_at, updated_at "
        "FROM memories WHERE memory_id = ?", [memory_id])
    if not row:
        raise MemoryNotFound(f"no memory {memory_id}")
    if row[0][0] != "note":
        raise NotEditable(f"memory {memory_id} is a {row[0][0]} from ingested data; only notes can be edited "
                          "(use `forget` to remove it)")
    return row[0]


UNSET: Any = object()


def update(vault: Vault, memory_id: int, *, text: str | None = None, occurred_at: datetime | None = UNSET,
           tags: Iterable[str] | None = None, metadata: dict[str, Any] | None = UNSET,
           now: datetime | None = None) -> tuple[memories.Memory, int]:
    """Change a note; the previous version goes to memory_history. Returns (the note, its new version). An
    update that changes nothing (no field given, or every field as it is) writes nothing and keeps the version."""
    tags = list(tags) if tags is not None else None
    _check(text, tags, None if metadata is UNSET else metadata)
    now = now or datetime.now(UTC)
    _, old_text, s, e, off, old_tags, old_meta, source, version, ingested, updated = _current(vault, memory_id)
    note = memories.Memory(
        memory_id=memory_id, kind="note", text=old_text, text_redacted=None, start_ts=s, end_ts=e, utc_offset_min=off,
        tags=tuple(old_tags or ()), details={}, source=source, source_table=None, source_row_ids=(), metadata=old_meta)
    if text is not None:
        note = replace(note, text=text.strip())
    if occurred_at is not UNSET:
        at = _aware(occurred_at)
        note = replace(note, start_ts=at, end_ts=at, utc_offset_min=_offset(occurred_at))
    if tags is not None:
        note = replace(note, tags=tuple(dict.fromkeys(t.strip() for t in tags)))
    if metadata is not UNSET:
        note = replace(note, metadata=_dump(metadata) if metadata is not None else None)
    if (note.text, note.start_ts, note.utc_offset_min, note.tags, note.metadata) == (
            old_text, s, off, tuple(old_tags or ()), old_meta):
        return note, version  # nothing changes: no new version, no history entry
    with vault.transaction():
        vault.execute(
            "INSERT INTO memory_history (memory_id, version, text, start_ts, end_ts, utc_offset_min, tags, metadata, "
            "source, updated_at, replaced_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [memory_id, version, old_text, s, e, off, list(old_tags or []), old_meta, source, updated, now])
        vault.execute("DELETE FROM memories WHERE memory_id = ?", [memory_id])
        memories.insert(vault, [note], now=now, ingested={memory_id: ingested}, version=version + 1)
    return note, version + 1


def history(vault: Vault, memory_id: int) -> list[NoteVersion]:
    """Every version of a note, oldest first, the current one last."""
    cur = _current(vault, memory_id)
    out = [
        NoteVersion(memory_id=memory_id, version=v, text=t, occurred_at=s, tags=tuple(tags or ()),
                    metadata=stored_metadata(m), source=src, updated_at=u, replaced_at=r)
        for v, t, s, tags, m, src, u, r in vault.query(
            "SELECT version, text, start_ts, tags, metadata, source, updated_at, replaced_at FROM memory_history "
            "WHERE memory_id = ? ORDER BY version", [memory_id])
    ]
    _, text, s, _, _, tags, meta, source, version, _, updated = cur
    out.append(NoteVersion(memory_id=memory_id, version=version, text=text, occurred_at=s, tags=tuple(tags or ()),
                           metadata=stored_metadata(meta), source=source, updated_at=updated,
                           replaced_at=None))
    return out
