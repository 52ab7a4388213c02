"""`lifevault serve` caps DuckDB's memory, and work past the cap spills only encrypted temp files."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.state import SERVE_MEMORY_LIMIT, ApiSettings
from lifevault.cli import main
from tests.conftest import FAST_KDF, PASSPHRASE, grep_tree, watching_temp_files
from vault.errors import MemoryCapReached
from vault.store import Vault

CANARY = "CANARY-serve-5d1e-Dr-Lee-Kings-Rd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def duckdb_reading(limit: str) -> str:
    """How DuckDB reads back a memory_limit given in MB (decimal): in MiB, cut to one decimal."""
    assert limit.endswith("MB")
    return f"{int(limit.removesuffix('MB')) * 10**6 * 10 // 2**20 / 10:.1f} MiB"


def test_lifevault_serve_opens_the_vault_with_the_servers_duckdb_memory_limit(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(home))
    seen: dict[str, Any] = {}

    def run(server: uvicorn.Server) -> None:  # instead of listening: the app's lifespan, as uvicorn runs it
        app = server.config.app
        with TestClient(app):
            backend = app.state.backend
            seen["settings"] = backend.settings.memory_limit
            seen["duckdb"] = backend.vault.scalar("SELECT current_setting('memory_limit')")

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", "--port", str(free_port())]) == 0
    assert seen == {"settings": SERVE_MEMORY_LIMIT, "duckdb": duckdb_reading(SERVE_MEMORY_LIMIT)}


def test_the_servers_limit_is_a_bound_well_below_duckdbs_default() -> None:
    assert ApiSettings(home=Path("/nonexistent")).memory_limit == SERVE_MEMORY_LIMIT
    assert duckdb_reading(SERVE_MEMORY_LIMIT) == "122.0 MiB"  # README's limits table says 128MB


@pytest.mark.parametrize("rows", [100_000, 2_000_000])  # under the cap: no spill; over it: a spill
def test_a_sort_past_the_servers_memory_limit_spills_only_encrypted_temp_files(tmp_path, rows) -> None:
    home = tmp_path / "h"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    with (Vault.open(home, PASSPHRASE, memory_limit=SERVE_MEMORY_LIMIT) as v,
          watching_temp_files(home, CANARY.encode()) as (seen, hits)):
        v.execute("CREATE TABLE big AS SELECT ? || md5(range::VARCHAR) || repeat('x', 40) AS s FROM range(?)",
                  [CANARY, rows])
        # a whole sort (DuckDB's external sort spills past the cap; a hash aggregate of 2M distinct keys with
        # two threads could fail for want of memory it cannot spill, one CI run in many)
        v.execute("CREATE TABLE sorted AS SELECT s FROM big ORDER BY s")
        top = v.query("SELECT s FROM sorted LIMIT 2")
    assert len(top) == 2 and all(s.startswith(CANARY) for (s,) in top)
    assert bool(seen) == (rows > 1_000_000), "the sort spilled only past the limit"
    assert hits == []
    assert grep_tree(home, CANARY.encode()) == []


def test_a_statement_past_what_the_cap_can_spill_is_a_one_line_error_and_the_vault_stays_usable(tmp_path) -> None:
    home = tmp_path / "h"
    with Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0] as v:
        v.execute("CREATE TABLE big AS SELECT md5(range::VARCHAR) || repeat('x', 40) AS s FROM range(1000000)")
    with Vault.open(home, PASSPHRASE, memory_limit="4MB") as v:
        with pytest.raises(MemoryCapReached) as caught:
            v.query("SELECT s, count(*) FROM big GROUP BY s ORDER BY s LIMIT 2")
        message = str(caught.value)
        assert message.startswith("out of memory") and "\n" not in message and "rolled back" in message
        assert v.scalar("SELECT count(*) FROM big") == 1_000_000


def test_the_api_answers_a_memory_cap_reached_with_503_and_its_one_line(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from embeddings.service import MemoryService

    def out_of_memory(*args: Any, **kwargs: Any) -> None:
        raise MemoryCapReached("out of memory: the operation needed more than the vault's memory cap; retry it")

    monkeypatch.setattr(MemoryService, "search", out_of_memory)
    r = served.call("POST", "/v1/search", "owner", json={"query": "coffee", "k": 3})
    assert r.status_code == 503 and r.json()["detail"].startswith("out of memory"), r.text
