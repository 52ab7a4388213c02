"""`lifevault serve` in use: its VmRSS after the warm-up and after N distinct searches over HTTP, with the
searches' latency in the same run. A real server on 127.0.0.1, owner token, the bench's queries
(synthetic_memories.queries) with the time phrases of search_stages (PHRASES) on every third one.

    python -m bench.bench_serve_use --home /work/bench-1m/n1000000-use [--at 100 300 600 1000] [--idle 2]
        [--tree DIR] [--before DIR] [--repeat 1] [--token lv_...] [--env NAME=VALUE ...] [--mappings] [--writes]
    python -m bench.bench_serve_use --home DIR --attribute [--tracemalloc] [--trim] [--memory-limit 128MB]

The default mode runs `lifevault serve` as a subprocess (this tree's code, or `--tree DIR`'s; `--before DIR`:
also a source tree of the code to compare with, e.g. `git archive <commit> | tar -x -C DIR`, the two
alternated run by run) and reads /proc/<pid>/status at each point: VmRSS, its anonymous and file-backed
parts, as the search returns and again after `--idle` seconds without a request. Latency is each
search's wall time at the client (p50 / p95) and the server's CPU time per search (/proc/<pid>/stat), over
all N searches (not the pauses). `--env` sets variables in the server's environment (e.g. glibc's
MALLOC_ARENA_MAX=2); `--mappings` lists the largest resident mappings at the end (smaps); `--writes` then
runs a note write, a forget of 20 memories and an index sync, measuring after each and the peak during each
(VmHWM, reset before each where /proc/<pid>/clear_refs allows; then after `--idle` seconds) (it changes the vault:
on a bench vault the sync deletes every memory but the notes, which alone have source rows).
Without --token, an owner token with a high rate limit (the default 600/min would refuse the run) is
created first with `lifevault token create` (the vault must not be served then).

`--attribute` runs the same server in this process (create_app under uvicorn, in a thread; the code of the
tree it is run from, not --tree's) so that at each
point it can also print DuckDB's own accounting (`duckdb_memory()` through the vault's connection), glibc's
heap (mallinfo2: bytes in use and bytes free but held), the row cache and the BM25 weight cache, with
`--trim` VmRSS after a malloc_trim(0), and with `--tracemalloc` the Python allocations that grew most since
the warm-up (slow: tracing costs every allocation). Its VmRSS includes the HTTP client (a few MB).

Runs at most one server at a time. The passphrase is "bench passphrase" (the bench vaults'), or
$LIFEVAULT_PASSPHRASE.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.search_stages import PHRASES
from bench.synthetic_memories import queries

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = os.environ.get("LIFEVAULT_PASSPHRASE", "bench passphrase")
READY_TIMEOUT_S = 600.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def search_texts(n: int, *, seed: int = 5) -> list[str]:
    """n distinct queries; every third one carries a time phrase ("in March 2024", "on weekends", ...)."""
    out = list(dict.fromkeys(queries(n * 2, seed=seed)))[:n]
    return [f"{q} {PHRASES[(i // 3) % len(PHRASES)]}" if i % 3 == 2 else q for i, q in enumerate(out)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_mb(pid: int) -> dict[str, float]:
    """VmRSS and its anonymous / file-backed parts, in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "Threads:", "VmHWM:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) / (1 if key == "Threads" else 1024)
    return out


def reset_peak(pid: int) -> None:
    """Start VmHWM (the peak) afresh at the current VmRSS (Linux: 5 to /proc/<pid>/clear_refs), so the peak
    printed after a write is that write's; where it is refused the peak stays the process's."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def mappings(pid: int, top: int = 12) -> str:
    """The largest resident mappings by file (anonymous memory as one line), from /proc/<pid>/smaps."""
    rss: dict[str, int] = {}
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if not head:
            continue
        if not head[0].endswith(":") or len(head[0]) > 30 and "-" in head[0]:  # a mapping's header line
            name = head[5] if len(head) > 5 else "[anon]"
        elif head[0] == "Rss:":
            rss[name] = rss.get(name, 0) + int(head[1])
    ranked = sorted(rss.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"    {kb / 1024:7.1f} MB {Path(n).name if n.startswith('/') else n}" for n, kb in ranked)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def env_for(home: Path) -> dict[str, str]:
    return os.environ | {"LIFEVAULT_PASSPHRASE": PASSPHRASE, "LIFEVAULT_HOME": str(home.absolute())}


def owner_token(home: Path) -> str:
    """A fresh owner token for this run, rate limit high enough for a burst of searches."""
    cmd = [sys.executable, "-c", "from lifevault.cli import main; main()", "token", "create", "--agent",
           "bench-serve-use", "--scope", "owner", "--rate", "1000000", "--ttl", "1d", "--json"]
    out = subprocess.run(cmd, env=env_for(home), cwd=ROOT, capture_output=True, text=True, check=True)
    return str(json.loads(out.stdout)["token"])


def wait_ready(client: httpx.Client, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if client.get("/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if not alive():
            raise SystemExit("the server exited before it answered")
        time.sleep(0.25)
    raise SystemExit(f"the server did not answer within {READY_TIMEOUT_S:.0f} s")


def search(client: httpx.Client, text: str) -> float:
    t = time.perf_counter()
    r = client.post("/v1/search", json={"query": text, "k": 10})
    took = time.perf_counter() - t
    if r.status_code != 200:
        raise SystemExit(f"search answered {r.status_code}: {r.text[:200]}")
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def drive(client: httpx.Client, at: list[int], measure: Callable[[str], str], cpu: Callable[[], float],
          idle: float) -> str:
    """The warm-up search, then max(at) distinct searches; `measure(label)` at the warm-up and at each of `at`
    (as the search returns, and again after `idle` seconds without a request). Latency excludes the pauses."""
    search(client, "warm up")
    time.sleep(2.0)  # the query forward's thread and the warm-up's leftovers settle
    lines = [measure("after warm-up")]
    walls: list[float] = []
    busy = 0.0
    for i, text in enumerate(search_texts(max(at)), 1):
        c0 = cpu()
        walls.append(search(client, text))
        busy += cpu() - c0
        if i in at:
            lines.append(measure(f"after {i:,} searches"))
            if idle:
                time.sleep(idle)
                lines.append(measure(f"  then {idle:g} s idle"))
    ms = [w * 1000 for w in walls]
    lines.append(f"  searches: wall p50 {pct(ms, 50):.1f} ms, p95 {pct(ms, 95):.1f} ms, mean "
                 f"{statistics.fmean(ms):.1f} ms; server CPU {busy * 1000 / len(ms):.1f} ms a search")
    return "\n".join(lines)


def writes(client: httpx.Client, measure: Callable[[str], str], idle: float = 0.0,
           reset_peak: Callable[[], None] = lambda: None) -> str:
    """The server's big owner operations after the searches: a note write, a forget of 20 memories (which
    reseals the vector index and writes a new catalog snapshot), then an index sync over every memory. On a
    bench vault the sync deletes every memory but the notes: the bench's other memories have no source rows."""
    lines = []

    def step(label: str, url: str, body: dict[str, Any]) -> Any:
        reset_peak()
        t = time.perf_counter()
        r = client.post(url, json=body)
        took = time.perf_counter() - t
        if r.status_code >= 300:
            raise SystemExit(f"{label} answered {r.status_code}: {r.text[:200]}")
        lines.append(measure(f"{label} ({took:.1f} s)"))
        if idle:
            time.sleep(idle)
            lines.append(measure(f"  then {idle:g} s idle"))
        return r.json()

    step("note write", "/v1/memories", {"text": "Ana prefers the window seat on the 7:40 train", "tags": ["bench"]})
    hits = client.post("/v1/search", json={"query": "window seat train", "k": 20}).json()["hits"]
    selector = {"memory_ids": [h["id"] for h in hits]}
    preview = step("forget preview", "/v1/forget", selector)
    step(f"forget {len(hits)}", "/v1/forget", selector | {"commit": True, "digest": preview["digest"]})
    step("index sync", "/v1/index", {})
    return "\n".join(lines)


def run_subprocess(home: Path, tree: Path, token: str, at: list[int], extra_env: dict[str, str], *,
                   idle: float = 2.0, with_writes: bool = False, show_mappings: bool = False) -> str:
    port = free_port()
    cmd = [sys.executable, "-c", "from lifevault.cli import main; main()", "serve", "--port", str(port)]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env_for(home) | extra_env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=300) as client:
            wait_ready(client, lambda: p.poll() is None)

            def measure(label: str) -> str:
                m = proc_mb(p.pid)
                return (f"  {label:24s} VmRSS {m['VmRSS']:7.0f} MB (anon {m['RssAnon']:.0f}, file "
                        f"{m['RssFile']:.0f}), peak {m['VmHWM']:.0f}, threads {m['Threads']:.0f}, "
                        f"at {time.monotonic() - t0:.0f} s")

            out = drive(client, at, measure, lambda: cpu_s(p.pid), idle)
            if show_mappings:
                out += "\n  resident by mapping:\n" + mappings(p.pid)
            return out + ("\n" + writes(client, measure, idle, lambda: reset_peak(p.pid)) if with_writes else "")
    except SystemExit:
        p.send_signal(2)
        _, err = p.communicate(timeout=120)
        print(err.decode(errors="replace")[-3000:], file=sys.stderr)  # the server logs errors by type only
        raise
    finally:
        if p.poll() is None:
            p.send_signal(2)
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def heap() -> str:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return "mallinfo2: n/a"
    m = libc.mallinfo2()
    mb = 1 << 20
    return (f"malloc: heap {m.arena / mb:.0f} MB (in use {m.uordblks / mb:.0f}, free but held "
            f"{m.fordblks / mb:.0f}), mmapped {m.hblkhd / mb:.0f} MB")


def caches(backend: Any) -> str:
    from embeddings.records import RowCache

    svc = backend.service
    rows: RowCache = svc._rows
    held = getattr(rows, "bytes", None)
    cat = svc._catalog
    weights = cat.lexical._weights_bytes if cat is not None else 0
    return (f"row cache {len(rows._rows):,} rows" + (f" ({held / 2**20:.1f} MB)" if held is not None else "")
            + f"; BM25 weight cache {weights / 2**20:.1f} MB")


def duck(backend: Any) -> str:
    rows = backend.vault.query("SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory() "
                               "WHERE memory_usage_bytes > 0 OR temporary_storage_bytes > 0 ORDER BY 2 DESC")
    parts = [f"{tag} {used / 2**20:.1f}" + (f" (+{tmp / 2**20:.0f} spilled)" if tmp else "") for tag, used, tmp in rows]
    limit = backend.vault.scalar("SELECT current_setting('memory_limit')")
    return f"duckdb (limit {limit}) MB: " + (", ".join(parts) or "nothing")


def run_attribute(home: Path, token: str, at: list[int], *, memory_limit: str | None, trace: bool,
                  trim: bool, idle: float = 2.0) -> str:
    import tracemalloc

    import uvicorn

    from api.app import create_app
    from api.state import ApiSettings

    if trace:
        tracemalloc.start(1)
    port = free_port()
    extra = {"memory_limit": memory_limit} if memory_limit else {}
    app = create_app(ApiSettings(home=home, passphrase=PASSPHRASE, port=port, **extra))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    t0 = time.monotonic()
    thread.start()
    base: list[tracemalloc.Snapshot] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=300) as client:
            wait_ready(client, thread.is_alive)

            def measure(label: str) -> str:
                backend = app.state.backend
                m = proc_mb(os.getpid())
                lines = [f"  {label:24s} VmRSS {m['VmRSS']:7.0f} MB (anon {m['RssAnon']:.0f}), threads "
                         f"{m['Threads']:.0f}, at {time.monotonic() - t0:.0f} s",
                         f"    {duck(backend)}", f"    {heap()}", f"    {caches(backend)}"]
                if trim:  # what glibc would give back: VmRSS after malloc_trim(0)
                    ctypes.CDLL("libc.so.6").malloc_trim(0)
                    lines.append(f"    after malloc_trim(0): VmRSS {proc_mb(os.getpid())['VmRSS']:.0f} MB")
                if trace:
                    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                    lines.append(f"    python (tracemalloc) {sum(s.size for s in snap.statistics('filename')) / 2**20:.1f} MB")
                    if base:
                        for stat in snap.compare_to(base[0], "lineno")[:8]:
                            lines.append(f"      {stat.size_diff / 2**20:+7.2f} MB {stat.traceback[0]}")
                    else:
                        base.append(snap)
                return "\n".join(lines)

            return drive(client, at, measure, lambda: time.process_time(), idle)
    finally:
        server.should_exit = True
        thread.join(120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="a copy of a bench vault (never the kept original)")
    ap.add_argument("--at", type=int, nargs="+", default=[100, 300, 600, 1000], help="measure after this many searches")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the source tree to run (default: this one)")
    ap.add_argument("--idle", type=float, default=2.0,
                    help="seconds without a request before measuring again at each point (0: not)")
    ap.add_argument("--before", type=Path, help="a source tree of the code to compare with (subprocess mode)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each tree, alternated")
    ap.add_argument("--token", help="an owner token of the vault (default: create one)")
    ap.add_argument("--attribute", action="store_true", help="the server in this process, with its accounting")
    ap.add_argument("--tracemalloc", action="store_true", help="with --attribute: Python allocations' growth")
    ap.add_argument("--trim", action="store_true", help="with --attribute: also VmRSS after malloc_trim(0)")
    ap.add_argument("--memory-limit", help="with --attribute: DuckDB's memory_limit (default: the server's)")
    ap.add_argument("--writes", action="store_true",
                    help="then a note write, a forget of 20 memories, an index sync (changes the vault)")
    ap.add_argument("--mappings", action="store_true", help="then the largest resident mappings (smaps)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set in the server's environment (e.g. MALLOC_ARENA_MAX=2); repeatable")
    args = ap.parse_args()
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    at = sorted(set(args.at))
    token = args.token or owner_token(args.home)
    print(f"{args.home} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})", flush=True)
    if args.attribute:
        print(run_attribute(args.home, token, at, memory_limit=args.memory_limit, trace=args.tracemalloc,
                            trim=args.trim, idle=args.idle))
        return
    trees = [("now", args.tree.absolute())] + ([("before", args.before.absolute())] if args.before else [])
    for r in range(args.repeat):
        for name, tree in trees:
            print(f"{name} (run {r + 1}, load average {os.getloadavg()[0]:.1f}):", flush=True)
            print(run_subprocess(args.home, tree, token, at, extra_env, idle=args.idle,
                                 with_writes=args.writes, show_mappings=args.mappings), flush=True)


if __name__ == "__main__":
    main()
