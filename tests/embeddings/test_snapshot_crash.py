"""A `lifevault forget` killed (SIGKILL, vault/crashpoint.py) between resealing the index and writing the new
catalog snapshot, then run again, ends where a clean run ends: same search results, and no snapshot holding
the forgotten place's words. A `lifevault remember` killed before its snapshot delta is written opens to the
answers of a clean run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from embeddings import snapshot
from tests.conftest import FAST_KDF, PASSPHRASE
from tests.embeddings.persona import CANARY_PLACE, seed
from vault import crashpoint
from vault.store import Vault

CLI = "import sys; from lifevault.cli import main; sys.exit(main())"
WORD = CANARY_PLACE.split()[0]  # "Zyxquor"
QUERIES = ("dinner at the restaurant", "Dr Lee", WORD)


def _cli(home: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIFEVAULT_PASSPHRASE": PASSPHRASE, "LIFEVAULT_HOME": str(home)}
    env.pop(crashpoint.ENV, None)
    if crash_at:
        env[crashpoint.ENV] = crash_at
    return subprocess.run([sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True, timeout=600)


def _state(home: Path) -> tuple[list[list[int]], bytes | None]:
    found = []
    for q in QUERIES:
        run = _cli(home, "search", q, "--json", "--since", "2025-03-01", "--until", "2025-04-01")
        assert run.returncode == 0, run.stderr[-1000:]
        found.append([h["id"] for h in json.loads(run.stdout)["hits"]])
    with Vault.open(home, PASSPHRASE) as vault:
        return found, vault.read_blob(snapshot.BLOB)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("crash") / "template"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        seed(vault)
    run = _cli(home, "index")
    assert run.returncode == 0, run.stderr[-1000:]
    return home


@pytest.fixture(scope="module")
def clean(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[list[int]], bytes | None]:
    home = tmp_path_factory.mktemp("clean") / "home"
    shutil.copytree(template, home)
    assert _cli(home, "forget", "--query", WORD, "--yes").returncode == 0
    return _state(home)


@pytest.mark.parametrize("point", ["forget.resealed", "forget.rows_deleted"])
def test_a_forget_killed_and_run_again_ends_as_a_clean_run(point: str, template: Path, clean, tmp_path: Path):
    home = tmp_path / "home"
    shutil.copytree(template, home)
    killed = _cli(home, "forget", "--query", WORD, "--yes", crash_at=point)
    assert killed.returncode == -signal.SIGKILL  # it really died there
    with Vault.open(home, PASSPHRASE) as vault:
        assert vault.read_blob(snapshot.BLOB) is None  # the old snapshot went with the old index
    again = _cli(home, "forget", "--query", WORD, "--yes")
    assert again.returncode == 0, again.stderr[-1000:]
    found, blob = _state(home)
    assert found == clean[0] and found[0]  # the same hits as the clean run, and there are hits
    assert blob is not None and clean[1] is not None
    assert WORD.lower().encode() not in blob and WORD.lower().encode() not in clean[1]


NOTE = "Quillfeather the locksmith keeps the spare bike key"
NOTE_QUERIES = ("Quillfeather locksmith", "spare key", "dinner at the restaurant")


def _answers(home: Path) -> list[list[str]]:
    """Each query's hits by text (a note gets a new id in each run)."""
    found = []
    for q in NOTE_QUERIES:
        run = _cli(home, "search", q, "--json")
        assert run.returncode == 0, run.stderr[-1000:]
        found.append([h["text"] for h in json.loads(run.stdout)["hits"]])
    return found


@pytest.fixture(scope="module")
def remembered(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[list[str]], bytes | None]:
    home = tmp_path_factory.mktemp("remembered") / "home"
    shutil.copytree(template, home)
    with Vault.open(home, PASSPHRASE) as vault:
        base = vault.read_blob(snapshot.BLOB)
    assert _cli(home, "remember", NOTE).returncode == 0
    with Vault.open(home, PASSPHRASE) as vault:
        assert vault.read_blob(snapshot.BLOB) == base  # the base was not rewritten: the note went to the delta
        assert vault.read_blob(snapshot.DELTA_BLOB) is not None
    return _answers(home), base


@pytest.mark.parametrize("point", ["remember.written", "flush.sealed"])
def test_a_remember_killed_before_its_delta_opens_to_the_answers_of_a_clean_run(
        point: str, template: Path, remembered, tmp_path: Path):
    home = tmp_path / "home"
    shutil.copytree(template, home)
    killed = _cli(home, "remember", NOTE, crash_at=point)
    assert killed.returncode == -signal.SIGKILL  # it really died there
    with Vault.open(home, PASSPHRASE) as vault:
        assert vault.read_blob(snapshot.DELTA_BLOB) is None
    found = _answers(home)
    assert found == remembered[0] and found[0][0] == NOTE  # every answer is the clean run's, the note first
