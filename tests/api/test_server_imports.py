"""A warmed server answers a search and writes a note without importing torch, transformers or
sentence-transformers: the query's vector and the note's come from the numpy forward (embeddings/lean.py).

The app runs in a process of its own (create_app with its lifespan and background warm-up, served through
Starlette's TestClient) so that its sys.modules is the server's alone; the vault was indexed beforehand by
this process with the model, as `lifevault index` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embeddings.encoder import Encoder
from tests.api.conftest import BASE, HOST, PORT, make_vault
from tests.conftest import PASSPHRASE

HEAVY = ("torch", "transformers", "sentence_transformers")
NOTE = "Quillfeather the locksmith keeps the spare bike key"

SERVER = f"""
import json, os, sys, threading, time
from pathlib import Path
from fastapi.testclient import TestClient
from api.app import create_app
from api.state import ApiSettings

home, read, write = sys.argv[1:4]
app = create_app(ApiSettings(home=Path(home), passphrase=os.environ["LIFEVAULT_PASSPHRASE"], host={HOST!r},
                             port={PORT}))
with TestClient(app, base_url={BASE!r}) as client:
    deadline = time.monotonic() + 300
    while any(t.name == "lifevault-warm" for t in threading.enumerate()):  # the server's warm-up
        assert time.monotonic() < deadline, "the warm-up did not finish"
        time.sleep(0.05)
    warmed = app.state.backend.service.ready
    def post(path, token, body):
        r = client.post(path, json=body, headers={{"Authorization": "Bearer " + token}})
        return r.status_code, r.json()
    searched = post("/v1/search", read, {{"query": "when did I last see Dr Lee"}})
    written = post("/v1/memories", write, {{"text": {NOTE!r}}})
    found = post("/v1/search", read, {{"query": "who keeps the spare bike key"}})
print(json.dumps({{"warmed": warmed, "status": [searched[0], written[0], found[0]],
                  "hits": len(searched[1]["hits"]), "first": found[1]["hits"][0]["text"],
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}),
                  "numpy_forward": "embeddings.lean" in sys.modules and "tokenizers" in sys.modules}}))
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("lean-server") / "home"
    secrets, _ = make_vault(path, Encoder())  # indexed by the model, as `lifevault index` does
    return path, secrets


def _serve(home: Path, secrets: dict[str, str], code: str = SERVER) -> dict:
    env = {**os.environ, "LIFEVAULT_PASSPHRASE": PASSPHRASE}
    run = subprocess.run([sys.executable, "-c", code, str(home), secrets["memory:read"], secrets["memory:write"]],
                         env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_warmed_server_searches_and_writes_a_note_without_torch_or_transformers(home):
    got = _serve(*home)
    assert got["warmed"] and got["status"] == [200, 201, 200] and got["hits"] > 0
    assert got["first"] == NOTE  # the note's vector is in the index: it is found by meaning
    assert got["numpy_forward"]
    assert got["modules"] == []


def test_the_guard_sees_torch_in_a_server_that_loads_it(home):
    """The check can fail: the same server, with torch imported before it starts, reports it."""
    got = _serve(*home, code="import torch\n" + SERVER)
    assert "torch" in got["modules"]
