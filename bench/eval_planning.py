"""Planning and habit tasks from the synthetic persona's ground truth (synth/), for bench/eval_retrieval.py.

    python -m bench.eval_retrieval --days 120 --planning

  coverage     planning tasks ("plan my week around the gym and meetings", "what's on tomorrow?", "plan next
               week", "when can I fit in the gym next week?") asked at several past instants inside the data,
               with budgets of 400 and 1500 tokens. The needed items are the calendar occurrences of the task's
               window (planning.window: what the task means) that the truth holds, not cancelled, and the gym
               routine when the task names the gym. An event is present when its memory is a snippet or in a
               snippet's `also`; the routine when a routine snippet names the gym. Coverage = present / needed,
               pooled over the tasks.
  duplicates   share of snippets whose series_key (embeddings/context.py) equals another snippet's in the same
               pack, over the planning packs and packs for the retrieval questions (asked at the period's end).
  routines     each planted habit's routine against the truth: regular places (the gym among them) and work,
               the calendar's recurring series, the top apps. Days are right when the routine states exactly
               the weekdays holding at least DAY_SHARE of the truth's occurrences (a series stated "monthly":
               when the truth's median gap between its days is a month); hours when its start is within
               HOUR_TOLERANCE of the truth's median local start. Apps are judged on hours only (the truth
               plants no weekdays for them): the routine's two-hour window of most use starts within an hour
               of the truth's (minutes by the local hour sessions start), or both say "spread over the day".
               A habit without a routine is wrong.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from embeddings import planning
from embeddings import routines as rt
from embeddings.context import ContextPack, series_key
from embeddings.labels import fold
from embeddings.retrieve import Hit
from embeddings.service import MemoryService
from vault.store import Vault

LONDON = ZoneInfo("Europe/London")
BUDGETS = (400, 1500)
INSTANTS = 6  # "now" instants spread over the data
HOUR_TOLERANCE = timedelta(minutes=15)
GYM = "gym"  # the truth's place key of the gym
TASKS = (  # (task, names the gym)
    ("plan my week around the gym and meetings", True),
    ("what's on tomorrow?", False),
    ("plan next week", False),
    ("when can I fit in the gym next week?", True),
)
_DAYS = {d: i for i, d in enumerate(rt.DAYS)}
_PATTERN = re.compile(r"(every day|monthly|about every \d+ (?:weeks|months)|(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
                      r"(?:–(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun))?(?:, | and )?)+) (\d\d):(\d\d)–\d\d:\d\d")
MONTHLY = (17, 35)  # a series whose median gap between days lies here meets monthly (routines.cadence)
_PEAK = re.compile(r"mostly (\d\d):00–\d\d:00")


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    task: str
    budget: int
    now: datetime
    needed: int
    present: int
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Habit:
    kind: str  # place | work | meeting | app
    name: str
    truth: str  # "Mon, Tue and Thu 17:40"
    stated: str  # the routine's sentence, or "" when none
    days_ok: bool | None  # None: not judged (the truth plants no weekdays for apps)
    hours_ok: bool


def instants(period: tuple[datetime, datetime]) -> list[datetime]:
    """Alternately a Sunday 18:00 and a Wednesday 07:30 (London), spread from 30% to 80% of the period, so the
    data before holds the routines and the calendar after holds the window (next week ends 15 days later)."""
    start, end = period
    out = []
    for i in range(INSTANTS):
        day = (start + (end - start) * (0.3 + 0.5 * i / max(1, INSTANTS - 1))).astimezone(LONDON)
        weekday, hour, minute = (6, 18, 0) if i % 2 == 0 else (2, 7, 30)
        day += timedelta(days=(weekday - day.weekday()) % 7)
        now = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if now + timedelta(days=15) <= end:
            out.append(now)
    return out


def _event_ids(vault: Vault, truth) -> dict[int, str]:  # noqa: ANN001 - synth.GroundTruth
    """The memory of each non-cancelled occurrence the truth holds -> its title (matched by title and start)."""
    rows = vault.query("SELECT memory_id, start_ts, json_extract_string(details, '$.title') FROM memories "
                       "WHERE kind = 'event'")
    by_key = {(fold(title or ""), s): mid for mid, s, title in rows}
    by_day: dict[tuple[str, object], int] = {(fold(title or ""), s.astimezone(UTC).date()): mid for mid, s, title in rows}
    out = {}
    for o in truth.occurrences:
        if o.status == "CANCELLED":
            continue
        mid = by_key.get((fold(o.title), o.start))
        if mid is None and o.all_day:  # a floating all-day event: its memory starts that day, at some offset
            mid = by_day.get((fold(o.title), o.start.date()))
        if mid is not None:
            out[mid] = o.title
    return out


def coverage(svc: MemoryService, vault: Vault, truth) -> tuple[list[Coverage], list[ContextPack]]:  # noqa: ANN001
    events = _event_ids(vault, truth)
    starts = dict(vault.query("SELECT memory_id, start_ts FROM memories WHERE kind = 'event'"))
    gym = truth.place(GYM).name
    results, packs = [], []
    for now in instants(truth.period):
        for task, names_gym in TASKS:
            plan = planning.window(task, now)
            assert plan is not None, task
            since, until, _ = plan
            needed = {mid for mid in events if since <= starts[mid] < until}
            for budget in BUDGETS:
                pack = svc.context(task, token_budget=budget, now=now)
                packs.append(pack)
                shown = {i for s in pack.snippets for i in (s.memory_id, *s.also)}
                missing = [events[m] for m in sorted(needed - shown, key=lambda m: starts[m])]
                present = len(needed) - len(missing)
                if names_gym:
                    if any(s.kind == "routine" and gym in s.text for s in pack.snippets):
                        present += 1
                    else:
                        missing.append("gym routine")
                results.append(Coverage(task=task, budget=budget, now=now, needed=len(needed) + names_gym,
                                        present=present, missing=tuple(missing)))
    return results, packs


def duplicates(svc: MemoryService, packs: Sequence[ContextPack]) -> tuple[int, int]:
    """(snippets sharing their series_key with another snippet of their pack, snippets) over the packs."""
    dup = total = 0
    for pack in packs:
        keys = [series_key(Hit(memory=svc.get(s.memory_id), score=s.score, rank=s.n, signals={}))
                for s in pack.snippets]
        counts = Counter(keys)
        dup += sum(counts[k] > 1 for k in keys)
        total += len(keys)
    return dup, total


# ---- routine accuracy -------------------------------------------------------------------------------------
def parse_days(phrase: str) -> set[int]:
    """The inverse of routines.days_phrase ("Mon–Fri", "Mon, Tue and Thu", "every day")."""
    if phrase == "every day":
        return set(range(7))
    out: set[int] = set()
    for part in re.split(r", | and ", phrase):
        a, _, b = part.partition("–")
        out |= set(range(_DAYS[a], _DAYS[b or a] + 1))
    return out


def _pattern(text: str) -> tuple[set[int] | str, int] | None:
    """(days, or a cadence without weekdays such as "monthly", and the start minute) a place or meeting routine
    states."""
    m = _PATTERN.search(text)
    if m is None:
        return None
    days = m.group(1).rstrip(", ")
    return (days if days.startswith(("monthly", "about")) else parse_days(days)), int(m.group(2)) * 60 + int(m.group(3))


def _truth_pattern(starts: Sequence[datetime]) -> tuple[set[int], int]:
    counts = Counter(s.weekday() for s in starts)
    days = {d for d, c in counts.items() if c >= rt.DAY_SHARE * len(starts)}
    return days, int(statistics.median(s.hour * 60 + s.minute for s in starts))


def _say(days: set[int], minute: int) -> str:
    return f"{rt.days_phrase(days)} {minute // 60:02d}:{minute % 60:02d}"


def _judge(kind: str, name: str, starts: Sequence[datetime], routine: str | None) -> Habit:
    days, minute = _truth_pattern(starts)
    stated = _pattern(routine) if routine else None
    if stated is None:
        return Habit(kind=kind, name=name, truth=_say(days, minute), stated=routine or "", days_ok=False, hours_ok=False)
    if isinstance(stated[0], str):  # "monthly": right when the truth's series meets monthly
        dates = sorted({s.date() for s in starts})
        gap = statistics.median((b - a).days for a, b in zip(dates, dates[1:], strict=False)) if len(dates) > 1 else 0
        days_ok = stated[0] == "monthly" and MONTHLY[0] <= gap <= MONTHLY[1]
    else:
        days_ok = stated[0] == days
    gap = abs(stated[1] - minute)
    return Habit(kind=kind, name=name, truth=_say(days, minute), stated=routine or "", days_ok=days_ok,
                 hours_ok=min(gap, 24 * 60 - gap) <= HOUR_TOLERANCE.total_seconds() / 60)


def habits(vault: Vault, truth) -> list[Habit]:  # noqa: ANN001, C901 - one block per kind of habit
    import json

    rows = [(text, json.loads(details or "{}"), tags) for text, details, tags in vault.query(
        "SELECT text, details, tags FROM memories WHERE kind = 'routine'")]
    places = {p.key: p for p in truth.places}
    out: list[Habit] = []
    # places: the same window and thresholds as the routine (PLACE_WEEKS back from the newest visit)
    newest = max(v.end for v in truth.visits)
    recent = [v for v in truth.visits if v.end > newest - timedelta(weeks=rt.PLACE_WEEKS)]
    by_place: dict[str, list] = defaultdict(list)
    for v in recent:
        by_place[v.place].append(v)
    for key, vs in sorted(by_place.items()):
        p = places[key]
        if p.category == "HOME":
            continue
        loc = [(v.start.astimezone(ZoneInfo(v.tz)), v.end.astimezone(ZoneInfo(v.tz))) for v in vs]
        if p.category == "WORK":
            loc = [(s, e) for s, e in loc if s.weekday() < 5 and _work_hours(s, e) >= 2]
            routine = next((t for t, d, _ in rows if (d.get("role") == "work" and (d.get("place") or {}).get("name") == p.name)), None)
        else:
            weeks = {s.isocalendar()[:2] for s, _ in loc}
            if len(loc) < rt.MIN_PLACE_VISITS or len(weeks) < rt.MIN_PLACE_WEEKS:
                continue
            routine = next((t for t, d, tags in rows if "place" in tags and (d.get("place") or {}).get("name") == p.name), None)
        out.append(_judge("work" if p.category == "WORK" else "place", p.name, [s for s, _ in loc], routine))
    # meetings: the calendar's recurring series (occurrences with a recurrence id), timed and not cancelled
    series: dict[str, list[datetime]] = defaultdict(list)
    for o in truth.occurrences:
        if o.recurrence_id and not o.all_day and o.status != "CANCELLED":
            series[o.title].append(o.start.astimezone(LONDON))
    for title, starts in sorted(series.items()):
        if len(starts) >= rt.MIN_SERIES:
            routine = next((t for t, d, tags in rows if "meeting" in tags and fold(d.get("title") or "") == fold(title)), None)
            out.append(_judge("meeting", title, starts, routine))
    out += _apps(truth, rows)
    return out


def _work_hours(s: datetime, e: datetime) -> float:
    day = s.replace(hour=9, minute=0, second=0, microsecond=0)
    return max(0.0, (min(e, day.replace(hour=17)) - max(s, day)).total_seconds() / 3600)


def _apps(truth, rows: list) -> list[Habit]:  # noqa: ANN001
    """The top apps of the last APP_WEEKS weeks (phone and iPad, by minutes) used on MIN_APP_DAYS days or more:
    the two-hour window of most use and the weekdays, as the routine states them."""
    sessions = [s for s in truth.sessions if s.end > s.start]
    newest = max(s.end for s in sessions)
    window = [s for s in sessions if s.end > newest - timedelta(weeks=rt.APP_WEEKS)]
    by_app: dict[str, list] = defaultdict(list)
    for s in window:
        by_app[s.app].append(s)
    ranked = sorted(by_app.items(), key=lambda kv: -sum((s.end - s.start).total_seconds() for s in kv[1]))
    out = []
    for app, ss in ranked[:rt.TOP_APPS]:
        loc = [s.start.astimezone(LONDON) for s in ss]
        if len({t.date() for t in loc}) < rt.MIN_APP_DAYS:
            continue
        minutes: Counter[int] = Counter()
        for s, t in zip(ss, loc, strict=True):
            minutes[t.hour] += (s.end - s.start).total_seconds() / 60
        total = sum(minutes.values())
        peak = max(range(24), key=lambda h: (minutes[h] + minutes[(h + 1) % 24], minutes[h]))
        spread = (minutes[peak] + minutes[(peak + 1) % 24]) / total < 0.4
        day_counts = Counter(t.weekday() for t in loc)
        days = {d for d, c in day_counts.items() if c >= rt.DAY_SHARE * len(loc)}
        routine = next((t for t, d, tags in rows if "app" in tags and d.get("app") == app), None)
        said = "spread over the day" if spread else f"mostly {peak:02d}:00"
        truth_text = f"{said}, {rt.days_phrase(days)}"
        if routine is None:
            out.append(Habit(kind="app", name=app, truth=truth_text, stated="", days_ok=None, hours_ok=False))
            continue
        m = _PEAK.search(routine)
        hours_ok = ("spread over the day" in routine) if spread else (
            m is not None and min(abs(int(m.group(1)) - peak), 24 - abs(int(m.group(1)) - peak)) <= 1)
        out.append(Habit(kind="app", name=app, truth=truth_text, stated=routine, days_ok=None, hours_ok=hours_ok))
    return out


def _share(flags: Sequence[bool | None]) -> str:
    judged = [f for f in flags if f is not None]
    return f"{sum(judged) / len(judged):.3f}" if judged else "  -  "


def report(cov: Sequence[Coverage], dups: dict[str, tuple[int, int]], hab: Sequence[Habit], *, verbose: bool) -> None:
    print("\nPlanning tasks: coverage of the needed items (window events; the gym routine when named)")
    print(f"{'task':<44} {'budget':>6} {'packs':>5} {'needed':>6} {'coverage':>8}")
    for task, _ in TASKS:
        for budget in BUDGETS:
            rows = [c for c in cov if c.task == task and c.budget == budget]
            need, got = sum(c.needed for c in rows), sum(c.present for c in rows)
            print(f"{task:<44} {budget:>6} {len(rows):>5} {need:>6} {got / max(need, 1):>8.3f}")
    for budget in BUDGETS:
        rows = [c for c in cov if c.budget == budget]
        need, got = sum(c.needed for c in rows), sum(c.present for c in rows)
        print(f"{'all planning tasks':<44} {budget:>6} {len(rows):>5} {need:>6} {got / max(need, 1):>8.3f}  (goal >= 0.9)")
    print("\nNear-duplicate snippets (same series_key as another snippet of the pack; goal <= 0.1)")
    for name, (d, n) in dups.items():
        print(f"{name:<44} {n:>6} snippets {d / max(n, 1):>8.3f}")
    print("\nRoutine accuracy against the truth (days: the weekdays of >= "
          f"{rt.DAY_SHARE:.0%} of occurrences; hours: start within {HOUR_TOLERANCE.seconds // 60} min / app peak within 1 h)")
    for kind in ("place", "work", "meeting", "app", "all"):
        habits = [h for h in hab if kind in ("all", h.kind)]
        if habits:
            print(f"{kind:<9} {len(habits):>3} habits  days {_share([h.days_ok for h in habits])}  "
                  f"hours {_share([h.hours_ok for h in habits])}  "
                  f"both {_share([h.hours_ok and h.days_ok is not False for h in habits])}")
    if verbose:
        for c in cov:
            if c.missing:
                print(f"MISSING [{c.task} @ {c.now:%a %d %b %H:%M}, {c.budget}] {c.needed - c.present}/{c.needed}: "
                      f"{', '.join(c.missing[:8])}")
        for h in hab:
            if not h.hours_ok or h.days_ok is False:
                print(f"HABIT [{h.kind}] {h.name}: truth {h.truth}; routine: {h.stated or '(none)'}")
