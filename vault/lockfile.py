"""The vault's lock file: who holds <home>/vault.lock (vault/store.py takes it), readable without opening the
vault or importing the database, so a command can ask whether a running server owns the vault first."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

LOCK_FILE = "vault.lock"


def read_lock_info(home: Path) -> dict[str, Any] | None:
    """The holder of the vault lock, or None when nobody holds it."""
    path = Path(home) / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # nobody holds it
        except OSError:
            pass
        raw = os.pread(fd, 4096, 0)
    finally:
        os.close(fd)
    try:
        return json.loads(raw) if raw else {"pid": "?"}
    except ValueError:
        return {"pid": "?"}
