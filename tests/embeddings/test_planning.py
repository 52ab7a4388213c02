"""A task about the future gets the window's events, its free time and the routines that matter, with no two
snippets about one series; a question about the past keeps search order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from embeddings import planning
from embeddings.agenda import free_slots
from embeddings.context import series_key
from embeddings.redaction import Redaction
from embeddings.service import MemoryService
from tests.embeddings.persona import _event
from tests.embeddings.test_routines import GYM, plant
from vault.store import Vault

SUNDAY = datetime(2025, 3, 23, 18, 0, tzinfo=UTC)  # the evening before the week being planned


@pytest.fixture
def planned(vault: Vault, svc: MemoryService) -> MemoryService:
    plant(vault)  # gym Mon/Thu, design review Wed (the last on 26 Mar), YouTube nightly
    monday = datetime(2025, 3, 24, tzinfo=UTC)
    _event(vault, "dentist-ahead", monday + timedelta(days=1, hours=9), monday + timedelta(days=1, hours=9, minutes=30),
           "Dentist check-up", location="Kings Rd Dental")
    for d in range(5):  # a standup every weekday of the week ahead
        _event(vault, f"standup-{d}", monday + timedelta(days=d, hours=9, minutes=30),
               monday + timedelta(days=d, hours=9, minutes=45), "Team standup")
    svc.index()
    return svc


def test_plan_my_week_gets_the_meetings_the_free_time_and_the_gym_routine(planned: MemoryService):
    pack = planned.context("plan my week around the gym and meetings", token_budget=400, now=SUNDAY)
    pack_big = planned.context("plan my week around the gym and meetings", token_budget=1500, now=SUNDAY)
    text = pack.text
    assert "Upcoming, Sun 23 Mar 2025 – Sun 30 Mar 2025:" in text, text
    assert "Dentist check-up on Tue 25 Mar 2025 09:00–09:30" in text
    assert "Design review on Wed 26 Mar 2025 14:00–15:00" in text
    assert "Team standup on Mon 24 Mar 2025 09:30–09:45" in text and "(5 in all)" in text  # one line for the series
    assert "Mon 24 Mar: 08:00–09:30, 09:45–20:00" in text and "Sat 29 Mar: all day" in pack_big.text
    assert "Wed 26 Mar: 08:00–09:30, 09:45–14:00, 15:00–20:00" in pack_big.text
    assert f"Regular place: {GYM}" in text and "usually Mon and Thu 18:00–19:15" in text
    assert text.index("Upcoming") < text.index("Free time") < text.index("Routines:")
    keys = [series_key(h) for h in _hits(planned, pack)]
    assert len(keys) == len(set(keys))
    assert not any(s.kind == "routine" and "Recurring meeting: Design review" in s.text for s in pack.snippets)
    assert pack.tokens_used <= 400
    assert {f.start for f in pack.free} >= {datetime(2025, 3, 26, 15, 0, tzinfo=UTC)}


def _hits(svc: MemoryService, pack):  # noqa: ANN001, ANN202 - the pack's snippets as hits, for series_key
    from embeddings.retrieve import Hit

    return [Hit(memory=svc.get(s.memory_id), score=s.score, rank=s.n, signals={}) for s in pack.snippets]


def test_a_question_about_the_past_is_not_a_plan(planned: MemoryService):
    pack = planned.context("when did I last go to the gym", token_budget=300, now=SUNDAY)
    assert "Upcoming" not in pack.text and "Free time" not in pack.text and not pack.free
    assert GYM in pack.snippets[0].text
    visits = [s for s in pack.snippets if s.kind == "visit"]
    assert len(visits) == 1 and len(visits[0].also) >= 10  # the instances ride on one line, with their dates
    assert "; also on " in visits[0].text


def test_a_token_without_calendar_memories_gets_no_events_and_no_busy_times(planned: MemoryService):
    usage_only = Redaction(location="none", attendee_emails=False, visible=frozenset({"usage"}))
    pack = planned.context("plan my week", token_budget=600, redaction=usage_only, now=SUNDAY)
    assert "Dentist" not in pack.text and "standup" not in pack.text
    assert pack.free and pack.free[0].start == SUNDAY  # the window opens now; every later waking day is free
    assert all(f.end - f.start == timedelta(hours=12) for f in pack.free[1:])
    assert all(s.kind in ("usage", "routine") for s in pack.snippets)


@pytest.mark.parametrize(("task", "expected"), [
    ("plan my week around the gym", (datetime(2025, 3, 23, 18, 0, tzinfo=UTC), datetime(2025, 3, 31, tzinfo=UTC))),
    ("what's on tomorrow?", (datetime(2025, 3, 24, tzinfo=UTC), datetime(2025, 3, 25, tzinfo=UTC))),
    ("anything next week", (datetime(2025, 3, 24, tzinfo=UTC), datetime(2025, 3, 31, tzinfo=UTC))),
    ("schedule a haircut", (SUNDAY, SUNDAY + timedelta(days=7))),
    ("the next 3 days", (SUNDAY, SUNDAY + timedelta(days=3))),
    ("next 99999 days", (SUNDAY, SUNDAY + timedelta(days=planning.MAX_DAYS))),
    ("what did I do today", None),
    ("when did I last see Dr Lee", None),
    ("what did I do this week", None),
])
def test_planning_windows(task: str, expected):  # noqa: ANN001
    got = planning.window(task, SUNDAY)
    assert (got[:2] if got else None) == expected


def test_free_time_is_the_gaps_between_merged_busy_intervals():
    t = datetime(2025, 3, 24, 8, tzinfo=UTC)
    h = timedelta(hours=1)
    busy = [(t + h, t + 2 * h), (t + 90 * timedelta(minutes=1), t + 3 * h), (t + 5 * h, None), (t + 6 * h, t + 20 * h)]
    slots = free_slots(busy, t, t + 12 * h, min_minutes=30)
    assert [(s.start, s.end) for s in slots] == [(t, t + h), (t + 3 * h, t + 5 * h), (t + 5 * h, t + 6 * h)]


def test_free_time_keeps_to_the_waking_day_when_now_is_given_in_a_local_zone(planned: MemoryService):
    plus_one = timezone(timedelta(hours=1))  # the week as someone an hour east of UTC sees it
    pack = planned.context("plan my week", token_budget=1500, now=SUNDAY.astimezone(plus_one))
    monday = [f for f in pack.free if f.start.astimezone(plus_one).date() == date(2025, 3, 24)]
    assert monday and monday[0].start == datetime(2025, 3, 24, 7, 0, tzinfo=UTC)  # 08:00 local
    assert "Mon 24 Mar: 08:00–10:30, 10:45–" in pack.text  # the standup at 09:30 UTC is 10:30 there
    assert all(f.start.astimezone(plus_one).hour >= 8 for f in pack.free)
