"""Ingest benchmarks, each measured against a baseline in the same run.

    .venv/bin/python -m bench.bench_ingest [--points 1000000] [--events 5000] [--memory-limit 192MB] [--fallback]

1. Records.json with N points, end to end into the encrypted vault (`ingest.pipeline.run`: streaming
   parse, validation, keyed row ids, load, derived tables), against the row-by-row baseline the dogsheep
   tools use: stdlib json.load of the whole file + sqlite3 executemany upserts into a plaintext file.
   Each side runs in its own process; peak memory is that process's max RSS, also shown net of the
   RSS it had after imports and opening the vault (the interpreter, polars, duckdb and torch-free
   imports; the RSS at that moment, not the peak so far, which holds the freed Argon2 memory of
   Vault.create). CPU seconds (all threads of the process) are printed too: on a shared machine they
   move less than wall time.
2. An iCalendar file with E events (a fifth of them weekly-recurring), parsed and expanded: occurrences/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


def write_records(path: Path, n: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    t = datetime(2023, 1, 1, tzinfo=UTC)
    lat, lon = 51.5074, -0.1278
    with path.open("w") as f:
        f.write('{"locations": [\n')
        for i in range(n):
            t += timedelta(seconds=rnd.randint(20, 120))
            lat += rnd.uniform(-0.0005, 0.0005)
            lon += rnd.uniform(-0.0005, 0.0005)
            rec = {"latitudeE7": round(lat * 1e7), "longitudeE7": round(lon * 1e7), "accuracy": rnd.randint(3, 60),
                   "source": rnd.choice(("WIFI", "GPS", "CELL")), "deviceTag": 1184882232,
                   "timestamp": t.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
            f.write(("," if i else "") + json.dumps(rec) + "\n")
        f.write("]}\n")


def _rss_mib() -> float:
    """Peak RSS of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mib() -> float:
    """RSS right now (MiB): the base a job's own memory is counted from. (The peak so far would include
    transients already freed, e.g. the Argon2 key derivation of Vault.create, and flatter the job.)"""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child_lifevault(records: Path, work: Path, memory_limit: str | None = None, *,
                    fallback: bool = False) -> dict[str, float]:
    from ingest.pipeline import run
    from ingest.sources.location import google_records

    if fallback:  # the numpy + polars fast path a machine without the C module gets
        google_records._native = None
    from vault.keys import KdfParams
    from vault.store import Vault

    vault, _ = Vault.create(work / "home", "bench", kdf=KdfParams())
    if memory_limit:  # DuckDB's buffer pool capped; beyond it, it spills to encrypted temp files in the vault
        vault.close()
        vault = Vault.open(work / "home", "bench", memory_limit=memory_limit)
    base = _rss_now_mib()
    t, cpu = time.perf_counter(), time.process_time()
    report = run(vault, [records], kind="location")
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    vault.close()
    return {"seconds": secs, "cpu": cpu, "rows": report.loaded, "rss_mib": _rss_mib(), "rss_base_mib": base}


def child_baseline(records: Path, work: Path) -> dict[str, float]:
    import sqlite3

    base = _rss_now_mib()
    t, cpu = time.perf_counter(), time.process_time()
    db = sqlite3.connect(work / "baseline.db")
    db.execute("CREATE TABLE location_history (id TEXT PRIMARY KEY, latitude REAL, longitude REAL, accuracy INTEGER, "
               "timestamp TEXT, source TEXT)")
    data = json.loads(records.read_text())
    rows = (
        (f"{r['timestamp']}:{r['latitudeE7']}:{r['longitudeE7']}", r["latitudeE7"] / 1e7, r["longitudeE7"] / 1e7,
         r.get("accuracy"), r["timestamp"], r.get("source"))
        for r in data["locations"]
    )
    db.executemany("INSERT OR REPLACE INTO location_history VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    n = db.execute("SELECT count(*) FROM location_history").fetchone()[0]
    db.close()
    return {"seconds": time.perf_counter() - t, "cpu": time.process_time() - cpu, "rows": n, "rss_mib": _rss_mib(),
            "rss_base_mib": base}


def write_ics(path: Path, n: int, seed: int = 2) -> None:
    rnd = random.Random(seed)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//lifevault bench//EN", "X-WR-TIMEZONE:Europe/London"]
    start = datetime(2025, 1, 1, 9, 0)
    for i in range(n):
        s = start + timedelta(days=rnd.randint(0, 300), hours=rnd.randint(0, 9))
        lines += ["BEGIN:VEVENT", f"UID:bench-{i}@lifevault", "DTSTAMP:20250101T000000Z",
                  f"DTSTART;TZID=Europe/London:{s:%Y%m%dT%H%M%S}", f"DTEND;TZID=Europe/London:{s + timedelta(minutes=45):%Y%m%dT%H%M%S}",
                  f"SUMMARY:Meeting {i}"]
        if i % 5 == 0:
            lines.append("RRULE:FREQ=WEEKLY;COUNT=20")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def bench_ics(n: int, work: Path) -> tuple[int, float]:
    from ingest.files import InputFile
    from ingest.sources.calendar import ics

    path = work / "bench.ics"
    write_ics(path, n)
    t = time.perf_counter()
    rows = sum(b.rows.height for b in ics.batches(InputFile(path)))
    return rows, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--child", choices=["lifevault", "baseline"])
    ap.add_argument("--records")
    ap.add_argument("--work")
    ap.add_argument("--memory-limit", default=None, help="also run lifevault with DuckDB capped, e.g. 192MB")
    ap.add_argument("--fallback", action="store_true",
                    help="also run lifevault with the numpy fast path instead of the C module (ingest/_records.c)")
    args = ap.parse_args()
    if args.child:
        if args.child == "lifevault":
            print(json.dumps(child_lifevault(Path(args.records), Path(args.work), args.memory_limit,
                                             fallback=args.fallback)))
        else:
            print(json.dumps(child_baseline(Path(args.records), Path(args.work))))
        return
    work = Path(tempfile.mkdtemp(prefix="lv-bench-ingest-"))
    try:
        run_all(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # synthetic data, but ~150 MB per million points


def run_all(args: argparse.Namespace, work: Path) -> None:
    records = work / "Records.json"
    write_records(records, args.points)
    size_mib = records.stat().st_size / 2**20
    out = {}
    sides = [("baseline", None), ("lifevault", None)] + ([("lifevault", args.memory_limit)] if args.memory_limit else [])
    sides += [("lifevault", "fallback")] if args.fallback else []
    for side, variant in sides:
        d = work / f"{side}-{variant or 'default'}"
        d.mkdir()
        cmd = [sys.executable, "-m", "bench.bench_ingest", "--child", side, "--records", str(records), "--work", str(d)]
        extra = ["--fallback"] if variant == "fallback" else ["--memory-limit", variant] if variant else []
        res = subprocess.run(cmd + extra, capture_output=True, text=True, check=True, env=os.environ)
        out[f"{side}{'@' + variant if variant else ''}"] = json.loads(res.stdout.strip().splitlines()[-1])
    lv, bl = out["lifevault"], out["baseline"]
    print(f"Records.json: {args.points:,} points, {size_mib:.0f} MiB")
    named = [("baseline (json.load + sqlite3 executemany, plaintext)", bl), ("lifevault (encrypted vault)", lv)]
    if args.memory_limit:
        capped = out[f"lifevault@{args.memory_limit}"]
        named.append((f"lifevault, DuckDB memory_limit {args.memory_limit}", capped))
    if args.fallback:
        named.append(("lifevault, numpy fast path (no C module)", out["lifevault@fallback"]))
    for name, r in named:
        print(f"  {name:<55} {r['seconds']:7.2f}s  {r['rows'] / r['seconds']:>10,.0f} points/s  "
              f"(CPU {r['cpu']:.2f}s, all threads)  "
              f"peak RSS {r['rss_mib']:6.0f} MiB (+{r['rss_mib'] - r['rss_base_mib']:.0f} over imports)")
    print(f"  speed-up vs baseline: {bl['seconds'] / lv['seconds']:.2f}x wall, {bl['cpu'] / lv['cpu']:.2f}x CPU (goal >= 5x); "
          f"points/s {lv['rows'] / lv['seconds']:,.0f} (goal >= 200k); "
          f"peak memory / file size: {lv['rss_mib'] / size_mib:.2f}x total, "
          f"{(lv['rss_mib'] - lv['rss_base_mib']) / size_mib:.2f}x net (goal < 2x)")
    if args.memory_limit:
        print(f"  with memory_limit {args.memory_limit}: peak memory / file size {capped['rss_mib'] / size_mib:.2f}x total, "
              f"{(capped['rss_mib'] - capped['rss_base_mib']) / size_mib:.2f}x net; "
              f"{capped['rows'] / capped['seconds']:,.0f} points/s")
    rows, secs = bench_ics(args.events, work)
    print(f"ICS: {args.events:,} events -> {rows:,} occurrences in {secs:.2f}s = {rows / secs:,.0f} occurrences/s")


if __name__ == "__main__":
    main()
