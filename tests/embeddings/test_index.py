"""The vector index: exact below the IVF threshold, IVF with an exact re-rank above, sealed at rest, tamper-evident."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings import index as vindex
from embeddings.index import VectorIndex
from embeddings.service import INDEX_BLOB, REDACTED_BLOB, MemoryService
from tests.conftest import PASSPHRASE, grep_tree
from tests.embeddings.persona import CANARY_PLACE, seed
from tests.vault.sealed_blob import split as split_sealed
from vault.errors import IntegrityError
from vault.store import Vault


def _unit(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_flat_search_is_exact_and_a_subset_search_only_returns_the_subset():
    vecs, ids = _unit(500), np.arange(1000, 1500, dtype=np.int64)
    ix = VectorIndex.new(32)
    ix.add(ids, vecs)
    got, scores = ix.search(vecs[7], 5)
    assert got[0] == 1007 and scores[0] == pytest.approx(1.0, abs=1e-5)
    brute = np.argsort(-(vecs @ vecs[7]))[:5] + 1000
    assert list(got) == list(brute)
    subset = ids[100:103]
    assert set(ix.search(vecs[7], 5, subset)[0]) == set(subset)


def test_ivf_deletes_drop_the_codes_zero_the_sealed_vectors_and_a_rebuild_clears_the_tombstones(vault: Vault):
    vecs, ids = _unit(400), np.arange(400, dtype=np.int64) + 10
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids, vecs)
    vindex.save(vault, "probe", ix, {"dim": 32})
    slots = ix.positions(ids[:5])
    assert ix.remove(ids[:5]) == 5
    assert ix.stats.tombstones == 5 and len(ix) == 395
    assert ix._ivf().invlists.compute_ntotal() == 395  # the codes left their lists
    assert not set(ix.search(vecs[0], 20)[0]) & set(ids[:5].tolist())
    vindex.save(vault, "probe", ix, {"dim": 32})
    restored, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    assert restored.tombstones == 5 and len(restored) == 395
    assert not restored._store.rows(slots).any()  # the forgotten embeddings are not in the sealed store
    assert np.abs(restored.vectors(ids[5:]) - vecs[5:]).max() < 1e-3
    ix.remove(ids[5:60])  # past TOMBSTONE_REBUILD: rebuilt from the live vectors
    assert ix.stats.tombstones == 0 and len(ix) == 340 and ix.search(vecs[100], 1)[0][0] == ids[100]


def test_the_index_switches_to_ivf_past_the_threshold(monkeypatch):
    monkeypatch.setattr(vindex, "IVF_THRESHOLD", 100)
    ix = VectorIndex.new(32)
    ix.add(np.arange(150, dtype=np.int64), _unit(150))
    assert ix.stats.kind == "ivf" and len(ix) == 150
    assert ix.search(_unit(150)[42], 1)[0][0] == 42


def test_the_sealed_index_round_trips_and_records_the_model(vault: Vault, indexed: MemoryService):
    loaded = vindex.load(vault, INDEX_BLOB)
    assert loaded is not None
    ix, header = loaded
    assert header["model"] == "sentence-transformers/all-MiniLM-L6-v2" and header["dim"] == 384
    assert len(ix) == vault.scalar("SELECT count(*) FROM memories")
    red = vindex.load(vault, REDACTED_BLOB)
    assert red is not None and len(red[0]) == vault.scalar("SELECT count(*) FROM memories WHERE text_redacted IS NOT NULL")
    assert not list(vault.home.rglob("*.faiss")) and not list(vault.home.rglob("*.index"))


def test_a_tampered_sealed_index_fails_with_a_clear_integrity_error(vault: Vault, indexed: MemoryService, encoder):
    path = vault.blob_path(INDEX_BLOB)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    fresh = MemoryService(vault, encoder=encoder)
    with pytest.raises(IntegrityError, match="memory-index.sealed failed its integrity check.*index --rebuild"):
        fresh.search("coffee")
    assert fresh.index(rebuild=True).vectors == vault.scalar("SELECT count(*) FROM memories")  # and it recovers
    assert "Café Nero" in fresh.search("Café Nero", k=1).hits[0].memory.text


def test_a_canary_in_a_note_and_a_visit_is_in_no_file_under_the_vault_home_after_indexing(
        vault: Vault, svc: MemoryService, home):
    canary = "QX7-canary-Wobbleton"
    seed(vault)
    vault.execute("UPDATE stays SET name = ? WHERE name = ?", [f"{canary} {CANARY_PLACE}", CANARY_PLACE])
    svc.remember(f"Met {canary} at the bakery", tags=[canary], metadata={"who": canary})
    svc.index()
    svc.flush()
    assert svc.search(canary, k=3).hits[0].memory.text.count(canary) == 1  # it really is indexed
    assert grep_tree(home, canary.encode()) == []
    vault.checkpoint()
    assert grep_tree(home, canary.encode()) == []
    assert vault.blob_path(INDEX_BLOB).exists() and vault.blob_path(REDACTED_BLOB).exists()
    vault.close()
    assert grep_tree(home, canary.encode()) == []
    with Vault.open(home, PASSPHRASE) as reopened:  # and it is still there, behind the key
        assert MemoryService(reopened, encoder=svc.encoder).search(canary, k=1).hits[0].memory.kind in ("note", "visit")


def test_a_large_subset_is_searched_through_a_bitmap_selector_or_scored_in_blocks_and_stays_exact(monkeypatch):
    monkeypatch.setattr(vindex, "STORE_EXACT_MAX", 0)  # IVF: always the lists with a selector
    monkeypatch.setattr(vindex, "EXACT_BLOCK", 100)  # flat: exact scores gathered 100 vectors at a time
    vecs, ids = _unit(3000), np.arange(3000, dtype=np.int64) * 7 + 1
    subset = ids[::3]
    for ivf in (False, True):
        ix = VectorIndex.new(32, ivf=ivf)
        ix.add(ids, vecs)
        assert ix.is_ivf == ivf
        got, _ = ix.search(vecs[300], 10, subset)
        truth = subset[np.argsort(-(vecs[::3] @ vecs[300]))[:10]]
        assert list(got) == list(truth)


def test_a_sealed_index_with_chunks_truncated_reordered_or_from_another_blob_fails_as_tampering(vault: Vault):
    ids = np.arange(12_000, dtype=np.int64) + 1
    ix = VectorIndex.new(64)
    ix.add(ids, _unit(12_000, 64))  # 3 MiB of float32: four sealed chunks
    vindex.save(vault, "probe", ix, {"dim": 64})
    vindex.save(vault, "other", ix, {"dim": 64})
    path = vault.blob_path("probe")
    good = path.read_bytes()
    header, chunks = split_sealed(good)
    assert len(chunks) == 4
    restored, head = vindex.load(vault, "probe")  # type: ignore[misc]
    assert head["dim"] == 64 and len(restored) == 12_000
    assert np.array_equal(restored.vectors(ids[:50]), ix.vectors(ids[:50]))
    _, theirs = split_sealed(vault.blob_path("other").read_bytes())
    for bad in (header + b"".join(chunks[:-1]),  # truncated at a chunk boundary
                header + b"".join(chunks[:2]),
                header + chunks[1] + chunks[0] + b"".join(chunks[2:]),  # reordered
                header + b"".join(chunks[:3]) + chunks[2] + chunks[3],  # a chunk repeated
                good + chunks[-1],  # appended
                header + chunks[0] + theirs[1] + b"".join(chunks[2:])):  # spliced from another sealed index
        path.write_bytes(bad)
        with pytest.raises(IntegrityError, match="probe.sealed failed its integrity check"):
            vindex.load(vault, "probe")
    path.write_bytes(good)
    assert len(vindex.load(vault, "probe")[0]) == 12_000  # type: ignore[index]


def test_above_the_threshold_exact_vectors_are_float16_on_disk_and_scores_stay_within_a_thousandth(vault: Vault):
    vecs, ids = _unit(400, 384), np.arange(400, dtype=np.int64) + 5
    ix = VectorIndex.new(384, ivf=True)
    ix.add(ids, vecs)
    assert np.abs(ix.scores_of(vecs[3], ids) - vecs @ vecs[3]).max() < 1e-3
    vindex.save(vault, "probe", ix, {"dim": 384})
    restored, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    on_disk = sum(p.stat().st_size for p in vault.blob_path("probe").parent.glob("probe*.sealed"))
    assert on_disk < 400 * 384 * 4  # float32 vectors alone would take more than the codes and the store
    assert np.array_equal(restored.vectors(ids), ix.vectors(ids))
    assert np.abs(restored.scores_of(vecs[3], ids) - vecs @ vecs[3]).max() < 1e-3


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    """Memory-like vectors: a few thousand topics, each memory a small perturbation of one."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3_000, d)).astype(np.float32)
    v = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.35, size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_above_the_ivf_threshold_recall_at_10_against_an_exact_scan_is_at_least_099():
    n = vindex.IVF_THRESHOLD + 10_000
    vecs, ids = _clustered(n + 200, 64, seed=11), np.arange(n, dtype=np.int64) * 3 + 1
    queries = vecs[n:]
    ix = VectorIndex.new(64)
    for lo in range(0, n, 20_000):  # grown in batches, switching to IVF on the way as in production
        ix.add(ids[lo : lo + 20_000], vecs[lo : min(n, lo + 20_000)])
    assert ix.is_ivf and len(ix) == n
    exact = np.argsort(-(queries @ vecs[:n].T), axis=1)[:, :10]
    recall = np.mean([len(set(ix.search(q, 10)[0].tolist()) & set(ids[t].tolist())) / 10
                      for q, t in zip(queries, exact, strict=True)])
    assert recall >= 0.99, recall


def test_a_small_subset_of_an_ivf_index_is_scored_exactly_and_skips_forgotten_vectors():
    vecs, ids = _unit(3000, 64, seed=4), np.arange(3000, dtype=np.int64) * 5 + 2
    ix = VectorIndex.new(64, ivf=True)
    ix.add(ids, vecs)
    subset = ids[::40]  # 75 vectors: scored exactly, not walked
    truth = subset[np.argsort(-(vecs[::40] @ vecs[80]))[:10]]
    got, scores = ix.search(vecs[80], 10, subset)
    assert list(got) == list(truth) and scores[0] == pytest.approx(1.0, abs=1e-3)
    ix.remove(ids[80:81])
    assert ids[80] not in ix.search(vecs[80], 10, subset)[0] and len(ix.search(vecs[80], 10, subset)[0]) == 10
