"""A command that needs no vault content imports nothing heavy: `--help` neither the database nor numpy,
`status` and `token list` the database (duckdb) and nothing of search, ingest, the server or rich; a search
needs no torch, transformers, polars or rich (the query is embedded in numpy, the hits printed as plain lines);
`remember` embeds its note in numpy too (no torch or transformers)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import FAST_KDF, PASSPHRASE
from vault.store import Vault

CLI = "import sys; from lifevault.cli import main; sys.exit(main())"
SEARCH_STACK = ("numpy", "polars", "pyarrow", "faiss", "tokenizers", "torch", "transformers", "sentence_transformers")
SERVER_STACK = ("httpx", "fastapi", "uvicorn", "anyio", "mcp", "flwr")


def _imported(args: list[str], env: dict[str, str], code: str = CLI) -> set[str]:
    """The top-level packages a process running `code` with `args` imported (-X importtime)."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    names = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert names, "no -X importtime output"
    return {n.split(".")[0] for n in names}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("cold") / "home"
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    vault.close()
    return {**os.environ, "LIFEVAULT_PASSPHRASE": PASSPHRASE, "LIFEVAULT_HOME": str(home)}


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"], ["token", "--help"]])
def test_help_imports_neither_the_database_nor_the_search_or_server_stack(args: list[str], env: dict[str, str]):
    heavy = _imported(args, env) & {*SEARCH_STACK, *SERVER_STACK, "duckdb", "rich"}
    assert heavy == set(), args


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["token", "list"]])
def test_status_and_token_list_import_the_database_and_nothing_of_search_or_the_server(args: list[str],
                                                                                        env: dict[str, str]):
    imported = _imported(args, env)
    assert "duckdb" in imported  # it did open the vault
    assert imported & {*SEARCH_STACK, *SERVER_STACK, "rich"} == set(), args


@pytest.mark.parametrize("args", [["search", "when did I see Dr Lee"], ["search", "gym", "--json"],
                                  ["context", "plan my week", "--budget", "100"]])
def test_a_search_imports_neither_torch_nor_polars_nor_rich(args: list[str], env: dict[str, str]):
    _imported(args, env)  # the first search writes the catalog snapshot (built from the rows, with polars)
    imported = _imported(args, env)
    assert {"numpy", "faiss", "tokenizers"} <= imported  # it did search
    assert imported & {"torch", "transformers", "sentence_transformers", "polars", "pyarrow", "rich",
                       *SERVER_STACK} == set(), args


def test_remember_embeds_its_note_without_torch_or_transformers(env: dict[str, str]):
    imported = _imported(["remember", "Quillfeather the locksmith keeps the spare bike key", "--json"], env)
    assert {"numpy", "tokenizers"} <= imported  # it did embed the note
    assert imported & {"torch", "transformers", "sentence_transformers", *SERVER_STACK} == set()


def test_the_guard_sees_a_heavy_import(env: dict[str, str]):
    """The check can fail: a process that imports numpy shows it."""
    assert "numpy" in _imported([], env, code="import numpy")


def _help(run, args: list[str]) -> tuple[int, str]:  # noqa: ANN001 - a callable taking args
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = run(args)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue()


def _all_names() -> list[str]:
    from lifevault.cli import app

    return [n for n in [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups] if n]


@pytest.mark.parametrize("name", _all_names())
def test_each_command_built_alone_reads_and_parses_as_in_the_whole_app(name: str):
    """main() builds only the command it runs; its help (usage, options) is the whole app's, word for word."""
    from lifevault.cli import app, main

    whole = _help(lambda a: app(args=a, prog_name="lifevault", standalone_mode=False), [name, "--help"])
    alone = _help(main, [name, "--help"])
    assert alone == (0, whole[1]) and whole[1].startswith(f"Usage: lifevault {name} ")
