"""What an agent naturally sends is understood or refused with a clear 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.params import HOME_ZONE, MAX_TIME_CHARS, read_time
from api.state import ApiSettings
from api.tokens import TokenStore
from tests.api.conftest import BASE, HOST, PORT, Served
from tests.conftest import FAST_KDF, PASSPHRASE
from vault.store import Vault

FAR = ["what did I do in 9999", "on 31 Dec 9999", "in December 9999", "what did I do in 0001", "on 1 Jan 0001",
       "in January 1", "coffee in 99999", "last 99999999999999999999 days", "on 29 February 2100"]


@pytest.mark.parametrize("query", FAR)
def test_a_search_naming_a_far_date_answers_200(served: Served, query: str) -> None:
    r = served.call("POST", "/v1/search", "owner", json={"query": query, "k": 3})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("query", FAR[:3])
def test_a_context_pack_for_a_far_date_answers_200(served: Served, query: str) -> None:
    r = served.call("POST", "/v1/context", "owner", json={"task": query, "token_budget": 64})
    assert r.status_code == 200, r.text


# ---- times as agents send them: dates and date-times without an offset, read in the home time zone --------
KOLKATA = 330  # the small vault below lives at UTC+05:30 (its visits, and its calendar's TZID)
TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def kolkata(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """A vault whose user lives in Asia/Kolkata: two visits, one calendar event, an owner token."""
    home = tmp_path_factory.mktemp("kolkata") / "home"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        for key, start, hours in (("morning", datetime(2025, 3, 1, 4, 0, tzinfo=UTC), 1),  # 09:30 local, 1 March
                                  ("late", datetime(2025, 3, 1, 20, 0, tzinfo=UTC), 2)):  # 01:30 local, 2 March
            vault.execute("INSERT INTO stays (row_id, start_ts, end_ts, utc_offset_min, lat, lon, name, origin) "
                          "VALUES (?, ?, ?, ?, 12.97, 77.59, ?, 'export')",
                          [vault.row_id("stay", key), start, start + timedelta(hours=hours), KOLKATA, key])
        for n, (summary, start, off, tzid) in enumerate([  # one event at home; two calls with New York
                ("Standup", datetime(2025, 3, 1, 4, 0, tzinfo=UTC), KOLKATA, "Asia/Kolkata"),
                ("NY call", datetime(2025, 3, 1, 15, 0, tzinfo=UTC), -300, "America/New_York"),
                ("NY call", datetime(2025, 3, 8, 15, 0, tzinfo=UTC), -300, "America/New_York")]):
            vault.execute("INSERT INTO calendar_events (row_id, uid, recurrence_id, start_ts, end_ts, utc_offset_min, "
                          "tzid, summary, format, file, position, load_id) VALUES (?, ?, '', ?, ?, ?, ?, ?, 'ics', "
                          "'cal.ics', 0, 'load-1')", [vault.row_id("event", n), f"u{n}", start,
                                                      start + timedelta(minutes=30), off, tzid, summary])
        store = TokenStore.load(vault)
        TOKENS.update({"owner": store.create(agent="tz-owner", scopes=["owner"], location="precise").secret,
                       "calendar": store.create(agent="tz-calendar", scopes=["calendar:read"]).secret})
    app = create_app(ApiSettings(home=home, passphrase=PASSPHRASE, host=HOST, port=PORT, warm=False))
    with TestClient(app, base_url=BASE) as client:
        yield client, TOKENS["owner"]


def visits(kolkata: tuple[TestClient, str], **params: str) -> list[str]:
    client, owner = kolkata
    r = client.get("/v1/timeline", params=params, headers={"Authorization": f"Bearer {owner}"})
    assert r.status_code == 200, r.text
    return [i["place"]["name"] for i in r.json()["items"]]


def test_the_home_time_zone_is_the_one_the_users_data_lives_in(kolkata) -> None:  # type: ignore[no-untyped-def]
    client, _ = kolkata
    zones = client.app.state.backend.home_zones
    assert str(zones[(True, True)]) == "Asia/Kolkata"  # visits say +05:30, the calendar names it
    assert zones[(True, False)] == timezone(timedelta(minutes=KOLKATA))  # visits alone: the offset
    assert str(zones[(False, True)]) == "America/New_York"  # the calendar alone: its most common zone
    assert zones[(False, False)] == UTC


def test_a_token_gets_the_home_zone_of_what_it_may_read(kolkata) -> None:  # type: ignore[no-untyped-def]
    client, _ = kolkata
    window = {"from": "2025-03-01T09:30", "to": "2025-03-01T10:30"}  # 04:00Z in Kolkata, 14:30Z in New York

    def summaries(token: str) -> list[str]:
        r = client.get("/v1/calendar/events", params=window, headers={"Authorization": f"Bearer {TOKENS[token]}"})
        assert r.status_code == 200, r.text
        return [e["summary"] for e in r.json()["events"]]

    assert summaries("owner") == ["Standup"]
    assert summaries("calendar") == ["NY call"]  # it may not see the visits that put home in Kolkata


def test_a_date_time_without_an_offset_is_read_in_the_home_time_zone(kolkata) -> None:  # type: ignore[no-untyped-def]
    assert visits(kolkata, **{"from": "2025-03-01T09:00", "to": "2025-03-01T10:00"}) == ["morning"]
    assert visits(kolkata, **{"from": "2025-03-01T09:00Z", "to": "2025-03-01T10:00Z"}) == []  # an offset wins
    assert visits(kolkata, **{"from": "2025-03-01T09:00:00+05:30", "to": "2025-03-01T10:00:00+05:30"}) == ["morning"]


def test_a_plain_date_is_that_whole_local_day(kolkata) -> None:  # type: ignore[no-untyped-def]
    assert visits(kolkata, **{"from": "2025-03-01", "to": "2025-03-01"}) == ["morning"]  # 'late' is 2 March there
    assert visits(kolkata, **{"from": "2025-03-02", "to": "2025-03-02"}) == ["late"]
    assert visits(kolkata, **{"from": "2025-03-01"}) == ["morning", "late"]


def test_body_times_accept_dates_too(kolkata) -> None:  # type: ignore[no-untyped-def]
    client, owner = kolkata
    r = client.post("/v1/forget", json={"since": "2025-03-02", "until": "2025-03-02", "kinds": ["visit"]},
                    headers={"Authorization": f"Bearer {owner}"})
    assert r.status_code in (200, 409), r.text  # a preview (the memories are not indexed: nothing to forget)


@pytest.mark.parametrize(("field", "value"), [("from", "yesterday"), ("from", "2025-13-01"), ("to", "2025-03-01T25:00"),
                                              ("from", "1/3/2025"), ("from", "2" * 80), ("to", "2025-03-01T09:30+24:00")])
def test_a_malformed_time_parameter_gets_422_naming_the_field_and_the_forms(kolkata, field: str, value: str) -> None:  # type: ignore[no-untyped-def]
    client, owner = kolkata
    r = client.get("/v1/timeline", params={field: value}, headers={"Authorization": f"Bearer {owner}"})
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["query", field] and value not in r.text
    assert "2025-03-01" in problem["msg"]


@pytest.mark.parametrize(("start", "end"), [("0001-01-01T00:00:00+14:00", "0001-01-01T01:00+23:59"),
                                            ("9999-12-31", "9999-12-31"), ("9999-12-31T23:59:59-23:59", None),
                                            (None, "0001-01-01"), ("2025-03-01t09:00z", "2025-03-01t10:00z")])
def test_times_at_the_ends_of_the_calendar_are_clamped_not_refused(kolkata, start: str | None, end: str | None) -> None:  # type: ignore[no-untyped-def]
    params = {k: v for k, v in (("from", start), ("to", end)) if v is not None}
    assert visits(kolkata, **params) == []


@pytest.mark.parametrize("body", [{"query": "coffee", "since": "last tuesday"}, {"query": "coffee", "until": 20250301},
                                  {"query": "coffee", "since": "2025-02-30"}])
def test_a_malformed_body_time_gets_422_naming_the_field(served: Served, body: dict[str, object]) -> None:
    r = served.call("POST", "/v1/search", "owner", json=body)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"][:2] == ["body", next(k for k in body if k != "query")] and "2025-03-01" in problem["msg"]


@pytest.mark.parametrize(("since", "until"), [("2025-03-01", "2025-03-31"), ("2025-03-01T08:00", None),
                                              ("2025-03-01T08:00:00+00:00", "2025-03-31T23:59:59Z"),
                                              ("0001-01-01T00:00+23:59", "9999-12-31")])
def test_a_search_takes_dates_and_local_date_times(served: Served, since: str, until: str | None) -> None:
    body = {"query": "coffee", "since": since} | ({"until": until} if until else {})
    r = served.call("POST", "/v1/search", "owner", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["hits"]


def test_a_time_value_is_read_up_to_its_length_bound_and_refused_past_it() -> None:
    at = "2025-03-01T09:30:00.000000+01:00"
    assert read_time(at.ljust(MAX_TIME_CHARS)) == datetime(2025, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(ValueError, match="2025-03-01"):
        read_time(at.ljust(MAX_TIME_CHARS + 1))


def test_without_a_request_an_offset_less_time_is_read_in_utc_and_inside_one_in_its_home_zone() -> None:
    assert read_time("2025-03-01T09:30").tzinfo == UTC
    token = HOME_ZONE.set(ZoneInfo("Asia/Kolkata"))
    try:
        assert read_time("2025-03-01T09:30").astimezone(UTC) == datetime(2025, 3, 1, 4, 0, tzinfo=UTC)
        assert read_time("2025-03-01", end=True).astimezone(UTC) == datetime(2025, 3, 1, 18, 30, tzinfo=UTC)
    finally:
        HOME_ZONE.reset(token)
