"""The token and serve commands without a running server: they open the vault themselves."""

from __future__ import annotations

import json

import pytest

from api.tokens import TokenStore
from lifevault.cli import main
from tests.conftest import PASSPHRASE
from vault.store import Vault

FAST = ["--kdf-memory-mib", "19", "--kdf-iterations", "2", "--kdf-lanes", "1"]  # the KDF floor


@pytest.fixture
def home(monkeypatch, tmp_path, capsys):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_HOME", str(tmp_path / "home"))
    assert main(["init", *FAST]) == 0
    capsys.readouterr()
    return tmp_path / "home"


def test_a_token_is_shown_once_stored_hashed_listed_and_revoked(home, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["token", "create", "--agent", "phone", "--scope", "memory:read", "--scope", "location:read",
                 "--ttl", "7d", "--purpose", "planning", "--json"])
    made = json.loads(capsys.readouterr().out)
    assert code == 0 and made["token"].startswith("lv_") and made["location"] == "coarse"
    with Vault.open(home, PASSPHRASE) as v:
        stored = v.query("SELECT * FROM api_tokens")
        assert made["token"].split("_")[-1] not in repr(stored)  # only the hash is stored
        assert TokenStore.load(v).verify(made["token"]).agent == "phone"
    assert main(["token", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["tokens"]
    assert listed["status"] == "active" and "token" not in listed and listed["purpose"] == "planning"
    assert main(["token", "revoke", made["token_id"]]) == 0
    capsys.readouterr()
    assert main(["token", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"][0]["status"] == "revoked"


def test_token_list_prints_one_aligned_line_per_token_and_no_secret(home, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["token", "create", "--agent", "phone", "--scope", "memory:read", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert main(["token", "list"]) == 0
    header, row = capsys.readouterr().err.splitlines()
    assert header.split() == ["id", "agent", "scopes", "location", "purpose", "expires", "status"]
    assert row.split()[:4] == [made["token_id"], "phone", "memory:read", "none"] and row.endswith("active")
    assert header.index("agent") == row.index("phone")  # columns line up
    assert made["token"].split("_")[-1] not in row


@pytest.mark.parametrize(("args", "message"), [
    (["token", "create", "--agent", "a", "--scope", "memory:reed"], "unknown scope"),
    (["token", "create", "--agent", "a", "--scope", "memory:read", "--ttl", "forever"], "is not a duration"),
    (["token", "revoke", "0123456789ab"], "no token"),
    (["serve", "--host", "0.0.0.0"], "not a loopback address"),
])
def test_bad_requests_end_in_one_line(home, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    code = main(args)
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err and err.strip().count("\n") == 0
