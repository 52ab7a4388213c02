"""The vector index alone at 100k / 1M vectors: build, seal, open, resident memory, search, filtered search,
each with recall@10 against an exact float32 scan, for the previous index (HNSW over float32, sealed as one
bytes object and opened through whole-blob copies) and the current one, in the same run.

    python -m bench.bench_index [--sizes 100000] [--data clustered random] [--real 1000] [--queries 200]

Data: "random" = random unit vectors (the pathological case for HNSW: no structure at all, queries random
too); "clustered" = the model's embeddings of --real synthetic memory texts, each vector one of them plus a
small Gaussian perturbation (sigma 0.03 per dimension, then normalised), queries likewise -- clustered the
way real memories are (many near-duplicates of a few thousand situations). Per variant: build time (batches
of 100k, as `lifevault index` adds them), seal time and size, open time (sealed file to a searchable index),
the process's resident memory grown by opening it (VmRSS, after freeing the built one) and its peak while
opening (VmHWM reset before), search p50 / p95 at k=50 (the dense depth of a search with k=10) on one
thread, and filtered search (a random subset of 1% / 8% / 28% of the ids, like "in March", "on weekends").
The load average is printed with every figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import struct
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from embeddings import index as vindex
from vault.keys import KdfParams
from vault.store import Vault

KDF = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)
DEPTH = 50
M_EFC = (vindex.HNSW_M, vindex.HNSW_EF_CONSTRUCTION)
BATCH = 100_000


def _rss() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    got = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            got[line.split(":")[0]] = int(line.split()[1]) / 1024
    return got["VmRSS"], got["VmHWM"]


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


# ---- the previous index: HNSW over float32, sealed whole ------------------------------------------------
def old_new(d: int) -> vindex.VectorIndex:
    inner = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction, inner.hnsw.efSearch = 64, 96
    return vindex.VectorIndex(faiss.IndexIDMap2(inner))


def old_add(ix: vindex.VectorIndex, ids: np.ndarray, x: np.ndarray) -> None:
    ix._index.add_with_ids(x, ids)  # with FAISS's default threads, as before
    ix._changed()


def old_save(vault: Vault, name: str, ix: vindex.VectorIndex) -> None:
    head = json.dumps({"tombstones": 0}).encode()
    body = faiss.serialize_index(ix._index)
    vault.write_blob(name, b"LVMIDX1\n" + struct.pack(">I", len(head)) + head + body.tobytes())


def old_load(vault: Vault, name: str) -> vindex.VectorIndex:
    data = vault.read_blob(name)
    assert data is not None
    (n,) = struct.unpack_from(">I", data, 8)
    return vindex.VectorIndex(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8, offset=12 + n).copy()))


def new_add(ix: vindex.VectorIndex, ids: np.ndarray, x: np.ndarray) -> None:
    ix.add(ids, x)


def run(vault: Vault, variant: str, x: np.ndarray, qs: np.ndarray, truth: np.ndarray) -> dict:
    n, d = x.shape
    ids = np.arange(n, dtype=np.int64) + 1
    if variant.startswith("new-"):
        vindex.HNSW_M, vindex.HNSW_EF_CONSTRUCTION = (int(v) for v in variant.split("-")[1:])
    ix = old_new(d) if variant == "old" else vindex.VectorIndex.new(d, hnsw=True)
    vindex.HNSW_M, vindex.HNSW_EF_CONSTRUCTION = M_EFC
    t = time.perf_counter()
    for lo in range(0, n, BATCH):
        (old_add if variant == "old" else new_add)(ix, ids[lo : lo + BATCH], x[lo : lo + BATCH])
    build = time.perf_counter() - t
    t = time.perf_counter()
    (old_save(vault, variant, ix) if variant == "old" else vindex.save(vault, variant, ix, {"dim": d}))
    seal = time.perf_counter() - t
    size = vault.blob_path(variant).stat().st_size / 1e6
    del ix
    gc.collect()
    rss0, _ = _rss()
    _reset_peak()
    t = time.perf_counter()
    loaded = vindex.load(vault, variant) if variant != "old" else None
    assert variant == "old" or loaded is not None, f"no sealed index {variant!r}"
    ix = old_load(vault, variant) if loaded is None else loaded[0]
    ix.slot_of(ids[:1])  # the id -> slot maps a search needs
    opened = time.perf_counter() - t
    rss1, peak = _rss()
    lat, rec = [], []
    for q, tr in zip(qs, truth, strict=True):
        t = time.perf_counter()
        got, _ = ix.search(q, DEPTH)
        lat.append(time.perf_counter() - t)
        rec.append(len(set(got[:10].tolist()) & set(tr.tolist())) / 10)
    filt = {}
    rng = np.random.default_rng(5)
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
    out = {"variant": variant, "build_s": build, "seal_s": seal, "size_mb": size, "open_s": opened,
           "rss_mb": rss1 - rss0, "peak_mb": peak - rss0, "p50": np.percentile(lat, 50) * 1e3,
           "p95": np.percentile(lat, 95) * 1e3, "recall10": float(np.mean(rec)), "filtered": filt}
    print(f"    {variant}: build {build:6.1f} s | seal {seal:5.2f} s, {size:5.0f} MB | open {opened:5.2f} s, "
          f"+{rss1 - rss0:5.0f} MB resident (peak +{peak - rss0:5.0f}) | search p50 {out['p50']:5.2f} p95 "
          f"{out['p95']:5.2f} ms, recall@10 {out['recall10']:.4f} | load {_load()}", flush=True)
    for share, (p50, p95, r) in filt.items():
        print(f"      filter {share:4.0%}: p50 {p50:5.2f} p95 {p95:5.2f} ms, recall@10 {r:.4f}", flush=True)
    del ix
    gc.collect()
    vault.delete_blob(variant)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    ap.add_argument("--data", nargs="*", default=["clustered", "random"], choices=["clustered", "random"])
    ap.add_argument("--variants", nargs="*", default=["old", "new"],
                    help="old, new, or new-M-EFC (the current index with HNSW_M=M, HNSW_EF_CONSTRUCTION=EFC)")
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
    print(f"faiss default threads {faiss.omp_get_max_threads()}, build threads (new) {vindex.BUILD_THREADS}; "
          f"load {_load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        vault, _ = Vault.create(Path(tmp) / "home", "bench passphrase", kdf=KDF)
        with vault:
            for n in args.sizes:
                for kind in args.data:
                    x, qs = data(kind, n, args.queries, real, seed=n)
                    flat = faiss.IndexFlatIP(x.shape[1])
                    flat.add(x)
                    _, truth = flat.search(qs, 10)
                    truth = truth + 1
                    del flat
                    print(f"  n={n:,} {kind}:", flush=True)
                    for variant in args.variants:
                        run(vault, variant, x, qs, truth)


if __name__ == "__main__":
    main()
