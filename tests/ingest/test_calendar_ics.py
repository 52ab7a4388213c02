"""Behaviour of the iCalendar source on hand-written files in the real layout and on a real-world corpus."""

from __future__ import annotations

import datetime as dt
import json
import time
import zipfile
from pathlib import Path

import polars as pl
import pytest

from ingest.files import InputFile
from ingest.records import EVENTS, Rejected
from ingest.sources.calendar import ics
from tests.ingest.batches import parse, utc

FIXTURES = Path(__file__).parent / "fixtures" / "calendar"
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "icalendar"
NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def run(f: InputFile | Path, **options) -> tuple[pl.DataFrame, list[Rejected], dict[str, int]]:
    """All rows, all rejects and the skip counts (the generator's return value) of one file."""
    frames, rejected, skipped = parse(ics, f, **({"now": NOW} | options))
    assert set(frames) <= {"events"}
    return frames.get("events", pl.DataFrame(schema=EVENTS)), rejected, skipped


def write(tmp_path: Path, text: str, name: str = "cal.ics") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def one(rows: pl.DataFrame, **where) -> dict:
    hits = rows.filter(*(pl.col(k) == v for k, v in where.items()))
    assert hits.height == 1, hits
    return hits.row(0, named=True)


@pytest.fixture(scope="module")
def work() -> tuple[pl.DataFrame, list[Rejected], dict[str, int]]:
    return run(FIXTURES / "work.ics")


def test_weekly_series_skips_the_exdate_and_uses_the_moved_override(work) -> None:
    rows, _, _ = work
    standup = rows.filter(pl.col("uid") == "standup@example.org").sort("start")
    assert standup["recurrence_id"].to_list() == [
        "2024-03-11T08:30:00Z",  # CET, +60
        "2024-03-25T08:30:00Z",  # the override's RECURRENCE-ID, not its new start
        "2024-04-01T07:30:00Z",  # CEST from 31 March, +120
        "2024-04-08T07:30:00Z",
        "2024-04-15T07:30:00Z",
    ]  # 18 March is EXDATE'd: no row
    moved = one(standup, recurrence_id="2024-03-25T08:30:00Z")
    assert (moved["start"], moved["end"], moved["summary"]) == (
        utc(2024, 3, 25, 10),
        utc(2024, 3, 25, 10, 30),
        "Standup (moved)",
    )
    assert moved["position"] == 1


def test_a_this_and_future_override_moves_every_later_instance() -> None:
    rows, rejected, _ = run(FIXTURES / "this_and_future.ics")
    assert rejected == []
    assert rows.sort("start").select("recurrence_id", "start", "summary", "position").rows() == [
        ("2024-01-01T10:00:00Z", utc(2024, 1, 1, 10), "Course", 0),
        ("2024-01-08T10:00:00Z", utc(2024, 1, 8, 10), "Course", 0),
        ("2024-01-15T10:00:00Z", utc(2024, 1, 15, 12), "Course (new room)", 1),
        ("2024-01-22T10:00:00Z", utc(2024, 1, 22, 12), "Course (new room)", 1),
    ]


def test_vtimezone_with_dst_keeps_local_time_and_moves_utc(work) -> None:
    rows, _, _ = work
    standup = rows.filter(pl.col("uid") == "standup@example.org", pl.col("position") == 0).sort("start")
    assert standup["utc_offset_min"].to_list() == [60, 120, 120]
    assert set(standup["tzid"]) == {"Lifevault-Test/Berlin"}
    local = standup.select(
        (pl.col("start") + pl.duration(minutes=pl.col("utc_offset_min"))).dt.strftime("%H:%M")
    )
    assert local.to_series().to_list() == ["09:30"] * 3


def test_cancelled_override_keeps_its_row_marked_cancelled(work) -> None:
    rows, _, _ = work
    assert one(rows, recurrence_id="2024-04-08T07:30:00Z")["status"] == "CANCELLED"
    others = rows.filter(
        pl.col("uid") == "standup@example.org", pl.col("recurrence_id") != "2024-04-08T07:30:00Z"
    )
    assert set(others["status"]) == {"CONFIRMED"}


def test_rdate_periods_add_instances_with_their_own_length(work) -> None:
    rows, _, _ = work
    workshop = rows.filter(pl.col("uid") == "workshop@example.org").sort("start")
    assert workshop.select("start", "end").rows() == [
        (utc(2024, 7, 1, 9), utc(2024, 7, 1, 10)),
        (utc(2024, 7, 3, 9), utc(2024, 7, 3, 12)),
        (utc(2024, 7, 5, 14), utc(2024, 7, 5, 15)),
    ]


def test_all_day_event_starts_at_midnight_and_lasts_a_day(work) -> None:
    holiday = one(work[0], uid="holiday@example.org")
    assert holiday["all_day"] is True
    assert (holiday["start"], holiday["end"]) == (utc(2024, 5, 1), utc(2024, 5, 2))
    assert (holiday["tzid"], holiday["recurrence_id"]) == ("floating", "")


def test_floating_time_without_x_wr_timezone_is_read_as_utc(work) -> None:
    dinner = one(work[0], uid="floating@example.org")
    assert (dinner["start"], dinner["tzid"], dinner["utc_offset_min"]) == (
        utc(2024, 7, 10, 18),
        "floating",
        0,
    )
    assert dinner["description"] == (
        "A long description that is folded over two content lines as RFC 5545 "
        "section 3.1 allows, with an escaped comma."
    )


def test_duration_gives_the_end_and_a_cancelled_single_event_is_kept(work) -> None:
    review = one(work[0], uid="review@example.org")
    assert (review["start"], review["end"], review["status"]) == (
        utc(2024, 6, 1, 12),
        utc(2024, 6, 1, 13, 30),
        "CANCELLED",
    )


def test_event_without_end_or_duration_ends_when_it_starts(work) -> None:
    reminder = one(work[0], uid="reminder@example.org")
    assert reminder["start"] == reminder["end"] == utc(2024, 7, 12, 8)


def test_attendees_and_organizer_are_kept(work) -> None:
    first = one(work[0], recurrence_id="2024-03-11T08:30:00Z")
    assert first["organizer"] == "Ada Lovelace <ada@example.org>"
    assert json.loads(first["attendees"]) == [
        {"name": "Grace Hopper", "email": "grace@example.org", "partstat": "ACCEPTED"},
        {"name": None, "email": "alan@example.org", "partstat": "TENTATIVE"},
    ]
    assert first["calendar"] == "Work"


def test_broken_vevent_is_rejected_and_the_others_still_load(work) -> None:
    rows, rejected, _ = work
    broken = [r for r in rejected if r.position == 4]
    assert len(broken) == 1
    assert "DTSTART" in broken[0].reason and "2024-13-45" in broken[0].raw
    assert 4 not in rows["position"].to_list()
    assert rows["position"].unique().sort().to_list() == [0, 1, 2, 3, 5, 6, 7, 8]


def test_an_unparseable_line_is_quarantined_but_its_event_loads(work) -> None:
    rows, rejected, _ = work
    line = [r for r in rejected if r.position == 8]
    assert len(line) == 1 and "THIS LINE IS NOT A CONTENT LINE" in line[0].reason
    assert one(rows, uid="reminder@example.org")["position"] == 8
    assert all("\n" not in r.reason for r in rejected)


def test_floating_and_all_day_times_are_read_in_x_wr_timezone_behind_a_bom() -> None:
    rows, rejected, _ = run(FIXTURES / "google_bom.ics")
    assert rejected == []
    dentist = one(rows, uid="floating-ny@google.com")
    assert (dentist["start"], dentist["tzid"], dentist["utc_offset_min"]) == (
        utc(2024, 1, 15, 14),
        "floating",
        -300,
    )
    party = one(rows, uid="allday-ny@google.com")
    assert (party["start"], party["all_day"], party["calendar"]) == (utc(2024, 1, 20, 5), True, "Personal")


def test_utc_series_under_x_wr_timezone_keeps_its_local_time_across_dst() -> None:
    rows, _, _ = run(FIXTURES / "google_bom.ics")
    piano = rows.filter(pl.col("uid") == "utc-weekly@google.com").sort("start")
    # 10:00 in New York each week: 15:00Z in EST, 14:00Z after DST starts on 10 March 2024.
    assert piano["start"].to_list() == [utc(2024, 3, 1, 15), utc(2024, 3, 8, 15), utc(2024, 3, 15, 14)]
    assert piano["tzid"].to_list() == [None, None, None]


def test_floating_time_without_x_wr_timezone_in_another_file_is_utc() -> None:
    rows, _, _ = run(FIXTURES / "floating.ics")
    assert one(rows, uid="floating-plain@example.org")["start"] == utc(2024, 1, 15, 9)


def test_pathological_rrules_are_capped_or_quarantined_without_hanging() -> None:
    started = time.monotonic()
    rows, rejected, _ = run(FIXTURES / "pathological.ics")
    assert time.monotonic() - started < 60  # a hang guard, not a speed target (that is in bench/)
    reasons = {r.position: r.reason for r in rejected}
    assert "too expensive" in reasons[0]  # FREQ=SECONDLY
    assert reasons[1] == "RRULE never matches: BYMONTHDAY 30 does not occur in BYMONTH 2"  # not even tried
    assert "more than 10,000 occurrences: loaded the first 10,000, " in reasons[2]  # FREQ=HOURLY, capped
    assert rows.filter(pl.col("uid") == "hourly@example.org").height == ics.DEFAULT_MAX_OCCURRENCES
    assert one(rows, uid="fine@example.org")["summary"] == "An ordinary event"
    assert not rows.filter(pl.col("position").is_in([0, 1])).height


def test_the_occurrence_cap_is_an_option() -> None:
    rows, rejected, _ = run(FIXTURES / "work.ics", max_occurrences=2)
    assert rows.filter(pl.col("uid") == "standup@example.org").height == 2
    assert any(r.position == 0 and "more than 2 occurrences" in r.reason for r in rejected)


def test_the_window_limits_recurring_series_but_not_single_events() -> None:
    rows, _, skipped = run(FIXTURES / "work.ics", window_start=utc(2024, 3, 20), window_end=utc(2024, 4, 5))
    standup = rows.filter(pl.col("uid") == "standup@example.org")
    assert standup["recurrence_id"].sort().to_list() == ["2024-03-25T08:30:00Z", "2024-04-01T07:30:00Z"]
    assert rows.filter(pl.col("uid") == "workshop@example.org").height == 0
    assert skipped == {"recurring series with no occurrence in the window": 1}
    assert one(rows, uid="review@example.org")["start"] == utc(2024, 6, 1, 12)  # single event, outside window


def test_a_file_that_is_not_icalendar_is_one_rejected_record(tmp_path: Path) -> None:
    rows, rejected, _ = run(write(tmp_path, '{"not": "a calendar"}', "x.ics"))
    assert rows.height == 0
    assert [(r.position, r.format) for r in rejected] == [(-1, "ics")]
    assert "not an iCalendar file" in rejected[0].reason


def test_an_unterminated_vevent_is_rejected_and_the_next_one_loads(tmp_path: Path) -> None:
    text = (
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20240101T100000Z\n"
        "BEGIN:VEVENT\nUID:b\nDTSTART:20240102T100000Z\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    rows, rejected, _ = run(write(tmp_path, text))
    assert rows["uid"].to_list() == ["b"] and rows["position"].to_list() == [1]
    assert [(r.position, r.reason) for r in rejected] == [(0, "VEVENT is not terminated (no END:VEVENT)")]


def test_a_duplicate_uid_with_a_lower_sequence_is_rejected_as_superseded(tmp_path: Path) -> None:
    text = (
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nSEQUENCE:2\nDTSTART:20240101T100000Z\nSUMMARY:new\nEND:VEVENT\n"
        "BEGIN:VEVENT\nUID:a\nSEQUENCE:1\nDTSTART:20240101T090000Z\nSUMMARY:old\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    rows, rejected, _ = run(write(tmp_path, text))
    assert rows["summary"].to_list() == ["new"]
    assert [r.position for r in rejected] == [1] and "superseded" in rejected[0].reason


def test_a_missing_uid_is_replaced_by_the_same_hash_on_every_import(tmp_path: Path) -> None:
    text = (
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20240101T100000Z\nSUMMARY:no uid\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    first, _, _ = run(write(tmp_path, text))
    again, _, _ = run(write(tmp_path, text.replace("\n", "\r\n"), "copy.ics"))
    assert first["uid"][0].startswith("sha256:") and first["uid"].to_list() == again["uid"].to_list()


def test_todos_and_empty_calendars_are_counted_as_skipped_not_rejected(tmp_path: Path) -> None:
    text = (
        "BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:t\nSUMMARY:buy milk\nEND:VTODO\nEND:VCALENDAR\n"
        "BEGIN:VCALENDAR\nEND:VCALENDAR\n"
    )
    rows, rejected, skipped = run(write(tmp_path, text))
    assert rows.height == 0 and rejected == []
    assert skipped == {"VTODO component (not an event)": 1, "calendar without VEVENT": 2}


def test_a_zip_member_reads_the_same_as_the_plain_file(tmp_path: Path) -> None:
    archive = tmp_path / "takeout.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(FIXTURES / "work.ics", "Takeout/Calendar/work.ics")
    plain, plain_rejected, _ = run(FIXTURES / "work.ics")
    zipped, zipped_rejected, _ = run(InputFile(archive, "Takeout/Calendar/work.ics"))
    assert zipped.equals(plain)
    assert zipped_rejected == plain_rejected


def test_detect_accepts_calendars_by_name_or_content_and_nothing_else(tmp_path: Path) -> None:
    assert ics.detect(InputFile(FIXTURES / "work.ics"))
    assert ics.detect(InputFile(write(tmp_path, "\ufeffBEGIN:VCALENDAR\nEND:VCALENDAR\n", "export.txt")))
    assert not ics.detect(InputFile(write(tmp_path, '{"locations": []}', "Records.json")))


CORPUS_FILES = sorted(CORPUS.glob("*.ics")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not CORPUS_FILES, reason=f"real-world corpus not present at {CORPUS}")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_every_corpus_file_yields_rows_rejects_or_counted_skips_quickly(path: Path) -> None:
    started = time.monotonic()
    rows, rejected, skipped = run(path, window_start=utc(1990, 1, 1), window_end=utc(2030, 1, 1))
    assert time.monotonic() - started < 10, "took too long"
    assert rows.height or rejected or skipped, "file produced nothing and said nothing"
    for r in rejected:
        assert r.reason and "\n" not in r.reason and r.file == path.name
