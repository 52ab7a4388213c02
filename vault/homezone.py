"""The vault's home time zone: where the user's own data says they live. Used to read times given without
an offset (an agent's `from=2025-03-01`).

It is a statistic of the user's data, so a caller gets it computed over what it may read: without visits
(`visits=False`) the rule starts at step 3, without the calendar it skips the TZIDs, with neither it is UTC.

The rule, in order:
  1. the UTC offset the user spent the most time at, over their visits (stays.utc_offset_min weighted by
     duration: nights at home dominate);
  2. then, of the calendar events recorded at that same offset, the IANA time zone (TZID) most of them
     name, so daylight-saving changes are followed; without one, that fixed offset;
  3. without visits, the TZID (or, failing that, the offset) most calendar events were recorded in;
  4. with neither, UTC.
Only TZIDs that name a zone this device knows count ("floating" and Windows names do not).
"""

from __future__ import annotations

from datetime import UTC, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from vault.store import Vault

MAX_OFFSET_MIN = 14 * 60  # offsets beyond ±14 h (no such zone) are ignored

_STAY_OFFSET = (
    "SELECT utc_offset_min FROM stays WHERE utc_offset_min BETWEEN ? AND ? AND end_ts > start_ts "
    "GROUP BY utc_offset_min ORDER BY sum(epoch(end_ts) - epoch(start_ts)) DESC, utc_offset_min LIMIT 1")
_EVENT_ZONES = (
    "SELECT tzid, utc_offset_min, count(*) AS n FROM calendar_events WHERE utc_offset_min BETWEEN ? AND ? "
    "GROUP BY tzid, utc_offset_min ORDER BY n DESC, tzid, utc_offset_min")


def _zone(name: str | None) -> tzinfo | None:
    if not name or "/" not in name:  # "floating", Windows names, bare abbreviations
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _fixed(offset_min: int) -> tzinfo:
    return UTC if offset_min == 0 else timezone(timedelta(minutes=offset_min))


def home_zone(vault: Vault, *, visits: bool = True, calendar: bool = True) -> tzinfo:
    """The home time zone by the rule above (a ZoneInfo, a fixed offset, or UTC), from the visits and/or the
    calendar events as allowed."""
    bounds = [-MAX_OFFSET_MIN + 1, MAX_OFFSET_MIN - 1]
    stay = vault.query(_STAY_OFFSET, bounds) if visits else []
    events = [(tzid, int(off), int(n)) for tzid, off, n in vault.query(_EVENT_ZONES, bounds)] if calendar else []
    if stay:
        offset = int(stay[0][0])
        named = [z for tzid, off, _ in events if off == offset and (z := _zone(tzid)) is not None]
        return named[0] if named else _fixed(offset)
    named = [z for tzid, _, _ in events if (z := _zone(tzid)) is not None]
    if named:
        return named[0]
    return _fixed(events[0][1]) if events else UTC
