"""What a caller may see of memories: which sensitivities at all, and how precisely (by the caller's scopes).

    Redaction(location="precise"|"coarse"|"none", attendee_emails=bool, visible=frozenset of sensitivities)

- visible: memories of other sensitivities are filtered out before ranking (a caller never learns they exist).
- location "coarse": texts are the redacted variants ("Visited a café ...", event locations dropped), ranking
  uses those texts and their own vectors, coordinates are rounded to COARSE_DECIMALS (about 1 km), place
  names and addresses are replaced by the place's type. "none": location memories (visits, trips) are
  invisible and event locations dropped, no coordinates at all. "precise": everything as stored.
- attendee_emails: calendar attendees' and organisers' addresses only when true (names always).

One method per kind of field, and every caller (memory records, search, forget, timeline, places, the
calendar) goes through it: `text`, `place`, `event_location`, `attendee`, `organizer`, `details`. `key`
names the view (what the caller may see at all, and which texts it matches), for statistics computed per view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

SENSITIVITIES = frozenset({"location", "place", "area", "calendar", "usage", "note"})
# "place": what is known only by telling places apart by name (routines at a named place: home, work, a
# regular gym). A coarse caller sees places by type and ~1 km cell, so it cannot tell two gyms apart and
# may not see what is computed by doing so: only precise location sees these. "area": the same routines
# computed from places as a coarse caller sees them (type and cell): coarse callers only (a precise caller
# has the named ones).
COARSE_DECIMALS = 2  # 0.01 degree of latitude is 1.1 km
Precision = Literal["precise", "coarse", "none"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Redaction:
    location: Precision = "precise"
    attendee_emails: bool = True
    visible: frozenset[str] = field(default=SENSITIVITIES)

    OWNER: ClassVar[Redaction]

    def __post_init__(self) -> None:
        if self.location not in ("precise", "coarse", "none"):
            raise ValueError(f"location precision must be precise, coarse or none, not {self.location!r}")
        hidden = {"location", "place", "area"} if self.location == "none" else {
            "place"} if self.location == "coarse" else {"area"}
        if self.visible & hidden:
            object.__setattr__(self, "visible", self.visible - hidden)

    @property
    def redacts_text(self) -> bool:
        return self.location != "precise"

    @property
    def key(self) -> tuple[tuple[str, ...], bool]:
        """The view: the sensitivities visible and whether texts are the redacted variants. Two callers with the
        same key see the same memories with the same texts (statistics over the view are shared by key)."""
        return tuple(sorted(self.visible)), self.redacts_text

    @property
    def sees_everything(self) -> bool:
        """Every memory, every text as stored (the owner's view): statistics of the whole vault apply (its
        `area` routines, the coarse twins of the named ones, are hidden from it, not counted out)."""
        return self.visible >= SENSITIVITIES - {"area"} and not self.redacts_text

    def text(self, text: str, redacted: str | None) -> str:
        """A memory's text as this caller may see it: the redacted variant, when it has one, unless precise."""
        return redacted if (self.redacts_text and redacted) else text

    def event_location(self, location: str | None) -> str | None:
        """An event's location names a place as exactly as a visit does: precise callers only."""
        return location if self.location == "precise" else None

    def attendee(self, a: dict[str, Any]) -> dict[str, Any]:
        """An attendee: name and reply always, the address only with attendee_emails."""
        return {"name": a.get("name"), "partstat": a.get("partstat")} | (
            {"email": a.get("email")} if self.attendee_emails else {})

    def organizer(self, organizer: str | None) -> str | None:
        """An organiser as stored ("Ann Lee <ann@x.org>"): only with attendee_emails (it carries the address)."""
        return organizer if self.attendee_emails else None

    @classmethod
    def for_scopes(cls, scopes: Iterable[str], *, location: Precision = "coarse") -> Redaction:
        """The view a capability token gets. `owner` sees everything precisely; otherwise memory:read shows
        notes, events (attendee names) and usage; location:read adds visits and trips at `location`
        precision (the token's caveat; without location:read: "none"); calendar:read adds attendee emails."""
        s = set(scopes)
        if "owner" in s:
            return cls.OWNER
        precision: Precision = location if "location:read" in s else "none"
        visible = {"note", "calendar", "usage"} | ({"location"} if precision != "none" else set()) | (
            {"place"} if precision == "precise" else {"area"} if precision == "coarse" else set())
        return cls(location=precision, attendee_emails="calendar:read" in s, visible=frozenset(visible))

    def place(self, place: dict[str, Any] | None) -> dict[str, Any] | None:
        """A place as this caller may see it: precise as stored; coarse its type and coordinates rounded to
        COARSE_DECIMALS; none nothing."""
        if not place or self.location == "none":
            return None
        if self.location == "precise":
            return dict(place)
        return {"type": place.get("type"), "lat": _round(place.get("lat")), "lon": _round(place.get("lon"))}

    def details(self, kind: str, details: dict[str, Any]) -> dict[str, Any]:
        """The structured part of a memory (places, attendees, app) as this caller may see it."""
        out: dict[str, Any] = {}
        if kind == "visit":
            out["place"] = self.place(details.get("place"))
        elif kind == "trip":
            out["from"], out["to"] = self.place(details.get("from")), self.place(details.get("to"))
        elif kind == "event":
            out["location"] = self.event_location(details.get("location"))
            out["status"], out["all_day"] = details.get("status"), details.get("all_day")
            out["attendees"] = [self.attendee(a) for a in details.get("attendees") or []]
            out["organizer"] = self.organizer(details.get("organizer"))
        elif kind == "routine":  # a place routine carries its place; meeting and app routines names and counts
            out = {k: v for k, v in details.items() if k != "place"}
            if "place" in details:
                out["place"] = self.place(details.get("place"))
        else:
            out = dict(details)
        return {k: v for k, v in out.items() if v is not None}


def _round(v: Any) -> float | None:
    return None if v is None else round(float(v), COARSE_DECIMALS)


Redaction.OWNER = Redaction()
