"""`python -m bench [name ...]`: run the named benchmarks (default: all), each in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py")) + ["eval_retrieval"]
    rc = 0
    for name in names:
        mod = name if name.startswith(("bench_", "eval_")) else f"bench_{name}"
        print(f"== {mod}", flush=True)
        rc |= subprocess.call([sys.executable, "-m", f"bench.{mod}"])
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
