"""Cheap, robust temporal understanding of a query: phrases -> filters, removed from the query text.

    parse("how much YouTube after 11pm last month", now) ->
        ("how much YouTube", TimeFilter(since=2025-02-01, until=2025-03-01, hours=(1380, 1440), ...))

Understood: today, yesterday, last night, this/last/past week|month|year, this/last/next weekend, last|past N days|weeks|months,
in <Month> [year], <Month> <year>, on <day> <Month> [year] / <Month> <day>[, year], on weekends / weekdays /
on <Weekday>s, last <Weekday>, after|before <h>[:mm][am|pm], between <h> and <h>, in the morning /
afternoon / evening, at night; and "when did I last/first ..." as a recency preference (the latest
past memories first; "last" also stops at now). A question that starts "where was/did/have I ..." is
about places: app usage cannot answer it, so it is left out (kinds = WHERE_KINDS, unless the caller
gives kinds); that phrase stays in the text. Day boundaries are in `now`'s time zone; hour and weekday
windows apply to each memory's own local time (utc_offset_min).

A phrase naming a year outside YEARS ("in 9999", "on 31 Dec 0001"), or whose span would fall outside the
dates Python can hold ("last 99999999 days"), is not understood: it stays in the text as words and sets
no filter. Parsing never raises on any text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
     "december"])}
MONTHS |= {m[:3]: i for m, i in list(MONTHS.items())} | {"sept": 9}
WEEKDAYS = {d: i for i, d in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])}
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?P<wd>" + "|".join(WEEKDAYS) + r")"
WHERE_KINDS = frozenset({"visit", "trip", "event", "note"})  # everything but app usage
_WHERE = re.compile(r"^\W*where\s+(?:was|were|am|did|do|have|had)\s+(?:i|we)\b", re.IGNORECASE)
_CLOCK = r"(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ap>am|pm|a\.m\.|p\.m\.)?"
YEARS = range(1900, 2200)  # years a phrase may name; others are left as words (no filter)


def _year(text: str) -> int:
    year = int(text)
    if year not in YEARS:
        raise ValueError(f"year {year} is outside {YEARS.start}..{YEARS.stop - 1}")
    return year


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeFilter:
    since: datetime | None = None  # UTC instants; a memory matches when its span overlaps [since, until)
    until: datetime | None = None
    weekdays: frozenset[int] | None = None  # local weekday of the start, Monday = 0
    hours: tuple[int, int] | None = None  # local minutes of day [from, to); from > to wraps midnight
    recency: Literal["latest", "earliest"] | None = None
    kinds: frozenset[str] | None = None  # "where was I ...": the memory kinds that can say where
    understood: tuple[str, ...] = field(default=())

    def narrow(self, *, since: datetime | None, until: datetime | None) -> TimeFilter:
        s = max((t for t in (self.since, since) if t is not None), default=None)
        u = min((t for t in (self.until, until) if t is not None), default=None)
        return replace(self, since=s, until=u)


def _midnight(d: datetime) -> datetime:
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(year: int, month: int, tz) -> datetime:  # noqa: ANN001 - a tzinfo
    return datetime(year, month, 1, tzinfo=tz)


def _add_months(d: datetime, n: int) -> datetime:
    y, m = divmod(d.month - 1 + n, 12)
    return d.replace(year=d.year + y, month=m + 1, day=1)


def _hour(h: str, m: str | None, ap: str | None) -> int | None:
    hour, minute = int(h), int(m or 0)
    ap = (ap or "").replace(".", "")
    if ap == "pm" and hour < 12:
        hour += 12
    elif ap == "am" and hour == 12:
        hour = 0
    if hour > 24 or minute > 59:
        return None
    return min(hour * 60 + minute, 1440)


def parse(query: str, now: datetime) -> tuple[str, TimeFilter]:
    """(query without the temporal phrases, filter). `now` must be aware; its zone defines days."""
    tz = now.tzinfo or UTC
    now = now.astimezone(tz)
    today = _midnight(now)
    text = query
    found: dict[str, Any] = {}  # since, until, weekdays, hours, recency: TimeFilter's fields
    understood: list[str] = []

    def take(pattern: str, handler) -> None:  # noqa: ANN001 - handler(match) -> dict | None
        nonlocal text
        for match in list(re.finditer(pattern, text, flags=re.IGNORECASE)):
            try:
                out = handler(match)
                if out is not None:  # the instants must also convert to UTC (year 1 east of UTC cannot)
                    for v in out.values():
                        _utc(v)
            except (ValueError, OverflowError):  # a date out of range (or no such day): not understood
                out = None
            if out is None:
                continue
            found.update(out)
            understood.append(match.group(0).strip())
            text = text.replace(match.group(0), " ", 1)

    def span(a: datetime, b: datetime) -> dict[str, object]:
        return {"since": a, "until": b}

    def rel_unit(unit: str, which: str) -> dict[str, object]:
        unit = unit.lower()
        if unit == "week":
            start = today - timedelta(days=today.weekday())
            return {"this": span(start, start + timedelta(days=7)), "last": span(start - timedelta(days=7), start),
                    "past": span(now - timedelta(days=7), now)}[which]
        if unit == "month":
            start = today.replace(day=1)
            return {"this": span(start, _add_months(start, 1)), "last": span(_add_months(start, -1), start),
                    "past": span(now - timedelta(days=30), now)}[which]
        start = today.replace(month=1, day=1)
        return {"this": span(start, start.replace(year=start.year + 1)),
                "last": span(start.replace(year=start.year - 1), start),
                "past": span(now - timedelta(days=365), now)}[which]

    # recency first, so "last" in "when did I last see" is not read as a period
    take(r"\b(?:when\s+did\s+i\s+last|the\s+last\s+time|most\s+recent(?:ly)?|latest)\b",
         lambda m: {"recency": "latest", "until": now})
    take(r"\b(?:when\s+did\s+i\s+first|the\s+first\s+time|earliest)\b", lambda m: {"recency": "earliest"})
    take(r"\blast\s+night\b", lambda m: span(today - timedelta(hours=6), today + timedelta(hours=6)))
    take(r"\btoday\b|\btonight\b", lambda m: span(today, today + timedelta(days=1)))
    take(r"\byesterday\b", lambda m: span(today - timedelta(days=1), today))
    take(r"\b(?P<w>last|past|previous)\s+(?P<n>\d+)\s+(?P<u>day|week|month)s?\b",
         lambda m: span(now - timedelta(days=int(m["n"]) * {"day": 1, "week": 7, "month": 30}[m["u"].lower()]), now))
    take(r"\b(?P<w>this|last|past|previous)\s+(?P<u>week|month|year)\b",
         lambda m: rel_unit(m["u"], {"previous": "last"}.get(m["w"].lower(), m["w"].lower())))
    take(r"\blast\s+" + _WEEKDAY + r"\b", lambda m: span(
        today - timedelta(days=(today.weekday() - WEEKDAYS[m["wd"].lower()] - 1) % 7 + 1),
        today - timedelta(days=(today.weekday() - WEEKDAYS[m["wd"].lower()] - 1) % 7)))

    def day(m: re.Match[str]) -> dict[str, object] | None:
        month = MONTHS[m["month"].lower()]
        year = _year(m["y"]) if m["y"] else (now.year if (month, int(m["d"])) <= (now.month, now.day) else now.year - 1)
        start = datetime(year, month, int(m["d"]), tzinfo=tz)  # 31 February raises: not understood
        return span(start, start + timedelta(days=1))

    take(r"\bon\s+(?:the\s+)?(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + r"(?:,?\s+(?P<y>\d{4}))?\b", day)
    take(r"\b(?:on\s+)?" + _MONTH + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<y>\d{4}))?\b(?!\s*(?:am|pm|:))", day)

    def month(m: re.Match[str]) -> dict[str, object]:
        mo = MONTHS[m["month"].lower()]
        year = _year(m["y"]) if m["y"] else (now.year if mo <= now.month else now.year - 1)
        start = _month_start(year, mo, tz)
        return span(start, _add_months(start, 1))

    take(r"\b(?:in|during|over)\s+" + _MONTH + r"(?:\s+(?P<y>\d{4}))?\b", month)
    take(r"\b" + _MONTH + r"\s+(?P<y>\d{4})\b", month)
    take(r"\b(?:in|during)\s+(?P<y>\d{4})\b", lambda m: span(datetime(_year(m["y"]), 1, 1, tzinfo=tz),
                                                          datetime(_year(m["y"]) + 1, 1, 1, tzinfo=tz)))
    def weekend(which: str) -> dict[str, object]:  # Saturday 00:00 to Monday 00:00 of this week, or 7 days off
        saturday = today + timedelta(days=5 - today.weekday() + {"this": 0, "next": 7}.get(which, -7))
        return span(saturday, saturday + timedelta(days=2))

    take(r"\b(?:(?:over|during|on)\s+)?(?P<w>this|last|past|previous|next)\s+weekend\b",
         lambda m: weekend(m["w"].lower()))
    take(r"\b(?:on|at|over|during)?\s*(?:the\s+)?weekends?\b", lambda m: {"weekdays": frozenset({5, 6})})
    take(r"\b(?:on|during)?\s*(?:the\s+)?weekdays\b|\bon\s+workdays\b", lambda m: {"weekdays": frozenset(range(5))})
    take(r"\bon\s+" + _WEEKDAY + r"s\b", lambda m: {"weekdays": frozenset({WEEKDAYS[m["wd"].lower()]})})

    def hours(a: int | None, b: int | None) -> dict[str, object] | None:
        return None if a is None or b is None else {"hours": (a, b)}

    take(r"\bbetween\s+" + _CLOCK + r"\s+and\s+(?P<h2>\d{1,2})(?::(?P<m2>\d{2}))?\s*(?P<ap2>am|pm)?\b",
         lambda m: hours(_hour(m["h"], m["m"], m["ap"] or m["ap2"]), _hour(m["h2"], m["m2"], m["ap2"])))
    take(r"\bafter\s+" + _CLOCK + r"(?=\W|$)", lambda m: hours(_hour(m["h"], m["m"], m["ap"]), 1440)
         if (m["ap"] or m["m"]) else None)
    take(r"\bbefore\s+" + _CLOCK + r"(?=\W|$)", lambda m: hours(0, _hour(m["h"], m["m"], m["ap"]))
         if (m["ap"] or m["m"]) else None)
    take(r"\b(?:in\s+the\s+)?mornings?\b", lambda m: {"hours": (5 * 60, 12 * 60)})
    take(r"\b(?:in\s+the\s+)?afternoons?\b", lambda m: {"hours": (12 * 60, 17 * 60)})
    take(r"\b(?:in\s+the\s+)?evenings?\b", lambda m: {"hours": (17 * 60, 22 * 60)})
    take(r"\b(?:late\s+)?at\s+night\b|\blate\s+night\b", lambda m: {"hours": (22 * 60, 5 * 60)})

    where = _WHERE.match(query)
    if where:
        understood.insert(0, where.group(0).strip(" \t\n¿"))
    flt = TimeFilter(
        since=_utc(found.get("since")), until=_utc(found.get("until")),
        weekdays=found.get("weekdays"), hours=found.get("hours"),
        recency=found.get("recency"), understood=tuple(understood),
        kinds=WHERE_KINDS if where else None,
    )
    if flt.recency == "latest" and "since" in found and flt.until is not None:
        flt = replace(flt, until=min(flt.until, now.astimezone(UTC)))
    cleaned = re.sub(r"\s+", " ", re.sub(r"\s+([?.!,])", r"\1", text)).strip(" ,")
    return cleaned, flt


def _utc(v: object) -> datetime | None:
    return v.astimezone(UTC) if isinstance(v, datetime) else None
