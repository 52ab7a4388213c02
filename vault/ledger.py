"""The device's privacy ledger: every DP release, hash-chained, appended BEFORE the update leaves.

The accountant (federated/accounting.py) computes epsilon_after; the ledger enforces the lifetime
budget: an append whose epsilon_after exceeds the budget is refused (BudgetExhausted) and the
refusal is written to the audit log. There is no renewal: the budget only shrinks.

Each release is anchored in the audit log in the same transaction (ReleaseAnchored: the ledger's length
and head hash after it), and cross_check() compares the two both ways: removing the ledger's last
releases keeps its own chain intact but leaves anchors to records that are gone; a release added
without its anchor has none. The heads are also anchored in keys.json, outside the database, after the
release commits (vault/headanchor.py), so cutting the tail of both tables at once is caught too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from vault import audit
from vault.chain import Chain, ChainRow, Verification
from vault.errors import BudgetExhausted, IntegrityError

if TYPE_CHECKING:
    from vault.store import Vault

TABLE = "privacy_ledger"
DEFAULT_BUDGET_EPSILON = 8.0
DEFAULT_BUDGET_DELTA = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """One DP release as recorded before it leaves the device."""

    round: int
    model_id: str
    mode: str  # "local" | "central" | "distributed"
    mechanism: str  # "gaussian" | "skellam"
    clip_norm: float
    noise_multiplier: float
    sampling: str  # "none" | "poisson"
    sampling_rate: float | None
    delta: float
    epsilon_after: float  # composed over every release so far, PLD accountant
    epsilon_after_rdp: float  # cross-check
    epsilon_label: str  # "device-verifiable" | "central (honest server)" | "distributed (honest majority)"
    budget_epsilon: float
    # distributed: how many devices' noise shares make up the sum's noise (each added z/sqrt(t));
    # lets the device state the epsilon of its own share. 1 for local and central.
    noise_shares: int = 1
    # how the server says it sampled: "csprng-secret-fixed-denominator" (a secret CSPRNG draw and the mean
    # divided by q N) is the only sampler an amplified epsilon may be claimed for; "" for anything else
    sampler: str = ""
    # mechanism "skellam" (distributed rounds): what the accountant recomputes epsilon from -- clip_norm,
    # noise_multiplier, gamma, dim, noise_shares, bits, beta, and the derived skellam_lam, l2_bound (D2),
    # l1_bound (D1) (federated/skellam.py Params.to_record); None for "gaussian"
    skellam: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("clip_norm", "noise_multiplier", "delta", "epsilon_after", "epsilon_after_rdp", "budget_epsilon"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"ledger release: {name} must be a finite number > 0, got {v!r}")
        if not self.delta < 1:
            raise ValueError("ledger release: delta must be < 1")
        if self.mechanism not in ("gaussian", "skellam") or (self.mechanism == "skellam") != (self.skellam is not None):
            raise ValueError(f"ledger release: mechanism {self.mechanism!r} with skellam parameters {self.skellam!r}")
        if isinstance(self.noise_shares, bool) or not isinstance(self.noise_shares, int) or self.noise_shares < 1:
            raise ValueError(f"ledger release: noise_shares must be an integer >= 1, got {self.noise_shares!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRefused(audit.AuditEvent):
    kind: ClassVar[str] = "privacy.release_refused"
    round: int
    model_id: str
    epsilon_spent: float
    epsilon_would_be: float
    budget_epsilon: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseAnchored(audit.AuditEvent):
    """The ledger's head after a release: its length (the release's seq) and that record's hash."""

    kind: ClassVar[str] = "privacy.release_anchored"
    ledger_seq: int
    ledger_head: str
    round: int
    model_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossCheck:
    """The ledger and the audit log's anchors compared both ways (same shape as chain.Verification)."""

    table: str = "ledger_anchors"
    ok: bool
    checked: int  # anchors checked
    first_broken: int | None = None  # the ledger seq at fault
    reason: str = ""
    unanchored: int = 0  # releases written before anchoring existed (older vaults): reported, not proof

    def summary(self) -> str:
        if not self.ok:
            return f"ledger vs audit log: MISMATCH at ledger record {self.first_broken}: {self.reason}"
        old = f"; {self.unanchored} older release(s) carry no anchor" if self.unanchored else ""
        return f"ledger vs audit log: {self.checked} release anchors match the ledger{old}"


def spent(vault: Vault) -> float:
    """Epsilon spent so far (epsilon_after of the last release), 0 when nothing was released."""
    last = vault.query(f"SELECT body FROM {TABLE} WHERE kind = 'release' ORDER BY seq DESC LIMIT 1")
    if not last:
        return 0.0
    import json

    return float(json.loads(last[0][0])["epsilon_after"])


def refuse_if_over(vault: Vault, *, round: int, model_id: str, epsilon_would_be: float, budget_epsilon: float) -> None:
    """The hard stop: raise BudgetExhausted (and audit the refusal) when the release would exceed the budget."""
    already = spent(vault)
    if epsilon_would_be <= budget_epsilon:
        return
    audit.record(
        vault,
        ReleaseRefused(
            actor="federated",
            round=round,
            model_id=model_id,
            epsilon_spent=already,
            epsilon_would_be=epsilon_would_be,
            budget_epsilon=budget_epsilon,
        ),
    )
    raise BudgetExhausted(
        f"privacy budget exhausted: round {round} would bring epsilon to {epsilon_would_be:.3f} "
        f"(spent {already:.3f} of {budget_epsilon:g}); nothing was sent. The budget is lifetime and is not renewed."
    )


def append(vault: Vault, release: Release) -> ChainRow:
    """Record a release; refuses (BudgetExhausted) if it would exceed the budget. Call BEFORE sending."""
    refuse_if_over(
        vault,
        round=release.round,
        model_id=release.model_id,
        epsilon_would_be=release.epsilon_after,
        budget_epsilon=release.budget_epsilon,
    )
    from vault import crashpoint, headanchor

    bad = headanchor.problem(vault, headanchor.read(vault))
    if bad:  # a ledger cut back behind keys.json's anchor must not renew the budget
        raise IntegrityError(f"nothing was released: {bad}; run `lifevault audit verify`")
    if vault.in_transaction():  # keys.json's anchor catches up on the next open (headanchor.on_open)
        return _append_anchored(vault, release)[0]
    with vault.transaction():
        row, anchor_row = _append_anchored(vault, release)
    crashpoint.reached("ledger.release_committed")  # committed, keys.json not yet: the tolerated window
    headanchor.write(vault, headanchor.anchor_after(vault, ledger_seq=row.seq, ledger_head=row.hash,
                                                    audit_seq=anchor_row.seq, audit_head=anchor_row.hash))
    return row


def _append_anchored(vault: Vault, release: Release) -> tuple[ChainRow, ChainRow]:
    row = Chain(vault, TABLE).append("release", asdict(release))
    anchor = ReleaseAnchored(actor="federated", ledger_seq=row.seq, ledger_head=row.hash, round=release.round,
                             model_id=release.model_id)
    anchor_row = Chain(vault, audit.TABLE).append(anchor.kind, asdict(anchor))  # never deferred: commits with it
    return row, anchor_row


def releases(vault: Vault) -> Iterator[ChainRow]:
    return Chain(vault, TABLE).rows(kind="release")


def verify(vault: Vault) -> Verification:
    return Chain(vault, TABLE).verify()


def cross_check(vault: Vault) -> CrossCheck:
    """Every anchor in the audit log names a ledger record that exists with that hash, and every release
    from the first anchored one on has its anchor."""
    hashes = {row.seq: row.hash for row in Chain(vault, TABLE).rows()}
    anchors = [row.body for row in audit.events(vault, kind=ReleaseAnchored.kind)]
    for a in anchors:
        seq, head = int(a["ledger_seq"]), str(a["ledger_head"])
        if seq not in hashes:
            return CrossCheck(ok=False, checked=len(anchors), first_broken=seq,
                              reason="the audit log anchors this release but the ledger no longer has it (removed)")
        if hashes[seq] != head:
            return CrossCheck(ok=False, checked=len(anchors), first_broken=seq,
                              reason="the ledger record differs from the one the audit log anchored (replaced)")
    anchored = {int(a["ledger_seq"]) for a in anchors}
    first = min(anchored, default=None)
    releases_ = [row.seq for row in Chain(vault, TABLE).rows(kind="release")]
    for seq in releases_:
        if first is not None and seq > first and seq not in anchored:
            return CrossCheck(ok=False, checked=len(anchors), first_broken=seq,
                              reason="this release has no anchor in the audit log (added outside the ledger)")
    unanchored = sum(1 for seq in releases_ if first is None or seq < first)
    return CrossCheck(ok=True, checked=len(anchors), unanchored=unanchored)
