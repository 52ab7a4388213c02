"""The search catalog's sealed snapshot against a rebuild from the memory rows, at N memories.

    python -m bench.bench_snapshot --sizes 20000 100000 [--keep DIR] [--repeat 3]

Builds (or, with --keep, reuses) a vault of N synthetic memories the way bench_retrieval.py does, then, in
this one process and alternating A/B so load hits both alike: the catalog and BM25 loaded from the snapshot
(read, decrypt, frombuffer, restore, and the memories table's fingerprint) against Catalog.load from the
rows (what every cold process did before). Prints wall and CPU medians, the snapshot's size and the time
to write it, and checks that both rank a sample of queries identically.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from bench.bench_retrieval import KDF, populate
from bench.synthetic_memories import queries, texts
from embeddings import dialogue, retrieve, snapshot
from vault.store import Vault

PASSPHRASE = "bench passphrase"
T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(fn(), wall s, CPU s)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def run_size(n: int, keep: Path | None, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = (keep / f"n{n}") if keep is not None else Path(tmp) / "home"
        if keep is None or not (home / "vault.duckdb").exists():
            docs = texts(min(n, 10_000))
            docs = [d if i < len(docs) else f"{d} #{i}" for i, d in enumerate((docs * (n // len(docs) + 1))[:n])]
            vecs = np.random.default_rng(n).normal(size=(n, 384)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            vault, _ = Vault.create(home, PASSPHRASE, kdf=KDF)
            with vault:
                populate(vault, docs, vecs)
                vault.checkpoint()
        with Vault.open(home, PASSPHRASE) as vault:
            rows = retrieve.Catalog.load(vault, dialogue.texts(vault))
            _, write_s, _ = _timed(lambda: snapshot.save(vault, rows))
            size = vault.blob_path(snapshot.BLOB).stat().st_size
            snap, rebuilt = [], []
            for _ in range(repeat):
                cat, wall, cpu = _timed(lambda: snapshot.load(vault, lambda ids: []))
                assert cat is not None
                snap.append((wall, cpu))
                _, wall, cpu = _timed(lambda: retrieve.Catalog.load(vault, dialogue.texts(vault)))
                rebuilt.append((wall, cpu))
            assert cat is not None
            for q in queries(20):
                a, b = rows.lexical.search(q, 10), cat.lexical.search(q, 10)
                assert sorted(rows.ids[a[0]].tolist()) == sorted(cat.ids[b[0]].tolist()), q
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for k, v in (("snapshot", snap), ("rows", rebuilt))}
        print(f"{n:>9,} memories: snapshot {med['snapshot'][0]:.2f} s wall / {med['snapshot'][1]:.2f} s CPU, "
              f"rows {med['rows'][0]:.2f} s / {med['rows'][1]:.2f} s CPU; snapshot {size / 1e6:.1f} MB sealed, "
              f"written in {write_s:.2f} s; same top 10 for 20 queries")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[20_000, 100_000])
    ap.add_argument("--keep", type=Path, help="build each size's vault in DIR/n<size> and reuse it later")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for n in a.sizes:
        run_size(n, a.keep, a.repeat)


if __name__ == "__main__":
    main()
