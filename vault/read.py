"""Typed reads of the vault for the layers that only read: the API routers, federated features, the report.

The tables' owners keep their own SQL (ingest for the raw and derived tables it writes, the memory layer
for memories, vault/ for the audit log, ledger, keys and tokens); everything that only reads a table it
does not own calls a function here, which names the columns it returns:

    read.stays(vault, start=a, end=b, limit=100)      -> list[Stay]        (overlapping [start, end))
    read.trips(vault, start=a, end=b, limit=100)      -> list[Trip]        (with both ends' places)
    read.events(vault, start=a, end=b, timed=True)    -> list[Event]       (calendar occurrences)
    read.usage_totals(vault, start=a, end=b, by="app") -> list[UsageTotal] (minutes and sessions per key)
    read.session_starts(vault, until=t)               -> polars frame, session_starts_schema()
    read.usage_event_times(vault, ("SCREEN_ON",))     -> polars frame, event_times_schema()
    read.table_span / format_spans / monthly_volume / table_sizes / memory_counts / meta_value (the report)
    read.stay_rows / trip_rows / event_rows / session_rows / screen_day_rows (the memory layer's sync)

Small results are frozen dataclasses; the large ones (a year of app sessions or unlocks) are polars frames
cast to a declared schema, so a column renamed in a migration fails here, in one place, not in a caller. The
rows the memory layer renders are NamedTuples: sync unpacks them by position, and wrapping the tuple the
query returns costs little.
Time windows are half-open, [start, end), and rows overlapping them are returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from vault.store import Vault

if TYPE_CHECKING:  # polars is imported by the two readers that make frames, not by a search that imports this
    import polars as pl

RAW_TIME_COLUMNS: dict[str, str] = {  # the time column of each table the report counts by time
    "location_points": "ts", "place_visits": "start_ts", "activity_segments": "start_ts",
    "calendar_events": "start_ts", "usage_events": "ts", "usage_intervals": "start_ts",
}
TIME_COLUMNS: dict[str, str] = RAW_TIME_COLUMNS | {
    "stays": "start_ts", "trips": "start_ts", "app_sessions": "start_ts", "daily_summaries": "day",
}
UsageKey = Literal["app", "category", "day"]
_USAGE_KEY: dict[str, str] = {
    "app": "coalesce(app_name, package)",
    "category": "coalesce(category, 'Other')",
    "day": "strftime(start_ts + to_minutes(coalesce(utc_offset_min, 0)), '%Y-%m-%d')",
}


def session_starts_schema() -> dict[str, pl.DataType]:
    """The declared schema of session_starts()' frame."""
    import polars as pl

    return {"start_ts": pl.Datetime("us", "UTC"), "utc_offset_min": pl.Int32(), "category": pl.String()}


def event_times_schema() -> dict[str, pl.DataType]:
    """The declared schema of usage_event_times()' frame."""
    import polars as pl

    return {"ts": pl.Datetime("us", "UTC")}


@dataclass(frozen=True, slots=True, kw_only=True)
class Place:
    """A place as ingest stored it (a stay, or one end of a trip); redaction decides what a caller sees."""

    name: str | None
    address: str | None
    semantic_type: str | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Stay:
    row_id: int
    start: datetime
    end: datetime
    utc_offset_min: int | None
    place: Place


@dataclass(frozen=True, slots=True, kw_only=True)
class Trip:
    row_id: int
    start: datetime
    end: datetime
    utc_offset_min: int | None
    origin: Place  # its name from the trip, address and type from the stay it left (when known)
    destination: Place
    distance_m: float | None
    activity: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A calendar occurrence; `attendees` is ingest's JSON text (embeddings.memories.parse_attendees)."""

    row_id: int
    start: datetime
    end: datetime | None
    all_day: bool | None
    summary: str | None
    description: str | None
    location: str | None
    status: str | None
    organizer: str | None
    attendees: str | None
    calendar: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotal:
    key: str
    minutes: float  # of the sessions' time inside the window
    sessions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """Rows of a table (or of one format in it) and the first and last time they cover."""

    rows: int
    first: datetime | date | None
    last: datetime | date | None
    format: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MonthVolume:
    format: str
    month: str  # YYYY-MM
    rows: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryCount:
    kind: str
    sensitivity: str
    memories: int
    first: datetime | None
    last: datetime | None


def _window(start: datetime | None, end: datetime | None, *, start_col: str = "start_ts",
            end_col: str = "end_ts") -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if end is not None:
        where.append(f"{start_col} < ?")
        params.append(end)
    if start is not None:
        where.append(f"{end_col} > ?")
        params.append(start)
    return where, params


def _where(conds: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(conds)}" if conds else ""


def _limit(limit: int | None, params: list[Any]) -> str:
    if limit is None:
        return ""
    params.append(int(limit))
    return " LIMIT ?"


def stays(vault: Vault, *, start: datetime | None = None, end: datetime | None = None,
          limit: int | None = None) -> list[Stay]:
    """Stays overlapping [start, end) (either open), by start time."""
    where, params = _window(start, end)
    sql = ("SELECT row_id, start_ts, end_ts, utc_offset_min, name, address, semantic_type, lat, lon FROM stays"
           + _where(where) + " ORDER BY start_ts" + _limit(limit, params))
    return [Stay(row_id=r[0], start=r[1], end=r[2], utc_offset_min=r[3],
                 place=Place(name=r[4], address=r[5], semantic_type=r[6], lat=r[7], lon=r[8]))
            for r in vault.query(sql, params)]


def trips(vault: Vault, *, start: datetime | None = None, end: datetime | None = None,
          limit: int | None = None) -> list[Trip]:
    """Trips overlapping [start, end), by start time; each end's address and type from the stay it joins."""
    where, params = _window(start, end, start_col="t.start_ts", end_col="t.end_ts")
    sql = ("SELECT t.row_id, t.start_ts, t.end_ts, t.utc_offset_min, t.from_name, f.address, f.semantic_type, "
           "t.start_lat, t.start_lon, t.to_name, o.address, o.semantic_type, t.end_lat, t.end_lon, t.distance_m, "
           "t.activity_type FROM trips t LEFT JOIN stays f ON f.row_id = t.from_stay "
           "LEFT JOIN stays o ON o.row_id = t.to_stay" + _where(where) + " ORDER BY t.start_ts"
           + _limit(limit, params))
    return [Trip(row_id=r[0], start=r[1], end=r[2], utc_offset_min=r[3],
                 origin=Place(name=r[4], address=r[5], semantic_type=r[6], lat=r[7], lon=r[8]),
                 destination=Place(name=r[9], address=r[10], semantic_type=r[11], lat=r[12], lon=r[13]),
                 distance_m=r[14], activity=r[15])
            for r in vault.query(sql, params)]


def events(vault: Vault, *, start: datetime | None = None, end: datetime | None = None, timed: bool = False,
           limit: int | None = None) -> list[Event]:
    """Calendar occurrences overlapping [start, end) (an event without an end is an instant), by start time;
    `timed`: only those that take time (not all-day, not cancelled)."""
    where: list[str] = []
    params: list[Any] = []
    if end is not None:
        where.append("start_ts < ?")
        params.append(end)
    if start is not None:  # an instant (no end) at `start` counts
        where.append("coalesce(end_ts, start_ts) >= ?")
        params.append(start)
    if timed:
        where.append("NOT coalesce(all_day, false) AND upper(coalesce(status, '')) <> 'CANCELLED'")
    sql = ("SELECT row_id, start_ts, end_ts, all_day, summary, description, location, status, organizer, "
           "attendees, calendar FROM calendar_events" + _where(where) + " ORDER BY start_ts" + _limit(limit, params))
    return [Event(row_id=r[0], start=r[1], end=r[2], all_day=r[3], summary=r[4], description=r[5], location=r[6],
                  status=r[7], organizer=r[8], attendees=r[9], calendar=r[10])
            for r in vault.query(sql, params)]


def event_starts(vault: Vault, *, timed: bool = True) -> list[datetime]:
    """Start times of every calendar occurrence (`timed`: not all-day, not cancelled), in order."""
    cond = " WHERE NOT coalesce(all_day, false) AND upper(coalesce(status, '')) <> 'CANCELLED'" if timed else ""
    return [r[0] for r in vault.query(f"SELECT start_ts FROM calendar_events{cond} ORDER BY start_ts")]


def usage_totals(vault: Vault, *, start: datetime, end: datetime, by: UsageKey, limit: int) -> list[UsageTotal]:
    """Screen time in [start, end) from app_sessions, per app, category or local day (the session's own
    offset): minutes inside the window and sessions overlapping it. Days in order, else most minutes first."""
    order = "key" if by == "day" else "2 DESC, key"
    rows = vault.query(
        f"SELECT {_USAGE_KEY[by]} AS key, "
        "sum(epoch(least(end_ts, ?::TIMESTAMPTZ)) - epoch(greatest(start_ts, ?::TIMESTAMPTZ))) / 60, count(*) "
        f"FROM app_sessions WHERE start_ts < ? AND end_ts > ? GROUP BY key ORDER BY {order} LIMIT ?",
        [end, start, end, start, int(limit)])
    return [UsageTotal(key=str(k), minutes=float(m or 0), sessions=int(n)) for k, m, n in rows]


def _cast(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if df.columns != list(schema):
        raise TypeError(f"vault.read: expected columns {list(schema)}, got {df.columns}")
    return df.cast(schema)  # type: ignore[arg-type]  # polars' stubs take a narrower mapping type


def session_starts(vault: Vault, *, until: datetime | None = None) -> pl.DataFrame:
    """Every app session's start (before `until`), its offset and category (nulls as stored), by start time:
    a frame with session_starts_schema()."""
    cond, params = (" WHERE start_ts < ?", [until]) if until is not None else ("", [])
    return _cast(vault.frame(
        f"SELECT start_ts, utc_offset_min, category FROM app_sessions{cond} ORDER BY start_ts", params),
        session_starts_schema())


def usage_event_times(vault: Vault, event_types: Sequence[str]) -> pl.DataFrame:
    """Times of the usage events of these types, in order: a frame with event_times_schema()."""
    return _cast(vault.frame("SELECT ts FROM usage_events WHERE event_type IN (SELECT unnest(?::VARCHAR[])) "
                             "ORDER BY ts", [list(event_types)]), event_times_schema())


# ---- counts for the report (no content: rows, time ranges, sizes) ------------------------------------------
def _time_column(table: str) -> str:
    if table not in TIME_COLUMNS:
        raise ValueError(f"vault.read: no time column known for table {table!r}")
    return TIME_COLUMNS[table]


def table_sizes(vault: Vault) -> dict[str, int]:
    """DuckDB's estimate of the rows each vault table holds on disk."""
    return {str(r[0]): int(r[1]) for r in vault.query(
        "SELECT table_name, estimated_size FROM duckdb_tables() WHERE database_name = 'vault'")}


def table_span(vault: Vault, table: str) -> Span:
    col = _time_column(table)
    n, lo, hi = vault.query(f"SELECT count(*), min({col}), max({col}) FROM {table}")[0]
    return Span(rows=int(n), first=lo, last=hi)


def format_spans(vault: Vault, table: str) -> list[Span]:
    """Rows and time range per export format of a raw table, by format."""
    col = _time_column(table)
    return [Span(format=fmt, rows=int(n), first=lo, last=hi) for fmt, n, lo, hi in vault.query(
        f"SELECT format, count(*), min({col}), max({col}) FROM {table} GROUP BY format ORDER BY format")]


def monthly_volume(vault: Vault, table: str) -> list[MonthVolume]:
    """Rows per (month, format) of a raw table, by month then format."""
    col = _time_column(table)
    return [MonthVolume(format=fmt, month=month, rows=int(n)) for fmt, month, n in vault.query(
        f"SELECT format, strftime(date_trunc('month', {col}), '%Y-%m'), count(*) FROM {table} "
        f"WHERE {col} IS NOT NULL GROUP BY ALL ORDER BY 2, 1")]


def memory_counts(vault: Vault) -> list[MemoryCount]:
    """Memories per (kind, sensitivity) and the time they cover: counts only."""
    return [MemoryCount(kind=k, sensitivity=s, memories=int(n), first=lo, last=hi) for k, s, n, lo, hi in vault.query(
        "SELECT kind, sensitivity, count(*), min(start_ts), max(end_ts) FROM memories GROUP BY ALL ORDER BY 1, 2")]


def meta_value(vault: Vault, key: str) -> str | None:
    """A vault_meta setting (e.g. "retention"), or None."""
    v = vault.scalar("SELECT value FROM vault_meta WHERE key = ?", [key])
    return None if v is None else str(v)


# ---- source rows behind a memory (forget's cascade finds what goes with it) ----------------------------------
def _row_ids(vault: Vault, sql: str, params: list[Any]) -> set[int]:
    return {int(r[0]) for r in vault.query(sql, params)}


def stays_span(vault: Vault, row_ids: Sequence[int]) -> tuple[datetime | None, datetime | None]:
    """The first start and last end of these stays (None, None when none of them is left)."""
    lo, hi = vault.query("SELECT min(start_ts), max(end_ts) FROM stays WHERE row_id IN (SELECT unnest(?::BIGINT[]))",
                         [list(row_ids)])[0]
    return lo, hi


def place_visit_ids(vault: Vault, *, start: datetime, end: datetime) -> set[int]:
    """Export visits overlapping (start, end)."""
    return _row_ids(vault, "SELECT row_id FROM place_visits WHERE start_ts < ? AND end_ts > ?", [end, start])


def location_point_ids(vault: Vault, *, start: datetime, end: datetime, inclusive: bool) -> set[int]:
    """Raw fixes in [start, end] (`inclusive`) or strictly inside (start, end)."""
    cond = "ts BETWEEN ? AND ?" if inclusive else "ts > ? AND ts < ?"
    return _row_ids(vault, f"SELECT row_id FROM location_points WHERE {cond}", [start, end])


def trip_ids_touching(vault: Vault, stay_ids: Sequence[int]) -> set[int]:
    """Trips that start or end at one of these stays."""
    ids = list(stay_ids)
    return _row_ids(vault, "SELECT row_id FROM trips WHERE from_stay IN (SELECT unnest(?::BIGINT[])) "
                           "OR to_stay IN (SELECT unnest(?::BIGINT[]))", [ids, ids])


def activity_segment_ids(vault: Vault, *, start: datetime, end: datetime) -> set[int]:
    """Export activity segments overlapping (start, end)."""
    return _row_ids(vault, "SELECT row_id FROM activity_segments WHERE start_ts < ? AND end_ts > ?", [end, start])


def usage_event_ids(vault: Vault, *, package: str, start: datetime | None, end: datetime | None) -> set[int]:
    """One app's usage events in [start, end]."""
    return _row_ids(vault, "SELECT row_id FROM usage_events WHERE package = ? AND ts BETWEEN ? AND ?",
                    [package, start, end])


def usage_interval_ids(vault: Vault, *, package: str, start: datetime | None, end: datetime | None) -> set[int]:
    """One app's usage intervals overlapping (start, end)."""
    return _row_ids(vault, "SELECT row_id FROM usage_intervals WHERE package = ? AND start_ts < ? AND end_ts > ?",
                    [package, end, start])


# ---- rows the memory layer renders into memories (embeddings/memories.py, at every sync) ----------------------
# Each function keeps the order the memories were always built in (the order they are inserted, on which
# search tie-breaks depend): those with no ORDER BY return DuckDB's scan order of that exact query.
class StayRow(NamedTuple):
    row_id: int
    start: datetime
    end: datetime
    utc_offset_min: int | None
    lat: float | None
    lon: float | None
    name: str | None
    address: str | None
    semantic_type: str | None
    origin: str  # "derived" (the stay detector) or the export format it came from


class TripRow(NamedTuple):
    row_id: int
    start: datetime
    end: datetime
    utc_offset_min: int | None
    from_name: str | None
    to_name: str | None
    from_type: str | None  # the semantic type of the stay it left (when known)
    to_type: str | None
    activity: str | None
    distance_m: float | None
    start_lat: float | None
    start_lon: float | None
    end_lat: float | None
    end_lon: float | None


class EventRow(NamedTuple):
    row_id: int
    start: datetime
    end: datetime | None
    utc_offset_min: int | None
    all_day: bool | None
    summary: str | None
    location: str | None
    description: str | None
    status: str | None
    organizer: str | None
    attendees: str | None  # ingest's JSON text (embeddings.memories.parse_attendees)
    calendar: str | None


class SessionRow(NamedTuple):
    row_id: int
    start: datetime
    end: datetime
    utc_offset_min: int | None
    package: str
    app_name: str | None
    category: str | None


class ScreenDayRow(NamedTuple):
    day: date
    utc_offset_min: int | None
    screen_minutes: float
    screen_by_app: str | None  # JSON {app: minutes}
    screen_by_category: str | None  # JSON {category: minutes}


def stay_rows(vault: Vault) -> list[StayRow]:
    """Every stay, by start time then row id."""
    return list(map(StayRow._make, vault.query(
        "SELECT row_id, start_ts, end_ts, utc_offset_min, lat, lon, name, address, semantic_type, origin FROM stays "
        "ORDER BY start_ts, row_id")))


def trip_rows(vault: Vault) -> list[TripRow]:
    """Every trip with the semantic types of the stays it joins, in DuckDB's scan order (no ORDER BY)."""
    return list(map(TripRow._make, vault.query(
        "SELECT t.row_id, t.start_ts, t.end_ts, t.utc_offset_min, t.from_name, t.to_name, a.semantic_type, "
        "b.semantic_type, t.activity_type, t.distance_m, t.start_lat, t.start_lon, t.end_lat, t.end_lon "
        "FROM trips t LEFT JOIN stays a ON a.row_id = t.from_stay LEFT JOIN stays b ON b.row_id = t.to_stay")))


def event_rows(vault: Vault) -> list[EventRow]:
    """Every calendar occurrence, in DuckDB's scan order (no ORDER BY)."""
    return list(map(EventRow._make, vault.query(
        "SELECT row_id, start_ts, end_ts, utc_offset_min, all_day, summary, location, description, status, "
        "organizer, attendees, calendar FROM calendar_events")))


def session_rows(vault: Vault) -> list[SessionRow]:
    """App sessions that took time, launches aside, by package then start time."""
    return list(map(SessionRow._make, vault.query(
        "SELECT row_id, start_ts, end_ts, utc_offset_min, package, app_name, category FROM app_sessions "
        "WHERE origin <> 'launch' AND end_ts > start_ts ORDER BY package, start_ts")))


def screen_day_rows(vault: Vault) -> list[ScreenDayRow]:
    """Days with screen time, in DuckDB's scan order (no ORDER BY)."""
    return list(map(ScreenDayRow._make, vault.query(
        "SELECT day, utc_offset_min, screen_minutes, screen_by_app, screen_by_category FROM daily_summaries "
        "WHERE screen_minutes > 0")))
