"""Query embedding: the numpy forward (embeddings/lean.py) every search uses, against the model itself.

    python -m bench.bench_query [--queries 300] [--rounds 2] [--min-tokens 5] [--max-tokens 15]

Distinct synthetic queries (bench/synthetic_memories.py) of 5-15 tokens, one at a time, with one BLAS
thread and one torch thread (as the server's query thread runs). Paths, in blocks of all queries, each
round (ABCDABCD): the numpy forward with its half-precision native products (what serves, where the CPU runs
them: embeddings/_gemm.c) and with numpy's float32 products; sentence-transformers' encode([q]) in bfloat16
and in float32 (the model with its wrappers). Wall and this thread's CPU time per query, p50 / p95, and each
path's smallest cosine to the float32 model's vectors.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from bench.synthetic_memories import queries
from embeddings.encoder import load_model, model_path
from embeddings.lean import LeanEncoder


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--min-tokens", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=15)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    lean = LeanEncoder(model_path())
    lean32 = LeanEncoder(model_path(), half=False)
    model = load_model()
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    pool = list(dict.fromkeys(queries(args.queries * 10)))
    qs = [q for q, n in zip(pool, lean.count_tokens(pool), strict=True)
          if args.min_tokens <= n <= args.max_tokens][: args.queries]
    lens = lean.count_tokens(qs)
    print(f"{len(qs)} queries, tokens p50 {np.median(lens):.0f} (min {min(lens)}, max {max(lens)})")

    def st(m) -> Callable[[list[str]], np.ndarray]:  # noqa: ANN001 - a SentenceTransformer
        def run(texts: list[str]) -> np.ndarray:
            with torch.inference_mode():
                return m.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return run

    paths: dict[str, Callable[[list[str]], np.ndarray]] = {
        f"numpy, {'half-precision' if lean.half else 'float32 (no native)'} products": lean,
        "numpy, float32 products": lean32, "model bfloat16": st(bf16), "model float32": st(model)}
    wall: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    with threadpool_limits(1, "blas"):
        for f in paths.values():
            for q in qs[:20]:
                f([q])
        for _ in range(args.rounds):
            for name, f in paths.items():
                for q in qs:
                    t, c = time.perf_counter(), time.thread_time()
                    f([q])
                    cpu[name].append((time.thread_time() - c) * 1e3)
                    wall[name].append((time.perf_counter() - t) * 1e3)
        reference = model.encode(qs, normalize_embeddings=True, convert_to_numpy=True)
        for name, f in paths.items():
            got = np.concatenate([f([q]) for q in qs])
            cos = float((got * reference).sum(axis=1).min())
            print(f"  {name:34s} wall p50 {pct(wall[name], 50):6.2f} p95 {pct(wall[name], 95):6.2f} ms | "
                  f"CPU p50 {pct(cpu[name], 50):6.2f} p95 {pct(cpu[name], 95):6.2f} ms | min cosine {cos:.7f}")


if __name__ == "__main__":
    main()
