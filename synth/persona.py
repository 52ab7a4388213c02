"""The persona's configuration, the places of its life and the ground truth a generation exposes.

Places are fixed (the same London, Lisbon and Edinburgh for every seed); the seed decides the life:
which days the persona goes where, for how long, which meetings exist, which apps it opens.
All instants in the ground truth are tz-aware UTC; `tz` says which zone the persona was living in.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

LONDON = "Europe/London"
LISBON = "Europe/Lisbon"


@dataclass(frozen=True, slots=True, kw_only=True)
class Persona:
    """Who is simulated and how densely the phone records them (deterministic given all fields)."""

    seed: int = 7
    days: int = 365
    end: date = date(2025, 10, 31)  # last simulated day (inclusive), local time
    name: str = "Alex Morgan"
    email: str = "alex.morgan@example.com"
    employer: str = "Meridian Labs"
    work_domain: str = "meridianlabs.co.uk"
    home_tz: str = LONDON
    moving_interval_s: float = 210.0  # mean seconds between fixes while moving (2-5 min)
    still_interval_s: float = 1200.0  # mean seconds between fixes while staying (10-30 min)
    legacy_timestamp_fraction: float = 0.1  # earliest share of Records.json written with "timestampMs"
    timeline_days: int = 61  # the on-device Timeline.json covers the last ~2 months
    wellbeing_days: int = 14  # Digital Wellbeing keeps a couple of weeks
    ipad_days: int = 21  # knowledgeC.db: the iPad the persona has had for three weeks

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        if not 0 <= self.legacy_timestamp_fraction <= 1:
            raise ValueError("legacy_timestamp_fraction must lie in [0, 1]")
        if self.moving_interval_s <= 0 or self.still_interval_s <= 0:
            raise ValueError("fix intervals must be > 0")

    @property
    def start(self) -> date:
        return self.end - timedelta(days=self.days - 1)

    def period_utc(self) -> tuple[datetime, datetime]:
        """[local midnight of the first day, local midnight after the last day) in UTC."""
        tz = ZoneInfo(self.home_tz)
        first = datetime.combine(self.start, datetime.min.time(), tz)
        after = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), tz)
        return first.astimezone(UTC), after.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Place:
    key: str
    name: str
    address: str
    lat: float
    lon: float
    category: str  # HOME, WORK, CAFE, GYM, SUPERMARKET, PARK, DOCTOR, FRIEND_HOME, RESTAURANT, PUB, ...
    city: str
    tz: str = LONDON
    elevation_m: float = 15.0

    @property
    def place_id(self) -> str:
        """A stable Google-style place id ("ChIJ..." + 23 url-safe characters)."""
        digest = hashlib.sha256(f"lifevault-synth:{self.key}".encode()).digest()
        return "ChIJ" + base64.urlsafe_b64encode(digest).decode()[:23]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "address": self.address, "lat": self.lat, "lon": self.lon,
                "category": self.category, "city": self.city, "tz": self.tz, "place_id": self.place_id}


def _p(key: str, name: str, address: str, lat: float, lon: float, category: str, city: str = "London",
       tz: str = LONDON, ele: float = 15.0) -> Place:
    return Place(key, name, address, lat, lon, category, city, tz, ele)


PLACES: dict[str, Place] = {p.key: p for p in (
    _p("home", "Home", "14 Elm Park Gardens, London SW10 9NY", 51.486920, -0.175060, "HOME", ele=9),
    _p("work", "Meridian Labs", "10 Finsbury Square, London EC2A 1AF", 51.520930, -0.086770, "WORK", ele=22),
    _p("cafe", "Café Nero, Kings Rd", "150 King's Rd, London SW3 4UT", 51.487312, -0.168934, "CAFE", ele=8),
    _p("gym", "PureGym Earl's Court", "Warwick Rd, London SW5 9TA", 51.490870, -0.195340, "GYM", ele=10),
    _p("supermarket", "Waitrose King's Road", "196-198 King's Rd, London SW3 5ED", 51.486300, -0.171200,
       "SUPERMARKET", ele=8),
    _p("park", "Battersea Park", "Battersea Park, London SW11 4NJ", 51.479100, -0.156900, "PARK", ele=5),
    _p("doctor", "Dr. Lee, Fulham Road Clinic", "212 Fulham Rd, London SW10 9NB", 51.484600, -0.182500,
       "DOCTOR", ele=10),
    _p("sam", "Sam's place", "27 Cloudesley Rd, London N1 0EL", 51.539000, -0.107800, "FRIEND_HOME", ele=35),
    _p("priya", "Priya's flat", "8 Rectory Grove, London SW4 0DX", 51.465800, -0.141200, "FRIEND_HOME", ele=12),
    _p("lunch", "Pret A Manger, Finsbury Pavement", "29 Finsbury Pavement, London EC2A 1RP", 51.519800,
       -0.087900, "RESTAURANT", ele=20),
    _p("pub", "The Crown & Anchor", "137 Drummond St, London NW1 2HL", 51.527100, -0.136700, "PUB", ele=28),
    _p("offsite", "The Hospital Club", "24 Endell St, London WC2H 9HQ", 51.514200, -0.125600, "EVENT_VENUE",
       ele=25),
    _p("kings_cross", "London King's Cross", "Euston Rd, London N1 9AL", 51.531700, -0.124000, "STATION",
       ele=25),
    _p("heathrow", "Heathrow Terminal 2", "Inner Ring E, Hounslow TW6 1EW", 51.469600, -0.451600, "AIRPORT",
       ele=25),
    # Lisbon
    _p("lis_airport", "Humberto Delgado Airport (LIS)", "Alameda das Comunidades Portuguesas, 1700-111 Lisboa",
       38.774200, -9.134200, "AIRPORT", "Lisbon", LISBON, 110),
    _p("lis_hotel", "Hotel Baixa Lisboa", "Rua do Ouro 176, 1100-063 Lisboa", 38.711200, -9.137900, "HOTEL",
       "Lisbon", LISBON, 20),
    _p("pasteis", "Pastéis de Belém", "R. de Belém 84-92, 1300-085 Lisboa", 38.697500, -9.203200,
       "CAFE", "Lisbon", LISBON, 10),
    _p("belem", "Belém Tower", "Av. Brasília, 1400-038 Lisboa", 38.691600, -9.216000, "SIGHT", "Lisbon",
       LISBON, 5),
    _p("timeout", "Time Out Market Lisboa", "Av. 24 de Julho 49, 1200-479 Lisboa", 38.706900, -9.145900,
       "RESTAURANT", "Lisbon", LISBON, 8),
    _p("ramiro", "Cervejaria Ramiro", "Av. Almirante Reis 1, 1150-007 Lisboa", 38.720700, -9.135600,
       "RESTAURANT", "Lisbon", LISBON, 45),
    _p("luzia", "Miradouro de Santa Luzia", "Largo Santa Luzia, 1100-487 Lisboa", 38.711700, -9.130200,
       "SIGHT", "Lisbon", LISBON, 80),
    # Edinburgh
    _p("waverley", "Edinburgh Waverley", "Edinburgh EH1 1BB", 55.952000, -3.189100, "STATION", "Edinburgh",
       ele=60),
    _p("edi_flat", "Airbnb, Leith Walk", "220 Leith Walk, Edinburgh EH6 5EQ", 55.967300, -3.176800, "HOTEL",
       "Edinburgh", ele=30),
    _p("castle", "Edinburgh Castle", "Castlehill, Edinburgh EH1 2NG", 55.948600, -3.199900, "SIGHT",
       "Edinburgh", ele=120),
    _p("holyrood", "Holyrood Park", "Queen's Dr, Edinburgh EH8 8HG", 55.950900, -3.171900, "PARK",
       "Edinburgh", ele=45),
    _p("brewlab", "Brew Lab Coffee", "6-8 S College St, Edinburgh EH8 9AA", 55.947300, -3.187600, "CAFE",
       "Edinburgh", ele=75),
    _p("museum", "National Museum of Scotland", "Chambers St, Edinburgh EH1 1JF", 55.946800, -3.190100,
       "SIGHT", "Edinburgh", ele=75),
    _p("scran", "The Scran & Scallie", "1 Comely Bank Rd, Edinburgh EH4 1DT", 55.959500, -3.219500,
       "RESTAURANT", "Edinburgh", ele=40),
    _p("portobello", "Portobello Beach", "Portobello Promenade, Edinburgh EH15 1DX", 55.954700, -3.108700,
       "PARK", "Edinburgh", ele=3),
)}


@dataclass(frozen=True, slots=True)
class Visit:
    place: str  # key into GroundTruth.places
    start: datetime
    end: datetime
    tz: str


@dataclass(frozen=True, slots=True)
class Movement:
    origin: str
    destination: str
    start: datetime
    end: datetime
    mode: str  # WALKING, RUNNING, IN_SUBWAY, IN_BUS, IN_PASSENGER_VEHICLE, IN_TRAIN, IN_TRAM, FLYING
    distance_m: float


@dataclass(frozen=True, slots=True)
class Trip:
    name: str  # "Weekend in Lisbon"
    destination: str  # "Lisbon, Portugal"
    tz: str
    start: datetime  # leaving home
    end: datetime  # back home
    legs: tuple[Movement, ...]  # the long-distance legs (flights, trains)
    carrier_refs: tuple[str, ...] = ()  # "TP1363", "LNER 1S09", ...


@dataclass(frozen=True, slots=True)
class Workout:
    name: str  # "Saturday Morning Run"
    kind: str  # "running" | "hiking"
    place: str
    start: datetime
    end: datetime
    distance_m: float
    gpx: str  # file name of its GPX track


@dataclass(frozen=True, slots=True)
class Attendee:
    name: str
    email: str
    partstat: str = "ACCEPTED"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One calendar row as ingest/sources/calendar/ics.py produces it (key: uid, recurrence_id)."""

    uid: str
    recurrence_id: str  # "" for single events; "YYYY-MM-DDTHH:MM:SSZ" (UTC) or "YYYY-MM-DD" (all-day series)
    title: str
    start: datetime
    end: datetime
    all_day: bool
    status: str  # CONFIRMED | CANCELLED
    location: str = ""
    organizer: str = ""  # "Name <email>"
    attendees: tuple[Attendee, ...] = ()
    tzid: str | None = LONDON


@dataclass(frozen=True, slots=True)
class AppSession:
    device: str  # "android" (the phone) | "ipad"
    package: str
    app: str
    category: str
    start: datetime
    end: datetime


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """The facts of the persona's life that the exports encode (what a retrieval evaluation asks about)."""

    persona: Persona
    period: tuple[datetime, datetime]  # UTC, [start, end)
    places: tuple[Place, ...]
    visits: tuple[Visit, ...]
    movements: tuple[Movement, ...]
    trips: tuple[Trip, ...]
    workouts: tuple[Workout, ...]
    occurrences: tuple[Occurrence, ...]
    sessions: tuple[AppSession, ...]
    holidays: tuple[date, ...] = field(default=())  # UK bank holidays in the period

    def place(self, key: str) -> Place:
        return next(p for p in self.places if p.key == key)

    def to_json(self) -> dict[str, Any]:
        """Everything as JSON-ready values (instants as ISO-8601 UTC with 'Z')."""
        persona = _jsonable(self.persona)
        persona["start"] = self.persona.start.isoformat()
        return {
            "persona": persona,
            "period": [_iso(self.period[0]), _iso(self.period[1])],
            "places": [p.to_json() for p in self.places],
            "visits": _jsonable(self.visits),
            "movements": _jsonable(self.movements),
            "trips": _jsonable(self.trips),
            "workouts": _jsonable(self.workouts),
            "occurrences": _jsonable(self.occurrences),
            "sessions": _jsonable(self.sessions),
            "holidays": _jsonable(self.holidays),
        }
