"""Shared fixtures: a real encrypted vault on disk in tmp_path (the KDF floor, so tests stay fast)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.keys import KDF_FLOOR
from vault.store import Vault

PASSPHRASE = "correct horse battery staple"
FAST_KDF = KDF_FLOOR  # the cheapest Argon2id a vault accepts (19 MiB, 2 passes, 1 lane; about 40 ms)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def new_vault(home: Path) -> Iterator[tuple[Vault, str]]:
    vault, code = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    try:
        yield vault, code
    finally:
        vault.close()


@pytest.fixture
def vault(new_vault: tuple[Vault, str]) -> Vault:
    return new_vault[0]


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def grep_tree(root: Path, needle: bytes) -> list[Path]:
    """Every file under root whose bytes contain needle (also UTF-16 encoded, to be thorough)."""
    forms = (needle, needle.decode().encode("utf-16-le"))
    hits = []
    for p in files_under(root):
        try:
            data = p.read_bytes()
        except FileNotFoundError:  # removed since the listing (a WAL folded in by a checkpoint): not on disk
            continue
        if any(f in data for f in forms):
            hits.append(p)
    return hits


@contextlib.contextmanager
def watching_temp_files(home: Path, needle: bytes) -> Iterator[tuple[list[Path], list[Path]]]:
    """While the block runs, poll the vault's temp directory every 10 ms: (every temp file seen, those holding
    `needle`), filled as the block runs (spilled files come and go before any check after the block)."""
    seen: list[Path] = []
    hits: list[Path] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for p in (home / "tmp").rglob("*"):
                if p.is_file():
                    seen.append(p)
                    try:
                        if needle in p.read_bytes():
                            hits.append(p)
                    except OSError:
                        pass
            time.sleep(0.01)

    t = threading.Thread(target=watch)
    t.start()
    try:
        yield seen, hits
    finally:
        stop.set()
        t.join()
