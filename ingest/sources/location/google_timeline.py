"""On-device Google Timeline export (2024+), Android and iOS -> VISITS, SEGMENTS and POINTS.

Android (`Timeline.json`): an object `{"semanticSegments": [...], "rawSignals": [...],
"userLocationProfile": {...}}`. Coordinates are strings `"50.0506312°, 14.3439906°"`.
iOS (`location-history.json`): a top-level array of the same kind of entries; every number is a
string, coordinates are `"geo:27.720022,-97.347951"`, the place key is `placeID`, and path points
carry `durationMinutesOffsetFromStartTime` instead of a time. The file is read whole (these exports
are tens of MB, not GB).

Each semantic segment / array entry has startTime/endTime (ISO-8601 with the local offset) and:
- `visit` -> VISITS (topCandidate placeId/placeID, semanticType, placeLocation; confidence = the
  visit's probability);
- `activity` -> SEGMENTS (start/end, distanceMeters, topCandidate.type; iOS "in passenger vehicle"
  -> IN_PASSENGER_VEHICLE);
- `timelinePath` -> POINTS, provider "timeline:path", no accuracy;
- Android `rawSignals[].position` -> POINTS (LatLng, accuracyMeters, altitudeMeters, source
  upper-cased as provider, "timeline:raw" when absent).
Times are kept in UTC with the original offset in utc_offset_min (Android's
startTimeTimezoneUtcOffsetMinutes when present, else the offset written in the time).

position = the index in semanticSegments (or in the iOS array); path points share their segment's
position; rawSignals continue the numbering after the last semantic segment. Not data, counted and
returned by `batches` (not quarantined): timelineMemory entries, rawSignals activityRecord/wifiScan
entries, entries with nothing but times, a timelinePath without points. Rejected: a
visit/activity/position whose times or coordinates are missing or impossible (out of range,
"geo:north,west"), an end before the start, one bad path point (the others load; the reason names `timelinePath[j]`), and a file that is neither
layout (one Rejected at -1).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

from ingest.files import InputFile
from ingest.records import Batch, Rejected, frame
from ingest.sources.location.common import (
    Rows,
    activity_type,
    in_range,
    instant,
    json_object,
    latlng,
    number,
    read_json,
    semantic_type,
)

FORMAT = "google_timeline"
KIND = "location"
FORMATS = ("google_timeline_android", "google_timeline_ios")


def detect(f: InputFile) -> bool:
    if not f.name.lower().endswith(".json"):
        return False
    head = f.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return b'"semanticSegments"' in head or b'"rawSignals"' in head
    return head.startswith(b"[") and b'"startTime"' in head and b'"endTime"' in head


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """VISITS, SEGMENTS, POINTS of one export; returns counts of entries that are valid but not data."""
    out = Rows(f, FORMAT)
    try:
        doc = read_json(f)
    except (OSError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        yield Batch("visits", frame("visits", []), [Rejected(format=FORMAT, file=f.name, position=-1,
                                                             reason=f"not readable JSON: {reason}", raw="")])
        return {}
    if isinstance(doc, list):  # iOS
        for i, entry in enumerate(doc):
            _entry(out, i, entry)
    elif isinstance(doc, dict) and isinstance(doc.get("semanticSegments", []), list):  # Android
        segs = doc.get("semanticSegments") or []
        for i, entry in enumerate(segs):
            _entry(out, i, entry)
        raw = doc.get("rawSignals") or []
        for k, signal in enumerate(raw if isinstance(raw, list) else []):
            _signal(out, len(segs) + k, signal)
    else:
        out.reject(-1, "neither an Android Timeline object (semanticSegments) nor an iOS Timeline array", "")
    yield Batch("visits", frame("visits", out.tables["visits"]), out.rejected)
    for table in ("segments", "points"):
        if out.tables[table]:
            yield Batch(table, frame(table, out.tables[table]))
    return dict(out.skipped)


def _entry(out: Rows, i: int, e: Any) -> None:
    if not isinstance(e, dict):
        out.reject(i, "entry is not a JSON object", e)
        return
    kinds = [k for k in ("visit", "activity", "timelinePath") if k in e]
    if not kinds:
        out.skipped["timelineMemory entry (not kept)" if "timelineMemory" in e else "entry without visit/activity/path"] += 1
        return
    try:
        start, offset = instant(e.get("startTime"), "startTime")
        end, _ = instant(e.get("endTime"), "endTime")
        if end < start:
            raise ValueError("endTime before startTime")
    except ValueError as err:
        out.reject(i, str(err), e)
        return
    tz = e.get("startTimeTimezoneUtcOffsetMinutes")
    off = int(n) if (n := number(tz)) is not None else offset
    span = {"start": start, "end": end, "utc_offset_min": off}
    try:
        if "visit" in e:
            out.add("visits", span | _visit(e["visit"]), i)
        if "activity" in e:
            out.add("segments", span | _activity(e["activity"]), i)
    except ValueError as err:
        out.reject(i, str(err), e)
        return
    path = e.get("timelinePath")
    if path is not None and not isinstance(path, list):
        out.reject(i, "timelinePath is not a list", e)
        return
    if not path and kinds == ["timelinePath"]:
        out.skipped["timelinePath without points"] += 1
        return
    for j, p in enumerate(path or []):
        try:
            out.add("points", _path_point(p, start, off), i)
        except ValueError as err:
            out.reject(i, f"timelinePath[{j}]: {err}", p)


def _coords(value: Any, what: str) -> tuple[float | None, float | None]:
    if value is None or (isinstance(value, dict) and not value):
        return None, None
    return latlng(value, what)


def _visit(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError("visit is not an object")
    top = json_object(v.get("topCandidate"))
    lat, lon = _coords(top.get("placeLocation"), "visit placeLocation")
    place = top.get("placeId", top.get("placeID"))
    conf = number(v.get("probability"))
    return {
        "lat": lat, "lon": lon, "place_id": place if isinstance(place, str) and place else None,
        "name": None, "address": None, "semantic_type": semantic_type(top.get("semanticType")),
        "confidence": conf if conf is not None and 0 <= conf <= 1 else None,
    }


def _activity(a: Any) -> dict[str, Any]:
    if not isinstance(a, dict):
        raise ValueError("activity is not an object")
    slat, slon = _coords(a.get("start"), "activity start")
    elat, elon = _coords(a.get("end"), "activity end")
    top = json_object(a.get("topCandidate"))
    dist = number(a.get("distanceMeters"))
    return {
        "start_lat": slat, "start_lon": slon, "end_lat": elat, "end_lon": elon,
        "distance_m": dist if dist is not None and dist >= 0 else None, "activity_type": activity_type(top.get("type")),
    }


def _path_point(p: Any, start: datetime, off: int | None) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise ValueError("not an object")
    lat, lon = latlng(p.get("point"), "point")
    if "time" in p:
        at, o = instant(p.get("time"), "time")
        off = o if o is not None else off
    else:
        minutes = number(p.get("durationMinutesOffsetFromStartTime"))
        if minutes is None or minutes < 0:
            raise ValueError("no time or durationMinutesOffsetFromStartTime")
        try:
            at = in_range(start + timedelta(minutes=minutes), "durationMinutesOffsetFromStartTime")
        except OverflowError:
            raise ValueError("durationMinutesOffsetFromStartTime out of range") from None
    return {"at": at, "utc_offset_min": off, "lat": lat, "lon": lon, "accuracy_m": None, "altitude_m": None,
            "provider": "timeline:path"}


def _signal(out: Rows, position: int, s: Any) -> None:
    if not isinstance(s, dict):
        out.reject(position, "rawSignals entry is not a JSON object", s)
        return
    p = s.get("position")
    if p is None:
        kind = next(iter(s), "empty")
        out.skipped[f"rawSignals {kind} (not kept)"] += 1
        return
    try:
        if not isinstance(p, dict):
            raise ValueError("position is not an object")
        lat, lon = latlng(p.get("LatLng", p.get("latLng")), "position")
        at, off = instant(p.get("timestamp"), "position timestamp")
    except ValueError as err:
        out.reject(position, str(err), s)
        return
    acc = number(p.get("accuracyMeters"))
    source = p.get("source")
    out.add("points", {
        "at": at, "utc_offset_min": off, "lat": lat, "lon": lon,
        "accuracy_m": acc if acc is not None and acc >= 0 else None, "altitude_m": number(p.get("altitudeMeters")),
        "provider": source.upper() if isinstance(source, str) and source else "timeline:raw",
    }, position)
