"""On-device Timeline export: the Android object and the iOS array, offsets kept, rejects and skips."""

from __future__ import annotations

from pathlib import Path

from ingest.detect import pick
from ingest.files import InputFile
from ingest.sources.location import google_timeline
from tests.ingest.location import ANDROID, FIXTURES, IOS, parse, reasons, utc

VISIT = ("start", "end", "utc_offset_min", "lat", "lon", "place_id", "semantic_type", "confidence", "position")
SEGMENT = ("start", "end", "utc_offset_min", "start_lat", "start_lon", "end_lat", "end_lon", "distance_m",
           "activity_type", "position")
POINT = ("at", "utc_offset_min", "lat", "lon", "accuracy_m", "altitude_m", "provider", "position")


def test_android_timeline_gives_visits_activities_path_points_and_raw_signals() -> None:
    rows, _, _ = parse(google_timeline, ANDROID)
    assert rows["visits"].select(VISIT).rows() == [
        (utc(2019, 4, 3, 6, 13, 57), utc(2019, 4, 3, 7), 120, 50.0506312, 14.3439906, "ChIJhomePrague", "HOME", 0.85, 0),
        (utc(2019, 4, 3, 15), utc(2019, 4, 3, 16), 120, 50.0755381, 14.4378005, "ChIJcafe", "WORK", 0.66, 4),
    ]
    assert rows["segments"].select(SEGMENT).rows() == [
        (utc(2019, 4, 3, 7), utc(2019, 4, 3, 7, 20), 120, 50.0506312, 14.3439906, 50.0755381, 14.4378005, 1200.0,
         "IN_PASSENGER_VEHICLE", 1),
    ]
    assert rows["points"].select(POINT).rows() == [
        (utc(2019, 4, 3, 7, 1), 120, 50.0506312, 14.3439906, None, None, "timeline:path", 2),
        (utc(2019, 4, 3, 7, 10), 120, 50.06, 14.39, None, None, "timeline:path", 2),
        (utc(2019, 4, 3, 7, 19), 120, 50.0755381, 14.4378005, None, None, "timeline:path", 2),
        (utc(2019, 4, 5, 8, 0), 120, 48.833657, 2.256223, 13.0, 90.5, "WIFI", 6),  # rawSignals follow the 6 segments
        (utc(2019, 4, 5, 8, 1), 120, 48.8337, 2.2563, 5.0, None, "GPS", 9),
    ]


def test_android_rejects_and_not_data_counts() -> None:
    _, rejected, skipped = parse(google_timeline, ANDROID)
    assert reasons(rejected) == {
        2: "timelinePath[2]: point: longitude outside -180..180",  # the other points of the path load
        3: "visit placeLocation: latitude outside -90..90",
        10: "position timestamp: not a valid date-time",
    }
    assert skipped == {"timelineMemory entry (not kept)": 1, "rawSignals activityRecord (not kept)": 1,
                       "rawSignals wifiScan (not kept)": 1}


def test_ios_array_with_geo_strings_and_numbers_as_strings() -> None:
    rows, rejected, skipped = parse(google_timeline, IOS)
    assert rows["visits"].select(VISIT).rows() == [
        (utc(2023, 8, 27, 20, 48, 56), utc(2023, 8, 27, 22, 48, 56), -300, 27.720022, -97.347951, "ChIJiosplace",
         "UNKNOWN", 0.71, 0),
    ]
    assert rows["segments"].select(SEGMENT).rows() == [
        (utc(2023, 8, 27, 22, 48, 56), utc(2023, 8, 27, 23, 20), -300, 27.720022, -97.347951, 27.75, -97.4, 6431.5,
         "IN_PASSENGER_VEHICLE", 1),
    ]
    assert rows["points"].select(POINT).rows() == [  # times are the segment start plus the minute offset
        (utc(2023, 8, 27, 22, 48, 56), -300, 27.720007, -97.348044, None, None, "timeline:path", 2),
        (utc(2023, 8, 27, 23, 0, 56), -300, 27.735, -97.37, None, None, "timeline:path", 2),
        (utc(2023, 8, 27, 23, 19, 56), -300, 27.75, -97.4, None, None, "timeline:path", 2),
    ]
    assert reasons(rejected) == {3: "visit placeLocation: not a 'lat°, lng°' or 'geo:lat,lng' coordinate"}
    assert skipped == {"timelineMemory entry (not kept)": 1}


def test_both_layouts_are_detected_and_other_json_arrays_are_not(tmp_path: Path) -> None:
    assert pick(InputFile(ANDROID)) is google_timeline and pick(InputFile(IOS)) is google_timeline
    activity = Path(__file__).parent / "fixtures" / "usage" / "My Activity" / "Android" / "MyActivity.json"
    assert activity.exists() and not google_timeline.detect(InputFile(activity))
    assert FIXTURES.is_dir()


def test_a_json_file_of_neither_layout_is_one_reject(tmp_path: Path) -> None:
    f = tmp_path / "Timeline.json"
    f.write_text('{"semanticSegments": 5}')
    rows, rejected, _ = parse(google_timeline, f)
    assert rows["visits"].height == 0 and [r.position for r in rejected] == [-1]
