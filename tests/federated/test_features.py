"""Vault rows -> training examples: each context column and label, on hand-made rows and a real vault."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from federated import features as feat
from federated import vocab
from tests.federated.test_flower_client import _insert, fill_device

APPS = ("Communication", "Video", "Productivity", "Other")
PLACES = ("home", "work", "gym", "other", "unknown")
MONDAY = datetime(2025, 10, 27, tzinfo=UTC)  # a Monday


def at(hours: float) -> datetime:
    return MONDAY + timedelta(hours=hours)


def build(starts, cats, *, offsets=None, unlocks=(), stays=(), meetings=()):  # type: ignore[no-untyped-def]
    return feat.build(
        session_starts=list(starts), session_offsets_min=list(offsets or [0] * len(starts)),
        session_categories=list(cats), unlocks=list(unlocks), stays=list(stays), meetings=list(meetings),
        app_categories=APPS, place_types=PLACES,
    )


def test_hour_and_weekday_are_local_time():
    # 23:30 UTC on Sunday is 00:30 on Monday at UTC+60 min
    ex = build([at(-0.5)], ["Video"], offsets=[60])
    assert ex.weekday.tolist() == [0]
    assert ex.hour_sin[0] == pytest.approx(math.sin(2 * math.pi * 0.5 / 24))
    assert ex.hour_cos[0] == pytest.approx(math.cos(2 * math.pi * 0.5 / 24))
    assert ex.day[0] == (MONDAY.timestamp() // 86400)


def test_previous_app_is_the_session_before_unless_it_is_hours_ago():
    ex = build([at(8), at(8.5), at(12)], ["Video", "Productivity", "Communication"])
    none = len(APPS)
    assert ex.prev_app.tolist() == [none, APPS.index("Video"), none]  # 3.5 h gap: no previous app
    assert ex.y_app.tolist() == [APPS.index("Video"), APPS.index("Productivity"), APPS.index("Communication")]


def test_unknown_categories_are_other():
    assert build([at(8)], ["Something New"]).y_app.tolist() == [APPS.index("Other")]


def test_minutes_since_unlock_are_log_scaled_and_capped():
    ex = build([at(8), at(9)], ["Video", "Video"], unlocks=[at(8) - timedelta(minutes=5)])
    assert ex.unlock[0] == pytest.approx(math.log1p(5) / math.log1p(feat.UNLOCK_CAP_MIN))
    assert ex.unlock[1] == pytest.approx(math.log1p(65) / math.log1p(feat.UNLOCK_CAP_MIN))
    assert build([at(8)], ["Video"]).unlock.tolist() == [1.0]  # never unlocked: the cap


def test_a_meeting_within_30_minutes_is_upcoming():
    meetings = [at(9.5), at(12) + timedelta(minutes=31)]
    ex = build([at(9), at(9.5), at(12)], ["Video"] * 3, meetings=meetings)
    assert ex.meeting_soon.tolist() == [1.0, 0.0, 0.0]  # a meeting that already started is not upcoming


def test_current_place_and_next_place_come_from_stays():
    stays = [(at(0), at(8), "HOME", "Home"), (at(9), at(17), "WORK", None),
             (at(18), at(19), "UNKNOWN", "City Gym"), (at(20), at(23), "UNKNOWN", "Somewhere")]
    ex = build([at(7), at(8.5), at(10), at(18.5), at(21)], ["Video"] * 5, stays=stays)
    assert [PLACES[i] for i in ex.place] == ["home", "unknown", "work", "gym", "other"]
    assert ex.y_place.tolist() == [PLACES.index("work"), PLACES.index("work"), PLACES.index("gym"),
                                   PLACES.index("other"), feat.NO_LABEL]


def test_place_types_map_semantic_types_then_names():
    assert feat.place_type("INFERRED_HOME", None, PLACES) == "home"
    assert feat.place_type("UNKNOWN", "Acme Office", PLACES) == "work"
    assert feat.place_type(None, None, PLACES) == "unknown"
    assert feat.place_type("UNKNOWN", "Blue Door", PLACES) == "other"


def test_a_device_needs_200_examples_over_7_days_to_train():
    week = [at(24 * d + 8 + i * 0.05) for d in range(7) for i in range(29)]  # 203 over 7 days
    feat.require_enough(build(week, ["Video"] * len(week)))
    with pytest.raises(feat.TooLittleData, match="200 app openings over 7 days"):
        feat.require_enough(build(week[:199], ["Video"] * 199))
    dense = [at(8 + i * 0.01) for i in range(300)]  # plenty of openings, one day
    with pytest.raises(feat.TooLittleData):
        feat.require_enough(build(dense, ["Video"] * 300))


def test_split_by_time_keeps_the_future_for_testing():
    ex = build([at(h) for h in range(10)], ["Video"] * 10)
    past, future = ex.split_by_time(0.8)
    assert len(past) == 8 and len(future) == 2 and past.at.max() < future.at.min()


def test_examples_from_a_vault_follow_its_app_sessions(vault):
    n = fill_device(vault, seed=5, days=10)
    _insert(vault, "calendar_events", [
        {"uid": "cancelled", "recurrence_id": "", "start_ts": at(0), "end_ts": at(1), "status": "CANCELLED",
         "all_day": False, "format": "t", "load_id": "t"},
    ], key=lambda r: r["uid"])
    ex = feat.examples(vault)
    assert len(ex) == n == vault.scalar("SELECT count(*) FROM app_sessions")
    assert np.all(np.diff(ex.at) >= 0)
    assert set(ex.y_app.tolist()) <= set(range(len(vocab.APP_CATEGORIES)))
    assert ex.place.max() < len(vocab.PLACE_TYPES) and ex.y_place.max() < len(vocab.PLACE_TYPES)
    assert ex.meeting_soon.sum() > 0 and ex.days == 10
    assert (ex.place != vocab.PLACE_TYPES.index(feat._unknown(tuple(vocab.PLACE_TYPES)))).mean() > 0.5
