"""The persona's calendar as a Google Calendar export (calendar.ics, RFC 5545) and its expanded occurrences.

Written: X-WR-CALNAME/X-WR-TIMEZONE Europe/London, VTIMEZONEs for London and Lisbon; a daily standup
(weekdays, UNTIL, EXDATE on bank holidays and the offsite day), a weekly 1:1 (COUNT; one instance moved by a
RECURRENCE-ID override, one cancelled), a monthly review (last Friday, BYDAY=-1FR), yearly all-day birthdays,
bank holidays, the appointments, dinners, flights (TZID London -> Lisbon) and trains the life planned, and
one-off meetings with attendees (external ones written in UTC). Lines are folded at 75 octets, CRLF.

The occurrences are computed here from the same plan (not by parsing the file), in the parser's terms: one
row per instance keyed (uid, recurrence_id); EXDATE'd instances give no row, the cancelled one gives a
CANCELLED row, the moved one its new time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from synth.life import Life
from synth.persona import LISBON, LONDON, PLACES, Attendee, Occurrence

VTIMEZONES = {
    LONDON: ("GMT", "BST"),
    LISBON: ("WET", "WEST"),
}
BIRTHDAYS = (("Mum's birthday", 3, 14), ("Sam's birthday", 7, 22), ("Priya's birthday", 12, 3))
MEETINGS = ("Kestrel design review", "Interview: Senior Data Engineer", "Budget sync with Finance",
            "Lunch & learn: DuckDB internals", "Hiring debrief", "Roadmap planning", "Incident retro",
            "Architecture council", "Customer demo — Acme Health", "Vendor call — Northwind")


@dataclass(slots=True)
class _Event:
    uid: str
    summary: str
    lines: list[str]  # DTSTART/DTEND/RRULE/... already formatted
    location: str = ""
    description: str = ""
    organizer: Attendee | None = None
    attendees: tuple[Attendee, ...] = ()
    status: str = "CONFIRMED"
    extra: list[str] = field(default_factory=list)  # nested components (VALARM)


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def fold(line: str) -> bytes:
    """RFC 5545 3.1: at most 75 octets per physical line, never splitting a UTF-8 sequence; CRLF."""
    data = line.encode("utf-8")
    out, limit = [], 75
    while len(data) > limit:
        cut = limit
        while cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        out.append(data[:cut])
        data = data[cut:]
        limit = 74  # the leading space of a continuation counts
    out.append(data)
    return b"\r\n ".join(out) + b"\r\n"


def _cn(a: Attendee) -> str:
    return f'"{a.name}"' if any(c in a.name for c in ';:,') else a.name


def _local(t: datetime, tz: str) -> str:
    return t.astimezone(ZoneInfo(tz)).strftime("%Y%m%dT%H%M%S")


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _rid(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _vtimezone(tz: str) -> list[str]:
    std, dst = VTIMEZONES[tz]
    return ["BEGIN:VTIMEZONE", f"TZID:{tz}", f"X-LIC-LOCATION:{tz}",
            "BEGIN:DAYLIGHT", "TZOFFSETFROM:+0000", "TZOFFSETTO:+0100", f"TZNAME:{dst}", "DTSTART:19700329T010000",
            "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT",
            "BEGIN:STANDARD", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0000", f"TZNAME:{std}", "DTSTART:19701025T020000",
            "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD", "END:VTIMEZONE"]


class _Calendar:
    def __init__(self, life: Life) -> None:
        self.life = life
        p = life.persona
        self.p = p
        self.rng = random.Random(f"lifevault-synth:{p.seed}:calendar")
        self.me = Attendee(p.name, p.email)
        dom = p.work_domain
        self.manager = Attendee("Maria Rossi", f"maria.rossi@{dom}")
        self.lead = Attendee("Tom Becker", f"tom.becker@{dom}")
        self.team = (self.lead, Attendee("Aisha Khan", f"aisha.khan@{dom}"),
                     Attendee("Daniel O'Brien", f"daniel.obrien@{dom}"), Attendee("Wei Zhang", f"wei.zhang@{dom}"),
                     Attendee("Lucía Fernández", f"lucia.fernandez@{dom}"))
        self.external = (Attendee("Jordan Blake", "jordan.blake@northwind.example"),
                         Attendee("Hannah Weiss", "hannah.weiss@acmehealth.example"))
        self.events: list[_Event] = []
        self.occurrences: list[Occurrence] = []
        self.stamp = _utc(datetime.combine(p.end + timedelta(days=1), time(6, 0), UTC))
        self.tz = ZoneInfo(LONDON)
        _, self.period_end = p.period_utc()

    def at(self, d: date, hh: int, mm: int = 0, tz: str = LONDON) -> datetime:
        return datetime.combine(d, time(hh, mm), ZoneInfo(tz)).astimezone(UTC)

    def uid(self, name: str) -> str:
        return f"{name}-{self.p.seed}@lifevault.synth"

    def occ(self, ev: _Event, start: datetime, end: datetime, *, rid: str = "", all_day: bool = False,
            status: str | None = None, tzid: str | None = LONDON) -> None:
        org = f"{ev.organizer.name} <{ev.organizer.email}>" if ev.organizer else ""
        self.occurrences.append(Occurrence(ev.uid, rid, ev.summary, start, end, all_day, status or ev.status,
                                           ev.location, org, ev.attendees, "floating" if all_day else tzid))

    # --- series -------------------------------------------------------------------------------
    def standup(self, days: list[date]) -> None:
        first = next((d for d in days if d.weekday() < 5), None)
        if first is None:
            return
        skip = sorted(d for d in (*self.life.holidays, *[d for d, k in self.life.day_kind.items() if k == "offsite"])
                      if d.weekday() < 5 and d >= first)
        until = self.period_end - timedelta(seconds=1)
        lines = [f"DTSTART;TZID={LONDON}:{first:%Y%m%d}T093000", f"DTEND;TZID={LONDON}:{first:%Y%m%d}T094500",
                 f"RRULE:FREQ=WEEKLY;UNTIL={_utc(until)};BYDAY=MO,TU,WE,TH,FR"]
        if skip:
            lines.append(f"EXDATE;TZID={LONDON}:" + ",".join(f"{d:%Y%m%d}T093000" for d in skip))
        ev = _Event(self.uid("standup"), "Daily standup", lines, "Google Meet",
                    "Daily standup for the data platform team.\nJoin: https://meet.google.com/abc-defg-hij",
                    self.lead, (self.lead, *self.team[1:], self.me))
        self.events.append(ev)
        for d in days:
            if d >= first and d.weekday() < 5 and d not in skip:
                self.occ(ev, self.at(d, 9, 30), self.at(d, 9, 45), rid=_rid(self.at(d, 9, 30)))

    def one_on_one(self, days: list[date]) -> None:
        thursdays = [d for d in days if d.weekday() == 3]
        if not thursdays:
            return
        ev = _Event(self.uid("one-on-one"), f"1:1 {self.p.name.split()[0]} / Maria",
                    [f"DTSTART;TZID={LONDON}:{thursdays[0]:%Y%m%d}T140000",
                     f"DTEND;TZID={LONDON}:{thursdays[0]:%Y%m%d}T143000",
                     f"RRULE:FREQ=WEEKLY;COUNT={len(thursdays)};BYDAY=TH"],
                    "Meridian Labs — Room Thames", "Weekly 1:1. Agenda in the shared doc.", self.manager,
                    (self.manager, self.me))
        self.events.append(ev)
        moved, cancelled = (1, 2) if len(thursdays) >= 3 else (None, None)
        for i, d in enumerate(thursdays):
            orig = self.at(d, 14)
            rid = _rid(orig)
            if i == moved:
                new = self.at(d + timedelta(days=1), 11)
                self.events.append(_Event(ev.uid, ev.summary, [
                    f"RECURRENCE-ID;TZID={LONDON}:{d:%Y%m%d}T140000", f"DTSTART;TZID={LONDON}:{_local(new, LONDON)}",
                    f"DTEND;TZID={LONDON}:{_local(new + timedelta(minutes=30), LONDON)}", "SEQUENCE:1"],
                    ev.location, "Moved to Friday: Maria is at the board meeting on Thursday.", ev.organizer,
                    ev.attendees))
                self.occ(self.events[-1], new, new + timedelta(minutes=30), rid=rid)
            elif i == cancelled:
                self.events.append(_Event(ev.uid, ev.summary, [
                    f"RECURRENCE-ID;TZID={LONDON}:{d:%Y%m%d}T140000", f"DTSTART;TZID={LONDON}:{d:%Y%m%d}T140000",
                    f"DTEND;TZID={LONDON}:{d:%Y%m%d}T143000", "SEQUENCE:1"],
                    ev.location, ev.description, ev.organizer, ev.attendees, status="CANCELLED"))
                self.occ(self.events[-1], orig, orig + timedelta(minutes=30), rid=rid, status="CANCELLED")
            else:
                self.occ(ev, orig, orig + timedelta(minutes=30), rid=rid)

    def monthly_review(self, days: list[date]) -> None:
        last_fridays = [d for d in days if d.weekday() == 4 and (d + timedelta(days=7)).month != d.month]
        if not last_fridays:
            return
        first = last_fridays[0]
        until = self.period_end - timedelta(seconds=1)
        ev = _Event(self.uid("monthly-review"), "Monthly review", [
            f"DTSTART;TZID={LONDON}:{first:%Y%m%d}T160000", f"DTEND;TZID={LONDON}:{first:%Y%m%d}T170000",
            f"RRULE:FREQ=MONTHLY;UNTIL={_utc(until)};BYDAY=-1FR"],
            "Meridian Labs — Board room", "Metrics, incidents, hiring, roadmap. Slides due Thursday.",
            self.manager, (self.manager, *self.team, self.me))
        self.events.append(ev)
        for d in last_fridays:
            self.occ(ev, self.at(d, 16), self.at(d, 17), rid=_rid(self.at(d, 16)))

    def birthdays(self) -> None:
        p = self.p
        for title, month, day in BIRTHDAYS:
            first = date(2019, month, day)
            ev = _Event(self.uid(title.split("'")[0].lower() + "-birthday"), title, [
                f"DTSTART;VALUE=DATE:{first:%Y%m%d}", f"DTEND;VALUE=DATE:{first + timedelta(days=1):%Y%m%d}",
                "RRULE:FREQ=YEARLY"], organizer=self.me)
            self.events.append(ev)
            for y in range(p.start.year, p.end.year + 1):
                d = date(y, month, day)
                if p.start <= d <= p.end:
                    self.occ(ev, self.at(d, 0), self.at(d + timedelta(days=1), 0), rid=d.isoformat(), all_day=True)

    # --- single events ----------------------------------------------------------------------------
    def single(self, ev: _Event, start: datetime, end: datetime, *, tzid: str | None, all_day: bool = False) -> None:
        self.events.append(ev)
        self.occ(ev, start, end, all_day=all_day, tzid=tzid)

    def all_day(self, uid: str, title: str, first: date, last: date, location: str = "") -> None:
        ev = _Event(uid, title, [f"DTSTART;VALUE=DATE:{first:%Y%m%d}",
                                 f"DTEND;VALUE=DATE:{last + timedelta(days=1):%Y%m%d}", "TRANSP:TRANSPARENT"],
                    location, organizer=self.me)
        self.single(ev, self.at(first, 0), self.at(last + timedelta(days=1), 0), tzid=None, all_day=True)

    def holidays(self) -> None:
        for d, name in self.life.holidays.items():
            self.all_day(self.uid(f"holiday-{d:%Y%m%d}"), name, d, d)

    def agenda(self) -> None:
        for i, a in enumerate(self.life.agenda):
            place = PLACES[a.place] if a.place else None
            location = f"{place.name}, {place.address}" if place else ""
            uid = self.uid(f"{a.kind}-{i:03d}")
            if a.all_day and a.first and a.last:
                self.all_day(uid, a.title, a.first, a.last, location)
                continue
            lines = [f"DTSTART;TZID={a.tz}:{_local(a.start, a.tz)}", f"DTEND;TZID={a.end_tz}:{_local(a.end, a.end_tz)}"]
            ev = _Event(uid, a.title, lines, location, organizer=self.me,
                        attendees=(*a.attendees, self.me) if a.attendees else ())
            if a.kind == "doctor":
                ev.description = "Routine check-up with Dr. Lee. Bring the repeat prescription form."
                ev.extra = ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Dr. Lee tomorrow", "TRIGGER:-P1D",
                            "END:VALARM"]
            self.single(ev, a.start, a.end, tzid=a.tz)

    def meetings(self, days: list[date]) -> None:
        rng, n = self.rng, 0
        for d in days:
            if self.life.day_kind.get(d) not in ("work", "wfh") or rng.random() > 0.35:
                continue
            title = rng.choice(MEETINGS)
            hh, mm = rng.choice([(10, 0), (10, 30), (11, 0), (13, 0), (15, 0), (15, 30)])
            start = self.at(d, hh, mm)
            end = start + timedelta(minutes=rng.choice([30, 45, 60]))
            people = tuple(rng.sample(self.team, rng.randint(2, 4)))
            external = "Northwind" in title or "Acme" in title
            if external:
                people += (self.external[0] if "Northwind" in title else self.external[1],)
            organizer = rng.choice([self.me, *people[:2]])
            attendees = tuple(Attendee(a.name, a.email, rng.choice(["ACCEPTED", "ACCEPTED", "TENTATIVE"]))
                              for a in dict.fromkeys((organizer, *people, self.me)))
            desc = (f"{title}.\nAgenda: status of the Kestrel migration, open risks, next steps and owners. "
                    "Notes: https://docs.example.com/d/kestrel-notes — please read before the meeting.")
            when = ([f"DTSTART:{_utc(start)}", f"DTEND:{_utc(end)}"] if external else
                    [f"DTSTART;TZID={LONDON}:{_local(start, LONDON)}", f"DTEND;TZID={LONDON}:{_local(end, LONDON)}"])
            ev = _Event(self.uid(f"meeting-{n:04d}"), title, when, "Meridian Labs — Room Thames, 10 Finsbury Square",
                        desc, organizer, attendees)
            self.single(ev, start, end, tzid=None if external else LONDON)
            n += 1

    # --- text ---------------------------------------------------------------------------------
    def vevent(self, ev: _Event) -> list[str]:
        out = ["BEGIN:VEVENT", *[x for x in ev.lines if x.startswith("DT")], f"DTSTAMP:{self.stamp}"]
        if ev.organizer:
            out.append(f"ORGANIZER;CN={_cn(ev.organizer)}:mailto:{ev.organizer.email}")
        out += [x for x in ev.lines if not x.startswith("DT")]
        out += [f"UID:{ev.uid}"]
        for a in ev.attendees:
            out.append(f"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT={a.partstat};CN={_cn(a)};"
                       f"X-NUM-GUESTS=0:mailto:{a.email}")
        out += [f"CREATED:{self.stamp}", f"DESCRIPTION:{escape(ev.description)}", f"LAST-MODIFIED:{self.stamp}",
                f"LOCATION:{escape(ev.location)}", f"STATUS:{ev.status}", f"SUMMARY:{escape(ev.summary)}",
                "TRANSP:OPAQUE" if not any(x.startswith("TRANSP") for x in ev.lines) else "", *ev.extra,
                "END:VEVENT"]
        return [x for x in out if x]


BROKEN_VEVENT = ["BEGIN:VEVENT", "DTSTART;TZID=Europe/London:20251345T250000", "DTEND;TZID=Europe/London:2025",
                 "UID:broken-export-line@lifevault.synth", "SUMMARY:Team drinks (corrupted by a sync tool)",
                 "END:VEVENT"]


def write_calendar(path: Path, life: Life, *, plant_bad: bool) -> tuple[tuple[Occurrence, ...], int, list[int]]:
    """Write calendar.ics; returns (occurrences, VEVENT count incl. bad, positions of the broken VEVENTs)."""
    cal = _Calendar(life)
    p = life.persona
    days = [p.start + timedelta(days=i) for i in range(p.days)]
    cal.standup(days)
    cal.one_on_one(days)
    cal.monthly_review(days)
    cal.birthdays()
    cal.holidays()
    cal.agenda()
    cal.meetings(days)
    lines = ["BEGIN:VCALENDAR", "PRODID:-//Google Inc//Google Calendar 70.9054//EN", "VERSION:2.0",
             "CALSCALE:GREGORIAN", "METHOD:PUBLISH", f"X-WR-CALNAME:{p.email}", f"X-WR-TIMEZONE:{LONDON}",
             *_vtimezone(LONDON), *_vtimezone(LISBON)]
    bad_at = len(cal.events) // 2 if plant_bad else -1
    for i, ev in enumerate(cal.events):
        if i == bad_at:
            lines += BROKEN_VEVENT
        lines += cal.vevent(ev)
    lines.append("END:VCALENDAR")
    path.write_bytes(b"".join(fold(x) for x in lines))
    occurrences = tuple(sorted(cal.occurrences, key=lambda o: (o.start, o.uid, o.recurrence_id)))
    return occurrences, len(cal.events) + (1 if plant_bad else 0), [bad_at] if plant_bad else []
