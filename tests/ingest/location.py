"""Shared helpers for the location source tests: the golden fixtures and a way to run one source."""

from __future__ import annotations

from pathlib import Path

from ingest.records import Rejected
from tests.ingest.batches import parse, utc

__all__ = ["parse", "utc", "reasons"]

FIXTURES = Path(__file__).parent / "fixtures" / "location"
TAKEOUT_2023 = FIXTURES / "takeout-2023" / "Location History"
TAKEOUT_2014 = FIXTURES / "takeout-2014" / "Standortverlauf"  # a German Takeout: localised folder names
RECORDS_NEW = TAKEOUT_2023 / "Records.json"  # "timestamp" (ISO), Google's pretty-printed layout
RECORDS_OLD = TAKEOUT_2014 / "Records.json"  # "timestampMs"
SEMANTIC_ISO = TAKEOUT_2023 / "Semantic Location History" / "2023" / "2023_JANUARY.json"
SEMANTIC_MS_BOM = TAKEOUT_2014 / "Semantischer Standortverlauf" / "2013" / "2013_MÄRZ.json"
ANDROID = FIXTURES / "device" / "Timeline.json"
IOS = FIXTURES / "device" / "location-history.json"
GPX_11 = FIXTURES / "gpx" / "morning-run-1.1.gpx"
GPX_10 = FIXTURES / "gpx" / "hike-1.0.gpx"


def reasons(rejected: list[Rejected]) -> dict[int, str]:
    out: dict[int, str] = {}
    for r in rejected:
        out[r.position] = r.reason if r.position not in out else out[r.position] + " | " + r.reason
    return out
