"""Agent-written notes: searchable at once, metadata exactly as stored, history kept on update."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from embeddings.events import MemoryWritten
from embeddings.records import InvalidMemory, MemoryNotFound, NotEditable
from embeddings.service import MemoryService
from tests.conftest import PASSPHRASE
from vault import audit
from vault.store import Vault

METADATA = {"confidence": 0.875, "nested": {"list": [1, 2.5, None, True, "ß"], "empty": {}},
            "big": 2**62 + 1, "z": "last", "a": "first"}


def test_metadata_is_returned_exactly_as_stored(svc: MemoryService):
    note = svc.remember("Ana prefers the window seat", tags=["travel", "ana"], metadata=METADATA)
    assert note.metadata == METADATA and list(note.metadata) == list(METADATA)  # values, types and key order
    hit = svc.search("window seat", k=1).hits[0]
    assert hit.memory.memory_id == note.memory_id and hit.memory.metadata == METADATA
    assert svc.get(note.memory_id).metadata == METADATA


def test_a_note_keeps_both_time_axes(svc: MemoryService):
    occurred = datetime(2024, 6, 1, 20, 30, tzinfo=timezone(timedelta(hours=2)))
    note = svc.remember("Graduation party at the lake", occurred_at=occurred)
    assert note.start_ts == occurred and note.utc_offset_min == 120
    assert note.ingested_at > occurred and note.ingested_at <= datetime.now(UTC)
    june = svc.search("party", k=1, since=datetime(2024, 6, 1, tzinfo=UTC), until=datetime(2024, 6, 2, tzinfo=UTC))
    assert june.hits[0].memory.memory_id == note.memory_id
    earlier = svc.search("party", k=1, as_of=note.ingested_at - timedelta(seconds=1))
    assert earlier.hits == ()  # as of before it was written, nobody knew


def test_updating_a_note_keeps_its_history_and_reembeds_it(vault: Vault, svc: MemoryService):
    note = svc.remember("Dentist is Dr. Park", tags=["health"], metadata={"v": 1})
    updated = svc.update(note.memory_id, text="Dentist is now Dr. Okafor", metadata={"v": 2})
    assert updated.version == 2 and updated.metadata == {"v": 2} and updated.tags == ("health",)
    versions = svc.history(note.memory_id)
    assert [(v.version, v.text, v.metadata) for v in versions] == [
        (1, "Dentist is Dr. Park", {"v": 1}), (2, "Dentist is now Dr. Okafor", {"v": 2})]
    assert versions[0].replaced_at is not None and versions[1].replaced_at is None
    assert svc.search("Okafor", k=1).hits[0].memory.memory_id == note.memory_id
    assert svc.search("Park", k=5, mode="lexical").hits == ()
    ops = [e.body["op"] for e in audit.events(vault, kind=MemoryWritten.kind)]
    assert ops == ["create", "update"]


def test_deleting_a_note_deletes_its_history_and_vector(vault: Vault, svc: MemoryService):
    note = svc.remember("Locker code 4711")
    svc.update(note.memory_id, text="Locker code 9022")
    receipt = svc.delete(note.memory_id)
    assert receipt.memories == 1 and receipt.vectors_removed == 1
    for table in ("memories", "memory_history", "memory_vectors"):
        assert vault.scalar(f"SELECT count(*) FROM {table} WHERE memory_id = ?", [note.memory_id]) == 0
    assert svc.search("locker code", k=5).hits == ()
    with pytest.raises(MemoryNotFound):
        svc.get(note.memory_id)


def test_a_note_written_and_closed_is_found_after_reopening(vault: Vault, svc: MemoryService, home):
    note = svc.remember("The spare key is under the blue pot")
    svc.close()
    vault.close()
    with Vault.open(home, PASSPHRASE) as again:
        fresh = MemoryService(again, encoder=svc.encoder)
        hit = fresh.search("where is the spare key", k=1, mode="dense").hits[0]
        assert hit.memory.memory_id == note.memory_id
        assert again.scalar("SELECT count(*) FROM memory_vectors WHERE memory_id = ?", [note.memory_id]) == 1


def test_a_note_whose_vector_was_never_sealed_is_reembedded_on_load(vault: Vault, svc: MemoryService, encoder):
    note = svc.remember("Crash before sealing")  # no flush: as if the process died here
    fresh = MemoryService(vault, encoder=encoder)
    assert fresh.search("crash sealing", k=1, mode="dense").hits[0].memory.memory_id == note.memory_id


def test_bad_notes_are_refused_with_one_clear_error(svc: MemoryService, indexed_ids=None):
    with pytest.raises(InvalidMemory, match="JSON object"):
        svc.remember("x", metadata=["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(InvalidMemory, match="characters"):
        svc.remember("   ")


def test_ingested_memories_cannot_be_edited(vault: Vault, indexed: MemoryService):
    mid = vault.scalar("SELECT memory_id FROM memories WHERE kind = 'visit' LIMIT 1")
    with pytest.raises(NotEditable, match="forget"):
        indexed.update(mid, text="rewritten history")


def test_a_search_after_an_edit_or_a_delete_never_shows_the_old_row(svc: MemoryService):
    note = svc.remember("The spare key is under the blue flowerpot", metadata={"v": 1})
    assert svc.search("spare key flowerpot", k=1).hits[0].memory.text.endswith("blue flowerpot")  # now cached
    assert svc.get(note.memory_id).metadata == {"v": 1}
    svc.update(note.memory_id, text="The spare key is with the neighbour at number 12", metadata={"v": 2})
    hit = svc.search("spare key", k=1).hits[0]
    assert hit.memory.memory_id == note.memory_id and "neighbour" in hit.memory.text and hit.memory.metadata == {"v": 2}
    assert svc.get(note.memory_id).version == 2
    svc.delete(note.memory_id)
    assert all(h.memory.memory_id != note.memory_id for h in svc.search("spare key", k=10).hits)
    with pytest.raises(MemoryNotFound):
        svc.get(note.memory_id)
    assert svc._rows.hits > 0  # the cache was in play
