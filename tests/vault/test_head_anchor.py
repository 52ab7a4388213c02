"""keys.json's head anchor: cutting the tail of both the privacy ledger and the audit log is caught.

Real encrypted vaults on disk, the real CLI, a real SIGKILL at the crash point between the release's commit
and the keys.json write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lifevault.cli import main
from lifevault.cli_audit import EXIT_ANCHOR_MISMATCH
from tests.conftest import PASSPHRASE
from vault import audit, crashpoint, headanchor, keys, ledger
from vault.errors import IntegrityError
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]


Z = 10.0


def _release(n: int) -> ledger.Release:
    """The n-th release at noise multiplier Z, with the epsilons `audit verify` recomputes."""
    from federated import accounting

    events = [accounting.Release(noise_multiplier=Z)] * n
    return ledger.Release(
        round=n, model_id="m", mode="local", mechanism="gaussian", clip_norm=1.0, noise_multiplier=Z,
        sampling="none", sampling_rate=None, delta=1e-6, epsilon_after=accounting.epsilon(events, 1e-6),
        epsilon_after_rdp=accounting.epsilon(events, 1e-6, accountant="rdp"), epsilon_label="device-verifiable",
        budget_epsilon=8.0)


@pytest.fixture
def cli_home(monkeypatch, tmp_path) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(home))
    assert main(["init", "--kdf-memory-mib", "19", "--kdf-iterations", "2", "--kdf-lanes", "1"]) == 0
    return home


def _verify(capsys) -> tuple[int, dict, str]:
    capsys.readouterr()
    code = main(["audit", "verify", "--json"])
    cap = capsys.readouterr()
    return code, json.loads(cap.out), cap.err


def _two_releases(home: Path) -> None:
    with Vault.open(home, PASSPHRASE) as v:
        ledger.append(v, _release(1))
        ledger.append(v, _release(2))


def _cut_last_release_from_both_tables(home: Path) -> None:
    """What an attacker holding the database would do: the last release and every audit record from its
    anchor on are deleted, so both chains stay intact and agree with each other."""
    with Vault.open(home, PASSPHRASE) as v:
        seq = v.scalar("SELECT max(seq) FROM privacy_ledger")
        anchor_seq = v.scalar("SELECT seq FROM audit_log WHERE kind = 'privacy.release_anchored' "
                              "AND json_extract(body, '$.ledger_seq')::INT = ?", [seq])
        v.execute("DELETE FROM privacy_ledger WHERE seq = ?", [seq])
        v.execute("DELETE FROM audit_log WHERE seq >= ?", [anchor_seq])
        assert audit.verify(v).ok and ledger.verify(v).ok and ledger.cross_check(v).ok
        assert ledger.spent(v) == _release(1).epsilon_after


def test_an_untouched_vault_with_releases_passes_audit_verify(cli_home, capsys):
    _two_releases(cli_home)
    code, out, err = _verify(capsys)
    assert code == 0 and out["keys_json_anchor"]["ok"]
    assert "ledger record 2" in out["keys_json_anchor"]["reason"]
    body = keys.read_keyfile(cli_home)["head_anchor"]["body"]
    assert body["ledger_seq"] == 2 and body["epsilon_spent"] == _release(2).epsilon_after


def test_deleting_the_last_release_from_both_tables_fails_audit_verify_with_its_own_exit_code(cli_home, capsys):
    _two_releases(cli_home)
    _cut_last_release_from_both_tables(cli_home)
    code, out, err = _verify(capsys)
    assert code == EXIT_ANCHOR_MISMATCH == 7
    assert not out["keys_json_anchor"]["ok"] and out["keys_json_anchor"]["first_broken"] == 2
    text = " ".join(err.split())  # the terminal may wrap the line
    assert ("chains vs keys.json anchor: MISMATCH: privacy_ledger ends at record 1 but keys.json anchored "
            "record 2 (records were removed)") in text
    assert "Traceback" not in err


def test_a_vault_cut_behind_its_anchor_refuses_to_release_again(cli_home):
    _two_releases(cli_home)
    _cut_last_release_from_both_tables(cli_home)
    with Vault.open(cli_home, PASSPHRASE) as v:
        with pytest.raises(IntegrityError, match="nothing was released: privacy_ledger ends at record 1"):
            ledger.append(v, _release(2))
        assert v.scalar("SELECT count(*) FROM privacy_ledger") == 1
    assert keys.read_keyfile(cli_home)["head_anchor"]["body"]["ledger_seq"] == 2  # the evidence stays


def test_an_anchor_altered_without_the_key_fails_audit_verify(cli_home, capsys):
    _two_releases(cli_home)
    doc = keys.read_keyfile(cli_home)
    doc["head_anchor"]["body"]["epsilon_spent"] = 0.01
    keys.keys_path(cli_home).write_text(json.dumps(doc))
    code, out, err = _verify(capsys)
    assert code == EXIT_ANCHOR_MISMATCH and "fails its authentication" in out["keys_json_anchor"]["reason"]


def test_an_anchor_removed_from_keys_json_fails_audit_verify(cli_home, capsys):
    _two_releases(cli_home)
    doc = keys.read_keyfile(cli_home)
    del doc["head_anchor"]
    keys.keys_path(cli_home).write_text(json.dumps(doc))
    code, out, err = _verify(capsys)
    assert code == EXIT_ANCHOR_MISMATCH and "(removed)" in out["keys_json_anchor"]["reason"]
    assert "head_anchor" not in keys.read_keyfile(cli_home)  # opening the vault did not re-create it


def test_an_audit_log_cut_behind_its_anchor_fails_audit_verify(cli_home, capsys):
    _two_releases(cli_home)
    with Vault.open(cli_home, PASSPHRASE) as v:
        last = v.scalar("SELECT max(seq) FROM audit_log")
        v.execute("DELETE FROM audit_log WHERE seq = ?", [last])
    code, out, err = _verify(capsys)
    assert code == EXIT_ANCHOR_MISMATCH and "audit_log ends at record" in out["keys_json_anchor"]["reason"]


def test_a_crash_between_commit_and_keys_json_is_anchored_on_the_next_open(cli_home, capsys):
    _two_releases(cli_home)
    script = ("import os; from vault import ledger; from vault.store import Vault; "
              "from tests.vault.test_head_anchor import _release\n"
              "with Vault.open(os.environ['LIFEVAULT_HOME'], os.environ['LIFEVAULT_PASSPHRASE']) as v:\n"
              "    ledger.append(v, _release(3))\n")
    env = os.environ | {crashpoint.ENV: "ledger.release_committed", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -9, done.stderr  # killed at the crash point
    assert keys.read_keyfile(cli_home)["head_anchor"]["body"]["ledger_seq"] == 2  # committed, not anchored
    code, out, err = _verify(capsys)  # opens the vault: the anchor moves forward, never looks like tampering
    assert code == 0 and out["keys_json_anchor"]["ok"]
    assert keys.read_keyfile(cli_home)["head_anchor"]["body"]["ledger_seq"] == 3
    with Vault.open(cli_home, PASSPHRASE) as v:
        set_ = [e.body for e in audit.events(v, kind=headanchor.HeadAnchorSet.kind)]
    assert [(e["reason"], e["ledger_seq"]) for e in set_] == [("advanced", 3)]


def test_a_vault_from_before_anchoring_is_anchored_on_its_first_open(home, monkeypatch):
    from tests.conftest import FAST_KDF

    with monkeypatch.context() as m:  # the version before anchoring: no on_open, no write
        m.setattr(headanchor, "on_open", lambda v: None)
        m.setattr(headanchor, "write", lambda v, a: None)
        vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
        with vault:
            ledger.append(vault, _release(1))
    assert "head_anchor" not in keys.read_keyfile(home)
    with Vault.open(home, PASSPHRASE) as v:
        assert headanchor.check(v).ok
        events = [e.body for e in audit.events(v, kind=headanchor.HeadAnchorSet.kind)]
    assert [(e["reason"], e["ledger_seq"], e["epsilon_spent"]) for e in events] == [
        ("created", 1, _release(1).epsilon_after)]
    assert keys.read_keyfile(home)["head_anchor"]["body"]["ledger_seq"] == 1


def test_restoring_a_copy_of_the_whole_vault_home_is_not_caught(cli_home, tmp_path, capsys):
    """The stated limit: keys.json and the database rolled back together agree with each other."""
    with Vault.open(cli_home, PASSPHRASE) as v:
        ledger.append(v, _release(1))
    copy = shutil.copytree(cli_home, tmp_path / "copy")
    with Vault.open(cli_home, PASSPHRASE) as v:
        ledger.append(v, _release(2))
    shutil.rmtree(cli_home)
    shutil.copytree(copy, cli_home)
    code, out, err = _verify(capsys)
    assert code == 0 and out["keys_json_anchor"]["ok"]
