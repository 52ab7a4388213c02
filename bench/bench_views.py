"""Search cost of per-view statistics: a token without location scope on a 20k-memory vault.

    python -m bench.bench_views [--size 20000] [--queries 150]

A token that does not see everything gets every BM25 statistic over its own view (embeddings/lexical.py,
`View`); the owner keeps the precomputed ones. This times, per query and in this process's CPU time (the
steady figure on a shared machine), MemoryService.search end to end and the lexical ranking alone, with the
view's statistics and with the whole vault's (Catalog.view forced to None: the code before), interleaved
A B / B A per query after a warm-up pass. Memories and vectors as in bench_retrieval.py (random vectors).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.bench_retrieval import KDF, NOW, populate
from bench.synthetic_memories import queries, texts
from embeddings import retrieve
from embeddings.encoder import Encoder
from embeddings.redaction import Redaction
from embeddings.service import MemoryService
from vault.store import Vault


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=150)
    args = ap.parse_args()
    docs = texts(args.size)[: args.size]
    vecs = np.random.default_rng(1).normal(size=(len(docs), 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    qs = list(queries(args.queries))[: args.queries]
    narrow = Redaction.for_scopes(["memory:read"])
    view, whole = retrieve.Catalog.view, lambda self, redaction: None
    res: dict[str, list[float]] = {k: [] for k in ("search, view", "search, whole vault", "lexical, view",
                                                   "lexical, whole vault")}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        vault, _ = Vault.create(home, "bench passphrase", kdf=KDF)
        with vault:
            populate(vault, docs, vecs)
            vault.checkpoint()
        with Vault.open(home, "bench passphrase") as vault:
            svc = MemoryService(vault, encoder=Encoder())
            for q in qs:  # warm: query vectors cached, rows hydrated once
                svc.search(q, k=10, now=NOW, redaction=narrow)
            cat, full, red = svc._state()
            try:
                for rnd in range(2):
                    for q in qs:
                        order = (("view", view), ("whole vault", whole))
                        for name, fn in order if rnd == 0 else order[::-1]:
                            setattr(retrieve.Catalog, "view", fn)  # noqa: B010 - the bench swaps the method
                            t = time.process_time()
                            svc.search(q, k=10, now=NOW, redaction=narrow)
                            res[f"search, {name}"].append(time.process_time() - t)
                            t = time.process_time()
                            retrieve.rank(cat, full, red, None, q, k=10, filters=retrieve.Filters(), redaction=narrow,
                                          mode="lexical")
                            res[f"lexical, {name}"].append(time.process_time() - t)
            finally:
                setattr(retrieve.Catalog, "view", view)  # noqa: B010 - restore it
            seen = cat.view(narrow)
            print(f"{args.size} memories, {seen.live if seen else len(cat)} visible to a token without location")
    for name, xs in res.items():
        xs = sorted(xs)
        print(f"  {name:22s} mean {1000 * statistics.mean(xs):6.2f} ms  p50 {1000 * statistics.median(xs):6.2f} ms  "
              f"p95 {1000 * xs[int(0.95 * len(xs))]:6.2f} ms  (CPU, n={len(xs)})")


if __name__ == "__main__":
    main()
