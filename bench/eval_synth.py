"""Questions with known answers from the synthetic persona (synth/) after the real ingest pipeline.

    python -m bench.eval_retrieval [--days 60] [--seed 7]

The persona's exports are generated, ingested by ingest.pipeline.run (detection, parsing, stays/sessions
derivation; the calendar expanded over the persona's period), indexed by MemoryService, and every
question's answers are the memories whose time span matches a ground-truth fact (a visit to a place, a
calendar occurrence, an app session, a trip):
  place       "Have I been to {place}?"                       every visit memory to it
  place_last  "When did I last go to {place}?"                the memory of the latest visit
  schedule    "when did I have {title}?"                      the occurrence's memories (one per date)
  people      "when did I meet {first name}?"                 occurrences with that attendee
  usage       "how long was I on {app} on {day}?"             that app's session clusters that day
  trips       "what did I do in {city} on {day}?"             visits there that day
  temporal    "where was I on {day} in the {morning|...}?"    outside-home visits then
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from bench.questions import Question
from vault.store import Vault

PARTS = {"morning": (6, 12), "afternoon": (12, 17), "evening": (17, 23)}


def _day(d: datetime) -> str:
    return f"{d.day} {d:%B}"


def ingest(vault: Vault, out: Path, *, seed: int, days: int):  # noqa: ANN201 - synth.GroundTruth
    from ingest.pipeline import run
    from synth import generate

    manifest = generate(out, seed=seed, days=days)
    start, end = manifest.truth.period
    run(vault, [out], options={"window_start": start, "window_end": end})
    return manifest.truth


def questions(vault: Vault, truth, *, seed: int) -> list[Question]:  # noqa: ANN001, C901 - one generator per kind
    rng = random.Random(seed)
    visits = vault.query("SELECT memory_id, start_ts, end_ts, details FROM memories WHERE kind = 'visit'")

    def visit_memories(start: datetime, end: datetime) -> set[int]:
        out = set()
        for mid, s, e, _ in visits:
            overlap = (min(e, end) - max(s, start)).total_seconds()
            if overlap > 0.5 * min((e - s).total_seconds(), (end - start).total_seconds()):
                out.add(mid)
        return out

    qs: list[Question] = []
    places = {p.key: p for p in truth.places}
    by_place: dict[str, list] = defaultdict(list)
    for v in truth.visits:
        by_place[v.place].append(v)
    for key, vs in sorted(by_place.items()):
        p = places[key]
        if p.category in ("HOME", "WORK"):
            continue
        ids = set().union(*(visit_memories(v.start, v.end) for v in vs))
        if ids:
            qs.append(Question(text=f"Have I been to {p.name}?", category="place", answers=frozenset(ids)))
        last = max(vs, key=lambda v: v.start)
        last_ids = visit_memories(last.start, last.end)
        if last_ids:
            qs.append(Question(text=f"When did I last go to {p.name}?", category="place_last", answers=frozenset(last_ids)))
    events = vault.query("SELECT memory_id, start_ts, text FROM memories WHERE kind = 'event'")
    by_title: dict[str, set[int]] = defaultdict(set)
    by_person: dict[str, set[int]] = defaultdict(set)
    for o in truth.occurrences:
        if o.status == "CANCELLED" or o.start > truth.period[1]:
            continue
        ids = {mid for mid, s, text in events if s == o.start and o.title in text}
        by_title[o.title] |= ids
        for a in o.attendees:
            by_person[a.name.split()[0]] |= ids
    for title, ids in sorted(by_title.items()):
        if ids and len(qs) < 400:
            qs.append(Question(text=f"when did I have {title.lower()}?", category="schedule", answers=frozenset(ids)))
    for first, ids in sorted(by_person.items()):
        if ids:
            qs.append(Question(text=f"when did I meet {first}?", category="people", answers=frozenset(ids)))
    clusters = vault.query("SELECT memory_id, start_ts, end_ts, details FROM memories WHERE source_table = 'app_sessions'")
    sessions = [s for s in truth.sessions if s.device == "android" and (s.end - s.start) >= timedelta(minutes=3)]
    for s in rng.sample(sessions, min(50, len(sessions))):  # any of that app's clusters that day answers it
        ids = {mid for mid, a, _, det in clusters if a.date() == s.start.date()
               and f'"app": "{s.app}"' in det.replace('":"', '": "')}
        if ids:
            qs.append(Question(text=f"how long was I on {s.app} on {_day(s.start)}?", category="usage", answers=frozenset(ids)))
    for trip in truth.trips:
        city = trip.destination.split(",")[0]
        days = {v.start.date() for v in truth.visits if trip.start <= v.start < trip.end
                and places[v.place].city == city}
        for d in sorted(days)[:3]:
            ids = set().union(*(visit_memories(v.start, v.end) for v in truth.visits
                                if v.start.date() == d and places[v.place].city == city))
            if ids:
                qs.append(Question(text=f"what did I do in {city} on {_day(datetime.combine(d, datetime.min.time()))}?",
                                   category="trips", answers=frozenset(ids)))
    outings = [v for v in truth.visits if places[v.place].category not in ("HOME", "WORK")]
    for v in rng.sample(outings, min(40, len(outings))):
        local = v.start + timedelta(hours=1 if 3 < v.start.month < 11 else 0)  # London, roughly
        part = next((n for n, (a, b) in PARTS.items() if a <= local.hour < b), None)
        if part is None:
            continue
        a, b = PARTS[part]
        same = [w for w in outings if w.start.date() == v.start.date() and a <= w.start.hour + (local.hour - v.start.hour) < b]
        ids = set().union(*(visit_memories(w.start, w.end) for w in same))
        if ids:
            qs.append(Question(text=f"where was I on {_day(local)} in the {part}?", category="temporal",
                               answers=frozenset(ids)))
    return qs
