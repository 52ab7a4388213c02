"""Small parsers the location sources share: coordinates in the export spellings, timestamps, numbers.

Every function here either returns a value or raises ValueError with a one-line reason that names no
personal data (no coordinate, no place); the sources turn the ValueError into a Rejected.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from ingest.files import InputFile
from ingest.records import Rejected, clip_raw

MIN_AT = datetime(2000, 1, 1, tzinfo=UTC)  # no phone location history before
MAX_AT = datetime(2100, 1, 1, tzinfo=UTC)

_LATLNG = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*°?\s*,\s*(-?\d+(?:\.\d+)?)\s*°?\s*$")  # "50.05°, 14.34°"
_GEO = re.compile(r"^\s*geo:\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")  # "geo:27.72,-97.34"
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})$")


def check_coords(lat: float, lon: float) -> tuple[float, float]:
    if not (-90.0 <= lat <= 90.0):
        raise ValueError("latitude outside -90..90")
    if not (-180.0 <= lon <= 180.0):
        raise ValueError("longitude outside -180..180")
    return lat, lon


def latlng(value: Any, what: str = "coordinates") -> tuple[float, float]:
    """(lat, lon) from "50.0506312°, 14.3439906°" (Android Timeline) or "geo:27.720022,-97.347951" (iOS),
    or a {"latLng": ...} / {"LatLng": ...} wrapper around either."""
    if isinstance(value, dict):
        value = value.get("latLng", value.get("LatLng"))
    if not isinstance(value, str):
        raise ValueError(f"{what}: missing")
    m = _LATLNG.match(value) or _GEO.match(value)
    if not m:
        raise ValueError(f"{what}: not a 'lat°, lng°' or 'geo:lat,lng' coordinate")
    try:
        return check_coords(float(m.group(1)), float(m.group(2)))
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def e7(obj: dict[str, Any], lat_key: str, lon_key: str, what: str) -> tuple[float, float] | tuple[None, None]:
    """Coordinates stored as integers times 1e7 (Takeout); (None, None) when both keys are absent."""
    la, lo = obj.get(lat_key), obj.get(lon_key)
    if la is None and lo is None:
        return None, None
    if not isinstance(la, int | float) or not isinstance(lo, int | float) or isinstance(la, bool) or isinstance(lo, bool):
        raise ValueError(f"{what}: {lat_key}/{lon_key} are not numbers")
    try:
        return check_coords(round(la / 1e7, 7), round(lo / 1e7, 7))
    except OverflowError:
        raise ValueError(f"{what}: {lat_key}/{lon_key} out of range") from None
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def json_object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (absent, null, a list, a string)."""
    return value if isinstance(value, dict) else {}


def number(value: Any) -> float | None:
    """A number that may be written as a string (iOS Timeline); None when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float | str):
        return None
    try:
        out = float(value)
    except (ValueError, OverflowError):  # "north", an integer beyond a float's range
        return None
    return out if math.isfinite(out) else None


class OutOfRange(ValueError):
    """A well-formed time outside MIN_AT..MAX_AT (a placeholder such as 1901-12-13T20:45:52Z, the 32-bit minimum)."""


def instant(value: Any, what: str = "timestamp", *, naive_utc: bool = False) -> tuple[datetime, int | None]:
    """(UTC instant, original offset in minutes or None) from ISO-8601 text or Unix milliseconds
    (int or digit string, the old `...Ms` fields). "Z" and milliseconds carry no local offset: None.
    A time without an offset is refused, or read as UTC with `naive_utc` (the GPX rule)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _ms(value, what), None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: missing")
    text = value.strip()
    if text.isdigit():
        return _ms(int(text), what), None
    try:
        at = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"{what}: not a valid date-time") from None
    if at.tzinfo is None:
        if not naive_utc:
            raise ValueError(f"{what}: no UTC offset")
        return in_range(at.replace(tzinfo=UTC), what), None
    off = at.utcoffset()
    offset = None if text.endswith(("Z", "z")) or off is None else int(off.total_seconds() // 60)
    return in_range(at.astimezone(UTC), what), offset


def _ms(ms: int, what: str) -> datetime:
    try:
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    except OverflowError:
        raise ValueError(f"{what}: milliseconds out of range") from None
    return in_range(at, what)


def in_range(at: datetime, what: str) -> datetime:
    if not (MIN_AT <= at < MAX_AT):
        raise OutOfRange(f"{what}: outside 2000..2100")
    return at


def offset_minutes(text: str) -> int | None:
    m = _OFFSET.search(text)
    if not m:
        return None
    return (1 if m.group(1) == "+" else -1) * (int(m.group(2)) * 60 + int(m.group(3)))


def read_json(f: InputFile) -> Any:
    """The whole file as JSON (UTF-8, BOM allowed). Raises ValueError/OSError for the caller to quarantine."""
    data = f.read_bytes()
    try:
        return json.loads(data.decode("utf-8-sig"))
    except RecursionError:  # deeper than the parser's recursion limit: malformed input, not a crash
        raise ValueError("nested too deeply to parse") from None


def raw_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def semantic_type(value: Any) -> str:
    """HOME, WORK, UNKNOWN, or the export's own type, upper-case ("TYPE_HOME" and "Home" -> HOME)."""
    if not isinstance(value, str) or not value.strip():
        return "UNKNOWN"
    t = value.strip().upper().replace(" ", "_")
    t = t.removeprefix("TYPE_").removeprefix("INFERRED_")
    return t or "UNKNOWN"


def activity_type(value: Any) -> str | None:
    """IN_PASSENGER_VEHICLE from "IN_PASSENGER_VEHICLE" or iOS "in passenger vehicle"."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().upper().replace(" ", "_")


def utc_series(values: list[datetime | None]) -> pl.Series:
    return pl.Series(values, dtype=pl.Datetime("us", "UTC"))


class Rows:
    """One file's rows per table (visits, segments, points), its rejects and what it skipped, by reason: the
    Semantic and Timeline sources collect a file into this, then emit a batch per table."""

    def __init__(self, f: InputFile, fmt: str) -> None:
        self.f, self.format = f, fmt
        self.tables: dict[str, list[dict]] = {"visits": [], "segments": [], "points": []}
        self.rejected: list[Rejected] = []
        self.skipped: Counter[str] = Counter()

    def add(self, table: str, row: dict[str, Any], position: int) -> None:
        self.tables[table].append(row | {"format": self.format, "file": self.f.name, "position": position})

    def reject(self, position: int, reason: str, raw: Any) -> None:
        self.rejected.append(Rejected(format=self.format, file=self.f.name, position=position, reason=reason,
                                      raw=clip_raw(raw_json(raw))))
