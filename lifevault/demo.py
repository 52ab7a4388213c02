"""`lifevault demo`: a synthetic persona's year, end to end, in a fresh vault.

Steps: generate the persona's exports (ingest/synth.py) in a temporary folder, create a vault (a
temporary home unless --home), ingest everything and show what was loaded and quarantined, index the
memories and answer sample questions with citations, then write the privacy report (HTML + JSON, no
personal data) into the vault home.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from lifevault.cli_common import HomeOpt, err
from vault import audit
from vault import load as vload
from vault.store import Vault

DEMO_PASSPHRASE = "demo passphrase (not secret)"


def demo(
    home: HomeOpt = None,
    days: Annotated[int, typer.Option(help="Days of the persona's life to generate.")] = 365,
    seed: Annotated[int, typer.Option(help="Persona seed (same seed, same life).")] = 7,
) -> None:
    """Generate a synthetic persona, ingest it into a new encrypted vault and report.

    Example: lifevault demo --days 90 --home /tmp/lv-demo
    """
    from ingest.pipeline import run
    from ingest.synth import generate

    target = Path(home).expanduser().absolute() if home else Path(tempfile.mkdtemp(prefix="lifevault-demo-")) / "home"
    passphrase = os.environ.get("LIFEVAULT_PASSPHRASE") or DEMO_PASSPHRASE
    exports = Path(tempfile.mkdtemp(prefix="lifevault-exports-"))
    try:
        err.print(f"[1/3] Generating {days} days of a synthetic persona (seed {seed})…")
        manifest = generate(exports, seed=seed, days=days, end=date(2025, 10, 31))
        err.print(f"      {sum(len(v) for v in manifest.files.values())} export files in the real formats")
        vault, code = Vault.create(target, passphrase)
        with vault:
            audit.record(vault, audit.VaultCreated(cipher="AES-256-GCM", kdf={"name": "argon2id"}))
            err.print(f"[2/3] Vault created in {target}")
            err.print("[3/3] Ingesting…")
            start, end = manifest.truth.period  # expand the calendar over the persona's year, not around today
            report = run(vault, [exports], options={"window_start": start, "window_end": end})
            err.print(f"      loaded {report.loaded:,}, duplicates {report.duplicates:,}, "
                      f"quarantined {report.quarantined:,} in {report.seconds:.1f}s")
            for f in report.files:
                err.print(f"        {f.format:<26} {f.loaded:>9,} rows  {f.quarantined:>3} quarantined  {f.file}",
                          soft_wrap=True)
            err.print("      derived: " + ", ".join(f"{k} {v:,}" for k, v in report.derived.items()), soft_wrap=True)
            for q in vload.quarantined(vault, report.load_id, limit=5):
                err.print(f"      quarantined: {q['file']} #{q['position']}: {q['reason']}", soft_wrap=True)
            _memory(vault, manifest)
            _privacy_report(vault, target)
    finally:
        shutil.rmtree(exports, ignore_errors=True)  # synthetic, but tidy: only the vault stays
    err.print(f"Done. Passphrase: {passphrase!r}; recovery code {code}. Try: lifevault status --home {target}")


def _privacy_report(vault: Vault, home: Path) -> None:
    """The auditor's view of what just happened: counts, settings and chains only, no personal data."""
    import json

    from reports.build import build
    from reports.html import render
    from vault.fsio import write_atomic

    data = build(vault)
    html, js = home / "privacy-report.html", home / "privacy-report.json"
    write_atomic(html, render(data).encode(), mode=0o644)
    write_atomic(js, json.dumps(data, indent=2, default=str).encode(), mode=0o644)
    err.print(f"[+] Privacy report: {html} (and {js.name})")
    for line in data["summary"]:
        err.print(f"      {line}", soft_wrap=True, markup=False)


def _memory(vault: Vault, manifest: Any) -> None:
    """Index the vault's memories, then ask a few questions as of the persona's last day, with citations."""
    from collections import Counter
    from datetime import timedelta

    from embeddings.service import MemoryService

    err.print("[+] Memory: indexing (memories, embeddings, sealed index)…")
    svc = MemoryService(vault)
    report = svc.index()
    err.print(f"      {report.vectors:,} memories embedded ({report.model}, {report.dtype}) in {report.seconds:.1f}s")
    now = manifest.truth.period[1] - timedelta(seconds=1)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (month - timedelta(days=1)).replace(day=1)
    when = "last month" if manifest.truth.period[0] <= last_month else "this month"
    since, until = (last_month, month) if when == "last month" else (month, now)
    met = Counter(a.name.split()[0] for o in manifest.truth.occurrences if since <= o.start < until for a in o.attendees)
    person = next((n for n, _ in met.most_common() if n != manifest.persona.name.split()[0]), "Sam")
    for question in ("when did I last go to the gym?", f"meetings with {person} {when}", "YouTube after 11pm"):
        result = svc.search(question, k=3, now=now)
        understood = f"  (understood: {', '.join(result.understood)})" if result.understood else ""
        err.print(f"      Q: {question}{understood}", soft_wrap=True, markup=False)
        for hit in result.hits:
            m = hit.memory
            start = m.start_ts.date().isoformat() if m.start_ts else "undated"
            err.print(f"        {hit.rank}. {m.text}  [memory {m.memory_id}, {m.source}, {start}]", soft_wrap=True,
                      markup=False)
        if not result.hits:
            err.print("        (no memories)")
    svc.close()
