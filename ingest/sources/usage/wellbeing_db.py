"""Android Digital Wellbeing `app_usage` SQLite database -> USAGE_EVENTS.

Tables read: events(_id, timestamp INTEGER ms UTC, type INTEGER, package_id INTEGER, instance_id,
task_root_package_id) and packages(_id, package_name). `type` holds UsageEvents.Event codes and is
mapped exactly like the collector layout (see android_events): the nine kept codes become rows, other
Android codes are counted as not kept (the generator's return value), codes Android does not define are
Rejected. position is events._id. An app event whose package_id has no packages row is Rejected.
Recognised by its schema, whatever the file's name: a SQLite file whose sqlite_master declares an
`events` table (quoted or not) with _id, timestamp, type, package_id and a `packages` table with _id and
package_name; a SQLite file named app_usage* is taken too (and quarantined with what its schema lacks).
A plain file is opened read-only through an immutable URI (nothing is written next to it, no -wal or
-shm); a zip member is deserialized in memory. Either way a WAL-mode file is read from its main file
only (copy the -wal file's changes in first, e.g. with a checkpoint on the phone, to include them).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections import Counter
from collections.abc import Generator, Iterator
from contextlib import closing
from urllib.parse import quote

import polars as pl

from ingest.files import InputFile
from ingest.records import Batch, Rejected, clip_raw, empty
from ingest.sources.usage.android_events import BATCH_ROWS, usage_events

FORMAT = "android_digital_wellbeing"
KIND = "usage"

SQLITE_MAGIC = b"SQLite format 3\x00"
MAX_TABLES = 10_000  # tables whose columns are read when recognising a database (knowledgeC has ~100)
_QUERY = """
    SELECT CAST(e._id AS INTEGER), CAST(e.timestamp AS TEXT), CAST(e.type AS TEXT), CAST(p.package_name AS TEXT),
        e.package_id
    FROM events AS e LEFT JOIN packages AS p ON p._id = e.package_id
    ORDER BY e._id
"""

log = logging.getLogger(__name__)


NEEDS = {"events": frozenset({"_id", "timestamp", "type", "package_id"}), "packages": frozenset({"_id", "package_name"})}


def detect(f: InputFile) -> bool:
    found = schema(f)
    if found is None:
        return False
    return f.name.lower().startswith("app_usage") or all(cols <= found.get(t, set()) for t, cols in NEEDS.items())


def schema(f: InputFile) -> dict[str, frozenset[str]] | None:
    """Table -> columns of a SQLite file as its sqlite_master declares them; None when it is not one."""
    try:
        if not f.head(len(SQLITE_MAGIC)).startswith(SQLITE_MAGIC):
            return None
        st = f.path.stat()
    except OSError:
        return None
    return _schema(f, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _schema(f: InputFile, size: int, mtime_ns: int) -> dict[str, frozenset[str]] | None:
    try:
        with closing(connect(f)) as conn:
            return {t: frozenset(c) for t, c in tables(conn).items()}
    except (sqlite3.Error, OSError, UnicodeDecodeError):
        return None


def connect(f: InputFile) -> sqlite3.Connection:
    """A read-only connection: a plain file through an immutable URI (never written, nothing created next to
    it), a zip member deserialized in memory (it is never extracted to disk)."""
    if f.member is None:
        conn = sqlite3.connect(f"file:{quote(str(f.path.absolute()))}?mode=ro&immutable=1", uri=True)
        conn.execute("PRAGMA query_only = ON")
    else:
        conn = open_sqlite(f.sqlite_bytes())
    conn.text_factory = lambda b: b.decode("utf-8", "replace")  # a damaged text reads with U+FFFD, it does not stop the file
    return conn


def open_sqlite(data: bytes) -> sqlite3.Connection:
    """A read-only view of a SQLite file's bytes, in memory (nothing is written to disk).

    Files in WAL mode (bytes 18-19 == 2, as on phones) cannot be deserialized as they are; marking them
    as rollback-journal files in the in-memory copy makes the main file readable.
    """
    if not data.startswith(SQLITE_MAGIC):
        raise sqlite3.DatabaseError("file is not a database")
    if data[18:20] == b"\x02\x02":
        data = data[:18] + b"\x01\x01" + data[20:]
    conn = sqlite3.connect(":memory:")
    conn.deserialize(data)
    conn.execute("PRAGMA query_only = ON")
    return conn


def tables(conn: sqlite3.Connection) -> dict[str, set[str]]:
    """Table name -> column names."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' LIMIT ?", (MAX_TABLES,))]
    return {n: {r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (n,))} for n in names}


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """USAGE_EVENTS from the events table; returns counts of events not kept (not errors)."""
    skipped: Counter[str] = Counter()
    try:
        with closing(connect(f)) as conn:
            yield from _events(f, conn, skipped)
    except (sqlite3.Error, UnicodeDecodeError) as e:  # (SQLite's message about a damaged schema may not be UTF-8)
        yield _failed(f, f"unreadable SQLite database: {e}")
        return {}
    if skipped:
        log.info("%s: not kept %s", FORMAT, dict(skipped))
    return dict(skipped)


def _events(f: InputFile, conn: sqlite3.Connection, skipped: Counter[str]) -> Iterator[Batch]:
    schema = tables(conn)
    missing = {"events": {"_id", "timestamp", "type", "package_id"}, "packages": {"_id", "package_name"}}
    absent = [f"{t}.{c}" for t, cols in missing.items() for c in sorted(cols - schema.get(t, set()))]
    if absent:
        yield _failed(f, f"not a Digital Wellbeing app_usage database: missing {', '.join(absent)}")
        return
    cursor = conn.execute(_QUERY)
    while chunk := cursor.fetchmany(BATCH_ROWS):
        ids, ts, types, names, package_ids = (list(c) for c in zip(*chunk, strict=True))
        raw = pl.DataFrame(
            {
                "position": ids,
                "timestamp_ms": ts,
                "event_type": types,
                "package": names,
                "class": [None] * len(ids),
            },
            schema={
                "position": pl.Int64,
                "timestamp_ms": pl.String,
                "event_type": pl.String,
                "package": pl.String,
                "class": pl.String,
            },
            strict=False,
        )
        rows, rejected = usage_events(raw, format=FORMAT, file=f.name, skipped=skipped)
        unknown = {i: p for i, n, p in zip(ids, names, package_ids, strict=True) if n is None}
        rejected = [_explain(r, unknown) for r in rejected]
        yield Batch("usage_events", rows, rejected)


def _explain(r: Rejected, unknown_packages: dict[int, object]) -> Rejected:
    """Say which package_id was missing instead of the collector-layout wording."""
    if r.reason == "app event without a package" and r.position in unknown_packages:
        reason = f"package_id {unknown_packages[r.position]} is not in packages"
        return Rejected(format=r.format, file=r.file, position=r.position, reason=reason, raw=r.raw)
    return r


def _failed(f: InputFile, reason: str) -> Batch:
    reason = " ".join(reason.split())  # one line (SQLite quotes a damaged schema with its line breaks)
    reason = reason if len(reason) <= 300 else reason[:299] + "…"
    return Batch(
        "usage_events",
        empty("usage_events"),
        [Rejected(format=FORMAT, file=f.name, position=-1, reason=reason, raw=clip_raw(f.head(256)))],
    )
