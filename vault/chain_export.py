"""`lifevault audit export`: both hash chains as JSON Lines an auditor verifies without lifevault.

Line 1 is a header: {"lifevault_chains": FORMAT, "canonicalization": "RFC 8785", "hash": HASH_RULE,
"exported_at": ..., "chains": {table: {"records": n, "head": hash}}}. Every other line is one record:
{"body": {...}, "chain": table, "hash", "kind", "prev_hash", "seq", "ts"}, the audit log's records first,
then the ledger's, each in seq order, each line itself in RFC 8785 form. Bodies carry ids, keyed hashes,
counts and parameters (and the labels the owner gave tokens: agent, purpose), never contents, query text or
coordinates. tools/verify_export.py recomputes everything from such a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vault.chain import CHAINED_TABLES, GENESIS, _ts

if TYPE_CHECKING:
    from vault.store import Vault

FORMAT = 1
HASH_RULE = 'sha256(JCS({"body","kind","prev_hash","seq","ts"})); prev_hash of record 1 is 64 zeros'


def lines(vault: Vault, *, now: datetime | None = None) -> Iterator[str]:
    """The header, then every record of audit_log and privacy_ledger (one consistent snapshot)."""
    def read() -> dict[str, list[tuple[Any, ...]]]:
        return {t: vault.query(f"SELECT seq, ts, kind, body, prev_hash, hash FROM {t} ORDER BY seq")
                for t in CHAINED_TABLES}

    if vault.in_transaction():
        snap = read()
    else:
        with vault.transaction():  # one snapshot: a release and its anchor are written in one transaction
            snap = read()
    header = {
        "canonicalization": "RFC 8785",
        "chains": {t: {"head": rows[-1][5] if rows else GENESIS, "records": len(rows)} for t, rows in snap.items()},
        "exported_at": _ts(now or datetime.now(UTC)),
        "hash": HASH_RULE,
        "lifevault_chains": FORMAT,
    }
    from vault.chain import canonical

    yield canonical(header)
    for table, rows in snap.items():
        for seq, at, kind, body, prev, h in rows:
            # keys in RFC 8785 order; the body is the stored canonical text itself
            yield (f'{{"body":{body},"chain":{json.dumps(table)},"hash":{json.dumps(h)},'
                   f'"kind":{json.dumps(kind, ensure_ascii=False)},"prev_hash":{json.dumps(prev)},'
                   f'"seq":{int(seq):d},"ts":{json.dumps(_ts(at))}}}')
