"""Visits and movements as Google computed them: Takeout Semantic Location History (one file per month),
the on-device Android Timeline.json (last ~2 months) and the iOS location-history.json (a trip).

Each writer returns a WrittenFile-ready dict: counts of what the file holds and the positions of the
planted bad records (index in timelineObjects / semanticSegments / the top-level array).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from synth.life import Life, Move, Stay
from synth.write_records import SOURCES, Points

MONTHS = ("JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER", "OCTOBER",
          "NOVEMBER", "DECEMBER")
TRAVEL_MODE = {"WALKING": "WALK", "RUNNING": "WALK", "CYCLING": "BICYCLE"}


@dataclass(slots=True)
class Written:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    not_data: int = 0  # valid entries a source skips (activity records, wifi scans, ...)
    bad_positions: list[int] = field(default_factory=list)


def _iso_z(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_local(t: datetime, tz: str) -> str:
    return t.astimezone(ZoneInfo(tz)).isoformat(timespec="milliseconds")


def _offset_min(t: datetime, tz: str) -> int:
    return int((t.astimezone(ZoneInfo(tz)).utcoffset() or timedelta(0)).total_seconds() // 60)  # (aware: never None)


def _e7(x: float) -> int:
    return int(round(x * 1e7))


def _latlng(lat: float, lon: float) -> str:
    return f"{lat:.7f}°, {lon:.7f}°"


def _geo(lat: float, lon: float) -> str:
    return f"geo:{lat:.6f},{lon:.6f}"


def _tz(b: Stay | Move) -> str:
    return b.place.tz if isinstance(b, Stay) else b.origin.tz


def _blocks(life: Life, start: datetime, end: datetime) -> list[Stay | Move]:
    every: tuple[Stay | Move, ...] = (*life.stays, *life.moves)
    return sorted((b for b in every if start <= b.start < end), key=lambda b: b.start)


def path_points(move: Move, rng: random.Random) -> list[tuple[datetime, float, float]]:
    """Points along a move every 1-3 minutes (what Timeline keeps as its path)."""
    if move.mode == "FLYING":
        return []
    total = (move.end - move.start).total_seconds()
    steps = np.hypot(np.diff(move.path[:, 0]), np.diff(move.path[:, 1]) * math.cos(math.radians(move.path[0, 0])))
    along = np.concatenate([[0.0], np.cumsum(steps)])
    along = along / along[-1] if along[-1] > 0 else np.linspace(0, 1, len(move.path))
    out, s = [], rng.uniform(10, 60)
    while s < total:
        f = s / total
        lat = float(np.interp(f, along, move.path[:, 0])) + rng.gauss(0, 6e-5)
        lon = float(np.interp(f, along, move.path[:, 1])) + rng.gauss(0, 9e-5)
        out.append((move.start + timedelta(seconds=int(s)), round(lat, 7), round(lon, 7)))
        s += rng.uniform(60, 180)
    return out


# --- Takeout Semantic Location History ------------------------------------------------------------------


def _semantic_visit(s: Stay, rng: random.Random, tag: int) -> dict:
    p = s.place
    loc: dict = {"latitudeE7": _e7(p.lat), "longitudeE7": _e7(p.lon), "placeId": p.place_id, "address": p.address,
                 "name": p.name}
    if p.category in ("HOME", "WORK"):
        loc["semanticType"] = f"TYPE_{p.category}"
    loc |= {"sourceInfo": {"deviceTag": tag}, "locationConfidence": round(rng.uniform(60, 99), 4),
            "calibratedProbability": round(rng.uniform(50, 95), 4)}
    conf = rng.choices(["HIGH_CONFIDENCE", "MEDIUM_CONFIDENCE", "LOW_CONFIDENCE"], [0.75, 0.2, 0.05])[0]
    return {"placeVisit": {
        "location": loc,
        "duration": {"startTimestamp": _iso_z(s.start), "endTimestamp": _iso_z(s.end)},
        "placeConfidence": conf,
        "centerLatE7": _e7(p.lat + rng.gauss(0, 1e-4)), "centerLngE7": _e7(p.lon + rng.gauss(0, 1.5e-4)),
        "visitConfidence": rng.randint(60, 99),
        "editConfirmationStatus": "NOT_CONFIRMED",
        "placeVisitType": "SINGLE_PLACE",
        "placeVisitImportance": "MAIN",
    }}


def _semantic_segment(m: Move, rng: random.Random, tag: int) -> dict:
    p = rng.uniform(70, 98)
    seg: dict = {
        "startLocation": {"latitudeE7": _e7(m.origin.lat), "longitudeE7": _e7(m.origin.lon),
                          "sourceInfo": {"deviceTag": tag}},
        "endLocation": {"latitudeE7": _e7(m.dest.lat), "longitudeE7": _e7(m.dest.lon),
                        "sourceInfo": {"deviceTag": tag}},
        "duration": {"startTimestamp": _iso_z(m.start), "endTimestamp": _iso_z(m.end)},
        "distance": int(round(m.distance_m)),
        "activityType": m.mode,
        "confidence": "HIGH" if p > 80 else "MEDIUM",
        "activities": [{"activityType": m.mode, "probability": round(p, 6)},
                       {"activityType": "WALKING" if m.mode != "WALKING" else "IN_BUS", "probability": round((100 - p) * 0.7, 6)},
                       {"activityType": "STILL", "probability": round((100 - p) * 0.3, 6)}],
    }
    if m.mode != "FLYING":
        idx = np.linspace(0, len(m.path) - 1, min(len(m.path), 8)).round().astype(int)
        seg["waypointPath"] = {"waypoints": [{"latE7": _e7(m.path[i, 0]), "lngE7": _e7(m.path[i, 1])} for i in idx],
                               "source": "INFERRED", "distanceMeters": round(m.distance_m, 1)}
        if m.mode in TRAVEL_MODE:
            seg["waypointPath"]["travelMode"] = TRAVEL_MODE[m.mode]
    return {"activitySegment": seg}


def write_semantic(root: Path, life: Life, *, tag: int, plant_bad: bool) -> list[Written]:
    rng = random.Random(f"lifevault-synth:{life.persona.seed}:semantic")
    months: dict[tuple[int, int], list[Stay | Move]] = {}
    every: tuple[Stay | Move, ...] = (*life.stays, *life.moves)
    for b in sorted(every, key=lambda b: b.start):
        local = b.start.astimezone(ZoneInfo(_tz(b)))
        months.setdefault((local.year, local.month), []).append(b)
    keys = sorted(months)
    bad_month = keys[len(keys) // 2] if plant_bad and keys else None
    out = []
    for key in keys:
        objs = [_semantic_visit(b, rng, tag) if isinstance(b, Stay) else _semantic_segment(b, rng, tag)
                for b in months[key]]
        w = Written(root / "Semantic Location History" / str(key[0]) / f"{key[0]}_{MONTHS[key[1] - 1]}.json")
        w.counts = {"visits": sum(isinstance(b, Stay) for b in months[key]),
                    "segments": sum(isinstance(b, Move) for b in months[key])}
        if key == bad_month:
            at = len(objs) // 2
            first = months[key][0]
            bad = _semantic_visit(first if isinstance(first, Stay) else life.stays[0], rng, tag)
            bad["placeVisit"]["duration"] = {"startTimestamp": f"{key[0]}-02-30T10:00:00.000Z",
                                             "endTimestamp": f"{key[0]}-02-30T11:30:00.000Z"}
            objs.insert(at, bad)
            w.bad_positions = [at]
        w.path.parent.mkdir(parents=True, exist_ok=True)
        w.path.write_text(json.dumps({"timelineObjects": objs}, ensure_ascii=False, indent=2) + "\n",
                          encoding="utf-8")
        out.append(w)
    return out


# --- Android on-device Timeline.json ------------------------------------------------------------------


def _times(start: datetime, end: datetime, tz: str) -> dict:
    return {"startTime": _iso_local(start, tz), "endTime": _iso_local(end, tz),
            "startTimeTimezoneUtcOffsetMinutes": _offset_min(start, tz),
            "endTimeTimezoneUtcOffsetMinutes": _offset_min(end, tz)}


def _android_visit(s: Stay, rng: random.Random) -> dict:
    p = s.place
    semantic = p.category if p.category in ("HOME", "WORK") else "UNKNOWN"
    return _times(s.start, s.end, p.tz) | {"visit": {
        "hierarchyLevel": 0, "probability": round(rng.uniform(0.6, 0.99), 6),
        "topCandidate": {"placeId": p.place_id, "semanticType": semantic, "probability": round(rng.uniform(0.3, 0.95), 6),
                         "placeLocation": {"latLng": _latlng(p.lat, p.lon)}}}}


def _android_activity(m: Move, rng: random.Random) -> dict:
    return _times(m.start, m.end, m.origin.tz) | {"activity": {
        "start": {"latLng": _latlng(m.origin.lat, m.origin.lon)}, "end": {"latLng": _latlng(m.dest.lat, m.dest.lon)},
        "distanceMeters": round(m.distance_m, 1), "probability": round(rng.uniform(0.7, 0.99), 6),
        "topCandidate": {"type": m.mode, "probability": round(rng.uniform(0.5, 0.95), 6)}}}


def write_android_timeline(path: Path, life: Life, pts: Points, *, plant_bad: bool) -> Written:
    p = life.persona
    rng = random.Random(f"lifevault-synth:{p.seed}:timeline")
    start_utc, end_utc = p.period_utc()
    tl_start = max(start_utc, end_utc - timedelta(days=p.timeline_days))
    segments: list[tuple[datetime, int, dict]] = []
    w = Written(path, {"visits": 0, "segments": 0, "path_points": 0, "raw_signals": 0})
    windows: dict[datetime, tuple[str, list[tuple[datetime, float, float]]]] = {}
    for b in _blocks(life, tl_start, end_utc):
        if isinstance(b, Stay):
            segments.append((b.start, 0, _android_visit(b, rng)))
            w.counts["visits"] += 1
            continue
        segments.append((b.start, 1, _android_activity(b, rng)))
        w.counts["segments"] += 1
        tz = b.origin.tz
        for t, la, lo in path_points(b, rng):
            local = t.astimezone(ZoneInfo(tz))
            key = local.replace(hour=local.hour - local.hour % 2, minute=0, second=0, microsecond=0)
            windows.setdefault(key.astimezone(UTC), (tz, []))[1].append((t, la, lo))
    for wstart, (tz, points) in windows.items():
        seg = _times(wstart, wstart + timedelta(hours=2), tz)
        seg["timelinePath"] = [{"point": _latlng(la, lo), "time": _iso_local(t, tz)} for t, la, lo in points]
        segments.append((wstart, 2, seg))
        w.counts["path_points"] += len(points)
    segments.sort(key=lambda s: (s[0], s[1]))
    body = [s[2] for s in segments]
    if plant_bad and body:
        at = len(body) // 2
        bad = json.loads(json.dumps(next(s for s in body[at:] + body if "visit" in s)))
        bad["visit"]["topCandidate"]["placeLocation"]["latLng"] = "123.4567890°, 500.0000000°"
        body.insert(at, bad)
        w.bad_positions = [at]
    raw: list[dict] = []
    last = (pts.ts_us >= int((end_utc - timedelta(days=3)).timestamp() * 1e6)) & (pts.ts_us >= int(tl_start.timestamp() * 1e6))
    home_tz = p.home_tz
    for i in np.flatnonzero(last).tolist():
        t = datetime.fromtimestamp(int(pts.ts_us[i]) / 1e6, UTC)
        raw.append({"position": {"LatLng": _latlng(float(pts.lat[i]), float(pts.lon[i])),
                                 "accuracyMeters": int(pts.accuracy[i]), "altitudeMeters": float(pts.altitude[i]),
                                 "source": str(SOURCES[pts.source[i]]).lower(), "timestamp": _iso_local(t, home_tz)}})
        w.counts["raw_signals"] += 1
        if i % 12 == 0:
            raw.append({"activityRecord": {"probableActivities": [{"type": "STILL", "confidence": 0.93},
                                                                  {"type": "TILTING", "confidence": 0.04}],
                                           "timestamp": _iso_local(t, home_tz)}})
            w.not_data += 1
    home, work = life.stays[0].place, next((s.place for s in life.stays if s.place.category == "WORK"), None)
    frequent = [{"placeId": home.place_id, "placeLocation": _latlng(home.lat, home.lon), "label": "HOME"}]
    if work:
        frequent.append({"placeId": work.place_id, "placeLocation": _latlng(work.lat, work.lon), "label": "WORK"})
    doc = {"semanticSegments": body, "rawSignals": raw,
           "userLocationProfile": {"frequentPlaces": frequent,
                                   "persona": {"travelModeAffinities": [{"mode": "WALKING", "affinity": 0.41},
                                                                        {"mode": "IN_SUBWAY", "affinity": 0.36}]}}}
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return w


# --- iOS location-history.json ----------------------------------------------------------------------


def _s(x: float, digits: int = 6) -> str:
    return f"{x:.{digits}f}"


def write_ios_timeline(path: Path, life: Life, *, plant_bad: bool) -> Written:
    p = life.persona
    rng = random.Random(f"lifevault-synth:{p.seed}:ios")
    start_utc, end_utc = p.period_utc()
    lisbon = next((t for t in life.trips if "Lisbon" in t.name), None)
    if lisbon:
        lo, hi = max(start_utc, lisbon.start - timedelta(days=1)), min(end_utc, lisbon.end + timedelta(days=1))
    else:
        lo, hi = max(start_utc, end_utc - timedelta(days=3)), end_utc
    w = Written(path, {"visits": 0, "segments": 0, "path_points": 0})
    entries: list[tuple[datetime, int, dict]] = []
    for b in _blocks(life, lo, hi):
        tz = _tz(b)
        times = {"startTime": _iso_local(b.start, tz), "endTime": _iso_local(b.end, tz)}
        if isinstance(b, Stay):
            pl = b.place
            semantic = {"HOME": "Home", "WORK": "Work"}.get(pl.category, "Unknown")
            entries.append((b.start, 0, {"endTime": times["endTime"], "startTime": times["startTime"], "visit": {
                "hierarchyLevel": "0", "topCandidate": {
                    "probability": _s(rng.uniform(0.3, 0.95)), "semanticType": semantic, "placeID": pl.place_id,
                    "placeLocation": _geo(pl.lat, pl.lon)}, "probability": _s(rng.uniform(0.6, 0.99))}}))
            w.counts["visits"] += 1
            continue
        entries.append((b.start, 1, {"endTime": times["endTime"], "startTime": times["startTime"], "activity": {
            "probability": _s(rng.uniform(0.7, 0.99)), "end": _geo(b.dest.lat, b.dest.lon),
            "topCandidate": {"type": b.mode.lower().replace("_", " "), "probability": _s(rng.uniform(0.0, 0.5))},
            "distanceMeters": _s(b.distance_m), "start": _geo(b.origin.lat, b.origin.lon)}}))
        w.counts["segments"] += 1
        pts = path_points(b, rng)
        if pts:
            entries.append((b.start, 2, {"endTime": times["endTime"], "startTime": times["startTime"], "timelinePath": [
                {"point": _geo(la, lo_), "durationMinutesOffsetFromStartTime": str(int((t - b.start).total_seconds() // 60))}
                for t, la, lo_ in pts]}))
            w.counts["path_points"] += len(pts)
    entries.sort(key=lambda e: (e[0], e[1]))
    body = [e[2] for e in entries]
    if plant_bad and body:
        at = len(body) // 2
        bad = json.loads(json.dumps(next(e for e in body[at:] + body if "visit" in e)))
        bad["visit"]["topCandidate"]["placeLocation"] = "geo:north,west"
        body.insert(at, bad)
        w.bad_positions = [at]
    path.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return w
