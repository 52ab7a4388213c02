"""Where the user was: the timeline of visits and trips, and places with time spent (scope location:read).

Read from the derived tables (stays, trips). The token's precision caveat applies to every place: coarse
names a place by its type ("a café", "home") with coordinates rounded to ~1 km; precise shows it as stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import AuditDep, BackendDep, LocationReader
from api.params import RangeDep, iso
from api.schemas import PlacesOut, TimelineOut
from api.tokens import Actor
from embeddings.memories import place_type

router = APIRouter(tags=["location"])


def place(actor: Actor, name: str | None, address: str | None, stype: str | None, lat: float | None,
          lon: float | None) -> dict[str, Any]:
    """A stay's place as the token may see it (embeddings.redaction decides, as for visits in search)."""
    shown = actor.redaction().place({"type": place_type(stype, name), "name": name, "address": address, "lat": lat,
                                     "lon": lon})
    return shown or {"type": None, "lat": None, "lon": None}


@router.get("/timeline", response_model=TimelineOut, summary="Visits and trips in a time range, in order")
async def timeline(actor: LocationReader, audit: AuditDep, b: BackendDep, r: RangeDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        visits = b.query(
            "SELECT row_id, start_ts, end_ts, utc_offset_min, name, address, semantic_type, lat, lon FROM stays "
            "WHERE start_ts < ? AND end_ts > ? ORDER BY start_ts LIMIT ?", [r.end, r.start, r.limit])
        trips = b.query(
            "SELECT t.row_id, t.start_ts, t.end_ts, t.utc_offset_min, t.from_name, f.address, f.semantic_type, "
            "t.start_lat, t.start_lon, t.to_name, o.address, o.semantic_type, t.end_lat, t.end_lon, t.distance_m, "
            "t.activity_type FROM trips t LEFT JOIN stays f ON f.row_id = t.from_stay LEFT JOIN stays o "
            "ON o.row_id = t.to_stay WHERE t.start_ts < ? AND t.end_ts > ? ORDER BY t.start_ts LIMIT ?",
            [r.end, r.start, r.limit])
        items = [{"id": rid, "kind": "visit", "start": iso(s), "end": iso(e), "utc_offset_min": off,
                  "place": place(actor, name, addr, st, lat, lon)}
                 for rid, s, e, off, name, addr, st, lat, lon in visits]
        items += [{"id": rid, "kind": "trip", "start": iso(s), "end": iso(e), "utc_offset_min": off,
                   "from": place(actor, fn, fa, ft, flat, flon), "to": place(actor, tn, ta, tt, tlat, tlon),
                   "distance_m": dist, "activity": act}
                  for rid, s, e, off, fn, fa, ft, flat, flon, tn, ta, tt, tlat, tlon, dist, act in trips]
        items = sorted(items, key=lambda i: i["start"])[: r.limit]
        audit.result([i["id"] for i in items])
        return {"items": items}

    return await b.call(audit, work, read=True)


@router.get("/places", response_model=PlacesOut, summary="Places visited in a time range, with time spent")
async def places(actor: LocationReader, audit: AuditDep, b: BackendDep, r: RangeDep) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        rows = b.query(
            "SELECT row_id, start_ts, end_ts, name, address, semantic_type, lat, lon FROM stays "
            "WHERE start_ts < ? AND end_ts > ? ORDER BY start_ts", [r.end, r.start])
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        ids: list[int] = []
        for rid, s, e, name, addr, st, lat, lon in rows:
            p = place(actor, name, addr, st, lat, lon)
            key = tuple(sorted(p.items()))  # coarse: type and ~1 km cell; precise: name, address, coordinates
            g = groups.setdefault(key, {"place": p, "visits": 0, "minutes": 0.0, "first": s, "last": e})
            g["visits"] += 1
            g["minutes"] += (min(e, r.end) - max(s, r.start)).total_seconds() / 60
            g["first"], g["last"] = min(g["first"], s), max(g["last"], e)
            ids.append(rid)
        out = sorted(groups.values(), key=lambda g: -g["minutes"])[: r.limit]
        for g in out:
            g["minutes"] = round(g["minutes"], 1)
            g["first"], g["last"] = iso(g["first"]), iso(g["last"])
        audit.result(ids)
        return {"places": out}

    return await b.call(audit, work, read=True)
