"""The synthetic persona (synth/): real formats, deterministic per seed, counts and truth that hold."""

from __future__ import annotations

import csv
import importlib
import json
import sqlite3
import xml.etree.ElementTree as ET
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest

from ingest.files import InputFile
from ingest.pipeline import run
from ingest.records import TABLES, Rejected
from synth import Manifest, WrittenFile, generate
from synth.__main__ import main
from vault.store import Vault

GPX_NS = "{http://www.topografix.com/GPX/1/1}"
SOURCE_MODULES = {
    "google_records": "ingest.sources.location.google_records",
    "google_semantic": "ingest.sources.location.google_semantic",
    "google_timeline": "ingest.sources.location.google_timeline",
    "gpx": "ingest.sources.location.gpx",
    "ics": "ingest.sources.calendar.ics",
    "android_usage_events": "ingest.sources.usage.android_events",
    "android_digital_wellbeing": "ingest.sources.usage.wellbeing_db",
    "takeout_my_activity": "ingest.sources.usage.takeout_activity",
    "apple_knowledgec": "ingest.sources.usage.knowledgec",
}


@pytest.fixture(scope="module")
def persona(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """30 days ending 2025-10-31: a Lisbon weekend, a park run, DST ending on 26 October."""
    return generate(tmp_path_factory.mktemp("persona"), seed=7, days=30)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return generate(tmp_path_factory.mktemp("clean"), seed=7, days=30, plant_bad=False)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one(m: Manifest, fmt: str, name: str | None = None) -> WrittenFile:
    files = [f for f in m.by_format(fmt) if name is None or f.path.name == name]
    assert files, f"no {fmt} file {name or ''}"
    return files[0]


def sqlite_rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    generate(tmp_path / "a", seed=11, days=20)
    generate(tmp_path / "b", seed=11, days=20)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) >= 9
    assert [k for k in a if a[k] != b[k]] == []


def test_a_different_seed_lives_a_different_life(tmp_path: Path) -> None:
    m1 = generate(tmp_path / "a", seed=1, days=20)
    m2 = generate(tmp_path / "b", seed=2, days=20)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert all(a[k] != b[k] for k in a.keys() & b.keys())
    assert m1.truth.visits != m2.truth.visits


def test_regenerating_into_the_same_folder_leaves_no_stale_month_files(tmp_path: Path) -> None:
    generate(tmp_path, days=70)
    m = generate(tmp_path, days=20)
    written = {f.path for f in m.outputs}
    assert {p for p in tmp_path.rglob("*.json") if "Semantic" in str(p)} <= written
    assert set(tmp_path.rglob("*.gpx")) <= written


def test_every_json_export_loads_and_has_its_real_shape(persona: Manifest) -> None:
    records = json.loads(one(persona, "google_records").path.read_text())
    assert set(records) == {"locations"} and {"latitudeE7", "longitudeE7", "accuracy", "source"} <= set(records["locations"][0])
    for f in persona.by_format("google_semantic"):
        assert "Semantic Location History" in f.path.parts and f.path.stem.split("_")[1] in (
            "SEPTEMBER", "OCTOBER", "NOVEMBER")
        objs = json.loads(f.path.read_text())["timelineObjects"]
        assert {next(iter(o)) for o in objs} == {"placeVisit", "activitySegment"}
        visit = next(o["placeVisit"] for o in objs if "placeVisit" in o)
        assert {"placeId", "name", "address"} <= set(visit["location"]) and "startTimestamp" in visit["duration"]
    android = json.loads(one(persona, "google_timeline", "Timeline.json").path.read_text())
    assert {"semanticSegments", "rawSignals", "userLocationProfile"} <= set(android)
    assert android["semanticSegments"][0]["startTime"][-6:] in ("+01:00", "+00:00")
    ios = json.loads(one(persona, "google_timeline", "location-history.json").path.read_text())
    assert isinstance(ios, list) and all(isinstance(e["startTime"], str) for e in ios)
    visit = next(e["visit"] for e in ios if "visit" in e)
    assert visit["probability"].replace(".", "").isdigit() and visit["topCandidate"]["placeLocation"].startswith("geo:")
    activity = json.loads(one(persona, "takeout_my_activity").path.read_text())
    assert activity[0]["title"].startswith("Used ") and "play.google.com/store/apps/details?id=" in activity[0]["titleUrl"]


def test_the_calendar_is_folded_crlf_icalendar_with_balanced_components(persona: Manifest) -> None:
    data = one(persona, "ics").path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") and data.endswith(b"\r\n")
    physical = data.split(b"\r\n")[:-1]
    assert max(len(line) for line in physical) <= 75
    assert any(line.startswith(b" ") for line in physical)  # something long enough to fold
    physical[0].decode("utf-8")  # folding never splits a UTF-8 sequence
    for line in physical:
        line.decode("utf-8")
    lines = data.decode("utf-8").replace("\r\n ", "").split("\r\n")[:-1]
    stack: list[str] = []
    for line in lines:
        if line.startswith("BEGIN:"):
            stack.append(line[6:])
        elif line.startswith("END:"):
            assert stack.pop() == line[4:]
    assert stack == []
    text = "\n".join(lines)
    for needle in ("X-WR-TIMEZONE:Europe/London", "BEGIN:VTIMEZONE", "RRULE:FREQ=WEEKLY", "EXDATE;TZID=",
                   "RECURRENCE-ID;TZID=", "STATUS:CANCELLED", "DTSTART;VALUE=DATE:", "ORGANIZER;CN=",
                   "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Maria Rossi"):
        assert needle in text


def test_the_sqlite_exports_have_the_real_tables(persona: Manifest) -> None:
    wb = one(persona, "android_digital_wellbeing").path
    assert wb.name == "app_usage"
    assert sqlite_rows(wb, "SELECT count(*) FROM events JOIN packages ON packages._id = events.package_id")[0][0] > 0
    kc = one(persona, "apple_knowledgec").path
    streams = {s for (s,) in sqlite_rows(kc, "SELECT DISTINCT ZSTREAMNAME FROM ZOBJECT")}
    assert {"/app/usage", "/display/isBacklit", "/device/isLocked"} <= streams
    start, end, off = sqlite_rows(kc, "SELECT ZSTARTDATE, ZENDDATE, ZSECONDSFROMGMT FROM ZOBJECT "
                                      "WHERE ZSTREAMNAME = '/app/usage' ORDER BY Z_PK LIMIT 1")[0]
    assert 780_000_000 < start < end and off in (0, 3600)  # seconds since 2001-01-01, London's offset


def test_gpx_tracks_are_gpx_1_1_with_timed_elevated_points(persona: Manifest) -> None:
    tracks = persona.by_format("gpx")
    assert tracks
    for f in tracks:
        root = ET.parse(f.path).getroot()
        assert root.tag == f"{GPX_NS}gpx" and root.get("version") == "1.1"
        pts = root.findall(f".//{GPX_NS}trkpt")
        assert len(pts) == f.records == f.rows["points"]
        assert all(p.find(f"{GPX_NS}ele") is not None and p.find(f"{GPX_NS}time") is not None for p in pts[:50])
        assert -90 <= float(pts[0].get("lat", "nan")) <= 90


def test_manifest_counts_match_the_files(persona: Manifest) -> None:
    rec = one(persona, "google_records")
    assert len(json.loads(rec.path.read_text())["locations"]) == rec.records == rec.rows["points"] + rec.bad
    for f in persona.by_format("google_semantic"):
        objs = json.loads(f.path.read_text())["timelineObjects"]
        assert len(objs) == f.records
        assert sum("activitySegment" in o for o in objs) == f.rows["segments"]
    tl = one(persona, "google_timeline", "Timeline.json")
    doc = json.loads(tl.path.read_text())
    segs = doc["semanticSegments"]
    assert sum("visit" in s for s in segs) == tl.rows["visits"] + tl.bad
    assert sum("activity" in s for s in segs) == tl.rows["segments"]
    path_points = sum(len(s.get("timelinePath", [])) for s in segs)
    positions = sum("position" in r for r in doc["rawSignals"])
    assert path_points + positions == tl.rows["points"] and positions > 0
    assert len(doc["rawSignals"]) - positions == tl.not_data
    ios = one(persona, "google_timeline", "location-history.json")
    entries = json.loads(ios.path.read_text())
    assert sum(len(e.get("timelinePath", [])) for e in entries) == ios.rows["points"]
    assert sum("visit" in e for e in entries) == ios.rows["visits"] + ios.bad
    ics = one(persona, "ics")
    assert ics.path.read_bytes().count(b"BEGIN:VEVENT") == ics.records
    assert ics.rows["events"] == len(persona.truth.occurrences) == persona.counts["occurrences"]
    with one(persona, "android_usage_events").path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    csv_file = one(persona, "android_usage_events")
    assert rows[0] == ["timestamp_ms", "event_type", "package", "class"]
    assert len(rows) - 1 == csv_file.records == csv_file.rows["usage_events"] + csv_file.not_data + csv_file.bad
    wb = one(persona, "android_digital_wellbeing")
    assert sqlite_rows(wb.path, "SELECT count(*) FROM events")[0][0] == wb.records
    act = one(persona, "takeout_my_activity")
    assert len(json.loads(act.path.read_text())) == act.records == act.rows["usage_events"] + act.bad
    kc = one(persona, "apple_knowledgec")
    assert sqlite_rows(kc.path, "SELECT count(*) FROM ZOBJECT")[0][0] == kc.records
    assert sqlite_rows(kc.path, "SELECT count(*) FROM ZOBJECT WHERE ZSTREAMNAME = '/app/usage'")[0][0] == (
        kc.rows["usage_intervals"] + kc.bad)
    assert persona.counts["app_sessions"] == len(persona.truth.sessions)
    assert sum(len(v) for v in persona.files.values()) == len(persona.outputs) == persona.counts["files"]


def test_planted_bad_records_sit_where_the_manifest_says(persona: Manifest) -> None:
    rec = one(persona, "google_records")
    locations = json.loads(rec.path.read_text())["locations"]
    assert len(rec.bad_positions) == 3
    for pos in rec.bad_positions:
        r = locations[pos]
        assert abs(r["latitudeE7"]) > 900_000_000 or abs(r["longitudeE7"]) > 1_800_000_000 or "-02-30T" in r["timestamp"]
    rows = list(csv.reader(one(persona, "android_usage_events").path.open(newline="")))[1:]
    bad_rows = [rows[p] for p in one(persona, "android_usage_events").bad_positions]
    assert bad_rows[0][1] == "99" and len(bad_rows[1][0]) == 10  # unknown code; seconds, not ms
    ics = one(persona, "ics").path.read_text()
    assert "DTSTART;TZID=Europe/London:20251345T250000" in ics
    assert persona.counts["bad_records"] == sum(f.bad for f in persona.outputs) >= 10


def test_bad_records_are_planted_only_when_asked(clean: Manifest) -> None:
    assert clean.counts["bad_records"] == 0 and all(not f.bad_positions for f in clean.outputs)
    rec = json.loads(one(clean, "google_records").path.read_text())["locations"]
    assert all(abs(r["latitudeE7"]) <= 900_000_000 and abs(r["longitudeE7"]) <= 1_800_000_000 for r in rec)
    assert "20251345" not in one(clean, "ics").path.read_text()
    assert ",99," not in one(clean, "android_usage_events").path.read_text()
    assert "geo:north" not in one(clean, "google_timeline", "location-history.json").path.read_text()


def test_more_days_write_more_of_everything(tmp_path: Path) -> None:
    short = generate(tmp_path / "short", days=14, plant_bad=False)
    long = generate(tmp_path / "long", days=56, plant_bad=False)
    for key in ("points", "visits", "occurrences", "usage_events", "launches", "app_sessions"):
        assert long.counts[key] > 2.5 * short.counts[key], key
    assert short.truth.period[1] == long.truth.period[1]
    assert long.persona.start == date(2025, 9, 6)


def test_points_target_writes_exactly_that_many_valid_points(tmp_path: Path) -> None:
    m = generate(tmp_path, days=10, points_target=5000)
    rec = one(m, "google_records")
    locations = json.loads(rec.path.read_text())["locations"]
    assert rec.rows["points"] == m.counts["points"] == 5000 and len(locations) == 5003
    assert "timestampMs" in locations[0] and "timestamp" in locations[-1]  # the oldest part uses the old field


def test_the_ground_truth_knows_places_trips_meetings_and_apps(persona: Manifest) -> None:
    truth = persona.truth
    doc = json.loads(json.dumps(truth.to_json()))
    assert doc["period"] == ["2025-10-01T23:00:00Z", "2025-11-01T00:00:00Z"]  # local midnights, BST then GMT
    names = {p.name for p in truth.places}
    assert {"Home", "Meridian Labs", "Café Nero, Kings Rd"} <= names
    assert {p.category for p in truth.places} >= {"HOME", "WORK", "CAFE", "GYM"}
    for a, b in zip(truth.visits, truth.visits[1:], strict=False):
        assert a.end <= b.start  # one place at a time
    lisbon = next(t for t in truth.trips if "Lisbon" in t.name)
    assert lisbon.tz == "Europe/Lisbon" and [leg.mode for leg in lisbon.legs] == ["FLYING", "FLYING"]
    assert any(truth.place(v.place).city == "Lisbon" for v in truth.visits if lisbon.start <= v.start <= lisbon.end)
    occ = truth.occurrences
    assert any(o.status == "CANCELLED" for o in occ)
    moved = [o for o in occ if o.recurrence_id.endswith("Z") and o.start != datetime.fromisoformat(o.recurrence_id)]
    assert len(moved) == 1
    assert any(len(o.attendees) >= 3 and all("@" in a.email for a in o.attendees) for o in occ)
    apps = {(s.app, s.category) for s in truth.sessions}
    assert {("Slack", "Communication"), ("Spotify", "Music"), ("YouTube", "Video")} <= apps
    slack_at_work = [s for s in truth.sessions if s.app == "Slack"]
    assert all(8 <= s.start.astimezone(ZoneInfo("Europe/London")).hour < 19 for s in slack_at_work)


def test_the_cli_writes_the_exports_and_prints_a_line_per_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "out"), "--days", "12", "--seed", "3", "--no-bad", "--truth", str(tmp_path / "t.json")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert any("Records.json" in line for line in err) and any("calendar.ics" in line for line in err)
    assert "0 bad records planted" in err[-1]
    assert json.loads((tmp_path / "t.json").read_text())["persona"]["seed"] == 3


def _parse(module: ModuleType, f: WrittenFile, m: Manifest) -> tuple[dict[str, int], list[Rejected]]:
    start, end = m.truth.period
    options = {"window_start": start, "window_end": end} if module.KIND == "calendar" else {}
    rows: dict[str, int] = {}
    rejected: list[Rejected] = []
    for batch in module.batches(InputFile(f.path), **options):
        assert batch.rows.schema == TABLES[batch.table]
        rows[batch.table] = rows.get(batch.table, 0) + batch.rows.height
        rejected.extend(batch.rejected)
    return rows, rejected


@pytest.mark.parametrize("fmt", list(SOURCE_MODULES))
def test_each_parser_loads_the_manifest_rows_and_rejects_exactly_the_planted_records(
    fmt: str, persona: Manifest
) -> None:
    module = importlib.import_module(SOURCE_MODULES[fmt])
    for f in persona.by_format(fmt):
        assert module.detect(InputFile(f.path)), f.path.name
        rows, rejected = _parse(module, f, persona)
        assert {t: n for t, n in rows.items() if n} == {t: n for t, n in f.rows.items() if n}, f.path.name
        assert sorted(r.position for r in rejected) == sorted(f.bad_positions), [r.reason for r in rejected]


def test_the_calendar_parser_expands_exactly_the_true_occurrences(persona: Manifest) -> None:
    from ingest.sources.calendar import ics

    f = one(persona, "ics")
    start, end = persona.truth.period
    got = set()
    for batch in ics.batches(InputFile(f.path), window_start=start, window_end=end):
        got |= {(r["uid"], r["recurrence_id"], r["start"], r["end"], r["status"], r["summary"])
                for r in batch.rows.iter_rows(named=True)}
    want = {(o.uid, o.recurrence_id, o.start, o.end, o.status, o.title) for o in persona.truth.occurrences}
    assert got == want


KINDS = {"location": ("google_records", "google_semantic", "google_timeline", "gpx"), "calendar": ("ics",),
         "usage": ("android_usage_events", "android_digital_wellbeing", "takeout_my_activity", "apple_knowledgec")}


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_pipeline_loads_the_manifest_rows_and_quarantines_the_planted_records(
    kind: str, persona: Manifest, vault: Vault
) -> None:
    start, end = persona.truth.period
    report = run(vault, [persona.root], kind=kind, options={"window_start": start, "window_end": end})
    expected = {f.path.name: f for f in persona.outputs if f.kind == kind}
    assert {fr.file for fr in report.files} == set(expected)
    for fr in report.files:
        f = expected[fr.file]
        assert (fr.loaded + fr.duplicates, fr.quarantined) == (sum(f.rows.values()), f.bad), fr.file
