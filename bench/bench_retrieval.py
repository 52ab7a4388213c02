"""Search latency at 10k / 100k (/ 1M with --million) memories vs plain sentence-transformers + IndexFlatIP.

    python -m bench.bench_retrieval [--sizes 10000 100000] [--million] [--encode 2000] [--queries 200]

Per size, in a fresh encrypted vault: N synthetic memories (bench/synthetic_memories.py) are written to
the memories table; the first --encode of them are embedded with the real model, the rest get random
unit vectors (encoding 100k-1M texts on 2 cores takes 10-60 min; random vectors cost FAISS and numpy
what real ones do). Above 50k vectors the index is IVF with 4-bit codes (8-bit in a vault kept from before) and an exact re-rank from the
sealed float16 store (embeddings/index.py); random vectors have no neighbourhoods, the pathological case
for any cluster index, so the dense recall printed here is far below what real, clustered memories get
(bench_index measures that). The index is sealed in the vault and loaded by a fresh MemoryService like
in production.

Ours: MemoryService.search(q, k=10): temporal parsing, query embedding, filters, BM25, dense, RRF,
hydration of the hits from the encrypted database and the audit record -- end to end, with the query
embedded as the API server and a one-shot `lifevault search` both embed it: the numpy forward
(embeddings/lean.py, after the server's warm-up, MemoryService.serve_queries).
Baseline, same process: SentenceTransformer.encode(q) + IndexFlatIP.search over the same vectors (no
filters, no lexical signal, no hydration, no audit), FAISS with its default threads. Ours and the
baseline run in two blocks (ABAB) of --queries distinct queries each, the query-vector cache cleared
before each block: no search repeats a query, so neither its vector nor the rows of its answer (the
decrypted-vector and row caches) are there from an earlier search of the same text.
Each search is timed in wall time and in this process's CPU time; on a shared machine the CPU time is
the steadier figure (`--threads 1` keeps OpenMP spin-waiting out of it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import faiss
import numpy as np

from bench.synthetic_memories import queries, texts
from embeddings import encoder as encoder_mod
from embeddings import index as vindex
from embeddings import memories
from embeddings.encoder import Encoder, load_model
from embeddings.service import INDEX_BLOB, MemoryService
from vault.keys import KdfParams
from vault.store import Vault

KDF = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)
NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)


def _kind(text: str) -> str:
    return {"V": "visit", "C": "event", "U": "usage"}.get(text[0], "note")


def populate(vault: Vault, docs: list[str], vectors: np.ndarray) -> float:
    """Write memories and the sealed index; returns seconds spent sealing."""
    rng = np.random.default_rng(3)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    offsets = rng.integers(0, 365 * 24 * 60, size=len(docs))
    items = []
    for i, text in enumerate(docs):
        start = base + timedelta(minutes=int(offsets[i]))
        kind = _kind(text)
        items.append(memories.Memory(
            memory_id=i + 1, kind=kind, text=text, text_redacted=None, start_ts=start,
            end_ts=start + timedelta(minutes=45), utc_offset_min=0, tags=(kind,), details={},
            source=memories.SOURCE.get(kind, "agent"), source_table=None, source_row_ids=()))
    chunk = 100_000
    for lo in range(0, len(items), chunk):
        vault.insert_frame("memories", memories.frame(items[lo : lo + chunk], now=base), on_conflict_nothing=False)
    vault.execute("INSERT INTO memory_vectors SELECT memory_id, 'sentence-transformers/all-MiniLM-L6-v2', ?, "
                  "'bfloat16', text_sha, now() FROM memories", [Encoder().info.version])
    ix = vindex.VectorIndex.new(vectors.shape[1], ivf=len(docs) > vindex.IVF_THRESHOLD)
    t = time.perf_counter()
    for lo in range(0, len(docs), chunk):
        ix.add(np.arange(lo + 1, min(lo + chunk, len(docs)) + 1, dtype=np.int64), vectors[lo : lo + chunk])
    build = time.perf_counter() - t
    t = time.perf_counter()
    vindex.save(vault, INDEX_BLOB, ix, {"model": "sentence-transformers/all-MiniLM-L6-v2",
                                        "model_version": Encoder().info.version, "dtype": "bfloat16", "dim": 384,
                                        "variant": "full"})
    seal = time.perf_counter() - t
    print(f"  index built in {build:.1f} s ({ix.stats.kind}), sealed in {seal:.1f} s "
          f"({vault.blob_path(INDEX_BLOB).stat().st_size / 1e6:.0f} MB)")
    return seal


def _dense_recall(vault: Vault, flat: faiss.IndexFlatIP, qs: list[str], encoder: Encoder) -> dict:
    """The sealed index (IVF above the threshold) against an exact scan of the same vectors, per query."""
    loaded = vindex.load(vault, INDEX_BLOB)
    assert loaded is not None
    ix = loaded[0]
    at10, at100 = [], []
    for q in qs:
        qv = encoder.encode_query(q)
        _, exact = flat.search(qv, 100)
        got, _ = ix.search(qv, 100)
        truth = exact[0] + 1  # memory ids are positions + 1
        at10.append(len(set(got[:10].tolist()) & set(truth[:10].tolist())) / 10)
        at100.append(len(set(got.tolist()) & set(truth.tolist())) / 100)
    return {"kind": ix.stats.kind, "at10": float(np.mean(at10)), "at100": float(np.mean(at100))}


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, p))


def run_size(n: int, real: np.ndarray, docs_all: list[str], qs: list[str], model, encoder: Encoder,  # noqa: ANN001
             keep: Path | None = None) -> dict:
    rng = np.random.default_rng(n)
    docs = (docs_all * (n // len(docs_all) + 1))[:n] if len(docs_all) < n else docs_all[:n]
    docs = [d if i < len(docs_all) else f"{d} #{i}" for i, d in enumerate(docs)]
    vecs = rng.normal(size=(n, real.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs[: min(n, len(real))] = real[: min(n, len(real))]
    with tempfile.TemporaryDirectory() as tmp:
        home = (keep / f"n{n}") if keep is not None else Path(tmp) / "home"
        if keep is not None and (home / "vault.duckdb").exists():
            vault = Vault.open(home, "bench passphrase")  # built by an earlier run: same seed, same data
            print(f"  reusing the vault in {home}")
        else:
            vault, _ = Vault.create(home, "bench passphrase", kdf=KDF)
            with vault:
                populate(vault, docs, vecs)
                vault.checkpoint()
            vault = Vault.open(home, "bench passphrase")
        with vault:
            svc = MemoryService(vault, encoder=encoder)
            t = time.perf_counter()
            svc.search("warm up", k=10, now=NOW)
            cold = time.perf_counter() - t
            svc.serve_queries()  # as `lifevault serve` does in its warm-up
            flat = faiss.IndexFlatIP(vecs.shape[1])
            flat.add(vecs)
            for q in qs[:10]:
                svc.search(q + " warm", k=10, now=NOW)
            ours, base, filtered, embed, ours_cpu, base_cpu = [], [], [], [], [], []
            half = len(qs) // 2
            for block in (qs[:half], qs[half:]):  # two blocks (ABAB) to spread other processes' load; no
                # search repeats a query, so neither the query vectors nor the rows of its answer are cached
                encoder_mod._QUERY_VECTORS.clear()
                for q in block:
                    t, c = time.perf_counter(), time.process_time()
                    res = svc.search(q, k=10, now=NOW)
                    ours.append(time.perf_counter() - t)
                    ours_cpu.append(time.process_time() - c)
                    assert len(res.hits) == 10
                for q in block:
                    t, c = time.perf_counter(), time.process_time()
                    qv = model.encode([q], normalize_embeddings=True)
                    flat.search(qv, 10)
                    base.append(time.perf_counter() - t)
                    base_cpu.append(time.process_time() - c)
            encoder_mod._QUERY_VECTORS.clear()
            for q in qs:
                t = time.perf_counter()
                encoder.encode_query(q)
                embed.append(time.perf_counter() - t)
            recall = _dense_recall(vault, flat, qs, encoder)
            encoder_mod._QUERY_VECTORS.clear()
            for i, q in enumerate(qs):
                t = time.perf_counter()
                res = svc.search(f"{q} {['in March 2024', 'on weekends', 'after 9pm last year'][i % 3]}", k=10, now=NOW)
                filtered.append(time.perf_counter() - t)
                assert len(res.hits) == 10
            svc.close()
    out = {"n": n, "recall": recall, "cold_load_s": cold, "ours": ours, "base": base, "filtered": filtered, "embed": embed,
           "ours_cpu": ours_cpu, "base_cpu": base_cpu}
    print(f"  n={n:>9,}: ours p50 {pct(ours, 50):6.1f} ms p95 {pct(ours, 95):6.1f} | baseline p50 {pct(base, 50):6.1f} "
          f"p95 {pct(base, 95):6.1f} | with time filters p50 {pct(filtered, 50):6.1f} p95 {pct(filtered, 95):6.1f} | "
          f"query embedding alone p50 {pct(embed, 50):5.1f} | first search (loads index+catalog) {cold:5.1f} s")
    print(f"  dense signal vs the exact scan ({recall['kind']}): recall@10 {recall['at10']:.4f}, "
          f"recall@100 {recall['at100']:.4f} (the depth fused with BM25)")
    print(f"  CPU time: ours p50 {pct(ours_cpu, 50):6.1f} ms p95 {pct(ours_cpu, 95):6.1f} | baseline p50 "
          f"{pct(base_cpu, 50):6.1f} p95 {pct(base_cpu, 95):6.1f}")
    print(f"  RATIO p50 ours/baseline {pct(ours, 50) / pct(base, 50):.2f}x, p95 {pct(ours, 95) / pct(base, 95):.2f}x "
          f"(CPU p50 {pct(ours_cpu, 50) / pct(base_cpu, 50):.2f}x, p95 {pct(ours_cpu, 95) / pct(base_cpu, 95):.2f}x)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--million", action="store_true", help="also 1,000,000 memories (IVF; minutes to build)")
    ap.add_argument("--encode", type=int, default=2000, help="memories embedded for real (the rest: random)")
    ap.add_argument("--queries", type=int, default=200, help="distinct queries a block (two blocks)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--keep", type=Path, help="build each size's vault in DIR/n<size> and reuse it in later runs "
                    "(the 1M IVF build takes 2-6 min); the vault is encrypted like any other")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    sizes = args.sizes + ([1_000_000] if args.million else [])
    encoder = Encoder()
    model = load_model()
    docs = texts(max(args.encode, 10_000))
    t = time.perf_counter()
    real = encoder.encode(docs[: args.encode])
    print(f"{args.encode} memories embedded for real in {time.perf_counter() - t:.1f} s; "
          f"faiss threads {faiss.omp_get_max_threads()}")
    qs = list(dict.fromkeys(queries(args.queries * 4)))[: args.queries * 2]  # two blocks of distinct queries
    results = [run_size(n, real, docs, qs, model, encoder, args.keep) for n in sizes]
    print("\nsize        ours p50/p95 ms     baseline p50/p95 ms   filtered p50/p95 ms   index  dense recall@10")
    for r in results:
        print(f"{r['n']:>9,}   {pct(r['ours'], 50):6.1f} / {pct(r['ours'], 95):6.1f}     "
              f"{pct(r['base'], 50):6.1f} / {pct(r['base'], 95):6.1f}       "
              f"{pct(r['filtered'], 50):6.1f} / {pct(r['filtered'], 95):6.1f}       "
              f"{r['recall']['kind']:>5}  {r['recall']['at10']:.3f}")
    print("median query-embedding ms:", round(statistics.median(results[0]["embed"]) * 1000, 1))


if __name__ == "__main__":
    main()
