"""Where the user was: the timeline of visits and trips, and places with time spent (scope location:read).

Read from the derived tables (stays, trips) through vault.read. The token's precision caveat applies to every place: coarse
names a place by its type ("a café", "home") with coordinates rounded to ~1 km; precise shows it as stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import AuditDep, BackendDep, LocationReader
from api.params import RangeDep, iso
from api.schemas import PlacesOut, TimelineOut
from embeddings.memories import place_type
from embeddings.redaction import Redaction
from vault import read
from vault.read import Place

router = APIRouter(tags=["location"])


def place(redaction: Redaction, p: Place) -> dict[str, Any]:
    """A stay's place as the token may see it (embeddings.redaction decides, as for visits in search)."""
    shown = redaction.place({"type": place_type(p.semantic_type, p.name), "name": p.name,
                                     "address": p.address, "lat": p.lat, "lon": p.lon})
    return shown or {"type": None, "lat": None, "lon": None}


@router.get("/timeline", response_model=TimelineOut, summary="Visits and trips in a time range, in order")
async def timeline(actor: LocationReader, audit: AuditDep, b: BackendDep, r: RangeDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        red = actor.redaction()
        visits = b.read(lambda v: read.stays(v, start=r.start, end=r.end, limit=r.limit))
        trips = b.read(lambda v: read.trips(v, start=r.start, end=r.end, limit=r.limit))
        items: list[dict[str, Any]] = [{"id": s.row_id, "kind": "visit", "start": iso(s.start), "end": iso(s.end),
                  "utc_offset_min": s.utc_offset_min, "place": place(red, s.place)} for s in visits]
        items += [{"id": t.row_id, "kind": "trip", "start": iso(t.start), "end": iso(t.end),
                   "utc_offset_min": t.utc_offset_min, "from": place(red, t.origin),
                   "to": place(red, t.destination), "distance_m": t.distance_m, "activity": t.activity}
                  for t in trips]
        items = sorted(items, key=lambda i: i["start"])[: r.limit]
        audit.result([i["id"] for i in items])
        return {"items": items}

    return await b.call(audit, work, read=True)


@router.get("/places", response_model=PlacesOut, summary="Places visited in a time range, with time spent")
async def places(actor: LocationReader, audit: AuditDep, b: BackendDep, r: RangeDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        red = actor.redaction()
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        ids: list[int] = []
        for stay in b.read(lambda v: read.stays(v, start=r.start, end=r.end)):
            s, e = stay.start, stay.end
            p = place(red, stay.place)
            key = tuple(sorted(p.items()))  # coarse: type and ~1 km cell; precise: name, address, coordinates
            g = groups.setdefault(key, {"place": p, "visits": 0, "minutes": 0.0, "first": s, "last": e})
            g["visits"] += 1
            g["minutes"] += (min(e, r.end) - max(s, r.start)).total_seconds() / 60
            g["first"], g["last"] = min(g["first"], s), max(g["last"], e)
            ids.append(stay.row_id)
        out = sorted(groups.values(), key=lambda g: -g["minutes"])[: r.limit]
        for g in out:
            g["minutes"] = round(g["minutes"], 1)
            g["first"], g["last"] = iso(g["first"]), iso(g["last"])
        audit.result(ids)
        return {"places": out}

    return await b.call(audit, work, read=True)
