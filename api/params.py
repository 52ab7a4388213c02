"""Times as agents send them, and the query parameters shared by the derived-data endpoints: a time range
(`from`, `to`) and a row limit.

Every time the API accepts (`from`/`to`, `since`/`until`, `occurred_at`) may be:
  - an ISO 8601 date-time with an offset: `2025-03-01T09:30:00+01:00`, `2025-03-01T08:30:00Z`;
  - a date-time without one: `2025-03-01T09:30`, read in the vault's home time zone (vault/homezone.py);
  - a date: `2025-03-01`, local midnight in the home time zone; as an end (`to`, `until`) it includes that
    whole day (it stands for the next midnight).
Anything else is a 422 naming the field and these forms; a time beyond the ends of the calendar (year 1
east of UTC, the day after 9999-12-31) is clamped to the first or last representable instant. The home zone of the request's vault is put in
HOME_ZONE by the app's guard before the request is parsed; outside a request it is UTC.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import PlainValidator, WithJsonSchema

DEFAULT_DAYS = 30
MAX_TIME_CHARS = 64  # longer than any ISO 8601 date-time
HOME_ZONE: ContextVar[tzinfo] = ContextVar("lifevault_home_zone", default=UTC)
FORMS = ("a date (2025-03-01) or an ISO 8601 date-time (2025-03-01T09:30, with an optional offset such as "
         "+01:00 or Z; without one it is read in the vault's home time zone)")


def read_time(value: Any, *, end: bool = False) -> datetime:
    """An aware datetime from what an agent sent (see the module docstring); ValueError names the forms."""
    day: date | None = None
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str) and len(value) <= MAX_TIME_CHARS:
        text = value.strip().upper()  # RFC 3339 allows 't' and 'z'
        try:
            if len(text) <= 10:
                day = date.fromisoformat(text)
            else:
                at = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected {FORMS}") from None
    else:
        raise ValueError(f"expected {FORMS}")
    if day is not None:
        at = datetime.combine(day, time())
    if at.tzinfo is None:
        at = at.replace(tzinfo=HOME_ZONE.get())
    try:
        at = at + timedelta(days=1) if day is not None and end else at
        at.astimezone(UTC)  # it must exist as an instant
    except OverflowError:  # past the ends of the calendar (year 1 east of UTC, the day after 9999-12-31): clamped
        return (datetime.min if at.year == 1 else datetime.max).replace(tzinfo=UTC)
    return at


def _schema(role: str) -> WithJsonSchema:
    # the schema names the RFC 3339 forms; an offset-less date-time is accepted too (described, not declared)
    return WithJsonSchema({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
                           "description": f"{role}: {FORMS}.",
                           "examples": ["2025-03-01", "2025-03-01T09:30", "2025-03-01T09:30:00+01:00"]})


Start = Annotated[datetime, PlainValidator(lambda v: read_time(v, end=False)), _schema("A start")]
End = Annotated[datetime, PlainValidator(lambda v: read_time(v, end=True)),
                _schema("An end (a date includes that whole day)")]


@dataclass(frozen=True, slots=True)
class Range:
    start: datetime
    end: datetime
    limit: int


async def time_range(
    start: Annotated[Start | None, Query(alias="from", description="Start; default 30 days before `to`.")] = None,
    end: Annotated[End | None, Query(alias="to", description="End (a date includes that whole day); default 30 days "
                                     "after `from`, or now.")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="At most this many rows.")] = 500,
) -> Range:
    """Without `to`: 30 days from `from` (or up to now); without `from`: 30 days before `to`. An empty or
    inverted range is simply empty."""
    try:
        if end is None:
            end = start + timedelta(days=DEFAULT_DAYS) if start is not None else datetime.now(UTC)
        start = start or end - timedelta(days=DEFAULT_DAYS)
    except OverflowError:  # 30 days past 9999 or before year 1: the range ends (or starts) there
        start, end = start or datetime.min.replace(tzinfo=UTC), end or datetime.max.replace(tzinfo=UTC)
    return Range(start=start, end=max(start, end), limit=limit)


RangeDep = Annotated[Range, Depends(time_range)]


def iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None
