"""Cold command-line start: wall time, CPU time and peak memory of one `lifevault` process, no server running.

    python -m bench.bench_cold --home demo-home --passphrase 'demo passphrase (not secret)' [--repeat 5]

Each command runs as a fresh process (nothing warm but the OS page cache, which the first, discarded run
fills). The baseline is the same code with the numpy query encoder switched off, so the query goes through
sentence-transformers as it did before (`lean` vs `model` rows), measured in the same run, interleaved.
Peak memory is the child's max RSS (os.wait4).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MAIN = "import sys; from lifevault.cli import main; sys.exit(main())"
NO_LEAN = ("import sys; import embeddings.lean as lean; lean.LeanEncoder.supports = staticmethod(lambda path: False); "
           "from lifevault.cli import main; sys.exit(main())")


def run(code: str, args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, cpu s, peak MiB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args[0]} failed: {err.strip()[-300:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--passphrase", required=True)
    p.add_argument("--query", default="when did I last see Dr Lee")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    env = {**os.environ, "LIFEVAULT_HOME": str(a.home), "LIFEVAULT_PASSPHRASE": a.passphrase}
    cases = [
        ("search (lean)", MAIN, ["search", a.query]),
        ("search (model: before)", NO_LEAN, ["search", a.query]),
        ("context (lean)", MAIN, ["context", a.query, "--budget", "400"]),
        ("context (model: before)", NO_LEAN, ["context", a.query, "--budget", "400"]),
        ("status", MAIN, ["status"]),
        ("token list", MAIN, ["token", "list"]),
        ("--help", MAIN, ["--help"]),
    ]
    for _, code, args in cases:  # warm the page cache; not counted
        run(code, args, env)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in cases}
    for _ in range(a.repeat):  # interleaved, so load on the machine hits every case alike
        for name, code, args in cases:
            results[name].append(run(code, args, env))
    print(f"load average {os.getloadavg()[0]:.1f}; {a.repeat} runs each, median")
    print(f"{'command':26s} {'wall s':>8s} {'cpu s':>8s} {'peak MiB':>9s}")
    med = {n: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for n, rs in results.items()}
    for name, (wall, cpu, rss) in med.items():
        print(f"{name:26s} {wall:8.2f} {cpu:8.2f} {rss:9.0f}")
    for what in ("search", "context"):
        new, old = med[f"{what} (lean)"], med[f"{what} (model: before)"]
        print(f"{what}: wall {new[0] / old[0]:.2f}x, cpu {new[1] / old[1]:.2f}x, peak {new[2] / old[2]:.2f}x of before")


if __name__ == "__main__":
    main()
