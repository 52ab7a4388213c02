"""Memory-layer fixtures: the real model (loaded once per session), a real encrypted vault with a persona."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from embeddings.encoder import Encoder
from embeddings.service import MemoryService
from tests.embeddings.persona import seed
from vault.store import Vault


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    enc = Encoder()
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
