"""Google Takeout Semantic Location History (one file per month) -> VISITS and SEGMENTS.

Layout: `Semantic Location History/YYYY/YYYY_MONTH.json` (folder names are localised, so detection
reads the content): `{"timelineObjects": [{"placeVisit": {...}} | {"activitySegment": {...}}, ...]}`.
The file may start with a UTF-8 BOM. Monthly files are small (well under 10 MB): each is read whole.

- placeVisit -> one VISITS row: location.latitudeE7/longitudeE7 (centerLatE7/centerLngE7 when the
  location has none), placeId, name, address, semanticType ("TYPE_HOME" -> HOME, absent -> UNKNOWN),
  confidence = visitConfidence / 100 when present.
- activitySegment -> one SEGMENTS row: startLocation/endLocation (E7, may be absent), distance (or
  waypointPath.distanceMeters), activityType. Waypoints are a drawn path, not fixes: they are not points.
- duration.startTimestamp/endTimestamp (ISO-8601) or the older startTimestampMs/endTimestampMs.
  utc_offset_min is null: these files carry UTC only.

position = the index in timelineObjects. Rejected: an object that is neither (or not a JSON object),
a missing or impossible timestamp (2025-02-30), an end before the start, coordinates that are not
numbers or out of range; a file that is not JSON or has no timelineObjects array: one Rejected at -1.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ingest.files import InputFile
from ingest.records import Batch, Rejected, clip_raw, frame
from ingest.sources.location.common import e7, instant, number, raw_json, read_json, semantic_type

FORMAT = "google_semantic"
KIND = "location"


def detect(f: InputFile) -> bool:
    if not f.name.lower().endswith(".json"):
        return False
    head = f.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and b'"timelineObjects"' in head


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """VISITS then SEGMENTS of one monthly file; returns {} (nothing valid is skipped)."""
    try:
        doc = read_json(f)
    except (OSError, ValueError) as e:
        yield Batch("visits", frame("visits", []), [_reject(f, -1, f"not readable JSON: {_first_line(e)}", "")])
        return {}
    objs = doc.get("timelineObjects") if isinstance(doc, dict) else None
    if not isinstance(objs, list):
        yield Batch("visits", frame("visits", []), [_reject(f, -1, "no timelineObjects array", raw_json(doc)[:512])])
        return {}
    visits: list[dict] = []
    segments: list[dict] = []
    rejected: list[Rejected] = []
    for position, obj in enumerate(objs):
        try:
            if isinstance(obj, dict) and isinstance(obj.get("placeVisit"), dict):
                visits.append(visit(obj["placeVisit"]) | {"format": FORMAT, "file": f.name, "position": position})
            elif isinstance(obj, dict) and isinstance(obj.get("activitySegment"), dict):
                segments.append(segment(obj["activitySegment"]) | {"format": FORMAT, "file": f.name, "position": position})
            else:
                raise ValueError("neither a placeVisit nor an activitySegment")
        except ValueError as e:
            rejected.append(_reject(f, position, str(e), raw_json(obj)))
    yield Batch("visits", frame("visits", visits), rejected)
    if segments:
        yield Batch("segments", frame("segments", segments))
    return {}


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
    loc = v.get("location") if isinstance(v.get("location"), dict) else {}
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
    sl = s.get("startLocation") if isinstance(s.get("startLocation"), dict) else {}
    el = s.get("endLocation") if isinstance(s.get("endLocation"), dict) else {}
    slat, slon = e7(sl, "latitudeE7", "longitudeE7", "activitySegment startLocation")
    elat, elon = e7(el, "latitudeE7", "longitudeE7", "activitySegment endLocation")
    path = s.get("waypointPath") if isinstance(s.get("waypointPath"), dict) else {}
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

