"""The hash chains under RFC 8785 (JCS): canonical bodies, the migration from json.dumps, and the export an
auditor verifies with tools/verify_export.py on the standard library alone."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import PASSPHRASE
from vault import audit, chain_export, chain_migrate, keys, ledger
from vault.chain import MAX_SAFE_INTEGER, canonical, link_hash
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "tools" / "verify_export.py"
sys.path.insert(0, str(VERIFIER.parent))
import verify_export  # noqa: E402  (the standalone script, imported to compare its JCS with the package's)

BIG_ID = 7_345_112_908_554_321_987  # a keyed 63-bit memory id: beyond what a JSON number carries exactly


def _release(eps: float, rnd: int, delta: float = 1e-6) -> ledger.Release:
    return ledger.Release(
        round=rnd, model_id="m", mode="local", mechanism="gaussian", clip_norm=1.0, noise_multiplier=1.1,
        sampling="poisson", sampling_rate=0.01, delta=delta, epsilon_after=eps, epsilon_after_rdp=eps * 1.05,
        epsilon_label="device-verifiable", budget_epsilon=8.0,
    )


def _activity(vault: Vault) -> None:
    """Audited activity of several kinds, a search that returned big keyed ids, and two ledger releases."""
    from embeddings.events import MemorySearched

    audit.record(vault, audit.BackupExported(sha256="ab" * 32, bytes=1234))
    audit.record(vault, MemorySearched(actor="tok-1", query_sha256=audit.text_hash(vault, "dinner with Ana"), k=3,
                                       returned_ids=[BIG_ID, 12, -BIG_ID]))
    ledger.append(vault, _release(1.25, 1))
    audit.record(vault, audit.KeyRotated(key="duckdb", generation=2))
    ledger.append(vault, _release(2.5, 2, delta=1e-7))


# ---- canonical bodies -----------------------------------------------------------------------------------------

def test_a_delta_of_one_millionth_is_hashed_as_rfc8785_writes_it_not_as_python_does(vault):
    ledger.append(vault, _release(1.0, 1, delta=1e-6))
    ledger.append(vault, _release(2.0, 2, delta=1e-7))
    bodies = [b for (b,) in vault.query("SELECT body FROM privacy_ledger ORDER BY seq")]
    assert '"delta":0.000001' in bodies[0] and '"delta":1e-7' in bodies[1]  # ECMAScript's forms
    assert "1e-06" not in "".join(bodies) and "1e-07" not in "".join(bodies)  # Python's json.dumps forms
    assert bodies == [rfc8785.dumps(json.loads(b)).decode() for b in bodies]
    assert '"clip_norm":1,' in bodies[0]  # 1.0 is the number 1 in JSON, as every JCS implementation writes it


def test_integers_beyond_the_exact_json_range_are_written_as_decimal_strings(vault):
    from embeddings.events import MemorySearched

    row = audit.record(vault, MemorySearched(query_sha256="0" * 64, k=2, returned_ids=[BIG_ID, MAX_SAFE_INTEGER]))
    assert row is not None and row.body["returned_ids"] == [str(BIG_ID), MAX_SAFE_INTEGER]
    assert audit.verify(vault).ok


def test_the_hash_is_sha256_of_the_canonical_record(vault):
    row = audit.record(vault, audit.KeyRotated(key="duckdb", generation=2))
    assert row is not None
    (ts,) = [json.loads(line)["ts"] for line in list(chain_export.lines(vault))[1:]]
    record = {"body": row.body, "kind": row.kind, "prev_hash": "0" * 64, "seq": 1, "ts": ts}
    assert row.hash == hashlib.sha256(rfc8785.dumps(record)).hexdigest()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.text(max_size=6), _json, max_size=5))
def test_canonical_bodies_are_what_rfc8785_and_the_standalone_verifier_write(body):
    text = canonical(body)
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: not JSON text; RFC 8785 refuses it too
        return
    parsed = verify_export.loads(text)  # numbers as an RFC 8785 reader takes them (large integral ones as doubles)
    assert text == rfc8785.dumps(parsed).decode() == verify_export.jcs(parsed)


# ---- the migration from json.dumps ------------------------------------------------------------------------

def _as_legacy(vault: Vault) -> None:
    """Rewrite both chains as a vault from before the migration held them, and forget the migration."""
    from vault.chain_migrate import legacy_hash

    mapping: dict[str, str] = {}
    for table in ("privacy_ledger", "audit_log"):
        prev = "0" * 64
        for seq, ts, kind, body, _, h in vault.query(f"SELECT seq, ts, kind, body, prev_hash, hash FROM {table} ORDER BY seq"):
            obj = json.loads(body)
            if kind == "privacy.release_anchored":
                obj["ledger_head"] = mapping[obj["ledger_head"]]
            if "returned_ids" in obj:
                obj["returned_ids"] = [int(i) for i in obj["returned_ids"]]
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            new = legacy_hash(seq, ts, kind, text, prev)
            mapping[h] = new
            vault.execute(f"UPDATE {table} SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?", [text, prev, new, seq])
            prev = new
    vault.execute("DELETE FROM _migrations WHERE name = ?", [chain_migrate.NAME])
    vault.execute("DELETE FROM vault_meta WHERE key = 'chain_canonicalization'")
    vault.execute("DELETE FROM vault_meta WHERE key = 'head_anchor'")  # nor was it anchored in keys.json
    doc = keys.read_keyfile(vault.home)
    doc.pop("head_anchor", None)
    keys.keys_path(vault.home).write_text(json.dumps(doc))


def test_the_migration_rehashes_both_chains_and_keeps_the_anchors_on_the_new_ledger_heads(new_vault, home):
    vault, _ = new_vault
    _activity(vault)
    _as_legacy(vault)
    legacy_audit_head = vault.query("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")[0][0]
    assert '"delta":1e-06' in vault.query("SELECT body FROM privacy_ledger WHERE seq = 1")[0][0]
    vault.close()
    with Vault.open(home, PASSPHRASE) as v:
        assert audit.verify(v).ok and ledger.verify(v).ok
        check = ledger.cross_check(v)
        assert check.ok and check.checked == 2, check
        heads = {r.seq: r.hash for r in ledger.releases(v)}
        anchors = [e.body for e in audit.events(v, kind=ledger.ReleaseAnchored.kind)]
        assert [a["ledger_head"] for a in anchors] == [heads[1], heads[2]]
        (event,) = list(audit.events(v, kind=chain_migrate.ChainsRecanonicalized.kind))
        assert event.body["tables"]["audit_log"] == {"records": 5, "legacy_head": legacy_audit_head,
                                                     "legacy_intact": True, "legacy_first_broken": None}
        assert chain_migrate.canonicalization(v) == "rfc8785" and chain_migrate.legacy_breaks(v) == []
        assert '"delta":0.000001' in v.query("SELECT body FROM privacy_ledger WHERE seq = 1")[0][0]


def test_a_chain_broken_before_the_migration_is_still_reported_after_it(new_vault, home):
    vault, _ = new_vault
    _activity(vault)
    _as_legacy(vault)
    vault.execute("UPDATE audit_log SET body = replace(body, '1234', '4321') WHERE seq = 1")
    vault.close()
    with Vault.open(home, PASSPHRASE) as v:
        assert chain_migrate.legacy_breaks(v) == [
            f"audit_log: chain was already BROKEN at record 1 when it was re-hashed under RFC 8785 "
            f"({next(audit.events(v, kind=chain_migrate.ChainsRecanonicalized.kind)).at:%Y-%m-%d})"]
        lines = list(chain_export.lines(v))
    path = home.parent / "chains.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = _verify(path)
    assert result.returncode == 1 and "already broken at record 1" in result.stderr
    from lifevault.cli import main

    assert main(["audit", "verify", "--home", str(home), "--passphrase-file", str(_passfile(home))]) == 5


def _passfile(home: Path) -> Path:
    p = home.parent / "pass.txt"
    p.write_text(PASSPHRASE)
    return p


def test_a_line_longer_than_the_bound_is_refused_before_it_is_parsed(tmp_path):
    bound = verify_export.MAX_LINE_CHARS
    under = '{"x":"' + "a" * (bound - 8) + '"}'
    assert len(under) == bound and isinstance(verify_export.loads(under, 2), dict)
    with pytest.raises(verify_export.Refused, match="line 2 is longer than 1,048,576 characters"):
        verify_export.loads(under + " ", 2)
    with pytest.raises(verify_export.Refused, match="line 3 is not JSON"):
        verify_export.loads("[" * 100_000, 3)  # nesting past the parser's recursion limit: refused, no traceback


def test_a_new_vault_records_the_canonicalization_and_no_rehash_event(vault):
    assert chain_migrate.canonicalization(vault) == "rfc8785"
    assert list(audit.events(vault, kind=chain_migrate.ChainsRecanonicalized.kind)) == []


# ---- the export and the standalone verifier -------------------------------------------------------------------

def _verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # -I -S: isolated, no site-packages: the verifier runs on the standard library alone
    return subprocess.run([sys.executable, "-I", "-S", str(VERIFIER), str(path), *extra],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def exported(vault: Vault, tmp_path: Path) -> tuple[Path, list[str]]:
    _activity(vault)
    lines = list(chain_export.lines(vault))
    path = tmp_path / "chains.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def test_the_standalone_verifier_accepts_an_untouched_export(exported):
    path, lines = exported
    result = _verify(path)
    assert result.returncode == 0, result.stderr
    assert "audit_log: 5 records, chain intact" in result.stdout
    assert "privacy_ledger: 2 records, chain intact" in result.stdout
    assert "2 release anchors match" in result.stdout
    assert "dinner with Ana" not in path.read_text()  # the query is there only as a keyed hash


def _tampered(path: Path, lines: list[str], new: list[str]) -> subprocess.CompletedProcess[str]:
    path.write_text("\n".join(new) + "\n")
    return _verify(path)


def test_the_standalone_verifier_refuses_an_edited_record(exported):
    path, lines = exported
    edited = list(lines)
    edited[1] = edited[1].replace('"bytes":1234', '"bytes":4321')
    result = _tampered(path, lines, edited)
    assert result.returncode == 1 and "REFUSED: audit_log record 1 (line 2): its contents differ" in result.stderr


def test_the_standalone_verifier_refuses_a_removed_record(exported):
    path, lines = exported
    result = _tampered(path, lines, lines[:2] + lines[3:])
    assert result.returncode == 1 and "audit_log record 3 (line 3): expected record 2" in result.stderr
    result = _tampered(path, lines, lines[:-1])  # the ledger's last release: its anchor is left dangling
    assert result.returncode == 1 and "privacy_ledger" in result.stderr


def test_the_standalone_verifier_refuses_reordered_records(exported):
    path, lines = exported
    result = _tampered(path, lines, [lines[0], lines[2], lines[1], *lines[3:]])
    assert result.returncode == 1 and "expected record 1" in result.stderr


def test_the_standalone_verifier_refuses_a_record_rehashed_after_an_edit(exported):
    path, lines = exported
    rec = json.loads(lines[-1])  # the last ledger release, re-hashed so that its own chain holds
    rec["body"]["epsilon_after"] = 0.5
    rec["hash"] = verify_export.record_hash(rec)
    header = json.loads(lines[0])
    header["chains"]["privacy_ledger"]["head"] = rec["hash"]
    result = _tampered(path, lines, [json.dumps(header), *lines[1:-1], json.dumps(rec)])
    assert result.returncode == 1 and "differs from the one the audit log anchored" in result.stderr


def test_a_pinned_head_that_the_export_does_not_contain_is_refused(exported):
    path, lines = exported
    head = json.loads(lines[0])["chains"]["audit_log"]["head"]
    assert _verify(path, "--audit-head", head).returncode == 0
    result = _verify(path, "--audit-head", "f" * 64)
    assert result.returncode == 1 and "pinned head" in result.stderr


def test_the_cli_writes_the_export_that_the_verifier_accepts(vault, home, tmp_path, monkeypatch, capsys):
    from lifevault.cli import main

    _activity(vault)
    vault.close()
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    out = tmp_path / "cli.jsonl"
    assert main(["audit", "export", "--home", str(home), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["chains"]["privacy_ledger"]["records"] == 2 and out.stat().st_mode & 0o077 == 0
    assert _verify(out).returncode == 0
    assert main(["audit", "export", "--home", str(home)]) == 0  # to standard output: the same records
    assert capsys.readouterr().out.splitlines()[1:] == out.read_text().splitlines()[1:]


def test_link_hash_splices_the_stored_body_as_rfc8785_would_write_the_record():
    body = canonical({"b": [1, 2.5], "a": "é"})
    rec = {"body": json.loads(body), "kind": "k", "prev_hash": "0" * 64, "seq": 3, "ts": "2026-01-01T00:00:00.000000+00:00"}
    assert link_hash(3, rec["ts"], "k", body, "0" * 64) == hashlib.sha256(rfc8785.dumps(rec)).hexdigest()


def test_asdict_of_a_release_is_all_the_ledger_hashes(vault):
    row = ledger.append(vault, _release(1.0, 1))
    assert row.body == json.loads(canonical(asdict(_release(1.0, 1))))
