"""The vault's home time zone comes from where the user's own data says they live."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import FAST_KDF, PASSPHRASE
from vault.homezone import home_zone
from vault.store import Vault

T0 = datetime(2025, 3, 3, tzinfo=UTC)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    v, _ = Vault.create(tmp_path / "home", PASSPHRASE, kdf=FAST_KDF)
    with v:
        yield v


def stay(v: Vault, n: int, hours: float, offset_min: int) -> None:
    start = T0 + timedelta(days=n)
    v.execute("INSERT INTO stays (row_id, start_ts, end_ts, utc_offset_min, lat, lon, origin) "
              "VALUES (?, ?, ?, ?, 0, 0, 'export')",
              [v.row_id("stay", n), start, start + timedelta(hours=hours), offset_min])


def event(v: Vault, n: int, tzid: str | None, offset_min: int) -> None:
    v.execute("INSERT INTO calendar_events (row_id, uid, recurrence_id, start_ts, end_ts, utc_offset_min, tzid, "
              "format, file, position, load_id) VALUES (?, ?, '', ?, ?, ?, ?, 'ics', 'cal.ics', 0, 'load-1')", [v.row_id("event", n), f"uid-{n}", T0, T0 + timedelta(hours=1),
                                                offset_min, tzid])


def test_an_empty_vault_lives_in_utc(vault: Vault) -> None:
    assert home_zone(vault) == UTC


def test_the_offset_with_the_most_time_wins_over_the_most_visits(vault: Vault) -> None:
    for n in range(5):
        stay(vault, n, 1, 60)  # five short visits abroad
    stay(vault, 10, 11, 330)  # one long night at home
    assert home_zone(vault).utcoffset(T0) == timedelta(minutes=330)


def test_the_calendar_names_the_zone_of_that_offset_so_daylight_saving_is_followed(vault: Vault) -> None:
    stay(vault, 0, 12, 60)
    for n in range(3):
        event(vault, n, "America/New_York", -300)  # more events, but not where the user sleeps
    event(vault, 10, "Europe/Paris", 60)
    event(vault, 11, "floating", 60)
    zone = home_zone(vault)
    assert zone == ZoneInfo("Europe/Paris") and zone.utcoffset(datetime(2025, 7, 1)) == timedelta(hours=2)


def test_without_a_named_zone_the_offset_is_fixed(vault: Vault) -> None:
    stay(vault, 0, 12, -180)
    event(vault, 1, "W. Europe Standard Time", -180)  # a Windows name: not a zone this rule trusts
    assert home_zone(vault) == timezone(timedelta(hours=-3))


def test_without_visits_the_calendar_decides(vault: Vault) -> None:
    event(vault, 1, "Asia/Tokyo", 540)
    event(vault, 2, "Asia/Tokyo", 540)
    event(vault, 3, "Europe/Paris", 60)
    assert home_zone(vault) == ZoneInfo("Asia/Tokyo")
    vault.execute("DELETE FROM calendar_events")
    event(vault, 4, None, 120)
    assert home_zone(vault) == timezone(timedelta(hours=2))


def test_an_impossible_offset_is_ignored(vault: Vault) -> None:
    stay(vault, 0, 100, 24 * 60)
    stay(vault, 1, 1, 60)
    assert home_zone(vault) == timezone(timedelta(hours=1))


def test_a_caller_that_may_not_read_visits_or_the_calendar_gets_a_zone_without_them(vault: Vault) -> None:
    stay(vault, 0, 12, 60)
    event(vault, 1, "Europe/Paris", 60)
    event(vault, 2, "Asia/Tokyo", 540)
    event(vault, 3, "Asia/Tokyo", 540)
    assert home_zone(vault) == ZoneInfo("Europe/Paris")
    assert home_zone(vault, visits=False) == ZoneInfo("Asia/Tokyo")
    assert home_zone(vault, calendar=False) == timezone(timedelta(hours=1))
    assert home_zone(vault, visits=False, calendar=False) == UTC
