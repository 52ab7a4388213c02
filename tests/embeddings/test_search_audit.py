"""A search's audit record is committed by a worker while the hits are read (vault/audit.py alongside()); the
answer still never leaves before its record is durable, and never at all when the record cannot be written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from embeddings.encoder import Encoder
from embeddings.events import MemorySearched
from embeddings.service import MemoryService
from tests.conftest import PASSPHRASE
from vault import audit
from vault.store import Vault

SEARCH_THEN_DIE = """
import os, signal, sys
from embeddings.service import MemoryService
from vault.store import Vault
vault = Vault.open(sys.argv[1], sys.argv[2])
result = MemoryService(vault).search(sys.argv[3], k=3, mode="lexical", actor="killed-reader")
print(",".join(str(h.memory.memory_id) for h in result.hits), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the answer is out: nothing is flushed, closed or checkpointed after it
"""


def test_an_answer_that_left_the_process_is_in_the_audit_log_when_the_process_is_killed_right_after(indexed_home: Path):
    run = subprocess.run([sys.executable, "-c", SEARCH_THEN_DIE, str(indexed_home), PASSPHRASE, "check-up with Dr. Lee"],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    returned = [int(i) for i in run.stdout.strip().split(",") if i]
    assert returned  # the persona has seen Dr. Lee
    with Vault.open(indexed_home, PASSPHRASE, read_only=True) as vault:
        records = [e for e in audit.events(vault, kind=MemorySearched.kind) if e.body["actor"] == "killed-reader"]
        assert [[int(i) for i in r.body["returned_ids"]] for r in records] == [returned]
        assert audit.verify(vault).ok


def test_a_search_whose_audit_record_cannot_be_written_returns_no_answer(indexed_home: Path, encoder: Encoder):
    with Vault.open(indexed_home, PASSPHRASE, read_only=True) as vault:  # reads work, the audit append is refused
        service = MemoryService(vault, encoder=encoder)
        before = len(list(audit.events(vault)))
        with pytest.raises(Exception, match="read-only"):  # DuckDB refuses the INSERT
            service.search("check-up with Dr. Lee", k=3, mode="lexical")
        assert len(list(audit.events(vault))) == before
        service.close()


def test_inside_deferred_the_search_record_is_held_for_the_caller_exactly_as_returned(indexed_home: Path, encoder: Encoder):
    with Vault.open(indexed_home, PASSPHRASE) as vault:
        service = MemoryService(vault, encoder=encoder)
        before = len(list(audit.events(vault)))
        with audit.deferred() as held:
            result = service.search("check-up with Dr. Lee", k=3, mode="lexical", actor="api-token")
        assert len(list(audit.events(vault))) == before  # nothing appended on its own: the caller commits
        (event,) = held
        assert isinstance(event, MemorySearched) and event.actor == "api-token"
        assert event.returned_ids == [h.memory.memory_id for h in result.hits]
        service.close()
