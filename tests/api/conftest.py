"""API fixtures: one real encrypted vault with the small persona, indexed with the real model (session scope),
served by create_app through Starlette's TestClient; tokens for every single scope, coarse and precise."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiSettings
from api.tokens import SCOPES, TokenStore
from embeddings.encoder import Encoder
from embeddings.service import MemoryService
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.embeddings.persona import seed
from vault.store import Vault

HOST, PORT = "127.0.0.1", 8765
BASE = f"http://{HOST}:{PORT}"


@dataclass
class Served:
    client: TestClient
    home: Path
    tokens: dict[str, str]  # name -> secret; names: each scope, "precise" (memory+location precise), "none"
    ids: dict[str, str]  # name -> token id

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        return self.client.request(method, path, headers=headers, **kw)

    def audit(self, token: str, kind: str = "api.request") -> list[dict[str, Any]]:
        r = self.call("GET", "/v1/audit/events", "owner", params={"kind": kind, "limit": 1000})
        assert r.status_code == 200, r.text
        return [e["body"] for e in r.json()["events"] if e["body"].get("token_id") == self.ids.get(token, token)]


@pytest.fixture(scope="session")
def api_encoder() -> Encoder:
    enc = Encoder()
    enc.encode(["warm up"])
    return enc


def make_vault(home: Path, encoder: Encoder) -> tuple[dict[str, str], dict[str, str]]:
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    try:
        seed(vault)
        MemoryService(vault, encoder=encoder).index()
        store = TokenStore.load(vault)
        grants: dict[str, tuple[list[str], str]] = {s: ([s], "coarse" if s == "location:read" else "none") for s in SCOPES}
        grants["coarse"] = (["memory:read", "location:read", "calendar:read"], "coarse")
        grants["precise"] = (["memory:read", "location:read", "calendar:read"], "precise")
        secrets, ids = {}, {}
        for name, (scopes, loc) in grants.items():
            issued = store.create(agent=f"agent-{name}", scopes=scopes, location=loc, purpose=f"tests: {name}")
            secrets[name], ids[name] = issued.secret, issued.token.token_id
    finally:
        vault.close()
    return secrets, ids


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, api_encoder: Encoder) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("api") / "home"
    secrets, ids = make_vault(home, api_encoder)
    app = create_app(ApiSettings(home=home, passphrase=PASSPHRASE, host=HOST, port=PORT), encoder=api_encoder)
    with TestClient(app, base_url=BASE) as client:
        yield Served(client=client, home=home, tokens=secrets, ids=ids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    home: Path
    port: int
    tokens: dict[str, str]
    ids: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, api_encoder: Encoder) -> Iterator[Live]:
    """A real uvicorn server on 127.0.0.1 owning its own vault (lock file with the port, serve.token)."""
    import uvicorn

    home = tmp_path_factory.mktemp("live") / "home"
    secrets, ids = make_vault(home, api_encoder)
    port = free_port()
    app = create_app(ApiSettings(home=home, passphrase=PASSPHRASE, host=HOST, port=port, announce=True),
                     encoder=api_encoder)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, access_log=False, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the live server did not start"
        time.sleep(0.05)
    try:
        yield Live(home=home, port=port, tokens=secrets, ids=ids)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
