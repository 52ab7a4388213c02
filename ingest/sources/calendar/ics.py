"""iCalendar (RFC 5545) files -> calendar occurrences (the EVENTS table).

One file holds one or more VCALENDARs (or bare VEVENTs). Every VEVENT is a record; its position is its
0-based index among the VEVENTs of the file. Rows are occurrences keyed by (uid, recurrence_id):

- A single event (no RRULE/RDATE/EXDATE/RECURRENCE-ID under its UID) gives one row with recurrence_id ""
  and is kept whatever its date.
- A recurring series (RRULE, RDATE incl. PERIOD, EXDATE, overridden instances with RECURRENCE-ID,
  RANGE=THISANDFUTURE as far as recurring-ical-events supports it) is expanded from the series start
  (option `window_start`, default HISTORY_START, so nothing after 1900 is cut) to `window_end` (default
  365 days after `now`); recurrence_id is the original start of the instance in UTC,
  "YYYY-MM-DDTHH:MM:SSZ", or "YYYY-MM-DD" for all-day series. A series with more than `max_occurrences`
  (10,000) instances keeps the first ones and yields a Rejected saying how many more it has; a series
  whose expansion takes too many steps (FREQ=SECONDLY over years) is quarantined whole, and a rule whose
  BYMONTH/BYMONTHDAY never meet (30 February) is quarantined without being expanded. The whole file
  gets `expansion_seconds` (EXPANSION_FILE_SECONDS) of expansion and at most EXPANSION_MAX_EXPENSIVE
  series over their budget; its remaining recurring series are then quarantined (see budget.py).
  Nothing can hang the file.
- Times: TZID (VTIMEZONE, IANA or Windows names) -> that zone, tzid = the TZID as written; UTC -> tzid
  null, utc_offset_min 0; floating times and all-day DATEs -> read in the calendar's X-WR-TIMEZONE when
  it has one, else UTC, tzid "floating". All-day rows start at local midnight: start + utc_offset_min is
  the calendar date. Under X-WR-TIMEZONE, recurring series written in UTC are expanded in that zone,
  as Google means them. DTEND, else DURATION, else RFC 5545 defaults (one day for DATE, zero else).
- status: STATUS as written, "CONFIRMED" when absent; a cancelled instance (cancelled master or
  cancelled override) is a row with status "CANCELLED"; EXDATE'd instances give no row.
- organizer "Name <email>" (or the email); attendees a JSON array of {"name","email","partstat"}.

Errors are values: a VEVENT that cannot be used (no DTSTART, broken DTSTART/DTEND/DURATION/RRULE/RDATE/
EXDATE/RECURRENCE-ID, DTEND before DTSTART, not terminated, bad recurrence) -> Rejected with its position;
the other VEVENTs still load. A VEVENT that loads but lost a part (a line that is not a content line, a
broken minor property, a TZID without a zone) also yields a Rejected for that part. A lower-SEQUENCE
duplicate of a UID/RECURRENCE-ID is Rejected as superseded. No VCALENDAR/VEVENT at all -> one
Rejected(position=-1). A missing UID becomes a stable hash of the VEVENT's text. Components that are not
events (VTODO, ...), calendars without VEVENTs and series with no instance in the window are not errors:
`batches` returns their counts (the generator's return value, {reason: count}) and logs them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import zoneinfo
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, cast

import icalendar
import recurring_ical_events
import x_wr_timezone
from icalendar.timezone import tzp

from ingest.files import InputFile
from ingest.records import Batch, Rejected, clip_raw, frame
from ingest.sources.calendar.budget import (
    EXPANSION_FILE_SECONDS,
    FileBudget,
    TooExpensive,
    never_matches,
    step_budget,
)
from ingest.sources.calendar.text import _Calendar, _decode, _lines, _name_value, _RawEvent, _scan

FORMAT = "ics"
KIND = "calendar"

DEFAULT_MAX_OCCURRENCES = 10_000
# Guard per series: Python calls made while expanding it (deterministic), plus a wall-clock backstop.
# A legitimate series needs ~45 calls per occurrence and ~4 per day between DTSTART and the window.
EXPANSION_BASE_STEPS = 250_000
EXPANSION_STEPS_PER_OCCURRENCE = 50
EXPANSION_MAX_SECONDS = 3.0
HISTORY_START = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)  # series are expanded from their start, not before this
REMAINDER_COUNT_STEPS = 500_000  # steps spent counting what a capped series has beyond the cap
BATCH_ROWS = 100_000

_SUFFIXES = (".ics", ".ical", ".icalendar", ".ifb")
_ESSENTIAL = frozenset({"UID", "DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID"})
_RECURRING = ("RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")
_UTC_NAMES = frozenset({"UTC", "ETC/UTC", "Z", "GMT", "ETC/GMT"})
_NO_OCCURRENCE = "recurring series with no occurrence in the window"
_SUPERSEDED = "superseded by another VEVENT with the same UID and RECURRENCE-ID (lower SEQUENCE)"

log = logging.getLogger(__name__)


def detect(f: InputFile) -> bool:
    if f.name.lower().endswith(_SUFFIXES):
        return True
    head = f.head(1024).lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    return head.startswith(b"BEGIN:VCALENDAR")


def batches(
    f: InputFile,
    *,
    now: dt.datetime | None = None,
    window_start: dt.datetime | None = None,
    window_end: dt.datetime | None = None,
    max_occurrences: int = DEFAULT_MAX_OCCURRENCES,
    expansion_seconds: float = EXPANSION_FILE_SECONDS,
) -> Generator[Batch, None, dict[str, int]]:
    """Occurrences of every VEVENT in `f`; returns the counts of what was skipped as not-an-event."""
    now = _aware(now or dt.datetime.now(dt.UTC))
    start = _aware(window_start or HISTORY_START)
    end = _aware(window_end or now + dt.timedelta(days=365))
    try:
        lines = _lines(_decode(f.read_bytes()))
    except OSError as e:
        yield Batch("events", frame("events", []), [_file_failed(f, f"cannot read file: {e}", "")])
        return {}
    scan = _scan(lines)
    if not scan.saw_ical:
        reason = "not an iCalendar file: no BEGIN:VCALENDAR or BEGIN:VEVENT"
        yield Batch("events", frame("events", []), [_file_failed(f, reason, "\n".join(lines[:20]))])
        return {}
    expander = _Expander(f, start, end, max_occurrences, FileBudget(expansion_seconds))
    for text in scan.timezones:
        expander.add_timezone(text)
    for raw in scan.events:
        try:
            expander.add_event(raw)
        except Exception as e:  # noqa: BLE001 -- last resort: a VEVENT we failed to read is a reject
            expander.reject(raw.position, f"unusable VEVENT: {type(e).__name__}: {e}", raw.raw)
    rows: list[dict] = []
    for group in expander.groups.values():
        rows.extend(expander.rows(group))
        if len(rows) >= BATCH_ROWS:
            yield Batch("events", frame("events", rows), expander.take_rejected())
            rows = []
    rejected = expander.take_rejected()
    if rows or rejected:
        yield Batch("events", frame("events", rows), rejected)
    skipped = dict(scan.skipped + expander.skipped)
    if skipped:
        log.info("%s: skipped %s", FORMAT, skipped)
    return skipped


# --- components -> occurrences -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Meta:
    """What a row takes from the VEVENT that produced it."""

    position: int
    raw: str
    floating: dt.tzinfo  # where floating times and DATEs are read
    tzid: str | None  # "floating", a TZID as written, or None for UTC
    recurrence_id: dt.date | None  # RECURRENCE-ID of an override
    fields: dict  # summary, location, ... (the row's non-time columns)


class _Adapter(recurring_ical_events.EventAdapter):
    def __init__(self, component: icalendar.Component, meta: _Meta) -> None:
        super().__init__(component)
        self.meta = meta


class _Occurrence(recurring_ical_events.Occurrence):
    source: _Adapter
    original: dt.date | None  # the start the recurrence rule gave this instance (its RECURRENCE-ID)


class _Series(recurring_ical_events.Series):
    def occurrence(
        self, adapter: _Adapter, start: dt.date | None = None, end: dt.date | dt.timedelta | None = None
    ) -> _Occurrence:
        occ = _Occurrence(adapter, start, end, sequence=self.sequence)
        occ.source = adapter
        if start is None:  # an override, seen as itself
            occ.original = adapter.meta.recurrence_id
        else:  # generated by the rule; THISANDFUTURE overrides move later instances
            occ.original = start - adapter.move_recurrences_by
        return occ


class _Expander:
    def __init__(self, f: InputFile, start: dt.datetime, end: dt.datetime, cap: int, budget: FileBudget) -> None:
        self.f, self.start, self.end, self.cap, self.budget = f, start, end, cap, budget
        self.max_steps = EXPANSION_BASE_STEPS + EXPANSION_STEPS_PER_OCCURRENCE * cap
        self.calendar_name = Path(f.name).stem
        self.groups: dict[str, list[tuple[icalendar.Event, _Meta]]] = {}
        self.rejected: list[Rejected] = []
        self.skipped: Counter[str] = Counter()
        self.tz_problems: dict[str, str] = {}
        self.zones: dict[str | None, tuple[dt.tzinfo, str | None]] = {}

    def take_rejected(self) -> list[Rejected]:
        out, self.rejected = self.rejected, []
        return out

    def reject(self, position: int, reason: str, raw: str) -> None:
        reason = " ".join(reason.split())
        reason = reason if len(reason) <= 300 else reason[:299] + "…"
        self.rejected.append(
            Rejected(format=FORMAT, file=self.f.name, position=position, reason=reason, raw=clip_raw(raw))
        )

    def add_timezone(self, text: str) -> None:
        try:  # parsing registers the zone with icalendar for the TZIDs of this file
            icalendar.Timezone.from_ical(text)
        except Exception as e:  # noqa: BLE001 -- a broken VTIMEZONE only affects events that use it
            tzid = next((v for n, v in map(_name_value, text.splitlines()) if n == "TZID"), "?")
            self.tz_problems[tzid] = f"{type(e).__name__}: {e}"

    def floating_zone(self, xwr: str | None) -> tuple[dt.tzinfo, str | None]:
        """The zone for floating times, and a problem to report when X-WR-TIMEZONE is unusable."""
        if xwr not in self.zones:
            try:
                zone = (tzp.timezone(xwr) or zoneinfo.ZoneInfo(xwr)) if xwr else dt.UTC
            except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                zone = None
            problem = (
                None if zone else f"X-WR-TIMEZONE {xwr!r} is not a known zone; floating time read as UTC"
            )
            self.zones[xwr] = (zone or dt.UTC, problem)
        return self.zones[xwr]

    def add_event(self, raw: _RawEvent) -> None:
        if raw.problem:
            return self.reject(raw.position, raw.problem, raw.raw)
        try:
            event = cast(icalendar.Event, icalendar.Event.from_ical(raw.text))
        except Exception as e:  # noqa: BLE001 -- the parser raises many types on bad input
            return self.reject(raw.position, f"unparseable VEVENT: {type(e).__name__}: {e}", raw.raw)
        floating, xwr_problem = self.floating_zone(raw.calendar.xwr_tz)
        problem = _unusable(event, floating)
        if problem:
            return self.reject(raw.position, problem, raw.raw)
        for name, msg in event.errors:  # what is left is not essential: load the event, quarantine the part
            what = f"broken {name}" if name else "an unparseable line"
            self.reject(raw.position, f"loaded without {what}: {msg}", raw.raw)
        dtstart = cast(icalendar.vDDDTypes, event["DTSTART"])  # _unusable() saw a date in it
        tzid = _tz_label(dtstart)
        if tzid not in (None, "floating") and not isinstance(getattr(dtstart.dt, "tzinfo", None), dt.tzinfo):
            why = self.tz_problems.get(tzid, "no VTIMEZONE and not a known zone")
            self.reject(raw.position, f"loaded with TZID {tzid!r} read as floating: {why}", raw.raw)
            tzid = "floating"
        if tzid == "floating" and xwr_problem:
            self.reject(raw.position, f"loaded with {xwr_problem}", raw.raw)
        uid = str(_first(event.get("UID")) or "")
        if not uid:
            uid = "sha256:" + hashlib.sha256(raw.text.encode()).hexdigest()[:32]
            event["UID"] = uid
        rid = event.get("RECURRENCE-ID")
        meta = _Meta(
            position=raw.position,
            raw=raw.raw,
            floating=floating,
            tzid=tzid,
            recurrence_id=rid.dt if rid is not None else None,
            fields=self.fields(event, uid, raw.calendar),
        )
        self.groups.setdefault(uid, []).append((event, meta))

    def fields(self, event: icalendar.Event, uid: str, calendar: _Calendar) -> dict:
        status = str(_first(event.get("STATUS")) or "CONFIRMED").strip().upper()
        return {
            "uid": uid,
            "summary": _text(event.get("SUMMARY")),
            "location": _text(event.get("LOCATION")),
            "description": _text(event.get("DESCRIPTION")),
            "status": status,
            "organizer": _organizer(_first(event.get("ORGANIZER"))),
            "attendees": _attendees(event.get("ATTENDEE")),
            "calendar": calendar.name or self.calendar_name,
            "format": FORMAT,
            "file": self.f.name,
        }

    def rows(self, group: list[tuple[icalendar.Event, _Meta]]) -> list[dict]:
        if not any(name in event for event, _ in group for name in _RECURRING):
            return self.single(group)
        events: list[icalendar.Component] = [event for event, _ in group]
        zone = group[0][1].floating
        if zone is not dt.UTC:  # X-WR-TIMEZONE: expand UTC and floating series in that zone, as Google does
            cal = icalendar.Calendar()
            cal.subcomponents = events
            events = x_wr_timezone.to_standard(cal, timezone=zone).subcomponents
        for event, _ in group:
            for rule in _as_list(event.get("RRULE")):
                if why := never_matches(rule):
                    return self.reject_group(group, why)
        if why := self.budget.spent_reason():
            return self.reject_group(group, why)
        adapters = [_Adapter(event, meta) for event, (_, meta) in zip(events, group, strict=True)]
        more = 0
        try:
            with self.budget.charge(), step_budget(self.max_steps, min(EXPANSION_MAX_SECONDS, self.budget.left())):
                series = _Series(adapters)
                found = series.between(self.start, self.end)
                occurrences = list(islice(found, self.cap + 1))
            if len(occurrences) > self.cap:
                more = self.count_rest(found)
            rows = [self.row(occ.source.meta, occ.start, occ.end, occ.original) for occ in occurrences]
        except TooExpensive as e:
            return self.reject_group(group, f"recurrence too expensive to expand ({e})")
        except Exception as e:  # noqa: BLE001 -- errors are values: one bad series must not stop the file
            return self.reject_group(group, f"cannot expand recurrence: {type(e).__name__}: {e}")
        kept = {id(a) for a in series.recurrence_id_to_modification.values()}
        if series.recurrence.has_core:
            kept.add(id(series.recurrence.core))
        for adapter in adapters:
            if id(adapter) not in kept:
                self.reject(adapter.meta.position, _SUPERSEDED, adapter.meta.raw)
        if len(rows) > self.cap:
            rows, first = (
                rows[: self.cap],
                (series.recurrence.core if series.recurrence.has_core else adapters[0]).meta,
            )
            rest = f"{more:,} more" if more > 0 else f"at least {-more:,} more"
            reason = f"more than {self.cap:,} occurrences: loaded the first {self.cap:,}, {rest} not loaded"
            self.reject(first.position, reason + " (raise max_occurrences for more)", first.raw)
        if not rows:
            self.skipped[_NO_OCCURRENCE] += 1
        return rows

    def count_rest(self, found: Any) -> int:
        """How many occurrences a capped series has beyond its cap (the one already taken included);
        negative when counting ran out of budget first (then: at least that many)."""
        n = 1
        try:
            with self.budget.charge(), step_budget(REMAINDER_COUNT_STEPS, min(EXPANSION_MAX_SECONDS, self.budget.left())):
                for _ in found:
                    n += 1
        except TooExpensive:
            self.budget.expensive -= 1  # counting is best effort, not a sign of a hostile series
            return -n
        return n

    def single(self, group: list[tuple[icalendar.Event, _Meta]]) -> list[dict]:
        best = max(range(len(group)), key=lambda i: (_sequence(group[i][0]), -i))
        for i, (_, meta) in enumerate(group):
            if i != best:
                self.reject(meta.position, _SUPERSEDED, meta.raw)
        event, meta = group[best]
        adapter = _Adapter(event, meta)
        try:
            return [self.row(meta, adapter.start, adapter.end, None)]
        except (OverflowError, ValueError) as e:
            self.reject(meta.position, f"time out of range: {e}", meta.raw)
            return []

    def reject_group(self, group: list[tuple[icalendar.Event, _Meta]], reason: str) -> list[dict]:
        for _, meta in group:
            self.reject(meta.position, reason, meta.raw)
        return []

    def row(self, meta: _Meta, start: dt.date, end: dt.date, original: dt.date | None) -> dict:
        start_utc, offset = _to_utc(start, meta.floating)
        return {
            **meta.fields,
            "recurrence_id": "" if original is None else _recurrence_id(original, meta.floating),
            "start": start_utc,
            "end": _to_utc(end, meta.floating)[0],
            "utc_offset_min": 0 if meta.tzid is None else offset,
            "tzid": meta.tzid,
            "all_day": not isinstance(start, dt.datetime),
            "position": meta.position,
        }


# --- values ----------------------------------------------------------------------------------------


def _aware(value: dt.datetime) -> dt.datetime:
    """UTC; a naive option is taken as UTC (not as the machine's local time)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _file_failed(f: InputFile, reason: str, raw: str) -> Rejected:
    return Rejected(format=FORMAT, file=f.name, position=-1, reason=reason, raw=clip_raw(raw))


def _unusable(event: icalendar.Event, floating: dt.tzinfo) -> str | None:
    """Why a parsed VEVENT cannot give occurrences, or None."""
    broken = sorted((name, msg) for name, msg in event.errors if name in _ESSENTIAL)
    if broken:
        return "broken " + "; ".join(f"{name}: {msg}" for name, msg in broken)
    repeated = [
        n for n in ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID") if isinstance(event.get(n), list)
    ]
    if repeated:
        return f"more than one {', '.join(repeated)}"
    dtstart = getattr(event.get("DTSTART"), "dt", None)
    if not isinstance(dtstart, dt.date):
        bad_lines = [msg for name, msg in event.errors if not name]
        return "VEVENT has no usable DTSTART" + (f" ({bad_lines[0]})" if bad_lines else "")
    for name in ("DTEND", "RECURRENCE-ID"):
        if name in event and not isinstance(getattr(event[name], "dt", None), dt.date):
            return f"{name} is not a date or date-time"
    for name in ("RDATE", "EXDATE"):
        for values in _as_list(event.get(name)):
            if any(not isinstance(v.dt, dt.date | tuple) for v in values.dts):
                return f"{name} holds a value that is not a date, date-time or period"
    for rule in _as_list(event.get("RRULE")):
        if "RSCALE" in rule or "SKIP" in rule:
            return "RRULE uses RSCALE/SKIP (RFC 7529 calendar scales), which is not supported"
    start, end = (
        _to_utc(v, floating)[0]
        for v in (dtstart, recurring_ical_events.EventAdapter(event).raw_end)
    )
    return "event ends before it starts (DTEND/DURATION)" if end < start else None


def _as_list(value: Any) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _text(value: Any) -> str | None:
    value = _first(value)
    return None if value is None else str(value)


def _sequence(event: icalendar.Event) -> int:
    try:
        return int(_first(event.get("SEQUENCE", -1)))
    except (TypeError, ValueError):
        return -1


def _tz_label(prop: icalendar.vDDDTypes) -> str | None:
    value = prop.dt
    tzid = prop.params.get("TZID")
    if not isinstance(value, dt.datetime):
        return "floating"
    if tzid:
        return None if str(tzid).upper() in _UTC_NAMES else str(tzid)
    return "floating" if value.tzinfo is None else None


def _to_utc(value: dt.date, floating: dt.tzinfo) -> tuple[dt.datetime, int]:
    """An instant in UTC and the UTC offset (minutes) of the zone it was read in."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=floating)
    offset = value.utcoffset() or dt.timedelta(0)
    return value.astimezone(dt.UTC), int(offset.total_seconds() // 60)


def _recurrence_id(original: dt.date, floating: dt.tzinfo) -> str:
    if not isinstance(original, dt.datetime):
        return original.isoformat()
    return _to_utc(original, floating)[0].strftime("%Y-%m-%dT%H:%M:%SZ")


def _email(address: Any) -> str:
    text = str(address).strip()
    return text[7:] if text[:7].lower() == "mailto:" else text


def _organizer(value: Any) -> str | None:
    if value is None:
        return None
    name = getattr(value, "params", {}).get("CN")
    return f"{name} <{_email(value)}>" if name else _email(value)


def _attendees(value: Any) -> str | None:
    if value is None:
        return None
    people = []
    for a in value if isinstance(value, list) else [value]:
        params = getattr(a, "params", {})
        people.append({"name": params.get("CN"), "email": _email(a), "partstat": params.get("PARTSTAT")})
    return json.dumps(people, ensure_ascii=False)
