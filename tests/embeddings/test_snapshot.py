"""The sealed catalog snapshot: a cold service loads it instead of rebuilding from rows, finds exactly what a
rebuild finds, never uses a stale one, and keeps nothing of a forgotten memory."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from embeddings import notes, retrieve, snapshot
from embeddings.encoder import Encoder
from embeddings.forget import ForgetRequest
from embeddings.redaction import Redaction
from embeddings.service import MemoryService
from tests.embeddings.persona import NOW, seed
from tests.embeddings.test_forget import CANARY, _plant
from vault.store import Vault

QUERIES = ("when did I last see Dr Lee", "gym", "coffee in the morning", "flight to Lisbon", "dentist")
COARSE = Redaction.for_scopes(["memory:read", "location:read"], location="coarse")


def _results(svc: MemoryService, redaction: Redaction = Redaction.OWNER) -> list[list[tuple[int, float]]]:
    return [[(h.memory.memory_id, round(h.score, 5)) for h in svc.search(q, k=10, now=NOW, redaction=redaction).hits]
            for q in QUERIES]


def _rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the catalog builds from rows from now on."""
    built: list[int] = []
    load = retrieve.Catalog.load.__func__  # type: ignore[attr-defined]

    def counting(cls, vault, indexed=None, texts_of=None):  # type: ignore[no-untyped-def]
        built.append(1)
        return load(cls, vault, indexed, texts_of)

    monkeypatch.setattr(retrieve.Catalog, "load", classmethod(counting))
    return built


@pytest.fixture
def indexed_vault(vault: Vault, encoder: Encoder) -> Vault:
    seed(vault)
    svc = MemoryService(vault, encoder=encoder)
    svc.index()
    svc.remember("Sketched the garden shed plans with Ana", tags=["home"])
    svc.close()
    return vault


def test_a_cold_service_loads_the_snapshot_and_ranks_exactly_as_a_rebuild_from_rows(
        indexed_vault: Vault, encoder: Encoder, monkeypatch: pytest.MonkeyPatch):
    built = _rebuilds(monkeypatch)
    cold = MemoryService(indexed_vault, encoder=encoder)
    from_snapshot = _results(cold), _results(cold, COARSE)
    assert built == []  # neither the owner's nor the coarse caller's search rebuilt it from rows
    snapshot.drop(indexed_vault)
    rebuilt = MemoryService(indexed_vault, encoder=encoder)
    assert (_results(rebuilt), _results(rebuilt, COARSE)) == from_snapshot
    assert built == [1]
    assert any(from_snapshot[0]) and any(from_snapshot[1])


def test_the_snapshot_holds_every_filter_column_and_posting_of_the_live_memories(indexed_vault: Vault,
                                                                                monkeypatch: pytest.MonkeyPatch):
    from embeddings import dialogue

    rows = retrieve.Catalog.load(indexed_vault, dialogue.texts(indexed_vault))
    key, restored = snapshot.decode(snapshot.encode(rows, ["k"]), lambda ids: [])
    assert key == ["k"] and len(restored) == len(rows)
    mine, theirs = np.argsort(rows.ids), np.argsort(restored.ids)
    for name in ("kind", "sensitivity", "source", "start", "end", "offset", "ingested", "has_redacted", "weekday",
                 "minute", "duration"):
        assert (getattr(restored, name)[theirs] == getattr(rows, name)[mine]).all(), name
    for tag in ("home", "food"):
        f = retrieve.Filters(tags=frozenset({tag}))
        assert set(restored.ids[restored.mask(f, Redaction.OWNER.visible)]) == set(rows.ids[rows.mask(f, Redaction.OWNER.visible)])
    for q in QUERIES:
        a, b = rows.lexical.search(q, 20), restored.lexical.search(q, 20)
        assert sorted(zip(rows.ids[a[0]].tolist(), np.round(a[1], 5).tolist(), strict=True)) == \
            sorted(zip(restored.ids[b[0]].tolist(), np.round(b[1], 5).tolist(), strict=True))
    key = snapshot.save(indexed_vault, rows)  # streamed into the sealed blob a slice at a time
    assert indexed_vault.read_blob(snapshot.BLOB) == snapshot.encode(rows, key)
    monkeypatch.setattr(snapshot, "_WRITE_BLOCK", 7)  # slices that end mid-element and mid-array
    assert snapshot.encode(rows, key) == indexed_vault.read_blob(snapshot.BLOB)
    gone = rows.ids[:3]
    rows.remove(gone)  # dead positions, and terms only they held, are left out
    _, smaller = snapshot.decode(snapshot.encode(rows, ["k"]), lambda ids: [])
    assert len(smaller) == len(rows) and not set(gone.tolist()) & set(smaller.ids.tolist())
    assert smaller.lexical.term_count <= restored.lexical.term_count


def test_a_catalog_rebuilt_from_the_rows_holds_no_text_and_a_redacted_caller_still_finds_what_it_did(
        indexed_vault: Vault, encoder: Encoder):
    from_snapshot = MemoryService(indexed_vault, encoder=encoder)
    expected = _results(from_snapshot, COARSE)
    snapshot.drop(indexed_vault)
    rebuilt = MemoryService(indexed_vault, encoder=encoder)
    assert _results(rebuilt, COARSE) == expected and any(expected)
    assert rebuilt._catalog is not None and rebuilt._catalog._texts is None  # read from the vault when needed


def test_a_snapshot_the_memories_moved_on_from_is_not_used(indexed_vault: Vault, encoder: Encoder,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger=snapshot.__name__)
    notes.remember(indexed_vault, text="Booked the Zanzibar ferry for June", occurred_at=NOW, tags=(), metadata=None,
                   source="agent")  # written behind the snapshot's back (another process, a crash)
    built = _rebuilds(monkeypatch)
    svc = MemoryService(indexed_vault, encoder=encoder)
    hits = svc.search("Zanzibar ferry", k=3, mode="lexical", now=NOW).hits
    assert built == [1] and hits and "Zanzibar" in hits[0].memory.text
    assert "stale" in caplog.text and "Zanzibar" not in caplog.text  # said, with no content
    assert MemoryService(indexed_vault, encoder=encoder).search("Zanzibar", k=3, mode="lexical", now=NOW).hits
    assert built == [1]  # the rebuild wrote a fresh snapshot: the next cold process loads it


def test_a_tampered_snapshot_is_rebuilt_from_the_rows(indexed_vault: Vault, encoder: Encoder,
                                                      monkeypatch: pytest.MonkeyPatch):
    path = indexed_vault.blob_path(snapshot.BLOB)
    data = bytearray(path.read_bytes())
    data[200] ^= 1
    path.write_bytes(bytes(data))
    built = _rebuilds(monkeypatch)
    assert MemoryService(indexed_vault, encoder=encoder).search("gym", k=3, now=NOW).hits
    assert built == [1]


def test_an_owner_search_leaves_the_redacted_index_unloaded_and_a_coarse_caller_loads_it(
        indexed_vault: Vault, encoder: Encoder):
    svc = MemoryService(indexed_vault, encoder=encoder)
    svc.search("gym", k=3, now=NOW)
    assert svc._redacted is None
    svc.search("gym", k=3, now=NOW, redaction=COARSE)
    assert svc._redacted is not None and len(svc._redacted) > 0


def test_a_forgotten_memorys_terms_do_not_survive_in_the_snapshot(vault: Vault, svc: MemoryService, encoder: Encoder):
    _plant(vault, svc)
    svc.close()
    assert b"plimwick" in (vault.read_blob(snapshot.BLOB) or b"")  # the BM25 terms are lower case
    svc.forget_commit(svc.forget_preview(ForgetRequest(query=CANARY)))
    plain = vault.read_blob(snapshot.BLOB)
    assert plain is not None and b"plimwick" not in plain.lower() and b"qx9" not in plain.lower()
    assert MemoryService(vault, encoder=encoder).search(CANARY, k=5, mode="lexical", now=NOW).hits == ()


def test_a_forget_killed_before_the_new_snapshot_leaves_none_and_the_next_run_equals_a_clean_one(
        vault: Vault, svc: MemoryService, encoder: Encoder, monkeypatch: pytest.MonkeyPatch):
    _plant(vault, svc)
    svc.close()

    def killed(*_: object) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(snapshot, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        svc.forget_commit(svc.forget_preview(ForgetRequest(query=CANARY)))
    monkeypatch.undo()
    assert vault.read_blob(snapshot.BLOB) is None  # dropped with the old index; never rewritten
    after_crash = _results(MemoryService(vault, encoder=encoder))
    snapshot.drop(vault)
    assert after_crash == _results(MemoryService(vault, encoder=encoder))
    assert all(CANARY not in h.memory.text for h in MemoryService(vault, encoder=encoder).search(
        CANARY, k=10, now=NOW).hits)


def test_a_snapshot_made_under_other_text_rules_is_not_used(indexed_vault: Vault, encoder: Encoder,
                                                             monkeypatch: pytest.MonkeyPatch):
    from embeddings import dialogue

    monkeypatch.setattr(dialogue, "BEFORE", dialogue.BEFORE + 1)  # notes would be indexed with another window
    built = _rebuilds(monkeypatch)
    assert MemoryService(indexed_vault, encoder=encoder).search("garden shed", k=3, now=NOW).hits
    assert built == [1]


def test_a_service_loaded_from_the_snapshot_takes_notes_and_forgets_them(indexed_vault: Vault, encoder: Encoder,
                                                                        monkeypatch: pytest.MonkeyPatch):
    built = _rebuilds(monkeypatch)
    svc = MemoryService(indexed_vault, encoder=encoder)
    svc.search("gym", k=3, now=NOW, redaction=COARSE)  # loaded from the snapshot, texts read for the coarse view
    note = svc.remember("Booked the Zanzibar ferry for June", tags=["travel"], occurred_at=NOW)
    for redaction in (Redaction.OWNER, COARSE):
        hits = svc.search("Zanzibar ferry", k=3, tags=["travel"], now=NOW, redaction=redaction).hits
        assert [h.memory.memory_id for h in hits][:1] == [note.memory_id]
    svc.forget_commit(svc.forget_preview(ForgetRequest(memory_ids=(note.memory_id,))))
    assert svc.search("Zanzibar", k=3, mode="lexical", now=NOW).hits == ()
    svc.close()
    assert built == []
    assert b"zanzibar" not in (indexed_vault.read_blob(snapshot.BLOB) or b"zanzibar")


def test_notes_written_after_the_snapshot_go_to_a_delta_until_it_passes_its_bound(
        indexed_vault: Vault, encoder: Encoder, monkeypatch: pytest.MonkeyPatch):
    from embeddings import dialogue

    monkeypatch.setattr(snapshot, "DELTA_MAX_IDS", 3)  # the fixture's note is the first id of the delta
    base = indexed_vault.read_blob(snapshot.BLOB)
    svc = MemoryService(indexed_vault, encoder=encoder)
    svc.remember("Quillfeather fixed the shed lock", occurred_at=NOW)
    svc.remember("Quillfeather sharpened the hedge shears", occurred_at=NOW)
    svc.close()  # 3 ids since the base: at the bound, a delta
    assert indexed_vault.read_blob(snapshot.BLOB) == base and indexed_vault.read_blob(snapshot.DELTA_BLOB)
    built = _rebuilds(monkeypatch)
    cold = MemoryService(indexed_vault, encoder=encoder)
    assert len(cold.search("Quillfeather", k=5, mode="lexical", now=NOW).hits) == 2 and built == []
    assert cold._catalog is not None
    monkeypatch.undo()
    rows = retrieve.Catalog.load(indexed_vault, dialogue.texts(indexed_vault))
    for q in (*QUERIES, "Quillfeather shears"):  # base + delta scores as a rebuild from the rows
        a, b = rows.lexical.search(q, 20), cold._catalog.lexical.search(q, 20)
        assert sorted(zip(rows.ids[a[0]].tolist(), np.round(a[1], 5).tolist(), strict=True)) == \
            sorted(zip(cold._catalog.ids[b[0]].tolist(), np.round(b[1], 5).tolist(), strict=True)), q
    monkeypatch.setattr(snapshot, "DELTA_MAX_IDS", 3)
    built = _rebuilds(monkeypatch)
    cold.remember("Quillfeather oiled the gate", occurred_at=NOW)
    cold.close()  # 4: over the bound, a new base and no delta
    assert indexed_vault.read_blob(snapshot.BLOB) != base and indexed_vault.read_blob(snapshot.DELTA_BLOB) is None
    assert len(MemoryService(indexed_vault, encoder=encoder).search("Quillfeather", k=5, mode="lexical",
                                                                     now=NOW).hits) == 3
    assert built == []


def test_a_delta_made_for_another_base_is_not_used(indexed_vault: Vault, encoder: Encoder,
                                                   monkeypatch: pytest.MonkeyPatch):
    svc = MemoryService(indexed_vault, encoder=encoder)
    svc.remember("Quillfeather fixed the shed lock", occurred_at=NOW)
    svc.close()
    delta = indexed_vault.read_blob(snapshot.DELTA_BLOB)
    assert delta is not None
    indexed_vault.write_blob(snapshot.DELTA_BLOB, delta.replace(b'"base": [', b'"base": ["other", ', 1))
    built = _rebuilds(monkeypatch)
    assert MemoryService(indexed_vault, encoder=encoder).search("Quillfeather", k=3, mode="lexical", now=NOW).hits
    assert built == [1]
