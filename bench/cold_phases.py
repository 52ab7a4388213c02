"""Where a cold `status` or `search` spends its time: each step of the command timed in one process.

    LIFEVAULT_HOME=demo-home LIFEVAULT_PASSPHRASE='demo passphrase (not secret)' python -m bench.cold_phases status
    ... python -m bench.cold_phases search

The steps are the ones the command takes, in its order, called directly (the CLI's plain-line printing and
the interpreter's own start, ~30 ms, are left out). CPU is the process's, so the KDF thread's CPU shows in the
step during which it ran; "wait for the KDF" is what was left of it when the keys were needed. Prints a
markdown table: step, wall ms, CPU ms.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "status"
    if what not in ("status", "search"):
        raise SystemExit("usage: python -m bench.cold_phases status|search")
    rows: list[tuple[str, float, float]] = []
    last = [time.perf_counter(), time.process_time()]
    first = list(last)

    def mark(step: str) -> None:
        t, c = time.perf_counter(), time.process_time()
        rows.append((step, t - last[0], c - last[1]))
        last[:] = [t, c]

    import typer.main

    import lifevault.cli

    mark("import the CLI (typer, click, our modules)")
    typer.main.get_command(lifevault.cli._only(what))
    mark("typer builds the command")
    from vault import keys as keymod

    home = Path(os.environ["LIFEVAULT_HOME"])
    unlocking = keymod.begin_unlock(home, os.environ["LIFEVAULT_PASSPHRASE"])
    mark("read keys.json, start the KDF thread")
    if what == "search":
        from embeddings.service import MemoryService

        mark("import the search stack (numpy, faiss, duckdb, ours)")
    from vault import store

    mark("import duckdb (vault.store)")
    con = store._connect(home, httpfs=what == "search")
    mark("DuckDB connect, lock down" + (", LOAD httpfs" if what == "search" else " (no httpfs: read-only)"))
    keys = unlocking.keys()
    mark("wait for the KDF (what was left of it)")
    vault = store.Vault._open_with(home, keys, read_only=what != "search", con=con)
    mark("attach, migrations check" + (", head anchor" if what == "search" else ""))
    if what == "search":
        svc = MemoryService(vault)
        svc.search("when did I last see Dr Lee", k=10).to_dict()
        mark("search: snapshot, vector index, encoder, query, audit append")
        svc.close()
    else:
        from vault import status

        status.collect(vault)
        mark("count the tables, stat the files")
    vault.close()
    mark("close" + (" (checkpoint)" if what == "search" else " (no checkpoint)"))
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| step | wall ms | CPU ms |\n|---|---|---|")
    for step, wall, cpu in rows:
        print(f"| {step} | {wall * 1000:.0f} | {cpu * 1000:.0f} |")
    print(f"| in all (after the interpreter's start) | {(last[0] - first[0]) * 1000:.0f} | "
          f"{(last[1] - first[1]) * 1000:.0f} |")


if __name__ == "__main__":
    main()
