"""The persona's life, day by day: where it stays, how it moves, its trips, workouts and appointments.

`live(persona)` plans every day in local time (Europe/London; Europe/Lisbon during the Lisbon weekend)
and returns a continuous, gap-free chain stay -> move -> stay ... in UTC, from local midnight of the
first day to local midnight after the last one. Every writer and the ground truth read this one plan.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from synth.geo import loop_path, path_length_m, travel
from synth.persona import LISBON, LONDON, PLACES, Attendee, Persona, Place, Trip, Workout
from synth.persona import Movement as TruthMovement

MIN_STAY = timedelta(minutes=12)
FRIENDS = {"sam": Attendee("Sam Okafor", "sam.okafor@gmail.com"),
           "priya": Attendee("Priya Shah", "priya.shah@outlook.com")}


@dataclass(frozen=True, slots=True, eq=False)
class Stay:
    place: Place
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True, eq=False)
class Move:
    origin: Place
    dest: Place
    start: datetime
    end: datetime
    mode: str
    path: np.ndarray  # (n, 2) lat, lon vertices, traversed at constant speed
    distance_m: float

    def truth(self) -> TruthMovement:
        return TruthMovement(self.origin.key, self.dest.key, self.start, self.end, self.mode, self.distance_m)


@dataclass(frozen=True, slots=True)
class AgendaItem:
    """Something the persona put in its calendar because it happened (or was planned) in its life."""

    kind: str  # doctor, dinner, lunch, flight, train, leave, offsite
    title: str
    start: datetime  # UTC; for all-day items local midnight of `first`
    end: datetime
    tz: str
    end_tz: str
    place: str | None = None
    attendees: tuple[Attendee, ...] = ()
    all_day: bool = False
    first: date | None = None  # all-day: first and last day (inclusive)
    last: date | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Life:
    persona: Persona
    stays: tuple[Stay, ...]
    moves: tuple[Move, ...]
    trips: tuple[Trip, ...]
    workouts: tuple[tuple[Workout, Move], ...]
    agenda: tuple[AgendaItem, ...]
    holidays: dict[date, str]  # UK bank holidays in the period -> name
    day_kind: dict[date, str] = field(default_factory=dict)  # work, wfh, weekend, holiday, trip, offsite


def easter(year: int) -> date:
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * l_) // 433
    month = (h + l_ - 7 * m + 90) // 25
    return date(year, month, (h + l_ - 7 * m + 33 * month + 19) % 32)


def uk_bank_holidays(year: int) -> dict[date, str]:
    """England & Wales bank holidays (the regular ones; one-off royal holidays are left out) -> name."""
    def weekday_on_or_after(d: date, wd: int) -> date:
        return d + timedelta(days=(wd - d.weekday()) % 7)

    def last_monday(month: int) -> date:
        d = date(year, month + 1, 1) - timedelta(days=1)
        return d - timedelta(days=d.weekday())

    new_year = date(year, 1, 1)
    e = easter(year)
    out = {weekday_on_or_after(new_year, 0) if new_year.weekday() >= 5 else new_year: "New Year's Day",
           e - timedelta(days=2): "Good Friday", e + timedelta(days=1): "Easter Monday",
           weekday_on_or_after(date(year, 5, 1), 0): "Early May bank holiday",
           last_monday(5): "Spring bank holiday", last_monday(8): "Summer bank holiday"}
    for d, name in ((date(year, 12, 25), "Christmas Day"), (date(year, 12, 26), "Boxing Day")):
        while d.weekday() >= 5 or d in out:
            d += timedelta(days=1)
        out[d] = name
    return dict(sorted(out.items()))


class _Itinerary:
    """Appends stay/move pairs; a departure earlier than allowed slips (nobody leaves before arriving)."""

    def __init__(self, place: Place, t0: datetime, rng: random.Random) -> None:
        self.place, self.since, self.rng = place, t0, rng
        self.stays: list[Stay] = []
        self.moves: list[Move] = []

    def go(self, dest: Place, depart: datetime, *, mode: str | None = None, minutes: float | None = None) -> Move | None:
        if dest is self.place:
            return None
        depart = max(depart, self.since + MIN_STAY)
        mode, dur, path, dist = travel(self.place, dest, self.rng, mode=mode, minutes=minutes)
        move = Move(self.place, dest, depart, depart + dur, mode, path, dist)
        self._advance(move)
        return move

    def loop(self, path: np.ndarray, mode: str, depart: datetime, minutes: float) -> Move:
        depart = max(depart, self.since + MIN_STAY)
        move = Move(self.place, self.place, depart, depart + timedelta(minutes=minutes), mode, path,
                    round(path_length_m(path), 1))
        self._advance(move)
        return move

    def _advance(self, move: Move) -> None:
        self.stays.append(Stay(self.place, self.since, move.start))
        self.moves.append(move)
        self.place, self.since = move.dest, move.end

    def close(self, end: datetime) -> None:
        self.stays.append(Stay(self.place, self.since, max(end, self.since + MIN_STAY)))


class _Planner:
    def __init__(self, persona: Persona) -> None:
        self.p = persona
        self.rng = random.Random(f"lifevault-synth:{persona.seed}:life")
        start_utc, _ = persona.period_utc()
        self.it = _Itinerary(PLACES["home"], start_utc, self.rng)
        self.agenda: list[AgendaItem] = []
        self.trips: list[Trip] = []
        self.workouts: list[tuple[Workout, Move]] = []
        self.day_kind: dict[date, str] = {}
        years = range(persona.start.year, persona.end.year + 1)
        self.holiday_names = {d: n for y in years for d, n in uk_bank_holidays(y).items()
                              if persona.start <= d <= persona.end}
        self.holidays = tuple(self.holiday_names)
        self._schedule()

    # --- helpers -------------------------------------------------------------------------------
    def at(self, d: date, hh: int, mm: int = 0, sd: float = 0.0, tz: str = LONDON) -> datetime:
        jitter = self.rng.gauss(0.0, sd) if sd else 0.0
        local = datetime.combine(d, time(0), ZoneInfo(tz)) + timedelta(hours=hh, minutes=mm + jitter)
        return local.astimezone(UTC)

    def minutes(self, lo: float, hi: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(lo, hi))

    def add(self, kind: str, title: str, start: datetime, end: datetime, *, tz: str = LONDON,
            end_tz: str | None = None, place: str | None = None, attendees: tuple[Attendee, ...] = ()) -> None:
        self.agenda.append(AgendaItem(kind, title, start, end, tz, end_tz or tz, place, attendees))

    def add_all_day(self, kind: str, title: str, first: date, last: date, place: str | None = None) -> None:
        tz = ZoneInfo(LONDON)
        start = datetime.combine(first, time(0), tz).astimezone(UTC)
        end = datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(UTC)
        self.agenda.append(AgendaItem(kind, title, start, end, LONDON, LONDON, place, (), True, first, last))

    # --- the calendar of the period --------------------------------------------------------------
    def _schedule(self) -> None:
        p, rng = self.p, self.rng
        start, end, days = p.start, p.end, p.days
        self.lisbon: date | None = None  # the Friday
        self.edinburgh: date | None = None  # the first Saturday
        if days >= 10:
            fri = self._weekday_near(start + timedelta(days=int(0.45 * days)), 4)
            if fri >= start + timedelta(days=1) and fri + timedelta(days=2) <= end:
                self.lisbon = fri
        if days >= 45:
            sat = self._weekday_near(start + timedelta(days=int(0.72 * days)), 5)
            if self.lisbon and abs((sat - self.lisbon).days) < 10:
                sat += timedelta(days=14)
            if sat >= start + timedelta(days=1) and sat + timedelta(days=7) <= end:
                self.edinburgh = sat
        trip_days = set()
        if self.lisbon:
            trip_days |= {self.lisbon + timedelta(days=i) for i in range(1, 3)}
        if self.edinburgh:
            trip_days |= {self.edinburgh + timedelta(days=i) for i in range(8)}
        self.offsite = None
        if days >= 7:
            blocked = trip_days | ({self.lisbon} if self.lisbon else set())
            self.offsite = self._next_workday(start + timedelta(days=int(0.3 * days)), blocked)
            if self.offsite > end:
                self.offsite = None
        d = start
        while d <= end:
            if d in trip_days:
                kind = "trip"
            elif d in self.holidays:
                kind = "holiday"
            elif d.weekday() >= 5:
                kind = "weekend"
            elif d == self.offsite:
                kind = "offsite"
            elif d.weekday() == 4 and d != self.lisbon and rng.random() < 0.35:
                kind = "wfh"
            else:
                kind = "work"
            self.day_kind[d] = kind
            d += timedelta(days=1)
        self.doctor: set[date] = set()
        d = start + timedelta(days=12)
        while d <= end:
            d = self._next_workday(d, trip_days)
            if d <= end and d != self.lisbon:
                self.doctor.add(d)
                self.day_kind[d] = "work"
            d += timedelta(days=rng.randint(85, 100))
        self.gym: set[date] = set()
        monday = start - timedelta(days=start.weekday())
        while monday <= end:
            k = 2 if rng.random() < 0.55 else 3
            for wd in rng.sample([0, 1, 2, 3, 5], k):
                self.gym.add(monday + timedelta(days=wd))
            monday += timedelta(days=7)

    def _weekday_near(self, d: date, weekday: int) -> date:
        return d + timedelta(days=(weekday - d.weekday()) % 7)

    def _next_workday(self, d: date, blocked: set[date]) -> date:
        while d.weekday() >= 5 or d in self.holidays or d in blocked or d == getattr(self, "offsite", None):
            d += timedelta(days=1)
        return d

    # --- days ----------------------------------------------------------------------------------
    def run(self) -> Life:
        d = self.p.start
        while d <= self.p.end:
            if d == self.lisbon:
                self._lisbon()
                d += timedelta(days=3)
                continue
            if d == self.edinburgh:
                self._edinburgh()
                d += timedelta(days=8)
                continue
            kind = self.day_kind[d]
            if kind in ("work", "wfh"):
                self._workday(d, wfh=kind == "wfh")
            elif kind == "offsite":
                self._offsite(d)
            elif d.weekday() == 5:
                self._saturday(d)
            else:
                self._sunday(d, holiday=kind == "holiday")
            d += timedelta(days=1)
        _, end_utc = self.p.period_utc()
        self.it.close(end_utc)
        return Life(self.p, tuple(self.it.stays), tuple(self.it.moves), tuple(self.trips), tuple(self.workouts),
                    tuple(sorted(self.agenda, key=lambda a: a.start)), self.holiday_names, dict(self.day_kind))

    def _commute_in(self, d: date) -> None:
        it, rng = self.it, self.rng
        leave = self.at(d, 8, 10, 12)
        if d in self.doctor:
            appt = self.at(d, 10)
            it.go(PLACES["doctor"], appt - self.minutes(22, 30))
            it.go(PLACES["work"], appt + self.minutes(35, 50))
            self.add("doctor", "Dr. Lee — check-up", appt, appt + timedelta(minutes=30), place="doctor")
        elif rng.random() < 0.3:
            it.go(PLACES["cafe"], leave - timedelta(minutes=20), mode="WALKING")
            it.go(PLACES["work"], it.since + self.minutes(15, 25))
        else:
            it.go(PLACES["work"], leave)

    def _workday(self, d: date, *, wfh: bool, leave_at: tuple[int, int] | None = None) -> None:
        it, rng, P = self.it, self.rng, PLACES
        if not wfh:
            self._commute_in(d)
            if rng.random() < 0.35:
                it.go(P["lunch"], self.at(d, 12, 40, 15), mode="WALKING")
                it.go(P["work"], it.since + self.minutes(25, 40), mode="WALKING")
        elif rng.random() < 0.4:
            it.go(P["cafe"], self.at(d, 12, 45, 15), mode="WALKING")
            it.go(P["home"], it.since + self.minutes(30, 50), mode="WALKING")
        if leave_at:
            return
        friday = d.weekday() == 4
        end = self.at(d, 17, 0 if friday else 30, 20)
        if d in self.gym:
            it.go(P["gym"], end if not wfh else self.at(d, 18, 0, 15))
            it.go(P["home"], it.since + self.minutes(55, 80))
        elif not wfh and rng.random() < (0.5 if friday else 0.1):
            it.go(P["pub"], end)
            back = self.at(d, 21, 30, 40)
            it.go(P["home"], back, mode="IN_PASSENGER_VEHICLE" if rng.random() < 0.3 else None)
        elif rng.random() < 0.3:
            it.go(P["supermarket"], end if not wfh else self.at(d, 17, 45, 20))
            it.go(P["home"], it.since + self.minutes(15, 25), mode="WALKING")
        else:
            it.go(P["home"], end)

    def _offsite(self, d: date) -> None:
        it = self.it
        it.go(PLACES["offsite"], self.at(d, 8, 30, 8))
        it.go(PLACES["home"], self.at(d, 18, 15, 15))
        self.add_all_day("offsite", "Team offsite", d, d, place="offsite")

    def _saturday(self, d: date) -> None:
        it, rng, P = self.it, self.rng, PLACES
        if d.day <= 7:  # the first Saturday of the month: a park run, tracked
            park = P["park"]
            it.go(park, self.at(d, 8, 20, 10), mode="RUNNING")
            laps = rng.choice([1.5, 2.0, 2.5])
            path = loop_path((park.lat, park.lon), 420.0, laps=laps, n=int(60 * laps), rng=rng)
            minutes = path_length_m(path) / rng.uniform(2.7, 3.2) / 60
            run = it.loop(path, "RUNNING", it.since + self.minutes(12, 18), minutes)
            name = "Saturday Morning Run"
            self.workouts.append((Workout(name, "running", "park", run.start, run.end, run.distance_m,
                                          f"{d.isoformat()}_Saturday_Morning_Run.gpx"), run))
            it.go(P["home"], it.since + self.minutes(12, 20), mode="WALKING")
        if d in self.gym:
            it.go(P["gym"], self.at(d, 10, 15, 20))
            it.go(P["home"], it.since + self.minutes(60, 80))
        if rng.random() < 0.6:
            it.go(P["supermarket"], self.at(d, 12, 30, 40), mode="WALKING")
            it.go(P["home"], it.since + self.minutes(20, 35), mode="WALKING")
        if rng.random() < 0.5:
            it.go(P["cafe"], self.at(d, 15, 0, 40), mode="WALKING")
            it.go(P["home"], it.since + self.minutes(40, 75), mode="WALKING")
        if rng.random() < 0.33:
            arrive = self.at(d, 19, 0)
            it.go(P["sam"], arrive - self.minutes(35, 45))
            it.go(P["home"], self.at(d, 23, 0, 25), mode="IN_PASSENGER_VEHICLE")
            self.add("dinner", "Dinner at Sam's", arrive, self.at(d, 22, 30), place="sam",
                     attendees=(FRIENDS["sam"],))

    def _sunday(self, d: date, *, holiday: bool) -> None:
        it, rng, P = self.it, self.rng, PLACES
        if rng.random() < 0.6:
            it.go(P["park"], self.at(d, 11, 0, 40), mode="WALKING")
            it.go(P["home"], it.since + self.minutes(50, 100), mode="WALKING")
        if not holiday and d.weekday() == 6 and rng.random() < 0.2:
            lunch = self.at(d, 13, 0)
            it.go(P["priya"], lunch - self.minutes(25, 35))
            it.go(P["home"], self.at(d, 16, 0, 25))
            self.add("lunch", "Sunday lunch at Priya's", lunch, lunch + timedelta(hours=3), place="priya",
                     attendees=(FRIENDS["priya"],))
        elif rng.random() < 0.3:
            it.go(P["cafe"], self.at(d, 14, 30, 45), mode="WALKING")
            it.go(P["home"], it.since + self.minutes(40, 80), mode="WALKING")

    def _lisbon(self) -> None:
        it, P, fri = self.it, PLACES, self.lisbon
        assert fri is not None
        sat, sun = fri + timedelta(days=1), fri + timedelta(days=2)
        leave_home = None
        if self.day_kind[fri] in ("work", "wfh"):
            self._workday(fri, wfh=False, leave_at=(14, 0))
        to_airport = it.go(P["heathrow"], self.at(fri, 14, 0, 5), mode="IN_SUBWAY")
        leave_home = to_airport.start if to_airport else it.since
        out = it.go(P["lis_airport"], self.at(fri, 17, 5), mode="FLYING", minutes=160)
        it.go(P["lis_hotel"], it.since + self.minutes(25, 40), mode="IN_PASSENGER_VEHICLE")
        L = LISBON
        it.go(P["pasteis"], self.at(sat, 9, 45, 10, L), mode="IN_PASSENGER_VEHICLE")
        it.go(P["belem"], it.since + self.minutes(35, 50), mode="WALKING")
        it.go(P["timeout"], self.at(sat, 12, 45, 15, L), mode="IN_TRAM")
        it.go(P["lis_hotel"], self.at(sat, 15, 0, 20, L), mode="WALKING")
        dinner = self.at(sat, 20, 0, 0, L)
        it.go(P["ramiro"], dinner - self.minutes(15, 20))
        it.go(P["lis_hotel"], self.at(sat, 22, 15, 20, L))
        it.go(P["luzia"], self.at(sun, 10, 15, 15, L), mode="WALKING")
        it.go(P["lis_hotel"], self.at(sun, 11, 45, 10, L), mode="WALKING")
        it.go(P["lis_airport"], self.at(sun, 12, 50, 5, L), mode="IN_PASSENGER_VEHICLE")
        back = it.go(P["heathrow"], self.at(sun, 15, 10, 0, L), mode="FLYING", minutes=155)
        home = it.go(P["home"], it.since + self.minutes(25, 40), mode="IN_SUBWAY")
        assert out and back and home
        self.add("flight", "Flight TP1363 London Heathrow → Lisbon", out.start, out.end, tz=LONDON, end_tz=LISBON,
                 place="heathrow")
        self.add("dinner", "Dinner at Cervejaria Ramiro", dinner, dinner + timedelta(hours=2), tz=LISBON,
                 place="ramiro")
        self.add("flight", "Flight BA503 Lisbon → London Heathrow", back.start, back.end, tz=LISBON, end_tz=LONDON,
                 place="lis_airport")
        self.trips.append(Trip("Weekend in Lisbon", "Lisbon, Portugal", LISBON, leave_home, home.end,
                               (out.truth(), back.truth()), ("TP1363", "BA503")))

    def _edinburgh(self) -> None:
        it, rng, P, sat = self.it, self.rng, PLACES, self.edinburgh
        assert sat is not None
        first = it.go(P["kings_cross"], self.at(sat, 9, 15, 5), mode="IN_SUBWAY")
        out = it.go(P["waverley"], self.at(sat, 10, 0), mode="IN_TRAIN", minutes=260)
        it.go(P["edi_flat"], it.since + self.minutes(15, 25), mode="IN_BUS")
        outings = [("castle", 10, 30, 90, 150), ("brewlab", 13, 0, 40, 70), ("museum", 10, 45, 120, 180),
                   ("portobello", 11, 30, 120, 180), ("scran", 19, 30, 100, 130)]
        for i in range(1, 7):
            d = sat + timedelta(days=i)
            if i == 2:  # Monday: Arthur's Seat
                park = P["holyrood"]
                it.go(park, self.at(d, 9, 30, 10), mode="WALKING")
                path = loop_path((park.lat, park.lon), 0, laps=1, n=90, rng=rng, peak=(55.944100, -3.161800))
                minutes = rng.uniform(125, 150)
                hike = it.loop(path, "WALKING", it.since + self.minutes(12, 18), minutes)
                self.workouts.append((Workout("Arthur's Seat Hike", "hiking", "holyrood", hike.start, hike.end,
                                              hike.distance_m, f"{d.isoformat()}_Arthurs_Seat_Hike.gpx"), hike))
                it.go(P["edi_flat"], it.since + self.minutes(12, 20))
                continue
            todays = outings[:2] if i == 1 else rng.sample(outings[1:], 2)  # Sunday: the castle, then coffee
            for key, hh, mm, lo, hi in sorted(todays, key=lambda o: (o[1], o[2])):
                it.go(P[key], self.at(d, hh, mm, 15))
                it.go(P["edi_flat"], it.since + self.minutes(lo, hi))
        last = sat + timedelta(days=7)
        it.go(P["waverley"], self.at(last, 10, 25, 5), mode="IN_BUS")
        back = it.go(P["kings_cross"], self.at(last, 11, 0), mode="IN_TRAIN", minutes=262)
        home = it.go(P["home"], it.since + self.minutes(10, 20), mode="IN_SUBWAY")
        assert first and out and back and home
        self.add("train", "Train to Edinburgh (LNER 1S09)", out.start, out.end, place="kings_cross")
        self.add("train", "Train to London (LNER 1E12)", back.start, back.end, place="waverley")
        self.add_all_day("leave", "Annual leave — Edinburgh", sat + timedelta(days=2), sat + timedelta(days=6))
        self.trips.append(Trip("A week in Edinburgh", "Edinburgh, Scotland", LONDON, first.start, home.end,
                               (out.truth(), back.truth()), ("LNER 1S09", "LNER 1E12")))


def live(persona: Persona) -> Life:
    """Plan the persona's whole period (deterministic given the persona)."""
    return _Planner(persona).run()
