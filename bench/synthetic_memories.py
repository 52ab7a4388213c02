"""Synthetic memory texts and queries from templates (for the encode and latency benchmarks).

They look like what embeddings/memories.py writes (visits, events with descriptions, usage, notes), with
lengths from ~15 to ~150 tokens, so batching and padding behave as on real data.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

PLACES = [("Café Nero", "café"), ("Pret A Manger", "café"), ("Dishoom", "restaurant"), ("PureGym", "gym"),
          ("Dr. Lee Family Clinic", "doctor"), ("Waitrose", "supermarket"), ("British Library", "library"),
          ("Hyde Park", "park"), ("The Crown", "pub"), ("Kings Rd Dental", "dentist"), ("Boots", "pharmacy"),
          ("Tate Modern", "museum"), ("Acme Office", "work"), ("Home", "home")]
STREETS = ["Kings Rd", "Fulham Rd", "Harley St", "Euston Rd", "Bankside", "Park Lane", "Old St", "Elm Grove"]
PEOPLE = ["Ann Lee", "Bob Stone", "Ana Sousa", "Priya Shah", "Tom Baker", "Mei Chen", "Omar Haddad", "Lena Vogel"]
TOPICS = ["quarterly planning", "dentist check-up", "design review", "1:1", "budget", "hiring loop", "book club",
          "yoga class", "piano lesson", "school run", "car service", "tax return", "flat viewing"]
APPS = [("YouTube", "Video"), ("Slack", "Communication"), ("Instagram", "Social"), ("Spotify", "Music"),
        ("Google Maps", "Navigation"), ("Gmail", "Communication"), ("Netflix", "Video"), ("Strava", "Health & Fitness")]
NOTE_BITS = ["prefers the window seat", "is allergic to peanuts", "wants to learn Portuguese before the trip",
             "the spare key is with the neighbour at number 5", "the cabin wifi password is on the fridge",
             "asked to be reminded about the passport renewal in May", "likes oat milk flat whites",
             "recommended the book 'The Overstory'", "parks on level 2 at the station"]


def _when(rng: random.Random, base: datetime) -> tuple[datetime, datetime]:
    start = base + timedelta(days=rng.randrange(365), hours=rng.randrange(6, 23), minutes=rng.randrange(60))
    return start, start + timedelta(minutes=rng.choice([15, 30, 45, 60, 90, 120]))


def _label(start: datetime, end: datetime) -> str:
    return f"on {start:%a} {start.day} {start:%b %Y} {start:%H:%M}–{end:%H:%M}"


def texts(n: int, *, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        s, e = _when(rng, base)
        kind = rng.random()
        if kind < 0.4:
            name, typ = rng.choice(PLACES)
            out.append(f"Visited {name} #{i % 997}, {rng.randrange(1, 200)} {rng.choice(STREETS)}, London ({typ}) "
                       f"{_label(s, e)} ({int((e - s).total_seconds() // 60)} min)")
        elif kind < 0.7:
            people = ", ".join(rng.sample(PEOPLE, rng.randrange(1, 5)))
            desc = " ".join(rng.choice(TOPICS) + "." for _ in range(rng.randrange(0, 12)))
            out.append(f"Calendar: {rng.choice(TOPICS).capitalize()} {_label(s, e)} at {rng.choice(STREETS)}, "
                       f"with {people}. {desc}".strip())
        elif kind < 0.9:
            app, cat = rng.choice(APPS)
            out.append(f"Used {app} ({cat}) {_label(s, e)}: {rng.randrange(1, 90)} min in {rng.randrange(1, 6)} sessions")
        else:
            bits = " Also, ".join(rng.sample(NOTE_BITS, rng.randrange(1, 6)))
            out.append(f"{rng.choice(PEOPLE)} {bits}.")
    return out


def queries(n: int, *, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    forms = ["when did I last go to {place}", "coffee on {street}", "meetings with {person} about {topic}",
             "how long was I on {app} last month", "what did {person} say about {topic}", "{topic} with {person}",
             "where was I on Saturday evening near {street}", "notes about {person}", "gym sessions in March",
             "dinner at {place} with {person}"]
    return [rng.choice(forms).format(place=rng.choice(PLACES)[0], street=rng.choice(STREETS),
                                     person=rng.choice(PEOPLE), topic=rng.choice(TOPICS), app=rng.choice(APPS)[0])
            + f" {i}" * (i % 3 == 0) for i in range(n)]
