from __future__ import annotations

import json
import stat

import duckdb
import pytest

from tests.conftest import FAST_KDF, PASSPHRASE
from vault import keys as keymod
from vault.errors import IntegrityError, KeysDamaged, VaultMissing, WrongPassphrase
from vault.store import DB_FILE, Vault, _connect


def test_wrong_passphrase_is_refused_with_a_one_line_message(new_vault, home):
    new_vault[0].close()
    with pytest.raises(WrongPassphrase) as e:
        Vault.open(home, "not the passphrase")
    assert "wrong passphrase" in str(e.value) and "\n" not in str(e.value)


def test_default_kdf_is_argon2id_64mib_3_passes_4_lanes_and_recorded(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    keymod.create(home, "pw")
    kdf = json.loads((home / "keys.json").read_text())["kdf"]
    assert (kdf["name"], kdf["memory_kib"], kdf["iterations"], kdf["lanes"]) == ("argon2id", 65536, 3, 4)
    assert keymod.unlock(home, "pw").duckdb  # parameters are read back from the file


def test_keys_json_holds_no_raw_key_and_is_private(new_vault, home):
    vault, code = new_vault
    doc = (home / "keys.json").read_bytes()
    for raw in (vault._keys.duckdb, vault._keys.sealed, vault._keys.rowid):
        assert raw not in doc and raw.hex().encode() not in doc
        assert keymod._b64(raw).encode() not in doc
    assert PASSPHRASE.encode() not in doc and code.encode() not in doc
    assert stat.S_IMODE((home / "keys.json").stat().st_mode) == 0o600
    assert not list(home.glob(".keys.json*"))  # no temp file left behind by the atomic write


def test_recovery_code_opens_the_vault_and_can_set_a_new_passphrase(new_vault, home):
    vault, code = new_vault
    vault.execute("CREATE TABLE notes (t VARCHAR)")
    vault.execute("INSERT INTO notes VALUES ('kept')")
    vault.close()
    with Vault.open(home, recovery_code=code.lower().replace("-", " ")) as v:
        v.change_passphrase("a brand new passphrase")
    with pytest.raises(WrongPassphrase):
        Vault.open(home, PASSPHRASE)
    with Vault.open(home, "a brand new passphrase") as v:
        assert v.query("SELECT t FROM notes") == [("kept",)]
    with Vault.open(home, recovery_code=code) as v:  # the recovery code still works
        assert v.scalar("SELECT count(*) FROM notes") == 1


def test_passwd_leaves_the_keys_and_the_data_byte_identical(new_vault, home):
    vault, _ = new_vault
    vault.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000)")
    vault.close()
    before_db = (home / DB_FILE).read_bytes()
    k1 = keymod.unlock(home, PASSPHRASE)
    keymod.change_passphrase(home, k1, "second passphrase")
    k2 = keymod.unlock(home, "second passphrase")
    assert (k1.duckdb, k1.sealed, k1.rowid) == (k2.duckdb, k2.sealed, k2.rowid)
    assert (home / DB_FILE).read_bytes() == before_db
    with pytest.raises(WrongPassphrase):
        keymod.unlock(home, PASSPHRASE)


def test_rotate_key_keeps_data_readable_and_the_old_key_useless(new_vault, home):
    vault, code = new_vault
    vault.execute("CREATE TABLE t AS SELECT range AS i, 'row ' || range AS s FROM range(5000)")
    old_key = vault._keys.duckdb_key_text()
    vault.rotate_duckdb_key()
    assert vault.scalar("SELECT sum(i) FROM t") == sum(range(5000))
    vault.close()
    assert keymod.public_info(home)["meta"]["keys"]["duckdb"]["generation"] == 2
    assert b"pending" in (home / "keys.json").read_bytes() and not json.loads((home / "keys.json").read_text())["pending"]
    con = _connect(home)
    with pytest.raises(duckdb.Error, match="Wrong encryption key"):
        con.execute(f"ATTACH '{home / DB_FILE}' AS old (ENCRYPTION_KEY ?, ENCRYPTION_CIPHER 'GCM')", [old_key])
    con.close()
    for opener in (lambda: Vault.open(home, PASSPHRASE), lambda: Vault.open(home, recovery_code=code)):
        with opener() as v:
            assert v.scalar("SELECT count(*) FROM t") == 5000


def test_interrupted_rotation_before_the_swap_is_abandoned_and_after_it_is_completed(new_vault, home):
    vault, _ = new_vault
    vault.execute("CREATE TABLE t AS SELECT 1 AS one")
    vault.close()
    keys = keymod.unlock(home, PASSPHRASE)
    keymod.stage_duckdb_key(home, keys)  # crash right after staging: the file was never swapped
    with Vault.open(home, PASSPHRASE) as v:
        assert v.scalar("SELECT one FROM t") == 1
    assert json.loads((home / "keys.json").read_text())["pending"] is None


def test_missing_or_damaged_keys_json_say_so(new_vault, home):
    new_vault[0].close()
    doc = (home / "keys.json").read_text()
    (home / "keys.json").write_text(doc[: len(doc) // 2])
    with pytest.raises(KeysDamaged, match="damaged"):
        Vault.open(home, PASSPHRASE)
    (home / "keys.json").unlink()
    with pytest.raises(VaultMissing, match="no keys.json"):
        Vault.open(home, PASSPHRASE)


def test_keys_json_of_another_vault_is_reported_as_a_mismatch(tmp_path):
    a, _ = Vault.create(tmp_path / "a", PASSPHRASE, kdf=FAST_KDF)
    b, _ = Vault.create(tmp_path / "b", PASSPHRASE, kdf=FAST_KDF)
    a.close()
    b.close()
    (tmp_path / "a" / "keys.json").write_bytes((tmp_path / "b" / "keys.json").read_bytes())
    with pytest.raises(IntegrityError, match="does not belong"):
        Vault.open(tmp_path / "a", PASSPHRASE)
