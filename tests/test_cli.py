"""The CLI as a person uses it: one-line errors, JSON on stdout, every command documented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer

from lifevault.cli import app, main
from tests.conftest import PASSPHRASE

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--kdf-memory-mib", "19", "--kdf-iterations", "2", "--kdf-lanes", "1"]  # the KDF floor


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_init_status_and_audit_verify(env, capsys):
    code, out, err = run(capsys, "init", *FAST, "--json")
    assert code == 0 and re.fullmatch(r"([A-Z2-9]{5}-){5}[A-Z2-9]{5}", json.loads(out)["recovery_code"])
    assert "Recovery code" in err
    code, out, _ = run(capsys, "status", "--json")
    info = json.loads(out)
    assert code == 0 and info["cipher"] == "AES-256-GCM" and info["tables"]["audit_log"] == 1
    assert [m["name"] for m in info["migrations"]][0] == "0001_audit_log"
    code, out, err = run(capsys, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["audit_log"]["ok"] is True


def test_user_errors_are_one_line_without_traceback(env, capsys, monkeypatch, tmp_path):
    code, _, err = run(capsys, "status", "--home", str(tmp_path / "nowhere"))
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err and "does not exist" in err
    run(capsys, "init", *FAST)
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", "wrong")
    code, _, err = run(capsys, "status")
    assert code == 1 and err.strip().startswith("lifevault: wrong passphrase") and err.count("\n") == 1


def test_passwd_with_recovery_code_then_rotate_key(env, capsys, monkeypatch):
    _, out, _ = run(capsys, "init", *FAST, "--json")
    recovery = json.loads(out)["recovery_code"]
    monkeypatch.delenv("LIFEVAULT_PASSPHRASE")
    monkeypatch.setenv("LIFEVAULT_NEW_PASSPHRASE", "new one")
    code, _, err = run(capsys, "passwd", "--recovery-code", recovery)
    assert code == 0, err
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", "new one")
    assert run(capsys, "rotate-key")[0] == 0
    code, out, _ = run(capsys, "audit", "verify", "--json")
    assert code == 0
    code, out, _ = run(capsys, "status", "--json")
    assert json.loads(out)["keys"]["duckdb"]["generation"] == 2


def test_export_and_import_round_trip_and_a_tampered_backup_is_refused(env, capsys, tmp_path):
    run(capsys, "init", *FAST)
    backup = tmp_path / "b.lvbackup"
    code, out, _ = run(capsys, "export", "--out", str(backup), "--json")
    assert code == 0 and json.loads(out)["bytes"] == backup.stat().st_size
    assert run(capsys, "import", str(backup), "--home", str(tmp_path / "restored"))[0] == 0
    code, out, _ = run(capsys, "status", "--home", str(tmp_path / "restored"), "--json")
    assert json.loads(out)["tables"]["audit_log"] == 2  # created, imported (the export is logged after its snapshot)
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 1
    backup.write_bytes(bytes(data))
    code, _, err = run(capsys, "import", str(backup), "--home", str(tmp_path / "other"))
    assert code == 1 and "integrity" in err and not (tmp_path / "other").exists()


def test_audit_verify_exits_non_zero_and_names_the_broken_record(env, capsys):
    run(capsys, "init", *FAST)
    from vault.store import Vault

    with Vault.open(env, PASSPHRASE) as v:
        v.execute("UPDATE audit_log SET body = replace(body, 'argon2id', 'scrypt') WHERE seq = 1")
    code, _, err = run(capsys, "audit", "verify")
    assert code == 5 and "BROKEN at record 1" in err  # not 2: that is a usage error


def test_the_console_script_runs(env, tmp_path):
    exe = Path(sys.executable).parent / "lifevault"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lifevault.cli"]
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "init" in out.stdout


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            names += _commands(cmd, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_every_command_is_documented_in_the_readme_and_has_an_example():
    readme = (ROOT / "README.md").read_text()
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    for name in _commands(group):
        assert f"lifevault {name}" in readme, f"`lifevault {name}` is not in README.md"
        cmd = group
        for part in name.split():
            cmd = cmd.commands[part]  # type: ignore[union-attr]
        assert "Example:" in (cmd.help or ""), f"`lifevault {name}` help has no example"
