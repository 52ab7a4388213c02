"""Google Takeout Semantic Location History (one file per month) -> VISITS and SEGMENTS.

Layout: `Semantic Location History/YYYY/YYYY_MONTH.json` (folder names are localised, so detection
reads the content): `{"timelineObjects": [{"placeVisit": {...}} | {"activitySegment": {...}}, ...]}`.
The file may start with a UTF-8 BOM. Monthly files are small (well under 10 MB): each is read whole.

- placeVisit -> one VISITS row: location.latitudeE7/longitudeE7 (centerLatE7/centerLngE7 when the
  location has none), placeId, name, address, semanticType ("TYPE_HOME" -> HOME, absent -> UNKNOWN),
  confidence = visitConfidence / 100 when present.
  Its `childVisits` (places inside the place, e.g. a shop in a mall) are VISITS rows too.
- activitySegment -> one SEGMENTS row: startLocation/endLocation (E7, may be absent), distance (or
  waypointPath.distanceMeters), activityType.
- `simplifiedRawPath.points` of a segment or a visit are timed fixes: POINTS rows (latE7/lngE7,
  timestamp or timestampMs, accuracyMeters), provider "semantic:rawpath".
- duration.startTimestamp/endTimestamp (ISO-8601) or the older startTimestampMs/endTimestampMs.
  utc_offset_min is null: these files carry UTC only.
- Not data, counted by `batches` (its return value, {reason: count}), never dropped silently:
  waypointPath waypoints (a drawn path without times), otherCandidateLocations (places the visit was
  not), parkingEvent entries.

position = the index in timelineObjects (child visits and raw path points share their object's).
Rejected: an object that is neither (or not a JSON object), a missing or impossible timestamp
(2025-02-30), an end before the start, coordinates that are not numbers or out of range, one bad child
visit or raw path point (the reason names `childVisits[j]` / `simplifiedRawPath.points[j]`; the rest of
the object loads); a file that is not JSON or has no timelineObjects array: one Rejected at -1.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ingest.files import InputFile
from ingest.records import Batch, Rejected, clip_raw, frame
from ingest.sources.location.common import (
    Rows,
    e7,
    instant,
    json_object,
    number,
    raw_json,
    read_json,
    semantic_type,
)

FORMAT = "google_semantic"
KIND = "location"


def detect(f: InputFile) -> bool:
    if not f.name.lower().endswith(".json"):
        return False
    head = f.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and b'"timelineObjects"' in head


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """VISITS, SEGMENTS and POINTS of one monthly file; returns the counts of what is valid but not data."""
    try:
        doc = read_json(f)
    except (OSError, ValueError) as e:
        yield Batch("visits", frame("visits", []), [_reject(f, -1, f"not readable JSON: {_first_line(e)}", "")])
        return {}
    objs = doc.get("timelineObjects") if isinstance(doc, dict) else None
    if not isinstance(objs, list):
        yield Batch("visits", frame("visits", []), [_reject(f, -1, "no timelineObjects array", raw_json(doc)[:512])])
        return {}
    out = Rows(f, FORMAT)
    for position, obj in enumerate(objs):
        try:
            if isinstance(obj, dict) and isinstance(obj.get("placeVisit"), dict):
                v = obj["placeVisit"]
                out.add("visits", visit(v), position)
                _children(out, v, position)
            elif isinstance(obj, dict) and isinstance(obj.get("activitySegment"), dict):
                s = obj["activitySegment"]
                out.add("segments", segment(s), position)
                _not_data(out, s)
            else:
                raise ValueError("neither a placeVisit nor an activitySegment")
        except ValueError as e:
            out.reject(position, str(e), obj)
            continue
        _raw_path(out, json_object(obj.get("placeVisit") or obj.get("activitySegment")), position)
    yield Batch("visits", frame("visits", out.tables["visits"]), out.rejected)
    for table in ("segments", "points"):
        if out.tables[table]:
            yield Batch(table, frame(table, out.tables[table]))
    return dict(out.skipped)


def _children(out: Rows, v: dict[str, Any], position: int) -> None:
    children = v.get("childVisits")
    if children is not None and not isinstance(children, list):
        out.reject(position, "childVisits is not a list", children)
        return
    for j, child in enumerate(children or []):
        try:
            if not isinstance(child, dict):
                raise ValueError("not an object")
            out.add("visits", visit(child), position)
        except ValueError as e:
            out.reject(position, f"childVisits[{j}]: {e}", child)
    _not_data(out, v)


def _not_data(out: Rows, obj: dict[str, Any]) -> None:
    path = obj.get("waypointPath")
    if isinstance(path, dict) and isinstance(path.get("waypoints"), list) and path["waypoints"]:
        out.skipped["waypointPath waypoints (a drawn path without times)"] += len(path["waypoints"])
    others = obj.get("otherCandidateLocations")
    if isinstance(others, list) and others:
        out.skipped["otherCandidateLocations (places the visit was not)"] += len(others)
    if obj.get("parkingEvent") is not None:
        out.skipped["parkingEvent (not kept)"] += 1


def _raw_path(out: Rows, obj: dict[str, Any], position: int) -> None:
    raw = obj.get("simplifiedRawPath")
    if raw is None:
        return
    points = raw.get("points") if isinstance(raw, dict) else None
    if not isinstance(points, list):
        out.reject(position, "simplifiedRawPath has no points list", raw)
        return
    for j, p in enumerate(points):
        try:
            out.add("points", raw_point(p), position)
        except ValueError as e:
            out.reject(position, f"simplifiedRawPath.points[{j}]: {e}", p)


def raw_point(p: Any) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise ValueError("not an object")
    at, _ = instant(p.get("timestamp", p.get("timestampMs")), "timestamp")
    lat, lon = e7(p, "latE7", "lngE7", "point")
    if lat is None:
        raise ValueError("point: latE7/lngE7 missing")
    acc = number(p.get("accuracyMeters"))
    return {"at": at, "utc_offset_min": None, "lat": lat, "lon": lon,
            "accuracy_m": acc if acc is not None and acc >= 0 else None, "altitude_m": None,
            "provider": "semantic:rawpath"}


def _span(obj: dict[str, Any], what: str) -> tuple[Any, Any]:
    d = obj.get("duration")
    if not isinstance(d, dict):
        raise ValueError(f"{what}: no duration")
    start, _ = instant(d.get("startTimestamp", d.get("startTimestampMs")), f"{what} start")
    end, _ = instant(d.get("endTimestamp", d.get("endTimestampMs")), f"{what} end")
    if end < start:
        raise ValueError(f"{what}: ends before it starts")
    return start, end


def visit(v: dict[str, Any]) -> dict[str, Any]:
    start, end = _span(v, "placeVisit")
    loc = json_object(v.get("location"))
    lat, lon = e7(loc, "latitudeE7", "longitudeE7", "placeVisit location")
    if lat is None:
        lat, lon = e7(v, "centerLatE7", "centerLngE7", "placeVisit center")
    conf = number(v.get("visitConfidence"))
    return {
        "start": start, "end": end, "utc_offset_min": None, "lat": lat, "lon": lon,
        "place_id": _text(loc.get("placeId")), "name": _text(loc.get("name")), "address": _text(loc.get("address")),
        "semantic_type": semantic_type(loc.get("semanticType")),
        "confidence": conf / 100 if conf is not None and 0 <= conf <= 100 else None,
    }


def segment(s: dict[str, Any]) -> dict[str, Any]:
    start, end = _span(s, "activitySegment")
    sl = json_object(s.get("startLocation"))
    el = json_object(s.get("endLocation"))
    slat, slon = e7(sl, "latitudeE7", "longitudeE7", "activitySegment startLocation")
    elat, elon = e7(el, "latitudeE7", "longitudeE7", "activitySegment endLocation")
    path = json_object(s.get("waypointPath"))
    distance = number(s.get("distance"))
    if distance is None:
        distance = number(path.get("distanceMeters"))
    return {
        "start": start, "end": end, "utc_offset_min": None, "start_lat": slat, "start_lon": slon,
        "end_lat": elat, "end_lon": elon, "distance_m": distance if distance is None or distance >= 0 else None,
        "activity_type": _text(s.get("activityType")),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _reject(f: InputFile, position: int, reason: str, raw: str) -> Rejected:
    return Rejected(format=FORMAT, file=f.name, position=position, reason=reason, raw=clip_raw(raw))

