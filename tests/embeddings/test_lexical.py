"""BM25 over a real vault's memory texts scores as a plain Okapi BM25 written out in Python does (k1 = 1.2,
b = 0.75, Lucene's idf, the common-term rule), and keeps those scores through appends, deletions, a settle
and a snapshot round trip (uint16 term frequencies, the compact term dictionary)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from embeddings import lexical
from embeddings.lexical import BM25, K1, B, narrow
from embeddings.service import MemoryService
from vault.store import Vault

BM25_BULK = lexical.BULK  # an append this large is merged at once
QUERIES = ("gym", "dentist appointment", "coffee at the café", "flight to Lisbon", "design review with Priya",
           "slack", "the", "zzzunknownzzz", "meeting meeting")


def _texts(vault: Vault) -> list[str]:
    return [t for (t,) in vault.query("SELECT text FROM memories ORDER BY memory_id")]


def _okapi(texts: list[str], query: str) -> dict[int, float]:
    """Okapi BM25 written out term by term, with the index's rule for common terms."""
    docs = [Counter(lexical.tokens(t)) for t in texts]
    n, avgdl = len(docs), sum(sum(d.values()) for d in docs) / len(docs)
    df = {t: sum(1 for d in docs if t in d) for t in dict.fromkeys(lexical.tokens(query))}
    present = [t for t, f in df.items() if f]
    rare = [t for t in present if df[t] <= lexical.COMMON_FRACTION * n]
    out: dict[int, float] = {}
    for t in rare or present:
        idf = math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5))
        for i, d in enumerate(docs):
            if t in d:
                dl = sum(d.values())
                out[i] = out.get(i, 0.0) + idf * d[t] * (K1 + 1) / (d[t] + K1 * (1 - B + B * dl / avgdl))
    return out


def _scores(bm: BM25, query: str) -> dict[int, float]:
    pos, s = bm.scores(query)
    return dict(zip(pos.tolist(), s.tolist(), strict=True))


def test_bm25_scores_a_real_vaults_texts_as_plain_okapi_bm25_does(indexed: MemoryService, vault: Vault):
    texts = _texts(vault)
    assert len(texts) > 50
    bm = BM25(texts)
    for q in QUERIES:
        mine, plain = _scores(bm, q), _okapi(texts, q)
        assert mine.keys() == plain.keys(), q
        assert all(math.isclose(mine[i], plain[i], rel_tol=1e-5) for i in plain), q
    assert any(_scores(bm, q) for q in QUERIES)


def test_a_bm25_restored_from_its_compacted_postings_scores_bit_for_bit_as_the_one_it_came_from(
        indexed: MemoryService, vault: Vault):
    texts = _texts(vault)
    bm = BM25(texts[:-5])
    bm.append(texts[-5:], merge=False)  # pending postings
    bm.kill([0, 3])
    bm.settle()
    keep = np.ones(len(texts), dtype=bool)
    keep[[0, 3]] = False
    new_pos = np.where(keep, np.cumsum(keep) - 1, -1)
    names, ptr, docs, tf, dl = bm.compacted(new_pos)
    back = BM25.restore(names, ptr, docs, tf.astype(np.uint16), dl)  # as the snapshot stores them
    assert back.term_count <= bm.term_count
    for q in QUERIES:
        a, b = bm.scores(q), back.scores(q)
        assert sorted(zip(new_pos[a[0]].tolist(), a[1].tolist(), strict=True)) == \
            sorted(zip(b[0].tolist(), b[1].tolist(), strict=True)), q


def test_a_query_of_only_unknown_terms_scores_no_document(indexed: MemoryService, vault: Vault):
    bm = BM25(_texts(vault))
    assert not len(bm.scores("zzzunknownzzz qqqxxq")[0]) and bm.specificity("zzzunknownzzz") == 0.0


def test_weights_from_the_cache_score_as_freshly_weighed_ones_and_the_cache_keeps_to_its_budget(
        indexed: MemoryService, vault: Vault, monkeypatch: pytest.MonkeyPatch):
    texts = _texts(vault)
    uncached = BM25(texts)
    monkeypatch.setattr(lexical, "WEIGHT_CACHE_BYTES", 0)  # every query weighs its terms afresh
    fresh = [_scores(uncached, q) for q in QUERIES]
    assert uncached._weights_bytes == 0
    monkeypatch.setattr(lexical, "WEIGHT_CACHE_BYTES", 600)  # a few terms' postings at most
    bm = BM25(texts)
    for _ in range(2):  # the second pass reads the terms still cached
        for q, scores in zip(QUERIES, fresh, strict=True):
            assert _scores(bm, q) == scores, q  # bit for bit
            assert 0 < bm._weights_bytes <= 600
    bm.append(texts[:BM25_BULK], merge=True)  # a merge re-weighs every posting: nothing stale is kept
    assert bm._weights_bytes == 0
    again = BM25(texts + texts[:BM25_BULK])
    for q in QUERIES:
        assert _scores(bm, q) == _scores(again, q), q


def _compacted_reference(bm: BM25, new_pos: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """compacted() as it read before it stopped materialising a term per posting: (names, ptr, docs, tf)."""
    keep = new_pos >= 0
    terms = np.repeat(np.arange(len(bm._ptr) - 1), np.diff(bm._ptr))
    held = keep[bm._docs]
    terms, docs, tf = terms[held], new_pos[bm._docs[held]], bm._tf[held]
    used = np.bincount(terms, minlength=len(bm._terms)) > 0
    terms = (np.cumsum(used) - 1)[terms]
    ptr = np.zeros(int(used.sum()) + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=len(ptr) - 1), out=ptr[1:])
    names = bm._terms.subset(used)
    return [names.term(i) for i in range(len(names))], ptr, docs.astype(np.int32), tf


def test_compacted_postings_are_the_per_posting_reference_with_dropped_documents_and_terms():
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for _ in range(2_000)]
    texts += ["solitary onlyhere", "onlyhere again"]  # terms that only dropped documents hold
    bm = BM25(texts)
    for dropped in ([], [len(texts) - 2, len(texts) - 1], rng.choice(len(texts), 700, replace=False).tolist()):
        keep = np.ones(len(texts), dtype=bool)
        keep[dropped] = False
        new_pos = np.full(len(texts), -1, dtype=np.int64)
        new_pos[keep] = rng.permutation(int(keep.sum()))  # any renumbering, as a snapshot's sort gives
        names, ptr, docs, tf, dl = bm.compacted(new_pos)
        want_names, want_ptr, want_docs, want_tf = _compacted_reference(bm, new_pos)
        assert [names.term(i) for i in range(len(names))] == want_names
        assert np.array_equal(ptr, want_ptr) and np.array_equal(docs, want_docs) and np.array_equal(tf, want_tf)
        assert docs.dtype == np.int32 and len(dl) == keep.sum()
        assert ("onlyhere" in want_names) == (not set(dropped) >= {len(texts) - 2, len(texts) - 1})


def _merged_reference(bm: BM25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """_merge() as it read before (every posting's term id, then a stable sort of all): (ptr, docs, tf)."""
    nterms = len(bm._terms)
    parts_t = [np.repeat(np.arange(len(bm._ptr) - 1), np.diff(bm._ptr))]
    parts_d, parts_f = [bm._docs.astype(np.int64)], [bm._tf]
    if bm._delta:
        d = np.asarray([(t, doc, c) for t, posts in bm._delta.items() for doc, c in posts], dtype=np.int64)
        parts_t.append(d[:, 0])
        parts_d.append(d[:, 1])
        parts_f.append(d[:, 2].astype(np.float32))
    terms, docs = np.concatenate(parts_t), np.concatenate(parts_d)
    tf = np.concatenate(parts_f).astype(np.float32)
    keep = bm._alive[docs]
    terms, docs, tf = terms[keep], docs[keep], tf[keep]
    order = np.argsort(terms, kind="stable")
    ptr = np.zeros(nterms + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=nterms), out=ptr[1:])
    return ptr, docs[order].astype(np.int32), narrow(tf[order])


def test_folding_pending_postings_in_is_the_stable_sort_it_replaced_with_dead_documents_and_new_terms():
    rng = np.random.default_rng(9)
    words = [f"w{i}" for i in range(200)]

    def texts(n: int, extra: str = "") -> list[str]:
        return [" ".join(rng.choice(words, size=int(rng.integers(1, 10)))) + extra for _ in range(n)]

    bm = BM25(texts(1_500))
    for round_ in range(3):
        bm.append(texts(40, f" fresh{round_} " * (round_ + 1)) + ["w1 " * 300], merge=False)  # new terms; tf > 255
        bm.kill(rng.choice(len(bm._dl), 60, replace=False))
        want = _merged_reference(bm)  # reads, changes nothing
        bm._merge()
        assert not bm._delta
        assert np.array_equal(bm._ptr, want[0]) and np.array_equal(bm._docs, want[1])
        assert bm._tf.dtype == want[2].dtype and np.array_equal(bm._tf, want[2])
