"""Every sealed vector's provenance (model, weights version, dtype, text hash) is recorded, in bulk."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from embeddings import index as vindex
from embeddings import memories
from embeddings.encoder import DIM, LEAN_MAX_TEXTS
from embeddings.service import MemoryService
from vault.store import Vault

N = 5_000  # about a quarter of a year's memories


def _usage_memories(vault: Vault, n: int) -> list[memories.Memory]:
    t0 = datetime(2025, 3, 4, tzinfo=UTC)
    return [memories.Memory(memory_id=vault.row_id("memory", "usage", i), kind="usage", text=f"Used App {i}",
                            text_redacted=None, start_ts=t0 + timedelta(minutes=i), end_ts=t0 + timedelta(minutes=i + 1),
                            utc_offset_min=0, source="usage", source_table="app_sessions") for i in range(n)]


def test_sealing_records_the_provenance_of_thousands_of_vectors_in_one_statement(vault: Vault, svc: MemoryService):
    items = _usage_memories(vault, N)
    vault.insert_frame("memories", memories.frame(items, now=datetime.now(UTC)))
    gone = items[0].memory_id  # forgotten between its embedding and the seal: no provenance row for it
    vault.execute("DELETE FROM memories WHERE memory_id = ?", [gone])
    svc._full = vindex.VectorIndex.new(DIM)
    svc._pending.update({m.memory_id: (m.text_sha, svc.encoder.dtype) for m in items})
    svc._dirty = True
    t = time.perf_counter()
    svc.flush()
    took = time.perf_counter() - t
    assert took < 3.0, f"{took:.1f} s to seal {N} vectors' provenance"  # a row at a time took ~12 s of CPU
    assert vault.scalar("SELECT count(*) FROM memory_vectors") == N - 1
    assert vault.scalar("SELECT count(*) FROM memory_vectors WHERE memory_id = ?", [gone]) == 0
    info = svc.encoder.info
    assert vault.query("SELECT DISTINCT model, model_version, dtype FROM memory_vectors") == [
        (info.name, info.version, info.dtype)]


def test_sealing_again_replaces_a_vectors_provenance_rather_than_adding_a_row(vault: Vault, svc: MemoryService):
    items = _usage_memories(vault, 3)
    vault.insert_frame("memories", memories.frame(items, now=datetime.now(UTC)))
    svc._full = vindex.VectorIndex.new(DIM)
    for sha in ("first", "second"):
        svc._pending.update({m.memory_id: (sha, "float32") for m in items})
        svc._dirty = True
        svc.flush()
    assert vault.query("SELECT DISTINCT text_sha FROM memory_vectors") == [("second",)]
    assert vault.scalar("SELECT count(*) FROM memory_vectors") == 3


def test_each_vector_is_recorded_in_the_dtype_it_was_computed_in(vault: Vault, indexed: MemoryService):
    """An indexing run's many texts in the model's dtype; a note's vector in the numpy forward's float32."""
    note = indexed.remember("Quillfeather the locksmith keeps the spare bike key")
    indexed.flush()
    dtypes = dict(vault.query("SELECT dtype, count(*) FROM memory_vectors GROUP BY dtype"))
    assert vault.query("SELECT dtype FROM memory_vectors WHERE memory_id = ?", [note.memory_id]) == [("float32",)]
    if indexed.encoder.dtype == "bfloat16":
        assert dtypes["bfloat16"] > LEAN_MAX_TEXTS and dtypes["float32"] >= 1
