"""Android UsageStats events as a collector app writes them (UsageStatsManager.queryEvents) -> USAGE_EVENTS.

File layout (what a collector app must write; lifevault reads exactly this):

CSV (`*.csv`): UTF-8 (a BOM is allowed), comma-separated, RFC 4180 quoting, LF or CRLF line ends. The first
line is a header naming the columns `timestamp_ms,event_type,package,class` (in any order; further columns
are ignored). One event per line:

    timestamp_ms,event_type,package,class
    1712040000000,1,com.whatsapp,com.whatsapp.HomeActivity
    1712040065000,2,com.whatsapp,com.whatsapp.HomeActivity
    1712040070000,16,,

JSONL (`*.jsonl`, `*.ndjson`, or `*.json` starting with such a line): UTF-8, one JSON object per line with
the same keys (missing keys are null); blank lines are ignored:

    {"timestamp_ms": 1712040000000, "event_type": 1, "package": "com.whatsapp", "class": "com.whatsapp.HomeActivity"}
    {"timestamp_ms": 1712040070000, "event_type": "SCREEN_NON_INTERACTIVE", "package": null, "class": null}

Fields:
- timestamp_ms: integer, Unix epoch milliseconds in UTC (UsageEvents.Event.getTimeStamp()).
- event_type: the integer UsageEvents.Event code (getEventType()), or its name: the Android constant
  (ACTIVITY_RESUMED, MOVE_TO_FOREGROUND, SCREEN_NON_INTERACTIVE, ...) or lifevault's short name (RESUMED,
  SCREEN_OFF, ...), case-insensitive.
- package: the package name (getPackageName()); empty or null for device events.
- class: the activity class name (getClassName()); empty or null when unknown.

Kept: 1 RESUMED, 2 PAUSED, 23 STOPPED, 15 SCREEN_ON, 16 SCREEN_OFF, 17 KEYGUARD_SHOWN, 18 KEYGUARD_HIDDEN,
26 SHUTDOWN, 27 STARTUP (ingest.records.ANDROID_EVENT_TYPES). Device events (screen, keyguard, shutdown,
startup) get package null, whatever the collector wrote (Android reports them under "android").
Other documented Android codes (5 CONFIGURATION_CHANGE, 7 USER_INTERACTION, 12 NOTIFICATION_INTERRUPTION,
19/20 foreground services, ...) are valid but not usage lifevault keeps: they are counted, not quarantined
(`batches` returns {reason: count}). Rejected, with the record's position (CSV: 0-based data row after
the header; JSONL: 0-based line number): a code Android does not define, an unknown name, a timestamp that
is not an integer or lies outside 2008..2100 (a seconds-for-milliseconds mix-up lands in 1970), an app
event without a package, a line with too few fields or that is not a JSON object (or is nested too deeply
to parse), a CSV record with a field over 128 KiB (MAX_CSV_FIELD; reading goes on with the next record).
utc_offset_min is null: the layout carries no offset.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import polars as pl

from ingest.files import InputFile
from ingest.records import ANDROID_EVENT_TYPES, UTC_US, Batch, Rejected, clip_raw, empty

FORMAT = "android_usage_events"
KIND = "usage"

COLUMNS = ("timestamp_ms", "event_type", "package", "class")
BATCH_ROWS = 250_000
MIN_MS = 1_199_145_600_000  # 2008-01-01: no Android before
MAX_MS = 4_102_444_800_000  # 2100-01-01
MAX_CSV_FIELD = 128 << 10  # a CSV field longer than this is refused by the csv module (its field_size_limit)

# Every UsageEvents.Event constant Android documents (or keeps hidden), by code.
ANDROID_CODES: dict[int, str] = {
    0: "NONE",
    1: "ACTIVITY_RESUMED",
    2: "ACTIVITY_PAUSED",
    3: "END_OF_DAY",
    4: "CONTINUE_PREVIOUS_DAY",
    5: "CONFIGURATION_CHANGE",
    6: "SYSTEM_INTERACTION",
    7: "USER_INTERACTION",
    8: "SHORTCUT_INVOCATION",
    9: "CHOOSER_ACTION",
    10: "NOTIFICATION_SEEN",
    11: "STANDBY_BUCKET_CHANGED",
    12: "NOTIFICATION_INTERRUPTION",
    13: "SLICE_PINNED_PRIV",
    14: "SLICE_PINNED",
    15: "SCREEN_INTERACTIVE",
    16: "SCREEN_NON_INTERACTIVE",
    17: "KEYGUARD_SHOWN",
    18: "KEYGUARD_HIDDEN",
    19: "FOREGROUND_SERVICE_START",
    20: "FOREGROUND_SERVICE_STOP",
    21: "CONTINUING_FOREGROUND_SERVICE",
    22: "ROLLOVER_FOREGROUND_SERVICE",
    23: "ACTIVITY_STOPPED",
    24: "ACTIVITY_DESTROYED",
    25: "FLUSH_TO_DISK",
    26: "DEVICE_SHUTDOWN",
    27: "DEVICE_STARTUP",
    28: "USER_UNLOCKED",
    29: "USER_STOPPED",
    30: "LOCUS_ID_SET",
    31: "APP_COMPONENT_USED",
}
NAME_TO_CODE: dict[str, int] = {
    **{name: code for code, name in ANDROID_CODES.items()},
    **{name: code for code, name in ANDROID_EVENT_TYPES.items()},
    "MOVE_TO_FOREGROUND": 1,
    "MOVE_TO_BACKGROUND": 2,
}
APP_EVENTS = frozenset({"RESUMED", "PAUSED", "STOPPED"})

log = logging.getLogger(__name__)


def detect(f: InputFile) -> bool:
    name = f.name.lower()
    if not name.endswith((".csv", ".jsonl", ".ndjson", ".json")):
        return False
    first = f.head(2048).lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0].decode("utf-8", "replace")
    if first.startswith("{"):
        return '"timestamp_ms"' in first and '"event_type"' in first
    return set(COLUMNS) <= {c.strip().strip('"').lower() for c in first.split(",")}


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """USAGE_EVENTS from a collector's CSV or JSONL file; returns counts of events not kept (not errors)."""
    skipped: Counter[str] = Counter()
    with f.open() as stream:
        lines = iter(io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline=""))
        blank, first = 0, ""
        for first in lines:
            if first.strip():
                break
            blank += 1
        rest = itertools.chain([first], lines)
        chunks = _jsonl_chunks(rest, blank) if first.lstrip().startswith("{") else _csv_chunks(rest)
        for chunk, rejected in chunks:
            if chunk is None:  # the file cannot be read as this layout at all
                yield Batch("usage_events", empty("usage_events"), [_rejected(f, *r) for r in rejected])
                return {}
            rows, bad = usage_events(chunk, format=FORMAT, file=f.name, skipped=skipped)
            yield Batch("usage_events", rows, [_rejected(f, *r) for r in rejected] + bad)
    if skipped:
        log.info("%s: not kept %s", FORMAT, dict(skipped))
    return dict(skipped)


# A raw chunk: position, timestamp_ms, event_type, package, class as read (strings or values), and the
# rejects found while reading as (position, reason, raw).
_Chunk = tuple[pl.DataFrame | None, list[tuple[int, str, str]]]


class _Last:
    """The lines of a file, remembering the last one read (the raw fragment of a record csv refused)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines, self.last = iter(lines), ""

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        self.last = next(self._lines)
        return self.last


def _records(reader: Iterator[list[str]], lines: _Last) -> Iterator[tuple[list[str] | None, str]]:
    """csv rows; a row with a field over MAX_CSV_FIELD comes as (None, reason) and reading goes on."""
    while True:
        try:
            yield next(reader), ""
        except StopIteration:
            return
        except csv.Error as e:
            yield None, f"a field is larger than {MAX_CSV_FIELD >> 10} KiB, or the quoting is broken ({e})"


def _csv_chunks(lines: Iterable[str]) -> Iterator[_Chunk]:
    last = _Last(lines)
    reader = csv.reader(last)
    header = next((row for row, _ in _records(reader, last)), None)
    names = [h.strip().lower() for h in header or []]
    if not set(COLUMNS) <= set(names):
        yield (
            None,
            [(-1, f"not a collector CSV: the header must name {','.join(COLUMNS)}", ",".join(header or []))],
        )
        return
    index = [names.index(c) for c in COLUMNS]
    width = max(index) + 1
    cols: list[list[Any]] = [[] for _ in range(5)]
    rejected: list[tuple[int, str, str]] = []
    for position, (row, problem) in enumerate(_records(reader, last)):
        if row is None:
            rejected.append((position, problem, last.last))
            continue
        if len(row) < width:
            if row:  # a blank line holds no record
                rejected.append((position, f"expected {width} fields, found {len(row)}", ",".join(row)))
            continue
        cols[0].append(position)
        for c, i in zip(cols[1:], index, strict=True):
            c.append(row[i])
        if len(cols[0]) >= BATCH_ROWS:
            yield _raw_frame(cols), rejected
            cols, rejected = [[] for _ in range(5)], []
    yield _raw_frame(cols), rejected


def _jsonl_chunks(lines: Iterable[str], start: int) -> Iterator[_Chunk]:
    cols: list[list[Any]] = [[] for _ in range(5)]
    rejected: list[tuple[int, str, str]] = []
    for position, line in enumerate(lines, start=start):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            rejected.append((position, f"not JSON: {e}", line))
            continue
        except RecursionError:
            rejected.append((position, "not JSON: nested too deeply to parse", line))
            continue
        if not isinstance(obj, dict):
            rejected.append((position, "not a JSON object", line))
            continue
        cols[0].append(position)
        for c, key in zip(cols[1:], COLUMNS, strict=True):
            value = obj.get(key)
            c.append(None if value is None else str(value))
        if len(cols[0]) >= BATCH_ROWS:
            yield _raw_frame(cols), rejected
            cols, rejected = [[] for _ in range(5)], []
    yield _raw_frame(cols), rejected


def _raw_frame(cols: list[list[Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        dict(zip(("position", *COLUMNS), cols, strict=True)),
        schema={"position": pl.Int64, **dict.fromkeys(COLUMNS, pl.String)},
    )


def usage_events(
    raw: pl.DataFrame, *, format: str, file: str, skipped: Counter[str]
) -> tuple[pl.DataFrame, list[Rejected]]:
    """Turn raw Android events into USAGE_EVENTS rows and Rejected records; count the codes not kept.

    `raw` has position (Int64), timestamp_ms, event_type, package, class (strings, or integers for the
    first two); shared by the collector CSV/JSONL layout and the Digital Wellbeing database.
    """
    if raw.is_empty():
        return empty("usage_events"), []
    text = pl.col("event_type").cast(pl.String).str.strip_chars()
    code = text.cast(pl.Int64, strict=False).fill_null(
        text.str.to_uppercase().replace_strict(NAME_TO_CODE, default=None, return_dtype=pl.Int64)
    )
    ts = pl.col("timestamp_ms").cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)
    df = raw.with_columns(
        ts=ts,
        code=code,
        kept=code.replace_strict(ANDROID_EVENT_TYPES, default=None, return_dtype=pl.String),
        android=code.replace_strict(ANDROID_CODES, default=None, return_dtype=pl.String),
        package=pl.col("package").cast(pl.String).str.strip_chars().replace("", None),
        class_name=pl.col("class").cast(pl.String).str.strip_chars().replace("", None),
    )
    reason = (
        pl.when(pl.col("ts").is_null())
        .then(pl.lit("timestamp_ms is not an integer"))
        .when((pl.col("ts") < MIN_MS) | (pl.col("ts") >= MAX_MS))
        .then(pl.lit("timestamp_ms outside 2008..2100 (seconds instead of milliseconds?)"))
        .when(pl.col("code").is_null())
        .then(pl.lit("event_type is neither an Android code nor a known name"))
        .when(pl.col("android").is_null())
        .then(pl.format("unknown Android event type {}", pl.col("code")))
        .when(pl.col("kept").is_in(list(APP_EVENTS)) & pl.col("package").is_null())
        .then(pl.lit("app event without a package"))
    )
    df = df.with_columns(reason=reason)
    bad = df.filter(pl.col("reason").is_not_null())
    rejected = [
        Rejected(
            format=format,
            file=file,
            position=p,
            reason=r,
            raw=clip_raw(",".join("" if v is None else str(v) for v in values)),
        )
        for p, r, *values in bad.select("position", "reason", *COLUMNS).iter_rows()
    ]
    good = df.filter(pl.col("reason").is_null())
    not_kept = good.filter(pl.col("kept").is_null())
    for code_, name, n in not_kept.group_by("code", "android").len().iter_rows():
        skipped[f"Android event type {code_} {name} (not kept)"] += n
    rows = good.filter(pl.col("kept").is_not_null()).select(
        at=pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC").cast(UTC_US),
        utc_offset_min=pl.lit(None, dtype=pl.Int32),
        package=pl.when(pl.col("kept").is_in(list(APP_EVENTS))).then(pl.col("package")),
        class_name=pl.col("class_name"),
        event_type=pl.col("kept"),
        format=pl.lit(format),
        file=pl.lit(file),
        position=pl.col("position"),
    )
    return rows, rejected


def _rejected(f: InputFile, position: int, reason: str, raw: str) -> Rejected:
    return Rejected(format=FORMAT, file=f.name, position=position, reason=reason, raw=clip_raw(raw))
