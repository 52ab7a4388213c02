"""Is a task about the future, and which window? ("plan my week", "what's on tomorrow", "next week").

    window("plan my week around the gym and meetings", now) -> (now, now + 7 days)
    window("when did I last see Dr Lee", now) -> None  (a question about the past keeps search behaviour)

Always about the future: tomorrow, later today, next week (Monday to Monday), next weekend, next month,
next|coming N days|weeks. With a planning word (plan, schedule, prepare, organise, book, upcoming, coming up,
ahead, agenda, what's on) also: today / tonight, this week / my week / the week / rest of the week (to the next
Monday; from Friday evening on, the Monday after); and a planning word alone means the next PLAN_DAYS days. "What did I do today" is
about the past. Day boundaries are in `now`'s time zone. The phrase found is
returned so the caller can drop it from the text it ranks by. agenda() lists the window's events as a caller
sees them and the free time between them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from embeddings import context as ctx
from embeddings import retrieve
from embeddings.agenda import free_slots, waking_days
from embeddings.records import MemoryRecord
from embeddings.redaction import Redaction

EVENTS_IN_PLAN = 200  # events of the window in a planning pack (the budget decides how many are written)

PLAN_DAYS = 7
MAX_DAYS = 92  # "next 1000 days" is read as the next quarter, at most

_VERB = re.compile(r"\b(?:plan(?:ning)?|schedul(?:e|ing)|prepar(?:e|ing)|organi[sz](?:e|ing)|book(?:ing)?|upcoming|"
                   r"coming\s+up|ahead|agenda|what'?s\s+on)\b", re.IGNORECASE)


def _midnight(d: datetime) -> datetime:
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


def window(task: str, now: datetime) -> tuple[datetime, datetime, str] | None:
    """(since, until, the phrase understood) for a task about the future, else None. `now` must be aware."""
    today = _midnight(now)
    monday = today - timedelta(days=today.weekday())

    week_end = monday + timedelta(days=7)  # "my week" on a Saturday or Sunday is the coming one
    if week_end - now < timedelta(days=3):
        week_end += timedelta(days=7)

    def days(n: int) -> timedelta:
        return timedelta(days=max(1, min(n, MAX_DAYS)))

    future: list[tuple[str, Callable[[re.Match[str]], tuple[datetime, datetime]]]] = [  # phrases that are about the future whatever else the task says
        (r"\btomorrow\b", lambda m: (today + timedelta(days=1), today + timedelta(days=2))),
        (r"\bnext\s+weekend\b", lambda m: (monday + timedelta(days=12), monday + timedelta(days=14))),
        (r"\bnext\s+week\b", lambda m: (monday + timedelta(days=7), monday + timedelta(days=14))),
        (r"\bnext\s+month\b", lambda m: (_next_month(today), _next_month(_next_month(today)))),
        (r"\b(?:next|coming)\s+(?P<n>\d{1,6})\s+(?P<u>day|week)s?\b",
         lambda m: (now, now + days(int(m["n"]) * (7 if m["u"].lower() == "week" else 1)))),
        (r"\blater\s+today\b", lambda m: (now, today + timedelta(days=1))),
    ]
    current: list[tuple[str, Callable[[re.Match[str]], tuple[datetime, datetime]]]] = [  # about the future only in a planning task ("what did I do today")
        (r"\b(?:today|tonight)\b", lambda m: (now, today + timedelta(days=1))),
        (r"\b(?:this|my|the|rest\s+of\s+(?:the|my))\s+week\b", lambda m: (now, week_end)),
    ]
    planning = _VERB.search(task) is not None
    for pattern, make in future + (current if planning else []):
        m = re.search(pattern, task, re.IGNORECASE)
        if m is not None:
            since, until = make(m)
            return since, until, m.group(0)
    if planning:
        return now, now + timedelta(days=PLAN_DAYS), ""
    return None


def _next_month(d: datetime) -> datetime:
    return (d.replace(day=1) + timedelta(days=32)).replace(day=1)


def agenda(catalog: retrieve.Catalog, since: datetime, until: datetime, *, kinds: frozenset[str] | None,
           redaction: Redaction, now: datetime,
           fetch: Callable[[list[int]], dict[int, MemoryRecord]]) -> ctx.Agenda:
    """The window's events as the caller sees them (time order; `fetch` reads them in the caller's view) and the
    free time between the timed, non-cancelled ones, within the waking day (agenda.py)."""
    offset = int((now.utcoffset() or timedelta(0)).total_seconds() // 60)
    if kinds is not None and "event" not in kinds:
        return ctx.Agenda(since=since, until=until, offset_min=offset)
    mask = catalog.mask(retrieve.Filters(kinds=frozenset({"event"}), since=since, until=until), redaction.visible)
    records = fetch(catalog.ids[mask].tolist())
    events = sorted((r for r in records.values() if r.start_ts is not None and r.start_ts < until),
                    key=lambda r: (r.start_ts, r.memory_id))[:EVENTS_IN_PLAN]
    busy = [(r.start_ts, r.end_ts) for r in events if r.start_ts is not None
            and not r.details.get("all_day") and str(r.details.get("status") or "").upper() != "CANCELLED"]
    utc = since.astimezone(UTC), until.astimezone(UTC)  # waking_days counts days from UTC instants
    free = [slot for a, b in waking_days(*utc, offset) for slot in free_slots(busy, a, b)]
    return ctx.Agenda(since=since, until=until, offset_min=offset, free=tuple(free),
                      events=tuple(retrieve.Hit(memory=r, score=1.0, rank=i + 1, signals={})
                                   for i, r in enumerate(events)))
