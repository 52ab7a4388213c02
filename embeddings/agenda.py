"""Free time between busy intervals: the one gap-finding rule of `/v1/calendar/free` and of planning context
packs. Pure functions over UTC instants; callers choose the busy intervals (timed, non-cancelled events)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY_START_H = 8  # planning packs list free time within the waking day, local
DAY_END_H = 20


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime
    end: datetime

    @property
    def minutes(self) -> float:
        return round((self.end - self.start).total_seconds() / 60, 1)


def free_slots(busy: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime, *,
               min_minutes: int = 30) -> list[Slot]:
    """Gaps of at least `min_minutes` in [start, end) between the busy intervals (in start order; an interval
    without an end is an instant; overlapping intervals merge)."""
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted(busy, key=lambda se: se[0]):
        s, e = max(s, start), min(e or s, end)
        if e < s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    slots, cursor = [], start
    for s, e in [*merged, (end, end)]:
        if (s - cursor).total_seconds() >= min_minutes * 60:
            slots.append(Slot(cursor, s))
        cursor = max(cursor, e)
    return slots


def waking_days(start: datetime, end: datetime, offset_min: int) -> Iterator[tuple[datetime, datetime]]:
    """[DAY_START_H, DAY_END_H) of each local day that meets [start, end), as UTC instants, clipped to it."""
    shift = timedelta(minutes=offset_min)
    day = (start + shift).replace(hour=0, minute=0, second=0, microsecond=0)
    while day - shift < end:
        a = max(start, day + timedelta(hours=DAY_START_H) - shift)
        b = min(end, day + timedelta(hours=DAY_END_H) - shift)
        if b > a:
            yield a, b
        day += timedelta(days=1)
