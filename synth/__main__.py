"""`python -m synth OUT_DIR [--days 30] [--seed 7] [--end 2025-10-31] [--points N] [--no-bad] [--truth F]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from synth import generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m synth",
                                 description="Write a synthetic persona's exports in the real formats.",
                                 epilog="Example: python -m synth /tmp/persona --days 30 --seed 7")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--days", type=int, default=365, help="days of life to simulate (default 365)")
    ap.add_argument("--seed", type=int, default=7, help="same seed, same life (default 7)")
    ap.add_argument("--end", type=date.fromisoformat, default=date(2025, 10, 31), help="last day, YYYY-MM-DD")
    ap.add_argument("--points", type=int, default=None, help="exact number of valid points in Records.json")
    ap.add_argument("--no-bad", action="store_true", help="do not plant malformed records")
    ap.add_argument("--truth", type=Path, default=None, help="also write the ground truth as JSON to this file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    m = generate(args.out_dir, seed=args.seed, days=args.days, end=args.end, points_target=args.points,
                 plant_bad=not args.no_bad)
    secs = time.perf_counter() - t0
    for f in m.outputs:
        rows = ", ".join(f"{k} {v:,}" for k, v in f.rows.items())
        bad = f", {f.bad} bad" if f.bad else ""
        print(f"{f.kind:<9} {f.format:<26} {f.path.relative_to(m.root)}: {f.records:,} records ({rows}{bad})",
              file=sys.stderr)
    if args.truth:
        args.truth.write_text(json.dumps(m.truth.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{m.counts['files']} files, {m.counts['points']:,} points, {m.counts['visits']:,} visits, "
          f"{m.counts['occurrences']:,} calendar occurrences, {m.counts['app_sessions']:,} app sessions, "
          f"{m.counts['bad_records']} bad records planted, in {secs:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
