"""Forget: pick memories (by id, source, time range, query, kind), preview the cascade, then commit it.

The cascade removes, for each memory:
  - visit: the `stays` row, the export visits (`place_visits`) and raw fixes (`location_points`) in its time
    span, the trips that start or end at it (and their memories), and the place's entry in that day's
    `daily_summaries.places`;
  - trip: the `trips` row, overlapping `activity_segments`, the fixes strictly inside its span;
  - event: the `calendar_events` occurrence;
  - usage cluster: its `app_sessions`, that app's `usage_events` and `usage_intervals` in the span;
    a day of screen time: the `daily_summaries` row;
  - every memory: its row, its history (notes) and its vector bookkeeping.
The service removes the vectors and reseals the index *before* the database transaction commits (a crash
in between leaves memories without vectors, which `index` re-embeds, never vectors of forgotten
memories), then CHECKPOINTs so the WAL holds nothing of them. Removed source rows are remembered by keyed
id in `forgotten_rows`. The memory layer's own tables are read and written here and in memories.py; the
source rows (ingest's tables) are found through vault.read and removed through vault.erase. The audit event keeps only sha256 hashes of the selector and the memory ids.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from embeddings import memories
from embeddings.labels import local
from embeddings.records import InvalidMemory
from embeddings.redaction import Redaction
from embeddings.retrieve import Catalog
from vault import erase, read
from vault.sqltext import id_list
from vault.store import Vault

PREVIEW_ITEMS = 50


def _usage_spans(details: dict[str, Any], start: datetime | None, end: datetime | None) -> list[tuple[Any, Any]]:
    """Where a usage memory's raw events lie: each folded glance's span (memories.usage_memories), else its own."""
    spans = details.get("spans")
    if isinstance(spans, list) and spans:
        return [(datetime.fromisoformat(str(a)), datetime.fromisoformat(str(b))) for a, b in spans]
    return [(start, end)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetRequest:
    memory_ids: tuple[int, ...] | None = None
    source: str | None = None  # a memory source ("location", "calendar", "usage", a note's source) or source table
    since: datetime | None = None
    until: datetime | None = None
    query: str | None = None  # memories whose text, as the caller sees it, contains every word of the query
    kinds: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not any((self.memory_ids, self.source, self.since, self.until, self.query, self.kinds)):
            raise InvalidMemory("say what to forget: memory ids, a source, a time range, a query or kinds")

    @property
    def target_kind(self) -> str:
        for name, present in (("ids", self.memory_ids), ("query", self.query), ("source", self.source),
                              ("time_range", self.since or self.until), ("kinds", self.kinds)):
            if present:
                return name
        return "none"

    def selector_sha256(self) -> str:
        body = {"ids": sorted(self.memory_ids or ()), "source": self.source, "query": self.query,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None, "kinds": sorted(self.kinds or ())}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewItem:
    memory_id: int
    kind: str
    text: str
    start: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetPlan:
    request: ForgetRequest
    memory_ids: tuple[int, ...]
    by_kind: dict[str, int]
    rows: dict[str, tuple[int, ...]]  # source table -> keyed row ids to delete
    summary_days: tuple[tuple[str, str | None], ...]  # (day, place key to drop; None: drop the day's row)
    preview: tuple[PreviewItem, ...] = field(default=())
    shown: tuple[int, ...] = field(default=())  # the memory_ids the caller may see: counts, preview and digest

    @property
    def digest(self) -> str:
        """What exactly would be deleted, as a hash: an API can return it with the preview and commit only
        when a fresh preview of the same request still has it (nothing changed in between). The summary days
        count by date and whether the whole day goes, not by the place key dropped from it: that key is a place
        name the caller may not see, and the ids already pin which places go. The memories are the ones the
        caller sees (what else goes, derived from the same rows, is pinned by them)."""
        body = {"ids": list(self.shown), "rows": {t: list(ids) for t, ids in self.rows.items()},
                "days": [[day, place is None] for day, place in self.summary_days]}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"target_kind": self.request.target_kind, "memories": len(self.shown), "by_kind": self.by_kind,
                "digest": self.digest,
                "rows": {t: len(ids) for t, ids in self.rows.items()},
                "preview": [{"id": p.memory_id, "kind": p.kind, "text": p.text,
                             "start": p.start.isoformat() if p.start else None} for p in self.preview]}


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetReceipt:
    memories: int
    rows_deleted: dict[str, int]
    vectors_removed: int
    audit_seq: int
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"memories": self.memories, "rows_deleted": self.rows_deleted, "vectors_removed": self.vectors_removed,
                "audit_seq": self.audit_seq, "at": self.at.isoformat()}


def select(vault: Vault, catalog: Catalog, req: ForgetRequest, redaction: Redaction = Redaction.OWNER) -> list[int]:
    """Ids of the memories the request names (every given criterion must hold), among those `redaction` lets
    the caller see; a query matches the texts the caller sees (a place shown as "a gym" is not found by its name)."""
    where = ["sensitivity IN (SELECT unnest(?::VARCHAR[]))"]
    params: list[Any] = [sorted(redaction.visible)]
    if req.memory_ids:
        where.append("memory_id IN (SELECT unnest(?::BIGINT[]))")
        params.append(list(req.memory_ids))
    if req.source:
        where.append("(source = ? OR source_table = ?)")
        params += [req.source, req.source]
    if req.since:
        where.append("coalesce(end_ts, start_ts) >= ?")
        params.append(req.since)
    if req.until:
        where.append("start_ts < ?")
        params.append(req.until)
    if req.kinds:
        where.append("kind IN (SELECT unnest(?::VARCHAR[]))")
        params.append(sorted(req.kinds))
    ids = [r[0] for r in vault.query(f"SELECT memory_id FROM memories WHERE {' AND '.join(where)}", params)]
    if req.query:
        bm25 = catalog.bm25(redacted=redaction.redacts_text)
        matching = set(catalog.ids[bm25.matching_all(req.query)].tolist())
        ids = [i for i in ids if i in matching]
    return ids


def _ids(vault: Vault, sql: str, params: list[Any]) -> set[int]:
    return {r[0] for r in vault.query(sql, params)}


def plan(vault: Vault, catalog: Catalog, req: ForgetRequest, redaction: Redaction = Redaction.OWNER) -> ForgetPlan:
    """The cascade of what `req` selects in the caller's view; the preview shows texts as the caller sees them."""
    chosen = select(vault, catalog, req, redaction)
    rows: dict[str, set[int]] = {}
    days: set[tuple[str, str | None]] = set()
    todo, seen = list(chosen), set(chosen)

    def add(table: str, ids: set[int]) -> None:
        if ids:
            rows.setdefault(table, set()).update(ids)

    while todo:
        batch, todo = todo[:500], todo[500:]
        for _mid, kind, table, row_ids, s, e, off, details in vault.query(
            "SELECT memory_id, kind, source_table, source_row_ids, start_ts, end_ts, utc_offset_min, details "
            f"FROM memories WHERE memory_id IN (SELECT unnest({id_list(batch)}))"
        ):
            row_ids = set(row_ids or ())
            det = json.loads(details) if details else {}
            if table and table != "daily_summaries":
                add(table, row_ids)
            if kind == "visit" and s is not None:
                lo, hi = read.stays_span(vault, sorted(row_ids))  # every stay of the visit (export and detector)
                s, e = min(s, lo or s), max(e, hi or e)
                add("place_visits", read.place_visit_ids(vault, start=s, end=e))
                add("location_points", read.location_point_ids(vault, start=s, end=e, inclusive=True))
                place = det.get("place") or {}
                key = place.get("name") or place.get("semantic_type")
                if key:
                    days.add((local(s, off).date().isoformat(), key))
                trips = read.trip_ids_touching(vault, sorted(row_ids))
                for t in trips:
                    tid = vault.row_id("memory", "trip", t)
                    if tid not in seen:
                        seen.add(tid)
                        todo.append(tid)
                add("trips", trips)
            elif kind == "trip" and s is not None:
                add("activity_segments", read.activity_segment_ids(vault, start=s, end=e))
                add("location_points", read.location_point_ids(vault, start=s, end=e, inclusive=False))
            elif kind == "usage" and table == "app_sessions" and det.get("package"):
                pkg = det["package"]
                for a, b in _usage_spans(det, s, e):  # folded glances: each glance's own span, not what lies between
                    add("usage_events", read.usage_event_ids(vault, package=pkg, start=a, end=b))
                    add("usage_intervals", read.usage_interval_ids(vault, package=pkg, start=a, end=b))
            elif kind == "usage" and table == "daily_summaries" and s is not None:
                days.add((local(s, off).date().isoformat(), None))
            elif kind == "routine" and table and row_ids:  # a routine is forgotten with what it summarises
                for sid in _ids(vault, "SELECT memory_id FROM memories WHERE kind <> 'routine' AND source_table = ? "
                                       "AND list_has_any(source_row_ids, ?::BIGINT[])", [table, sorted(row_ids)]):
                    if sid not in seen:
                        seen.add(sid)
                        todo.append(sid)
    for table, ids in rows.items():  # and every routine that summarises a row going is removed (`index` rebuilds
        # it from what remains), so no routine keeps a forgotten name, place or time
        seen.update(_ids(vault, "SELECT memory_id FROM memories WHERE kind = 'routine' AND source_table = ? "
                                "AND list_has_any(source_row_ids, ?::BIGINT[])", [table, sorted(ids)]))
    all_ids = sorted(seen & set(_ids(vault, f"SELECT memory_id FROM memories WHERE memory_id IN "
                                            f"(SELECT unnest({id_list(sorted(seen))}))", [])))
    by_kind: dict[str, int] = {}
    preview: list[PreviewItem] = []
    shown: list[int] = []
    for mid, kind, text, text_red, s, sens in vault.query(
        "SELECT memory_id, kind, text, text_redacted, start_ts, sensitivity FROM memories "
        f"WHERE memory_id IN (SELECT unnest({id_list(all_ids)})) ORDER BY start_ts NULLS LAST, memory_id"
    ):
        if sens not in redaction.visible:  # goes with what the caller forgets (a routine of a forgotten visit),
            continue  # unseen and uncounted: the caller learns nothing of it
        shown.append(mid)
        by_kind[kind] = by_kind.get(kind, 0) + 1
        if len(preview) < PREVIEW_ITEMS:
            preview.append(PreviewItem(memory_id=mid, kind=kind, text=redaction.text(text, text_red), start=s))
    return ForgetPlan(request=req, memory_ids=tuple(all_ids), shown=tuple(sorted(shown)), by_kind=by_kind,
                      rows={t: tuple(sorted(ids)) for t, ids in sorted(rows.items())},
                      summary_days=tuple(sorted(days, key=lambda d: (d[0], d[1] or ""))), preview=tuple(preview))


def delete_rows(vault: Vault, p: ForgetPlan, *, now: datetime | None = None) -> dict[str, int]:
    """The database half of the cascade (the caller holds the transaction). Returns rows deleted per table."""
    now = now or datetime.now(UTC)
    deleted: dict[str, int] = {"memories": int(vault.scalar(
        "SELECT count(*) FROM memories WHERE memory_id IN (SELECT unnest(?::BIGINT[]))", [list(p.memory_ids)]))}
    memories.delete_ids(vault, p.memory_ids)
    for table, ids in p.rows.items():  # ingest's tables, through the vault (vault/erase.py)
        deleted[table] = erase.forget_rows(vault, table, ids, now)
    for day, place in p.summary_days:
        if place is None:
            erase.drop_summary_day(vault, day)
            deleted["daily_summaries"] = deleted.get("daily_summaries", 0) + 1
        elif erase.drop_summary_place(vault, day, place):
            deleted["daily_summaries.places"] = deleted.get("daily_summaries.places", 0) + 1
    return deleted
