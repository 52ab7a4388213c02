from __future__ import annotations

import pytest

from tests.conftest import PASSPHRASE
from vault import audit, ledger
from vault.errors import BudgetExhausted
from vault.store import Vault


def _fill(vault: Vault, n: int = 5) -> None:
    for i in range(n):
        audit.record(vault, audit.BackupExported(sha256=f"{i:064x}", bytes=i))


def test_a_fresh_chain_verifies(vault):
    _fill(vault)
    r = audit.verify(vault)
    assert r.ok and r.checked == 5


def test_editing_a_past_record_is_detected_at_that_record(vault, home):
    _fill(vault)
    vault.execute("UPDATE audit_log SET body = replace(body, '\"bytes\":2', '\"bytes\":9') WHERE seq = 3")
    r = audit.verify(vault)
    assert not r.ok and r.first_broken == 3 and "changed" in r.reason


def test_recomputing_one_hash_still_breaks_the_next_link(vault):
    _fill(vault)
    from vault.chain import link_hash

    seq, ts, kind, body, prev = vault.query("SELECT seq, ts, kind, body, prev_hash FROM audit_log WHERE seq = 2")[0]
    body = body.replace('"bytes":1', '"bytes":7')
    vault.execute("UPDATE audit_log SET body = ?, hash = ? WHERE seq = 2", [body, link_hash(seq, ts, kind, body, prev)])
    r = audit.verify(vault)
    assert not r.ok and r.first_broken == 3


def test_removing_a_record_is_detected(vault):
    _fill(vault)
    vault.execute("DELETE FROM audit_log WHERE seq = 2")
    r = audit.verify(vault)
    assert not r.ok and r.first_broken == 3 and "removed" in r.reason


def test_audit_events_carry_typed_kinds_and_survive_reopen(new_vault, home):
    vault, _ = new_vault
    audit.record(vault, audit.KeyRotated(key="duckdb", generation=2))
    vault.close()
    with Vault.open(home, PASSPHRASE) as v:
        (row,) = list(audit.events(v, kind="keys.rotated"))
        assert row.body == {"actor": "owner", "key": "duckdb", "generation": 2}
        assert audit.verify(v).ok


def _release(eps: float, rnd: int = 1) -> ledger.Release:
    return ledger.Release(
        round=rnd, model_id="m", mode="local", mechanism="gaussian", clip_norm=1.0, noise_multiplier=1.1,
        sampling="none", sampling_rate=None, delta=1e-6, epsilon_after=eps, epsilon_after_rdp=eps * 1.05,
        epsilon_label="device-verifiable", budget_epsilon=8.0,
    )


def test_the_ledger_chains_releases_and_refuses_past_the_budget(vault):
    ledger.append(vault, _release(3.0, 1))
    ledger.append(vault, _release(7.5, 2))
    with pytest.raises(BudgetExhausted, match="nothing was sent"):
        ledger.append(vault, _release(8.2, 3))
    assert ledger.spent(vault) == 7.5
    assert [r.body["round"] for r in ledger.releases(vault)] == [1, 2]
    refusals = list(audit.events(vault, kind="privacy.release_refused"))
    assert len(refusals) == 1 and refusals[0].body["epsilon_would_be"] == 8.2
    assert ledger.verify(vault).ok
    vault.execute("UPDATE privacy_ledger SET body = replace(body, '7.5', '1.5') WHERE seq = 2")
    assert ledger.verify(vault).first_broken == 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -1.0])
def test_ledger_rejects_non_finite_or_non_positive_numbers(bad):
    with pytest.raises(ValueError):
        _release(bad)


def test_appends_from_many_threads_keep_one_unbroken_chain(vault):
    import threading

    def run(t: int) -> None:
        for i in range(20):
            audit.record(vault, audit.BackupExported(sha256=f"{t}{i:063x}", bytes=i))

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r = audit.verify(vault)
    assert r.ok and r.checked == 80


def test_a_rolled_back_append_leaves_no_gap_and_batches_commit_together(vault):
    _fill(vault, 2)
    with pytest.raises(RuntimeError), vault.transaction():
        audit.record(vault, audit.BackupImported(sha256="a" * 64))
        raise RuntimeError("the work failed")
    rows = audit.record_many(vault, [audit.BackupImported(sha256="b" * 64), audit.BackupImported(sha256="c" * 64)])
    assert [r.seq for r in rows] == [3, 4]
    with audit.deferred() as held:
        assert audit.record(vault, audit.BackupImported(sha256="d" * 64)) is None
    assert len(held) == 1 and vault.scalar("SELECT count(*) FROM audit_log") == 4
    r = audit.verify(vault)
    assert r.ok and r.checked == 4
