"""The memory commands as a person uses them: index, search, context, remember, forget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lifevault import cli_memory
from tests.embeddings.persona import CANARY_PLACE


@pytest.fixture
def cli(seeded_home: Path):
    app = typer.Typer()
    cli_memory.register(app)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


def test_index_then_search_with_explain_as_json(cli):
    code, out, err = cli("index", "--json")
    assert code == 0 and json.loads(out)["embedded"] > 50 and "embedded" in err
    code, out, _ = cli("search", "Dr. Lee check-up", "--k", "3", "--kind", "event", "--explain", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["kind"] == "event" and set(hits[0]["explain"]) >= {"dense", "lexical"}


def test_search_prints_hits_for_people(cli):
    cli("index")
    code, _, err = cli("search", "gym on weekends", "--explain")
    assert code == 0 and "Understood: on weekends" in err and "PureGym" in err and "fused" in err
    assert "[visit] Visited PureGym" in err  # texts and labels are printed literally, never as console markup


def test_context_prints_the_pack_on_stdout_within_budget(cli):
    cli("index")
    code, out, err = cli("context", "my visits to Dr. Lee", "--budget", "150")
    assert code == 0 and out.startswith("Memories relevant to the task") and "/150 tokens" in err
    code, out, err = cli("context", "plan my week", "--budget", "300", "--now", "2025-03-16T20:00:00+00:00")
    assert code == 0 and out.startswith("Context for planning the task") and "Upcoming, Sun 16 Mar 2025" in out
    assert "Team standup on Mon 17 Mar 2025" in out and "Free time" in out


def test_remember_at_a_date_then_find_it(cli):
    cli("index")
    code, out, _ = cli("remember", "Ana's birthday dinner at Tasca do Chico", "--at", "2025-03-15", "--tag", "lisbon",
                       "--metadata", '{"people": ["Ana"]}', "--json")
    note = json.loads(out)
    assert code == 0 and note["start"].startswith("2025-03-1") and note["metadata"] == {"people": ["Ana"]}
    code, out, _ = cli("search", "birthday dinner", "--k", "1", "--json")
    assert json.loads(out)["hits"][0]["id"] == note["id"]


def test_forget_dry_run_changes_nothing_and_yes_commits(cli):
    cli("index")
    code, out, err = cli("forget", "--query", CANARY_PLACE, "--dry-run", "--json")
    assert code == 0 and json.loads(out)["memories"] == 1 and "Would forget 1 memories" in err
    code, out, _ = cli("search", CANARY_PLACE, "--k", "1", "--mode", "lexical", "--json")
    assert json.loads(out)["hits"]
    code, _, _ = cli("forget", "--query", CANARY_PLACE, input="n\n")
    assert code == 1
    code, out, _ = cli("forget", "--query", CANARY_PLACE, "--yes", "--json")
    assert code == 0 and json.loads(out)["memories"] == 1
    code, out, _ = cli("search", CANARY_PLACE, "--k", "1", "--mode", "lexical", "--json")
    assert json.loads(out)["hits"] == []


def test_bad_input_is_one_clear_error(cli):
    code, _, err = cli("search", "x", "--kind", "dream")
    assert code == 2 and "'dream' is not one of" in err and "'routine'" in err
    code, _, err = cli("remember", "x", "--at", "yesterday-ish")
    assert code == 2 and "is not a date" in err


def test_every_memory_command_has_an_example_in_its_help():
    for command in (cli_memory.index, cli_memory.search, cli_memory.context, cli_memory.remember, cli_memory.forget):
        assert (command.__doc__ or "").strip().splitlines()[-1].strip().startswith("Example: lifevault ")


def test_remember_refuses_metadata_past_the_depth_bound_with_a_one_line_message(cli):
    from embeddings.records import MAX_METADATA_DEPTH

    def nested(depth: int) -> str:
        return '{"a": ' * (depth - 1) + '{"leaf": 1}' + "}" * (depth - 1)

    code, _, err = cli("remember", "deep note", "--metadata", nested(MAX_METADATA_DEPTH + 1))
    assert code == 2 and f"nested deeper than {MAX_METADATA_DEPTH} levels" in err and "Traceback" not in err
    code, _, err = cli("remember", "deep note", "--metadata", "[" * 5000 + "]" * 5000)
    assert code == 2 and "Traceback" not in err
    code, out, _ = cli("remember", "deep note", "--metadata", nested(MAX_METADATA_DEPTH), "--json")
    assert code == 0 and json.loads(out)["metadata"] == json.loads(nested(MAX_METADATA_DEPTH))
