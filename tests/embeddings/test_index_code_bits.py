"""The IVF index's codes: new indexes (a build past the threshold, a retraining, a rebuild) hold 4-bit codes;
one sealed with 8-bit codes opens and searches as it did until a rebuild; the map that scores a small
filter's codes by slot gives FAISS's own scores at both widths; recall@10 on the model's vectors holds."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from bench.synthetic_memories import texts
from embeddings import index as vindex
from embeddings.codemap import CodeMap
from embeddings.index import VectorIndex
from vault.errors import IntegrityError
from vault.store import Vault


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(300, d)).astype(np.float32)
    v = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.35, size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _built(bits: int, vecs: np.ndarray, ids: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> VectorIndex:
    """An IVF index built as the code does with IVF_CODE_BITS = bits (8: as indexes sealed before 4-bit)."""
    with monkeypatch.context() as m:
        m.setattr(vindex, "IVF_CODE_BITS", bits)
        ix = VectorIndex.new(vecs.shape[1], ivf=True)
        ix.add(ids, vecs)
    return ix


def test_a_new_ivf_index_holds_4_bit_codes_half_a_byte_a_dimension(monkeypatch):
    monkeypatch.setattr(vindex, "IVF_THRESHOLD", 500)
    vecs, ids = _clustered(600, 384, seed=1), np.arange(600, dtype=np.int64) + 1
    ix = VectorIndex.new(384)
    ix.add(ids[:500], vecs[:500])
    assert ix.code_bits is None and not ix.is_ivf  # exact below the threshold
    ix.add(ids[500:], vecs[500:])  # past it: built as IVF
    assert ix.code_bits == 4 and ix._ivf().code_size == 192
    assert int(ix._ivf().sq.qtype) == faiss.ScalarQuantizer.QT_4bit
    assert ix.search(vecs[550], 1)[0][0] == ids[550]


def test_a_retraining_or_a_tombstone_rebuild_of_an_8_bit_index_makes_it_4_bit(monkeypatch):
    vecs, ids = _clustered(4_001, 32, seed=2), np.arange(4_001, dtype=np.int64) + 1
    grown = _built(8, vecs[:1_000], ids[:1_000], monkeypatch)
    grown.add(ids[1_000:4_000], vecs[1_000:4_000])  # IVF_REGROW times: the same lists, the same codes
    assert grown.code_bits == 8 and grown._trained == 1_000
    grown.add(ids[4_000:], vecs[4_000:])  # one more: trained again
    assert grown.code_bits == 4 and grown._trained == 4_001 and grown._ivf().code_size == 16
    monkeypatch.setattr(vindex, "IVF_THRESHOLD", 500)  # rebuilt as IVF, not exact
    emptied = _built(8, vecs[:1_000], ids[:1_000], monkeypatch)
    emptied.remove(ids[:101])  # past TOMBSTONE_REBUILD
    assert emptied.tombstones == 0 and emptied.code_bits == 4 and len(emptied) == 899


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("dim", [32, 33])
def test_the_code_map_scores_every_code_as_faiss_own_scan_does(bits: int, dim: int, monkeypatch):
    """The map's score of each code (embeddings/codemap.py) against the distance FAISS's scan of every list
    reports for it, at both widths, and with an odd dimension (the last 4-bit byte holds one component)."""
    vecs, ids = _clustered(3_000, dim, seed=3), np.arange(3_000, dtype=np.int64)
    ix = _built(bits, vecs, ids, monkeypatch)
    ivf = ix._ivf()
    assert ix.code_bits == bits and ivf.code_size == (dim if bits == 8 else (dim + 1) // 2)
    params = faiss.SearchParametersIVF()
    params.nprobe = int(ivf.nlist)
    code_map = CodeMap(ivf)
    for q in _clustered(5, dim, seed=4):
        faiss_scores, slots = ivf.search(q.reshape(1, -1), 3_000, params=params)
        assert (slots[0] >= 0).all()
        pos, scores = code_map.scores(q, slots[0])
        assert np.array_equal(pos, slots[0])
        assert np.abs(scores - faiss_scores[0]).max() < 1e-5


@pytest.mark.parametrize("bits", [8, 4])
def test_a_small_filter_scored_by_its_codes_returns_what_an_index_of_the_subset_alone_returns(
        bits: int, monkeypatch):
    monkeypatch.setattr(vindex, "CODE_COST", 0)  # every filter past STORE_EXACT_MAX: its codes, by slot
    vecs, ids = _clustered(12_050, 32, seed=5), np.arange(12_000, dtype=np.int64) * 3 + 1
    queries, vecs = vecs[12_000:], vecs[:12_000]
    ix = _built(bits, vecs, ids, monkeypatch)
    pick = np.sort(np.random.default_rng(6).choice(12_000, 360, replace=False))
    alone = VectorIndex.new(32)  # exact, over the vectors as the store keeps them
    alone.add(ids[pick], vecs[pick].astype(np.float16))
    calls: list[int] = []
    real = ix._codes_search

    def counted(q: np.ndarray, k: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(pos))
        return real(q, k, pos)

    monkeypatch.setattr(ix, "_codes_search", counted)
    for q in queries:
        got, scores = ix.search(q, 10, ids[pick])
        want, exact = alone.search(q, 10)
        assert list(got) == list(want) and np.abs(scores - exact).max() < 1e-6
    assert calls == [360] * len(queries)


def test_an_index_sealed_with_8_bit_codes_opens_and_searches_as_before_until_a_rebuild(vault: Vault, monkeypatch):
    monkeypatch.setattr(vindex, "CODE_COST", 0)  # a filter past STORE_EXACT_MAX: its codes, by slot
    monkeypatch.setattr(vindex, "IVF_THRESHOLD", 1_000)  # a rebuild stays IVF
    vecs, ids = _clustered(5_120, 32, seed=7), np.arange(5_100, dtype=np.int64) * 2 + 1
    queries, vecs = vecs[5_100:], vecs[:5_100]
    ix = _built(8, vecs[:5_000], ids[:5_000], monkeypatch)
    vindex.save(vault, "probe", ix, {"dim": 32})
    ix.add(ids[5_000:], vecs[5_000:])  # sealed as a code file of 8-bit codes
    vindex.save(vault, "probe", ix, {"dim": 32})
    assert vault.blob_names("probe.codes.")
    subset = ids[::12]  # 425 vectors: scored by their codes
    assert len(subset) > vindex.STORE_EXACT_MAX
    before = [(ix.search(q, 10), ix.search(q, 10, subset)) for q in queries]
    assert vindex.IVF_CODE_BITS == 4
    opened, header = vindex.load(vault, "probe")  # type: ignore[misc]
    assert opened.code_bits == 8 and opened._ivf().code_size == 32 and "migrated" not in header
    for q, ((ids_all, s_all), (ids_sub, s_sub)) in zip(queries, before, strict=True):
        got, scores = opened.search(q, 10)
        assert np.array_equal(got, ids_all) and np.array_equal(scores, s_all)
        got, scores = opened.search(q, 10, subset)
        assert np.array_equal(got, ids_sub) and np.array_equal(scores, s_sub)
    opened.add(np.array([99_999]), queries[:1])  # an add keeps the codes as they are
    assert opened.code_bits == 8
    opened.rebuild()
    assert opened.code_bits == 4 and opened._ivf().code_size == 16 and len(opened) == 5_101
    vindex.save(vault, "probe", opened, header)
    again, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    assert again.code_bits == 4 and not vault.blob_names("probe.codes.")
    assert again.search(queries[0], 1)[0][0] == 99_999 and again.search(vecs[77], 1)[0][0] == ids[77]


@pytest.mark.parametrize("bits", [8, 4])
def test_recall_at_10_on_the_models_vectors_against_an_exact_scan_is_at_least_099(bits: int, encoder, monkeypatch):
    """Memory-like vectors from the real model: 400 synthetic memory texts embedded, each vector one of them
    plus a small perturbation (sigma 0.03 a dimension, as bench/bench_index.py's clustered set), so many
    near-duplicates compete for the top 10; the codes shortlist, the store re-ranks exactly."""
    real = np.asarray(encoder.encode(texts(400)), dtype=np.float32)
    rng = np.random.default_rng(8)
    n = 30_000
    x = real[rng.integers(0, len(real), n + 100)] + rng.normal(scale=0.03, size=(n + 100, real.shape[1]))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    queries, x = x[n:], x[:n]
    ids = np.arange(n, dtype=np.int64) + 1
    ix = _built(bits, x, ids, monkeypatch)
    assert ix.code_bits == bits
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :10] + 1
    sub = np.sort(rng.choice(ids, n // 10, replace=False))  # a 10% filter, through the lists
    exact_sub = sub[np.argsort(-(queries @ x[sub - 1].T), axis=1)[:, :10]]
    recall = np.mean([len(set(ix.search(q, 10)[0].tolist()) & set(t.tolist())) / 10
                      for q, t in zip(queries, exact, strict=True)])
    filtered = np.mean([len(set(ix.search(q, 10, sub)[0].tolist()) & set(t.tolist())) / 10
                        for q, t in zip(queries, exact_sub, strict=True)])
    assert recall >= 0.99 and filtered >= 0.99, (recall, filtered)


def test_an_index_sealed_with_codes_of_another_width_fails_with_the_rebuild_hint(vault: Vault, monkeypatch):
    vecs, ids = _clustered(1_000, 32, seed=9), np.arange(1_000, dtype=np.int64) + 1
    monkeypatch.setitem(vindex._QTYPES, 6, faiss.ScalarQuantizer.QT_6bit)
    ix = _built(6, vecs, ids, monkeypatch)
    vindex.save(vault, "probe", ix, {"dim": 32})
    monkeypatch.delitem(vindex._QTYPES, 6)
    with pytest.raises(IntegrityError, match="'probe' is not a lifevault vector index; run `lifevault index --rebuild`"):
        vindex.load(vault, "probe")
