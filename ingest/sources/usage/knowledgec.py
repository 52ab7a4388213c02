"""Apple knowledgeC.db (iOS/macOS CoreDuet) -> USAGE_INTERVALS, plus device state changes as USAGE_EVENTS.

Table read: ZOBJECT(Z_PK, ZSTREAMNAME, ZVALUESTRING, ZVALUEINTEGER, ZSTARTDATE, ZENDDATE, ZSECONDSFROMGMT).
Dates are seconds since 2001-01-01 UTC (Mac absolute time; +978307200 gives Unix time); ZSECONDSFROMGMT
is the device's UTC offset then (kept in minutes as utc_offset_min). position is Z_PK.

- '/app/usage' and '/app/inFocus' rows -> USAGE_INTERVALS (package = ZVALUESTRING, the bundle id).
  Rejected: no start or end, a date outside 2001..2100, end before start, longer than 24 h, no bundle id.
- '/device/isLocked' -> USAGE_EVENTS at ZSTARTDATE: ZVALUEINTEGER 1 -> KEYGUARD_SHOWN, 0 -> KEYGUARD_HIDDEN;
  '/display/isBacklit' -> 1 -> SCREEN_ON, 0 -> SCREEN_OFF (package null). Rejected: no start, a start
  outside 2001..2100, other values.
- Every other stream (/app/intents, /safari/history, /notification/usage, ...) is not usage lifevault keeps:
  counted by stream name in the generator's return value, not quarantined.
Recognised by its schema, whatever the file's name: a SQLite file whose sqlite_master declares ZOBJECT
with ZSTREAMNAME (however far into the file the schema lies); a SQLite file named knowledgeC.db is taken
too (and quarantined with what its schema lacks). Opened read-only as the Digital Wellbeing database is
(wellbeing_db.connect). A WAL-mode file is read from its main file only: recent rows that are still in
knowledgeC.db-wal are not seen (checkpoint or copy with the sqlite3 .backup command first).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Generator, Iterator
from contextlib import closing

import polars as pl

from ingest.files import InputFile
from ingest.records import UTC_US, Batch, Rejected, clip_raw, empty
from ingest.sources.usage.wellbeing_db import connect, schema, tables

FORMAT = "apple_knowledgec"
KIND = "usage"

MAC_EPOCH = 978_307_200  # 2001-01-01T00:00:00Z in Unix seconds
MAX_INTERVAL_S = 24 * 3600
MIN_AT = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)  # Mac absolute time 0: nothing of a device is older
MAX_AT = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
MAX_OFFSET_MIN = 18 * 60  # a ZSECONDSFROMGMT beyond +-18 h is no UTC offset: utc_offset_min null
INTERVAL_STREAMS = ("/app/usage", "/app/inFocus")
STATE_EVENTS = {
    "/device/isLocked": ("KEYGUARD_HIDDEN", "KEYGUARD_SHOWN"),
    "/display/isBacklit": ("SCREEN_OFF", "SCREEN_ON"),
}
BATCH_ROWS = 250_000

log = logging.getLogger(__name__)


def detect(f: InputFile) -> bool:
    found = schema(f)
    if found is None:
        return False
    return f.name.lower() == "knowledgec.db" or "ZSTREAMNAME" in found.get("ZOBJECT", set())


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """Intervals and device events from ZOBJECT; returns counts of the streams not kept."""
    try:
        with closing(connect(f)) as conn:
            columns = tables(conn).get("ZOBJECT", set())
            needed = {"Z_PK", "ZSTREAMNAME", "ZVALUESTRING", "ZSTARTDATE", "ZENDDATE"}
            if not needed <= columns:
                yield _failed(
                    f, f"not a knowledgeC database: ZOBJECT lacks {', '.join(sorted(needed - columns))}"
                )
                return {}
            streams = (*INTERVAL_STREAMS, *STATE_EVENTS)
            marks = ",".join("?" * len(streams))
            skipped = {
                f"stream {name} (not usage)": n
                for name, n in conn.execute(
                    f"SELECT ZSTREAMNAME, COUNT(*) FROM ZOBJECT WHERE ZSTREAMNAME IS NULL "
                    f"OR ZSTREAMNAME NOT IN ({marks}) GROUP BY 1 ORDER BY 1",
                    streams,
                )
            }
            offset = "ZSECONDSFROMGMT" if "ZSECONDSFROMGMT" in columns else "NULL"
            value = "ZVALUEINTEGER" if "ZVALUEINTEGER" in columns else "NULL"
            cursor = conn.execute(
                f"SELECT CAST(Z_PK AS INTEGER), ZSTREAMNAME, {_typed('ZVALUESTRING', 'text')}, {_typed(value, 'integer')}, "
                f"{_typed('ZSTARTDATE', 'real')}, {_typed('ZENDDATE', 'real')}, {_typed(offset, 'integer')} FROM ZOBJECT "
                f"WHERE ZSTREAMNAME IN ({marks}) ORDER BY Z_PK",
                streams,
            )
            yield from _batches(f, cursor)
    except (sqlite3.Error, UnicodeDecodeError) as e:  # (SQLite's message about a damaged schema may not be UTF-8)
        yield _failed(f, f"unreadable SQLite database: {e}")
        return {}
    if skipped:
        log.info("%s: not kept %s", FORMAT, skipped)
    return skipped


def _typed(column: str, kind: str) -> str:
    """The column's value when SQLite holds it as `kind` (a number for 'real'), else NULL: a value of another
    type (SQLite columns take anything) reads as missing, and the record says so in quarantine."""
    if column == "NULL":
        return column
    if kind == "real":
        return f"CASE WHEN typeof({column}) IN ('integer', 'real') THEN CAST({column} AS REAL) END"
    return f"CASE WHEN typeof({column}) = '{kind}' THEN {column} END"


def _batches(f: InputFile, cursor: sqlite3.Cursor) -> Iterator[Batch]:
    names = ("position", "stream", "package", "value", "start_s", "end_s", "offset_s")
    schema = dict(
        zip(names, (pl.Int64, pl.String, pl.String, pl.Int64, pl.Float64, pl.Float64, pl.Int64), strict=True)
    )
    while chunk := cursor.fetchmany(BATCH_ROWS):
        raw = pl.DataFrame(chunk, schema=schema, orient="row", strict=False).with_columns(
            start=_instant("start_s"),
            end=_instant("end_s"),
            utc_offset_min=pl.when((pl.col("offset_s") // 60).abs() <= MAX_OFFSET_MIN)
            .then(pl.col("offset_s") // 60).cast(pl.Int32),
            package=pl.col("package").str.strip_chars().replace("", None),
        )
        is_interval = pl.col("stream").is_in(list(INTERVAL_STREAMS))
        intervals, bad_intervals = _split(f, raw.filter(is_interval), _interval_reason())
        events, bad_events = _split(f, raw.filter(~is_interval), _event_reason())
        yield Batch(
            "usage_intervals",
            intervals.select(
                "start",
                "end",
                "utc_offset_min",
                "package",
                "stream",
                format=pl.lit(FORMAT),
                file=pl.lit(f.name),
                position="position",
            ),
            bad_intervals,
        )
        if events.height or bad_events:
            yield Batch(
                "usage_events",
                events.select(
                    at="start",
                    utc_offset_min="utc_offset_min",
                    package=pl.lit(None, pl.String),
                    class_name=pl.lit(None, pl.String),
                    event_type=_state_event(),
                    format=pl.lit(FORMAT),
                    file=pl.lit(f.name),
                    position="position",
                ),
                bad_events,
            )


def _instant(column: str) -> pl.Expr:
    micros = ((pl.col(column) + MAC_EPOCH) * 1_000_000).round().cast(pl.Int64, strict=False)
    return pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC").cast(UTC_US)


def _outside(column: str) -> pl.Expr:
    return (pl.col(column) < MIN_AT) | (pl.col(column) >= MAX_AT)


def _interval_reason() -> pl.Expr:
    return (
        pl.when(pl.col("start").is_null() | pl.col("end").is_null())
        .then(pl.lit("no ZSTARTDATE or ZENDDATE"))
        .when(_outside("start") | _outside("end"))
        .then(pl.lit("ZSTARTDATE or ZENDDATE outside 2001..2100"))
        .when(pl.col("end") < pl.col("start"))
        .then(pl.lit("ZENDDATE before ZSTARTDATE"))
        .when(pl.col("end_s") - pl.col("start_s") > MAX_INTERVAL_S)
        .then(pl.lit("interval longer than 24 h"))
        .when(pl.col("package").is_null())
        .then(pl.lit("no bundle id (ZVALUESTRING)"))
    )


def _event_reason() -> pl.Expr:
    return (
        pl.when(pl.col("start").is_null())
        .then(pl.lit("no ZSTARTDATE"))
        .when(_outside("start"))
        .then(pl.lit("ZSTARTDATE outside 2001..2100"))
        .when(~pl.col("value").is_in([0, 1]) | pl.col("value").is_null())
        .then(
            pl.format(
                "ZVALUEINTEGER {} is not a 0/1 state", pl.col("value").cast(pl.String).fill_null("null")
            )
        )
    )


def _state_event() -> pl.Expr:
    expr = pl.lit(None, pl.String)
    for stream, (off, on) in STATE_EVENTS.items():
        expr = (
            pl.when(pl.col("stream") == stream)
            .then(pl.when(pl.col("value") == 1).then(pl.lit(on)).otherwise(pl.lit(off)))
            .otherwise(expr)
        )
    return expr


_RAW = ("stream", "package", "value", "start_s", "end_s", "offset_s")


def _split(f: InputFile, df: pl.DataFrame, reason: pl.Expr) -> tuple[pl.DataFrame, list[Rejected]]:
    df = df.with_columns(reason=reason)
    bad = df.filter(pl.col("reason").is_not_null())
    rejected = [
        Rejected(
            format=FORMAT,
            file=f.name,
            position=row["position"],
            reason=row["reason"],
            raw=clip_raw(
                repr({k: row[k] for k in _RAW})
            ),
        )
        for row in bad.select("position", "reason", *_RAW).iter_rows(named=True)  # (not the instants: any year)
    ]
    return df.filter(pl.col("reason").is_null()), rejected


def _failed(f: InputFile, reason: str) -> Batch:
    reason = " ".join(reason.split())  # one line (SQLite quotes a damaged schema with its line breaks)
    reason = reason if len(reason) <= 300 else reason[:299] + "…"
    return Batch(
        "usage_intervals",
        empty("usage_intervals"),
        [Rejected(format=FORMAT, file=f.name, position=-1, reason=reason, raw=clip_raw(f.head(256)))],
    )
