"""Where the passphrase comes from: LIFEVAULT_PASSPHRASE, --passphrase-file, or an interactive prompt."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from vault.errors import VaultError, WrongPassphrase


def read_passphrase(passphrase_file: Path | None, *, confirm: bool = False, prompt: str = "Passphrase") -> str:
    if passphrase_file is not None:
        try:
            text = Path(passphrase_file).read_text().rstrip("\r\n")
        except OSError as e:
            raise VaultError(f"cannot read passphrase file {passphrase_file}: {e.strerror}") from None
        if not text:
            raise WrongPassphrase(f"passphrase file {passphrase_file} is empty")
        return text
    env = os.environ.get("LIFEVAULT_PASSPHRASE")
    if env:
        return env
    if not sys.stdin.isatty():
        raise VaultError("no passphrase: set LIFEVAULT_PASSPHRASE, pass --passphrase-file, or run in a terminal")
    first = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass(f"{prompt} (again): ") != first:
        raise WrongPassphrase("the two passphrases differ; nothing was changed")
    if not first:
        raise WrongPassphrase("the passphrase must not be empty")
    return first
