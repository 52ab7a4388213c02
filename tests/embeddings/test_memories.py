"""Rows become memory texts in local time, with provenance, sensitivity and a location-free variant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from embeddings import memories
from embeddings.service import MemoryService
from tests.embeddings.persona import seed
from vault.store import Vault


def test_a_visit_reads_like_a_sentence_in_the_local_time_it_was_recorded_in():
    start, end = datetime(2025, 3, 4, 8, 5, tzinfo=UTC), datetime(2025, 3, 4, 8, 40, tzinfo=UTC)
    text, redacted = memories.render_visit("Café Nero", "Kings Rd", "cafe", start, end, 60)
    assert text == "Visited Café Nero, Kings Rd (café) on Tue 4 Mar 2025 09:05–09:40 (35 min)"
    assert redacted == "Visited a café on Tue 4 Mar 2025 09:05–09:40 (35 min)"


def test_home_and_work_are_named_by_type_in_the_redacted_text():
    s, e = datetime(2025, 3, 4, 19, tzinfo=UTC), datetime(2025, 3, 5, 7, tzinfo=UTC)
    _, redacted = memories.render_visit("3 Elm Grove", "3 Elm Grove", "TYPE_HOME", s, e, 0)
    assert redacted.startswith("Was at home from Tue 4 Mar 2025 19:00 to Wed 5 Mar 2025 07:00")


def test_calendar_memories_name_attendees_without_their_addresses():
    s, e = datetime(2025, 3, 13, 10, tzinfo=UTC), datetime(2025, 3, 13, 10, 30, tzinfo=UTC)
    people = [{"name": "Ann Lee", "email": "ann@clinic.example"}, {"email": "bob.stone@acme.example"}]
    text, redacted = memories.render_event("Check-up", "20 Harley St", None, "CONFIRMED", "ann@clinic.example",
                                           people, s, e, 0, False)
    assert text == "Calendar: Check-up on Thu 13 Mar 2025 10:00–10:30 at 20 Harley St, with Ann Lee, Bob Stone."
    assert "@" not in text and "Harley" not in redacted


def test_indexing_turns_every_source_into_memories_with_provenance(vault: Vault, indexed: MemoryService):
    kinds = dict(vault.query("SELECT kind, count(*) FROM memories GROUP BY kind"))
    assert set(kinds) == {"visit", "event", "usage", "trip", "routine"}
    table, row_ids, sens = vault.query(
        "SELECT source_table, source_row_ids, sensitivity FROM memories WHERE text LIKE 'Check-up%' "
        "OR text LIKE 'Calendar: Check-up%'")[0]
    assert table == "calendar_events" and sens == "calendar"
    assert row_ids == [vault.row_id("event", "lee-checkup")]
    assert vault.scalar("SELECT count(*) FROM memories WHERE text LIKE '%@%'") == 0
    versions = vault.query("SELECT DISTINCT model, model_version, dtype FROM memory_vectors")
    assert len(versions) == 1 and versions[0][0] == "sentence-transformers/all-MiniLM-L6-v2"
    assert vault.scalar("SELECT count(*) FROM memory_vectors") == vault.scalar("SELECT count(*) FROM memories")


def test_usage_sessions_close_together_make_one_memory(vault: Vault, svc: MemoryService):
    for i, (h, m) in enumerate([(22, 0), (22, 30), (23, 0)]):  # 5-minute gaps: one cluster of three sessions
        vault.execute(
            "INSERT INTO app_sessions VALUES (?, ?, ?, 0, 'com.google.android.youtube', 'YouTube', 'Video', 'x')",
            [i + 1, datetime(2025, 3, 4, h, m, tzinfo=UTC), datetime(2025, 3, 4, h, m + 25, tzinfo=UTC)])
    svc.index()
    texts = [r[0] for r in vault.query("SELECT text FROM memories WHERE kind = 'usage'")]
    assert texts == ["Used YouTube (Video) on Tue 4 Mar 2025 22:00–23:25: 1 h 15 min in 3 sessions"]


def test_reindexing_embeds_only_new_or_changed_memories(vault: Vault, indexed: MemoryService):
    again = indexed.index()
    assert (again.added, again.changed, again.removed, again.embedded) == (0, 0, 0, 0)
    vault.execute("UPDATE stays SET name = 'Caffè Nero' WHERE name = 'Café Nero' AND start_ts < '2025-03-05'")
    after = indexed.index()
    assert (after.added, after.changed, after.embedded) == (0, 1, 1)  # that visit only (trips keep their own names)
    vault.execute("DELETE FROM calendar_events WHERE uid = 'dentist'")
    gone = indexed.index()
    assert (gone.removed, gone.embedded) == (1, 0)
    assert gone.vectors == vault.scalar("SELECT count(*) FROM memories")


def test_a_day_of_screen_time_lists_the_top_apps(vault: Vault, svc: MemoryService):
    seed(vault)
    svc.index()
    text, details = vault.query("SELECT text, details FROM memories WHERE source_table = 'daily_summaries'")[0]
    assert text.startswith("Screen time on Wed 12 Mar 2025: 55 min. Apps: YouTube 35 min, Slack 20 min")
    assert json.loads(details)["by_app"] == {"YouTube": 35.0, "Slack": 20.0}


def test_an_exported_visit_and_the_detected_stay_over_the_same_span_are_one_memory(vault: Vault, svc: MemoryService):
    def stay(rid: int, start: datetime, end: datetime, name: str | None, origin: str) -> None:
        vault.execute("INSERT INTO stays VALUES (?, ?, ?, 0, 51.49, -0.19, 'p1', ?, 'Warwick Rd', 'gym', ?, 12)",
                      [rid, start, end, name, origin])

    stay(1, datetime(2025, 3, 4, 18, 12, tzinfo=UTC), datetime(2025, 3, 4, 19, 34, tzinfo=UTC), None, "derived")
    stay(2, datetime(2025, 3, 4, 18, 13, tzinfo=UTC), datetime(2025, 3, 4, 19, 32, tzinfo=UTC), "PureGym", "export")
    stay(3, datetime(2025, 3, 4, 20, 0, tzinfo=UTC), datetime(2025, 3, 4, 21, 0, tzinfo=UTC), None, "derived")
    svc.index()
    rows = vault.query("SELECT text, source_row_ids FROM memories WHERE kind = 'visit' ORDER BY start_ts")
    assert [(t[:16], ids) for t, ids in rows] == [("Visited PureGym,", [2, 1]), ("Visited a gym on", [3])]
    from embeddings.forget import ForgetRequest

    svc.forget_commit(svc.forget_preview(ForgetRequest(query="PureGym")))
    assert [r[0] for r in vault.query("SELECT row_id FROM stays")] == [3]


def _sessions(vault: Vault, spans: list[tuple[tuple[int, int], tuple[int, int]]], app: str = "Gmail",
              package: str = "com.google.android.gm", category: str = "Communication") -> None:
    for i, ((h0, m0), (h1, m1)) in enumerate(spans):
        vault.execute("INSERT INTO app_sessions VALUES (?, ?, ?, 0, ?, ?, ?, 'x')",
                      [100 + i, datetime(2025, 3, 4, h0, m0, tzinfo=UTC), datetime(2025, 3, 4, h1, m1, tzinfo=UTC),
                       package, app, category])


def test_glances_of_one_app_less_than_three_hours_apart_fold_into_one_memory_spanning_them(vault: Vault,
                                                                                             svc: MemoryService):
    # glances (under 2 min) at 07:56, 08:30 and 08:59; a 5-min session between them stays its own memory;
    # a glance 3 h 1 min after the last one starts a new group, and a group of one reads as before
    _sessions(vault, [((7, 56), (7, 57)), ((8, 10), (8, 15)), ((8, 30), (8, 31)), ((8, 59), (9, 0)),
                      ((12, 1), (12, 2))])
    svc.index()
    rows = vault.query("SELECT text, start_ts, end_ts, source_row_ids FROM memories WHERE kind = 'usage' "
                       "AND source_table = 'app_sessions' ORDER BY start_ts, text")
    assert [r[0] for r in rows] == [
        "Glanced at Gmail (Communication) 3 times on Tue 4 Mar 2025 07:56–09:00: 3 min",
        "Used Gmail (Communication) on Tue 4 Mar 2025 08:10–08:15: 5 min",
        "Used Gmail (Communication) on Tue 4 Mar 2025 12:01–12:02: 1 min",
    ]
    assert (rows[0][1], rows[0][2]) == (datetime(2025, 3, 4, 7, 56, tzinfo=UTC), datetime(2025, 3, 4, 9, 0, tzinfo=UTC))
    assert sorted(rows[0][3]) == [100, 102, 103]


def test_a_two_minute_session_is_not_a_glance(vault: Vault, svc: MemoryService):
    _sessions(vault, [((7, 56), (7, 57, )), ((8, 30), (8, 32))])  # 1 min and exactly 2 min (GLANCE)
    svc.index()
    texts = sorted(r[0] for r in vault.query("SELECT text FROM memories WHERE source_table = 'app_sessions' "
                                             "AND kind = 'usage'"))
    assert texts == ["Used Gmail (Communication) on Tue 4 Mar 2025 07:56–07:57: 1 min",
                     "Used Gmail (Communication) on Tue 4 Mar 2025 08:30–08:32: 2 min"]


def test_a_thousand_usage_clusters_get_their_ids_from_one_keyed_hash_call(vault: Vault, monkeypatch):
    for i in range(1000):  # one 5-min session an hour: every one its own cluster, none a glance
        start = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(hours=i)
        vault.execute("INSERT INTO app_sessions VALUES (?, ?, ?, 0, 'com.spotify.music', 'Spotify', 'Music', 'x')",
                      [1 + i, start, start + timedelta(minutes=5)])
    calls: list[int] = []
    row_ids = Vault.row_ids
    monkeypatch.setattr(Vault, "row_ids", lambda self, keys: calls.append(1) or row_ids(self, keys))
    clusters = memories.usage_clusters(vault)
    assert len(clusters) == 1000 and len(calls) == 1  # one at a time, a year's 17,500 cost 5 s of CPU
    assert clusters[7].memory_id == vault.row_id("memory", "usage", 8)
