"""The device's privacy ledger: every DP release, hash-chained, appended BEFORE the update leaves.

The accountant (federated/accounting.py) computes epsilon_after; the ledger enforces the lifetime
budget: an append whose epsilon_after exceeds the budget is refused (BudgetExhausted) and the
refusal is written to the audit log. There is no renewal: the budget only shrinks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

from vault import audit
from vault.chain import Chain, ChainRow, Verification
from vault.errors import BudgetExhausted

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
    mechanism: str  # "gaussian"
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

    def __post_init__(self) -> None:
        for name in ("clip_norm", "noise_multiplier", "delta", "epsilon_after", "epsilon_after_rdp", "budget_epsilon"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"ledger release: {name} must be a finite number > 0, got {v!r}")
        if not self.delta < 1:
            raise ValueError("ledger release: delta must be < 1")
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
    return Chain(vault, TABLE).append("release", asdict(release))


def releases(vault: Vault) -> Iterator[ChainRow]:
    return Chain(vault, TABLE).rows(kind="release")


def verify(vault: Vault) -> Verification:
    return Chain(vault, TABLE).verify()
