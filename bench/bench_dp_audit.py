"""DP audit benchmark: runtime and verdicts of `lifevault audit dp`, and the mu-table check.

    .venv/bin/python -m bench.bench_dp_audit [--canaries 1000] [--rounds 1] [--z Z] [--repeat 1]

For each mode the audit runs the real clip/noise/aggregation with canaries; the baseline in the same
run is the accountant's upper bound for the same mechanism, and the ratio lower/upper says how much of
the claimed epsilon the one-run audit can witness, next to the most it could certify. The mu table
recomputes the fixed-guess-count bound on 2 x 10,000 normal-quantile scores (the reference table of
../shared/reference/dp_vectors.md used label-chosen thresholds; see bench/README.md).
"""

from __future__ import annotations

import argparse
import time

from federated import audit

# the guess counts are fixed before any score is seen (the reference table's ROC-hull thresholds were chosen
# with the labels); these are that procedure's figures on the reference scores
MU_TABLE = {0: (0.0, 0.5), 1: (2.3932367, 0.7603), 2: (4.6722088, 0.9214), 4: (7.4913665, 0.9977)}


def mu_table() -> bool:
    ok = True
    print("| mu | lower bound (reference) | lower bound (measured) | AUROC (measured) | seconds |")
    print("|---|---|---|---|---|")
    for mu, (ref, _auc) in MU_TABLE.items():
        t = time.perf_counter()
        ins, outs = audit.normal_quantile_scores(mu)
        b = audit.one_run_bound(ins, outs, delta=1e-6, significance=0.05)
        ok &= abs(b.epsilon - ref) <= 1e-5
        print(f"| {mu} | {ref:g} | {b.epsilon:.6f} | {b.auroc:.4f} | {time.perf_counter() - t:.2f} |")
    return ok


def audits(canaries: int, rounds: int, z: float, repeat: int) -> None:
    print("| mode | canaries | rounds | z | lower bound (95%) | most certifiable | accountant upper (PLD) | verdict "
          "| seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in ("central", "local", "distributed"):
        for _ in range(repeat):
            r = audit.run_audit(canaries, rounds=rounds, clip_norm=1.0, noise_multiplier=z, mode=mode)
            upper = r.epsilon_upper_bound or float("inf")
            print(f"| {mode} | {canaries} | {rounds} | {z:g} | {r.epsilon_lower_bound:.3f} | "
                  f"{r.epsilon_certifiable_max:.3f} | {upper:.3f} | {r.verdict} | {r.seconds:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--canaries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--z", type=float, default=None, help="default: the audit's own (half of what it can certify)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    ok = mu_table()
    print(f"mu table matches the reference (abs 1e-5): {ok}\n")
    z = args.z if args.z is not None else audit.powerful_noise_multiplier(canaries=args.canaries, rounds=args.rounds)
    audits(args.canaries, args.rounds, z, args.repeat)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
