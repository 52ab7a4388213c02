"""The search catalog's sealed snapshot against a rebuild from the memory rows, at N memories.

    python -m bench.bench_snapshot --sizes 20000 100000 [--keep DIR] [--repeat 3] [--rows-only]
    python -m bench.bench_snapshot --sizes 1000000 --keep DIR --rows-only --repeat 3   # the parts of a 1M open

Builds (or, with --keep, reuses) a vault of N synthetic memories the way bench_retrieval.py does, then, in
this one process and alternating A/B so load hits both alike: the catalog and BM25 loaded from the snapshot
(read, decrypt, frombuffer, restore, and the memories table's fingerprint) against Catalog.load from the
rows (what every cold process did before). Prints wall and CPU medians, the snapshot's size and the time
to write it, and checks that both rank a sample of queries identically.

--rows-only writes the memory rows without a vector index (a 1M index takes most of an hour to build on
2 cores), and also times the other parts of opening a vault to its first answered search that do not
depend on the vector index: unlocking and opening the database, a delta of 1,000 notes applied to the
snapshot (re-read and BM25 settled), and the query encoder's first query in a fresh process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np

from bench.bench_retrieval import KDF, _kind, populate
from bench.synthetic_memories import queries, texts
from embeddings import dialogue, memories, retrieve, snapshot
from vault.store import Vault

PASSPHRASE = "bench passphrase"
T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(fn(), wall s, CPU s)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def _rows(vault: Vault, docs: list[str]) -> None:
    """The memory rows of bench_retrieval.populate, without vectors."""
    rng = np.random.default_rng(3)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    offsets = rng.integers(0, 365 * 24 * 60, size=len(docs))
    chunk = 100_000
    for lo in range(0, len(docs), chunk):
        items = []
        for i in range(lo, min(lo + chunk, len(docs))):
            start, kind = base + timedelta(minutes=int(offsets[i])), _kind(docs[i])
            items.append(memories.Memory(
                memory_id=i + 1, kind=kind, text=docs[i], text_redacted=None, start_ts=start,
                end_ts=start + timedelta(minutes=45), utc_offset_min=0, tags=(kind,), details={},
                source=memories.SOURCE.get(kind, "agent"), source_table=None, source_row_ids=()))
        vault.insert_frame("memories", memories.frame(items, now=base), on_conflict_nothing=False)


_FIRST_QUERY = ("import time; t = time.perf_counter(); c = time.process_time(); "
                "from embeddings.encoder import Encoder; Encoder().encode_query('when did I last see Dr Lee'); "
                "print(time.perf_counter() - t, time.process_time() - c)")


def _opened(home: Path) -> tuple[float, float]:
    _, wall, cpu = _timed(lambda: Vault.open(home, PASSPHRASE).close())
    return wall, cpu


def _parts(home: Path, repeat: int) -> None:
    """The parts of a cold open that do not depend on the vector index (medians of `repeat`)."""
    opened = [_opened(home) for _ in range(repeat)]
    with Vault.open(home, PASSPHRASE) as vault:
        cat = snapshot.load(vault, lambda ids: [])
        if cat is None:  # made by other code (the rules digest covers it): build it from the rows once
            cat = retrieve.Catalog.load(vault, dialogue.texts(vault))
        ids = cat.ids[:1000].tolist()
        key = snapshot.save(vault, cat)
        vault.execute("UPDATE memories SET version = version + 1 WHERE memory_id IN (SELECT unnest(?::BIGINT[]))",
                      [ids])  # 1,000 rows written since the base, as note updates would
        snapshot.save_delta(vault, key, ids)
        delta = [_timed(lambda: snapshot.restore(vault, lambda ids: [])) for _ in range(repeat)]
        assert all(r is not None and len(r.changed) == 1000 for r, _, _ in delta)
        snapshot.save(vault, cat)
    encoder = [tuple(map(float, subprocess.run([sys.executable, "-c", _FIRST_QUERY], capture_output=True, text=True,
                                                check=True).stdout.split())) for _ in range(repeat)]
    for name, runs in (("unlock + open (Vault.open, close)", opened),
                       ("snapshot + a 1,000-note delta", [(w, c) for _, w, c in delta]),
                       ("query encoder, first query (fresh process)", encoder)):
        print(f"  {name}: {statistics.median(w for w, _ in runs):.2f} s wall / "
              f"{statistics.median(c for _, c in runs):.2f} s CPU")


def run_size(n: int, keep: Path | None, repeat: int, rows_only: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = (keep / f"n{n}") if keep is not None else Path(tmp) / "home"
        if keep is None or not (home / "vault.duckdb").exists():
            docs = texts(min(n, 10_000))
            docs = [d if i < len(docs) else f"{d} #{i}" for i, d in enumerate((docs * (n // len(docs) + 1))[:n])]
            vault, _ = Vault.create(home, PASSPHRASE, kdf=KDF)
            with vault:
                if rows_only:
                    _rows(vault, docs)
                else:
                    vecs = np.random.default_rng(n).normal(size=(n, 384)).astype(np.float32)
                    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
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
        if rows_only:
            _parts(home, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[20_000, 100_000])
    ap.add_argument("--keep", type=Path, help="build each size's vault in DIR/n<size> and reuse it later")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows-only", action="store_true", help="memory rows without a vector index, and the other "
                    "parts of a cold open (unlock, a snapshot delta, the query encoder's first query)")
    a = ap.parse_args()
    for n in a.sizes:
        run_size(n, a.keep, a.repeat, a.rows_only)


if __name__ == "__main__":
    main()
