"""Takeout Semantic Location History: ISO and millisecond timestamps, BOM, localised folders, rejects."""

from __future__ import annotations

import json
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
    assert "points" not in rows  # waypoints are a drawn path, not fixes: counted, not loaded
    assert skipped == {"waypointPath waypoints (a drawn path without times)": 3}


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


def test_raw_path_points_and_child_visits_are_loaded_and_nothing_disappears(tmp_path: Path) -> None:
    span = {"duration": {"startTimestamp": "2022-05-01T08:00:00Z", "endTimestamp": "2022-05-01T09:00:00Z"}}
    doc = {"timelineObjects": [
        {"activitySegment": span | {
            "startLocation": {"latitudeE7": 520000000, "longitudeE7": 130000000}, "activityType": "CYCLING",
            "simplifiedRawPath": {"points": [
                {"latE7": 520000000, "lngE7": 130000000, "accuracyMeters": 8, "timestamp": "2022-05-01T08:00:05Z"},
                {"latE7": 521000000, "lngE7": 131000000, "timestampMs": "1651392600000"},
                {"latE7": 521000000, "lngE7": 131000000},
            ]},
            "parkingEvent": {"location": {"latitudeE7": 1, "longitudeE7": 2}, "timestamp": "2022-05-01T09:00:00Z"}}},
        {"placeVisit": span | {
            "location": {"latitudeE7": 521000000, "longitudeE7": 131000000, "placeId": "ChIJmall"},
            "otherCandidateLocations": [{"placeId": "ChIJother"}],
            "simplifiedRawPath": {"points": [{"latE7": 521000100, "lngE7": 131000100, "timestamp": "2022-05-01T08:30:00Z"}]},
            "childVisits": [
                span | {"location": {"latitudeE7": 521000200, "longitudeE7": 131000200, "placeId": "ChIJshop"}},
                {"location": {"placeId": "ChIJbroken"}},
            ]}},
    ]}
    f = tmp_path / "2022_MAY.json"
    f.write_text(json.dumps(doc))
    rows, rejected, skipped = parse(google_semantic, f)
    assert rows["points"].select("at", "lat", "lon", "accuracy_m", "provider", "position").rows() == [
        (utc(2022, 5, 1, 8, 0, 5), 52.0, 13.0, 8.0, "semantic:rawpath", 0),
        (utc(2022, 5, 1, 8, 10), 52.1, 13.1, None, "semantic:rawpath", 0),
        (utc(2022, 5, 1, 8, 30), 52.10001, 13.10001, None, "semantic:rawpath", 1),
    ]
    assert rows["visits"].select("place_id", "position").rows() == [("ChIJmall", 1), ("ChIJshop", 1)]
    assert reasons(rejected) == {0: "simplifiedRawPath.points[2]: timestamp: missing",
                                 1: "childVisits[1]: placeVisit: no duration"}
    assert skipped == {"parkingEvent (not kept)": 1, "otherCandidateLocations (places the visit was not)": 1}
