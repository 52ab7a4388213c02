"""Forget: a preview changes nothing; a commit removes the memory, its sources and its vector everywhere."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from embeddings import index as vindex
from embeddings.events import MemoryForgotten
from embeddings.forget import ForgetRequest
from embeddings.service import INDEX_BLOB, MemoryService
from tests.conftest import PASSPHRASE, grep_tree
from tests.embeddings.helpers import tables_containing
from tests.embeddings.persona import CANARY_PLACE, NOW, seed
from vault import audit
from vault.store import Vault

CANARY = "QX9-canary-Plimwick"


def _plant(vault: Vault, svc: MemoryService) -> tuple[int, int]:
    seed(vault)
    vault.execute("UPDATE stays SET name = ? WHERE name = ?", [f"{CANARY} {CANARY_PLACE}", CANARY_PLACE])
    vault.execute("UPDATE daily_summaries SET places = replace(places, ?, ?)", [CANARY_PLACE, f"{CANARY} {CANARY_PLACE}"])
    for i, (h, m) in enumerate([(20, 0), (21, 0), (21, 59)]):  # the raw rows behind the visit
        vault.execute("INSERT INTO location_points VALUES (?, ?, 0, 51.5012, -0.1299, 10, NULL, 'gps', 'gpx', 'f', ?, 'l')",
                      [900 + i, datetime(2025, 3, 12, h, m, tzinfo=UTC), i])
    vault.execute("INSERT INTO place_visits VALUES (77, ?, ?, 0, 51.5012, -0.1299, 'p', ?, '9 Nowhere Lane', "
                  "'restaurant', 0.9, 'semantic', 'f', 0, 'l')",
                  [datetime(2025, 3, 12, 20, tzinfo=UTC), datetime(2025, 3, 12, 22, tzinfo=UTC), f"{CANARY} {CANARY_PLACE}"])
    note = svc.remember(f"Dinner at {CANARY} was great", metadata={"where": CANARY}, tags=["food"])
    svc.update(note.memory_id, text=f"Dinner at {CANARY} was excellent")
    svc.index()
    visit = vault.scalar("SELECT memory_id FROM memories WHERE kind = 'visit' AND text LIKE ?", [f"%{CANARY}%"])
    return note.memory_id, visit


def test_a_preview_changes_nothing(vault: Vault, svc: MemoryService):
    _plant(vault, svc)
    before = vault.scalar("SELECT count(*) FROM memories")
    plan = svc.forget_preview(ForgetRequest(query=CANARY))
    assert len(plan.memory_ids) == 2 and plan.by_kind == {"note": 1, "visit": 1}
    assert plan.rows["stays"] and len(plan.rows["location_points"]) == 3 and plan.rows["place_visits"] == (77,)
    assert vault.scalar("SELECT count(*) FROM memories") == before
    assert svc.search(CANARY, k=2, now=NOW).hits
    assert svc.forget_preview(ForgetRequest(query=CANARY)).digest == plan.digest  # same request, same plan
    svc.remember(f"Another {CANARY} note")
    assert svc.forget_preview(ForgetRequest(query=CANARY)).digest != plan.digest  # the data changed


def test_after_forgetting_a_canary_it_is_found_nowhere(vault: Vault, svc: MemoryService, home, encoder):
    note_id, visit_id = _plant(vault, svc)
    canary_vec = encoder.encode([f"Dinner at {CANARY} was excellent"])[0]
    receipt = svc.forget_commit(svc.forget_preview(ForgetRequest(query=CANARY)))
    assert receipt.memories == 2 and receipt.vectors_removed == 2
    assert receipt.rows_deleted["location_points"] == 3 and receipt.rows_deleted["daily_summaries.places"] == 1
    # queries
    for mode in ("hybrid", "lexical", "dense"):
        assert all(CANARY not in h.memory.text for h in svc.search(CANARY, k=50, mode=mode, now=NOW).hits)  # type: ignore[arg-type]
    # every table of the vault (memories, history, sources, summaries, audit log)
    assert tables_containing(vault, CANARY) == []
    assert tables_containing(vault, "Plimwick") == []
    # the sealed index, read back from disk: neither the ids nor the vectors
    ix, _ = vindex.load(vault, INDEX_BLOB)  # type: ignore[misc]
    assert not set(ix.ids().tolist()) & {note_id, visit_id}
    assert float(np.max(ix._matrix() @ canary_vec)) < 0.95
    # every sealed blob, decrypted
    for blob in (home / "blobs").glob("*.sealed"):
        plain = vault.read_blob(blob.name.removesuffix(".sealed")) or b""
        assert CANARY.encode() not in plain and b"Plimwick" not in plain
    # vault files after compaction (a checkpoint, then a fresh file holding only live rows)
    vault.checkpoint()
    assert grep_tree(home, CANARY.encode()) == []
    vault.rotate_duckdb_key()
    assert grep_tree(home, CANARY.encode()) == [] and tables_containing(vault, CANARY) == []
    vault.close()
    with Vault.open(home, PASSPHRASE) as again:
        assert tables_containing(again, CANARY) == []
        assert MemoryService(again, encoder=encoder).search(CANARY, k=5, mode="lexical", now=NOW).hits == ()


def test_the_audit_log_keeps_only_hashes_of_what_was_forgotten(vault: Vault, svc: MemoryService):
    note_id, visit_id = _plant(vault, svc)
    svc.forget_commit(svc.forget_preview(ForgetRequest(query=CANARY)), actor="owner")
    event = list(audit.events(vault, kind=MemoryForgotten.kind))[-1]
    assert event.body["target_kind"] == "query" and event.body["items"] == 2
    assert len(event.body["selector_sha256"]) == 64 and CANARY not in str(event.body)
    assert str(note_id) not in str(event.body) and str(visit_id) not in str(event.body)
    assert audit.verify(vault).ok


def test_forget_by_time_range_and_kind_leaves_everything_else(vault: Vault, indexed: MemoryService):
    total = vault.scalar("SELECT count(*) FROM memories")
    since, until = datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC)
    plan = indexed.forget_preview(ForgetRequest(since=since, until=until, kinds=frozenset({"usage"})))
    # that day's Slack and YouTube sessions, and the routines that summarise them (Slack, YouTube, phone use:
    # rebuilt from what remains at the next index)
    assert plan.by_kind == {"usage": 2, "routine": 3}
    receipt = indexed.forget_commit(plan)
    assert vault.scalar("SELECT count(*) FROM memories") == total - 5
    assert receipt.rows_deleted["app_sessions"] == 2
    assert indexed.search("YouTube", k=5, since=since, until=until, kinds=["usage"], parse_time=False).hits == ()


def test_forgetting_a_visit_removes_the_trips_that_end_there(vault: Vault, indexed: MemoryService):
    visit = vault.scalar("SELECT memory_id FROM memories WHERE kind = 'visit' AND text LIKE 'Visited Café Nero%4 Mar%'")
    plan = indexed.forget_preview(ForgetRequest(memory_ids=(visit,)))
    assert plan.by_kind == {"visit": 1, "trip": 1}
    indexed.forget_commit(plan)
    assert vault.scalar("SELECT count(*) FROM trips") == 0
    assert vault.scalar("SELECT count(*) FROM forgotten_rows WHERE source_table = 'trips'") == 1


def test_forget_by_source_removes_every_calendar_memory(vault: Vault, indexed: MemoryService):
    receipt = indexed.forget_commit(indexed.forget_preview(ForgetRequest(source="calendar")))
    # six events and the two routines built on them (the standup series, the person met in it)
    assert receipt.memories == 8 and vault.scalar("SELECT count(*) FROM calendar_events") == 0
    assert vault.scalar("SELECT count(*) FROM memories WHERE sensitivity = 'calendar'") == 0
    assert indexed.search("standup", k=5, kinds=["event"]).hits == ()


def test_reingesting_an_old_export_does_not_bring_forgotten_rows_back(vault: Vault, svc: MemoryService, tmp_path):
    from ingest.pipeline import run
    from tests.ingest.test_calendar_ics import FIXTURES as ICS_FIXTURES

    export = ICS_FIXTURES / "google_bom.ics"
    window = {"window_start": datetime(2000, 1, 1, tzinfo=UTC), "window_end": datetime(2100, 1, 1, tzinfo=UTC)}
    first = run(vault, [export], options=window)
    assert first.loaded > 0
    svc.index()
    plan = svc.forget_preview(ForgetRequest(query="Dentist"))
    assert plan.by_kind == {"event": 1} and len(plan.rows["calendar_events"]) == 1
    svc.forget_commit(plan)
    assert vault.scalar("SELECT count(*) FROM calendar_events WHERE summary = 'Dentist'") == 0
    again = run(vault, [export], options=window)  # the same old export, a month later
    assert again.forgotten == 1 and again.loaded == 0
    assert vault.scalar("SELECT count(*) FROM calendar_events WHERE summary = 'Dentist'") == 0
    assert vault.scalar("SELECT count(*) FROM calendar_events") == first.loaded - 1
    svc.index()
    assert not [h for h in svc.search("Dentist", k=5, mode="lexical").hits if "Dentist" in h.memory.text]


def test_forgetting_folded_glances_takes_their_events_and_leaves_a_session_between_them(vault: Vault,
                                                                                          svc: MemoryService):
    t = lambda h, m: datetime(2025, 3, 4, h, m, tzinfo=UTC)  # noqa: E731
    spans = [((7, 56), (7, 57)), ((8, 10), (8, 15)), ((8, 30), (8, 31))]  # glance, a 5-min session, glance
    for i, ((h0, m0), (h1, m1)) in enumerate(spans):
        vault.execute("INSERT INTO app_sessions VALUES (?, ?, ?, 0, 'com.google.android.gm', 'Gmail', "
                      "'Communication', 'x')", [100 + i, t(h0, m0), t(h1, m1)])
        for j, (at, what) in enumerate(((t(h0, m0), "ACTIVITY_RESUMED"), (t(h1, m1), "ACTIVITY_PAUSED"))):
            vault.execute("INSERT INTO usage_events VALUES (?, ?, 0, 'com.google.android.gm', NULL, ?, 'csv', "
                          "NULL, NULL, 'load')", [200 + 2 * i + j, at, what])
    svc.index()
    glances = vault.scalar("SELECT memory_id FROM memories WHERE text LIKE 'Glanced at Gmail%'")
    receipt = svc.forget_commit(svc.forget_preview(ForgetRequest(memory_ids=(glances,))))
    assert receipt.rows_deleted["app_sessions"] == 2 and receipt.rows_deleted["usage_events"] == 4
    assert vault.query("SELECT row_id FROM app_sessions ORDER BY row_id") == [(101,)]
    assert vault.query("SELECT row_id FROM usage_events ORDER BY row_id") == [(202,), (203,)]
