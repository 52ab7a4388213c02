"""Vault benchmarks: encrypted vs plaintext DuckDB, and unlock time for a large vault.

    .venv/bin/python -m bench.bench_vault [--rows 10000000] [--unlock-gb 1.0]

Both databases are opened through the same locked-down session (httpfs loaded, external access off);
the only difference is ENCRYPTION_KEY on ATTACH. The scan runs on a freshly reopened database, so every
block is read from the file (and decrypted). Each timing is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from vault.keys import KdfParams
from vault.store import DB_FILE, Vault, _connect

WRITE_SQL = (
    "CREATE OR REPLACE TABLE bench AS SELECT range AS id, (range % 1000) AS grp, random() AS x, "
    "md5(range::VARCHAR) AS s FROM range({rows})"
)
SCAN_SQL = "SELECT grp, count(*), avg(x), max(s) FROM bench GROUP BY grp"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def compare(rows: int, repeat: int, work: Path) -> dict[str, float]:
    results: dict[str, list[float]] = {k: [] for k in ("plain_write", "enc_write", "plain_scan", "enc_scan")}
    for i in range(repeat):
        for enc in (False, True):
            home = work / f"{'enc' if enc else 'plain'}{i}"
            home.mkdir()
            con = _connect(home)
            key = "YmVuY2htYXJrLWtleS1iZW5jaG1hcmsta2V5LTAxMjM="
            opts = "(ENCRYPTION_KEY ?, ENCRYPTION_CIPHER 'GCM')" if enc else ""
            con.execute(f"ATTACH '{home / 'db.duckdb'}' AS b {opts}", [key] if enc else None)
            con.execute("USE b")
            tag = "enc" if enc else "plain"
            results[f"{tag}_write"].append(_timed(lambda c=con: (c.execute(WRITE_SQL.format(rows=rows)), c.execute("CHECKPOINT"))))
            con.close()
            # reopen so the scan reads (and for the encrypted side, decrypts) every block from the file
            con = _connect(home)
            con.execute(f"ATTACH '{home / 'db.duckdb'}' AS b {opts}", [key] if enc else None)
            con.execute("USE b")
            results[f"{tag}_scan"].append(_timed(lambda c=con: c.execute(SCAN_SQL).fetchall()))
            con.close()
            shutil.rmtree(home)
    return {k: min(v) for k, v in results.items()}


def unlock_time(target_gb: float, work: Path) -> tuple[float, float, float, float]:
    """Build a vault of about target_gb, then time Argon2id (default parameters) + attach + first query."""
    from vault import keys as keymod

    home = work / "big"
    v, _ = Vault.create(home, "bench passphrase", kdf=KdfParams())
    rows = int(target_gb * 1e9 / 34)  # ~34 bytes per row on disk after compression
    v.execute(
        "CREATE TABLE filler AS SELECT range AS id, md5(range::VARCHAR) || md5((range * 7)::VARCHAR) AS s FROM range(?)",
        [rows],
    )
    v.close()
    size_gb = (home / DB_FILE).stat().st_size / 1e9
    t = time.perf_counter()
    keys = keymod.unlock(home, "bench passphrase")
    kdf_s = time.perf_counter() - t
    del keys
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        with Vault.open(home, "bench passphrase") as v:
            v.scalar("SELECT count(*) FROM audit_log")
        best = min(best, time.perf_counter() - t)
    return size_gb, kdf_s, best, best - kdf_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--unlock-gb", type=float, default=1.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lv-bench-vault-"))
    try:
        r = compare(args.rows, args.repeat, work)
        print(f"rows={args.rows:,} (best of {args.repeat})")
        for op in ("write", "scan"):
            p, e = r[f"plain_{op}"], r[f"enc_{op}"]
            label = "write+checkpoint" if op == "write" else "group-by scan"
            print(f"  {label:<17} plaintext {p:7.3f}s  encrypted {e:7.3f}s  overhead {100 * (e / p - 1):+6.1f}%  (goal <= +10%)")
        size, kdf_s, total, attach = unlock_time(args.unlock_gb, work)
        print(f"unlock {size:.2f} GB vault: Argon2id(64 MiB, t=3, p=4) {kdf_s:.3f}s + attach/open {attach:.3f}s = {total:.3f}s (goal < 1 s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
