"""The query fast path reproduces the model: same vectors (to bfloat16 rounding) as sentence-transformers."""

from __future__ import annotations

import numpy as np

from embeddings.encoder import Encoder, _query_forward, _QueryForward, load_model

TEXTS = ["when did I last see Dr. Lee?", "gym", "What did I do the weekend I was in Lisbon? " * 3,
         "how much time did I spend on YouTube after 11pm last month", "café Nero, King's Rd — 9:05", "x" * 2000]


def test_the_query_path_is_the_model_itself() -> None:
    model = load_model()
    assert _QueryForward.supports(model)
    reference = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    for dtype, floor in (("float32", 0.999999), ("bfloat16", 0.9998)):
        got = np.concatenate([_query_forward(dtype)(t) for t in TEXTS])
        assert got.shape == (len(TEXTS), 384)
        cos = (got * reference).sum(axis=1)
        assert cos.min() > floor, (dtype, cos)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_a_query_vector_matches_the_indexed_vector_of_the_same_text() -> None:
    enc = Encoder()
    indexed = enc.encode(TEXTS)
    queried = np.concatenate([enc.encode_query(t) for t in TEXTS])
    assert (indexed * queried).sum(axis=1).min() > 0.9998
    assert not enc.encode_query(TEXTS[0]).flags.writeable  # cached vectors are shared: read-only


def test_queries_embedded_together_get_the_vectors_they_get_alone() -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = load_model()
    for dtype, floor in (("float32", 0.99999), ("bfloat16", 0.9998)):
        forward = _QueryForward(model, dtype)
        alone = np.concatenate([forward([t]) for t in TEXTS])
        together = forward(list(TEXTS))  # padded to the longest and masked
        assert (alone * together).sum(axis=1).min() > floor, dtype
    batcher = _query_forward("bfloat16")
    texts = [f"{t} {i}" for i in range(4) for t in TEXTS[:4]]
    with ThreadPoolExecutor(8) as pool:  # concurrent callers: batched by the encoder thread
        concurrent = np.concatenate(list(pool.map(batcher, texts)))
    sequential = np.concatenate([batcher(t) for t in texts])
    assert concurrent.shape == (len(texts), 384)
    assert (concurrent * sequential).sum(axis=1).min() > 0.9998


def test_indexing_shares_the_batches_between_workers_on_one_intra_op_thread_each() -> None:
    import threading

    import torch

    texts = [f"Used app {i} on day {i % 7}: {i % 50} min " * (1 + i % 5) for i in range(200)]
    seen: set[tuple[str, int]] = set()

    def progress(_n: int) -> None:
        seen.add((threading.current_thread().name.split("_")[0], torch.get_num_threads()))

    before = torch.get_num_threads()
    shared = Encoder(workers=2, max_batch=8).encode(texts, progress=progress)
    alone = Encoder(workers=1, max_batch=8).encode(texts)
    assert seen == {("lifevault-encode", 1)}  # the pool's threads, one intra-op thread each
    assert torch.get_num_threads() == before  # the caller's setting is left alone
    assert np.allclose(shared, alone, atol=1e-6)  # the same batches, the same vectors, whoever ran them
    assert np.allclose(np.linalg.norm(shared, axis=1), 1.0, atol=1e-5)


def test_a_serving_process_embeds_queries_through_the_model_forward_with_the_same_vectors() -> None:
    import embeddings.encoder as enc

    encoder = Encoder()
    text = "when did I last see Dr Lee at the surgery"
    before = enc._serving  # a warmed API server earlier in this process may have switched it on
    enc._serving = False
    try:
        enc._query_vector.cache_clear()
        lean_vec = encoder.encode_query(text)
        encoder.serve_queries()
        assert enc._serving
        served = encoder.encode_query(text)
        assert enc._query_vector.cache_info().currsize == 2  # a second vector, not the numpy one from the cache
    finally:
        enc._serving = before
    cos = float((lean_vec @ served.T).item())
    assert cos > 0.9998
