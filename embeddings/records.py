"""Memories as callers receive them (redacted to their view), and the errors of the memory layer."""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from embeddings.redaction import Redaction
from vault.errors import VaultError

if TYPE_CHECKING:  # `lifevault search --help` lists KINDS without opening (or importing) the database
    from vault.store import Vault

KINDS = ("visit", "event", "usage", "trip", "note", "routine")  # every kind of memory (memories.py makes them)
MAX_METADATA_DEPTH = 32  # nesting levels of a note's metadata (an object holding a scalar is 1 level)
MAX_METADATA_BYTES = 64 * 1024  # its JSON text, UTF-8


def metadata_problem(metadata: Any) -> str | None:
    """Why this metadata may not be stored (None: it may). Walks iteratively: depth is bounded, not the stack."""
    if not isinstance(metadata, dict):
        return "metadata must be a JSON object"
    todo: list[tuple[Any, int]] = [(metadata, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_METADATA_DEPTH:
            return f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels"
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        todo.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    try:
        size = len(json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError) as e:
        return f"metadata is not JSON: {type(e).__name__}"
    if size > MAX_METADATA_BYTES:
        return f"metadata is larger than {MAX_METADATA_BYTES} bytes of JSON ({size})"
    return None


def stored_metadata(raw: str | None) -> dict[str, Any] | None:
    """A note's metadata as read back. Whatever was stored (before the bounds existed, or by hand), one record
    never makes a read fail: metadata over the bounds, or not a JSON object, reads as None."""
    if raw is None or len(raw) > MAX_METADATA_BYTES:  # characters of JSON, each at least one byte
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if metadata_problem(value) is None else None


class MemoryNotFound(VaultError):
    """No memory with that id (or none this caller may see)."""


class InvalidMemory(VaultError):
    """A memory write with bad input (empty text, metadata that is not a JSON object, ...)."""


class NotEditable(VaultError):
    """Only agent-written notes can be edited; ingested memories follow their sources (use forget)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRecord:
    memory_id: int
    kind: str
    text: str
    start_ts: datetime | None
    end_ts: datetime | None
    utc_offset_min: int | None
    tags: tuple[str, ...]
    metadata: dict[str, Any] | None  # an agent note's metadata, exactly as stored
    details: dict[str, Any]  # places, attendees, app: already redacted
    source: str
    source_table: str | None
    source_row_ids: tuple[int, ...]
    sensitivity: str
    version: int
    ingested_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def provenance(self) -> dict[str, Any]:
        return {"source": self.source, "table": self.source_table, "row_ids": list(self.source_row_ids)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.memory_id, "kind": self.kind, "text": self.text,
            "start": _iso(self.start_ts), "end": _iso(self.end_ts), "utc_offset_min": self.utc_offset_min,
            "tags": list(self.tags), "metadata": self.metadata, "details": self.details,
            "provenance": self.provenance, "sensitivity": self.sensitivity, "version": self.version,
            "ingested_at": _iso(self.ingested_at), "updated_at": _iso(self.updated_at),
        }


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


_COLUMNS = ("memory_id, kind, text, text_redacted, start_ts, end_ts, utc_offset_min, tags, metadata, details, source, "
            "source_table, source_row_ids, sensitivity, version, ingested_at, updated_at")


RECORD_CACHE_ROWS = 20_000  # rows the hydration cache keeps: the memories that keep coming back in search hits
# ... and the bytes they hold, as Python objects (row_bytes). A bench memory row weighs ~1.2 KB (20,000 rows:
# ~23 MB), but a note may weigh ~200 KB (MAX_TEXT_CHARS of text, its redacted copy, MAX_METADATA_BYTES of
# metadata): by rows alone, 20,000 of them would hold GBs. A row heavier than this on its own is not kept.
RECORD_CACHE_BYTES = 16 << 20


def row_bytes(row: tuple[Any, ...]) -> int:
    """What a cached row holds: the tuple and its values (a list's items too), by sys.getsizeof."""
    size = sys.getsizeof(row)
    for value in row:
        size += sys.getsizeof(value)
        if isinstance(value, list | tuple):
            size += sum(sys.getsizeof(v) for v in value)
    return size


class RowCache:
    """Memory rows as stored (before redaction) by id: a bounded LRU in front of the encrypted table, so the
    memories that keep coming back in search hits are not read and decoded again for every query. It lives
    in memory only, holds at most `capacity` rows and `max_bytes` bytes of them (row_bytes), least recent
    out, and its owner (MemoryService) clears it around every write, so it never serves a row that was
    changed or forgotten."""

    def __init__(self, capacity: int = RECORD_CACHE_ROWS, max_bytes: int = RECORD_CACHE_BYTES) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._rows: OrderedDict[int, tuple[tuple[Any, ...], int]] = OrderedDict()  # id -> (row, row_bytes)
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, ids: list[int]) -> tuple[dict[int, tuple[Any, ...]], list[int]]:
        found: dict[int, tuple[Any, ...]] = {}
        with self._lock:
            for i in ids:
                held = self._rows.get(i)
                if held is not None:
                    self._rows.move_to_end(i)
                    found[i] = held[0]
            self.hits += len(found)
            self.misses += len(ids) - len(found)
        return found, [i for i in ids if i not in found]

    def put(self, rows: list[tuple[Any, ...]]) -> None:
        sized = [(row, row_bytes(row)) for row in rows]  # outside the lock
        with self._lock:
            for row, size in sized:
                old = self._rows.pop(row[0], None)
                if old is not None:
                    self.bytes -= old[1]
                if size > self.max_bytes:
                    continue
                self._rows[row[0]] = (row, size)
                self.bytes += size
            while len(self._rows) > self.capacity or self.bytes > self.max_bytes:
                _, (_, size) = self._rows.popitem(last=False)
                self.bytes -= size

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self.bytes = 0


def fetch(vault: Vault, ids: list[int], redaction: Redaction, cache: RowCache | None = None) -> dict[int, MemoryRecord]:
    """The memories with these ids that `redaction` lets the caller see, redacted, by id."""
    if not ids:
        return {}
    cached, missing = cache.get(ids) if cache is not None else ({}, ids)
    rows = list(cached.values())
    if missing:
        # ids are ints, inlined: every bound parameter costs DuckDB a failed `import pandas` (~1 ms on the hot path)
        listed = ",".join(str(int(i)) for i in missing)
        read = vault.query(f"SELECT {_COLUMNS} FROM memories WHERE memory_id IN ({listed})")
        if cache is not None:
            cache.put(read)
        rows += read
    out: dict[int, MemoryRecord] = {}
    for (mid, kind, text, text_red, s, e, off, tags, meta, details, source, table, row_ids, sens, version, ing,
         upd) in rows:
        if sens not in redaction.visible:
            continue
        shown = redaction.text(text, text_red)
        out[mid] = MemoryRecord(
            memory_id=mid, kind=kind, text=shown, start_ts=s, end_ts=e, utc_offset_min=off, tags=tuple(tags or ()),
            metadata=stored_metadata(meta),
            details=redaction.details(kind, json.loads(details) if details else {}),
            source=source, source_table=table, source_row_ids=tuple(row_ids or ()), sensitivity=sens,
            version=version, ingested_at=ing, updated_at=upd,
        )
    return out
