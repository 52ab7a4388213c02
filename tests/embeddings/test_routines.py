"""Routines: a habit planted in the tables comes back as one sentence with its days, hours and counts, seen
through each caller's redaction, and gone with its sources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from embeddings import memories
from embeddings.forget import ForgetRequest
from embeddings.redaction import Redaction
from embeddings.routines import days_phrase
from embeddings.service import MemoryService
from tests.embeddings.persona import _event, _session, _stay
from vault.store import Vault

GYM = "PureGym Zorbington"  # a name found nowhere else
NOW = datetime(2025, 3, 26, 12, 0, tzinfo=UTC)  # a Wednesday; data runs from 6 Jan


def _days(first: datetime, weeks: int, weekdays: tuple[int, ...]) -> list[datetime]:
    monday = first - timedelta(days=first.weekday())
    return [monday + timedelta(weeks=w, days=d) for w in range(weeks) for d in weekdays]


def plant(vault: Vault) -> None:
    """Ten weeks of: the gym on Mon and Thu 18:00-19:15, a design review on Wed 14:00-15:00 with Priya Natarajan
    (one more ahead), the user Alex Morgan on every invitation, YouTube every night 22:10-22:50; London in winter, so local time is UTC."""
    start = datetime(2025, 1, 6, tzinfo=UTC)
    for day in _days(start, 10, (0, 3)):
        _stay(vault, f"gym-{day:%F}", day + timedelta(hours=18), day + timedelta(hours=19, minutes=15), GYM,
              "12 Warwick Rd, London", "gym", 51.4925, -0.1972)
    for day in _days(start, 12, (2,)):  # 8 Jan .. 26 Mar
        _event(vault, f"review-{day:%F}", day + timedelta(hours=14), day + timedelta(hours=15), "Design review",
               attendees=[{"name": "Priya Natarajan", "email": "priya@studio.example"},
                          {"name": "Alex Morgan", "email": "alex@example.com"}])
    for n, (title, other) in enumerate([("Dentist", None), ("1:1 with Sam", "Sam Okafor"), ("Book club", "Lena Berg")]):
        day = start + timedelta(days=3 + 7 * n, hours=12)
        _event(vault, f"misc-{n}", day, day + timedelta(hours=1), title,
               attendees=[{"name": "Alex Morgan", "email": "alex@example.com"}]
               + ([{"name": other, "email": f"{other[:3].lower()}@example.com"}] if other else []))
    for n in range(70):
        _session(vault, "com.google.android.youtube", "YouTube", "Video",
                 start + timedelta(days=n, hours=22, minutes=10), 40)


def routine_texts(vault: Vault) -> list[str]:
    return [m.text for m in memories.from_sources(vault, now=NOW) if m.kind == "routine"]


def test_a_planted_habit_comes_back_with_its_days_hours_and_counts(vault: Vault):
    plant(vault)
    texts = routine_texts(vault)
    gym = next(t for t in texts if GYM in t)
    assert "usually Mon and Thu 18:00–19:15" in gym and "20 visits in the last 26 weeks" in gym
    assert "last on Thu 13 Mar 2025" in gym
    review = next(t for t in texts if "Design review" in t)
    assert "Wed 14:00–15:00" in review and "with Priya Natarajan" in review
    assert "11 occurrences since Wed 8 Jan 2025" in review
    assert "next on Wed 26 Mar 2025 14:00" in review  # at 14:00, after NOW (12:00): the next one
    assert "Alex Morgan" not in " ".join(texts)  # the user, invited to everything, is not a person they meet
    youtube = next(t for t in texts if t.startswith("App habit: YouTube"))
    assert "mostly 22:00–24:00" in youtube and "40 min a day" in youtube
    person = next(t for t in texts if t.startswith("Person met often: Priya Natarajan"))
    assert "in 11 meetings" in person
    assert not any("@" in t for t in texts)  # names, never addresses


def test_days_are_written_as_people_write_them():
    assert days_phrase([0, 1, 2, 3, 4]) == "Mon–Fri"
    assert days_phrase([0, 3]) == "Mon and Thu"
    assert days_phrase([0, 1, 3]) == "Mon, Tue and Thu"
    assert days_phrase([5, 6]) == "Sat and Sun"
    assert days_phrase(range(7)) == "every day"


@pytest.fixture
def routines_svc(vault: Vault, svc: MemoryService) -> MemoryService:
    plant(vault)
    svc.index()
    return svc


def test_routines_are_searched_and_redacted_like_their_sources(routines_svc: MemoryService):
    owner = routines_svc.search("when do I usually go to the gym", k=5, kinds=["routine"], now=NOW)
    assert GYM in owner.hits[0].memory.text
    coarse = Redaction.for_scopes({"memory:read", "location:read"}, location="coarse")
    hits = routines_svc.search("when do I usually go to the gym", k=20, redaction=coarse, now=NOW).hits
    # named place routines group visits by name, which coarse location cannot tell apart: precise only; a coarse
    # reader gets the twins computed from places as it sees them (type and ~1 km cell)
    assert hits and not any(h.memory.sensitivity == "place" for h in hits)
    area = [h.memory for h in hits if h.memory.sensitivity == "area"]
    assert any(m.text.startswith("Regular place: a gym: usually Mon and Thu 18:00–19:15") for m in area)
    assert all(set(m.details["place"]) == {"type", "lat", "lon"} for m in area)
    assert not any(h.memory.sensitivity == "area" for h in owner.hits)  # the owner has the named ones
    assert GYM not in json.dumps([h.memory.to_dict() for h in hits], default=str)
    assert "Warwick" not in json.dumps([h.memory.to_dict() for h in hits], default=str)
    blind = Redaction.for_scopes({"memory:read"})
    hits = routines_svc.search("when do I usually go to the gym", k=50, redaction=blind, now=NOW).hits
    assert all(h.memory.sensitivity != "location" for h in hits)
    assert any(h.memory.kind == "routine" and "Design review" in h.memory.text for h in
               routines_svc.search("design review", k=3, kinds=["routine"], redaction=blind, now=NOW).hits)


def test_forgetting_the_gym_visits_takes_the_name_out_of_every_routine(vault: Vault, routines_svc: MemoryService):
    plan = routines_svc.forget_preview(ForgetRequest(query="Zorbington"))
    assert plan.by_kind.get("routine") == 1 and plan.by_kind.get("visit") == 20
    routines_svc.forget_commit(plan)
    routines_svc.index()  # routines are rebuilt from what remains
    texts = [r[0] for r in vault.query("SELECT text FROM memories WHERE kind = 'routine'")]
    assert texts and not any("Zorbington" in t or "gym" in t.lower() for t in texts)


def test_forgetting_one_meeting_removes_the_routines_built_on_it_until_the_next_index(routines_svc: MemoryService,
                                                                                       vault: Vault):
    def held() -> list[int]:  # "N occurrences since" of the design review series, as indexed (now: today)
        return [int(t.split("; ")[1].split()[0]) for (t,) in vault.query("SELECT text FROM memories WHERE kind = "
                "'routine' AND text LIKE 'Recurring meeting: Design review%'")]

    before = held()
    event = routines_svc.search("Design review", k=1, kinds=["event"], now=NOW).hits[0].memory
    routines_svc.forget_commit(routines_svc.forget_preview(ForgetRequest(memory_ids=(event.memory_id,))))
    left = [r[0] for r in vault.query("SELECT text FROM memories WHERE kind = 'routine'")]
    assert not any("Design review" in t or "Priya" in t for t in left)
    routines_svc.index()
    assert len(before) == 1 and held() == [before[0] - 1]


def test_a_visit_recorded_without_an_offset_is_shown_in_the_home_zone(vault: Vault):
    """Takeout's location exports carry UTC only: a July gym visit at 17:00 UTC is 18:00 in London, where the
    calendar (TZID Europe/London) says the user lives; the routine's hours are London's too."""
    from vault.homezone import home_zone

    start = datetime(2025, 6, 2, tzinfo=UTC)  # a Monday; British Summer Time
    for day in _days(start, 6, (0, 3)):
        _stay(vault, f"gym-{day:%F}", day + timedelta(hours=17), day + timedelta(hours=18), GYM,
              "12 Warwick Rd, London", "gym", 51.4925, -0.1972, off=None)  # type: ignore[arg-type]
    _event(vault, "london", start + timedelta(hours=9), start + timedelta(hours=10), "Planning", off=60)
    vault.execute("UPDATE calendar_events SET tzid = 'Europe/London'")
    assert str(home_zone(vault)) == "Europe/London"
    texts = [m.text for m in memories.from_sources(vault, now=datetime(2025, 8, 1, tzinfo=UTC))]
    assert any(t.startswith(f"Visited {GYM}") and "on Mon 2 Jun 2025 18:00–19:00" in t for t in texts)
    assert any(t.startswith(f"Regular place: {GYM}") and "usually Mon and Thu 18:00–19:00" in t for t in texts)


def test_a_question_with_a_time_window_gets_what_happened_in_it_not_routines(routines_svc: MemoryService):
    windowed = routines_svc.search("design review with Priya in the last 30 days", k=10, now=NOW).hits
    assert windowed[0].memory.kind == "event" and not any(h.memory.kind == "routine" for h in windowed)
    last = routines_svc.search("when did I last go to the gym", k=5, now=NOW).hits
    assert last and last[0].memory.kind == "visit"
    assert any(h.memory.kind == "routine" for h in routines_svc.search("design review with Priya", k=20, now=NOW).hits)
    asked = routines_svc.search("design review", k=5, kinds=["routine"], since=NOW - timedelta(days=30), now=NOW)
    assert asked.hits and all(h.memory.kind == "routine" for h in asked.hits)  # named kinds are kept


def test_the_report_inventory_counts_memories_by_kind_and_sensitivity_routines_included(
        vault: Vault, routines_svc: MemoryService):
    from reports.build import build
    from reports.html import render

    report = build(vault)
    rows = {(r["kind"], r["sensitivity"]): r["memories"] for r in report["inventory"]["memories"]}
    expected = dict(((k, s), n) for k, s, n in vault.query(
        "SELECT kind, sensitivity, count(*) FROM memories GROUP BY ALL"))
    assert rows == expected and rows[("routine", "place")] >= 1 and rows[("routine", "area")] >= 1
    page = render(report)
    assert "Memories, by kind and by who may see them" in page and GYM not in page
