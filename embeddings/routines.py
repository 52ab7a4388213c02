"""Routines: what the data means, one sentence each, derived from the memories of what happened.

An agent planning a week needs "usually Mon and Thu 18:00–19:15 at the gym", not the last six visits.
Routines are memories of kind `routine`, rebuilt from the visit, event and usage memories every time the
memories are synced (so they follow ingest, and forgetting their sources recomputes or removes them):

  - home and work, by dwell time at night (22:00–06:00) and on weekday working hours (09:00–17:00);
  - places visited regularly (at least MIN_PLACE_VISITS visits in MIN_PLACE_WEEKS distinct weeks of the last
    PLACE_WEEKS weeks), with their weekly pattern and usual hours;
  - recurring meetings as series (MIN_SERIES occurrences or more of one title), with days, hours, the regular
    attendees (names only), how many since when, and the next one;
  - app habits over the last APP_WEEKS weeks (minutes a day, the hours of most use, the days), and the usual
    first and last phone use of the day;
  - the people met most (co-attendance), how often and when last.

Each keeps its provenance (source table and every row it summarises, the period) and the scope family of its
source (meetings and people `calendar`, apps `usage`), so a caller sees a routine exactly when it may see its
sources. Place routines group visits by the place's name, which only precise location may see: their
sensitivity is `place` (embeddings/redaction.py), visible at precise location only (a coarse caller, who
sees places by type and ~1 km cell, could not have grouped them); their redacted text names the place by type.
Times are local (the memories' own offsets); "last N weeks" count back from the newest observation of the
source, not from today, so an old export still has routines.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from embeddings.labels import day_label, duration_label, fold, local
from embeddings.redaction import Redaction

_COARSE = Redaction(location="coarse")  # how a coarse reader sees a place (the one rounding is redaction's)

PLACE_WEEKS = 26
MIN_PLACE_VISITS = 6
MIN_PLACE_WEEKS = 4
MIN_SERIES = 3
APP_WEEKS = 8
MIN_APP_DAYS = 7
TOP_APPS = 8
TOP_PEOPLE = 5
MIN_PERSON_MEETINGS = 3
DAY_SHARE = 0.12  # a weekday is "usual" when it holds at least this share of the occurrences
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True, kw_only=True)
class Occurrence:
    """One thing that happened, as the memory layer rendered it (a visit, an event, an app-usage cluster)."""

    start_ts: datetime  # tz-aware UTC
    end_ts: datetime
    utc_offset_min: int | None
    source: str
    source_table: str | None
    source_row_ids: tuple[int, ...]
    details: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Routine:
    """One routine: a stable key, its sentence (and the sentence for callers without precise location), the
    scope family of its sources, and its provenance."""

    key: str
    text: str
    text_redacted: str | None
    scope: str
    tags: tuple[str, ...]
    details: dict[str, Any]
    start_ts: datetime
    end_ts: datetime
    utc_offset_min: int | None
    source: str
    source_table: str | None
    source_row_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Obs:
    """One occurrence in local time."""

    start: datetime  # local, naive
    end: datetime
    memory: Occurrence


def _obs(m: Occurrence) -> _Obs | None:
    if m.end_ts <= m.start_ts:
        return None
    return _Obs(local(m.start_ts, m.utc_offset_min), local(m.end_ts, m.utc_offset_min), m)


# ---- describing a pattern ------------------------------------------------------------------------------
def days_phrase(weekdays: Iterable[int]) -> str:
    """"Mon–Fri", "Mon, Tue and Thu", "Sat and Sun", "every day"."""
    ds = sorted(set(weekdays))
    if len(ds) == 7:
        return "every day"
    runs: list[list[int]] = []
    for d in ds:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    parts = [f"{DAYS[r[0]]}–{DAYS[r[-1]]}" if len(r) >= 3 else ", ".join(DAYS[d] for d in r) for r in runs]
    parts = ", ".join(parts).split(", ")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def usual_days(obs: Sequence[_Obs]) -> list[int]:
    counts = Counter(o.start.weekday() for o in obs)
    return sorted(d for d, c in counts.items() if c >= DAY_SHARE * len(obs))


def _minute(dt: datetime) -> int:
    return dt.hour * 60 + dt.minute


def _hhmm(minutes: float) -> str:
    m = int(round(minutes / 5.0) * 5) % (24 * 60)
    return f"{m // 60:02d}:{m % 60:02d}"


def usual_hours(obs: Sequence[_Obs]) -> str:
    """The median local start and end, to 5 minutes ("17:05–18:20")."""
    start = statistics.median(_minute(o.start) for o in obs)
    length = statistics.median((o.end - o.start).total_seconds() / 60 for o in obs)
    return f"{_hhmm(start)}–{_hhmm(start + length)}"


def _provenance(obs: Sequence[_Obs]) -> tuple[str | None, tuple[int, ...]]:
    tables = {o.memory.source_table for o in obs}
    rows = sorted({r for o in obs for r in o.memory.source_row_ids})
    return (tables.pop() if len(tables) == 1 else None), tuple(rows)


def _routine(key: str, text: str, redacted: str | None, obs: Sequence[_Obs], *, scope: str, tags: tuple[str, ...],
             details: dict[str, Any]) -> Routine:
    table, rows = _provenance(obs)
    first = min(o.memory.start_ts for o in obs)
    last = max(o.memory.end_ts for o in obs)
    return Routine(
        key=key, text=text, text_redacted=redacted if redacted and redacted != text else None, scope=scope,
        tags=("routine", *tags),
        details={**details, "occurrences": len(obs), "period": {"from": first.isoformat(), "to": last.isoformat()}},
        start_ts=first, end_ts=last, utc_offset_min=obs[-1].memory.utc_offset_min, source=obs[0].memory.source,
        source_table=table, source_row_ids=rows)


# ---- places --------------------------------------------------------------------------------------------
def _night_hours(o: _Obs) -> float:
    """Hours of the stay between 22:00 and 06:00 local."""
    total, t = 0.0, o.start
    while t < o.end:
        nxt = min(o.end, (t + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0))
        if t.hour >= 22 or t.hour < 6:
            total += (nxt - t).total_seconds() / 3600
        t = nxt
        if total > 24 * 14:  # a stay of weeks: bounded work per stay
            break
    return total


def _work_hours(o: _Obs) -> float:
    """Hours of the stay between 09:00 and 17:00 on a weekday, local."""
    total, t = 0.0, o.start
    while t < o.end and total < 24 * 14:
        nxt = min(o.end, (t + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0))
        if t.weekday() < 5 and 9 <= t.hour < 17:
            total += (nxt - t).total_seconds() / 3600
        t = nxt
    return total


def _place_key(m: Occurrence, *, coarse: bool) -> str | None:
    """Which place a visit was at: by name and address, or (coarse) by type and ~1 km cell, as a coarse caller
    sees places (embeddings/redaction.py), so routines it reads are computed from what it may see."""
    place = m.details.get("place") or {}
    if coarse:
        cell = _COARSE.place(place) or {}
        if cell.get("lat") is None or cell.get("lon") is None:
            return None
        return f"{cell.get('type') or 'a place'}|{cell['lat']}|{cell['lon']}"
    name = place.get("name")
    if not name or str(name).upper() == "UNKNOWN":
        return None
    return fold(f"{name}|{place.get('address') or ''}")


def _where(place: dict[str, Any], *, coarse: bool) -> tuple[str, str, dict[str, Any]]:
    """(how the place is written, its type word, its structured part) for a precise or a coarse reader."""
    label = str(place.get("type") or "a place")
    word = label.split(" ", 1)[-1].removesuffix("'s office") if label.startswith(("a ", "an ")) else ""
    if coarse:
        return label, word, (_COARSE.place(place) or {}) | {"type": label}
    name, addr = str(place.get("name")), place.get("address")
    inside = ", ".join(str(p) for p in (word if word != "place" else None, addr if addr != name else None) if p)
    where = name + (f" ({inside})" if inside else "")
    if fold(name) in ("home", "work") and addr:  # "Home is Home (3 Elm Grove)" says it twice
        where = str(addr)
    return where, word, {k: place.get(k) for k in ("name", "address", "type", "lat", "lon")}


def place_routines(visits: Sequence[Occurrence], *, coarse: bool = False) -> Iterator[Routine]:
    """Home, work and regular places, told apart by name (scope `place`: precise readers) or, with `coarse`, by
    type and ~1 km cell (scope `area`: coarse readers, who see places so)."""
    scope, prefix = ("area", "area|") if coarse else ("place", "")
    by_place: dict[str, list[_Obs]] = defaultdict(list)
    for m in visits:
        o, key = _obs(m), _place_key(m, coarse=coarse)
        if o is not None and key is not None:
            by_place[key].append(o)
    if not by_place:
        return
    newest = max(o.end for obs in by_place.values() for o in obs)
    since = newest - timedelta(weeks=PLACE_WEEKS)
    recent = {k: sorted((o for o in obs if o.end > since), key=lambda o: o.start) for k, obs in by_place.items()}
    night = {k: sum(map(_night_hours, obs)) for k, obs in recent.items()}
    work = {k: sum(map(_work_hours, obs)) for k, obs in recent.items()}
    home = max(night, key=lambda k: night[k]) if night and max(night.values()) >= 7 * 6 else None
    work_key = max((k for k in work if k != home), key=lambda k: work[k], default=None)
    if work_key is not None and work[work_key] < 4 * 6:
        work_key = None
    for key, obs in sorted(recent.items()):
        if not obs:
            continue
        where, word, place = _where(obs[-1].memory.details.get("place") or {}, coarse=coarse)
        weeks = {o.start.isocalendar()[:2] for o in obs}
        last = f"last on {day_label(obs[-1].start)}"
        details = {"place": place}
        if key == home:
            nights = len({(o.start + timedelta(hours=12)).date() for o in obs if _night_hours(o) >= 3})
            tail = f"{nights} nights there in the last {PLACE_WEEKS} weeks, {last}"
            text = f"Home: {tail}." if coarse else f"Home is {where}: {tail}."
            yield _routine(prefix + key, text, None, obs, scope=scope, tags=("home",),
                           details={**details, "role": "home"})
            continue
        if key == work_key:
            days = [o for o in obs if _work_hours(o) >= 2]
            if days:
                pattern = f"usually {days_phrase(usual_days(days))} {usual_hours(days)}"
                n = len({o.start.date() for o in days})
                tail = f"{pattern}, {n} days in the last {PLACE_WEEKS} weeks, {last}"
                text = f"Work: {tail}." if coarse else f"Work is {where}: {tail}."
                yield _routine(prefix + key, text, None, obs, scope=scope, tags=("work",),
                               details={**details, "role": "work"})
                continue
        if len(obs) < MIN_PLACE_VISITS or len(weeks) < MIN_PLACE_WEEKS:
            continue
        pattern = f"usually {days_phrase(usual_days(obs))} {usual_hours(obs)}"
        tail = f"{pattern}, {len(obs)} visits in the last {PLACE_WEEKS} weeks, {last}"
        yield _routine(prefix + key, f"Regular place: {where}: {tail}.", None, obs, scope=scope,
                       tags=("place", word or "place"), details=details)


# ---- meetings and people ---------------------------------------------------------------------------------
def _title(m: Occurrence) -> str:
    return str(m.details.get("title") or "")


def _user_names(events: Sequence[Occurrence]) -> set[str]:
    """The calendar's owner as an attendee: a name on at least 80% of the invitations with attendees, across at
    least 3 different titles (a colleague of one series is not the user)."""
    invited = [m for m in events if m.details.get("attendees")]
    on: dict[str, list[Occurrence]] = defaultdict(list)
    for m in invited:
        for name in {str(a.get("name")) for a in m.details.get("attendees") or [] if a.get("name")}:
            on[name].append(m)
    return {n for n, ms in on.items()
            if len(ms) >= 0.8 * len(invited) and len({_title(m) for m in ms}) >= 3}


def cadence(obs: Sequence[_Obs]) -> str:
    """How often a series meets, from the median gap between its days: "Mon–Fri", "weekly on Thu", "every two
    weeks on Tue", "monthly", "about every 3 months" (weekdays only where they recur within a month)."""
    days = sorted({o.start.date() for o in obs})
    gaps = [(b - a).days for a, b in zip(days, days[1:], strict=False)]
    gap = statistics.median(gaps) if gaps else 7
    on = days_phrase(usual_days(obs))
    if gap <= 1.5:
        return on
    if gap <= 9:
        return f"weekly on {on}"
    if gap <= 16:
        return f"every two weeks on {on}"
    if gap <= 35:
        return "monthly"
    return f"about every {round(gap / 30.4)} months" if gap >= 50 else f"about every {round(gap / 7)} weeks"


def meeting_series(events: Sequence[Occurrence], *, now: datetime) -> Iterator[Routine]:
    series: dict[str, list[_Obs]] = defaultdict(list)
    for m in events:
        if (m.details.get("status") or "").upper() == "CANCELLED" or m.details.get("all_day"):
            continue
        o = _obs(m)
        if o is not None and _title(m):
            series[fold(_title(m))].append(o)
    user = _user_names(events)
    for key, obs in sorted(series.items()):
        if len(obs) < MIN_SERIES:
            continue
        obs.sort(key=lambda o: o.start)
        past = [o for o in obs if o.memory.start_ts <= now]
        upcoming = [o for o in obs if o.memory.start_ts > now]
        names = Counter(str(a.get("name")) for o in obs for a in o.memory.details.get("attendees") or []
                        if a.get("name") and str(a.get("name")) not in user)
        regular = [n for n, c in names.most_common(6) if c >= len(obs) / 2]
        with_ = f", with {', '.join(regular)}" if regular else ""
        since = f"{len(past)} occurrences since {day_label(past[0].start)}" if past else "not yet held"
        nxt = f", next on {day_label(upcoming[0].start)} {upcoming[0].start:%H:%M}" if upcoming else ""
        text = (f"Recurring meeting: {_title(obs[0].memory)}, {cadence(obs)} {usual_hours(obs)}{with_}; "
                f"{since}{nxt}.")
        yield _routine(key, text, None, obs, scope="calendar", tags=("meeting", "series"),
                       details={"title": _title(obs[0].memory), "attendees": [{"name": n} for n in regular],
                                "next": upcoming[0].memory.start_ts.isoformat() if upcoming else None})


def people(events: Sequence[Occurrence], *, now: datetime) -> Iterator[Routine]:
    """The people met most, by co-attendance of past events (the user, on nearly every invitation, is left out)."""
    met: dict[str, list[_Obs]] = defaultdict(list)
    past = [m for m in events if m.start_ts <= now
            and (m.details.get("status") or "").upper() != "CANCELLED"]
    for m in past:
        o = _obs(m)
        for a in m.details.get("attendees") or []:
            if a.get("name") and o is not None:
                met[str(a["name"])].append(o)
    user = _user_names(past)
    ranked = sorted(((n, obs) for n, obs in met.items() if n not in user and len(obs) >= MIN_PERSON_MEETINGS),
                    key=lambda kv: (-len(kv[1]), kv[0]))
    for name, obs in ranked[:TOP_PEOPLE]:
        obs.sort(key=lambda o: o.start)
        weeks = max(1.0, (obs[-1].start - obs[0].start).days / 7)
        titles = Counter(_title(o.memory) for o in obs).most_common(2)
        about = " and ".join(f"“{t}”" for t, _ in titles if t)
        text = (f"Person met often: {name}, in {len(obs)} meetings since {day_label(obs[0].start)} "
                f"(about {len(obs) / weeks:.1f} a week, mostly {about}), last on {day_label(obs[-1].start)}.")
        top, n = titles[0] if titles else ("", 0)
        series = {"title": top} if top and n >= 0.6 * len(obs) else {}  # met mostly in one series
        yield _routine(f"person|{fold(name)}", text, None, obs, scope="calendar", tags=("person",),
                       details={"person": name, **series})


# ---- apps -----------------------------------------------------------------------------------------------
def app_habits(sessions: Sequence[Occurrence]) -> Iterator[Routine]:
    """From usage-cluster memories (one app, one day, sessions close together): minutes a day, the two hours
    of most use, the days; and the usual first and last use of the phone."""
    obs = [o for o in map(_obs, sessions) if o is not None and o.memory.details.get("app")]
    if not obs:
        return
    newest = max(o.end for o in obs).date()
    window = [o for o in obs if (newest - o.start.date()).days < APP_WEEKS * 7]  # the last APP_WEEKS*7 local days
    days_total = min(APP_WEEKS * 7, (newest - min(o.start for o in window).date()).days + 1)
    over = (f"over the last {APP_WEEKS} weeks" if days_total == APP_WEEKS * 7
            else f"over the {days_total} days of data")
    by_app: dict[str, list[_Obs]] = defaultdict(list)
    for o in window:
        by_app[str(o.memory.details["app"])].append(o)
    ranked = sorted(by_app.items(), key=lambda kv: -sum(float(o.memory.details.get("minutes") or 0) for o in kv[1]))
    for app, app_obs in ranked[:TOP_APPS]:
        used_days = {o.start.date() for o in app_obs}
        if len(used_days) < MIN_APP_DAYS:
            continue
        minutes = sum(float(o.memory.details.get("minutes") or 0) for o in app_obs)
        by_hour: defaultdict[int, float] = defaultdict(float)
        for o in app_obs:
            by_hour[o.start.hour] += float(o.memory.details.get("minutes") or 0)
        peak = max(range(24), key=lambda h: (by_hour[h] + by_hour[(h + 1) % 24], by_hour[h]))  # ties: start at use
        share = (by_hour[peak] + by_hour[(peak + 1) % 24]) / max(minutes, 1e-9)
        when = (f"mostly {peak:02d}:00–{(peak + 2) % 24 or 24:02d}:00" if share >= 0.4
                else "spread over the day")
        days = usual_days(app_obs)
        on = "" if len(days) == 7 else f" on {days_phrase(days)}"
        text = (f"App habit: {app}: {when}{on}, {duration_label(minutes / days_total)} a day on average {over} "
                f"(used on {len(used_days)} of {days_total} days).")
        yield _routine(f"app|{app}", text, None, sorted(app_obs, key=lambda o: o.start), scope="usage",
                       tags=("app", "habit"), details={"app": app, "minutes_per_day": round(minutes / days_total, 1)})
    first: dict[Any, datetime] = {}
    last: dict[Any, datetime] = {}
    for o in window:
        day = o.start.date()
        first[day] = min(first.get(day, o.start), o.start)
        last[day] = max(last.get(day, o.end), o.end)
    if len(first) >= MIN_APP_DAYS:
        f = statistics.median(_minute(t) for t in first.values())
        late = statistics.median(_minute(t) + (24 * 60 if t.date() > d else 0) for d, t in last.items())
        text = f"Phone use: usually first at {_hhmm(f)} and last at {_hhmm(late)}, {over} ({len(first)} days with use)."
        yield _routine("phone-day", text, None, sorted(window, key=lambda o: o.start), scope="usage",
                       tags=("app", "phone"), details={})


def routines(visits: Sequence[Occurrence], events: Sequence[Occurrence], usage: Sequence[Occurrence], *,
             now: datetime | None = None) -> Iterator[Routine]:
    """Every routine the given occurrences imply (usage: app-usage clusters, one app and one day each)."""
    now = now or datetime.now(UTC)
    yield from place_routines(visits)
    yield from place_routines(visits, coarse=True)
    yield from meeting_series(events, now=now)
    yield from people(events, now=now)
    yield from app_habits([m for m in usage if m.source_table == "app_sessions"])
