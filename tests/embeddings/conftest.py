"""Memory-layer fixtures: the real model (loaded once per session), a real encrypted vault with a persona.

The persona is indexed by many tests; `SessionEncoder` is the real model, batched like production,
that embeds each distinct text once per session and hands the same vector back afterwards (the model is
deterministic per text, so tests see exactly what production would store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import DIM, Encoder
from embeddings.service import MemoryService
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.embeddings.persona import seed
from vault.store import Vault


class SessionEncoder(Encoder):
    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[str, np.ndarray] = {}
        self.embedded = 0  # texts that really went through the model

    def encode(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None,
               write: bool = False) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._seen]
        if missing:
            self._seen.update(zip(missing, super().encode(missing, write=write), strict=True))
            self.embedded += len(missing)
        if progress is not None and texts:
            progress(len(texts))
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._seen[t] for t in texts])


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    enc = SessionEncoder()
    enc.encode(["warm up"])  # load the model once for the whole session
    return enc


@pytest.fixture
def svc(vault: Vault, encoder: Encoder) -> Iterator[MemoryService]:
    service = MemoryService(vault, encoder=encoder)
    yield service
    service.close()


@pytest.fixture
def indexed(vault: Vault, svc: MemoryService) -> MemoryService:
    seed(vault)
    svc.index()
    return svc


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Iterator[MemoryService]:
    """One indexed persona vault for the tests that only read (searches append audit records, nothing else)."""
    vault, _ = Vault.create(tmp_path_factory.mktemp("shared") / "home", PASSPHRASE, kdf=FAST_KDF)
    seed(vault)
    service = MemoryService(vault, encoder=encoder)
    service.index()
    yield service
    service.close()
    vault.close()


@pytest.fixture
def seeded_home(tmp_path: Path, monkeypatch, encoder) -> Path:
    """An encrypted vault home holding the persona, the CLI pointed at it (passphrase and home in the
    environment) and the service using the session's model."""
    monkeypatch.setattr("embeddings.service.Encoder", lambda: encoder)  # the session's model, loaded once
    home = tmp_path / "home"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        seed(vault)
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(home))
    return home


@pytest.fixture
def indexed_home(tmp_path: Path, encoder: Encoder) -> Path:
    """A closed, indexed persona vault on disk, for a process of its own to open."""
    home = tmp_path / "home"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        seed(vault)
        service = MemoryService(vault, encoder=encoder)
        service.index()
        service.close()
    return home
