"""Bounds on recurrence expansion: a step budget per series, a time budget per file, impossible rules.

Expansion (dateutil under recurring-ical-events) can loop for minutes without yielding on a rule that
never matches or is absurdly dense. Three bounds keep one file from holding the run (and the vault's
write lock):
- `never_matches`: a rule whose BYMONTH/BYMONTHDAY can never meet (FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30)
  is refused at once, without expanding it;
- `step_budget`: each series gets a number of Python calls and a wall-clock backstop (see ics);
- `FileBudget`: a file gets EXPANSION_FILE_SECONDS of expansion in all, and at most
  EXPANSION_MAX_EXPENSIVE series that blow their own budget; after either, its remaining recurring
  series are quarantined without being expanded (single events still load).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

EXPANSION_FILE_SECONDS = 20.0  # all recurring series of one file together
EXPANSION_MAX_EXPENSIVE = 2  # series of one file allowed to exceed their own budget before the rest is refused

_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


class TooExpensive(Exception):
    pass


@contextmanager
def step_budget(max_steps: int, seconds: float) -> Iterator[None]:
    """Abort the code run inside after `max_steps` Python calls or `seconds`, whichever comes first.

    A trace function is the one way to stop a loop that never yields from the same thread.
    """
    previous = sys.gettrace()
    deadline = time.monotonic() + seconds
    steps = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal steps
        steps += 1
        if steps > max_steps:
            raise TooExpensive(f"more than {max_steps:,} steps")
        if not steps & 0x3FF and time.monotonic() > deadline:
            raise TooExpensive(f"more than {seconds:g} s")

    sys.settrace(count)
    try:
        yield
    finally:
        sys.settrace(previous)


class FileBudget:
    """What is left of one file's expansion budget."""

    def __init__(self, seconds: float = EXPANSION_FILE_SECONDS, max_expensive: int = EXPANSION_MAX_EXPENSIVE) -> None:
        self.seconds, self.max_expensive = seconds, max_expensive
        self.spent = 0.0
        self.expensive = 0

    def spent_reason(self) -> str | None:
        """Why no more series of this file may be expanded, or None."""
        if self.spent >= self.seconds:
            return f"not expanded: the file's recurrence budget ({self.seconds:g} s) is spent"
        if self.expensive >= self.max_expensive:
            return f"not expanded: {self.expensive} series of this file already exceeded their budget"
        return None

    def left(self) -> float:
        return max(self.seconds - self.spent, 0.0)

    @contextmanager
    def charge(self) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        except TooExpensive:
            self.expensive += 1
            raise
        finally:
            self.spent += time.monotonic() - t0


def never_matches(rule: Any) -> str | None:
    """Why an RRULE (an icalendar vRecur) can never produce an instance from its BY parts, or None.

    Only the month/day combinations are checked (the cheap, common trap): no BYMONTH has a day that
    BYMONTHDAY names (30 February, 31 April, -30 February).
    """
    try:
        months = [int(m) for m in rule.get("BYMONTH", [])]
        days = [int(d) for d in rule.get("BYMONTHDAY", [])]
    except (TypeError, ValueError):
        return None
    if not months or not days or any(m not in _DAYS_IN_MONTH for m in months):
        return None
    for m in months:
        n = _DAYS_IN_MONTH[m]
        if any(1 <= d <= n or -n <= d <= -1 for d in days):
            return None
    return (
        f"RRULE never matches: BYMONTHDAY {','.join(map(str, days))} does not occur in "
        f"BYMONTH {','.join(map(str, months))}"
    )
