"""Query parameters shared by the derived-data endpoints: a time range (`from`, `to`) and a row limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Query
from pydantic import AwareDatetime

DEFAULT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Range:
    start: datetime
    end: datetime
    limit: int


async def time_range(
    start: Annotated[AwareDatetime | None, Query(alias="from", description="Start (ISO 8601 with offset); default 30 days before `to`.")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to", description="End (ISO 8601 with offset); default 30 days after `from`, or now.")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="At most this many rows.")] = 500,
) -> Range:
    """Without `to`: 30 days from `from` (or up to now); without `from`: 30 days before `to`. An empty or
    inverted range is simply empty."""
    if end is None:
        end = start + timedelta(days=DEFAULT_DAYS) if start is not None else datetime.now(UTC)
    start = start or end - timedelta(days=DEFAULT_DAYS)
    return Range(start=start, end=max(start, end), limit=limit)


RangeDep = Annotated[Range, Depends(time_range)]


def iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None
