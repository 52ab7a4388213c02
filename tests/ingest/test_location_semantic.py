"""Takeout Semantic Location History: ISO and millisecond timestamps, BOM, localised folders, rejects."""

from __future__ import annotations

from pathlib import Path

from ingest.detect import pick
from ingest.files import InputFile
from ingest.sources.location import google_semantic
from tests.ingest.location import SEMANTIC_ISO, SEMANTIC_MS_BOM, parse, reasons, utc

VISIT = ("start", "end", "utc_offset_min", "lat", "lon", "place_id", "name", "address", "semantic_type", "confidence",
         "position")
SEGMENT = ("start", "end", "start_lat", "start_lon", "end_lat", "end_lon", "distance_m", "activity_type", "position")


def test_iso_month_file_gives_the_golden_visits_and_segments() -> None:
    rows, _, skipped = parse(google_semantic, SEMANTIC_ISO)
    assert rows["visits"].select(VISIT).rows() == [
        (utc(2023, 1, 5, 18, 10), utc(2023, 1, 6, 7, 45, 30, 500000), None, 53.3690589, 83.6951347, "ChIJhome0001",
         "Home", "1 Example Street\nOmsk", "HOME", 0.91, 0),
        (utc(2023, 1, 6, 8, 5), utc(2023, 1, 6, 17, 30), None, 53.385, 83.72, "ChIJwork0001", "Meridian Labs",
         "Office Park 5", "WORK", None, 2),
    ]
    assert rows["segments"].select(SEGMENT).rows() == [
        (utc(2023, 1, 6, 7, 45, 30, 500000), utc(2023, 1, 6, 8, 5), 53.3690589, 83.6951347, 53.385, 83.72, 3853.0,
         "IN_VEHICLE", 1),
    ]
    assert "points" not in rows and skipped == {}  # waypoints are a drawn path, not fixes


def test_bad_timeline_objects_are_rejected_with_reasons() -> None:
    _, rejected, _ = parse(google_semantic, SEMANTIC_ISO)
    assert reasons(rejected) == {
        3: "placeVisit start: not a valid date-time",
        4: "activitySegment: ends before it starts",
        5: "placeVisit location: latitude outside -90..90",
        6: "neither a placeVisit nor an activitySegment",
    }
    assert '"2023-02-30T10:00:00.000Z"' in next(r.raw for r in rejected if r.position == 3)


def test_millisecond_timestamps_bom_and_a_localised_folder_are_read() -> None:
    assert SEMANTIC_MS_BOM.read_bytes().startswith(b"\xef\xbb\xbf")
    assert pick(InputFile(SEMANTIC_MS_BOM)) is google_semantic
    rows, rejected, _ = parse(google_semantic, SEMANTIC_MS_BOM)
    assert rejected == []
    assert rows["segments"].select(SEGMENT).rows() == [
        (utc(2013, 3, 1, 5, 17, 39, 849000), utc(2013, 3, 1, 5, 33, 20), 53.3690589, 83.6951347, 53.37, 83.696, 1200.0,
         "WALKING", 0),
    ]
    assert rows["visits"].select(VISIT).rows() == [
        (utc(2013, 3, 1, 5, 33, 20), utc(2013, 3, 1, 6, 40), None, 53.37, 83.696, "ChIJcafe0001", "Café Größe",
         "Café Straße 3", "UNKNOWN", 0.64, 1),
        (utc(2013, 3, 1, 6, 40), utc(2013, 3, 1, 7, 40), None, 53.37001, 83.69601, "ChIJnocoords", None, None,
         "UNKNOWN", None, 2),  # no coordinates on the location: the visit's centre is used
    ]


def test_a_file_that_is_not_json_is_one_reject(tmp_path: Path) -> None:
    f = tmp_path / "2023_FEBRUARY.json"
    f.write_text('{"timelineObjects": [{"placeVisit": ')
    rows, rejected, _ = parse(google_semantic, f)
    assert rows["visits"].height == 0
    assert [r.position for r in rejected] == [-1] and rejected[0].reason.startswith("not readable JSON")
