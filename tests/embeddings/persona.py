"""A small hand-written persona inserted with SQL into the tables ingest fills (stays, trips, calendar, usage)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from vault.store import Vault

NOW = datetime(2025, 3, 20, 18, 0, tzinfo=UTC)  # a Thursday; the persona lives in London (UTC in March)
OFF = 0
CANARY_PLACE = "Zyxquor Canary Bistro"  # a place name that must vanish entirely when forgotten
PRECISE_LAT, PRECISE_LON = 51.487312, -0.168934  # Café Nero, Kings Rd


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """March `day`, 2025 at local hh:mm (London is UTC+0 in early March)."""
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def _stay(vault: Vault, key: str, start: datetime, end: datetime, name: str | None, address: str | None,
          stype: str, lat: float, lon: float, off: int = OFF) -> int:
    rid = vault.row_id("stay", key)
    vault.execute(
        "INSERT INTO stays (row_id, start_ts, end_ts, utc_offset_min, lat, lon, place_id, name, address, semantic_type, "
        "origin, n_points) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'export', NULL)",
        [rid, start, end, off, lat, lon, f"pid-{key}", name, address, stype])
    return rid


def _event(vault: Vault, uid: str, start: datetime, end: datetime, summary: str, location: str | None = None,
           attendees: list[dict[str, str]] | None = None, organizer: str | None = None, off: int = OFF) -> None:
    vault.execute(
        "INSERT INTO calendar_events (row_id, uid, recurrence_id, start_ts, end_ts, utc_offset_min, tzid, all_day, "
        "summary, location, description, status, organizer, attendees, calendar, format, file, position, load_id) "
        "VALUES (?, ?, '', ?, ?, ?, 'Europe/London', false, ?, ?, NULL, 'CONFIRMED', ?, ?, 'Personal', 'ics', "
        "'cal.ics', 0, 'load-1')",
        [vault.row_id("event", uid), uid, start, end, off, summary, location, organizer,
         json.dumps(attendees) if attendees else None])


def _session(vault: Vault, package: str, app: str, category: str, start: datetime, minutes: int) -> None:
    vault.execute(
        "INSERT INTO app_sessions (row_id, start_ts, end_ts, utc_offset_min, package, app_name, category, origin) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'usage_csv')",
        [vault.row_id("session", package, start), start, start + timedelta(minutes=minutes), OFF, package, app, category])


def seed(vault: Vault) -> None:
    """About 60 memories over March 2025."""
    home = (51.4801, -0.1950)
    office = (51.5155, -0.0922)
    for d in range(1, 20):  # home every night, office on weekdays
        _stay(vault, f"home-{d}", at(d, 19), at(d + 1, 8), "Home", "3 Elm Grove, London", "TYPE_HOME", *home)
        if datetime(2025, 3, d + 1).weekday() < 5:
            _stay(vault, f"office-{d}", at(d + 1, 9), at(d + 1, 17, 30), "Acme Office", "1 Finsbury Sq, London",
                  "TYPE_WORK", *office)
    for d in (4, 11, 18):
        _stay(vault, f"nero-{d}", at(d, 8, 5), at(d, 8, 40), "Café Nero", "Kings Rd, London", "cafe",
              PRECISE_LAT, PRECISE_LON)
    _stay(vault, "lee-1", at(6, 14), at(6, 14, 45), "Dr. Lee Family Clinic", "20 Harley St, London", "doctor",
          51.5206, -0.1478)
    _stay(vault, "lee-2", at(13, 10), at(13, 10, 30), "Dr. Lee Family Clinic", "20 Harley St, London", "doctor",
          51.5206, -0.1478)
    _stay(vault, "gym-8", at(8, 10), at(8, 11, 15), "PureGym Chelsea", "Fulham Rd, London", "gym", 51.4862, -0.1786)
    _stay(vault, "gym-9", at(9, 10), at(9, 11), "PureGym Chelsea", "Fulham Rd, London", "gym", 51.4862, -0.1786)
    _stay(vault, "lisbon-15", at(15, 12), at(15, 16), "Time Out Market Lisboa", "Av. 24 de Julho, Lisbon",
          "restaurant", 38.7071, -9.1459)
    _stay(vault, "lisbon-16", at(16, 10), at(16, 13), "Belém Tower", "Av. Brasília, Lisbon", "museum", 38.6916, -9.2160)
    _stay(vault, "canary", at(12, 20), at(12, 22), CANARY_PLACE, "9 Nowhere Lane, London", "restaurant",
          51.5012, -0.1299)
    _event(vault, "lee-checkup", at(13, 10), at(13, 10, 30), "Check-up with Dr. Lee", "20 Harley St, London",
           [{"name": "Ann Lee", "email": "ann.lee@clinic.example", "partstat": "ACCEPTED"}],
           organizer="Ann Lee <ann.lee@clinic.example>")
    for d in (3, 10, 17):
        _event(vault, f"standup-{d}", at(d, 9, 30), at(d, 9, 45), "Team standup", None,
               [{"name": "Bob Stone", "email": "bob@acme.example", "partstat": "ACCEPTED"}])
    _event(vault, "dinner-ana", at(15, 19), at(15, 21), "Dinner with Ana", "Time Out Market, Lisbon",
           [{"name": "Ana Sousa", "email": "ana@sousa.example", "partstat": "ACCEPTED"}])
    _event(vault, "dentist", at(27, 15), at(27, 15, 30), "Dentist appointment", "Kings Rd Dental")  # in the future
    for d in range(1, 20):
        _session(vault, "com.google.android.youtube", "YouTube", "Video", at(d, 23, 10), 35)
        _session(vault, "com.slack", "Slack", "Communication", at(d, 11), 20)
    trip = vault.row_id("trip", "home-nero-4")
    vault.execute(
        "INSERT INTO trips (row_id, start_ts, end_ts, utc_offset_min, from_stay, to_stay, from_name, to_name, start_lat, "
        "start_lon, end_lat, end_lon, distance_m, activity_type, origin) VALUES (?, ?, ?, 0, ?, ?, 'Home', 'Café Nero', "
        "?, ?, ?, ?, 2100, 'WALKING', 'derived')",
        [trip, at(4, 7, 45), at(4, 8, 5), vault.row_id("stay", "home-3"), vault.row_id("stay", "nero-4"), *home,
         PRECISE_LAT, PRECISE_LON])
    vault.execute(
        "INSERT INTO daily_summaries VALUES ('2025-03-12', 0, ?, 0, 0, 55, ?, ?)",
        [json.dumps({CANARY_PLACE: 120.0, "Home": 600.0}), json.dumps({"YouTube": 35.0, "Slack": 20.0}),
         json.dumps({"Video": 35.0, "Communication": 20.0})])
