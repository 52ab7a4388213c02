"""No plaintext personal data on disk, ever: canaries planted everywhere are found nowhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.conftest import PASSPHRASE, grep_tree, watching_temp_files
from tests.vault.canary import plant_everywhere
from vault import audit
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]
CANARY = "CANARY-7f3a9c-Dr-Lee-Kings-Rd"


def test_canaries_in_every_table_and_blob_are_not_on_disk_open_checkpointed_or_closed(new_vault, home):
    vault, _ = new_vault
    touched = plant_everywhere(vault, CANARY)
    assert set(touched) >= {"audit_log", "privacy_ledger", "vault_meta"}
    vault.write_blob("index", (CANARY * 1000).encode())
    assert grep_tree(home, CANARY.encode()) == []  # open, WAL holds the rows
    vault.checkpoint()
    assert grep_tree(home, CANARY.encode()) == []
    vault.close()
    assert grep_tree(home, CANARY.encode()) == []
    with Vault.open(home, PASSPHRASE) as v:  # and the canaries really are in there
        assert v.scalar("SELECT count(*) FROM vault_meta WHERE value = ?", [CANARY]) == 1
        assert v.read_blob("index") == (CANARY * 1000).encode()


def test_temp_files_spilled_by_a_large_sort_are_encrypted(tmp_path):
    from tests.conftest import FAST_KDF

    home = tmp_path / "h"
    Vault.create(home, PASSPHRASE, kdf=FAST_KDF)[0].close()
    with Vault.open(home, PASSPHRASE, memory_limit="256MB") as v, watching_temp_files(home, CANARY.encode()) as (seen, hits):
        v.execute("CREATE TABLE big AS SELECT ? || md5(range::VARCHAR) || repeat('x', 40) AS s FROM range(4000000)",
                  [CANARY])
        v.query("SELECT s, count(*) FROM big GROUP BY s ORDER BY s LIMIT 3")
    assert seen, "the sort did not spill: the test would prove nothing"
    assert hits == []
    assert grep_tree(home, CANARY.encode()) == []


def test_kill_9_mid_write_leaves_no_plaintext_and_a_vault_that_opens(new_vault, home):
    vault, _ = new_vault
    vault.execute("CREATE TABLE notes (i BIGINT, t VARCHAR)")
    audit.record(vault, audit.PassphraseChanged(via="passphrase"))
    vault.close()
    code = textwrap.dedent(f"""
        import sys
        from vault.store import Vault
        from vault import audit
        v = Vault.open({str(home)!r}, {PASSPHRASE!r})
        print("ready", flush=True)
        i = 0
        while True:
            with v.transaction():
                v.execute("INSERT INTO notes SELECT range + ?, ? || range FROM range(20000)", [i, {CANARY!r}])
                audit.record(v, audit.PassphraseChanged(via="passphrase"))
            i += 20000
            if i % 200000 == 0:
                v.checkpoint()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    time.sleep(2.5)
    assert grep_tree(home, CANARY.encode()) == []  # while it writes
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert grep_tree(home, CANARY.encode()) == []  # after the crash: db, WAL, temp
    with Vault.open(home, PASSPHRASE) as v:
        n = v.scalar("SELECT count(*) FROM notes")
        assert n % 20000 == 0 and n > 0  # whole statements only: old or new state, never half
        assert audit.verify(v).ok
        assert v.scalar("SELECT count(*) FROM audit_log") == n // 20000 + 1
    assert grep_tree(home, CANARY.encode()) == []
