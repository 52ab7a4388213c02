"""Retrieval evaluation: questions with known answer memories; recall@1/5/10 and MRR for dense, lexical, hybrid.

    python -m bench.eval_retrieval [--days 60] [--seed 7] [--dtype auto|float32|bfloat16] [--show-misses] [--handmade]
                                   [--planning [--no-search]]

Default: the synth/ persona (`generate(...)` -> Manifest with its ground truth), written as real
exports and loaded by the real ingest pipeline (detection, parsing, stays/trips/sessions derivation),
then indexed by MemoryService like any vault; questions come from the truth (bench/eval_synth.py: place,
last visit, schedule, people, usage, trips, temporal). The persona writes no notes, so the agent notes
below (facts, and identifiers an agent searches for verbatim) are added through MemoryService.remember
with their questions (categories notes and exact). `--handmade` uses instead a persona generated here
and inserted with SQL into the tables ingest fills (written before synth/ existed).
Questions are phrased differently from the memory texts (paraphrases, first names, types instead of
names, relative dates). A question is answered at k when any of its answer memories is in the top k;
MRR is over the top 10. All three modes run in the same process over the same index.
Caveat: questions and memory texts come from templates written by the same hands as the retriever.
`--planning` (synthetic persona only) adds the planning and habit tasks of bench/eval_planning.py: coverage
of context packs for tasks about the future, their share of near-duplicate snippets (and that of packs for
PAST_PACKS of the questions above), and the routines' days and hours against the truth.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.questions import Question
from embeddings.encoder import Encoder
from embeddings.service import MemoryService
from vault.keys import KdfParams
from vault.store import Vault

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday; London in winter: local time = UTC
# (name, type, street, lat, lon)
PLACES = [
    ("Monmouth Coffee", "cafe", "Borough Market", 51.5055, -0.0910), ("Grind Shoreditch", "cafe", "Old St", 51.5256, -0.0877),
    ("Café Nero", "cafe", "Kings Rd", 51.4873, -0.1689), ("Dishoom Covent Garden", "restaurant", "Upper St Martin's Ln", 51.5124, -0.1269),
    ("Padella", "restaurant", "Borough Market", 51.5054, -0.0906), ("Bao Soho", "restaurant", "Lexington St", 51.5133, -0.1367),
    ("Honest Burgers", "restaurant", "Brixton Village", 51.4627, -0.1129), ("Dr. Lee Family Clinic", "doctor", "Harley St", 51.5206, -0.1478),
    ("St Thomas' Hospital", "hospital", "Westminster Bridge Rd", 51.4985, -0.1185), ("Kings Rd Dental", "dentist", "Kings Rd", 51.4860, -0.1710),
    ("PureGym Chelsea", "gym", "Fulham Rd", 51.4862, -0.1786), ("Third Space Soho", "gym", "Glasshouse St", 51.5103, -0.1363),
    ("Hyde Park", "park", "Park Lane", 51.5073, -0.1657), ("Richmond Park", "park", "Richmond", 51.4420, -0.2760),
    ("Waitrose Chelsea", "supermarket", "Kings Rd", 51.4880, -0.1650), ("Boots Victoria", "pharmacy", "Victoria St", 51.4965, -0.1420),
    ("Foyles", "store", "Charing Cross Rd", 51.5143, -0.1300), ("Tate Modern", "museum", "Bankside", 51.5076, -0.0994),
    ("British Museum", "museum", "Great Russell St", 51.5194, -0.1270), ("The Churchill Arms", "pub", "Kensington Church St", 51.5069, -0.1947),
    ("The Crown", "pub", "Brewer St", 51.5115, -0.1352), ("King's Cross Station", "station", "Euston Rd", 51.5308, -0.1238),
    ("Heathrow Terminal 5", "airport", "Heathrow", 51.4723, -0.4889), ("British Library", "library", "Euston Rd", 51.5300, -0.1276),
    ("Curzon Soho", "cinema", "Shaftesbury Ave", 51.5130, -0.1310), ("Battersea Vets", "veterinary", "Battersea Park Rd", 51.4770, -0.1560),
    ("Oakwood Primary School", "school", "Oakwood Rd", 51.4790, -0.1900), ("Toni & Guy", "hair salon", "Sloane Sq", 51.4925, -0.1565),
]
HOME = ("Home", "TYPE_HOME", "Elm Grove", 51.4801, -0.1950)
WORK = ("Acme Office", "TYPE_WORK", "Finsbury Sq", 51.5215, -0.0860)
PEOPLE = [("Ann", "Lee"), ("Bob", "Stone"), ("Ana", "Sousa"), ("Priya", "Shah"), ("Tom", "Baker"), ("Mei", "Chen"),
          ("Omar", "Haddad"), ("Lena", "Vogel"), ("Sam", "Okafor"), ("Ivy", "Park")]
PROJECTS = ["checkout flow", "onboarding", "search page", "billing export", "mobile app"]
# (title template, question template): the question never repeats the title word for word
EVENTS = [
    ("Lunch with {first} {last}", "when did I have lunch with {first}?"),
    ("Coffee with {first} {last}", "when did I grab a coffee with {first}?"),
    ("Design review: {project}", "when did we go over the {project} designs?"),
    ("Dentist check-up", "when was my appointment at the dentist?"),
    ("Haircut", "when did I get my hair cut?"),
    ("Vet appointment for Biscuit", "when did the dog see the vet?"),
    ("Parents' evening at Oakwood", "when was the parents evening at school?"),
    ("Flat viewing on {street}", "when did I look at the apartment on {street}?"),
    ("{first}'s birthday drinks", "when did we celebrate {first}'s birthday?"),
    ("Mortgage call with the bank", "when did I speak to the bank about the mortgage?"),
    ("Piano lesson", "when do I have piano?"),
    ("Physio session", "when did I see the physiotherapist?"),
]
APPS = [("com.google.android.youtube", "YouTube", "Video"), ("com.slack", "Slack", "Communication"),
        ("com.instagram.android", "Instagram", "Social"), ("com.spotify.music", "Spotify", "Music"),
        ("com.strava", "Strava", "Health & Fitness"), ("com.netflix.mediaclient", "Netflix", "Video"),
        ("com.duolingo", "Duolingo", "Education")]
NOTES = [  # (note, question)
    ("Ana's birthday is on 14 May; she loves peonies.", "when is Ana's birthday?"),
    ("The cabin wifi password is larch-42.", "what's the internet password at the cabin?"),
    ("Biscuit the dog is allergic to chicken.", "what food can't my dog eat?"),
    ("Prefers aisle seats on long-haul flights.", "which seat do I like on planes?"),
    ("Landlord is Mr. Patel; rent is due on the 1st of each month.", "when do I have to pay the rent?"),
    ("Passport expires in August 2026; renew before the summer.", "when does my passport run out?"),
    ("Mum's favourite flowers are tulips.", "what flowers should I buy for my mother?"),
    ("The car is a blue 2018 Skoda Octavia, plate LK18 XYZ.", "what is my car's registration number?"),
    ("Priya recommended the book 'The Overstory'.", "which novel did Priya suggest?"),
    ("Locker code at the gym is 4711.", "what's the combination for my gym locker?"),
    ("Tom is vegetarian and doesn't drink.", "does Tom eat meat?"),
    ("The boiler was serviced by HeatPro in January.", "who fixed the heating last time?"),
    ("Spare house key is with the neighbour at number 5.", "where can I find a spare key to the house?"),
    ("Doctor said to take vitamin D through the winter.", "what supplement did the GP recommend?"),
    ("Mei's kids are called Lily and Max.", "what are the names of Mei's children?"),
    ("Home insurance renews every March with Aviva.", "who is my home insurer?"),
    ("Favourite order at Dishoom: black daal and bacon naan.", "what do I usually get at Dishoom?"),
    ("Omar is moving to Berlin in the summer.", "which city is Omar relocating to?"),
    ("Lena's phone number changed; use the new one ending 221.", "has Lena got a new number?"),
    ("Book club meets on the last Thursday of the month.", "how often does the reading group meet?"),
    ("Sam lent me a tent in February; return it.", "what do I owe Sam?"),
    ("Ivy is allergic to cats.", "who can't be around cats?"),
    ("The kitchen tap leaks; plumber booked for next week.", "why did I book a plumber?"),
    ("Council tax band is D.", "which council tax band are we in?"),
    ("Gym membership costs 35 pounds a month.", "how much do I pay for the gym?"),
    ("Wedding anniversary is 9 September.", "when is our anniversary?"),
    ("The best running route is along the river to Putney Bridge.", "where do I like to go jogging?"),
    ("Bob's daughter started at university in Leeds.", "where does Bob's daughter study?"),
    ("Parking permit number is CH-88231.", "what's my resident parking permit?"),
    ("Electricity supplier is Octopus Energy.", "which company supplies our power?"),
]
EXACT = [  # identifiers and rare names an agent searches for verbatim (the dense model knows little of them)
    ("Wi-fi at the allotment shed: SSID plot17, key 93jq-ttx.", "93jq-ttx"),
    ("Insurance policy number AV-5530-221.", "AV-5530-221"),
    ("Bike frame number WTU118C4423.", "WTU118C4423"),
    ("The plumber is Kowalczyk Plumbing, 07700 900461.", "Kowalczyk"),
    ("Biscuit's microchip is 985141000123456.", "985141000123456"),
    ("Tax reference UTR 1234 56789.", "UTR 1234 56789"),
    ("Locker at King's Cross left luggage: ticket KX-0042.", "KX-0042"),
    ("Ann recommended the Zumthor book on atmospheres.", "Zumthor"),
    ("Nursery waiting list reference NWL/2025/118.", "NWL/2025/118"),
    ("Ivy's new surname after the wedding is Castellanos.", "Castellanos"),
    ("Guest wifi at Mum's: Hawthorn_5G.", "Hawthorn_5G"),
    ("The router admin PIN is 5521.", "router PIN"),
    ("Storage unit 4B at Big Yellow Battersea.", "Big Yellow unit"),
    ("Omar's new address is Kastanienallee 12, Berlin.", "Kastanienallee"),
    ("Parcel tracking JD014600003828.", "JD014600003828"),
    ("Dentist is Dr. Nwachukwu at Kings Rd Dental.", "Nwachukwu"),
    ("Prescription for amoxicillin collected at Boots.", "amoxicillin"),
    ("Sam's band is called The Quiet Marmots.", "Quiet Marmots"),
    ("Library card number 29011003456.", "29011003456"),
    ("Flight BA2490 to Lisbon on 12 April.", "BA2490"),
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Visit:
    key: str
    place: tuple[str, str, str, float, float]
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    uid: str
    title: str
    question: str
    start: datetime
    end: datetime
    location: str | None
    people: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    app: tuple[str, str, str]
    start: datetime
    minutes: int


@dataclass(slots=True, kw_only=True)
class GroundTruth:
    visits: list[Visit] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    notes: list[tuple[str, str, datetime]] = field(default_factory=list)
    end: datetime = START


def persona(*, seed: int, days: int) -> GroundTruth:
    rng = random.Random(seed)
    t = GroundTruth(end=START + timedelta(days=days))
    for d in range(days):
        day = START + timedelta(days=d)
        weekday = day.weekday() < 5
        t.visits.append(Visit(key=f"home{d}", place=HOME, start=day - timedelta(hours=5), end=day + timedelta(hours=7, minutes=30)))
        slots = [(12, 13), (17, 19), (19, 22)] if weekday else [(9, 11), (11, 14), (14, 17), (18, 22)]
        if weekday:
            t.visits.append(Visit(key=f"work{d}", place=WORK, start=day + timedelta(hours=9), end=day + timedelta(hours=12)))
        for a, b in rng.sample(slots, rng.randint(1, 2)):
            p = rng.choice(PLACES)
            s = day + timedelta(hours=a, minutes=rng.choice([0, 10, 20, 30]))
            t.visits.append(Visit(key=f"v{d}-{a}", place=p, start=s, end=min(s + timedelta(minutes=rng.choice([30, 45, 60, 90])),
                                                                             day + timedelta(hours=b))))
        if day.weekday() in (0, 2, 4):
            t.events.append(Event(uid=f"standup{d}", title="Team standup", question="", start=day + timedelta(hours=9, minutes=30),
                                  end=day + timedelta(hours=9, minutes=45), location=None, people=(("Bob", "Stone"), ("Priya", "Shah"))))
        if rng.random() < 0.8:
            title_t, q_t = rng.choice(EVENTS)
            first, last = rng.choice(PEOPLE)
            fill = {"first": first, "last": last, "project": rng.choice(PROJECTS), "street": rng.choice(PLACES)[2]}
            s = day + timedelta(hours=rng.choice([8, 13, 16, 18]), minutes=rng.choice([0, 30]))
            loc = rng.choice([None, f"{rng.choice(PLACES)[0]}, {rng.choice(PLACES)[2]}"])
            t.events.append(Event(uid=f"e{d}", title=title_t.format(**fill), question=q_t.format(**fill), start=s,
                                  end=s + timedelta(minutes=rng.choice([30, 60])), location=loc,
                                  people=((first, last),) if "{first}" in title_t else ()))
        for app in rng.sample(APPS, rng.randint(3, 5)):
            hour = {"YouTube": rng.choice([13, 21, 23]), "Slack": rng.choice([10, 14]), "Netflix": 20,
                    "Duolingo": 7, "Spotify": 8}.get(app[1], rng.randint(9, 22))
            t.sessions.append(Session(app=app, start=day + timedelta(hours=hour, minutes=rng.randint(0, 40)),
                                      minutes=rng.randint(5, 55)))
    for i, (note, question) in enumerate(NOTES + EXACT):
        t.notes.append((note, question, START + timedelta(days=i * days // (len(NOTES) + len(EXACT)), hours=12)))
    return t


def load(vault: Vault, t: GroundTruth) -> None:
    for v in t.visits:
        name, stype, street, lat, lon = v.place
        vault.execute("INSERT INTO stays VALUES (?, ?, ?, 0, ?, ?, NULL, ?, ?, ?, 'export', NULL)",
                      [vault.row_id("stay", v.key), v.start, v.end, lat, lon, name, f"{street}, London", stype])
    for e in t.events:
        people = [{"name": f"{f} {last}", "email": f"{f.lower()}@{last.lower()}.example", "partstat": "ACCEPTED"}
                  for f, last in e.people]
        vault.execute("INSERT INTO calendar_events VALUES (?, ?, '', ?, ?, 0, 'Europe/London', false, ?, ?, NULL, "
                      "'CONFIRMED', NULL, ?, 'Personal', 'ics', 'cal.ics', 0, 'eval')",
                      [vault.row_id("event", e.uid), e.uid, e.start, e.end, e.title, e.location,
                       json.dumps(people)])
    for s in t.sessions:
        vault.execute("INSERT INTO app_sessions VALUES (?, ?, ?, 0, ?, ?, ?, 'usage_csv')",
                      [vault.row_id("session", s.app[0], s.start), s.start, s.start + timedelta(minutes=s.minutes), *s.app])


def _day(d: datetime) -> str:
    return f"{d.day} {d:%B}"


def questions(vault: Vault, t: GroundTruth, note_ids: list[int], *, seed: int) -> list[Question]:
    rng = random.Random(seed + 1)
    mid = vault.row_id
    qs: list[Question] = []
    by_place: dict[str, list[Visit]] = defaultdict(list)
    for v in t.visits:
        by_place[v.place[0]].append(v)
    for name, visits in by_place.items():
        if name in ("Home", "Acme Office"):
            continue
        ids = frozenset(mid("memory", "visit", mid("stay", v.key)) for v in visits)
        _, typ, street, _, _ = visits[0].place
        qs.append(Question(text=f"Have I been to {name}?", category="place", answers=ids))
        same = [p for p in PLACES if p[1] == typ and p[2] == street]
        if len(same) == 1:
            qs.append(Question(text=f"the {typ} on {street}", category="place", answers=ids))
        last = max(visits, key=lambda v: v.start)
        qs.append(Question(text=f"When did I last go to {name}?", category="place_last",
                           answers=frozenset({mid("memory", "visit", mid("stay", last.key))})))
    by_question: dict[str, list[Event]] = defaultdict(list)
    for e in t.events:
        if e.question:
            by_question[e.question].append(e)
    for q, events in by_question.items():
        qs.append(Question(text=q, category="schedule", answers=frozenset(mid("memory", "event", mid("event", e.uid)) for e in events)))
    for first_name, last_name in PEOPLE:
        ids = frozenset(mid("memory", "event", mid("event", e.uid)) for e in t.events
                        if (first_name, last_name) in e.people and e.title != "Team standup")
        if ids:
            qs.append(Question(text=f"what did I do with {first_name} {last_name}?", category="people", answers=ids))
    cluster_of = {}
    for m, row_ids in vault.query("SELECT memory_id, source_row_ids FROM memories WHERE source_table = 'app_sessions'"):
        for r in row_ids:
            cluster_of[r] = m
    for s in rng.sample(t.sessions, 45):
        sid = cluster_of[mid("session", s.app[0], s.start)]
        qs.append(Question(text=f"how long was I on {s.app[1]} on {_day(s.start)}?", category="usage", answers=frozenset({sid})))
    exact = {note for note, _ in EXACT}
    for (note, question, _), nid in zip(t.notes, note_ids, strict=True):
        qs.append(Question(text=question, category="exact" if note in exact else "notes", answers=frozenset({nid})))
    outings = [v for v in t.visits if v.place[0] not in ("Home", "Acme Office")]
    for v in rng.sample(outings, 40):
        part = "morning" if v.start.hour < 12 else "afternoon" if v.start.hour < 17 else "evening"
        kind = v.place[1] if v.place[1] not in ("cafe",) else "café"
        text = rng.choice([f"where was I on {_day(v.start)} in the {part}?", f"which {kind} did I go to on {_day(v.start)}?"])
        same_day = [w for w in outings if w.start.date() == v.start.date()
                    and (("in the" in text and _part(w) == part) or ("which" in text and w.place[1] == v.place[1]))]
        qs.append(Question(text=text, category="temporal",
                           answers=frozenset(mid("memory", "visit", mid("stay", w.key)) for w in same_day)))
    return qs


def _part(v: Visit) -> str:
    return "morning" if v.start.hour < 12 else "afternoon" if v.start.hour < 17 else "evening"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scores:
    r1: float
    r5: float
    r10: float
    mrr: float
    n: int


def score(ranks: list[int | None]) -> Scores:
    n = len(ranks)
    return Scores(r1=sum(r is not None and r <= 1 for r in ranks) / n, r5=sum(r is not None and r <= 5 for r in ranks) / n,
                  r10=sum(r is not None and r <= 10 for r in ranks) / n,
                  mrr=sum(1 / r for r in ranks if r is not None) / n, n=n)


def evaluate(search: Callable[[str], list[int]], qs: list[Question]) -> dict[str, list[int | None]]:
    out: dict[str, list[int | None]] = defaultdict(list)
    for q in qs:
        ids = search(q.text)
        rank = next((i + 1 for i, m in enumerate(ids) if m in q.answers), None)
        out[q.category].append(rank)
        out["all"].append(rank)
    return out


def _ranked(svc: MemoryService, query: str, *, mode: str, fusion: str, now: datetime) -> list[int]:
    """The memory ids one mode and fusion rank first for a question, best first."""
    return [h.memory.memory_id for h in svc.search(query, k=10, mode=mode, fusion=fusion, now=now).hits]


def _notes(svc: MemoryService, start: datetime, days: int) -> list[Question]:
    """The agent notes (NOTES + EXACT) written through the service, spread over the period, with questions."""
    exact = {note for note, _ in EXACT}
    qs = []
    items = NOTES + EXACT
    for i, (note, question) in enumerate(items):
        at = start + timedelta(days=i * days // len(items), hours=12)
        mid = svc.remember(note, occurred_at=at, source="agent").memory_id
        qs.append(Question(text=question, category="exact" if note in exact else "notes", answers=frozenset({mid})))
    return qs


PAST_PACKS = 60  # retrieval questions whose context packs count towards the near-duplicate share


def _planning(svc: MemoryService, vault: Vault, truth, qs: list[Question], now: datetime, *,  # noqa: ANN001
              verbose: bool) -> None:
    from bench import eval_planning as ep

    cov, packs = ep.coverage(svc, vault, truth)
    asked = random.Random(0).sample(qs, min(PAST_PACKS, len(qs)))
    past = [svc.context(q.text, token_budget=b, now=now) for q in asked for b in ep.BUDGETS]
    dups = {"planning packs": ep.duplicates(svc, packs), "past-question packs": ep.duplicates(svc, past)}
    dups["all packs"] = (dups["planning packs"][0] + dups["past-question packs"][0],
                         dups["planning packs"][1] + dups["past-question packs"][1])
    ep.report(cov, dups, ep.habits(vault, truth), verbose=verbose)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--show-misses", action="store_true")
    ap.add_argument("--handmade", action="store_true", help="the persona generated here, inserted with SQL")
    ap.add_argument("--planning", action="store_true", help="planning and habit tasks (bench/eval_planning.py)")
    ap.add_argument("--no-search", action="store_true", help="skip the search table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        vault, _ = Vault.create(Path(tmp) / "home", "eval", kdf=KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1))
        with vault:
            svc = MemoryService(vault, encoder=Encoder(dtype=args.dtype))
            if not args.handmade:
                from bench import eval_synth

                synth = eval_synth.ingest(vault, Path(tmp) / "exports", seed=args.seed, days=args.days)
                start, now = synth.period  # questions are asked at the end of the period
                note_qs = _notes(svc, start, args.days)
                report = svc.index()
                qs = eval_synth.questions(vault, synth, seed=args.seed) + note_qs
            else:
                truth = persona(seed=args.seed, days=args.days)
                load(vault, truth)
                note_ids = [svc.remember(n, occurred_at=at, source="agent").memory_id for n, _, at in truth.notes]
                report = svc.index()
                qs = questions(vault, truth, note_ids, seed=args.seed)
                now = truth.end
            print(f"persona ({'bench/eval_retrieval.py' if args.handmade else 'synth/'}): {args.days} days, "
                  f"{report.vectors} memories ({svc.encoder.info.dtype}); {len(qs)} questions")
            if args.planning and not args.handmade:
                _planning(svc, vault, synth, qs, now, verbose=args.show_misses)
            if args.no_search:
                svc.close()
                return
            results = {}
            for name, mode, fusion in (("dense", "dense", "score"), ("lexical", "lexical", "score"),
                                       ("hybrid", "hybrid", "score"), ("hybrid, rank fusion", "hybrid", "rrf")):
                results[name] = evaluate(functools.partial(_ranked, svc, mode=mode, fusion=fusion, now=now), qs)
            cats = ["all"] + sorted({q.category for q in qs})
            print(f"{'category':<11} {'n':>4}  " + "  ".join(f"{m:>27}" for m in results))
            print(" " * 17 + "  ".join(f"{'R@1   R@5   R@10  MRR':>27}" for _ in results))
            for c in cats:
                row = [score(results[m][c]) for m in results]
                print(f"{c:<11} {row[0].n:>4}  " + "  ".join(
                    f"{s.r1:5.3f} {s.r5:5.3f} {s.r10:5.3f} {s.mrr:5.3f}".rjust(27) for s in row))
            if args.show_misses:
                for q, r in zip(qs, results["hybrid"]["all"], strict=True):
                    if r is None:
                        hits = svc.search(q.text, k=3, now=now).hits
                        print(f"MISS [{q.category}] {q.text} -> {[h.memory.text[:70] for h in hits]}")
            svc.close()


if __name__ == "__main__":
    main()
