"""The migration that moved both hash chains to RFC 8785 (JCS) canonical JSON.

Before it, each row's body was Python's json.dumps text and its hash sha256("seq|ts|kind|body|prev"). The
migration, in the one transaction of its migration step:
1. verifies both chains under the old rule (a chain already broken must not come out of a re-hash intact);
2. rewrites every ledger row's body as JCS and re-links its hash, then every audit row's, pointing each
   release anchor (privacy.release_anchored) at its ledger record's new hash when it named the old one;
3. appends `audit.chains_recanonicalized` to the audit log (under JCS) with each chain's length, old head hash
   and old verdict, so an auditor holding an old head or an old report can tie it to the new chain, and
   `audit verify` keeps reporting a break found under the old rule;
4. records the rule in vault_meta (chain_canonicalization = rfc8785).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from vault.audit import AuditEvent
from vault.chain import CANONICALIZATION, GENESIS, _ts, canonical, link_hash
from vault.sqltext import sql_literal

if TYPE_CHECKING:
    from vault.store import Vault

NAME = "0040_chains_rfc8785"
LEGACY = "python-json"
_ROWS_PER_UPDATE = 2000  # rows rewritten per UPDATE statement (literals inlined, as Chain._write does)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainsRecanonicalized(AuditEvent):
    """Both chains re-hashed under a new canonical JSON; per table: records, legacy_head, legacy_intact,
    legacy_first_broken (None when intact)."""

    kind: ClassVar[str] = "audit.chains_recanonicalized"
    canonicalization: str
    previous: str
    tables: dict[str, dict[str, Any]]


def legacy_hash(seq: int, at: datetime, kind: str, body: str, prev: str) -> str:
    return hashlib.sha256(f"{seq}|{_ts(at)}|{kind}|{body}|{prev}".encode()).hexdigest()


def _rows(vault: Vault, table: str) -> list[tuple[int, datetime, str, str, str, str]]:
    return [tuple(r) for r in vault.query(f"SELECT seq, ts, kind, body, prev_hash, hash FROM {table} ORDER BY seq")]


def _legacy_verdict(rows: list[tuple[int, datetime, str, str, str, str]]) -> dict[str, Any]:
    prev, broken = GENESIS, None
    for i, (seq, at, kind, body, prev_hash, h) in enumerate(rows, start=1):
        if seq != i or prev_hash != prev or legacy_hash(seq, at, kind, body, prev_hash) != h:
            broken = seq
            break
        prev = h
    head = rows[-1][5] if rows else GENESIS
    return {"records": len(rows), "legacy_head": head, "legacy_intact": broken is None, "legacy_first_broken": broken}


def _rewrite(vault: Vault, table: str, rows: list[tuple[int, datetime, str, str, str, str]],
             anchors: dict[str, str] | None = None) -> dict[int, str]:
    """Re-canonicalize and re-link every row; returns seq -> new hash. Rows keep their seq and ts; a chain
    broken under the old rule stays broken (its old prev_hash is kept where it did not match)."""
    new: dict[int, str] = {}
    values: list[str] = []
    prev_old, prev_new = GENESIS, GENESIS
    for seq, at, kind, body, prev_hash, h in rows:
        obj = json.loads(body)
        if anchors is not None and kind == "privacy.release_anchored" and isinstance(obj, dict):
            obj["ledger_head"] = anchors.get(str(obj.get("ledger_head")), obj.get("ledger_head"))
        text = canonical(obj)
        link = prev_new if prev_hash == prev_old else prev_hash  # a link already broken is not mended
        new_h = link_hash(seq, at, kind, text, link)
        new[seq] = new_h
        values.append(f"({seq:d}, {sql_literal(text)}, {sql_literal(link)}, {sql_literal(new_h)})")
        prev_old, prev_new = h, new_h
    for i in range(0, len(values), _ROWS_PER_UPDATE):
        vault.execute(
            f"UPDATE {table} SET body = v.body, prev_hash = v.prev_hash, hash = v.hash "
            f"FROM (VALUES {', '.join(values[i:i + _ROWS_PER_UPDATE])}) AS v(seq, body, prev_hash, hash) "
            f"WHERE {table}.seq = v.seq"
        )
    return new


def migrate(vault: Vault) -> None:
    """Run inside the migration's transaction (vault/migrations.py)."""
    from vault.chain import Chain

    ledger_rows, audit_rows = _rows(vault, "privacy_ledger"), _rows(vault, "audit_log")
    tables = {"audit_log": _legacy_verdict(audit_rows), "privacy_ledger": _legacy_verdict(ledger_rows)}
    new_ledger = _rewrite(vault, "privacy_ledger", ledger_rows)
    old_to_new = {h: new_ledger[seq] for seq, _, _, _, _, h in ledger_rows}
    _rewrite(vault, "audit_log", audit_rows, anchors=old_to_new)
    vault.chain_heads.clear()
    if audit_rows or ledger_rows:  # a new vault has nothing to tie to
        event = ChainsRecanonicalized(canonicalization=CANONICALIZATION, previous=LEGACY, tables=tables)
        Chain(vault, "audit_log").append(event.kind, asdict(event))
    vault.execute("DELETE FROM vault_meta WHERE key = 'chain_canonicalization'")
    vault.execute(f"INSERT INTO vault_meta VALUES ('chain_canonicalization', {sql_literal(CANONICALIZATION)})")


def canonicalization(vault: Vault) -> str:
    return str(vault.scalar("SELECT value FROM vault_meta WHERE key = 'chain_canonicalization'") or LEGACY)


def legacy_breaks(vault: Vault) -> list[str]:
    """One line per chain the migration found broken under the old rule (what `audit verify` must keep saying)."""
    from vault.chain import Chain

    out = []
    for row in Chain(vault, "audit_log").rows(kind=ChainsRecanonicalized.kind):
        for table, t in sorted(row.body.get("tables", {}).items()):
            if not t.get("legacy_intact", True):
                out.append(f"{table}: chain was already BROKEN at record {t.get('legacy_first_broken')} when it was "
                           f"re-hashed under RFC 8785 ({row.at:%Y-%m-%d})")
    return out
