"""Queries and a note's few texts go through the numpy forward (float32, the model's own maths); an indexing
run's many texts through the model in its dtype; the two agree to bfloat16 rounding."""

from __future__ import annotations

import numpy as np

from embeddings.encoder import LEAN_MAX_TEXTS, Encoder, _query_forward, bf16_supported, load_model

TEXTS = ["when did I last see Dr. Lee?", "gym", "What did I do the weekend I was in Lisbon? " * 3,
         "how much time did I spend on YouTube after 11pm last month", "café Nero, King's Rd — 9:05", "x" * 2000]


def test_a_query_vector_matches_the_indexed_vector_of_the_same_text() -> None:
    enc = Encoder()
    bulk = TEXTS * (LEAN_MAX_TEXTS // len(TEXTS) + 1)  # more than a note's write: the model embeds them
    assert len(bulk) > LEAN_MAX_TEXTS and enc.forward_dtype(len(bulk)) == enc.dtype
    indexed = enc.encode(bulk)[: len(TEXTS)]
    queried = np.concatenate([enc.encode_query(t) for t in TEXTS])
    floor = 0.9998 if enc.dtype == "bfloat16" else 0.99999
    assert (indexed * queried).sum(axis=1).min() > floor
    assert not enc.encode_query(TEXTS[0]).flags.writeable  # cached vectors are shared: read-only


def test_a_notes_few_texts_are_the_models_float32_vectors_whatever_the_batch() -> None:
    enc = Encoder()
    reference = load_model().encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert enc.forward_dtype(len(TEXTS)) == "float32"
    few = enc.encode(TEXTS)  # a note's write: the numpy forward, sorted by length and padded in groups
    assert few.shape == (len(TEXTS), 384) and few.dtype == np.float32
    assert (few * reference).sum(axis=1).min() > 0.99999
    alone = np.concatenate([enc.encode([t]) for t in TEXTS])
    assert (few * alone).sum(axis=1).min() > 0.99999
    assert enc.encode([]).shape == (0, 384)


def test_the_numpy_forward_serves_up_to_its_bound_and_the_model_past_it() -> None:
    enc = Encoder()
    assert enc.forward_dtype(LEAN_MAX_TEXTS) == "float32"
    assert enc.forward_dtype(LEAN_MAX_TEXTS + 1) == enc.dtype
    asked = Encoder(dtype="bfloat16")  # a dtype asked for is the dtype of every call
    assert asked.forward_dtype(1) == "bfloat16"


def test_the_bfloat16_label_is_read_from_the_cpu_as_torch_reads_it() -> None:
    import torch

    from embeddings import encoder

    flags = encoder._cpu_flags()
    assert flags is not None  # Linux, x86: the test machine
    assert (encoder._BF16_FLAGS <= flags) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) == bf16_supported()


def test_queries_embedded_together_get_the_vectors_they_get_alone() -> None:
    from concurrent.futures import ThreadPoolExecutor

    batcher = _query_forward("float32")
    texts = [f"{t} {i}" for i in range(4) for t in TEXTS[:4]]
    with ThreadPoolExecutor(8) as pool:  # concurrent callers: batched by the encoder thread
        concurrent = np.concatenate(list(pool.map(batcher, texts)))
    sequential = np.concatenate([batcher(t) for t in texts])
    assert concurrent.shape == (len(texts), 384)
    assert (concurrent * sequential).sum(axis=1).min() > 0.99999


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
