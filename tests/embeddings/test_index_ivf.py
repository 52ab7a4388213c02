"""The IVF index above the threshold: its sealed vector store (appends, deletes, tampering), filtered
search against the subset alone, and indexes sealed as HNSW before."""

from __future__ import annotations

import json
import logging
import struct

import faiss
import numpy as np
import pytest

from embeddings import index as vindex
from embeddings import vectorstore
from embeddings.codemap import CodeMap
from embeddings.index import VectorIndex
from vault.errors import IntegrityError
from vault.store import Vault


def _unit(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _segments(vault: Vault, name: str) -> set[str]:
    return set(vault.blob_names(f"{name}.vec."))


def test_an_add_after_a_save_seals_a_small_segment_and_leaves_the_others_untouched(vault: Vault, monkeypatch):
    monkeypatch.setattr(vectorstore, "SEGMENT_RECORDS", 1_000)
    vecs, ids = _unit(3_001), np.arange(3_001, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids[:3_000], vecs[:3_000])
    vindex.save(vault, "probe", ix, {"dim": 32})
    first = _segments(vault, "probe")
    assert len(first) == 3
    before = {n: vault.blob_path(n).read_bytes() for n in first}
    ix.add(ids[3_000:], vecs[3_000:])
    vindex.save(vault, "probe", ix, {"dim": 32})
    after = _segments(vault, "probe")
    assert first < after and len(after) == 4  # one new segment, holding one vector
    assert all(vault.blob_path(n).read_bytes() == data for n, data in before.items())
    assert vault.open_records(next(iter(after - first))).count == 1
    restored, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    assert len(restored) == 3_001 and restored.search(vecs[3_000], 1)[0][0] == ids[3_000]


def test_a_delete_rewrites_only_its_segment_under_a_new_name_and_the_old_file_is_gone(vault: Vault, monkeypatch):
    monkeypatch.setattr(vectorstore, "SEGMENT_RECORDS", 1_000)
    vecs, ids = _unit(3_000), np.arange(3_000, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids, vecs)
    vindex.save(vault, "probe", ix, {"dim": 32})
    first = _segments(vault, "probe")
    ix.remove(ids[1_500:1_501])
    vindex.save(vault, "probe", ix, {"dim": 32})
    after = _segments(vault, "probe")
    assert len(first - after) == 1 and len(after - first) == 1 and len(after) == 3
    restored, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    assert not restored._store.rows(np.array([1_500])).any()
    assert ids[1_500] not in restored.search(vecs[1_500], 10)[0]


def test_deletes_across_segments_are_sealed_a_block_at_a_time_and_every_other_vector_survives(vault: Vault,
                                                                                               monkeypatch):
    """Resealing streams (SEAL_BLOCK records at a time, blocks straddling the new files' bounds) rather than
    holding the store whole: what comes back is every vector as it was, the deleted ones zero."""
    monkeypatch.setattr(vectorstore, "SEGMENT_RECORDS", 1_000)
    monkeypatch.setattr(vectorstore, "SEAL_BLOCK", 333)
    vecs, ids = _unit(3_600), np.arange(3_600, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids[:3_000], vecs[:3_000])
    vindex.save(vault, "probe", ix, {"dim": 32})
    ix.add(ids[3_000:], vecs[3_000:])  # in memory, not sealed yet: merged into the resealed tail
    gone = np.array([0, 332, 333, 999, 1_000, 1_998, 2_500, 2_999, 3_001, 3_599])
    ix.remove(ids[gone])
    vindex.save(vault, "probe", ix, {"dim": 32})
    restored, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    store = restored._store
    assert store is not None and len(store) == 3_600
    assert sum(vault.open_records(n).count for n in _segments(vault, "probe")) == 3_600
    got = store.rows(np.arange(3_600))
    want = vecs.astype(np.float16).astype(np.float32)
    want[gone] = 0
    assert np.array_equal(got, want)


def test_a_tampered_or_missing_store_segment_fails_as_tampering_with_the_rebuild_hint(vault: Vault):
    vecs, ids = _unit(2_000), np.arange(2_000, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids, vecs)
    vindex.save(vault, "probe", ix, {"dim": 32})
    (segment,) = _segments(vault, "probe")
    path = vault.blob_path(segment)
    good = path.read_bytes()
    path.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    restored, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    with pytest.raises(IntegrityError, match=f"{segment}.sealed failed its integrity check"):
        restored.vectors(ids[:1])
    path.write_bytes(good[:-1])
    with pytest.raises(IntegrityError, match=f"{segment}.sealed failed its integrity check"):
        vindex.load(vault, "probe")
    path.unlink()
    with pytest.raises(IntegrityError, match="'probe' is not a lifevault vector index; run `lifevault index --rebuild`"):
        vindex.load(vault, "probe")


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(500, d)).astype(np.float32)
    v = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.35, size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("share", [0.01, 0.08, 0.28])
@pytest.mark.parametrize("path", ["chosen", "codes", "lists"])
def test_a_filtered_ivf_search_gives_what_an_index_of_the_subset_alone_gives(share: float, path: str, monkeypatch):
    """Scoring the subset's codes by slot (the path of a 1% filter here), or probing every list for a
    selective filter: exactly the subset's own answer. Probing only the nearest lists holding enough of a
    broad one (28% here, through the lists) still finds its top 10."""
    if path != "chosen":
        monkeypatch.setattr(vindex, "CODE_COST", 0 if path == "codes" else 10**9)
    vecs, ids = _clustered(40_200, 32, seed=3), np.arange(40_000, dtype=np.int64) * 2 + 1
    queries, vecs = vecs[40_000:], vecs[:40_000]
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids, vecs)
    pick = np.sort(np.random.default_rng(4).choice(40_000, int(share * 40_000), replace=False))
    alone = VectorIndex.new(32)  # an exact index of only what the filter lets through, as the store keeps it
    alone.add(ids[pick], vecs[pick].astype(np.float16))
    assert ix.is_ivf and not alone.is_ivf and len(pick) > vindex.STORE_EXACT_MAX
    by_codes = len(pick) * vindex.CODE_COST < ix._probed(len(pick))
    every_list = vindex.IVF_NPROBE * vindex.FILTER_PROBE_MARGIN / share >= ix._ivf().nlist
    assert by_codes == (path == "codes" or (path == "chosen" and share == 0.01))
    found = []
    for q in queries:
        got, scores = ix.search(q, 10, ids[pick])
        want, exact = alone.search(q, 10)
        assert set(got) <= set(ids[pick].tolist())
        if by_codes or every_list:
            assert list(got) == list(want) and np.abs(scores - exact).max() < 1e-6
        found.append(len(set(got) & set(want)) / 10)
    assert every_list == (share < 0.28) and np.mean(found) >= 0.99


def test_a_subset_just_under_the_code_cost_bound_is_scored_by_its_codes_and_one_more_through_the_lists(
        monkeypatch):
    vecs, ids = _unit(9_000, seed=8), np.arange(9_000, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids, vecs)
    calls: list[tuple[str, int]] = []
    for name in ("_codes_search", "_ivf_search"):
        real = getattr(ix, name)
        monkeypatch.setattr(ix, name, lambda q, k, pos, real=real, name=name: calls.append((name, len(pos)))
                            or real(q, k, pos))
    bound = -(-len(ix) // vindex.CODE_COST)  # the smallest subset whose codes cost as much as every list
    assert ix._probed(bound) == len(ix) and bound > vindex.STORE_EXACT_MAX
    for size in (bound - 1, bound):
        got, _ = ix.search(vecs[7], 10, ids[:size])
        assert got[0] == ids[7]
    assert calls == [("_codes_search", bound - 1), ("_ivf_search", bound)]


@pytest.mark.parametrize("bits", [8, 4])
def test_the_code_map_follows_adds_and_deletes_after_a_filtered_search(bits: int, monkeypatch):
    """The map of where each code sits (8-bit, or 4-bit) re-reads the lists an add or a delete touched (FAISS
    moves a list's codes when it grows, entries within it on a delete): a vector added or deleted after a
    filtered search is found, or not, by the next one, and the map is the one a fresh pass over the lists
    builds."""
    monkeypatch.setattr(vindex, "IVF_CODE_BITS", bits)
    vecs, ids = _clustered(12_000, 32, seed=9), np.arange(12_000, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids[:10_000], vecs[:10_000])
    assert ix.code_bits == bits
    subset = ids[::40]
    assert len(subset) * vindex.CODE_COST < ix._probed(len(subset))
    ix.search(vecs[0], 10, subset)
    ix.add(ids[10_000:], vecs[10_000:])  # every list grows
    for probe in (10_000, 11_960):
        assert ix.search(vecs[probe], 1, subset)[0][0] == ids[probe]
    ix.remove(ids[10_000:10_001])
    assert ids[10_000] not in ix.search(vecs[10_000], 10, subset)[0]
    assert ix.search(vecs[11_960], 1, subset)[0][0] == ids[11_960]
    kept, fresh = ix._code_map, CodeMap(ix._ivf())  # re-read list by list, not rebuilt: as a fresh map
    n = int(ix._ivf().ntotal)
    assert kept is not None and np.array_equal(kept.which[:n], fresh.which[:n]) and (kept.which[n:] == -1).all()
    assert np.array_equal(kept.addr[:n], fresh.addr[:n])


def _seal_as_hnsw(vault: Vault, name: str, ids: np.ndarray, vecs: np.ndarray, *, fp16: bool) -> None:
    """An index as the code before IVF sealed it: IndexIDMap2 over HNSW (float16 or float32 storage)."""
    d = vecs.shape[1]
    inner = (faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, 16, faiss.METRIC_INNER_PRODUCT) if fp16
             else faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT))
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(vecs, ids)
    head = json.dumps({"dim": d, "model": "m", "tombstones": 0}).encode()
    with vault.blob_writer(name) as sink:
        sink(b"LVMIDX1\n" + struct.pack(">I", len(head)) + head)
        faiss.write_index(index, faiss.PyCallbackIOWriter(sink, 1 << 20))


@pytest.mark.parametrize("fp16", [True, False])
def test_an_index_sealed_as_hnsw_opens_rebuilt_as_ivf_with_a_log_line_and_the_same_vectors(
        vault: Vault, monkeypatch, caplog, fp16: bool):
    monkeypatch.setattr(vindex, "IVF_THRESHOLD", 1_000)
    vecs, ids = _unit(1_500), np.arange(1_500, dtype=np.int64) * 3 + 7
    _seal_as_hnsw(vault, "probe", ids, vecs, fp16=fp16)
    with caplog.at_level(logging.WARNING, logger="embeddings.index"):
        ix, header = vindex.load(vault, "probe")  # type: ignore[misc]
    assert "'probe' is HNSW (sealed before IVF): rebuilding it from its 1500 vectors" in caplog.text
    assert header["migrated"] is True and header["model"] == "m"
    assert ix.is_ivf and sorted(ix.ids().tolist()) == ids.tolist()
    assert np.abs(ix.vectors(ids) - vecs).max() < 1e-3
    assert ix.search(vecs[9], 1)[0][0] == ids[9]
    vindex.save(vault, "probe", ix, header)  # sealed again: the next open is plain IVF
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="embeddings.index"):
        again, head = vindex.load(vault, "probe")  # type: ignore[misc]
    assert "HNSW" not in caplog.text and again.is_ivf and len(again) == 1_500


def test_an_hnsw_index_below_the_threshold_opens_as_an_exact_one(vault: Vault):
    vecs, ids = _unit(300), np.arange(300, dtype=np.int64)
    _seal_as_hnsw(vault, "probe", ids, vecs, fp16=True)
    ix, header = vindex.load(vault, "probe")  # type: ignore[misc]
    assert header["migrated"] is True and ix.stats.kind == "flat" and len(ix) == 300


def test_the_service_reseals_an_index_it_opened_as_hnsw_at_its_next_flush(vault: Vault, indexed, encoder):
    from embeddings.service import INDEX_BLOB, MemoryService

    before, header = vindex.load(vault, INDEX_BLOB)  # type: ignore[misc]
    ids = before.ids()
    vecs = before.vectors(ids)
    head = {k: v for k, v in header.items() if k not in ("kind", "tombstones")}
    d = vecs.shape[1]
    index = faiss.IndexIDMap2(faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, 16, faiss.METRIC_INNER_PRODUCT))
    index.add_with_ids(vecs, ids)
    blob = json.dumps(head | {"tombstones": 0}).encode()
    with vault.blob_writer(INDEX_BLOB) as sink:
        sink(b"LVMIDX1\n" + struct.pack(">I", len(blob)) + blob)
        faiss.write_index(index, faiss.PyCallbackIOWriter(sink, 1 << 20))
    fresh = MemoryService(vault, encoder=encoder)
    assert "Café Nero" in fresh.search("Café Nero", k=1).hits[0].memory.text
    fresh.flush()
    again, head_now = vindex.load(vault, INDEX_BLOB)  # type: ignore[misc]
    assert "migrated" not in head_now and head_now["kind"] == "flat" and len(again) == len(ids)


def test_a_subset_of_store_exact_max_is_scored_from_the_store_and_one_more_goes_through_the_lists(monkeypatch):
    vecs, ids = _unit(3_000, seed=6), np.arange(3_000, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids, vecs)
    through_lists = []
    real = ix._ivf_search
    monkeypatch.setattr(ix, "_ivf_search", lambda q, k, pos: through_lists.append(len(pos)) or real(q, k, pos))
    at, over = ids[: vindex.STORE_EXACT_MAX], ids[: vindex.STORE_EXACT_MAX + 1]
    got, _ = ix.search(vecs[5], 10, at)
    assert through_lists == [] and got[0] == ids[5]
    got, _ = ix.search(vecs[5], 10, over)
    assert through_lists == [vindex.STORE_EXACT_MAX + 1] and got[0] == ids[5]


def test_the_lists_are_trained_again_once_the_index_grows_past_ivf_regrow_times_its_training_set():
    vecs, ids = _unit(4_001, seed=7), np.arange(4_001, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids[:1_000], vecs[:1_000])
    ix.add(ids[1_000:4_000], vecs[1_000:4_000])  # exactly IVF_REGROW times: the same lists
    assert ix._trained == 1_000 and ix._ivf().nlist == 25
    ix.add(ids[4_000:], vecs[4_000:])  # one more: trained again on all of them
    assert ix._trained == 4_001 and ix._ivf().nlist == 100 and len(ix) == 4_001
    assert ix.search(vecs[4_000], 1)[0][0] == ids[4_000]
