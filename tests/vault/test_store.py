from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from tests.conftest import FAST_KDF, PASSPHRASE
from vault import audit
from vault.errors import DiskFull, IntegrityError, VaultExists, VaultLocked, VaultMissing
from vault.store import DB_FILE, Vault

ROOT = Path(__file__).resolve().parents[2]


def test_force_mbedtls_unsafe_appears_nowhere_in_the_code_and_is_off_at_run_time(vault):
    needle = "force_mbedtls" + "_unsafe"
    offenders = [
        p for pkg in ("vault", "ingest", "embeddings", "federated", "api", "lifevault", "bench")
        for p in (ROOT / pkg).rglob("*") if p.is_file() and p.suffix in {".py", ".sql", ".toml", ".cfg"}
        and needle in p.read_text(errors="ignore")
    ]
    assert offenders == []
    assert vault.setting(needle) is False


def test_the_session_is_locked_down(vault, tmp_path):
    assert vault.setting("enable_external_access") is False
    assert vault.setting("lock_configuration") is True
    assert vault.setting("autoinstall_known_extensions") is False
    assert vault.setting("autoload_known_extensions") is False
    assert vault.setting("allow_unsigned_extensions") is False
    assert vault.setting("temp_file_encryption") is True
    with pytest.raises(duckdb.Error):
        vault.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error):
        vault.execute("SET allow_unsigned_extensions = true")
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    with pytest.raises(duckdb.Error):
        vault.query(f"SELECT * FROM read_csv('{outside}')")
    with pytest.raises(duckdb.Error):
        vault.execute("INSTALL spatial")


def test_database_is_gcm_encrypted_and_the_key_never_appears_in_sql(vault):
    enc = vault.query("SELECT encrypted, cipher FROM duckdb_databases() WHERE database_name = 'vault'")
    assert enc == [(True, "GCM")]
    assert vault._keys.duckdb_key_text() not in "".join(r[0] or "" for r in vault.query("SELECT sql FROM duckdb_tables()"))


def test_creating_over_an_existing_vault_is_refused(new_vault, home):
    with pytest.raises(VaultExists):
        Vault.create(home, PASSPHRASE, kdf=FAST_KDF)


def test_missing_home_and_missing_database_say_what_to_do(new_vault, home, tmp_path):
    with pytest.raises(VaultMissing, match="does not exist"):
        Vault.open(tmp_path / "nowhere", PASSPHRASE)
    new_vault[0].close()
    (home / DB_FILE).rename(home / "elsewhere")
    with pytest.raises(VaultMissing, match="vault.duckdb is missing"):
        Vault.open(home, PASSPHRASE)


HEADER_BYTES, BLOCK_BYTES = 3 * 4096, 256 * 1024  # DuckDB 1.5 file layout: 3 header blocks, 256 KiB blocks


@pytest.mark.parametrize("where", ["header", "first block", "middle block", "last block"])
def test_one_flipped_byte_in_the_database_is_an_integrity_error(new_vault, home, where):
    vault, _ = new_vault
    vault.execute("CREATE TABLE t AS SELECT range AS i, 'text ' || range AS s FROM range(100000)")
    vault.checkpoint()
    blocks = sorted({b for (b,) in vault.query("SELECT block_id FROM pragma_storage_info('t') WHERE block_id >= 0")})
    vault.close()
    db = home / DB_FILE
    pick = {"header": None, "first block": blocks[0], "middle block": blocks[len(blocks) // 2], "last block": blocks[-1]}
    offset = 100 if pick[where] is None else HEADER_BYTES + pick[where] * BLOCK_BYTES + 4000
    data = bytearray(db.read_bytes())
    data[offset] ^= 0x01
    db.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="integrity check"):
        with Vault.open(home, PASSPHRASE) as v:
            v.query("SELECT sum(i), max(s) FROM t")


def test_second_opener_is_told_which_process_holds_the_vault(new_vault, home):
    vault, _ = new_vault
    vault.announce_port(8765)
    code = textwrap.dedent(f"""
        from vault.store import Vault
        from vault.errors import VaultLocked
        try:
            Vault.open({str(home)!r}, {PASSPHRASE!r})
        except VaultLocked as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert f"process {os.getpid()}" in out.stdout and "8765" in out.stdout


def test_lock_is_released_on_close(new_vault, home):
    new_vault[0].close()
    with Vault.open(home, PASSPHRASE):
        with pytest.raises(VaultLocked):
            Vault.open(home, PASSPHRASE)
    with Vault.open(home, PASSPHRASE):
        pass


def test_disk_full_during_a_write_keeps_the_previous_state(new_vault, home):
    vault, _ = new_vault
    vault.execute("CREATE TABLE t AS SELECT md5(range::VARCHAR) AS s FROM range(1000)")
    audit.record(vault, audit.PassphraseChanged(via="passphrase"))
    vault.close()
    limit = (home / DB_FILE).stat().st_size + 256 * 1024
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from vault.store import Vault
        from vault.errors import DiskFull
        v = Vault.open({str(home)!r}, {PASSPHRASE!r})
        try:
            v.execute("INSERT INTO t SELECT md5(random()::VARCHAR) FROM range(3000000)")
            v.checkpoint()
            print("NO ERROR")
        except DiskFull as e:
            print("DISKFULL", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "DISKFULL" in out.stdout, out.stdout + out.stderr[-2000:]
    with Vault.open(home, PASSPHRASE) as v:
        assert v.scalar("SELECT count(*) FROM t") in (1000, 3001000)
        assert audit.verify(v).ok


def test_disk_full_maps_to_a_clear_message():
    from vault.store import translate

    e = translate(duckdb.IOException("IO Error: Could not write file: No space left on device"))
    assert isinstance(e, DiskFull) and "previous state is intact" in str(e)


def test_worker_threads_read_through_their_own_cursors_with_their_own_transactions(vault):
    """A thread other than the opener gets its own DuckDB cursor on the same encrypted database: it sees
    committed data, not another thread's open transaction, and the session stays locked down for it."""
    import threading

    vault.execute("CREATE TABLE t (x INTEGER)")
    vault.execute("INSERT INTO t VALUES (1)")
    seen: dict[str, object] = {}
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with vault.transaction():
            vault.execute("INSERT INTO t VALUES (2)")
            seen["writer_sees"] = vault.scalar("SELECT count(*) FROM t")
            inside.set()
            release.wait(5)

    def reader() -> None:
        seen["reader_sees"] = vault.scalar("SELECT count(*) FROM t")
        seen["reader_tx"] = vault.in_transaction()
        try:
            vault.execute("SET enable_external_access = true")
            seen["unlocked"] = True
        except duckdb.Error:
            seen["unlocked"] = False

    w = threading.Thread(target=writer)
    w.start()
    assert inside.wait(5)
    r = threading.Thread(target=reader)
    r.start()
    r.join(5)
    release.set()
    w.join(5)
    assert seen == {"writer_sees": 2, "reader_sees": 1, "reader_tx": False, "unlocked": False}
    assert vault.scalar("SELECT count(*) FROM t") == 2  # committed: visible to the opener's connection
    assert len(vault._cursors) == 2
    vault.close()
    assert vault._cursors == []
