"""CLI conventions: plain help without stray escapes, fixed sets of values listed and enforced, and the README's
exit-code table matching the codes the commands return."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lifevault.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    assert main([*command, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(("command", "shows"), [
    (["export"], "[required]"),
    (["search"], "[default: 10; 1<=x<=200]"),
    (["token", "create"], "[default: 30d]"),
    (["federate", "simulate"], "[default: central]"),
    (["audit", "dp"], "[default: 1000]"),
    (["ingest"], "[required]"),
    (["init"], "[default: 64]"),
])
def test_help_shows_defaults_and_required_without_a_literal_backslash(capsys, command, shows):
    out = _help(capsys, *command)
    assert shows in re.sub(r"\s+", " ", out), out
    assert "\\[" not in out and "\\]" not in out


def test_the_top_level_and_group_help_carry_no_escapes(capsys):
    for command in ([], ["audit"], ["token"], ["federate"]):
        out = _help(capsys, *command)
        assert "\\[" not in out and "Usage: lifevault" in out


@pytest.mark.parametrize(("command", "option", "choices"), [
    (["search", "q"], "--mode", ["hybrid", "dense", "lexical"]),
    (["search", "q"], "--kind", ["visit", "event", "usage", "trip", "note", "routine"]),
    (["ingest", "x"], "--kind", ["location", "calendar", "usage"]),
    (["ingest", "x"], "--format", ["google_records", "gpx", "ics", "takeout_my_activity"]),
    (["token", "create", "--agent", "a", "--scope", "memory:read"], "--location", ["none", "coarse", "precise"]),
    (["federate", "simulate"], "--mode", ["local", "central", "distributed"]),
    (["audit", "dp"], "--mode", ["local", "central", "distributed"]),
])
def test_an_option_with_a_fixed_set_lists_it_in_help_and_refuses_others_with_the_list(capsys, command, option, choices):
    head = [c for c in command if not c.startswith("-") and c not in ("q", "x", "a", "memory:read")]
    out = re.sub(r"\s+", "", _help(capsys, *head))
    assert all(c in out for c in choices) and f"{option}[" in out, out
    code = main([*command, option, "no-such-value"])
    err = capsys.readouterr().err
    assert code == 2 and f"Invalid value for '{option}': 'no-such-value' is not one of" in err
    assert all(f"'{c}'" in err for c in choices) and "Traceback" not in err


def _readme_exit_codes() -> dict[int, str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| exit code | meaning |"):]
    table = table[:table.index("\n\n")]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.+) \|$", table, re.M)}


def test_the_readme_exit_code_table_lists_every_code_a_command_returns():
    from federated.features import TooLittleData
    from ingest.pipeline import StrictFailure
    from lifevault import cli_audit
    from vault.errors import BudgetExhausted, VaultError

    table = _readme_exit_codes()
    returned = {0, VaultError.exit_code, 2, BudgetExhausted.exit_code, TooLittleData.exit_code,
                StrictFailure.exit_code, cli_audit.EXIT_CHECK_FAILED, cli_audit.EXIT_INCONCLUSIVE, 70, 130}
    assert returned <= set(table), sorted(returned - set(table))
    assert "too little data" in table[TooLittleData.exit_code] and "budget" in table[BudgetExhausted.exit_code]
    assert "internal error" in table[70]


def test_an_unexpected_error_exits_70_as_the_readme_says(capsys, monkeypatch, tmp_path):
    from lifevault import cli_vault

    def boom(*_a, **_k):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(cli_vault.vault_status, "collect", boom)
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", "correct horse battery staple")
    monkeypatch.setenv("LIFEVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIFEVAULT_DEBUG", raising=False)
    assert main(["init", "--kdf-memory-mib", "19", "--kdf-iterations", "2", "--kdf-lanes", "1"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 70
    err = capsys.readouterr().err
    assert "internal error (RuntimeError)" in err and "secret detail" not in err
