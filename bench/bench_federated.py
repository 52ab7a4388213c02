"""Federated next-app-category model: utility of DP-FedAvg at per-user epsilon 1, 4, 8, in one run.

    python -m bench.bench_federated                       # 100 devices x 30 rounds, a year of data each
    python -m bench.bench_federated --devices 100 --rounds 30 --days 30 --root /tmp/bfleet   # bench/README.md

Side by side, on the same synthetic fleet (synth/ personas, each in its own encrypted vault) and
the same held-out devices (20% of the fleet, never trained on; their most recent 20% of examples is the
test set):
  - non-private FedAvg (no clipping, no noise: the ceiling),
  - central DP (device clips, server adds N(0, (zC)^2) to the sum, fixed denominator),
  - local DP (each device adds N(0, (zC)^2) to its own clipped update),
  - with --modes distributed: distributed DP, the Skellam mechanism the devices and server run (integer
    shares with Skellam noise, SecAgg+'s exact modular sum decoded with Flower's own functions, z set on
    the Skellam RDP figure the ledgers record), and with distributed-gaussian the previous distributed path
    for comparison (bench only: a Gaussian share N(0, (zC)^2 / t) clipped per coordinate to C (1 + 8z/sqrt t),
    quantized by SecAgg+ to 2^22 levels, mean over the survivors; z on the Gaussian PLD figure),
  - per-device-only: each held-out device trains alone on its first 80% and predicts its last 20%.
z is set so that `rounds` releases compose to the per-user epsilon at delta 1e-6 (PLD, no amplification),
which is also the budget each device enforces.

Flower's engine is bypassed for speed: rounds run in-process, but every DP device round is the real
client.release_round (budget check, local training, float64 clip, CSPRNG noise, ledger append) against a
per-configuration ledger vault for each device, and the server step is server_app's aggregation rule.
Configurations run in parallel worker processes (--workers, default 2).

Then the device round time: one persona with a year of data, vault open to update returned (features from
the vault, 50 local steps, clip, noise, ledger), median of 5 after a first round that pays the imports
(the model is numpy: federated/model.py).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

DATA: dict[str, Any] = {}  # filled in the parent before the workers fork (copy-on-write, never pickled)


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    mode: str | None  # None: non-private; "distributed-gaussian": the previous distributed path (bench only)
    epsilon: float | None
    seed: int = 7


def concat(exs: list[Any]) -> Any:
    from federated.features import Examples

    return Examples(**{f.name: np.concatenate([getattr(e, f.name) for e in exs]) for f in fields(Examples)})


def load_fleet(args: argparse.Namespace) -> tuple[Any, dict[int, Any]]:
    from federated import features as feat
    from lifevault.fleet import personas

    root = Path(args.root or tempfile.mkdtemp(prefix="lifevault-bench-fleet-"))
    t0 = time.perf_counter()
    fleet = personas(root, args.devices, seed=args.seed, days=args.days, workers=args.workers,
                         progress=lambda i: print(f"  persona {i + 1}", file=sys.stderr, flush=True))
    print(f"fleet: {args.devices} devices x {args.days} days in {root} ({time.perf_counter() - t0:.0f} s)", flush=True)
    data = {}
    for i in range(len(fleet.homes)):
        with fleet.device(i).vault() as v:
            ex = feat.examples(v)
        try:
            feat.require_enough(ex)
            data[i] = ex
        except feat.TooLittleData:
            print(f"  device {i}: too little data ({len(ex)} examples), left out", file=sys.stderr)
    return fleet, data


def accuracy(weights: np.ndarray, test: Any) -> float:
    from federated import client as dev

    correct, total = dev.evaluate(weights, test)
    return correct / total


def run_config(cfg: Config) -> dict[str, Any]:
    """One configuration's federated run (in a worker process)."""
    from federated import aggregate
    from federated import client as dev
    from federated import server_app as sapp
    from federated import simulate as sim
    from vault.store import Vault

    args, train_ids, test = DATA["args"], DATA["train_ids"], DATA["test"]
    exs = DATA["examples"]
    z = 0.0
    n, dim = len(train_ids), int(sapp.initial_weights(cfg.seed).size)
    t = aggregate.noise_shares_for(n, aggregate.DEFAULT_NOISE_SHARES_FRACTION)

    def skellam_event(x: float) -> Any:
        gamma = aggregate.pick_gamma(sampled=n, dim=dim, clip_norm=args.clip, noise_multiplier=x, noise_shares=t)
        return aggregate.skellam_params(dim=dim, clip_norm=args.clip, noise_multiplier=x, gamma=gamma, noise_shares=t)

    if cfg.epsilon is not None:
        z = sim.noise_for(cfg.epsilon, delta=args.delta, rounds=args.rounds,
                          event=skellam_event if cfg.mode == "distributed" else None)
    policy = dev.Policy(budget_epsilon=cfg.epsilon or 1.0, delta=args.delta)
    if cfg.mode == "distributed-gaussian":  # its ledger would record z / sqrt(t) as a local release: no budget
        policy = dev.Policy(budget_epsilon=1e6, delta=args.delta)
    skellam_kw: dict[str, Any] = {}
    if cfg.mode == "distributed":
        p = skellam_event(z)
        skellam_kw = {"noise_shares": t, "mechanism": "skellam", "gamma": p.gamma, "dim": dim, "bits": p.bits}
    ledgers: dict[int, Any] = {}
    if cfg.mode is not None:
        base = Path(DATA["ledger_root"]) / f"{cfg.name}-seed{cfg.seed}"
        for i in train_ids:
            ledgers[i], _ = Vault.create(base / f"device-{i:03d}", sim.SYNTH_PASSPHRASE, kdf=sim.synth_kdf())
    w = sapp.initial_weights(cfg.seed)
    curve, t0, refused = [], time.perf_counter(), 0
    try:
        for rnd in range(1, args.rounds + 1):
            old = cfg.mode == "distributed-gaussian"  # the device adds N(0, (zC)^2 / t), as a local round would
            spec = dev.RoundSpec(round=rnd + 1000 * cfg.seed, model_id=f"bench-{cfg.name}",
                                 mode="local" if old else cfg.mode or "central", clip_norm=args.clip,
                                 noise_multiplier=(z / math.sqrt(t) if old else z) or 1.0,
                                 local_steps=args.local_steps, batch_size=args.batch_size, learning_rate=args.lr,
                                 **skellam_kw)
            updates = []
            for i in train_ids:
                if cfg.mode is None:
                    updates.append(dev.train_update(w, exs[i], spec))
                    continue
                try:
                    updates.append(dev.release_round(ledgers[i], w, spec, policy, examples=exs[i]).update)
                except dev.BudgetExhausted:
                    refused += 1
            if old:
                mean = aggregate.secagg_mean(updates, previous_secagg_settings(args.clip, z, t)) if updates else None
            elif cfg.mode == "distributed":
                mean = aggregate.mean_update(updates, mode="distributed", sampled=n, clip_norm=args.clip,
                                             noise_multiplier=z, noise_shares=t, gamma=skellam_kw["gamma"])
            else:
                mean = aggregate.mean_update(updates, mode=cfg.mode or "local", sampled=len(train_ids),
                                             clip_norm=args.clip, noise_multiplier=z if cfg.mode == "central" else 0.0)
            if mean is not None:  # the reference server's rule (fixed denominator and server noise in central)
                w = w + args.server_lr * mean
            curve.append(accuracy(w, test))
    finally:
        for v in ledgers.values():
            v.close()
    return {"config": cfg.name, "seed": cfg.seed, "mode": cfg.mode or "none", "epsilon": cfg.epsilon, "noise_multiplier": z,
            "accuracy": curve[-1], "best": max(curve), "curve": curve, "refused": refused,
            "seconds": round(time.perf_counter() - t0, 1)}


def previous_secagg_settings(clip: float, z: float, t: int) -> dict[str, Any]:
    """The SecAgg+ settings of the distributed path before the Skellam mechanism (bench comparison only)."""
    return {"clipping_range": clip * (1.0 + 8.0 * z / math.sqrt(t)), "quantization_range": 2**22,
            "modulus_range": 2**32, "max_weight": 2.0}


def per_device_only(args: argparse.Namespace) -> float:
    """Each held-out device trains alone on its past (as many SGD steps as a federated device does in
    all the rounds) and predicts its own future; micro-averaged like the federated figures."""
    from federated import client as dev
    from federated import server_app as sapp

    correct = total = 0
    for i in DATA["held_ids"]:
        past, future = DATA["examples"][i].split_by_time(0.8)
        w0 = sapp.initial_weights(args.seed)
        spec = dev.RoundSpec(round=1, model_id="alone", mode="central", clip_norm=1.0, noise_multiplier=1.0,
                             local_steps=args.local_steps * args.rounds, batch_size=args.batch_size,
                             learning_rate=args.lr)
        w = w0 + dev.train_update(w0, past, spec)
        c, t = dev.evaluate(w, future)
        correct, total = correct + c, total + t
    return correct / total


def majority_baselines() -> tuple[float, float, str]:
    """(fleet majority, per-device majority, the fleet's majority category): the constant predictor of the
    most frequent category over the training devices' examples, and each held-out device predicting its
    own most frequent past category; micro-averaged over the test set like every other figure."""
    from federated import vocab

    test, exs = DATA["test"], DATA["examples"]
    counts = np.bincount(np.concatenate([exs[i].y_app for i in DATA["train_ids"]]),
                         minlength=len(vocab.APP_CATEGORIES))
    top = int(np.argmax(counts))
    fleet = float(np.mean(np.asarray(test.y_app) == top))
    correct = total = 0
    for i in DATA["held_ids"]:
        past, future = exs[i].split_by_time(0.8)
        own = int(np.argmax(np.bincount(past.y_app, minlength=len(vocab.APP_CATEGORIES))))
        correct += int(np.sum(np.asarray(future.y_app) == own))
        total += len(future)
    return fleet, correct / total, vocab.APP_CATEGORIES[top]


def spread(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def round_time(args: argparse.Namespace) -> tuple[list[float], int]:
    """Wall time of the whole device round (vault open, budget check, features from the vault, 50 local
    steps, clip, noise, ledger append) on a persona with a year of data; the first round also pays the
    one-off imports (dp-accounting, scipy) and is reported apart. Returns (times, examples)."""
    from federated import client as dev
    from federated import features as feat
    from federated import server_app as sapp
    from lifevault.fleet import personas

    root = Path(args.root or tempfile.mkdtemp(prefix="lifevault-bench-fleet-")) / "year"
    fleet = personas(root, 1, seed=args.seed, days=365)
    w = sapp.initial_weights(args.seed)
    times = []
    with fleet.device(0).vault() as v:
        n = len(feat.examples(v))
        start = 1 + len(dev.history(v))
        for r in range(start, start + 6):
            spec = dev.RoundSpec(round=r, model_id="bench-round-time", mode="local", clip_norm=args.clip,
                                 noise_multiplier=50.0, local_steps=50, batch_size=64, learning_rate=args.lr)
            t0 = time.perf_counter()
            dev.release_round(v, w, spec, dev.Policy(budget_epsilon=1000.0))
            times.append(time.perf_counter() - t0)
    return times, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_federated", description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--epsilons", default="1,4,8")
    p.add_argument("--delta", type=float, default=1e-6)
    p.add_argument("--clip", type=float, default=0.5)
    p.add_argument("--local-steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--server-lr", type=float, default=1.0)
    p.add_argument("--held-out", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=7, help="fleet, held-out split and the first training seed")
    p.add_argument("--seeds", type=int, default=3, help="training runs per configuration (seed, seed + 1, ...)")
    p.add_argument("--cli-defaults", action="store_true",
                   help="C 1.0, lr 0.05, 50 local steps: what `lifevault federate simulate` uses")
    p.add_argument("--skip-round-time", action="store_true")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--root", help="keep the synthetic fleet here (re-used by later runs)")
    p.add_argument("--modes", default="central,local",
                   help="DP modes to run (the non-private baseline always runs): central, local, distributed, "
                        "distributed-gaussian (the previous distributed path, for comparison)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    unknown = set(args.modes.split(",")) - {"central", "local", "distributed", "distributed-gaussian"}
    if unknown:
        p.error(f"--modes: unknown mode(s) {', '.join(sorted(unknown))}")
    if args.cli_defaults:
        args.clip, args.lr, args.local_steps = 1.0, 0.05, 50

    fleet, exs = load_fleet(args)
    ids = sorted(exs)
    order = np.random.default_rng(args.seed).permutation(len(ids))
    n_held = max(1, math.floor(args.held_out * len(ids)))
    held = sorted(ids[k] for k in order[:n_held])
    train = [i for i in ids if i not in held]
    DATA.update(args=args, examples=exs, train_ids=train, held_ids=held,
                test=concat([exs[i].split_by_time(0.8)[1] for i in held]),
                ledger_root=tempfile.mkdtemp(prefix="lifevault-bench-ledgers-"))
    print(f"{len(train)} training devices, {len(held)} held out ({len(DATA['test']):,} test examples), "
          f"{args.rounds} rounds, C={args.clip}, delta={args.delta:g}", flush=True)

    eps = [float(e) for e in args.epsilons.split(",") if e]
    seeds = [args.seed + k for k in range(args.seeds)]
    configs = [Config("non-private", None, None, s) for s in seeds]
    for mode in args.modes.split(","):
        configs += [Config(f"{mode}-eps{e:g}", mode, e, s) for e in eps for s in seeds]
    t0 = time.perf_counter()
    try:
        with mp.get_context("fork").Pool(args.workers) as pool:
            results = pool.map(run_config, configs, chunksize=1)
    finally:
        shutil.rmtree(DATA["ledger_root"], ignore_errors=True)
    alone = per_device_only(args)
    fleet_majority, own_majority, top = majority_baselines()
    times, year_examples = round_time(args) if not args.skip_round_time else ([0.0, 0.0], 0)
    first, times = times[0], times[1:]
    wall = time.perf_counter() - t0

    by_config: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_config.setdefault(r["config"], []).append(r)
    base = {r["seed"]: r["accuracy"] for r in by_config["non-private"]}
    print()
    print(f"| model (top-1 next app category, {len(held)} held-out devices; mean ± sd over {len(seeds)} seeds) "
          f"| per-user epsilon (delta {args.delta:g}) | noise multiplier z | accuracy | of non-private "
          "| of the gain over the majority class |")
    print("|---|---|---|---|---|---|")
    for rows in by_config.values():
        r0 = rows[0]
        e = "-" if r0["epsilon"] is None else f"{r0['epsilon']:g}"
        z = "-" if r0["mode"] == "none" else f"{r0['noise_multiplier']:.3f}"
        label = {"none": "FedAvg, non-private", "central": "central DP (server noise)",
                 "local": "local DP (device noise)", "distributed": "distributed DP (Skellam, SecAgg+)",
                 "distributed-gaussian": "distributed DP, previous Gaussian share"}[r0["mode"]]
        accs = [r["accuracy"] for r in rows]
        ratio = [r["accuracy"] / base[r["seed"]] for r in rows]
        kept = [(r["accuracy"] - fleet_majority) / (base[r["seed"]] - fleet_majority) for r in rows]
        print(f"| {label} | {e} | {z} | {spread(accs)} | {statistics.mean(ratio):.0%} | {statistics.mean(kept):.0%} |")
    mean_base = statistics.mean(base.values())
    for label, acc in ((f"majority class of the training fleet (always '{top}')", fleet_majority),
                       ("per-device majority (each held-out device's own most frequent category)", own_majority),
                       ("per-device only (each held-out device trains alone on its past)", alone)):
        print(f"| {label} | - (nothing leaves) | - | {acc:.3f} | {acc / mean_base:.0%} | "
              f"{(acc - fleet_majority) / (mean_base - fleet_majority):.0%} |")
    print()
    if not args.skip_round_time:
        print(f"device round, a year of data ({year_examples:,} examples): median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}; first round with imports {first:.2f} s) on "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"C {args.clip}, lr {args.lr}, {args.local_steps} local steps, batch {args.batch_size}; wall time {wall:.0f} s")
    if args.json:
        print(json.dumps({"results": results, "per_device_only": alone, "fleet_majority": fleet_majority,
                          "per_device_majority": own_majority, "round_seconds": times,
                          "first_round_seconds": first, "year_examples": year_examples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
