"""Where one search's time goes, stage by stage, on a kept bench vault (`bench_retrieval --keep DIR`).

    python -m bench.search_stages DIR/n100000 [--queries 100] [--filtered] [--nocache]
    python -m bench.search_stages DIR/n100000 --ab [--nocache]

MemoryService.search as the server runs it, with the query vectors cached first (the query embedding is
measured by bench_encode / bench_query). Each stage is a wrapper around the function that does it, timed in
wall time and in this process's CPU time (no profiler); stages nest (rank holds the mask, BM25, dense and
fusion). `--filtered` appends the bench's time phrases in turn; `--nocache` clears the row cache before
each search, so every hit is read from the vault. `--ab` rotates, per search, between the audit record
committed beside the read (the current order), after it (the order before audit.alongside) and before it
on the search's own thread, in one process.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.synthetic_memories import queries
from embeddings import index as vindex
from embeddings import lexical, retrieve, service, temporal
from embeddings.service import MemoryService
from vault import audit, chain
from vault.store import Vault

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
PHRASES = ("in March 2024", "on weekends", "after 9pm last year")
STAGES: list[tuple[Any, str, str]] = [
    (temporal, "parse", "temporal parse"),
    (retrieve.Catalog, "mask", "candidate mask"),
    (lexical.BM25, "scores", "BM25 scores"),
    (retrieve.Catalog, "slots", "  dense: the catalog's slot gather"),
    (vindex.VectorIndex, "search", "  dense: the index's search"),
    (retrieve, "_dense", "dense search"),
    (retrieve, "_cosines", "exact cosines of the lexical-only hits"),
    (retrieve, "_score_fusion", "fusion (with the cosines)"),
    (retrieve, "rank", "rank (all of the above)"),
    (service, "fetch", "hydration (fetch)"),
    (chain.Chain, "append", "audit append (on its thread)"),
    (MemoryService, "search", "search (all, without the query embedding)"),
]


def _timed(owner: Any, name: str, label: str, wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    f = getattr(owner, name)

    @functools.wraps(f)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            wall[label].append(time.perf_counter() - t)
            cpu[label].append(time.process_time() - c)

    setattr(owner, name, timed)


@contextlib.contextmanager
def _after(vault: Vault, event: audit.AuditEvent) -> Iterator[None]:
    """The order before audit.alongside: read, then append and commit."""
    yield
    audit.record(vault, event)


@contextlib.contextmanager
def _first(vault: Vault, event: audit.AuditEvent) -> Iterator[None]:
    """Append and commit on the search's own thread, then read (no hand-over to the appender thread)."""
    audit.record(vault, event)
    yield


def _ms(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, p))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("home", type=Path, help="a vault kept by bench_retrieval --keep (DIR/n<size>)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--filtered", action="store_true", help="add the bench's time phrases in turn")
    ap.add_argument("--nocache", action="store_true", help="clear the row cache before each search")
    ap.add_argument("--ab", action="store_true", help="audit commit after the read vs alongside it, alternating")
    args = ap.parse_args()
    vault = Vault.open(args.home, "bench passphrase")
    svc = MemoryService(vault)
    svc.search("warm up", k=10, now=NOW)
    svc.serve_queries()
    qs = list(dict.fromkeys(queries(args.queries * 2)))[: args.queries]
    if args.filtered:
        qs = [f"{q} {PHRASES[i % len(PHRASES)]}" for i, q in enumerate(qs)]
    for q in qs:  # the query vectors cached: the embedding is not a stage here
        svc.search(q, k=10, now=NOW)
    wall: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    orders: list[tuple[str, Callable[..., Any]]] = [("alongside (now)", audit.alongside)]
    if args.ab:
        orders += [("after the read (before)", _after), ("first, on the search's thread", _first)]
    else:
        for owner, name, label in STAGES:
            _timed(owner, name, label, wall, cpu)
    current = audit.alongside
    for i, q in enumerate(qs * 2):
        for label, order in orders[i % len(orders):] + orders[: i % len(orders)]:
            audit.alongside = order
            if args.nocache:
                svc._rows.clear()
            t, c = time.perf_counter(), time.process_time()
            svc.search(q, k=10, now=NOW)
            if args.ab:
                wall[label].append(time.perf_counter() - t)
                cpu[label].append(time.process_time() - c)
    audit.alongside = current
    print(f"load average {os.getloadavg()[0]:.1f}; {len(qs) * 2} searches{' each' if args.ab else ''}; "
          f"{'time-filtered; ' if args.filtered else ''}row cache {'cleared before each' if args.nocache else 'kept'}")
    print("| stage | CPU p50 | CPU p95 | wall p50 | wall p95 |\n|---|---|---|---|---|")
    for label in cpu:
        print(f"| {label} | {_ms(cpu[label], 50):.2f} | {_ms(cpu[label], 95):.2f} | {_ms(wall[label], 50):.2f} | "
              f"{_ms(wall[label], 95):.2f} |")
    svc.close()
    vault.close()


if __name__ == "__main__":
    main()
