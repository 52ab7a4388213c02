"""run(vault, paths) -> RunReport: detect, parse (streaming), key, load batch by batch, derive.

One call is one load: every file under `paths` (folders and .zip members included) is matched to a
source, its batches are keyed (keyed-hash row ids of natural keys) and written batch by batch, each
batch in one transaction with its quarantined records, the file's cursor and the mark saying the derived
tables are behind the raw table it changed. The derived tables are recomputed from those marks (not from
what this run happened to add), so a run killed at any point and started again skips the batches
already committed and ends with the rows, raw and derived, of a clean run.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from ingest import derive
from ingest.detect import pick
from ingest.files import DEFAULT_LIMITS, InputFile, Limits, refusal, scan
from ingest.guard import guarded
from ingest.prefetch import ahead
from ingest.records import Batch, Rejected
from vault import crashpoint
from vault import load as vload
from vault.errors import VaultError
from vault.store import Vault

# records table -> (vault table, column renames, natural key columns, upsert?)
TARGETS: dict[str, tuple[str, dict[str, str], tuple[str, ...], bool]] = {
    "points": ("location_points", {"at": "ts"}, ("ts", "lat", "lon", "format"), False),
    "visits": ("place_visits", {"start": "start_ts", "end": "end_ts"}, ("start_ts", "end_ts", "place_id", "lat", "lon", "format"), False),
    "segments": ("activity_segments", {"start": "start_ts", "end": "end_ts"}, ("start_ts", "end_ts", "activity_type", "format"), False),
    "events": ("calendar_events", {"start": "start_ts", "end": "end_ts"}, ("uid", "recurrence_id"), True),
    "usage_events": ("usage_events", {"at": "ts"}, ("ts", "package", "class_name", "event_type", "format"), False),
    "usage_intervals": ("usage_intervals", {"start": "start_ts", "end": "end_ts"}, ("start_ts", "end_ts", "package", "stream", "format"), False),
}



class IngestError(VaultError):
    """A user-facing ingest failure (nothing recognisable to ingest, strict mode, ...)."""


class StrictFailure(IngestError):
    """Strict mode and something was quarantined: the load is complete, the exit code says it was not clean."""

    exit_code = 4

    def __init__(self, message: str, report: RunReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(slots=True, kw_only=True)
class FileReport:
    file: str
    format: str
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    forgotten: int = 0  # rows the user asked to forget (`lifevault forget`), not brought back from an old export
    resumed_batches: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # valid records that are not data, by reason


@dataclass(slots=True, kw_only=True)
class RunReport:
    load_id: str
    kind: str | None
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    forgotten: int = 0
    seconds: float = 0.0
    files: list[FileReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files no source recognised
    not_read: dict[str, str] = field(default_factory=dict)  # links, FIFOs, devices under a folder -> why
    derived: dict[str, int] = field(default_factory=dict)
    status: str = "completed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[str, int], None]  # (file display name, rows just processed)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lifevault")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "source"


def file_key(f: InputFile, fmt: str, batch_rows: int | None = None) -> str:
    """Identifies one file as read by this version of its source, cut in batches of `batch_rows`. A cursor
    counts committed batches, so it only means something to the code that cut those batches: another
    lifevault version or batch size gets another key and reads the file from the start, which the keyed
    row ids make safe (nothing is added twice) instead of skipping rows it never committed."""
    layout = f"batch {batch_rows}|" if batch_rows else ""
    h = hashlib.sha256(f"{fmt}|{f.display}|{f.size}|lifevault {_version()}|{layout}".encode())
    h.update(f.head(65536))
    return h.hexdigest()


def keyed(vault: Vault, batch: Batch, load_id: str) -> tuple[str, pl.DataFrame, bool, int]:
    """Rename to vault columns, add row_id (natural key) and load_id; drop in-batch duplicates (counted)."""
    table, renames, natural, upsert = TARGETS[batch.table]
    df = batch.rows.rename({k: v for k, v in renames.items() if k in batch.rows.columns})
    df = df.with_columns(load_id=pl.lit(load_id))
    parts = []
    for c in natural:
        col = pl.col(c)
        if df.schema[c] == pl.Float64:
            col = col.round(7)
        parts.append(col.cast(pl.String).fill_null(""))
    if batch.table == "points":  # GPX points without time are keyed by their place in the file
        parts.append(pl.when(pl.col("ts").is_null()).then(pl.format("{}#{}", "file", "position")).otherwise(pl.lit("")))
    keys = df.select(pl.concat_str(parts, separator="\x1f").alias("k"))["k"]
    df = df.with_columns(vault.row_id_column(keys).alias("row_id"))
    before = df.height
    if df["row_id"].n_unique() < before:  # (counting is cheaper than deduplicating a batch that has none)
        df = df.unique(subset="row_id", keep="last" if upsert else "first", maintain_order=True)
    return table, df, upsert, before - df.height


def quarantine_frame(vault: Vault, load_id: str, rejected: list[Rejected]) -> pl.DataFrame | None:
    if not rejected:
        return None
    now = datetime.now(UTC)
    ids = vault.row_ids(f"{r.format}\x1f{r.file}\x1f{r.position}\x1f{r.reason}" for r in rejected)
    return pl.DataFrame(
        {
            "row_id": ids,
            "load_id": [load_id] * len(rejected),
            "format": [r.format for r in rejected],
            "file": [r.file for r in rejected],
            "position": [r.position for r in rejected],
            "reason": [r.reason for r in rejected],
            "raw": [r.raw for r in rejected],
            "quarantined_at": [now] * len(rejected),
        },
        schema_overrides={"row_id": pl.Int64, "position": pl.Int64},
    ).unique(subset="row_id", keep="first", maintain_order=True)


def _ingest_file(vault: Vault, f: InputFile, mod: Any, load_id: str, options: dict[str, Any],
                 progress: Progress | None, forgotten: dict[str, pl.Series]) -> FileReport:
    report = FileReport(file=f.display, format=mod.FORMAT)
    key = file_key(f, mod.FORMAT, getattr(mod, "BATCH_ROWS", None))
    prior = vload.cursor(vault, key)
    skip = prior.batches_done if prior is not None and not prior.complete else 0
    truth = mod.KIND == "calendar" and "window_start" in options
    if truth:  # rows of batches an earlier run committed would carry its load id and be dropped as stale below:
        skip = 0  # a calendar file's batches are all written (upserted) again under this load instead
    n = 0
    stream = ahead(guarded(f, mod, options))  # the next batch is parsed while this one is written
    while True:
        try:
            batch = next(stream)
        except StopIteration as stop:  # sources return {reason: count} for valid records that are not data
            report.skipped = dict(stop.value or {})
            break
        n += 1
        if n <= skip:  # committed by an earlier, interrupted run
            report.resumed_batches += 1
            continue
        table, rows, upsert, in_batch = keyed(vault, batch, load_id)
        if table in forgotten:
            gone = rows["row_id"].is_in(forgotten[table])
            report.forgotten += int(gone.sum())
            rows = rows.filter(~gone)
        res = vload.write_batch(
            vault, load_id=load_id, table=table, rows=rows,
            quarantine=quarantine_frame(vault, load_id, batch.rejected),
            cursor=vload.Cursor(file_key=key, format=mod.FORMAT, batches_done=n, complete=False),
            replace=upsert,
        )
        report.loaded += res.added
        report.duplicates += res.duplicates + in_batch
        report.quarantined += len(batch.rejected)
        if progress:
            progress(f.display, batch.rows.height + len(batch.rejected))
        del batch, rows  # not held while the next batch is awaited (the parse thread may be making it)
    with vault.transaction():
        if truth:
            _drop_stale_occurrences(vault, f, load_id, options)
        vault.execute("UPDATE ingest_cursors SET complete = true, batches_done = ? WHERE file_key = ?", [n, key])
    crashpoint.reached("file.completed")
    return report


def _drop_stale_occurrences(vault: Vault, f: InputFile, load_id: str, options: dict[str, Any]) -> None:
    """A calendar export is the truth for its window: occurrences of this file it no longer has are gone
    (an added EXDATE, a deleted event). Outside the window, history is kept."""
    gone = vault.query(
        "DELETE FROM calendar_events WHERE file = ? AND load_id <> ? AND start_ts >= ? AND start_ts < ?",
        [f.name, load_id, options["window_start"], options["window_end"]],
    )
    if gone and gone[0][0]:
        vload.mark_derive_pending(vault, "calendar_events")


def calendar_window(now: datetime | None = None, *, ahead_days: int = 365) -> dict[str, datetime]:
    """The default expansion window: from each series' start (ics.HISTORY_START bounds it) to 1 year ahead
    (in days, so 29 February never bites); a series' occurrences beyond its cap are reported, not loaded."""
    from ingest.sources.calendar.ics import HISTORY_START

    now = now or datetime.now(UTC)
    return {"window_start": HISTORY_START, "window_end": now + timedelta(days=ahead_days)}


def run(
    vault: Vault,
    paths: list[Path],
    *,
    kind: str | None = None,
    fmt: str | None = None,
    strict: bool = False,
    options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    on_file: Callable[[InputFile, str | None], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> RunReport:
    """Ingest every recognised file under `paths` as one load; raise StrictFailure when strict and anything was quarantined."""
    t0 = time.perf_counter()
    for p in paths:
        if why := refusal(Path(p)):
            raise IngestError(f"{p} {why}; nothing was ingested")
    found = scan([Path(p) for p in paths], limits)
    files = found.files
    plan = [(f, pick(f, kind=kind, fmt=fmt)) for f in files]
    chosen = [(f, m) for f, m in plan if m is not None]
    report = RunReport(load_id=uuid.uuid4().hex[:12], kind=kind, skipped=[f.display for f, m in plan if m is None],
                       not_read=found.not_read)
    if not chosen:
        names = ", ".join(f.display for f in files[:3]) + ("…" if len(files) > 3 else "")
        raise IngestError(f"no known export found in {names or 'the given paths'}; use --format to force one")
    source = ",".join(sorted({m.KIND for _, m in chosen}))
    vload.begin(vault, load_id=report.load_id, kind=kind, source=source, files=[f.display for f, _ in chosen])
    forgotten = vload.forgotten_ids(vault)  # read once per run: nothing is forgotten while it runs
    for f, mod in chosen:
        if on_file:
            on_file(f, mod.FORMAT)
        opts = (calendar_window() | (options or {})) if mod.KIND == "calendar" else {}
        fr = _ingest_file(vault, f, mod, report.load_id, opts, progress, forgotten)
        report.files.append(fr)
        report.loaded += fr.loaded
        report.duplicates += fr.duplicates
        report.quarantined += fr.quarantined
        report.forgotten += fr.forgotten
    report.derived = derive.run(vault)  # whatever the marks say is behind, this run's batches or a killed run's
    crashpoint.reached("load.derived")
    report.seconds = round(time.perf_counter() - t0, 3)
    report.status = "quarantined-strict" if strict and report.quarantined else "completed"
    vload.finish(
        vault, load_id=report.load_id, source=source, formats=[m.FORMAT for _, m in chosen], files=len(chosen),
        loaded=report.loaded, duplicates=report.duplicates, quarantined=report.quarantined,
        seconds=report.seconds, status=report.status,
    )
    if report.status == "quarantined-strict":
        raise StrictFailure(
            f"{report.quarantined} record(s) quarantined (strict mode); the good rows are loaded, nothing is lost. "
            f"See `lifevault quarantine {report.load_id}`",
            report,
        )
    return report
