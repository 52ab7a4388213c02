"""The calendar (scope calendar:read): occurrences in a range, and free time between them.

Attendees come with their addresses (the calendar scope grants them); an event's location only with
location:read at precise precision (it names a place as exactly as a visit does). Both through
embeddings.redaction, as in memories.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import AuditDep, BackendDep, CalendarReader
from api.params import RangeDep, iso
from api.schemas import EventsOut, FreeOut
from embeddings.agenda import free_slots
from embeddings.memories import parse_attendees, person_name
from embeddings.redaction import Redaction

router = APIRouter(tags=["calendar"])
_EVENTS = ("SELECT row_id, start_ts, end_ts, all_day, summary, description, location, status, organizer, attendees, "
           "calendar FROM calendar_events WHERE start_ts < ? AND coalesce(end_ts, start_ts) >= ? ")


def _attendee(a: dict[str, Any]) -> dict[str, Any]:
    return {"name": person_name(a), "email": a.get("email"), "partstat": a.get("partstat")}


def _shown(redaction: Redaction, a: dict[str, Any]) -> dict[str, Any]:
    return {"email": None} | redaction.attendee(_attendee(a))


@router.get("/calendar/events", response_model=EventsOut, summary="Calendar occurrences in a time range")
async def events(actor: CalendarReader, audit: AuditDep, b: BackendDep, r: RangeDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        red = actor.redaction()  # one redaction for event fields, as in memories (location needs location:read)
        rows = b.query(_EVENTS + "ORDER BY start_ts LIMIT ?", [r.end, r.start, r.limit])
        out = [{"id": rid, "start": iso(s), "end": iso(e), "all_day": all_day, "summary": summary,
                "description": desc, "location": red.event_location(loc), "status": status,
                "organizer": red.organizer(org), "attendees": [_shown(red, a) for a in parse_attendees(att)],
                "calendar": cal}
               for rid, s, e, all_day, summary, desc, loc, status, org, att, cal in rows]
        audit.result([e["id"] for e in out])
        return {"events": out}

    return await b.call(audit, work, read=True)


@router.get("/calendar/free", response_model=FreeOut, summary="Free time between timed, non-cancelled events")
async def free(actor: CalendarReader, audit: AuditDep, b: BackendDep, r: RangeDep,
         min_minutes: Annotated[int, Query(ge=1, le=1440, description="Shortest gap worth listing.")] = 30) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        rows = b.query(_EVENTS + "AND NOT coalesce(all_day, false) AND coalesce(status, '') <> 'CANCELLED' "
                       "ORDER BY start_ts", [r.end, r.start])
        slots = free_slots(((s, e) for _rid, s, e, *_ in rows), r.start, r.end, min_minutes=min_minutes)
        audit.result([row[0] for row in rows])
        return {"free": [{"start": iso(x.start), "end": iso(x.end), "minutes": x.minutes} for x in slots[: r.limit]]}

    return await b.call(audit, work, read=True)
