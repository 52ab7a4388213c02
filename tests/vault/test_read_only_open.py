"""A command that writes nothing (`status`, `token list`) opens the vault READ_ONLY, without the httpfs extension:
the file is authenticated as before and left untouched, and a vault that opening must write first is opened
read-write instead."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PASSPHRASE
from vault import headanchor
from vault.errors import IntegrityError, WrongPassphrase
from vault.store import DB_FILE, Connecting, Vault


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture
def closed(new_vault: tuple[Vault, str], home: Path) -> Path:
    vault, _ = new_vault
    vault.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000)")
    vault.close()
    return home


def test_a_read_only_open_reads_and_leaves_the_database_file_as_it_was(closed: Path):
    before = _fingerprint(closed / DB_FILE)
    with Vault.open(closed, PASSPHRASE, read_only=True) as v:
        assert v.read_only
        assert v.scalar("SELECT sum(i) FROM t") == 499500
        assert v.scalar("SELECT count(*) FROM duckdb_settings() WHERE name = 's3_region'") == 0  # no httpfs
    assert _fingerprint(closed / DB_FILE) == before
    assert not (closed / (DB_FILE + ".wal")).exists()


def test_a_read_only_vault_refuses_writes(closed: Path):
    with Vault.open(closed, PASSPHRASE, read_only=True) as v, pytest.raises(duckdb.Error, match="read-only"):
        v.execute("INSERT INTO t VALUES (1)")


def test_a_read_only_session_is_locked_down_like_any_other(closed: Path, tmp_path: Path):
    with Vault.open(closed, PASSPHRASE, read_only=True) as v:
        assert v.setting("enable_external_access") is False
        assert v.setting("lock_configuration") is True
        assert v.setting("temp_file_encryption") is True
        assert v.query("SELECT encrypted, cipher FROM duckdb_databases() WHERE database_name = 'vault'") == [(True, "GCM")]
        with pytest.raises(duckdb.Error):
            v.execute("SET enable_external_access = true")


def test_a_wrong_passphrase_gets_the_same_message_read_only(closed: Path):
    with pytest.raises(WrongPassphrase, match="wrong passphrase: keys.json could not be unlocked"):
        Vault.open(closed, "not the passphrase", read_only=True)


def test_one_flipped_byte_is_the_same_integrity_error_read_only(new_vault: tuple[Vault, str], home: Path):
    vault, _ = new_vault
    vault.execute("CREATE TABLE t AS SELECT range AS i, 'text ' || range AS s FROM range(100000)")
    vault.checkpoint()
    block = min(b for (b,) in vault.query("SELECT block_id FROM pragma_storage_info('t') WHERE block_id >= 0"))
    vault.close()
    db = home / DB_FILE
    data = bytearray(db.read_bytes())
    data[3 * 4096 + block * 256 * 1024 + 4000] ^= 0x01
    db.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="vault.duckdb was modified or corrupted"):
        with Vault.open(home, PASSPHRASE, read_only=True) as v:
            v.query("SELECT sum(i), max(s) FROM t")


def test_a_read_only_open_leaves_the_head_anchor_catch_up_to_the_next_read_write_open(closed: Path):
    with Vault.open(closed, PASSPHRASE) as v:
        v.execute("DELETE FROM vault_meta WHERE key = ?", [headanchor.META_KEY])
    with Vault.open(closed, PASSPHRASE, read_only=True) as v:
        assert v.read_only and v.scalar("SELECT count(*) FROM vault_meta WHERE key = ?", [headanchor.META_KEY]) == 0
    with Vault.open(closed, PASSPHRASE) as v:  # on_open re-marks the database
        assert v.scalar("SELECT count(*) FROM vault_meta WHERE key = ?", [headanchor.META_KEY]) == 1


def test_a_vault_with_a_migration_to_apply_opens_read_write(closed: Path):
    with Vault.open(closed, PASSPHRASE) as v:
        last = v.scalar("SELECT max(seq) FROM _migrations")
        name = v.scalar("SELECT name FROM _migrations WHERE seq = ?", [last])
        v.execute("DELETE FROM _migrations WHERE seq = ?", [last])
    with Vault.open(closed, PASSPHRASE, read_only=True) as v:
        assert not v.read_only  # the schema must be this code's before anything is read
        assert v.scalar("SELECT count(*) FROM _migrations WHERE name = ?", [name]) == 1


def test_a_wal_left_by_a_crash_is_replayed_by_a_read_write_open(new_vault: tuple[Vault, str], home: Path,
                                                                 tmp_path: Path):
    vault, _ = new_vault
    vault.execute("CREATE TABLE t AS SELECT 1 AS i")
    vault.checkpoint()
    vault.execute("INSERT INTO t VALUES (2)")  # committed, in the WAL only
    crashed = tmp_path / "crashed"
    shutil.copytree(home, crashed)  # the files as a killed process leaves them
    assert (crashed / (DB_FILE + ".wal")).exists()
    (crashed / "vault.lock").unlink()
    with Vault.open(crashed, PASSPHRASE, read_only=True) as v:
        assert not v.read_only
        assert v.scalar("SELECT count(*) FROM t") == 2


def test_a_connection_started_early_opens_the_same_locked_down_session(closed: Path):
    """Connecting (DuckDB's start in a thread, for search) gives the session a plain open gives."""
    with Vault.open(closed, PASSPHRASE, connecting=Connecting(closed)) as v:
        assert not v.read_only and v.scalar("SELECT sum(i) FROM t") == 499500
        assert v.setting("enable_external_access") is False and v.setting("lock_configuration") is True
        assert v.scalar("SELECT count(*) FROM duckdb_settings() WHERE name = 's3_region'") == 1  # httpfs: it writes
        v.execute("INSERT INTO t VALUES (1000)")


def test_a_connection_started_early_is_set_aside_for_a_read_only_open(closed: Path):
    with Vault.open(closed, PASSPHRASE, read_only=True, connecting=Connecting(closed)) as v:
        assert v.read_only and v.scalar("SELECT count(*) FROM duckdb_settings() WHERE name = 's3_region'") == 0


def test_a_wrong_passphrase_with_a_connection_started_early_gets_the_same_message(closed: Path):
    with pytest.raises(WrongPassphrase, match="wrong passphrase: keys.json could not be unlocked"):
        Vault.open(closed, "not the passphrase", connecting=Connecting(closed))
    with Vault.open(closed, PASSPHRASE) as v:  # nothing was left holding the vault
        assert v.scalar("SELECT count(*) FROM t") == 1000
