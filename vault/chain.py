"""Hash chains over append-only tables (audit_log, privacy_ledger).

Row i stores body_i = JCS(event) and hash_i = sha256(JCS({"body": event, "kind": kind, "prev_hash": hash_{i-1},
"seq": i, "ts": ts})), where JCS is RFC 8785 canonical JSON (sorted keys, no whitespace, numbers written as
ECMAScript writes them) and ts the UTC time as ISO 8601 with microseconds. Anyone holding an export
(`lifevault audit export`) can recompute every hash with any RFC 8785 implementation (tools/verify_export.py
is one, on the standard library alone). Integers beyond +-(2**53 - 1), which a JSON number cannot carry exactly
(RFC 8785 Appendix D, I-JSON), are written as decimal strings: keyed 63-bit ids (memory ids) among them.
verify() recomputes every link and reports the first broken one: an edited, inserted, removed or reordered row
breaks the chain at that row. Vaults whose chains were hashed before (Python's json.dumps) are re-hashed by the
migration in vault/chain_migrate.py.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from vault.sqltext import sql_literal

if TYPE_CHECKING:
    from vault.store import Vault

GENESIS = "0" * 64
CHAINED_TABLES = ("audit_log", "privacy_ledger")
CANONICALIZATION = "rfc8785"  # recorded in vault_meta (key chain_canonicalization) by the migration
MAX_SAFE_INTEGER = 2**53 - 1  # the largest integer every JSON reader holds exactly (RFC 8785 Appendix D)


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return sorted(o) if isinstance(o, (set, frozenset)) else list(o)
    if isinstance(o, bytes):
        return o.hex()
    raise TypeError(f"cannot put {type(o).__name__} in a chained record")


def _plain(o: Any) -> tuple[Any, bool]:
    """`o` as JSON types only (big integers as decimal strings), and whether Python's json.dumps writes it
    exactly as RFC 8785 does: no floats and only ASCII keys (json.dumps sorts by code point, JCS by UTF-16
    unit; both escape the same characters the same way). Exact type checks first: this runs on every audit
    append."""
    t = type(o)
    if t is str or t is bool or o is None:
        return o, True
    if t is int:
        return (o, True) if -MAX_SAFE_INTEGER <= o <= MAX_SAFE_INTEGER else (str(o), True)
    if t is list and all(type(x) is int for x in o):  # returned_ids: a list of keyed ids
        return [x if -MAX_SAFE_INTEGER <= x <= MAX_SAFE_INTEGER else str(x) for x in o], True
    if t is dict:
        out, same = {}, True
        for k, v in o.items():
            if type(k) is not str:
                raise TypeError(f"cannot put a {type(k).__name__} key in a chained record")
            out[k], s = _plain(v)
            same = same and s and k.isascii()
        return out, same
    if isinstance(o, float):
        if not math.isfinite(o):
            raise ValueError(f"cannot put {o!r} in a chained record (JSON has no such number)")
        return float(o), False
    if isinstance(o, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in (sorted(o) if isinstance(o, (set, frozenset)) else o)]
        return [v for v, _ in items], all(s for _, s in items)
    if isinstance(o, (str, int)):  # subclasses (enums): their plain value
        return _plain(str(o) if isinstance(o, str) else int(o))
    return _plain(_default(o))


def canonical(obj: Any) -> str:
    """RFC 8785 (JCS) text of `obj` (datetimes as UTC ISO 8601, sets sorted, bytes as hex, integers beyond
    MAX_SAFE_INTEGER as decimal strings). Bodies without floats take json.dumps, which writes them identically
    and 4x faster (the audit hot path); tests/vault/test_chain_jcs.py holds the two to each other."""
    plain, same = _plain(obj)
    if same:
        return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    import rfc8785

    return rfc8785.dumps(plain).decode()


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def link_hash(seq: int, at: datetime | str, kind: str, body: str, prev: str) -> str:
    """sha256 of JCS({"body", "kind", "prev_hash", "seq", "ts"}), with `body` the record's stored JCS text
    (keys in JCS order, so the text is spliced in as it is)."""
    ts = at if isinstance(at, str) else _ts(at)
    record = (f'{{"body":{body},"kind":{json.dumps(kind, ensure_ascii=False)},"prev_hash":{json.dumps(prev)},'
              f'"seq":{int(seq):d},"ts":{json.dumps(ts)}}}')
    return hashlib.sha256(record.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainRow:
    seq: int
    at: datetime
    kind: str
    body: dict[str, Any]
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    table: str
    ok: bool
    checked: int
    first_broken: int | None = None
    reason: str = ""
    head: str = GENESIS

    def summary(self) -> str:
        if self.ok:
            return f"{self.table}: {self.checked} records, chain intact (head {self.head[:12]})"
        return f"{self.table}: chain BROKEN at record {self.first_broken}: {self.reason}"


@dataclass(slots=True)
class _Queued:
    """One caller's append waiting for the chain lock; filled in by whichever thread writes it."""

    texts: list[tuple[str, str]]  # (kind, canonical body)
    at: datetime
    rows: list[ChainRow] | None = None
    error: BaseException | None = None


class Chain:
    def __init__(self, vault: Vault, table: str) -> None:
        if table not in CHAINED_TABLES:
            raise ValueError(f"{table} is not a chained table")
        self.vault = vault
        self.table = table

    def head(self) -> tuple[int, str]:
        row = self.vault.query(f"SELECT seq, hash FROM {self.table} ORDER BY seq DESC LIMIT 1")
        return (row[0][0], row[0][1]) if row else (0, GENESIS)

    def append(self, kind: str, body: dict[str, Any], *, at: datetime | None = None) -> ChainRow:
        return self.append_many([(kind, body)], at=at)[0]

    def append_many(self, events: list[tuple[str, dict[str, Any]]], *, at: datetime | None = None) -> list[ChainRow]:
        """Append events in order; durable (committed) when this returns, unless the caller's transaction is
        open (then they commit with it).

        Group commit: appends from concurrent threads that queue while one INSERT is being committed are
        written together by the next thread to take the chain lock -- one INSERT and one commit (one WAL
        sync) for all of them, in queue order -- and each caller gets its own rows back. Outside a
        transaction the committed head is kept in memory (the vault is the only writer); inside one the
        head is read from the table (the transaction sees its own rows) and the cache is dropped until it
        commits."""
        at = (at or datetime.now(UTC)).astimezone(UTC)
        at = at.replace(microsecond=at.microsecond)  # microsecond precision: what TIMESTAMPTZ keeps
        v = self.vault
        texts = [(kind, canonical(body)) for kind, body in events]
        if v.in_transaction():
            with v.chain_lock:
                return self._write([_Queued(texts, at)])[0]
        mine = _Queued(texts, at)
        queue = v.chain_queues.setdefault(self.table, [])
        with v.chain_queue_lock:
            queue.append(mine)
        with v.chain_lock:
            if mine.rows is None and mine.error is None:
                with v.chain_queue_lock:
                    batch, queue[:] = list(queue), []
                try:
                    for q, rows in zip(batch, self._write(batch), strict=True):
                        q.rows = rows
                except BaseException as e:
                    for q in batch:
                        q.error = e
        if mine.error is not None:
            raise mine.error
        assert mine.rows is not None
        return mine.rows

    def _write(self, batch: list[_Queued]) -> list[list[ChainRow]]:
        """One INSERT of the queued appends, linked in order after the head (caller holds the chain lock)."""
        v = self.vault
        cached = v.chain_heads.pop(self.table, None)
        seq, prev = (None if v.in_transaction() else cached) or self.head()  # a transaction sees its own rows
        out: list[list[ChainRow]] = []
        values = []
        for q in batch:
            rows = []
            for kind, text in q.texts:
                seq += 1
                h = link_hash(seq, q.at, kind, text, prev)
                # values inlined as literals: binding a parameter costs DuckDB's Python client ~0.1 ms (a failed
                # `import pandas` per value), more than the insert itself on the audit hot path
                values.append(f"({seq:d}, {sql_literal(_ts(q.at))}::TIMESTAMPTZ, {sql_literal(kind)}, "
                              f"{sql_literal(text)}, {sql_literal(prev)}, {sql_literal(h)})")
                rows.append(ChainRow(seq=seq, at=q.at, kind=kind, body=json.loads(text), hash=h))
                prev = h
            out.append(rows)
        if values:
            v.execute(f"INSERT INTO {self.table} (seq, ts, kind, body, prev_hash, hash) VALUES {', '.join(values)}")
        if not v.in_transaction():
            v.chain_heads[self.table] = (seq, prev)
        return out

    def rows(self, *, kind: str | None = None, since: datetime | None = None, limit: int | None = None,
             after_seq: int = 0) -> Iterator[ChainRow]:
        sql = f"SELECT seq, ts, kind, body, hash FROM {self.table} WHERE seq > ?"
        params: list[Any] = [after_seq]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        if since:
            sql += " AND ts >= ?"
            params.append(since)
        sql += " ORDER BY seq"
        if limit:
            sql += f" LIMIT {int(limit)}"
        for seq, at, k, body, h in self.vault.query(sql, params):
            yield ChainRow(seq=seq, at=at, kind=k, body=json.loads(body), hash=h)

    def verify(self) -> Verification:
        prev, expected_seq, checked = GENESIS, 1, 0
        cur = self.vault.query(f"SELECT seq, ts, kind, body, prev_hash, hash FROM {self.table} ORDER BY seq")
        for seq, at, kind, body, prev_hash, h in cur:
            broken = None
            if seq != expected_seq:
                broken = f"expected record {expected_seq}, found {seq} (a record was removed or inserted)"
            elif prev_hash != prev:
                broken = "its link to the previous record does not match"
            elif link_hash(seq, at, kind, body, prev_hash) != h:
                broken = "its contents were changed after it was written"
            if broken:
                return Verification(table=self.table, ok=False, checked=checked, first_broken=seq, reason=broken)
            prev, expected_seq, checked = h, seq + 1, checked + 1
        return Verification(table=self.table, ok=True, checked=checked, head=prev)
