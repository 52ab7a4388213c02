"""Derived tables, recomputed after each load from the raw tables: stays, trips, app sessions, daily summaries.

What is recomputed follows the marks in `derive_pending` (vault/load.py): a batch that changes a raw table
marks it in its own transaction, and the derived tables are committed together with clearing the marks
they cover. Derived state is never left behind its raw tables by a crash: the next run finds the marks.

Stays (visits). Export visits (Semantic placeVisit, Timeline visit) are reused as they are; where two
exports describe the same visit (overlap > 50% of the shorter), the first kept wins. Raw points outside
every export visit go through a stay-point detector (Li et al. 2008 / Zheng):
  - a stay is a run of consecutive fixes that all lie within STAY_RADIUS_M (200 m) of its first fix and
    span at least STAY_MIN_MINUTES (10 min);
  - fixes with accuracy worse than MAX_ACCURACY_M (250 m) are ignored;
  - the stay's position is the mean of its fixes; it is named after the nearest place any export
    visit named, when one lies within NAME_RADIUS_M (150 m), else it stays unnamed ("UNKNOWN").
Trips join consecutive stays more than TRIP_MIN_M (250 m) apart; the activity type comes from the
export activity segment overlapping the trip most.
App sessions: per device stream, a RESUMED opens a session for its package (closing any other open
one: a foreground switch), PAUSED/STOPPED close it, SCREEN_OFF, KEYGUARD_SHOWN and SHUTDOWN close all;
no session runs longer than MAX_SESSION_HOURS (4 h). knowledgeC intervals are sessions already;
My Activity launches become zero-length sessions (origin 'launch': counted, never as screen time).
Daily summaries are per local day (the offset the data was recorded in).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from ingest.apps import describe
from ingest.records import Columns
from vault import crashpoint
from vault import load as vload
from vault.store import Vault

STAY_RADIUS_M = 200.0
STAY_MIN_MINUTES = 10.0
MAX_ACCURACY_M = 250.0
NAME_RADIUS_M = 150.0
TRIP_MIN_M = 250.0
MAX_SESSION_HOURS = 4.0
EARTH_M = 6_371_008.8


def haversine_m(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


STAY_WINDOW = 4096  # fixes converted to Python floats at a time (1M fixes as lists would be ~130 MB)


def stay_points(ts_us: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges [i, j) of stays in time-sorted fixes (see module docstring for the thresholds)."""
    out: list[tuple[int, int]] = []
    n, i = len(ts_us), 0
    min_span = STAY_MIN_MINUTES * 60e6
    r2 = STAY_RADIUS_M * STAY_RADIUS_M
    # equirectangular distance is exact enough within 200 m and keeps the scan cheap; computed a window
    # at a time (the same floats as over the whole arrays, without three more arrays of n)
    # plain lists: scalar access is several times faster than numpy indexing in this scan; a window of
    # them at a time, [lo, lo + len(y)), reloaded from i when a scan runs off its end
    lo, size = 0, STAY_WINDOW
    ts: list[int]
    y: list[float]
    x: list[float]
    cos0: list[float]
    ts, y, x, cos0 = [], [], [], []
    end = 0  # lo + len(y)
    while i < n:
        if i >= end:
            lo, size = i, STAY_WINDOW
            end = min(n, lo + size)
            ts, y, x, cos0 = _window(ts_us, lat, lon, lo, end)
        k = i - lo
        yi, xi, ci = y[k], x[k], cos0[k]
        j = k + 1
        while True:
            m = end - lo
            while j < m:
                dy, dx = y[j] - yi, (x[j] - xi) * ci
                if dx * dx + dy * dy > r2:
                    break
                j += 1
            if j < m or end >= n:
                break
            # the run reaches the end of the window: reload it from i, twice as long as the run so far (not
            # twice the last window: windows then doubled with every run that reached an end, up to all n)
            lo, j, size = i, j - k, max(STAY_WINDOW, 2 * (j - k))
            k = 0
            end = min(n, lo + size)
            ts, y, x, cos0 = _window(ts_us, lat, lon, lo, end)
        if ts[j - 1] - ts[k] >= min_span:
            out.append((i, lo + j))
            i = lo + j
        else:
            i += 1
    return out


def _window(
    ts_us: np.ndarray, lat: np.ndarray, lon: np.ndarray, lo: int, end: int
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Fixes [lo, end) as Python lists: times, y and x in metres (equirectangular), cos(latitude)."""
    la = lat[lo:end]
    return ts_us[lo:end].tolist(), (la * 111_195.0).tolist(), (lon[lo:end] * 111_195.0).tolist(), np.cos(np.radians(la)).tolist()


def _dedupe_visits(v: pl.DataFrame) -> pl.DataFrame:
    v = v.sort("start_ts", maintain_order=True)
    keep: list[int] = []
    kept_end: list[tuple[datetime, datetime, int]] = []
    starts, ends = v["start_ts"].to_list(), v["end_ts"].to_list()
    for idx, (s, e) in enumerate(zip(starts, ends, strict=True)):
        dup = False
        for ks, ke, _ in kept_end[-3:]:
            overlap = (min(e, ke) - max(s, ks)).total_seconds()
            shorter = min((e - s).total_seconds(), (ke - ks).total_seconds())
            if shorter <= 0 or overlap > 0.5 * shorter:
                dup = True
                break
        if not dup:
            keep.append(idx)
            kept_end.append((s, e, idx))
    return v[keep]


def _stays(vault: Vault) -> pl.DataFrame:
    visits = vault.frame(
        "SELECT start_ts, end_ts, utc_offset_min, lat, lon, place_id, name, address, semantic_type "
        "FROM place_visits WHERE end_ts >= start_ts ORDER BY start_ts, end_ts, format, file, position"
    )
    visits = _dedupe_visits(visits).with_columns(origin=pl.lit("export"), n_points=pl.lit(None, pl.Int64))
    pts = vault.frame(
        "SELECT ts, lat, lon, utc_offset_min FROM location_points WHERE ts IS NOT NULL "
        "AND (accuracy_m IS NULL OR accuracy_m <= ?) ORDER BY ts, format, file, position, lat, lon",
        [MAX_ACCURACY_M],
    )
    if visits.height and pts.height:  # raw fixes inside an export visit are already explained by it
        iv = visits.select("start_ts", "end_ts").sort("start_ts")
        pts = pts.join_asof(iv, left_on="ts", right_on="start_ts", strategy="backward")
        pts = pts.filter(pl.col("end_ts").is_null() | (pl.col("ts") > pl.col("end_ts"))).select("ts", "lat", "lon", "utc_offset_min")
    ts_type = pts.schema["ts"] if pts.height else pl.Datetime("us", "UTC")
    derived = pl.DataFrame(schema={"start_ts": ts_type, "end_ts": ts_type, "utc_offset_min": pl.Int32,
                                   "lat": pl.Float64, "lon": pl.Float64, "n_points": pl.Int64})
    if pts.height:
        lat, lon = pts["lat"].to_numpy(), pts["lon"].to_numpy()
        spans = np.array(stay_points(pts["ts"].dt.epoch("us").to_numpy(), lat, lon), dtype=np.int64).reshape(-1, 2)
        if len(spans):  # centroids from prefix sums: one pass, no per-stay Python work
            first, end = spans[:, 0], spans[:, 1]
            n = end - first
            clat = np.concatenate(([0.0], np.cumsum(lat, dtype=np.float64)))
            clon = np.concatenate(([0.0], np.cumsum(lon, dtype=np.float64)))
            derived = pl.DataFrame({
                "start_ts": pts["ts"].gather(first), "end_ts": pts["ts"].gather(end - 1),
                "utc_offset_min": pts["utc_offset_min"].gather(first).cast(pl.Int32),
                "lat": (clat[end] - clat[first]) / n, "lon": (clon[end] - clon[first]) / n, "n_points": n,
            })
    derived = _name_stays(derived, visits)
    cols = ["start_ts", "end_ts", "utc_offset_min", "lat", "lon", "place_id", "name", "address", "semantic_type",
            "origin", "n_points"]
    both = pl.concat([
        visits.select(cols).with_columns(pl.col("utc_offset_min").cast(pl.Int32)),
        derived.select(cols).with_columns(pl.col("utc_offset_min").cast(pl.Int32)),
    ], how="vertical_relaxed")
    return both.sort("start_ts", "end_ts", "origin", maintain_order=True)


def _name_stays(derived: pl.DataFrame, visits: pl.DataFrame) -> pl.DataFrame:
    places = visits.filter(pl.col("lat").is_not_null()).unique(subset=["place_id", "name"], keep="first",
                                                                  maintain_order=True)
    n = derived.height
    names: list[str | None] = [None] * n
    addr: list[str | None] = [None] * n
    pid: list[str | None] = [None] * n
    stype: list[str] = ["UNKNOWN"] * n
    if n and places.height:
        plat, plon = places["lat"].to_numpy(), places["lon"].to_numpy()
        for k, (la, lo) in enumerate(zip(derived["lat"].to_numpy(), derived["lon"].to_numpy(), strict=True)):
            d = haversine_m(np.full_like(plat, la), np.full_like(plon, lo), plat, plon)
            best = int(np.argmin(d))
            if d[best] <= NAME_RADIUS_M:
                names[k], addr[k], pid[k] = places["name"][best], places["address"][best], places["place_id"][best]
                stype[k] = places["semantic_type"][best] or "UNKNOWN"
    return derived.with_columns(
        place_id=pl.Series(pid, dtype=pl.String), name=pl.Series(names, dtype=pl.String),
        address=pl.Series(addr, dtype=pl.String), semantic_type=pl.Series(stype, dtype=pl.String),
        origin=pl.lit("derived"),
    )


def _trips(vault: Vault, stays: pl.DataFrame) -> pl.DataFrame:
    schema: Columns = {"start_ts": pl.Datetime("us", "UTC"), "end_ts": pl.Datetime("us", "UTC"), "utc_offset_min": pl.Int32,
              "from_name": pl.String, "to_name": pl.String, "start_lat": pl.Float64, "start_lon": pl.Float64,
              "end_lat": pl.Float64, "end_lon": pl.Float64, "distance_m": pl.Float64, "activity_type": pl.String,
              "from_idx": pl.Int64, "to_idx": pl.Int64}
    if stays.height < 2:
        return pl.DataFrame(schema=schema)
    a, b = stays[:-1], stays[1:]
    dist = haversine_m(a["lat"].to_numpy(), a["lon"].to_numpy(), b["lat"].to_numpy(), b["lon"].to_numpy())
    trips = pl.DataFrame({
        "start_ts": a["end_ts"], "end_ts": b["start_ts"], "utc_offset_min": a["utc_offset_min"],
        "from_name": a["name"], "to_name": b["name"], "start_lat": a["lat"], "start_lon": a["lon"],
        "end_lat": b["lat"], "end_lon": b["lon"], "distance_m": dist,
        "from_idx": np.arange(a.height), "to_idx": np.arange(1, stays.height),
    }).filter((pl.col("distance_m") > TRIP_MIN_M) & (pl.col("end_ts") > pl.col("start_ts")))
    segs = vault.frame("SELECT start_ts, activity_type FROM activity_segments ORDER BY start_ts, activity_type")
    if segs.height and trips.height:
        trips = trips.sort("start_ts", maintain_order=True).join_asof(
            segs.rename({"start_ts": "seg_start"}), left_on="start_ts", right_on="seg_start",
            strategy="nearest", tolerance=timedelta(hours=1),
        ).drop("seg_start")
    else:
        trips = trips.with_columns(activity_type=pl.lit(None, pl.String))
    return trips.select(list(schema))


def sessions_from_events(ev: pl.DataFrame) -> list[tuple[datetime, datetime, int | None, str]]:
    """(start, end, utc_offset_min, package) from time-sorted usage events of one stream."""
    out: list[tuple[datetime, datetime, int | None, str]] = []
    cap = timedelta(hours=MAX_SESSION_HOURS)
    open_: dict[str, tuple[datetime, int | None]] = {}

    def close(pkg: str, at: datetime) -> None:
        start, off = open_.pop(pkg)
        end = min(at, start + cap)
        if end > start:
            out.append((start, end, off, pkg))

    for at, off, pkg, et in ev.select("ts", "utc_offset_min", "package", "event_type").iter_rows():
        if et == "RESUMED" and pkg:
            for other in [p for p in open_ if p != pkg]:
                close(other, at)
            if pkg not in open_:
                open_[pkg] = (at, off)
        elif et in ("PAUSED", "STOPPED") and pkg in open_:
            close(pkg, at)
        elif et in ("SCREEN_OFF", "KEYGUARD_SHOWN", "SHUTDOWN", "STARTUP"):
            for p in list(open_):
                close(p, at)
    return out


def _sessions(vault: Vault) -> pl.DataFrame:
    rows: list[tuple[datetime, datetime, int | None, str, str]] = []
    ev = vault.frame(
        "SELECT ts, utc_offset_min, package, event_type, format FROM usage_events "
        "WHERE event_type <> 'LAUNCH' ORDER BY format, ts, file, position"
    )
    for (fmt,), part in ev.partition_by("format", as_dict=True).items() if ev.height else []:
        rows += [(s, e, o, p, str(fmt)) for s, e, o, p in sessions_from_events(part)]
    for s, e, o, p, stream in vault.query(
        "SELECT start_ts, end_ts, utc_offset_min, package, stream FROM usage_intervals WHERE end_ts > start_ts "
        "ORDER BY start_ts, end_ts, package, stream, file, position"
    ):
        rows.append((s, e, o, p, f"knowledgec{stream}"))
    for t, o, p in vault.query(
        "SELECT ts, utc_offset_min, package FROM usage_events WHERE event_type = 'LAUNCH' ORDER BY ts, package, file, position"
    ):
        rows.append((t, t, o, p, "launch"))
    df = pl.DataFrame(rows, schema={"start_ts": pl.Datetime("us", "UTC"), "end_ts": pl.Datetime("us", "UTC"),
                                    "utc_offset_min": pl.Int32, "package": pl.String, "origin": pl.String}, orient="row")
    # the same session reported by two exports (UsageStats CSV and the Wellbeing db) counts once
    df = df.with_columns(_minute=pl.col("start_ts").dt.truncate("1m")).unique(
        subset=["package", "_minute"], keep="first", maintain_order=True).drop("_minute")
    described = [describe(p) for p in df["package"].to_list()]
    return df.with_columns(
        app_name=pl.Series([d[0] for d in described], dtype=pl.String),
        category=pl.Series([d[1] for d in described], dtype=pl.String),
    ).sort("start_ts", maintain_order=True)


def _local_day(col: str) -> pl.Expr:
    return (pl.col(col) + pl.duration(minutes=pl.col("utc_offset_min").fill_null(0))).dt.date().alias("day")


def _daily(vault: Vault, stays: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    minutes = ((pl.col("end_ts") - pl.col("start_ts")).dt.total_seconds() / 60.0)
    place = stays.with_columns(_local_day("start_ts"), m=minutes, place=pl.col("name").fill_null(pl.col("semantic_type")))
    place = place.group_by("day", "place").agg(pl.col("m").sort().sum()).group_by("day").agg(
        pl.struct("place", "m").alias("places"))
    ev = vault.frame(
        "SELECT start_ts, end_ts, utc_offset_min FROM calendar_events WHERE NOT coalesce(all_day, false) "
        "AND coalesce(status, '') <> 'CANCELLED' AND end_ts IS NOT NULL"
    )
    meet = ev.with_columns(_local_day("start_ts"), m=minutes).group_by("day").agg(
        meetings=pl.len().cast(pl.Int64), meeting_minutes=pl.col("m").sort().sum())
    timed = sessions.filter(pl.col("origin") != "launch").with_columns(_local_day("start_ts"), m=minutes)
    by_app = timed.group_by("day", "app_name").agg(pl.col("m").sort().sum()).group_by("day").agg(
        pl.struct("app_name", "m").alias("by_app"), screen_minutes=pl.col("m").sort().sum())
    by_cat = timed.group_by("day", "category").agg(pl.col("m").sort().sum()).group_by("day").agg(
        pl.struct("category", "m").alias("by_cat"))
    days = pl.concat([f.select("day") for f in (place, meet, by_app)]).unique()
    out = days.join(place, on="day", how="left").join(meet, on="day", how="left").join(
        by_app, on="day", how="left").join(by_cat, on="day", how="left")

    def to_json(structs: list[dict[str, Any]] | None, key: str) -> str:
        return json.dumps({str(s[key]): round(float(s["m"]), 1) for s in (structs or [])}, sort_keys=True)

    return pl.DataFrame({
        "day": out["day"],
        "places": [to_json(x, "place") for x in out["places"].to_list()],
        "meetings": out["meetings"].fill_null(0),
        "meeting_minutes": out["meeting_minutes"].fill_null(0.0),
        "screen_minutes": out["screen_minutes"].fill_null(0.0),
        "screen_by_app": [to_json(x, "app_name") for x in out["by_app"].to_list()],
        "screen_by_category": [to_json(x, "category") for x in out["by_cat"].to_list()],
    }).sort("day")


def _text(col: str, dtype: pl.DataType) -> pl.Expr:
    """A column spelled as Python's f"{value}" spells it (derived-row ids were keyed on texts built one row at
    a time that way, and must not change): a UTC datetime as "2025-01-01 09:00:00+00:00" (".ffffff" only when
    the microseconds are not zero), None as "None"."""
    c = pl.col(col)
    if isinstance(dtype, pl.Datetime):
        c, tz = (c.dt.convert_time_zone("UTC"), "+00:00") if dtype.time_zone else (c, "")
        c = pl.when(c.dt.microsecond() != 0).then(c.dt.to_string(f"%Y-%m-%d %H:%M:%S%.6f{tz}")).otherwise(
            c.dt.to_string(f"%Y-%m-%d %H:%M:%S{tz}"))
    else:
        c = c.cast(pl.String)
    return c.fill_null("None")


def _ids(vault: Vault, df: pl.DataFrame, kind: str, *cols: str) -> pl.Series:
    """Keyed ids of the texts f"{kind}\x1f{a}\x1f{b}..." over the columns `cols` of every row, built as one
    polars expression (not formatted row by row in Python)."""
    keys = df.select(pl.concat_str([pl.lit(kind), *(_text(c, df.schema[c]) for c in cols)], separator="\x1f"))
    return vault.row_id_column(keys.to_series()).cast(pl.Int64)


LOCATION_TABLES = frozenset({"location_points", "place_visits", "activity_segments"})
USAGE_TABLES = frozenset({"usage_events", "usage_intervals"})


def _replace(vault: Vault, table: str, frame: pl.DataFrame) -> None:
    vault.execute(f"DELETE FROM {table}")
    vault.insert_frame(table, frame, on_conflict_nothing=False)


def run(vault: Vault, *, everything: bool = False) -> dict[str, int]:
    """Recompute the derived tables that depend on raw tables marked in `derive_pending` (everything: all of
    them), in one transaction that also clears the marks it read.

    Returns the row counts of every derived table."""
    marks = vload.derive_pending(vault)
    changed = set(marks)
    writes: list[tuple[str, pl.DataFrame]] = []
    if everything or changed & LOCATION_TABLES:
        stays = _stays(vault)
        stays = stays.with_columns(row_id=_ids(vault, stays, "stay", "start_ts", "end_ts", "origin")).unique(
            "row_id", keep="first", maintain_order=True)
        trips = _trips(vault, stays)
        ids = stays["row_id"]
        trips = trips.with_columns(
            from_stay=ids.gather(trips["from_idx"]), to_stay=ids.gather(trips["to_idx"]), origin=pl.lit("derived"),
        ).drop("from_idx", "to_idx")
        trips = trips.with_columns(row_id=_ids(vault, trips, "trip", "from_stay", "to_stay"))
        writes += [("stays", stays), ("trips", trips)]
    else:
        stays = vault.frame("SELECT * FROM stays")
    if everything or changed & USAGE_TABLES:
        sessions = _sessions(vault)
        sessions = sessions.with_columns(row_id=_ids(vault, sessions, "session", "package", "start_ts", "origin")).unique(
            "row_id", keep="first", maintain_order=True)
        writes.append(("app_sessions", sessions))
    else:
        sessions = vault.frame("SELECT * FROM app_sessions")
    if everything or changed:
        writes.append(("daily_summaries", _daily(vault, stays, sessions)))
    if writes or marks:
        with vault.transaction():
            for table, frame in writes:
                _replace(vault, table, frame)
            crashpoint.reached("derive.writing")
            vload.clear_derive_pending(vault, marks)
    return {t: int(vault.scalar(f"SELECT count(*) FROM {t}")) for t in ("stays", "trips", "app_sessions", "daily_summaries")}
