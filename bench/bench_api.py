"""/v1/search over HTTP (a live uvicorn server on 127.0.0.1) vs MemoryService.search called directly.

    python -m bench.bench_api [--memories 100000] [--encode 2000] [--requests 300] [--clients 1 8 32]

One encrypted vault with N synthetic memories; the first --encode are embedded with the real model, the
rest get random unit vectors (embedding 100k texts on 2 shared cores takes far longer than the benchmark;
random vectors cost FAISS exactly what real ones do). The sealed index is loaded by the server as in
production. Each request is a distinct query (no query-vector cache hits) with k=10 and an agent token
(memory:read, coarse).

Same run: `lifevault serve`'s app runs in a child process; the library figures are MemoryService.search
called directly inside that process (same vault, same loaded index, same load on the machine), alternating
with 1-client HTTP requests in blocks (ABAB), then 8 and 32 concurrent HTTP clients (keep-alive, one
connection each, the standard library client). HTTP overhead = HTTP p50 at 1 client - library p50. Clients and server share the
machine's 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path

import numpy as np

PASSPHRASE = "bench passphrase"
HOST = "127.0.0.1"
PLACES = ["Café Nero", "Dishoom", "PureGym", "Waitrose", "British Library", "Hyde Park", "The Crown", "Boots"]
PEOPLE = ["Ann Lee", "Bob Stone", "Priya Shah", "Tom Baker", "Mei Chen", "Omar Haddad"]
TOPICS = ["quarterly planning", "dentist check-up", "design review", "budget", "book club", "piano lesson"]
APPS = ["YouTube", "Slack", "Instagram", "Spotify", "Gmail", "Strava"]


def texts(n: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        r = i % 4
        if r == 0:
            out.append(("event", f"Calendar: {rng.choice(TOPICS)} with {rng.choice(PEOPLE)} #{i}"))
        elif r == 1:
            out.append(("usage", f"Used {rng.choice(APPS)} for {rng.randrange(5, 90)} min #{i}"))
        elif r == 2:
            out.append(("note", f"{rng.choice(PEOPLE)} recommended {rng.choice(PLACES)} for {rng.choice(TOPICS)} #{i}"))
        else:
            out.append(("event", f"Calendar: {rng.choice(TOPICS)} at {rng.choice(PLACES)} #{i}"))
    return out


def queries(n: int, rng: random.Random) -> list[str]:
    forms = ["meetings with {p} about {t}", "{t} with {p}", "when did {p} recommend {l}", "how long on {a}",
             "notes about {p} and {l}", "{t} at {l}"]
    seen: dict[str, None] = {}
    while len(seen) < n:
        q = rng.choice(forms).format(p=rng.choice(PEOPLE), t=rng.choice(TOPICS), l=rng.choice(PLACES),
                                     a=rng.choice(APPS))
        seen[f"{q} {rng.randrange(10_000)}"] = None
    return list(seen)


def build(home: Path, n: int, n_real: int) -> str:
    """The vault with N memories and a sealed index; returns an agent token (memory:read)."""
    from api.tokens import TokenStore
    from embeddings import index as vindex
    from embeddings import memories
    from embeddings.encoder import Encoder
    from embeddings.service import INDEX_BLOB, REDACTED_BLOB
    from vault.keys import KdfParams
    from vault.store import Vault

    rng = random.Random(5)
    docs = texts(n, rng)
    enc = Encoder()
    t = time.perf_counter()
    real = enc.encode([d for _, d in docs[:n_real]])
    print(f"  {n_real:,} memories embedded for real in {time.perf_counter() - t:.1f} s "
          f"({n_real / (time.perf_counter() - t):.0f}/s); the other {n - n_real:,} get random unit vectors", flush=True)
    vecs = np.random.default_rng(7).normal(size=(n, enc.info.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs[:n_real] = real
    base = datetime(2024, 1, 1, tzinfo=UTC)
    items = []
    for i, (kind, text) in enumerate(docs):
        start = base + timedelta(minutes=rng.randrange(365 * 24 * 60))
        items.append(memories.Memory(
            memory_id=i + 1, kind=kind, text=text, text_redacted=None, start_ts=start,
            end_ts=start + timedelta(minutes=45), utc_offset_min=0, tags=(kind,), details={},
            source=memories.SOURCE.get(kind, "agent"), source_table=None, source_row_ids=()))
    vault, _ = Vault.create(home, PASSPHRASE, kdf=KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1))
    with vault:
        vault.insert_frame("memories", memories.frame(items, now=base), on_conflict_nothing=False)
        info = enc.info
        vault.execute("INSERT INTO memory_vectors SELECT memory_id, ?, ?, ?, text_sha, now() FROM memories",
                      [info.name, info.version, info.dtype])
        header = {"model": info.name, "model_version": info.version, "dtype": info.dtype, "dim": info.dim}
        ix = vindex.VectorIndex.new(info.dim, hnsw=n > vindex.HNSW_THRESHOLD)
        ix.add(np.arange(1, n + 1, dtype=np.int64), vecs)
        vindex.save(vault, INDEX_BLOB, ix, header | {"variant": "full"})
        vindex.save(vault, REDACTED_BLOB, vindex.VectorIndex.new(info.dim), header | {"variant": "redacted"})
        issued = TokenStore.load(vault).create(agent="bench", scopes=["memory:read"], location="none",
                                               rate_per_minute=10_000_000, purpose="benchmark")
        print(f"  vault: {n:,} memories, index {ix.stats.kind}", flush=True)
    return issued.secret


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, p))


def http(url: str, token: str, qs: list[str], clients: int) -> tuple[list[float], float, int]:
    """(latencies, wall seconds, errors) for len(qs) requests spread over `clients` concurrent clients."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    chunks = [qs[i::clients] for i in range(clients)]

    def worker(mine: list[str]) -> None:
        # the standard library's client: keep-alive, ~0.2 ms of CPU a request (httpx spent ~1.5 ms of the
        # 2 cores the server also runs on)
        conn = HTTPConnection(HOST, int(url.rsplit(":", 1)[1]), timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            for q in mine:
                t = time.perf_counter()
                conn.request("POST", "/v1/search", body=json.dumps({"query": q, "k": 10}), headers=headers)
                r = conn.getresponse()
                body = r.read()
                dt = time.perf_counter() - t
                ok = r.status == 200 and len(json.loads(body)["hits"]) == 10
                with lock:
                    lat.append(dt)
                    errors[0] += not ok
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(ch,)) for ch in chunks]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat, time.perf_counter() - t0, errors[0]


def serve(home: str, port: int, *, cache: bool = True) -> None:
    """Child process: the API as `lifevault serve` runs it, in a thread; the main thread answers the parent's
    `direct` commands by calling the same MemoryService directly (same process, same state, same load)."""

    import uvicorn

    from api.app import create_app
    from api.state import ApiSettings
    from embeddings.redaction import Redaction

    app = create_app(ApiSettings(home=Path(home), passphrase=os.environ["LIFEVAULT_BENCH_PASSPHRASE"], host=HOST,
                                 port=port))
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, access_log=False, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    backend = app.state.backend
    if not cache:
        backend.service._rows.capacity = 0
    red = Redaction.for_scopes(["memory:read"])
    print("ready", flush=True)
    for line in sys.stdin:
        out = []
        for q in json.loads(line):
            t = time.perf_counter()
            with backend.lock:
                res = backend.service.search(q, k=10, redaction=red, actor="bench")
            out.append(time.perf_counter() - t)
            assert len(res.hits) == 10
        rows = backend.service._rows
        print(json.dumps({"lat": out, "cache": [rows.hits, rows.misses]}), flush=True)
    server.should_exit = True
    thread.join(timeout=60)


def main() -> None:

    ap = argparse.ArgumentParser()
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--encode", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    ap.add_argument("--clients", type=int, nargs="*", default=[1, 8, 32])
    ap.add_argument("--block", type=int, default=20, help="library and 1-client HTTP alternate in blocks of this size")
    ap.add_argument("--no-row-cache", action="store_true", help="read every hit from the encrypted table")
    ap.add_argument("--serve", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), cache=not args.no_row_cache)
        return
    rng = random.Random(11)
    qs = iter(queries(args.requests * (len(args.clients) + 1) + 50, rng))
    take = lambda n: [next(qs) for _ in range(n)]  # noqa: E731 - every request a fresh query
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        token = build(home, args.memories, min(args.encode, args.memories))
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        env = os.environ | {"LIFEVAULT_BENCH_PASSPHRASE": PASSPHRASE}
        child = subprocess.Popen([sys.executable, "-m", "bench.bench_api", "--serve", str(home), str(port),
                                  *(["--no-row-cache"] if args.no_row_cache else [])], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        stdin, stdout = child.stdin, child.stdout  # (the closure below sees them as not None)
        url = f"http://{HOST}:{port}"
        cache = [0, 0]

        def direct(batch: list[str]) -> list[float]:
            stdin.write(json.dumps(batch) + "\n")
            stdin.flush()
            reply = json.loads(stdout.readline())
            cache[:] = reply["cache"]
            return reply["lat"]

        try:
            assert child.stdout.readline().strip() == "ready", "server did not start"
            direct(["warm up"])
            http(url, token, [f"warm up {i}" for i in range(10)], 1)
            lib: list[float] = []
            one: list[float] = []
            wall1 = 0.0
            for _ in range(max(1, args.requests // args.block)):  # ABAB: library block, then HTTP block
                lib += direct(take(args.block))
                lat, wall, errs = http(url, token, take(args.block), 1)
                assert errs == 0
                one += lat
                wall1 += wall
            rows = [(1, one, wall1, 0)]
            print(f"  library: p50 {pct(lib, 50):6.1f} ms  p95 {pct(lib, 95):6.1f}  p99 {pct(lib, 99):6.1f}", flush=True)
            for c in args.clients:
                if c == 1:
                    continue
                lat, wall, errs = http(url, token, take(args.requests), c)
                rows.append((c, lat, wall, errs))
            for c, lat, wall, errs in rows:
                print(f"  HTTP {c:>2} clients: {len(lat) / wall:6.1f} req/s  p50 {pct(lat, 50):6.1f} ms  "
                      f"p95 {pct(lat, 95):6.1f}  p99 {pct(lat, 99):6.1f}  errors {errs}", flush=True)
        finally:
            child.stdin.close()
            child.wait(timeout=120)
    print(f"\nmemories {args.memories:,}; {args.requests} requests per level; library and 1 client alternate in "
          f"blocks of {args.block}")
    print("caller               req/s    p50 ms   p95 ms   p99 ms  errors")
    print(f"library, 1 caller   {len(lib) / sum(lib):6.1f}   {pct(lib, 50):6.1f}   {pct(lib, 95):6.1f}   "
          f"{pct(lib, 99):6.1f}       -")
    for c, lat, wall, errs in rows:
        print(f"HTTP, {c:>2} clients    {len(lat) / wall:6.1f}   {pct(lat, 50):6.1f}   {pct(lat, 95):6.1f}   "
              f"{pct(lat, 99):6.1f}  {errs:6d}")
    print(f"HTTP overhead at p50 (1 client - library): {pct(rows[0][1], 50) - statistics.median(lib) * 1000:+.1f} ms")
    print(f"hit rows read from the in-memory row cache (all callers, up to the last library block): "
          f"{cache[0] / max(1, sum(cache)):.0%} of {sum(cache):,}")



if __name__ == "__main__":
    main()
