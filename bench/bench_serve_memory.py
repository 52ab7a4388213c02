"""Where a serving process's memory goes: the vault open, the catalog (with BM25) from its snapshot and the
sealed indexes, loaded as `lifevault serve` loads them (MemoryService._state), each step's VmRSS growth,
then the catalog's structures one by one (numpy buffers by nbytes, Python containers by a deep getsizeof).
The query forward is not loaded (the server's numpy forward adds 21 MB of copied half-float weights on top; no torch).

    python -m bench.bench_serve_memory --home /work/bench-1m/n1000000 [--queries 200]

`--queries N` also times N owner searches' catalog stages (filter mask, BM25 top 100) on the loaded catalog.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import lexical, retrieve
from embeddings.service import MemoryService
from vault.store import Vault

PASSPHRASE = "bench passphrase"


def rss_mb() -> float:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap back to the system: what stays is held
    except OSError:
        pass
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def deep(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes held by obj: numpy arrays by their buffer (a view counts its base once), containers deeply."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        if base is not obj:
            return deep(base, seen) if base.base is None else 0  # a view of a bytes buffer: counted as the bytes
        size = obj.nbytes + sys.getsizeof(obj) - (obj.nbytes if obj.flags.owndata else 0)
        if obj.dtype == object:
            size += sum(deep(v, seen) for v in obj.ravel().tolist())
        return size
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep(k, seen) + deep(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(deep(v, seen) for v in obj)
    return size


def structures(cat: retrieve.Catalog) -> list[tuple[str, int]]:
    rows = []
    seen: set[int] = set()
    holders: tuple[tuple[Any, str], ...] = ((cat.lexical, "bm25."), (cat, "catalog."))
    for holder, prefix in holders:
        for name in sorted(getattr(holder, "__dict__", {}) or {n: None for n in holder.__slots__}):
            value = getattr(holder, name)
            if isinstance(value, lexical.BM25) or callable(value):
                continue
            rows.append((prefix + name, deep(value, seen)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--queries", type=int, default=0)
    args = ap.parse_args()
    r0 = rss_mb()
    vault = Vault.open(args.home, PASSPHRASE)
    with vault:
        vault.query("SELECT count(*) FROM memories")
        r1 = rss_mb()
        svc = MemoryService(vault, encoder=None)  # no model: the state only
        t = time.perf_counter()
        cat = svc._load_catalog()
        t_cat = time.perf_counter() - t
        svc._catalog = cat
        r2 = rss_mb()
        t = time.perf_counter()
        svc._state()
        t_ix = time.perf_counter() - t
        r3 = rss_mb()
        n = len(cat)
        print(f"n={n:,}: python + imports {r0:.0f} MB; vault open +{r1 - r0:.0f} MB; catalog + BM25 from the snapshot "
              f"+{r2 - r1:.0f} MB ({t_cat:.2f} s); both indexes +{r3 - r2:.0f} MB ({t_ix:.2f} s); "
              f"total {r3:.0f} MB resident")
        total = 0
        terms = getattr(cat.lexical, "term_count", None) or len(getattr(cat.lexical, "_vocab", ()))
        for name, size in structures(cat):
            if size >= 1 << 20:
                print(f"  {name:32s} {size / 2**20:8.1f} MB")
            total += size
        print(f"  {'(all catalog structures)':32s} {total / 2**20:8.1f} MB; BM25 terms {terms:,}, "
              f"postings {len(cat.lexical._docs):,}")
        if args.queries:
            from bench.synthetic_memories import queries

            qs = queries(args.queries)
            owner = retrieve.Filters()
            from embeddings.redaction import SENSITIVITIES

            lex = []
            for q in qs:
                t = time.perf_counter()
                mask = cat.mask(owner, SENSITIVITIES)
                lexical.best(*cat.lexical.scores(q, mask), 100)
                lex.append(time.perf_counter() - t)
            ms = np.array(lex) * 1000
            print(f"  mask + BM25 top 100 over {len(qs)} queries: p50 {np.percentile(ms, 50):.2f} ms, "
                  f"p95 {np.percentile(ms, 95):.2f} ms")


if __name__ == "__main__":
    main()
