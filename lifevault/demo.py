"""`lifevault demo`: a synthetic persona's year, end to end, in a fresh vault, seen by the product's three users.

1. The data engineer: the persona's exports (synth/, with planted bad records) are ingested into a new
   encrypted vault; what was loaded and quarantined is shown.
2. The agent: `lifevault serve` runs as a subprocess on a free loopback port (lifevault/demo_agent.py); the
   memories are indexed in it, a scoped token (memory:read, calendar:read, location:read at coarse
   precision) asks the sample questions over HTTP, plans a week through POST /v1/context and searches once
   through the MCP server; an out-of-scope request is refused (403); every request is audited; the server
   is always stopped.
3. The device in the fleet: a few differentially private rounds in Flower's simulation engine with the persona
   and synthetic peers, recorded in the persona's privacy ledger; then a quick empirical DP audit and the
   verification of both hash chains and every recorded epsilon.
4. The auditor: the privacy report (HTML + JSON, no personal data) written into the vault home.

Each step shows a spinner and its time; a failing step prints one line and the demo exits non-zero.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from lifevault.cli_common import HomeOpt, err
from vault.errors import VaultError

# the vault, the agent's HTTP client and polars (vault.load) are imported by the steps: `--help` needs none

DEMO_PASSPHRASE = "demo passphrase (not secret)"
PERSONA_END = date(2025, 10, 31)
PEERS = 4  # synthetic devices beside the persona in the federated rounds
PEER_DAYS = 21  # days of life of each peer (the persona keeps --days)
FED_ROUNDS = 3
FLEET_NICE = 10  # step 3's preparation (peers, Ray) runs during step 2 at this lower priority
FED_EPSILON = 4.0  # per user over the demo's rounds
FED_LOCAL_STEPS = 10
AUDIT_CANARIES = 200  # the quick empirical audit; `lifevault audit dp` defaults to 1000
EXIT_DEMO_FAILED = 1
MIN_DEMO_DAYS, MAX_DEMO_DAYS = 14, 3660  # fewer days leave the federated rounds without examples


@dataclass(slots=True)
class Timings:
    steps: list[tuple[str, float, float]] = field(default_factory=list)  # (title, wall s, CPU s)


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (the server, once stopped at the end of
    step 2; not Ray's workers, which Ray reaps): on a shared machine a steadier measure than the wall clock."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def _step(timings: Timings, n: int, title: str) -> Iterator[Callable[[str], None]]:
    """A spinner while the step runs, its time when done; any failure becomes one line and exit code 1."""
    from lifevault.demo_agent import DemoError

    err.print(f"[bold][{n}/4] {title}[/bold]")
    t0, c0 = time.perf_counter(), cpu_seconds()
    with err.status(title) as status:
        try:
            yield lambda msg: status.update(f"{title}: {msg}")
        except (DemoError, VaultError) as e:
            err.print(f"lifevault demo: step {n} ({title}) failed: {e}", markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_DEMO_FAILED) from None
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - the demo's one place turning a step's failure into one line
            if os.environ.get("LIFEVAULT_DEBUG"):
                raise
            # the type only: an unexpected error's message could quote personal data
            err.print(f"lifevault demo: step {n} ({title}) failed: internal error ({type(e).__name__}); "
                      "re-run with LIFEVAULT_DEBUG=1 for details", soft_wrap=True)
            raise typer.Exit(EXIT_DEMO_FAILED) from None
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    timings.steps.append((title, seconds, cpu))
    err.print(f"      done in {seconds:.1f} s (CPU {cpu:.1f} s)")


def _load() -> str:
    """The 1-minute load average: the demo's times mean little on a machine busy with other work."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def demo(
    home: HomeOpt = None,
    days: Annotated[int, typer.Option(
        help="Days of the persona's life to generate.", min=MIN_DEMO_DAYS, max=MAX_DEMO_DAYS)] = 365,
    seed: Annotated[int, typer.Option(help="Persona seed (same seed, same life).")] = 7,
) -> None:
    """Walk the whole product on a synthetic persona: ingest, agent API and MCP, federated DP rounds, report.

    Example: lifevault demo --days 90 --home /tmp/lv-demo
    """
    target = Path(home).expanduser().absolute() if home else Path(tempfile.mkdtemp(prefix="lifevault-demo-")) / "home"
    passphrase = os.environ.get("LIFEVAULT_PASSPHRASE") or DEMO_PASSPHRASE
    timings = Timings()
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="lifevault-demo-scratch-"))
    # the fleet's thread: peers and Ray during step 2; it lives until the end, and with it Ray (start_engine)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-fleet")
    cancelled = threading.Event()
    try:
        with _step(timings, 1, "Data engineer: ingest a year of exports") as note:
            manifest, code = _ingest(target, passphrase, days=days, seed=seed, scratch=scratch, note=note)
        building = pool.submit(_prepare_fleet, passphrase, scratch, cancelled)  # during step 2, at low priority
        with _step(timings, 2, "Agent: lifevault serve, a scoped token, HTTP and MCP") as note:
            agent = _agent(target, passphrase, manifest, note)
        with _step(timings, 3, "Device in the fleet: federated DP rounds, audit dp, audit verify") as note:
            fleet = _fleet(target, passphrase, building, note)
        with _step(timings, 4, "Auditor: the privacy report") as note:
            html = _privacy_report(target, passphrase)
    finally:
        cancelled.set()
        pool.shutdown(wait=True, cancel_futures=True)  # the fleet's thread writes under scratch: let it end
        if "federated.simulate" in sys.modules:  # a step failed after Ray started: stop it (a run stops its own)
            sys.modules["federated.simulate"].stop_engine()
        shutil.rmtree(scratch, ignore_errors=True)  # synthetic, but tidy: only the vault stays
    total = time.perf_counter() - started
    err.print("[bold]Summary[/bold]")
    for title, seconds, cpu in timings.steps:
        err.print(f"  {seconds:6.1f} s  (CPU {cpu:6.1f} s)  {title}", soft_wrap=True)
    err.print(f"  {total:6.1f} s  (CPU {cpu_seconds():6.1f} s)  in all; load average {_load()}")
    err.print(f"  agent {agent.token_id}: {len(agent.audited)} requests audited, "
              f"{sum(1 for b in agent.audited if b.get('status', 0) >= 400)} refused; "
              f"{fleet['releases']} model updates in the persona's ledger (epsilon {fleet['spent']:.2f}); "
              f"chains {'intact' if fleet['verified'] else 'BROKEN'}", soft_wrap=True)
    err.print(f"Open the report: {html}", soft_wrap=True)
    err.print(f"Passphrase: {passphrase!r}; recovery code {code}. Try: lifevault status --home {target}",
              soft_wrap=True, markup=False)


def _ingest(target: Path, passphrase: str, *, days: int, seed: int, scratch: Path,
            note: Callable[[str], None]) -> tuple[Any, str]:
    from ingest.pipeline import run
    from synth import generate
    from vault import audit
    from vault import load as vload
    from vault.store import Vault

    exports = scratch / "exports"
    note(f"generating {days} days of a synthetic persona (seed {seed})")
    manifest = generate(exports, seed=seed, days=days, end=PERSONA_END)
    err.print(f"      {sum(len(v) for v in manifest.files.values())} export files in the real formats")
    vault, code = Vault.create(target, passphrase)
    with vault:
        audit.record(vault, audit.VaultCreated(cipher="AES-256-GCM", kdf={"name": "argon2id"}))
        err.print(f"      vault created in {target}", soft_wrap=True, markup=False)
        note("ingesting")
        start, end = manifest.truth.period  # expand the calendar over the persona's year, not around today
        report = run(vault, [exports], options={"window_start": start, "window_end": end})
        err.print(f"      loaded {report.loaded:,}, duplicates {report.duplicates:,}, "
                  f"quarantined {report.quarantined:,} in {report.seconds:.1f}s")
        for f in report.files:
            err.print(f"        {f.format:<26} {f.loaded:>9,} rows  {f.quarantined:>3} quarantined  {f.file}",
                      soft_wrap=True, markup=False)
        err.print("      derived: " + ", ".join(f"{k} {v:,}" for k, v in report.derived.items()), soft_wrap=True)
        for q in vload.quarantined(vault, report.load_id, limit=5):
            err.print(f"      quarantined: {q['file']} #{q['position']}: {q['reason']}", soft_wrap=True, markup=False)
    shutil.rmtree(exports, ignore_errors=True)
    return manifest, code


def _most_met(manifest: Any) -> str:
    from collections import Counter

    me = manifest.persona.name.split()[0]
    met = Counter(a.name.split()[0] for o in manifest.truth.occurrences for a in o.attendees)
    return next((n for n, _ in met.most_common() if n != me), "Sam")


def _agent(target: Path, passphrase: str, manifest: Any, note: Callable[[str], None]) -> Any:
    from lifevault.demo_agent import AGENT_SCOPES, run_agent, served

    note("starting lifevault serve")
    with served(target, passphrase) as running:
        err.print(f"      serving on {running.url} after {running.ready_s:.1f} s (a subprocess, stopped at the end "
                  "of this step)", soft_wrap=True)
        out = run_agent(running, target, period=manifest.truth.period, person=_most_met(manifest), note=note)
    err.print(f"      indexed {out.indexed:,} memories in the server in {out.index_s:.1f} s; token {out.token_id} "
              f"({', '.join(AGENT_SCOPES)} at coarse precision)", soft_wrap=True)
    for question, lines in out.answers:
        err.print(f"      Q: {question}", soft_wrap=True, markup=False)
        for line in lines:
            err.print(f"         {line}", soft_wrap=True, markup=False)
    err.print(f"      refused: GET /v1/audit/events without audit:read -> {out.refused_status}")
    err.print(f"      the owner forgot {out.forgotten} memory (a receipt is in the audit log)")
    err.print(f"      audited: {len(out.audited)} requests by {out.token_id} "
              f"({', '.join(sorted({b['via'] for b in out.audited}))}); the MCP call took {out.mcp_s:.1f} s",
              soft_wrap=True)
    return out


@dataclass(frozen=True, slots=True)
class FleetReady:
    root: Path  # scratch/fleet: the peers' vaults and the passphrase file
    peers: tuple[Path, ...]
    peers_s: float  # seconds building the peers
    engine_s: float  # seconds starting Ray and finding the noise multiplier


def _prepare_fleet(passphrase: str, scratch: Path, cancelled: threading.Event) -> FleetReady:
    """What step 3 needs before its rounds, made in a thread during step 2, while the demo only waits on the
    server: the synthetic peers' vaults under scratch/fleet (the demo passphrase: one Fleet, one passphrase
    file); then Flower's simulation engine started (Ray: ~3 s of start-up) and the noise multiplier found
    (the accountant keeps the answer: simulate() asks the same question). All of it at FLEET_NICE, this
    thread's priority (Linux sets it per thread; Ray's processes inherit it): it takes the cores only when
    the server's indexing leaves them idle, and is ready when the indexing ends. Ray is not started once
    `cancelled` is set; the demo shuts down a Ray its fleet step did not run on."""
    with contextlib.suppress(OSError, AttributeError):  # no nice(): the same work at normal priority
        os.nice(FLEET_NICE)
    from federated import simulate as sim
    from ingest.pipeline import run
    from synth import generate
    from vault.ledger import DEFAULT_BUDGET_DELTA
    from vault.store import Vault

    t0 = time.perf_counter()
    root = scratch / "fleet"
    root.mkdir(mode=0o700)
    pp = root / "passphrase"
    pp.write_text(passphrase + "\n")
    pp.chmod(0o600)
    peers = []
    for i in range(PEERS):
        home = root / f"peer-{i:03d}"
        exports = scratch / f"peer-exports-{i}"
        generate(exports, seed=1000 + i, days=PEER_DAYS, end=PERSONA_END)
        vault, _ = Vault.create(home, passphrase, kdf=sim.synth_kdf())
        with vault:
            run(vault, [exports])
        shutil.rmtree(exports, ignore_errors=True)
        peers.append(home)
    peers_s = time.perf_counter() - t0
    if cancelled.is_set():  # step 2 failed: no Ray to start
        raise RuntimeError("the demo stopped before its fleet step")
    t1 = time.perf_counter()
    sim.start_engine(root)
    sim.noise_for(FED_EPSILON, delta=DEFAULT_BUDGET_DELTA, rounds=FED_ROUNDS)
    return FleetReady(root=root, peers=tuple(peers), peers_s=peers_s, engine_s=time.perf_counter() - t1)


def _fleet(target: Path, passphrase: str, building: Future[FleetReady],
           note: Callable[[str], None]) -> dict[str, Any]:
    from federated import simulate as sim

    note(f"building {PEERS} synthetic peers, starting Ray")
    ready = building.result()
    err.print(f"      {PEERS} synthetic peers ({PEER_DAYS} days each) built in {ready.peers_s:.1f} s, Ray started "
              f"and the noise found in {ready.engine_s:.1f} s, during step 2", soft_wrap=True)
    fleet = sim.Fleet(root=ready.root, homes=(target, *ready.peers), passphrase_file=ready.root / "passphrase")
    t0 = time.perf_counter()
    note(f"{FED_ROUNDS} rounds in Flower's simulation engine")

    def on_round(r: Any) -> None:
        note(f"round {r.round}/{FED_ROUNDS} done")
        err.print(f"      round {r.round}: {r.received}/{r.sent} updates, {r.refused} refused, {r.failed} dropped")

    with _quiet_flower():
        result = sim.simulate(fleet, rounds=FED_ROUNDS, mode="central", epsilon=FED_EPSILON, eval_fraction=0.0,
                              local_steps=FED_LOCAL_STEPS, seed=7, on_round=on_round)
    mine = result.privacy.get(target.name) or {}
    err.print(f"      {FED_ROUNDS} rounds in {time.perf_counter() - t0:.1f} s; "
              f"noise multiplier {result.noise_multiplier:.3f}; the persona's ledger: epsilon "
              f"{result.epsilons.get(target.name, 0.0):.3f} spent ({', '.join(mine.get('labels') or [])})",
              soft_wrap=True)
    note("empirical DP audit (audit dp) and verification (audit verify)")
    return _audit(target, passphrase)


@contextlib.contextmanager
def _quiet_flower() -> Iterator[None]:
    """Flower's deprecation banner and per-round INFO lines would bury the demo's own lines."""
    import logging

    loggers = [logging.getLogger(name) for name in ("flwr", "lifevault.federated")]
    levels = [lg.level for lg in loggers]
    quiet = logging.NullHandler()  # a handler present: the ServerApp does not add its INFO console handler
    loggers[1].addHandler(quiet)
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        loggers[1].removeHandler(quiet)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _audit(target: Path, passphrase: str) -> dict[str, Any]:
    """`lifevault audit dp` with a quick configuration, then what `lifevault audit verify` checks."""
    from federated import audit as faudit
    from lifevault.cli_audit import recompute_ledger
    from lifevault.demo_agent import DemoError
    from vault import audit, ledger
    from vault.store import Vault

    with Vault.open(target, passphrase) as vault:
        last = {}
        for row in ledger.releases(vault):
            last = row.body
        delta = float(last.get("delta", ledger.DEFAULT_BUDGET_DELTA))
        z = faudit.powerful_noise_multiplier(canaries=AUDIT_CANARIES, rounds=1, delta=delta)
        result = faudit.run_audit(AUDIT_CANARIES, rounds=1, clip_norm=float(last.get("clip_norm", 1.0)),
                                  noise_multiplier=z, mode=str(last.get("mode", "central")), delta=delta)
        audit.record(vault, result)
        err.print(f"      audit dp: {AUDIT_CANARIES} canaries, lower bound epsilon {result.epsilon_lower_bound:.3f} "
                  f"vs the accountant's {result.epsilon_upper_bound or 0:.3f}: {result.verdict} "
                  f"({result.seconds:.1f} s)", soft_wrap=True)
        chains = [audit.verify(vault), ledger.verify(vault)]
        cross = ledger.cross_check(vault)
        recomputed = recompute_ledger(vault)
        releases, spent = len(list(ledger.releases(vault))), ledger.spent(vault)
    for c in chains:
        err.print(f"      audit verify: {c.table}: {'intact' if c.ok else 'BROKEN'} ({c.checked} records)")
    err.print(f"      audit verify: ledger against the audit log: {'OK' if cross.ok else 'MISMATCH'}; "
              f"epsilons recomputed: {'OK' if recomputed['ok'] else 'MISMATCH'} ({recomputed['checked']})",
              soft_wrap=True)
    verified = all(c.ok for c in chains) and cross.ok and recomputed["ok"]
    if not verified:
        raise DemoError("audit verify failed: see the lines above")
    if result.verdict == "violation":
        raise DemoError("audit dp found a privacy violation")
    return {"releases": releases, "spent": spent, "verified": verified}


def _privacy_report(home: Path, passphrase: str) -> Path:
    """The auditor's view of what just happened: counts, settings and chains only, no personal data."""
    import json

    from reports.build import build
    from reports.html import render
    from vault.fsio import write_atomic
    from vault.store import Vault

    with Vault.open(home, passphrase) as vault:
        data = build(vault)
    html, js = home / "privacy-report.html", home / "privacy-report.json"
    write_atomic(html, render(data).encode(), mode=0o644)
    write_atomic(js, json.dumps(data, indent=2, default=str).encode(), mode=0o644)
    err.print(f"      {html} (and {js.name})", soft_wrap=True, markup=False)
    for line in data["summary"]:
        err.print(f"      {line}", soft_wrap=True, markup=False)
    return html
