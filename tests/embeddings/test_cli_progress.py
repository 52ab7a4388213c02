"""Long commands show progress on a terminal's stderr, and none under --json: stdout is then one JSON object."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from rich.console import Console

from lifevault import cli_common, cli_federate, cli_memory
from lifevault.cli import main

BAR = "━"  # rich's bar glyph


@pytest.fixture
def terminal(monkeypatch) -> io.StringIO:
    """stderr as a terminal (rich draws live displays only there), captured."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, highlight=False)
    for module in (cli_common, cli_memory, cli_federate):
        monkeypatch.setattr(module, "err", console)
    return buf


def test_index_draws_its_progress_on_a_terminal_and_none_under_json(seeded_home, terminal, capsys):
    assert main(["index", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["embedded"] > 50 and out.count("\n") == 1  # stdout: one JSON object, nothing else
    assert BAR not in terminal.getvalue() and "Memories:" in terminal.getvalue()  # the summary line only
    terminal.seek(0)
    terminal.truncate()
    assert main(["index", "--rebuild"]) == 0
    assert capsys.readouterr().out == ""
    assert BAR in terminal.getvalue() and "embedding" in terminal.getvalue()


@pytest.mark.parametrize("json_out", [True, False])
def test_the_fleet_progress_counts_devices_and_rounds_and_is_silent_under_json(terminal, json_out):
    with cli_federate.fleet_progress(devices=3, rounds=2, json_out=json_out) as (on_device, on_round):
        for i in range(3):
            on_device(i)
        for r in (1, 2):
            on_round(SimpleNamespace(round=r, received=2, sent=2, refused=0, failed=0, accuracy=0.5))
    drawn = terminal.getvalue()
    if json_out:
        assert drawn == ""
    else:
        assert "devices built" in drawn and "round 2: 2/2 updates" in drawn and BAR in drawn


def test_without_a_terminal_no_progress_is_drawn(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(cli_common, "err", Console(file=buf, force_terminal=False))
    with cli_common.progress("x", json_out=False) as bar:
        bar.add_task("x", total=2)
    assert buf.getvalue() == ""
