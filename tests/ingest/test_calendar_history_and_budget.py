"""Recurring series keep their history (expanded from the series start), and a file cannot expand for long."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import polars as pl

from ingest.records import EVENTS
from ingest.sources.calendar import ics
from ingest.sources.calendar.budget import never_matches
from tests.ingest.batches import parse

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def calendar(tmp_path: Path, *events: str) -> Path:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    path = tmp_path / "cal.ics"
    path.write_text(f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n")
    return path


def series(uid: str, rule: str, start: str = "20240101T000000Z") -> str:
    return f"UID:{uid}\r\nDTSTART:{start}\r\nDURATION:PT1H\r\nRRULE:{rule}\r\nSUMMARY:{uid}"


def run(path: Path, **options):
    frames, rejected, skipped = parse(ics, path, **({"now": NOW} | options))
    return frames.get("events", pl.DataFrame(schema=EVENTS)), rejected, skipped


def test_a_weekly_meeting_since_2015_keeps_its_whole_history_up_to_a_year_ahead(tmp_path):
    rows, rejected, _ = run(calendar(tmp_path, series("weekly", "FREQ=WEEKLY", "20150105T090000Z")))
    ids = rows["recurrence_id"].sort().to_list()
    assert ids[0] == "2015-01-05T09:00:00Z" and ids[-1] == "2025-05-26T09:00:00Z"
    assert len(ids) == 543 and rejected == []


def test_a_series_over_the_cap_keeps_its_first_occurrences_and_reports_the_remainder(tmp_path):
    rows, rejected, _ = run(calendar(tmp_path, series("daily", "FREQ=DAILY")), max_occurrences=100)
    total = (NOW + dt.timedelta(days=365) - dt.datetime(2024, 1, 1, tzinfo=dt.UTC)).days
    assert rows["recurrence_id"].sort().to_list()[0] == "2024-01-01T00:00:00Z" and rows.height == 100
    (r,) = rejected
    assert r.reason == (f"more than 100 occurrences: loaded the first 100, {total - 100} more not loaded "
                        "(raise max_occurrences for more)")


def test_a_series_exactly_at_the_cap_loads_whole_without_a_reject(tmp_path):
    rows, rejected, _ = run(calendar(tmp_path, series("ten", "FREQ=DAILY;COUNT=10")), max_occurrences=10)
    assert rows.height == 10 and rejected == []


def test_forty_rules_that_never_match_are_quarantined_in_a_couple_of_seconds(tmp_path):
    events = [series(f"feb30-{i}", "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30") for i in range(40)]
    path = calendar(tmp_path, *events, "UID:fine\r\nDTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z")
    assert path.stat().st_size < 8 << 10  # a few KiB
    t0 = time.monotonic()
    rows, rejected, _ = run(path)
    assert time.monotonic() - t0 < 2
    assert rows["uid"].to_list() == ["fine"]
    assert {r.reason for r in rejected} == {"RRULE never matches: BYMONTHDAY 30 does not occur in BYMONTH 2"}
    assert len(rejected) == 40


def test_a_file_of_expensive_series_stops_after_its_budget_and_single_events_still_load(tmp_path):
    # 29 February is never the first day of the year: no static check sees it, every series runs out of steps
    events = [series(f"slow-{i}", "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYYEARDAY=1") for i in range(40)]
    path = calendar(tmp_path, *events, "UID:fine\r\nDTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z")
    t0 = time.monotonic()
    rows, rejected, _ = run(path)
    assert time.monotonic() - t0 < 2 * ics.EXPANSION_MAX_SECONDS + 2
    assert rows["uid"].to_list() == ["fine"] and len(rejected) == 40
    reasons = [r.reason for r in sorted(rejected, key=lambda r: r.position)]
    assert all("too expensive" in r for r in reasons[:2])
    assert set(reasons[2:]) == {"not expanded: 2 series of this file already exceeded their budget"}


def test_the_file_time_budget_is_an_option(tmp_path):
    events = [series(f"slow-{i}", "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYYEARDAY=1") for i in range(3)]
    rows, rejected, _ = run(calendar(tmp_path, *events), expansion_seconds=0.0)
    assert rows.height == 0
    assert {r.reason for r in rejected} == {"not expanded: the file's recurrence budget (0 s) is spent"}


def test_month_days_that_exist_in_some_month_are_not_called_impossible():
    assert never_matches({"BYMONTH": [2], "BYMONTHDAY": [29]}) is None  # leap years
    assert never_matches({"BYMONTH": [2, 3], "BYMONTHDAY": [30]}) is None
    assert never_matches({"BYMONTH": [4], "BYMONTHDAY": [-30]}) is None
    assert never_matches({"BYMONTH": [2], "BYMONTHDAY": [-30]}) is not None
    assert never_matches({"BYMONTH": [4, 6, 9, 11], "BYMONTHDAY": [31]}) is not None
    assert never_matches({"FREQ": ["DAILY"]}) is None
