"""The shapes every source produces: polars schemas for ok rows, and Rejected for bad ones.

A source module has one shape (see CONVENTIONS.md, rule 2):

    FORMAT: str                 # e.g. "google_records"
    KIND: str                   # "location" | "calendar" | "usage"
    def detect(f: InputFile) -> bool            # cheap: name + first few KiB (f.head())
    def batches(f: InputFile, **options) -> Iterator[Batch]

`batches` streams: each Batch holds up to a few hundred thousand ok rows for ONE table (a polars
DataFrame with exactly that table's schema, columns in schema order) plus the records it rejected.
Errors are values: a malformed record becomes a Rejected with its position and reason, it is never
raised mid-file and never dropped. A file that cannot be read at all yields a single Rejected with
position -1.

Every timestamp is tz-aware UTC (polars Datetime("us", "UTC")); the original UTC offset, when the
export carries one, is kept in minutes in `utc_offset_min`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

UTC_US = pl.Datetime("us", "UTC")
Columns = dict[str, pl.DataType | type[pl.DataType]]  # dtypes as written: instances and classes


def _schema(columns: Columns) -> pl.Schema:
    return pl.Schema(columns)


# Raw location fixes (Records.json, Timeline rawSignals/timelinePath, GPX trk/rte/wpt points).
POINTS = _schema(
    {
        "at": UTC_US,  # null only for GPX points without <time>
        "utc_offset_min": pl.Int32,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "accuracy_m": pl.Float64,
        "altitude_m": pl.Float64,
        "provider": pl.String,  # "WIFI", "GPS", "CELL", "gpx:trk", "gpx:wpt", "timeline:path", ...
        "format": pl.String,  # the source module's FORMAT
        "file": pl.String,  # file name only (not the full path)
        "position": pl.Int64,  # index of the record inside the file
    }
)

# Place visits an export already computed (Semantic placeVisit, Timeline visit).
VISITS = _schema(
    {
        "start": UTC_US,
        "end": UTC_US,
        "utc_offset_min": pl.Int32,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "place_id": pl.String,
        "name": pl.String,
        "address": pl.String,
        "semantic_type": pl.String,  # normalised: HOME, WORK, UNKNOWN, or the export's own type
        "confidence": pl.Float64,  # 0..1 when known
        "format": pl.String,
        "file": pl.String,
        "position": pl.Int64,
    }
)

# Movements an export already computed (Semantic activitySegment, Timeline activity).
SEGMENTS = _schema(
    {
        "start": UTC_US,
        "end": UTC_US,
        "utc_offset_min": pl.Int32,
        "start_lat": pl.Float64,
        "start_lon": pl.Float64,
        "end_lat": pl.Float64,
        "end_lon": pl.Float64,
        "distance_m": pl.Float64,
        "activity_type": pl.String,  # e.g. IN_VEHICLE, WALKING, IN_PASSENGER_VEHICLE
        "format": pl.String,
        "file": pl.String,
        "position": pl.Int64,
    }
)

# Calendar occurrences, already expanded within the window; key (uid, recurrence_id).
EVENTS = _schema(
    {
        "uid": pl.String,
        "recurrence_id": pl.String,  # ISO-8601 UTC of the original start for recurring instances, "" otherwise
        "start": UTC_US,
        "end": UTC_US,
        "utc_offset_min": pl.Int32,
        "tzid": pl.String,  # the zone the event was written in (null for UTC, "floating" for floating)
        "all_day": pl.Boolean,
        "summary": pl.String,
        "location": pl.String,
        "description": pl.String,
        "status": pl.String,  # CONFIRMED, TENTATIVE, CANCELLED
        "organizer": pl.String,  # "Name <email>" or email
        "attendees": pl.String,  # JSON array of {"name":..,"email":..,"partstat":..}
        "calendar": pl.String,  # X-WR-CALNAME or file stem
        "format": pl.String,
        "file": pl.String,
        "position": pl.Int64,  # index of the VEVENT in the file
    }
)

# App usage events. event_type is one of USAGE_EVENT_TYPES.
USAGE_EVENTS = _schema(
    {
        "at": UTC_US,
        "utc_offset_min": pl.Int32,
        "package": pl.String,  # Android package or iOS bundle id; null for device events
        "class_name": pl.String,
        "event_type": pl.String,
        "format": pl.String,
        "file": pl.String,
        "position": pl.Int64,
    }
)

# App usage intervals an export already has (knowledgeC /app/usage, /app/inFocus).
USAGE_INTERVALS = _schema(
    {
        "start": UTC_US,
        "end": UTC_US,
        "utc_offset_min": pl.Int32,
        "package": pl.String,
        "stream": pl.String,  # "/app/usage", "/app/inFocus"
        "format": pl.String,
        "file": pl.String,
        "position": pl.Int64,
    }
)

TABLES: dict[str, pl.Schema] = {
    "points": POINTS,
    "visits": VISITS,
    "segments": SEGMENTS,
    "events": EVENTS,
    "usage_events": USAGE_EVENTS,
    "usage_intervals": USAGE_INTERVALS,
}

# Android UsageEvents.Event codes -> names kept in usage_events.event_type.
ANDROID_EVENT_TYPES: dict[int, str] = {
    1: "RESUMED",
    2: "PAUSED",
    23: "STOPPED",
    15: "SCREEN_ON",
    16: "SCREEN_OFF",
    17: "KEYGUARD_SHOWN",
    18: "KEYGUARD_HIDDEN",
    26: "SHUTDOWN",
    27: "STARTUP",
}
USAGE_EVENT_TYPES = frozenset(ANDROID_EVENT_TYPES.values()) | {"LAUNCH"}  # LAUNCH: My Activity "Used X"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """A record a source could not accept: kept (encrypted) in quarantine, never dropped."""

    format: str
    file: str
    position: int  # index of the record in the file; -1 when the whole file failed
    reason: str  # one line, says what is wrong (no personal data beyond the raw fragment)
    raw: str  # the offending fragment, truncated to a few KiB


@dataclass(slots=True)
class Batch:
    table: str  # a key of TABLES
    rows: pl.DataFrame
    rejected: list[Rejected] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.table not in TABLES:
            raise ValueError(f"unknown table {self.table!r}")


def empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=TABLES[table])


def frame(table: str, rows: list[dict]) -> pl.DataFrame:
    """Build a frame with exactly the table's schema from row dicts (missing keys become null)."""
    schema = TABLES[table]
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else empty(table)


RAW_LIMIT = 4096


def clip_raw(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return raw if len(raw) <= RAW_LIMIT else raw[:RAW_LIMIT] + "…"
