"""The privacy ledger's head, anchored in keys.json where deleting database rows cannot hide it.

The audit log's release anchors (vault/ledger.py) catch the removal of the ledger's last release, but not
the removal of the tail of BOTH tables at once: both live in the same database. So the heads are also kept
outside it, in keys.json, under `head_anchor`:

    {"body": {"format": 1, "ledger_seq": n, "ledger_head": hash, "audit_seq": m, "audit_head": hash,
              "epsilon_spent": e, "at": iso time},
     "mac": hex HMAC-SHA256 of the body's RFC 8785 text}

`audit_seq`/`audit_head` is the audit record written with the ledger head (the release's
`privacy.release_anchored`, or `privacy.head_anchor_set`). The MAC key is HKDF-SHA256 of the rowid key with
info "lifevault/keys/head-anchor": someone without the passphrase (or recovery code) cannot write an
anchor that verifies. `check()` fails when either chain is shorter than its anchor, when the record at the
anchored position differs, when the ε spent is below the anchored one, or when the anchor itself fails its
MAC.

Crash order: the anchor is written AFTER the transaction holding the release commits, so it is never ahead
of a committed row and a crash never looks like tampering. The tolerated window is the other way round: a
release committed by a process killed before it rewrote keys.json is not anchored yet; the next open
anchors it (the ledger still extends the anchor, so the anchor only moves forward) and records
`privacy.head_anchor_set` (reason "advanced"). A vault made before anchoring existed is anchored on its
first open (`privacy.head_anchor_set`, reason "created", when its ledger holds releases). The database
remembers that it was anchored (vault_meta `head_anchor`), so a keys.json whose anchor was deleted is
reported, not re-anchored.

What it cannot catch (README, privacy audit): whoever holds the passphrase can compute the MAC; and whoever
keeps a copy of the whole vault home (keys.json with the database) can put the old pair back, which rolls
back everything, the anchor included.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from vault import audit, keys
from vault.chain import GENESIS, Chain, ChainRow, canonical
from vault.fsio import write_atomic

if TYPE_CHECKING:
    from vault.store import Vault

FIELD = "head_anchor"
FORMAT = 1
KEY_INFO = b"lifevault/keys/head-anchor"
LEDGER = "privacy_ledger"
META_KEY = "head_anchor"  # vault_meta: this database's heads are anchored in keys.json (a missing anchor is removal)
EPSILON_SLACK = 1e-9  # the anchored epsilon is the ledger row's own number; only float printing may differ


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    ledger_seq: int
    ledger_head: str
    audit_seq: int
    audit_head: str
    epsilon_spent: float
    at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadAnchorSet(audit.AuditEvent):
    """keys.json's head anchor was written outside a release: on the first open of a vault made before
    anchoring ("created"), or to catch up with a release whose process died before anchoring it ("advanced")."""

    kind: ClassVar[str] = "privacy.head_anchor_set"
    reason: str
    ledger_seq: int
    ledger_head: str
    epsilon_spent: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorCheck:
    """The chains compared with keys.json's anchor (same shape as chain.Verification)."""

    table: str = "keys_json_anchor"
    ok: bool
    checked: int  # records covered by the anchor (ledger + audit log)
    first_broken: int | None = None  # the ledger seq at fault
    reason: str = ""

    def summary(self) -> str:
        if not self.ok:
            return f"chains vs keys.json anchor: MISMATCH: {self.reason}"
        return f"chains vs keys.json anchor: both chains contain their anchored heads ({self.reason})"


def _mac(vault: Vault, body: dict[str, Any]) -> str:
    return hmac.new(vault.purpose_key(KEY_INFO), canonical(body).encode(), hashlib.sha256).hexdigest()


def read(vault: Vault) -> Anchor | None | str:
    """The anchor in keys.json; None when there is none; a one-phrase problem when it does not verify."""
    doc = keys.read_keyfile(vault.home)
    rec = doc.get(FIELD)
    if rec is None:
        return None
    try:
        body, mac = rec["body"], str(rec["mac"])
        if body.get("format") != FORMAT:
            return f"its format is not {FORMAT}"
        if not hmac.compare_digest(_mac(vault, body), mac):
            return "it fails its authentication (keys.json's anchor was altered)"
        return Anchor(ledger_seq=int(body["ledger_seq"]), ledger_head=str(body["ledger_head"]),
                      audit_seq=int(body["audit_seq"]), audit_head=str(body["audit_head"]),
                      epsilon_spent=float(body["epsilon_spent"]), at=str(body["at"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return "it is not of its shape"


def write(vault: Vault, anchor: Anchor) -> None:
    """Replace keys.json's anchor (atomically; every other field kept as it is)."""
    doc = keys.read_keyfile(vault.home)
    body = {"format": FORMAT} | asdict(anchor)
    doc[FIELD] = {"body": body, "mac": _mac(vault, body)}
    write_atomic(keys.keys_path(vault.home), json.dumps(doc, indent=2, sort_keys=True).encode())


def _hash_at(vault: Vault, table: str, seq: int) -> str | None:
    if seq == 0:
        return GENESIS
    row = vault.query(f"SELECT hash FROM {table} WHERE seq = ?", [seq])
    return str(row[0][0]) if row else None


def _spent(vault: Vault) -> float:
    last = vault.query(f"SELECT body FROM {LEDGER} WHERE kind = 'release' ORDER BY seq DESC LIMIT 1")
    return float(json.loads(last[0][0])["epsilon_after"]) if last else 0.0


def anchor_after(vault: Vault, *, ledger_seq: int, ledger_head: str, audit_seq: int, audit_head: str) -> Anchor:
    return Anchor(ledger_seq=ledger_seq, ledger_head=ledger_head, audit_seq=audit_seq, audit_head=audit_head,
                  epsilon_spent=_spent(vault), at=datetime.now(UTC).isoformat(timespec="seconds"))


def _was_anchored(vault: Vault) -> bool:
    return bool(vault.scalar("SELECT count(*) FROM vault_meta WHERE key = ?", [META_KEY]))


def problem(vault: Vault, anchor: Anchor | None | str) -> str | None:
    """What is wrong with the chains against this anchor (one phrase), or None."""
    if anchor is None:
        if _was_anchored(vault):
            return "keys.json has no head anchor though the database was anchored there (removed)"
        return None
    if isinstance(anchor, str):
        return f"keys.json's head anchor cannot be trusted: {anchor}"
    for table, seq, head in ((LEDGER, anchor.ledger_seq, anchor.ledger_head),
                             (audit.TABLE, anchor.audit_seq, anchor.audit_head)):
        found = _hash_at(vault, table, seq)
        length = int(vault.scalar(f"SELECT coalesce(max(seq), 0) FROM {table}"))
        if found is None:
            return (f"{table} ends at record {length} but keys.json anchored record {seq} "
                    f"(records were removed)")
        if found != head:
            return f"{table} record {seq} differs from the one keys.json anchored (replaced)"
    spent = _spent(vault)
    if spent + EPSILON_SLACK < anchor.epsilon_spent:
        return f"the ledger says {spent:.3f} epsilon spent but keys.json anchored {anchor.epsilon_spent:.3f} (lowered)"
    return None


def check(vault: Vault) -> AnchorCheck:
    anchor = read(vault)
    bad = problem(vault, anchor)
    if bad:
        seq = anchor.ledger_seq if isinstance(anchor, Anchor) else None
        return AnchorCheck(ok=False, checked=0, first_broken=seq, reason=bad)
    if anchor is None:
        return AnchorCheck(ok=True, checked=0, reason="no anchor yet")
    assert isinstance(anchor, Anchor)
    return AnchorCheck(ok=True, checked=anchor.ledger_seq + anchor.audit_seq,
                       reason=f"ledger record {anchor.ledger_seq}, audit record {anchor.audit_seq}, "
                              f"epsilon {anchor.epsilon_spent:.3f}")


def on_open(vault: Vault) -> None:
    """Create the anchor (a new vault, or one from before anchoring) or move it forward to a release committed
    but not anchored (a crash between commit and keys.json); never backward, and never over a mismatch, which
    stays for `audit verify` to report.

    Creating writes keys.json first and then marks the database (vault_meta `head_anchor`), so a crash between
    the two leaves an anchor without the mark (re-marked on the next open), never a mark without its anchor
    (which reads as an anchor removed)."""
    anchor = read(vault)
    if isinstance(anchor, str) or problem(vault, anchor):
        return  # left for `audit verify` to report; never overwritten
    seq, head = Chain(vault, LEDGER).head()
    if anchor is not None and (anchor.ledger_seq, anchor.ledger_head) == (seq, head):
        if not _was_anchored(vault):
            _mark(vault)
        return
    if anchor is None:
        audit_seq, audit_head = Chain(vault, audit.TABLE).head()
        write(vault, anchor_after(vault, ledger_seq=seq, ledger_head=head, audit_seq=audit_seq,
                                  audit_head=audit_head))
        with vault.transaction():
            _mark(vault)
            if seq:  # a vault with releases made before anchoring: the migration is on the record
                _record(vault, "created", seq, head)
        return
    with vault.transaction():
        row = _record(vault, "advanced", seq, head)
    write(vault, anchor_after(vault, ledger_seq=seq, ledger_head=head, audit_seq=row.seq, audit_head=row.hash))


def _mark(vault: Vault) -> None:
    vault.execute("INSERT OR REPLACE INTO vault_meta VALUES (?, 'keys.json')", [META_KEY])


def _record(vault: Vault, reason: str, seq: int, head: str) -> ChainRow:
    event = HeadAnchorSet(actor="vault", reason=reason, ledger_seq=seq, ledger_head=head, epsilon_spent=_spent(vault))
    return Chain(vault, audit.TABLE).append(event.kind, asdict(event))
