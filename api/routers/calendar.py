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
from vault import read

router = APIRouter(tags=["calendar"])


def _attendee(a: dict[str, Any]) -> dict[str, Any]:
    return {"name": person_name(a), "email": a.get("email"), "partstat": a.get("partstat")}


def _shown(redaction: Redaction, a: dict[str, Any]) -> dict[str, Any]:
    return {"email": None} | redaction.attendee(_attendee(a))


@router.get("/calendar/events", response_model=EventsOut, summary="Calendar occurrences in a time range")
async def events(actor: CalendarReader, audit: AuditDep, b: BackendDep, r: RangeDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        red = actor.redaction()  # one redaction for event fields, as in memories (location needs location:read)
        rows = b.read(lambda v: read.events(v, start=r.start, end=r.end, limit=r.limit))
        out: list[dict[str, Any]] = [{"id": e.row_id, "start": iso(e.start), "end": iso(e.end), "all_day": e.all_day, "summary": e.summary,
                "description": e.description, "location": red.event_location(e.location), "status": e.status,
                "organizer": red.organizer(e.organizer),
                "attendees": [_shown(red, a) for a in parse_attendees(e.attendees)], "calendar": e.calendar}
               for e in rows]
        audit.result([e["id"] for e in out])
        return {"events": out}

    return await b.call(audit, work, read=True)


@router.get("/calendar/free", response_model=FreeOut, summary="Free time between timed, non-cancelled events")
async def free(actor: CalendarReader, audit: AuditDep, b: BackendDep, r: RangeDep,
         min_minutes: Annotated[int, Query(ge=1, le=1440, description="Shortest gap worth listing.")] = 30) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        rows = b.read(lambda v: read.events(v, start=r.start, end=r.end, timed=True))
        slots = free_slots(((e.start, e.end) for e in rows), r.start, r.end, min_minutes=min_minutes)
        audit.result([e.row_id for e in rows])
        return {"free": [{"start": iso(x.start), "end": iso(x.end), "minutes": x.minutes} for x in slots[: r.limit]]}

    return await b.call(audit, work, read=True)
