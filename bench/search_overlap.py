"""The query embedded on its own thread while the mask and BM25 run, against awaited at once, in one process.

    python -m bench.search_overlap DIR/n1000000 [--queries 1000]

On a kept bench vault (`bench_retrieval --keep DIR`): MemoryService.search over distinct bench queries, the
query-vector cache cleared before each, alternating per search between the current code ("overlap") and
the same code with Encoder.encode_query_soon made to wait for the vector before returning ("awaited at
once": the order before the overlap). Wall p50 / p95 of each. The switch is a monkeypatch in this process,
never a setting of the product.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.synthetic_memories import queries
from embeddings import encoder as encoder_mod
from embeddings.encoder import Encoder
from embeddings.service import MemoryService
from vault.store import Vault

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("home", type=Path, help="a vault kept by bench_retrieval --keep (DIR/n<size>)")
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    vault = Vault.open(args.home, "bench passphrase")
    svc = MemoryService(vault)
    svc.search("warm up", k=10, now=NOW)
    svc.serve_queries()
    overlapping = Encoder.encode_query_soon

    def awaited(self: Encoder, text: str) -> Future:
        done: Future = Future()
        done.set_result(overlapping(self, text).result())
        return done

    qs = list(dict.fromkeys(queries(args.queries * 3)))
    for q in qs[args.queries : args.queries + 20]:
        svc.search(q + " warm", k=10, now=NOW)
    wall: dict[str, list[float]] = {"overlap": [], "awaited at once": []}
    for i, q in enumerate(qs[: args.queries]):
        name = "overlap" if i % 2 else "awaited at once"
        Encoder.encode_query_soon = overlapping if name == "overlap" else awaited  # type: ignore[method-assign]
        encoder_mod._QUERY_VECTORS.clear()
        t = time.perf_counter()
        svc.search(q, k=10, now=NOW)
        wall[name].append((time.perf_counter() - t) * 1000)
    Encoder.encode_query_soon = overlapping  # type: ignore[method-assign]
    print(f"{args.home.name}, load average {os.getloadavg()[0]:.1f}, {args.queries} distinct queries alternated")
    for name, xs in wall.items():
        print(f"  {name:16s} p50 {np.percentile(xs, 50):5.1f} ms  p95 {np.percentile(xs, 95):5.1f} ms")
    svc.close()
    vault.close()


if __name__ == "__main__":
    main()
