"""Cold command-line start: wall time, CPU time and peak memory of one `lifevault` process, no server running.

    git archive <commit before> | tar -x -C /tmp/before     # the code to compare with, outside the repository
    python -m bench.bench_cold --home demo-home --passphrase 'demo passphrase (not secret)' --before /tmp/before

Each command runs as a fresh process (nothing warm but the OS page cache, which the first, discarded run
fills), every case once per round, rounds interleaved, so load on the machine hits every case alike. Cases:
  now             this tree;
  before          the same command run from the --before tree (its own imports, catalog, indexes);
  rows catalog    this tree with the catalog snapshot switched off: catalog and BM25 rebuilt from the rows;
  both indexes    this tree loading the redacted vector index too, as every search did before;
  model           this tree with the numpy query encoder switched off (sentence-transformers; --model).
The switches are monkeypatches made by the bench's child process, never settings of the product.
Peak memory is the child's max RSS (os.wait4). PYTHONDONTWRITEBYTECODE is dropped from the children's
environment, so the discarded first run leaves both trees' bytecode cached as an installed copy has it (with
it set, every recently edited module was compiled from source in every run: ~5 ms each). The KDF of the vault (its keys.json) is printed: it is a
security parameter and a floor of every command that opens the vault.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUN = "from lifevault.cli import main; sys.exit(main())"
MAIN = "import sys; " + RUN
NO_LEAN = ("import sys; import embeddings.lean as lean; lean.LeanEncoder.supports = staticmethod(lambda path: False); "
           + RUN)
NO_SNAPSHOT = ("import sys; import embeddings.snapshot as s; s.load = lambda *a, **k: None; "  # load: before 3b9ac9c
               "s.restore = lambda *a, **k: None; s.save = lambda *a, **k: []; " + RUN)
BOTH_INDEXES = ("import sys; import embeddings.service as s; state = s.MemoryService._state; "
                "s.MemoryService._state = lambda self, redaction=None: state(self, None); " + RUN)


def run(code: str, args: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float, float]:
    """(wall s, cpu s, peak MiB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=cwd)
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
    p.add_argument("--before", type=Path, help="a source tree of the code to compare with (git archive of a commit)")
    p.add_argument("--before-home", type=Path, help="a copy of --home for the --before tree (default: --home), so "
                   "that a snapshot format either tree writes is never the other's to rebuild")
    p.add_argument("--model", action="store_true", help="also the sentence-transformers query encoder (slow)")
    a = p.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"LIFEVAULT_HOME": str(a.home.absolute()), "LIFEVAULT_PASSPHRASE": a.passphrase}
    load_before = os.getloadavg()[0]
    search, context = ["search", a.query], ["context", a.query, "--budget", "400"]
    before_env = env | {"LIFEVAULT_HOME": str((a.before_home or a.home).absolute())}
    cases: list[tuple[str, str, list[str], Path | None]] = []
    for what, args in (("search", search), ("context", context), ("status", ["status"]),
                       ("token list", ["token", "list"]), ("--help", ["--help"])):
        cases.append((f"{what} (now)", MAIN, args, None))
        if a.before:
            cases.append((f"{what} (before)", MAIN, args, a.before.absolute()))
    envs = {name: before_env if cwd is not None else env for name, _, _, cwd in cases}
    cases += [("search (rows catalog)", NO_SNAPSHOT, search, None), ("search (both indexes)", BOTH_INDEXES, search, None)]
    if a.model:
        cases.append(("search (model)", NO_LEAN, search, None))
    envs |= {name: env for name, _, _, cwd in cases if name not in envs}
    for name, code, args, cwd in cases:  # warm the page cache (and write the snapshot once); not counted
        run(code, args, envs[name], cwd)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _, _ in cases}
    for _ in range(a.repeat):
        for name, code, args, cwd in cases:
            results[name].append(run(code, args, envs[name], cwd))
    kdf = json.loads((a.home / "keys.json").read_text()).get("kdf", {})
    print(f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; {a.repeat} runs each, "
          f"median (min wall in brackets); vault KDF {kdf}")
    print(f"{'command':26s} {'wall s':>15s} {'cpu s':>8s} {'peak MiB':>9s}")
    med = {n: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for n, rs in results.items()}
    for name, (wall, cpu, rss) in med.items():
        print(f"{name:26s} {wall:8.2f} ({min(r[0] for r in results[name]):4.2f}) {cpu:8.2f} {rss:9.0f}")
    if a.before:
        for what in ("search", "context", "status", "token list", "--help"):
            new, old = med[f"{what} (now)"], med[f"{what} (before)"]
            print(f"{what}: wall {new[0] / old[0]:.2f}x, cpu {new[1] / old[1]:.2f}x, peak {new[2] / old[2]:.2f}x of before")


if __name__ == "__main__":
    main()
