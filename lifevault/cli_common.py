"""Shared CLI pieces: option types, opening the vault, printing (human text to stderr, --json to stdout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from lifevault.secrets_input import read_passphrase
from lifevault.settings import Settings
from vault.store import Vault

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Vault home (default $LIFEVAULT_HOME or ~/.lifevault).", show_default=False),
]
PassFileOpt = Annotated[
    Path | None,
    typer.Option("--passphrase-file", help="Read the passphrase from this file (else $LIFEVAULT_PASSPHRASE, else prompt)."),
]
RecoveryOpt = Annotated[
    str | None, typer.Option("--recovery-code", help="Unlock with the recovery code instead of the passphrase.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]

err = Console(stderr=True, highlight=False)


def settings(home: Path | None) -> Settings:
    return Settings.from_env(home)


def open_vault(home: Path | None, passphrase_file: Path | None, recovery_code: str | None = None) -> Vault:
    s = settings(home)
    if recovery_code:
        vault = Vault.open(s.home, recovery_code=recovery_code)
    else:
        vault = Vault.open(s.home, read_passphrase(passphrase_file))
    say_made_private(vault.home, vault.home_mode_was)
    return vault


def say_made_private(home: Path, was: int | None) -> None:
    """One line on stderr when opening the vault changed its home's mode to 0700."""
    if was is not None:
        err.print(f"The vault home {home} had mode {was:04o}; made it 0700 (only you can list or enter it)",
                  soft_wrap=True)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()
