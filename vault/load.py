"""Loading ingested batches: rows + quarantine + cursor advance in ONE transaction; load records.

A load is one `lifevault ingest` run. Each batch a source yields is written by write_batch in a single
transaction together with its rejected records, the file's cursor and, when it changed a raw table, that
table's mark in `derive_pending` (derived state is behind). A job killed at any point resumes from the
last committed batch and ends with exactly the rows of a clean run (row ids are keyed hashes of natural
keys and inserts skip existing ids); the marks outlive the crash, so the next run derives even when it
has nothing new to load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

import polars as pl

from vault import audit, crashpoint

if TYPE_CHECKING:
    from vault.store import Vault

RAW_TABLES = (
    "location_points",
    "place_visits",
    "activity_segments",
    "calendar_events",
    "usage_events",
    "usage_intervals",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadCompleted(audit.AuditEvent):
    kind: ClassVar[str] = "ingest.load_completed"
    load_id: str
    source: str
    formats: list[str]
    files: int
    loaded: int
    duplicates: int
    quarantined: int
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Cursor:
    file_key: str
    format: str
    batches_done: int
    complete: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    added: int
    duplicates: int
    quarantined: int


def begin(vault: Vault, *, load_id: str, kind: str | None, source: str, files: list[str]) -> None:
    """Record a running load. The caller holds the vault (one writer), so a load still 'running' was killed:
    it is closed as 'interrupted' (its rows are kept; this load completes what it did not)."""
    with vault.transaction():
        vault.execute("UPDATE loads SET status = 'interrupted' WHERE status = 'running'")
        vault.execute(
            "INSERT INTO loads (load_id, kind, source, files, started_at, status) VALUES (?, ?, ?, ?, ?, 'running')",
            [load_id, kind, source, json.dumps(files), datetime.now(UTC)],
        )


def mark_derive_pending(vault: Vault, table: str) -> None:
    """Derived state is behind `table` (call inside the transaction that changed it)."""
    vault.execute("INSERT OR REPLACE INTO derive_pending VALUES (?, ?)", [table, datetime.now(UTC)])


def derive_pending(vault: Vault) -> dict[str, datetime]:
    """Raw tables changed since the derived tables were last committed, with the time of their mark."""
    return dict(vault.query("SELECT raw_table, marked_at FROM derive_pending"))


def clear_derive_pending(vault: Vault, marks: dict[str, datetime]) -> None:
    """Clear the marks a derive pass read (inside the transaction committing its tables); a table marked
    again since then keeps its newer mark."""
    for table, at in marks.items():
        vault.execute("DELETE FROM derive_pending WHERE raw_table = ? AND marked_at = ?", [table, at])


def cursor(vault: Vault, file_key: str) -> Cursor | None:
    row = vault.query("SELECT format, batches_done, complete FROM ingest_cursors WHERE file_key = ?", [file_key])
    if not row:
        return None
    return Cursor(file_key=file_key, format=row[0][0], batches_done=row[0][1], complete=row[0][2])


def write_batch(
    vault: Vault,
    *,
    load_id: str,
    table: str,
    rows: pl.DataFrame,
    quarantine: pl.DataFrame | None,
    cursor: Cursor,
    replace: bool = False,
) -> BatchResult:
    """Insert rows (skipping or, with replace, updating existing ids), quarantine, cursor: one transaction.

    `rows` must have unique row_id values (the caller drops in-batch duplicates and counts them)."""
    if table not in RAW_TABLES:
        raise ValueError(f"{table} is not a raw ingest table")
    with vault.transaction():
        added = duplicates = 0
        if rows.height:
            if replace:
                existing = _existing(vault, table, rows)
                if existing:
                    vault.execute(f"DELETE FROM {table} WHERE row_id IN (SELECT row_id FROM _lv_ids)")
                vault.execute("DROP TABLE IF EXISTS _lv_ids")
                vault.insert_frame(table, rows, on_conflict_nothing=False)
                added, duplicates = rows.height - existing, existing
            elif table in TIME_KEYED:
                new = _not_held(vault, table, rows)
                added = vault.insert_frame(table, new, on_conflict_nothing=False)
                duplicates = rows.height - added
            else:
                added = vault.insert_frame(table, rows)
                duplicates = rows.height - added
        q = vault.insert_frame("quarantine", quarantine) if quarantine is not None and quarantine.height else 0
        vault.execute(
            "INSERT OR REPLACE INTO ingest_cursors VALUES (?, ?, ?, ?, ?, ?)",
            [cursor.file_key, cursor.format, cursor.batches_done, cursor.complete, load_id, datetime.now(UTC)],
        )
        if added or (replace and rows.height):  # an upsert may have changed rows it counts as duplicates
            mark_derive_pending(vault, table)
        crashpoint.reached("batch.writing")
    crashpoint.reached("batch.committed")
    return BatchResult(added=added, duplicates=duplicates, quarantined=q)


# Raw tables whose natural key (hence row_id) includes this time column: a row already held has the same
# time, so looking for held ids only among rows in the batch's time range finds them all; the range is
# read through DuckDB's min/max zone maps, so an export of new data reads next to nothing back.
TIME_KEYED = {
    "location_points": "ts",  # null for GPX points without time (keyed by file and position instead)
    "place_visits": "start_ts",
    "activity_segments": "start_ts",
    "usage_events": "ts",
    "usage_intervals": "start_ts",
}


def _not_held(vault: Vault, table: str, rows: pl.DataFrame) -> pl.DataFrame:
    """The rows whose row_id the table does not hold yet."""
    col = TIME_KEYED[table]
    times = rows[col]
    held = []
    if times.null_count() < rows.height:
        held.append(vault.frame(
            f"SELECT row_id FROM {table} WHERE {col} BETWEEN ? AND ?", [times.min(), times.max()]))
    if times.null_count():
        held.append(vault.frame(f"SELECT row_id FROM {table} WHERE {col} IS NULL"))
    found = pl.concat(held) if held else None
    if found is None or not found.height:
        return rows
    return rows.join(found, on="row_id", how="anti", maintain_order="left")


def forgotten_ids(vault: Vault) -> dict[str, pl.Series]:
    """Keyed ids of source rows removed by `forget`, per table: ingest must not bring them back."""
    df = vault.frame("SELECT source_table, row_id FROM forgotten_rows")
    return {t: g["row_id"] for (t,), g in df.group_by("source_table")}


def _existing(vault: Vault, table: str, rows: pl.DataFrame) -> int:
    vault.execute("CREATE OR REPLACE TEMP TABLE _lv_ids (row_id BIGINT)")
    vault.insert_frame("_lv_ids", rows.select("row_id"), on_conflict_nothing=False)
    return int(vault.scalar(f"SELECT count(*) FROM {table} WHERE row_id IN (SELECT row_id FROM _lv_ids)"))


def finish(
    vault: Vault,
    *,
    load_id: str,
    source: str,
    formats: list[str],
    files: int,
    loaded: int,
    duplicates: int,
    quarantined: int,
    seconds: float,
    status: str,
) -> None:
    """Close the load record and write its audit event, in one transaction."""
    with vault.transaction():
        vault.execute(
            "UPDATE loads SET finished_at = ?, status = ?, loaded = ?, duplicates = ?, quarantined = ?, seconds = ? "
            "WHERE load_id = ?",
            [datetime.now(UTC), status, loaded, duplicates, quarantined, seconds, load_id],
        )
        audit.record(
            vault,
            LoadCompleted(
                actor="ingest", load_id=load_id, source=source, formats=sorted(set(formats)), files=files,
                loaded=loaded, duplicates=duplicates, quarantined=quarantined, status=status,
            ),
        )


def quarantined(vault: Vault, load_id: str | None = None, *, limit: int = 1000) -> list[dict[str, object]]:
    sql = "SELECT load_id, format, file, position, reason, raw, quarantined_at FROM quarantine"
    params: list[object] = []
    if load_id:
        sql += " WHERE load_id = ?"
        params.append(load_id)
    sql += f" ORDER BY quarantined_at, file, position LIMIT {int(limit)}"
    cols = ("load_id", "format", "file", "position", "reason", "raw", "quarantined_at")
    return [dict(zip(cols, r, strict=True)) for r in vault.query(sql, params)]


def loads(vault: Vault, *, limit: int = 20) -> list[dict[str, object]]:
    cols = ("load_id", "kind", "source", "files", "started_at", "finished_at", "status", "loaded", "duplicates",
            "quarantined", "seconds")
    rows = vault.query(f"SELECT {', '.join(cols)} FROM loads ORDER BY started_at DESC LIMIT {int(limit)}")
    return [dict(zip(cols, r, strict=True)) for r in rows]

