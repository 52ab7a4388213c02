"""GPX 1.0 and 1.1 (tracks, routes, waypoints) -> POINTS, streamed with iterparse.

Every <trkpt>, <rtept> and <wpt> is a record; position = its 0-based index among all three in
document order. provider is "gpx:trk", "gpx:rte" or "gpx:wpt"; altitude_m from <ele>; accuracy_m is
null (GPX has only dilution of precision, not metres). Extensions (Garmin TrackPointExtension hr/cad,
...) are not kept. Namespaces are ignored, so 1.0, 1.1 and namespace-less files read the same.

Points without <time> -- the rule: they are KEPT, with at = null, whatever the element. Waypoints and
planned routes have no time by nature, and a track point without a time is still a place the person
recorded; nothing is invented (no interpolation). Such rows are keyed by (file, position) instead of
(time, lat, lon), so re-ingesting the file adds nothing, and the derived tables (stays, trips, daily
summaries) ignore them because they read only timed fixes.

Times: a <time> without an offset is UTC (the GPX 1.0/1.1 schema says so; gpxpy, Garmin and
Outdooractive write them). A well-formed time outside 2000..2100 is a placeholder (1901-12-13T20:45:52Z
is the 32-bit minimum some devices write): the point keeps its coordinates with no time, like a point
without <time>, and a Rejected at its position notes the dropped time. utc_offset_min is null unless
the time carries an explicit non-Z offset.

Rejected: a point whose lat/lon attribute is missing, not a number or out of range, a <time> that is
present but not a valid ISO-8601 date-time, an <ele> that is not a number (the point is rejected: a
broken element says the record is corrupt), and XML that breaks off (truncated file): the points
before the break load, one Rejected at the next position says where it broke. Whitespace and a BOM
before the XML declaration are skipped. A file with a DOCTYPE/ENTITY declaration is refused whole
(GPX needs none; entity expansion is an attack surface).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Generator, Iterator
from typing import Any, cast

from ingest.files import InputFile
from ingest.records import Batch, Rejected, clip_raw, frame
from ingest.sources.location.common import OutOfRange, check_coords, instant

FORMAT = "gpx"
KIND = "location"

BATCH_ROWS = 100_000
CHUNK_BYTES = 1 << 16
_LEADING = b"\xef\xbb\xbf \t\r\n"  # a BOM and whitespace before the XML declaration
_PROVIDERS = {"trkpt": "gpx:trk", "rtept": "gpx:rte", "wpt": "gpx:wpt"}
_CONTAINERS = frozenset({"trkseg", "trk", "rte"})


def detect(f: InputFile) -> bool:
    if f.name.lower().endswith(".gpx"):
        return True
    head = f.head(2048).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") and b"<gpx" in head


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def batches(f: InputFile) -> Generator[Batch, None, dict[str, int]]:
    """POINTS of one GPX file, BATCH_ROWS at a time; returns {} (nothing valid is skipped)."""
    try:
        head = f.head(8192)
    except OSError as e:
        yield Batch("points", frame("points", []), [_reject(f, -1, f"cannot read file: {e}", "")])
        return {}
    if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper():
        yield Batch("points", frame("points", []), [_reject(f, -1, "GPX with a DOCTYPE/ENTITY declaration is refused", "")])
        return {}
    rows: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    position = 0
    saw_gpx = False
    with f.open() as stream:
        try:
            for event, el in _events(stream):
                name = _local(el.tag)
                if event == "start":
                    saw_gpx = saw_gpx or name == "gpx"
                elif name in _PROVIDERS:
                    try:
                        row, dropped = point(el, name)
                        rows.append(row | {"format": FORMAT, "file": f.name, "position": position})
                        if dropped:
                            rejected.append(_reject(f, position, dropped, ET.tostring(el, encoding="unicode")))
                    except ValueError as e:
                        rejected.append(_reject(f, position, str(e), ET.tostring(el, encoding="unicode")))
                    position += 1
                    el.clear()
                    if len(rows) >= BATCH_ROWS:
                        yield Batch("points", frame("points", rows), rejected)
                        rows, rejected = [], []
                elif name in _CONTAINERS:
                    el.clear()
        except ET.ParseError as e:
            where = f"line {e.position[0]}" if getattr(e, "position", None) else "an unknown place"
            if saw_gpx:
                reason = f"XML breaks off at {where} (truncated or malformed file); the points before it are kept"
                rejected.append(_reject(f, position, reason, ""))
            else:
                rejected.append(_reject(f, -1, f"not well-formed XML ({where})", head[:512].decode("utf-8", "replace")))
                saw_gpx = True
        except LookupError:  # the XML declaration names an encoding Python does not know
            rejected.append(_reject(f, -1, "the XML declaration names an unknown encoding",
                                    head[:512].decode("utf-8", "replace")))
            saw_gpx = True
    if not saw_gpx:
        rejected.append(_reject(f, -1, "not a GPX file: no <gpx> root element", head[:512].decode("utf-8", "replace")))
    yield Batch("points", frame("points", rows), rejected)
    return {}


def _events(stream: Any) -> Iterator[tuple[str, ET.Element]]:
    """iterparse's events, with a BOM and whitespace before the XML declaration skipped (expat refuses them)."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    # only the "start" and "end" events asked for: (name, element) pairs
    events = cast("Callable[[], Iterator[tuple[str, ET.Element]]]", parser.read_events)
    leading = True
    while chunk := stream.read(CHUNK_BYTES):
        if leading:
            chunk = chunk.lstrip(_LEADING)
            leading = not chunk
        parser.feed(chunk)
        yield from events()
    parser.close()
    yield from events()


def point(el: ET.Element, name: str) -> tuple[dict[str, Any], str | None]:
    """The row of one point, and why its time was dropped (a placeholder time) or None."""
    try:
        lat, lon = float(el.get("lat", "")), float(el.get("lon", ""))
    except ValueError:
        raise ValueError(f"<{name}> lat/lon missing or not numbers") from None
    lat, lon = check_coords(lat, lon)
    at = offset = ele = dropped = None
    for child in el:
        tag = _local(child.tag)
        text = (child.text or "").strip()
        if tag == "time" and text:
            try:
                at, offset = instant(text, "<time>", naive_utc=True)
            except OutOfRange as e:
                dropped = f"loaded without its time: {e} (a placeholder)"
        elif tag == "ele" and text:
            try:
                ele = float(text)
            except ValueError:
                raise ValueError("<ele> is not a number") from None
    return {"at": at, "utc_offset_min": offset, "lat": lat, "lon": lon, "accuracy_m": None, "altitude_m": ele,
            "provider": _PROVIDERS[name]}, dropped


def _reject(f: InputFile, position: int, reason: str, raw: str) -> Rejected:
    return Rejected(format=FORMAT, file=f.name, position=position, reason=reason, raw=clip_raw(raw))
