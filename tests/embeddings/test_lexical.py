"""BM25 over a real vault's memory texts scores as a plain Okapi BM25 written out in Python does (k1 = 1.2,
b = 0.75, Lucene's idf, the common-term rule), and keeps those scores through appends, deletions, a settle
and a snapshot round trip (uint16 term frequencies, the compact term dictionary)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from embeddings import lexical
from embeddings.lexical import BM25, K1, B
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
