#!/usr/bin/env python3
"""Verify a `lifevault audit export` file without lifevault: Python 3.9+ standard library only.

    python3 verify_export.py chains.jsonl [--audit-head HASH] [--ledger-head HASH]

Checks, from the file alone:
- every record's hash: sha256 of the RFC 8785 (JCS) canonical JSON of {"body", "kind", "prev_hash", "seq",
  "ts"} (the JCS code below is a minimal implementation for the JSON the chains hold; any RFC 8785 library,
  e.g. the `rfc8785` package, gives the same bytes);
- every link: record i's prev_hash is record i-1's hash (record 1's is 64 zeros), seqs run 1, 2, 3, ...;
- the header's record counts and head hashes match the records (a line removed at the end);
- the ledger against the audit log: every `privacy.release_anchored` event names a ledger record with that
  hash, and every release from the first anchored one on has its anchor;
- no `audit.chains_recanonicalized` event says a chain was already broken when it was re-hashed.
A head hash obtained separately (an earlier export, the privacy report, `lifevault audit verify`) can be
pinned with --audit-head / --ledger-head: the chain must contain it (nothing before it was rewritten).

Exit status: 0 verified; 1 refused (the first problem found is printed); 2 usage or unreadable file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys

GENESIS = "0" * 64
CHAINS = ("audit_log", "privacy_ledger")
MAX_SAFE_INTEGER = 2**53 - 1
FORMAT = 1
MAX_LINE_CHARS = 1 << 20  # one record; lifevault's are under 10 kB (ids, hashes, counts): longer is not an export


class Refused(Exception):
    pass


# ---- RFC 8785 (JSON Canonicalization Scheme) ------------------------------------------------------------

def _number(x: float | int) -> str:
    """ECMAScript Number.prototype.toString (RFC 8785 section 3.2.2.3)."""
    if isinstance(x, int):
        if abs(x) > MAX_SAFE_INTEGER:
            raise Refused(f"integer {x} is beyond what a JSON number carries exactly (not I-JSON)")
        return str(x)
    if not math.isfinite(x):
        raise Refused("NaN or Infinity is not JSON")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _number(-x)
    mantissa, _, exp = repr(x).partition("e")  # repr: the shortest digits that read back as x
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole) + int(exp or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    return (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + sign + str(abs(e))


def jcs(v: object) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return _number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # escapes exactly what RFC 8785 escapes, the same way
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))  # sorted by UTF-16 code units
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(v[k]) for k in keys) + "}"
    raise Refused(f"{type(v).__name__} is not a JSON value")


def _int_or_double(text: str) -> int | float:
    """A JSON number without fraction or exponent: an int when exact, else the double ECMAScript reads
    (a large integral double such as 1e20 is written as 100000000000000000000 by RFC 8785)."""
    n = int(text)
    return n if abs(n) <= MAX_SAFE_INTEGER else float(text)


def loads(text: str, n: int = 0) -> object:
    """One line of the export as JSON (n: its line number, for messages)."""
    if len(text) > MAX_LINE_CHARS:
        raise Refused(f"line {n} is longer than {MAX_LINE_CHARS:,} characters: not a lifevault export record")
    try:
        return json.loads(text, parse_int=_int_or_double)
    except (ValueError, RecursionError):
        raise Refused(f"line {n} is not JSON") from None


def record_hash(rec: dict) -> str:
    pre = {k: rec[k] for k in ("body", "kind", "prev_hash", "seq", "ts")}
    return hashlib.sha256(jcs(pre).encode("utf-8")).hexdigest()


# ---- the checks ---------------------------------------------------------------------------------------------

def _parse(lines: list[str]) -> tuple[dict, dict[str, list[dict]]]:
    if not lines:
        raise Refused("the file is empty")
    header = loads(lines[0], 1)
    if not isinstance(header, dict) or header.get("lifevault_chains") != FORMAT:
        raise Refused(f"line 1 is not a lifevault chains header of format {FORMAT}")
    chains: dict[str, list[dict]] = {t: [] for t in CHAINS}
    for n, line in enumerate(lines[1:], start=2):
        rec = loads(line, n)
        if not isinstance(rec, dict) or rec.get("chain") not in chains:
            raise Refused(f"line {n} is not a record of {' or '.join(CHAINS)}")
        missing = {"body", "hash", "kind", "prev_hash", "seq", "ts"} - set(rec)
        if missing or not isinstance(rec["seq"], int) or not isinstance(rec["body"], dict):
            raise Refused(f"line {n} is not a chain record (missing or mistyped: {', '.join(sorted(missing)) or 'seq/body'})")
        rec["_line"] = n
        chains[rec["chain"]].append(rec)
    return header, chains


def _verify_chain(table: str, recs: list[dict]) -> str:
    prev = GENESIS
    for expected, rec in enumerate(recs, start=1):
        where = f"{table} record {rec['seq']} (line {rec['_line']})"
        if rec["seq"] != expected:
            raise Refused(f"{where}: expected record {expected} (a record was removed, inserted or moved)")
        if rec["prev_hash"] != prev:
            raise Refused(f"{where}: its link to the previous record does not match")
        if record_hash(rec) != rec["hash"]:
            raise Refused(f"{where}: its contents differ from what was hashed (changed after it was written)")
        prev = rec["hash"]
    return prev


def _cross_check(audit: list[dict], ledger: list[dict]) -> int:
    hashes = {r["seq"]: r["hash"] for r in ledger}
    anchors = [r["body"] for r in audit if r["kind"] == "privacy.release_anchored"]
    for a in anchors:
        seq, head = a.get("ledger_seq"), a.get("ledger_head")
        if seq not in hashes:
            raise Refused(f"the audit log anchors ledger record {seq}, which the ledger does not have (removed)")
        if hashes[seq] != head:
            raise Refused(f"ledger record {seq} differs from the one the audit log anchored (replaced)")
    anchored = {a["ledger_seq"] for a in anchors}
    first = min(anchored, default=None)
    for r in ledger:
        if r["kind"] == "release" and first is not None and r["seq"] > first and r["seq"] not in anchored:
            raise Refused(f"ledger record {r['seq']} has no anchor in the audit log (added outside the ledger)")
    for r in audit:
        if r["kind"] == "audit.chains_recanonicalized":
            for table, t in sorted(r["body"].get("tables", {}).items()):
                if isinstance(t, dict) and not t.get("legacy_intact", True):
                    raise Refused(f"{table} was already broken at record {t.get('legacy_first_broken')} when it "
                                  f"was re-hashed under RFC 8785 (audit record {r['seq']})")
    return len(anchors)


def verify(lines: list[str], pins: dict[str, str | None]) -> list[str]:
    header, chains = _parse(lines)
    out = []
    for table in CHAINS:
        recs = chains[table]
        head = _verify_chain(table, recs)
        declared = (header.get("chains") or {}).get(table) or {}
        if declared.get("records") != len(recs) or declared.get("head") != head:
            raise Refused(f"{table}: the header declares {declared.get('records')} records ending in "
                          f"{str(declared.get('head'))[:12]}, the file holds {len(recs)} ending in {head[:12]} "
                          "(records removed or added)")
        pin = pins.get(table)
        if pin and pin not in {r["hash"] for r in recs} | {GENESIS}:
            raise Refused(f"{table}: the pinned head {pin[:12]} is not in this chain (rewritten or truncated)")
        out.append(f"{table}: {len(recs)} records, chain intact (head {head})")
    n = _cross_check(chains["audit_log"], chains["privacy_ledger"])
    out.append(f"ledger vs audit log: {n} release anchors match the ledger")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Verify a lifevault audit export (RFC 8785 hash chains).")
    p.add_argument("export", help="the JSON Lines file written by `lifevault audit export`")
    p.add_argument("--audit-head", help="an audit-log head hash obtained separately, which the chain must contain")
    p.add_argument("--ledger-head", help="a privacy-ledger head hash obtained separately, which the chain must contain")
    args = p.parse_args(argv)
    try:
        with open(args.export, encoding="utf-8") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        print(f"verify_export: cannot read {args.export}: {e}", file=sys.stderr)
        return 2
    try:
        for line in verify(lines, {"audit_log": args.audit_head, "privacy_ledger": args.ledger_head}):
            print(line)
    except Refused as e:
        print(f"REFUSED: {e}", file=sys.stderr)
        return 1
    print("OK: both chains and their cross-links verify")
    return 0


if __name__ == "__main__":
    sys.exit(main())
