"""Indexing throughput: embeddings.encoder.Encoder vs plain SentenceTransformer.encode, same texts, same run.

    python -m bench.bench_encode [--n 3000] [--rounds 2]

Baseline: SentenceTransformer(model).encode(texts, batch_size=32, normalize_embeddings=True), float32
(its defaults; it already sorts by length within the call). Ours: texts tokenised once, sorted by token
length, batched by a token budget, bfloat16 autocast where the CPU has native bf16 (else float32). The
float32 variant of ours isolates what batching alone gives. Quality cost: cosine of our vectors to the
baseline's, and agreement of top-10 neighbour lists for synthetic queries (bench/eval_retrieval.py
measures recall on questions with known answers for both dtypes).
Runs alternate baseline/ours `--rounds` times; the median time of each is reported, as wall time and as
this process's CPU time (on a shared machine the CPU time is the steadier measure; `--threads 1` makes
it exact work, free of OpenMP spin-waiting).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bench.synthetic_memories import queries, texts
from embeddings.encoder import Encoder, bf16_supported, load_model


def _time(fn, rounds: int) -> tuple[float, float, np.ndarray]:  # noqa: ANN001
    times, cpu, out = [], [], None
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    assert out is not None, "rounds must be at least 1"
    return statistics.median(times), statistics.median(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    docs = texts(args.n)
    model = load_model()
    ours, ours32 = Encoder(), Encoder(dtype="float32")
    model.encode(docs[:64], batch_size=32)
    ours.encode(docs[:64])
    tok = ours.count_tokens(docs)
    print(f"{args.n} synthetic memory texts, tokens p50 {int(np.median(tok))} max {max(tok)}; "
          f"bf16 on this CPU: {bf16_supported()} (ours uses {ours.dtype})")
    results: dict[str, tuple[float, float, np.ndarray]] = {}
    for name, fn in (
        ("baseline", lambda: model.encode(docs, batch_size=32, normalize_embeddings=True)),
        ("ours", lambda: ours.encode(docs)),
        ("ours_fp32", lambda: ours32.encode(docs)),
    ):
        results[name] = _time(fn, args.rounds)
    base_t, base_c, base_v = results["baseline"]
    for name, (t, c, v) in results.items():
        cos = np.sum(v * base_v, axis=1)
        print(f"  {name:<10} {args.n / t:8.1f} memories/s  ({t:6.2f} s wall, {c:6.2f} s CPU)  ratio wall "
              f"{base_t / t:4.2f}x CPU {base_c / c:4.2f}x  cosine to baseline mean {cos.mean():.6f} min {cos.min():.6f}")
    qs = queries(200)
    qb = model.encode(qs, normalize_embeddings=True)
    qo = ours.encode(qs)
    top_b = np.argsort(-(qb @ base_v.T), axis=1)[:, :10]
    top_o = np.argsort(-(qo @ results["ours"][2].T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_b, top_o, strict=True)])
    top1 = np.mean([a[0] in b for a, b in zip(top_b, top_o, strict=True)])
    print(f"  quality: top-10 neighbour overlap with the baseline {overlap:.4f}; baseline top-1 within ours' top-10 "
          f"{top1:.4f} (200 queries)")
    print(f"RATIO ours/baseline throughput: wall {base_t / results['ours'][0]:.2f}x, CPU {base_c / results['ours'][1]:.2f}x "
          f"(batching alone: wall {base_t / results['ours_fp32'][0]:.2f}x, CPU {base_c / results['ours_fp32'][1]:.2f}x)")


if __name__ == "__main__":
    main()
