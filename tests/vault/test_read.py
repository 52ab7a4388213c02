"""vault.read, vault.tokens and vault.erase on a real encrypted vault: typed rows, declared frame schemas, and
table names that are never taken from a caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from vault import erase, read
from vault import tokens as vault_tokens
from vault.store import Vault

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def _stay(vault: Vault, row_id: int, start_h: float, end_h: float, name: str) -> None:
    vault.execute("INSERT INTO stays (row_id, start_ts, end_ts, utc_offset_min, lat, lon, name, address, "
                  "semantic_type, origin) VALUES (?, ?, ?, 60, 51.5, -0.1, ?, '1 High St', 'TYPE_CAFE', 'export')",
                  [row_id, T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h), name])


def test_stays_overlapping_a_window_come_in_start_order_with_their_place(vault: Vault) -> None:
    _stay(vault, 2, 5, 6, "Later")
    _stay(vault, 1, 0, 1, "Early")
    _stay(vault, 3, 9, 10, "Outside")
    got = read.stays(vault, start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=9))
    assert [s.row_id for s in got] == [1, 2]
    assert got[0].place == read.Place(name="Early", address="1 High St", semantic_type="TYPE_CAFE", lat=51.5, lon=-0.1)
    assert [s.row_id for s in read.stays(vault, limit=1)] == [1]


def test_a_trip_carries_the_address_and_type_of_the_stays_it_joins(vault: Vault) -> None:
    _stay(vault, 1, 0, 1, "Home")
    _stay(vault, 2, 2, 3, "Gym")
    vault.execute("INSERT INTO trips (row_id, start_ts, end_ts, from_stay, to_stay, from_name, to_name, distance_m, "
                  "activity_type, origin) VALUES (7, ?, ?, 1, 2, 'Home', 'Gym', 1200.0, 'WALKING', 'export')",
                  [T0 + timedelta(hours=1), T0 + timedelta(hours=2)])
    (trip,) = read.trips(vault, start=T0, end=T0 + timedelta(days=1))
    assert (trip.origin.name, trip.origin.address, trip.destination.name, trip.destination.semantic_type) == (
        "Home", "1 High St", "Gym", "TYPE_CAFE")
    assert (trip.distance_m, trip.activity) == (1200.0, "WALKING")


def test_timed_events_leave_out_all_day_and_cancelled_ones(vault: Vault) -> None:
    for rid, all_day, status in ((1, False, "CONFIRMED"), (2, True, "CONFIRMED"), (3, False, "CANCELLED")):
        vault.execute("INSERT INTO calendar_events (row_id, uid, recurrence_id, start_ts, end_ts, all_day, status, "
                      "format, load_id) VALUES (?, ?, '', ?, ?, ?, ?, 'ics', 'l')",
                      [rid, f"u{rid}", T0 + timedelta(hours=rid), T0 + timedelta(hours=rid, minutes=30), all_day,
                       status])
    assert [e.row_id for e in read.events(vault, start=T0, end=T0 + timedelta(days=1))] == [1, 2, 3]
    assert [e.row_id for e in read.events(vault, start=T0, end=T0 + timedelta(days=1), timed=True)] == [1]
    assert read.event_starts(vault) == [T0 + timedelta(hours=1)]


def test_the_memory_layers_rows_are_named_tuples_in_the_order_sync_renders_them(vault: Vault) -> None:
    _stay(vault, 2, 0, 1, "Second by id")
    _stay(vault, 1, 0, 1, "First by id")
    _stay(vault, 3, -1, 0, "Earliest")
    vault.execute("INSERT INTO trips (row_id, start_ts, end_ts, from_stay, to_stay, from_name, to_name, origin) "
                  "VALUES (7, ?, ?, 3, 99, 'Earliest', 'Nowhere', 'export')", [T0, T0 + timedelta(hours=1)])
    session = ("INSERT INTO app_sessions (row_id, start_ts, end_ts, utc_offset_min, package, app_name, category, "
               "origin) VALUES (?, ?, ?, NULL, ?, NULL, 'Video', ?)")
    for row_id, package, start_h, minutes, origin in ((1, "b.app", 0, 5, "usage"), (2, "a.app", 2, 5, "usage"),
                                                      (3, "a.app", 1, 5, "usage"), (4, "a.app", 3, 5, "launch"),
                                                      (5, "a.app", 4, 0, "usage")):
        start = T0 + timedelta(hours=start_h)
        vault.execute(session, [row_id, start, start + timedelta(minutes=minutes), package, origin])
    vault.execute("INSERT INTO daily_summaries (day, screen_minutes, screen_by_app) VALUES "
                  "('2025-03-03', 42.5, '{\"a\": 42.5}'), ('2025-03-04', 0, NULL)")

    assert [(s.row_id, s.name) for s in read.stay_rows(vault)] == [(3, "Earliest"), (1, "First by id"),
                                                                     (2, "Second by id")]
    (trip,) = read.trip_rows(vault)
    assert trip[4:8] == ("Earliest", "Nowhere", "TYPE_CAFE", None)  # the stay it left is known, the other not
    assert [(s.row_id, s.package) for s in read.session_rows(vault)] == [(3, "a.app"), (2, "a.app"), (1, "b.app")]
    (day,) = read.screen_day_rows(vault)
    assert day == read.ScreenDayRow(datetime(2025, 3, 3).date(), None, 42.5, '{"a": 42.5}', None)
    assert read.event_rows(vault) == []


def test_large_reads_are_frames_with_the_declared_schema_even_when_empty(vault: Vault) -> None:
    assert read.session_starts(vault).schema == pl.Schema(read.session_starts_schema())
    assert read.usage_event_times(vault, ("SCREEN_ON",)).schema == pl.Schema(read.event_times_schema())
    vault.execute("INSERT INTO app_sessions (row_id, start_ts, end_ts, utc_offset_min, package, category, origin) "
                  "VALUES (1, ?, ?, NULL, 'a.b', NULL, 'x')", [T0, T0 + timedelta(minutes=5)])
    df = read.session_starts(vault, until=T0 + timedelta(seconds=1))
    assert df.rows() == [(T0, None, None)] and read.session_starts(vault, until=T0).height == 0


def test_the_reports_counts_refuse_a_table_without_a_known_time_column(vault: Vault) -> None:
    assert read.table_span(vault, "stays") == read.Span(rows=0, first=None, last=None)
    with pytest.raises(ValueError, match="no time column"):
        read.table_span(vault, "api_tokens; DROP TABLE stays")


def test_a_stored_token_reads_back_as_written_and_revocation_sets_only_its_time(vault: Vault) -> None:
    row = vault_tokens.StoredToken(token_id="abc", secret_sha256="0" * 64, agent="a", scopes=("memory:read",),
                                   location="coarse", purpose=None, rate_per_minute=60, created_at=T0,
                                   expires_at=None, revoked_at=None)
    vault_tokens.insert(vault, row)
    assert vault_tokens.stored(vault) == [row]
    vault_tokens.mark_revoked(vault, "abc", T0 + timedelta(hours=1))
    (back,) = vault_tokens.stored(vault)
    assert back.revoked_at == T0 + timedelta(hours=1) and back.agent == "a"


def test_erase_removes_rows_remembers_their_ids_and_refuses_other_tables(vault: Vault) -> None:
    _stay(vault, 1, 0, 1, "Home")
    _stay(vault, 2, 2, 3, "Gym")
    with vault.transaction():
        assert erase.forget_rows(vault, "stays", [1, 99], T0) == 1
    assert [s.row_id for s in read.stays(vault)] == [2]
    assert vault.query("SELECT source_table, row_id FROM forgotten_rows ORDER BY row_id") == [("stays", 1), ("stays", 99)]
    with pytest.raises(ValueError, match="not a table forget removes"):
        erase.forget_rows(vault, "memories", [1], T0)
