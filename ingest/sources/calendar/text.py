"""iCalendar text -> components: decoding, unfolding, and a scan that finds every VEVENT with its position.

The scan never raises: a VEVENT that is not terminated is kept with the problem noted, components that
are not events are counted, VTIMEZONEs are collected for the parser.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import icalendar

_NAME = re.compile(r"\s*([A-Za-z0-9-]+)")


# --- text -> components ------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", "replace")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    return text.replace("\ufeff", "")


def _lines(text: str) -> list[str]:
    """Content lines, unfolded; CRLF, LF and lone CR all end a line."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] += line[1:]
        elif line.strip():
            out.append(line)
    return out


def _name_value(line: str) -> tuple[str, str]:
    m = _NAME.match(line)
    name = m.group(1).upper() if m else ""
    _, _, value = line.partition(":")
    return name, value.strip()


@dataclass(slots=True)
class _Calendar:
    name: str | None = None  # X-WR-CALNAME
    xwr_tz: str | None = None  # X-WR-TIMEZONE


@dataclass(frozen=True, slots=True)
class _RawEvent:
    position: int
    calendar: _Calendar
    text: str  # the VEVENT without nested components (VALARM), what gets parsed
    raw: str  # the VEVENT as found, for quarantine
    problem: str | None  # structural problem found while scanning


@dataclass(slots=True)
class _Scan:
    events: list[_RawEvent] = field(default_factory=list)
    timezones: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    saw_ical: bool = False


def _end_of(lines: list[str], i: int, comp: str) -> tuple[int, bool]:
    """Index after the END of the component opened at lines[i], and whether it was terminated."""
    depth = 0
    for j in range(i + 1, len(lines)):
        name, value = _name_value(lines[j])
        if name == "BEGIN":
            value = value.upper()
            if value in ("VCALENDAR", "VEVENT"):
                return j, False
            if value == comp:
                depth += 1
        elif name == "END":
            value = value.upper()
            if value == comp:
                if depth == 0:
                    return j + 1, True
                depth -= 1
            elif value == "VCALENDAR":
                return j, False
    return len(lines), False


def _own_lines(block: list[str]) -> list[str]:
    """The component's own lines: nested components (VALARM, ...) are not used and are left out."""
    out, depth = [], 0
    for line in block[1:-1]:
        name, _ = _name_value(line)
        if name == "BEGIN":
            depth += 1
        elif name == "END" and depth:
            depth -= 1
        elif depth == 0:
            out.append(line)
    return [block[0], *out, block[-1]]


def _scan(lines: list[str]) -> _Scan:
    scan, cal = _Scan(), _Calendar()
    i, n, position, opened_at = 0, len(lines), 0, None  # opened_at: VEVENTs seen when the VCALENDAR began
    while i < n:
        name, value = _name_value(lines[i])
        if name in ("BEGIN", "END") and value.upper() == "VCALENDAR":
            if name == "END" and opened_at == position:
                scan.skipped["calendar without VEVENT"] += 1
            scan.saw_ical |= name == "BEGIN"
            cal, i, opened_at = _Calendar(), i + 1, position if name == "BEGIN" else None
            continue
        if name == "BEGIN":
            comp = value.upper()
            stop, terminated = _end_of(lines, i, comp)
            block = lines[i:stop]
            if comp == "VEVENT":
                scan.saw_ical = True
                problem = None if terminated else "VEVENT is not terminated (no END:VEVENT)"
                text = "\n".join(_own_lines(block)) if terminated else ""
                scan.events.append(_RawEvent(position, cal, text, "\n".join(block), problem))
                position += 1
            elif comp == "VTIMEZONE" and terminated:
                scan.timezones.append("\n".join(block))
            elif comp != "VTIMEZONE":
                scan.skipped[f"{comp or 'unnamed'} component (not an event)"] += 1
            i = max(stop, i + 1)
            continue
        if name == "X-WR-CALNAME":
            cal.name = str(icalendar.vText.from_ical(value))
        elif name == "X-WR-TIMEZONE":
            cal.xwr_tz = value
        i += 1
    return scan
