"""A search embeds its query on the query thread while BM25 runs; the sealed vectors it reads stay decrypted in
a bounded cache that a delete empties of the slot; a query far from every memory probes more lists."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import faiss
import numpy as np
import pytest

from embeddings import index as vindex
from embeddings import lexical, retrieve, vectorstore
from embeddings.encoder import Encoder
from embeddings.index import VectorIndex
from embeddings.redaction import Redaction
from tests.embeddings.helpers import notes_catalog
from vault.store import Vault

N, D = 3_000, 32
WORDS = ["coffee", "roadmap", "gym", "lisbon", "dentist", "invoice", "piano", "ferry"]


def _unit(n: int, d: int = D, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _catalog(n: int = N) -> retrieve.Catalog:
    at = datetime(2025, 3, 1, tzinfo=UTC)
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, 3)) + f" item{i}" for i in range(n)]
    return notes_catalog(texts, at)


def _sealed(vault: Vault, vecs: np.ndarray) -> VectorIndex:
    """An IVF index whose exact vectors are all in sealed segments (saved, then loaded)."""
    ix = VectorIndex.new(D, ivf=True)
    ix.add(np.arange(1, len(vecs) + 1, dtype=np.int64), vecs)
    vindex.save(vault, "probe", ix, {"dim": D})
    loaded = vindex.load(vault, "probe")
    assert loaded is not None
    return loaded[0]


class _Watched(Future):
    """Calls `note` when rank asks for the vector (to see what was read before it was there)."""

    def __init__(self, note: Callable[[], None]) -> None:
        super().__init__()
        self._note = note

    def result(self, timeout: float | None = None) -> np.ndarray:
        self._note()
        return super().result(timeout)


def test_a_query_vector_still_on_its_way_ranks_exactly_as_one_already_there(vault: Vault,
                                                                             monkeypatch: pytest.MonkeyPatch):
    vecs, cat = _unit(N), _catalog()
    query = vecs[7] + 0.5 * vecs[8]
    query /= np.linalg.norm(query)
    index = _sealed(vault, vecs)
    order: list[str] = []
    current: list[Future[np.ndarray]] = []
    scores = lexical.BM25.scores

    def noted(self: lexical.BM25, *args: Any, **kwargs: Any) -> Any:
        order.append("bm25, vector " + ("there" if current[0].done() else "on its way"))
        return scores(self, *args, **kwargs)
    monkeypatch.setattr(lexical.BM25, "scores", noted)
    ranked = {}
    for name in ("there", "on its way"):
        order.clear()
        pending = _Watched(lambda: order.append("vector awaited"))
        current[:] = [pending]
        threading.Timer(0.2, pending.set_result, args=(query,)).start()
        if name == "there":
            Future.result(pending)
        ranked[name] = retrieve.rank(cat, index, None, pending, "coffee roadmap gym", k=10,
                                     filters=retrieve.Filters(), redaction=Redaction.OWNER)
        assert order == [f"bm25, vector {name}", "vector awaited"]  # BM25 first, the vector taken after it
    assert ranked["there"].ids == ranked["on its way"].ids
    assert ranked["there"].fused == ranked["on its way"].fused
    assert ranked["there"].signals == ranked["on its way"].signals


def test_the_query_thread_gives_the_vector_encode_query_gives():
    enc = Encoder()
    soon = enc.encode_query_soon("when did I leave the ferry in Lisbon?")
    vec = soon.result(timeout=60)
    assert vec.shape == (1, 384) and not vec.flags.writeable
    assert np.array_equal(vec, enc.encode_query("when did I leave the ferry in Lisbon?"))
    assert enc.encode_query_soon("when did I leave the ferry in Lisbon?").done()  # from the cache


def test_cached_vectors_equal_the_sealed_ones_and_a_zeroed_slot_leaves_the_cache(vault: Vault):
    vecs = _unit(N)
    index = _sealed(vault, vecs)
    store = index._store
    assert store is not None
    slots = np.array([5, 17, 2_999, 5])
    first = store.rows(slots)  # read from the segments, then kept
    assert all(int(s) in store._decrypted for s in slots)
    assert np.array_equal(store.rows(slots), first)
    assert np.allclose(first, vecs[slots], atol=2e-3)  # float16 as stored
    store.zero(np.array([17]))
    assert 17 not in store._decrypted
    assert not store.rows(np.array([17])).any()  # destroyed, not served from memory


def test_the_cache_holds_its_byte_budget_and_lets_the_least_recent_go(vault: Vault, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(vectorstore, "ROW_CACHE_BYTES", 10 * D * 2)  # ten float16 vectors
    index = _sealed(vault, _unit(N))
    store = index._store
    assert store is not None
    store.rows(np.arange(10))
    store.rows(np.array([0]))  # 0 used again: 1 is now the least recent
    store.rows(np.arange(10, 15))
    held = [s for s in range(15) if s in store._decrypted]
    assert held == [0, *range(6, 15)]
    assert store._decrypted._rows.nbytes == 10 * D * 2


def test_a_cache_churned_past_its_budget_serves_only_the_stored_vectors(vault: Vault, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(vectorstore, "ROW_CACHE_BYTES", 64 * D * 2)
    vecs = _unit(N)
    store = _sealed(vault, vecs)._store
    assert store is not None
    rng = np.random.default_rng(3)
    for _ in range(60):  # random shortlists, many more slots than the cache holds
        slots = rng.choice(N, size=int(rng.integers(1, 100)), replace=True)
        assert np.allclose(store.rows(slots), vecs[slots], atol=2e-3)
        assert len(store._decrypted._row_of) <= 64
    held = np.array(sorted(store._decrypted._row_of))
    assert np.allclose(store.rows(held), vecs[held], atol=2e-3)


def test_a_query_far_from_every_memory_probes_more_lists_and_finds_more_of_its_top_10(monkeypatch: pytest.MonkeyPatch):
    """Random vectors in 384 dimensions: no query is near any memory (every cosine under ~0.25), so its ten best
    sit in lists the 32 nearest centroids miss. Such a query probes WEAK_NPROBE lists as well."""
    vecs, queries = _unit(20_000, d=384, seed=5), _unit(60, d=384, seed=6)
    index = VectorIndex.new(384, ivf=True)
    index.add(np.arange(1, 20_001, dtype=np.int64), vecs)
    truth = [set((np.argsort(-(vecs @ q))[:10] + 1).tolist()) for q in queries]

    def recall() -> float:
        return float(np.mean([len(set(index.search(q, 10)[0].tolist()) & t) / 10 for q, t in zip(queries, truth,
                                                                                                  strict=True)]))
    assert vindex._kth(vecs @ queries[0], vindex.WEAK_AT) < vindex.WEAK_MATCH  # far from every memory
    widened = recall()
    monkeypatch.setattr(vindex, "WEAK_MATCH", -1.0)  # never widen
    narrow = recall()
    assert widened > narrow + 0.1 and widened > 0.5


def test_a_query_near_ten_memories_probes_only_the_nearest_lists(monkeypatch: pytest.MonkeyPatch):
    vecs = _unit(20_000, d=384, seed=5)
    near = vecs[0] + 0.05 * _unit(10, d=384, seed=7)  # ten memories within a cosine of ~0.999 of the query
    vecs[1:11] = near / np.linalg.norm(near, axis=1, keepdims=True)
    index = VectorIndex.new(384, ivf=True)
    index.add(np.arange(1, 20_001, dtype=np.int64), vecs)
    probes: list[int] = []
    search = faiss.IndexIVFScalarQuantizer.search

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        probes.append(int(kwargs["params"].nprobe))
        return search(self, *args, **kwargs)
    monkeypatch.setattr(faiss.IndexIVFScalarQuantizer, "search", counted)
    found, _ = index.search(vecs[0], 10)
    assert probes == [vindex.IVF_NPROBE] and set(found.tolist()) <= set(range(1, 12))  # the query and its ten
    probes.clear()
    index.search(_unit(1, d=384, seed=8)[0], 10)  # a stranger: widened
    assert probes == [vindex.IVF_NPROBE, vindex.WEAK_NPROBE]


def test_a_put_of_cached_and_new_slots_evicts_only_room_for_the_new_ones() -> None:
    cache = vectorstore._Decrypted(D, 64 * D * 2)
    rows = np.ones((72, D), dtype=np.float16)
    cache.put(np.arange(64), rows[:64])
    cache.put(np.arange(56, 72), rows[56:72])  # 8 already held (now the newest), 8 new
    held = [s for s in range(72) if s in cache]
    assert len(held) == 64 and set(range(56, 72)) <= set(held)  # full: no row was evicted for nothing
    assert held[:48] == list(range(8, 56))  # the 8 least recent went
