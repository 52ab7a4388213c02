"""The vector index alone at 100k / 1M vectors: build, seal, open, resident memory, search, filtered search,
each with recall@10 against an exact float32 scan, for the previous index ("old": HNSW M=32 over float16,
`IndexHNSWSQ`, the code at --old-rev, loaded from git) and the current one ("new": IVF with IVF_CODE_BITS
(4-bit) codes and an exact re-rank from the sealed float16 store; "new-8bit": the same with 8-bit codes, as
indexes sealed before the 4-bit change hold), in the same run.

    python -m bench.bench_index [--sizes 100000] [--data clustered random] [--variants old new new-8bit]
                                [--real 1000] [--real-cache F.npy] [--queries 200] [--sweep 8 16 32 64]
                                [--depths 100 200]

Data: "random" = random unit vectors (the pathological case for any graph or cluster index: no structure at
all, queries random too); "clustered" = the model's embeddings of --real synthetic memory texts, each vector
one of them plus a small Gaussian perturbation (sigma 0.03 per dimension, then normalised), queries likewise
-- clustered the way real memories are (many near-duplicates of a few thousand situations). Per variant:
build time, wall and CPU (batches of 100k, as `lifevault index` adds them), seal time and size (the blob
and, for IVF, its store), open time (sealed files to a searchable index), the process's resident memory
grown by opening it (VmRSS, after freeing the built one) and its peak while opening (VmHWM reset before),
search p50 / p95 at k=50 (the dense depth of a search with k=10) on one thread, filtered search (a random
subset of 1% / 8% / 28% of the ids, like "in March", "on weekends"; a small one has its codes scored
by slot, a broad one probes lists through a bitmap, see CODE_COST), the one-off cost of the map of where
each code sits (built by the first such filter after an open or a change), and the cost of one more
vector: add it and seal again (what a `remember` costs the index), then a 1% filter (the map rebuilt). --sweep re-measures the new index's search at other
IVF_NPROBE values, --depths at other RERANK_DEPTH values (filtered searches too). The load average is printed with every figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings import index as vindex
from vault.keys import KdfParams
from vault.store import Vault

KDF = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)
DEPTH = 50
BATCH = 100_000
VARIANT_BITS = {"new-8bit": 8}  # the code bits a variant builds with (else IVF_CODE_BITS)
OLD_REV = "9ccc1b6"  # the last commit with the HNSW index (IndexHNSWSQ float16, M=32, efConstruction 64)


def _rss() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    got = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            got[line.split(":")[0]] = int(line.split()[1]) / 1024
    return got["VmRSS"], got["VmHWM"]


def _trim() -> None:
    """Give freed heap back to the OS, so memory freed by the built index is not reused by the opened one
    without showing in VmRSS."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def data(kind: str, n: int, nq: int, real: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = 384
    if kind == "random":
        x = rng.normal(size=(n + nq, d)).astype(np.float32)
    else:
        assert real is not None
        x = real[rng.integers(0, len(real), n + nq)]
        x += rng.normal(scale=0.03, size=x.shape).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:]


# ---- the previous index: HNSW over float16, the code at --old-rev ------------------------------------------
def old_module(rev: str) -> types.ModuleType:
    """embeddings/index.py as it was at `rev`, imported from git under another name."""
    source = subprocess.run(["git", "show", f"{rev}:embeddings/index.py"], check=True, capture_output=True,
                            cwd=Path(__file__).resolve().parent.parent, text=True).stdout
    module = types.ModuleType("bench_old_index")
    sys.modules[module.__name__] = module
    exec(compile(source, f"{rev}:embeddings/index.py", "exec"), module.__dict__)  # noqa: S102 -- our own code
    return module


def _size(vault: Vault, name: str) -> float:
    return sum(vault.blob_path(n).stat().st_size for n in vault.blob_names(name)) / 1e6


def _searches(ix: Any, x: np.ndarray, qs: np.ndarray, truth: np.ndarray, ids: np.ndarray) -> dict:
    lat, rec = [], []
    for q, tr in zip(qs, truth, strict=True):
        t = time.perf_counter()
        got, _ = ix.search(q, DEPTH)
        lat.append(time.perf_counter() - t)
        rec.append(len(set(got[:10].tolist()) & set(tr.tolist())) / 10)
    filt = {}
    rng = np.random.default_rng(5)
    n = len(ids)
    for share in (0.01, 0.08, 0.28):
        sub = np.sort(rng.choice(ids, int(share * n), replace=False))
        slots = ix.positions(sub)
        ex = x[sub - 1]
        fl, fr = [], []
        for q in qs[:100]:
            t = time.perf_counter()
            got, _ = ix.search(q, DEPTH, slots=slots)
            fl.append(time.perf_counter() - t)
            best = sub[np.argsort(-(ex @ q))[:10]]
            fr.append(len(set(got[:10].tolist()) & set(best.tolist())) / 10)
        filt[share] = (np.percentile(fl, 50) * 1e3, np.percentile(fl, 95) * 1e3, float(np.mean(fr)))
    return {"p50": np.percentile(lat, 50) * 1e3, "p95": np.percentile(lat, 95) * 1e3,
            "recall10": float(np.mean(rec)), "filtered": filt}


def run(vault: Vault, variant: str, x: np.ndarray, qs: np.ndarray, truth: np.ndarray, *, old: types.ModuleType | None,
        sweep: list[int], depths: list[int]) -> dict:
    n, d = x.shape
    ids = np.arange(n, dtype=np.int64) + 1
    mod: Any = old if variant == "old" else vindex
    assert mod is not None
    ix = mod.VectorIndex.new(d, hnsw=True)
    bits = vindex.IVF_CODE_BITS
    vindex.IVF_CODE_BITS = VARIANT_BITS.get(variant, bits)  # what the build (and each retraining) quantizes to
    t, cpu = time.perf_counter(), time.process_time()
    try:
        for lo in range(0, n, BATCH):
            ix.add(ids[lo : lo + BATCH], x[lo : lo + BATCH])
    finally:
        vindex.IVF_CODE_BITS = bits
    build, build_cpu = time.perf_counter() - t, time.process_time() - cpu
    build_load = _load()
    t = time.perf_counter()
    mod.save(vault, variant, ix, {"dim": d})
    seal = time.perf_counter() - t
    size = _size(vault, variant)
    del ix
    gc.collect()
    _trim()
    rss0, _ = _rss()
    _reset_peak()
    t = time.perf_counter()
    loaded = mod.load(vault, variant)
    assert loaded is not None, f"no sealed index {variant!r}"
    ix = loaded[0]
    ix.slot_of(ids[:1])  # the id -> slot maps a search needs
    opened = time.perf_counter() - t
    rss1, peak = _rss()
    code_map = 0.0
    if getattr(ix, "is_ivf", False) and hasattr(ix, "_codes"):  # where each code sits, for selective filters
        t = time.perf_counter()
        ix._codes()
        code_map = time.perf_counter() - t
        print(f"      code map (first selective filter after an open or a change): {code_map * 1e3:6.1f} ms, "
              f"+{_rss()[0] - rss1:4.0f} MB", flush=True)
    out = {"variant": variant, "build_s": build, "build_cpu_s": build_cpu, "seal_s": seal, "size_mb": size,
           "open_s": opened, "rss_mb": rss1 - rss0, "peak_mb": peak - rss0} | _searches(ix, x, qs, truth, ids)
    bits_now = getattr(ix, "code_bits", None)
    print(f"    {variant}{f' ({bits_now}-bit codes)' if bits_now else ''}: build {build:6.1f} s (cpu {build_cpu:6.1f} s, load {build_load}) | seal {seal:5.2f} s, "
          f"{size:5.0f} MB | open {opened:5.2f} s, +{rss1 - rss0:5.0f} MB resident (peak +{peak - rss0:5.0f}) | "
          f"search p50 {out['p50']:5.2f} p95 {out['p95']:5.2f} ms, recall@10 {out['recall10']:.4f} | load {_load()}",
          flush=True)
    for share, (p50, p95, r) in out["filtered"].items():
        print(f"      filter {share:4.0%}: p50 {p50:5.2f} p95 {p95:5.2f} ms, recall@10 {r:.4f}", flush=True)
    if variant != "old":
        for nprobe in sweep:
            vindex.IVF_NPROBE, keep = nprobe, vindex.IVF_NPROBE
            got = _searches(ix, x, qs, truth, ids)
            vindex.IVF_NPROBE = keep
            print(f"      nprobe {nprobe:4d}: search p50 {got['p50']:5.2f} p95 {got['p95']:5.2f} ms, "
                  f"recall@10 {got['recall10']:.4f} | load {_load()}", flush=True)
        for depth in depths:
            vindex.RERANK_DEPTH, keep = depth, vindex.RERANK_DEPTH
            got = _searches(ix, x, qs, truth, ids)
            vindex.RERANK_DEPTH = keep
            filt = ", ".join(f"{s:.0%} {p50:5.2f} ({p95:5.2f}) {r:.4f}" for s, (p50, p95, r) in got["filtered"].items())
            print(f"      depth {depth:4d}: search p50 {got['p50']:5.2f} p95 {got['p95']:5.2f} ms, "
                  f"recall@10 {got['recall10']:.4f}; filtered p50 (p95) ms, recall@10: {filt} | load {_load()}",
                  flush=True)
    one = np.asarray(qs[:1], dtype=np.float32)
    t = time.perf_counter()
    ix.add(np.array([n + 1], dtype=np.int64), one)
    added = time.perf_counter() - t
    t = time.perf_counter()
    mod.save(vault, variant, ix, {"dim": d})
    out["add_one_s"], out["reseal_s"] = added, time.perf_counter() - t
    sub = np.sort(np.random.default_rng(6).choice(ids, n // 100, replace=False))
    t = time.perf_counter()
    ix.search(qs[1], DEPTH, slots=ix.positions(sub))
    print(f"      first 1% filtered search after that add: {(time.perf_counter() - t) * 1e3:6.1f} ms", flush=True)
    print(f"      one more vector: add {added * 1e3:6.1f} ms, seal again {out['reseal_s']:5.2f} s | load {_load()}",
          flush=True)
    del ix, loaded
    gc.collect()
    for name in vault.blob_names(variant):
        vault.delete_blob(name)
    return out


def exact_top10(x: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Row numbers of each query's top 10 by a float32 scan, a block of x at a time (no second copy of x)."""
    best_s = np.full((len(qs), 10), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(qs), 10), dtype=np.int64)
    for lo in range(0, len(x), 100_000):
        s = qs @ x[lo : lo + 100_000].T
        top = np.argpartition(-s, 9, axis=1)[:, :10]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, top + lo], axis=1)
        keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :10]
        best_s, best_i = np.take_along_axis(cand_s, keep, axis=1), np.take_along_axis(cand_i, keep, axis=1)
    return best_i


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    ap.add_argument("--data", nargs="*", default=["clustered", "random"], choices=["clustered", "random"])
    ap.add_argument("--variants", nargs="*", default=["old", "new"], choices=["old", "new", "new-8bit"])
    ap.add_argument("--old-rev", default=OLD_REV, help="the commit whose embeddings/index.py is the old index")
    ap.add_argument("--sweep", type=int, nargs="*", default=[], help="IVF_NPROBE values to re-measure search at")
    ap.add_argument("--depths", type=int, nargs="*", default=[], help="RERANK_DEPTH values to re-measure search at")
    ap.add_argument("--real", type=int, default=1000, help="texts embedded by the model for the clustered set")
    ap.add_argument("--real-cache", type=Path, help="an .npy of those embeddings, written once and reused")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    real = None
    if "clustered" in args.data:
        if args.real_cache is not None and args.real_cache.exists():
            real = np.load(args.real_cache)[: args.real]
        else:
            from bench.synthetic_memories import texts
            from embeddings.encoder import Encoder

            real = np.asarray(Encoder().encode(texts(args.real)), dtype=np.float32)
            if args.real_cache is not None:
                np.save(args.real_cache, real)
    old = old_module(args.old_rev) if "old" in args.variants else None
    print(f"faiss default threads {faiss.omp_get_max_threads()}, build threads {vindex.BUILD_THREADS}; "
          f"IVF_NPROBE {vindex.IVF_NPROBE}, RERANK_DEPTH {vindex.RERANK_DEPTH}; load {_load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        vault, _ = Vault.create(Path(tmp) / "home", "bench passphrase", kdf=KDF)
        with vault:
            for n in args.sizes:
                for kind in args.data:
                    x, qs = data(kind, n, args.queries, real, seed=n)
                    truth = exact_top10(x, qs) + 1
                    print(f"  n={n:,} {kind}:", flush=True)
                    for variant in args.variants:
                        run(vault, variant, x, qs, truth, old=old, sweep=args.sweep, depths=args.depths)


if __name__ == "__main__":
    main()
