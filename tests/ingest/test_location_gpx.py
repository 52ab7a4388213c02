"""GPX 1.0 and 1.1: tracks, routes, waypoints, points without time (kept, at = null), rejects."""

from __future__ import annotations

from pathlib import Path

from ingest.detect import pick
from ingest.files import InputFile
from ingest.sources.location import gpx
from tests.ingest.location import GPX_10, GPX_11, parse, reasons, utc

POINT = ("at", "utc_offset_min", "lat", "lon", "accuracy_m", "altitude_m", "provider", "position")


def test_gpx_1_1_track_with_extensions_and_a_waypoint() -> None:
    rows, rejected, _ = parse(gpx, GPX_11)
    assert rows["points"].select(POINT).rows() == [
        (None, None, 51.47, -0.17, None, 12.0, "gpx:wpt", 0),
        (utc(2024, 5, 4, 6, 30, 5), None, 51.47001, -0.17002, None, 12.4, "gpx:trk", 1),
        (utc(2024, 5, 4, 6, 30, 10, 500000), 60, 51.4702, -0.1704, None, 12.9, "gpx:trk", 2),
        (None, None, 51.4704, -0.1708, None, 13.1, "gpx:trk", 3),  # no <time>: kept, at = null
        (utc(2024, 5, 4, 6, 32), None, 51.4708, -0.1716, None, 13.8, "gpx:trk", 7),
    ]
    assert reasons(rejected) == {
        4: "latitude outside -90..90",
        5: "<time>: not a valid date-time",
        6: "<trkpt> lat/lon missing or not numbers",
    }
    assert "25:31:00" in next(r.raw for r in rejected if r.position == 5)


def test_gpx_1_0_latin1_route_waypoint_and_track() -> None:
    assert pick(InputFile(GPX_10)) is gpx
    rows, rejected, _ = parse(gpx, GPX_10)
    assert rejected == []
    assert rows["points"].select(POINT).rows() == [
        (None, None, 47.01, 8.3, None, 1200.0, "gpx:wpt", 0),
        (None, None, 47.01, 8.3, None, None, "gpx:rte", 1),
        (None, None, 47.02, 8.31, None, 1500.0, "gpx:rte", 2),
        (utc(2008, 6, 14, 9, 5), None, 47.01, 8.3, None, 1200.0, "gpx:trk", 3),
        (utc(2008, 6, 14, 10, 5), None, 47.015, 8.305, None, 1350.0, "gpx:trk", 4),
        (None, None, 47.02, 8.31, None, 1500.0, "gpx:trk", 5),
    ]


def test_a_truncated_gpx_keeps_the_points_before_the_break(tmp_path: Path) -> None:
    text = GPX_11.read_text()
    f = tmp_path / "cut.gpx"
    f.write_text(text[: text.index("<ele>13.1</ele>")])
    rows, rejected, _ = parse(gpx, f)
    assert rows["points"]["position"].to_list() == [0, 1, 2]
    (r,) = rejected
    assert r.position == 3 and r.reason.startswith("XML breaks off at line")


def test_entities_are_refused_and_non_xml_is_one_reject(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.gpx"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY a "aaaa">]><gpx version="1.1">&a;</gpx>')
    rows, rejected, _ = parse(gpx, bomb)
    assert rows["points"].height == 0 and [(r.position, r.reason) for r in rejected] == [
        (-1, "GPX with a DOCTYPE/ENTITY declaration is refused")]
    junk = tmp_path / "junk.gpx"
    junk.write_text("this is not xml")
    rows, rejected, _ = parse(gpx, junk)
    assert rows["points"].height == 0 and [r.position for r in rejected] == [-1]
    assert rejected[0].reason.startswith("not well-formed XML")


def gpx_file(tmp_path: Path, points: str, *, before: bytes = b"") -> Path:
    f = tmp_path / "track.gpx"
    f.write_bytes(before + b'<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">'
                  b"<trk><trkseg>" + points.encode() + b"</trkseg></trk></gpx>")
    return f


def test_a_gpx_time_without_offset_is_utc(tmp_path: Path) -> None:
    f = gpx_file(tmp_path, '<trkpt lat="47.1" lon="8.2"><time>2021-07-03T06:12:44</time></trkpt>'
                           '<trkpt lat="47.2" lon="8.3"><time>2021-07-03T06:12:49.5</time></trkpt>')
    rows, rejected, _ = parse(gpx, f)
    assert rejected == []
    assert rows["points"].select("at", "utc_offset_min").rows() == [
        (utc(2021, 7, 3, 6, 12, 44), None), (utc(2021, 7, 3, 6, 12, 49, 500000), None)]


def test_whitespace_and_a_bom_before_the_xml_declaration_are_accepted(tmp_path: Path) -> None:
    f = gpx_file(tmp_path, '<trkpt lat="47.1" lon="8.2"><time>2021-07-03T06:12:44Z</time></trkpt>',
                 before=b"\xef\xbb\xbf\r\n  \n")
    assert pick(InputFile(f)) is gpx
    rows, rejected, _ = parse(gpx, f)
    assert rejected == [] and rows["points"].height == 1


def test_a_placeholder_time_keeps_the_coordinates_and_quarantine_notes_the_dropped_time(tmp_path: Path) -> None:
    f = gpx_file(tmp_path, '<trkpt lat="47.1" lon="8.2"><time>1901-12-13T20:45:52Z</time></trkpt>'
                           '<trkpt lat="47.2" lon="8.3"><time>2100-01-01T00:00:00Z</time></trkpt>'
                           '<trkpt lat="47.3" lon="8.4"><time>2099-12-31T23:59:59Z</time></trkpt>')
    rows, rejected, _ = parse(gpx, f)
    assert rows["points"].select("at", "lat", "lon", "position").rows() == [
        (None, 47.1, 8.2, 0), (None, 47.2, 8.3, 1), (utc(2099, 12, 31, 23, 59, 59), 47.3, 8.4, 2)]
    assert reasons(rejected) == {
        0: "loaded without its time: <time>: outside 2000..2100 (a placeholder)",
        1: "loaded without its time: <time>: outside 2000..2100 (a placeholder)",
    }
    assert "1901-12-13T20:45:52Z" in rejected[0].raw


def test_an_unknown_encoding_in_the_xml_declaration_is_one_reject(tmp_path: Path) -> None:
    f = tmp_path / "odd.gpx"
    f.write_bytes(b'<?xml version="1.0" encoding="NO-SUCH-CODEC"?><gpx version="1.1"></gpx>')
    rows, rejected, _ = parse(gpx, f)
    assert rows["points"].height == 0
    assert [(r.position, r.reason) for r in rejected] == [(-1, "the XML declaration names an unknown encoding")]
