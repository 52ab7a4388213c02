"""The device round: the only code path by which anything learned from the vault leaves the phone.

    load global weights
    -> projected epsilon (accountant over the ledger + this release) -> ledger.refuse_if_over  [BEFORE training]
    -> examples from the vault (too little data: refuse, send nothing)
    -> train locally -> update = new - old (float64)
    -> clip the whole update to L2 norm C (one user = one privacy unit)
    -> noise, by mode
    -> ledger.append (hash-chained; refuses over budget)                                      [BEFORE returning]
    -> return the update

Modes (the noise multiplier z is always the one the SUM of the round carries, in units of C):
  local        the device adds N(0, (zC)^2) itself. The epsilon it records is what it can verify: no
               trust in the server, no amplification by sampling assumed.       label "device-verifiable"
  central      the device only clips; the server adds N(0, (zC)^2) to the sum. The device records the
               epsilon that holds if the server is honest (adds that noise, keeps the clip).
                                                                                label "central (honest server)"
  distributed  the Skellam mechanism (federated/skellam.py): each of t devices scales its clipped update by
               gamma, rounds it conditionally and adds Skellam noise of variance (gamma z C)^2 / t, sending
               residues modulo 2^22; under SecAgg+ the server only sees the sum, which carries the full
               (gamma z C)^2 as long as at least t honest devices' shares are in it (the server discards
               rounds with fewer than t survivors). Alone, a device's own share is lambda / t. The ledger
               records the Skellam parameters; a history with a Skellam release composes in RDP.
                                                                                label "distributed (honest majority)"
Amplification by sampling is never assumed in the recorded epsilon: the device cannot verify that the
server sampled it by Poisson. The ledger keeps what the server declared (sampling, rate) so a report can
show the amplified figure as a third, weaker claim.

The budget is the user's lifetime budget (default epsilon 8 at delta 1e-6, vault.ledger.DEFAULT_BUDGET_*),
configurable per device, never by the server, never renewed.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from federated import features as feat
from federated import params, skellam
from federated.gaussian import composed as composed_noise
from federated.gaussian import gaussian_epsilon
from federated.trust import SECRET_FIXED
from vault import audit
from vault import ledger as vledger
from vault.errors import BudgetExhausted

if TYPE_CHECKING:
    from vault.store import Vault

MODES = ("local", "central", "distributed")
LABELS = {
    "local": "device-verifiable",
    "central": "central (honest server)",
    "distributed": "distributed (honest majority)",
}
SAMPLINGS = ("none", "poisson")


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundSpec:
    """What the server asks for a round. Public: nothing in it depends on any device's data."""

    round: int
    model_id: str
    mode: str
    clip_norm: float
    noise_multiplier: float  # z: the sum carries N(0, (z*C)^2)
    noise_shares: int = 1  # distributed: t, the number of honest shares the sum needs
    sampling: str = "none"  # what the server declares about how it picked this device
    sampling_rate: float | None = None
    sampler: str = ""  # trust.SECRET_FIXED when the server drew the sample with a secret CSPRNG and divides by q N
    mechanism: str = "gaussian"  # "skellam" for (and only for) distributed rounds
    gamma: float | None = None  # skellam: the scale before rounding (the server picks it: skellam.gamma_for)
    dim: int | None = None  # skellam: the model's parameter count, checked against the weights the device gets
    bits: int | None = None  # skellam: shares are residues modulo 2^bits (skellam.BITS)
    local_steps: int = 50
    batch_size: int = 64
    learning_rate: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if not isinstance(self.round, int) or self.round < 0:
            raise ValueError(f"round must be an integer >= 0, got {self.round!r}")
        if not self.model_id:
            raise ValueError("model_id must not be empty")
        params.positive("clip_norm", self.clip_norm)
        params.positive("noise_multiplier", self.noise_multiplier)
        for name in ("noise_shares", "local_steps", "batch_size"):
            params.count(name, getattr(self, name))
        params.positive("learning_rate", self.learning_rate)
        if self.sampling == "poisson":
            if self.sampling_rate is None:
                raise ValueError("sampling_rate must be in (0, 1) for poisson sampling, got None")
            params.open_interval("sampling_rate", self.sampling_rate, 0.0, 1.0)
        elif self.sampling_rate is not None:
            raise ValueError("sampling_rate is only meaningful with poisson sampling")
        if self.sampler not in ("", SECRET_FIXED):
            raise ValueError(f"sampler must be '' or {SECRET_FIXED!r}, got {self.sampler!r}")
        if self.sampler and (self.sampling != "poisson" or self.mode != "central"):
            raise ValueError("a secret fixed-denominator sampler is only declared for central rounds with poisson sampling")
        if self.mode == "distributed":
            if self.mechanism != skellam.NAME or self.gamma is None or self.dim is None or self.bits is None:
                raise ValueError("a distributed round runs the skellam mechanism: it declares mechanism skellam, "
                                 "gamma, dim and bits")
            self.skellam_params()  # gamma > 0, dim and bits in their bounds, t at most skellam.MAX_DEVICES
        elif self.mechanism != "gaussian" or (self.gamma, self.dim, self.bits) != (None, None, None):
            raise ValueError(f"a {self.mode} round runs the gaussian mechanism (no gamma, dim or bits)")

    @property
    def device_sigma(self) -> float:
        """Standard deviation of the noise THIS device adds (in parameter units)."""
        if self.mode == "local":
            return self.noise_multiplier * self.clip_norm
        if self.mode == "distributed":
            return self.noise_multiplier * self.clip_norm / math.sqrt(self.noise_shares)
        return 0.0

    def skellam_params(self, *, dim: int | None = None) -> skellam.Params:
        """The Skellam parameters of a distributed round, for a model of `dim` parameters (default: the
        declared dim). The device passes the size of the weights it received: skellam.check_declared then
        refuses a declaration that differs from what it analyses."""
        if self.gamma is None or self.dim is None or self.bits is None:
            raise ValueError("not a skellam round")
        return skellam.Params(clip_norm=float(self.clip_norm), noise_multiplier=float(self.noise_multiplier),
                              gamma=float(self.gamma), dim=self.dim if dim is None else dim,
                              noise_shares=int(self.noise_shares), bits=self.bits)

    def to_config(self) -> dict[str, Any]:
        """Flat, Flower-ConfigRecord-friendly form (keys with dashes; None dropped)."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> RoundSpec:
        kw: dict[str, Any] = {}
        for f in fields(cls):
            key = f.name.replace("_", "-")
            if key in cfg:
                kw[f.name] = cfg[key]
        for name in ("round", "noise_shares", "local_steps", "batch_size", "dim", "bits"):
            if name in kw and isinstance(kw[name], float) and kw[name].is_integer():
                kw[name] = int(kw[name])
        return cls(**kw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """What the device decides for itself. The server can neither see nor change it."""

    budget_epsilon: float = vledger.DEFAULT_BUDGET_EPSILON
    delta: float = vledger.DEFAULT_BUDGET_DELTA
    min_examples: int = feat.MIN_EXAMPLES
    min_days: int = feat.MIN_DAYS

    def __post_init__(self) -> None:
        params.positive("budget_epsilon", self.budget_epsilon)
        params.delta(self.delta)
        params.count("min_examples", self.min_examples)
        params.count("min_days", self.min_days)


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    """One round's outcome on the device. Only `update` leaves it; the rest stays for the owner."""

    update: np.ndarray  # float64: clipped, plus this device's noise share
    spec: RoundSpec
    epsilon_after: float  # PLD, as recorded (label says under which assumption)
    epsilon_after_rdp: float
    epsilon_label: str
    epsilon_device_verifiable: float  # inf when the device added no noise itself (central)
    ledger_seq: int
    norm_before_clip: float
    examples: int
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundTrained(audit.AuditEvent):
    """The device read its data to train a round (counts and parameters only)."""

    kind: ClassVar[str] = "federated.round_trained"
    round: int
    model_id: str
    mode: str
    examples: int
    ledger_seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingRefused(audit.AuditEvent):
    """The device refused to train for lack of data (the budget refusal is vault.ledger.ReleaseRefused)."""

    kind: ClassVar[str] = "federated.training_refused"
    round: int
    model_id: str
    reason: str
    examples: int
    days: int


# ---- accounting ----------------------------------------------------------------------------------------

Event = tuple[float, str, "float | None"]  # (noise multiplier, sampling, sampling rate) of one release
# an accountant event is an Event (a Gaussian release) or a skellam.Params (a distributed Skellam release)


def gaussian(noise_multiplier: float) -> Event:
    """One Gaussian release with no amplification assumed."""
    return (float(noise_multiplier), "none", None)


def _key(e: Any) -> tuple[Any, ...]:
    if isinstance(e, skellam.Params):
        return (1, e.noise_multiplier, e.gamma, e.clip_norm, e.dim, e.noise_shares, e.bits, e.beta)
    return (0, e[0], e[1], e[2] if e[2] is not None else -1.0)


def composed(events: Sequence[Any], *, delta: float) -> tuple[float, float]:
    """(PLD epsilon, RDP epsilon) of the composition of `events` (with a Skellam release: both the RDP
    composition, accounting.compose). Composition does not depend on order, so the result is cached on the
    sorted events: a device recomputes the same history every round."""
    if not events:
        return 0.0, 0.0
    return _composed(tuple(sorted(events, key=_key)), float(delta))


@functools.lru_cache(maxsize=4096)
def _composed(events: tuple[Any, ...], delta: float) -> tuple[float, float]:
    from federated import accounting

    if any(isinstance(e, skellam.Params) for e in events):
        return accounting.compose([e if isinstance(e, skellam.Params) else e[0] for e in events], delta)
    evs = [accounting.Release(noise_multiplier=z, sampling=s, sampling_rate=q) for z, s, q in events]
    return (
        float(accounting.epsilon(evs, delta, accountant="pld")),
        float(accounting.epsilon(evs, delta, accountant="rdp")),
    )


def spec_event(spec: RoundSpec) -> Any:
    """The accountant event of the release `spec` asks for (a distributed round: its Skellam parameters)."""
    return spec.skellam_params() if spec.mode == "distributed" else gaussian(spec.noise_multiplier)


def history(vault: Vault) -> list[dict[str, Any]]:
    """The ledger's releases, oldest first (bodies as recorded)."""
    return [row.body for row in vledger.releases(vault)]


def recorded_events(vault: Vault) -> list[Any]:
    """Accountant events for every release in the ledger, as the recorded epsilon counts them."""
    from federated import accounting

    out: list[Any] = []
    for b in history(vault):
        e = accounting.event_of(b)
        out.append(e if isinstance(e, skellam.Params) else gaussian(e))
    return out


def projected(vault: Vault, spec: RoundSpec, policy: Policy) -> tuple[float, float]:
    """(PLD, RDP) epsilon the ledger would show if this round were released. Depends on no data."""
    return composed([*recorded_events(vault), spec_event(spec)], delta=policy.delta)


def _body(spec: RoundSpec) -> dict[str, Any]:
    """The ledger fields of the release `spec` asks for that the trust figures read."""
    return {"mode": spec.mode, "mechanism": spec.mechanism, "noise_multiplier": float(spec.noise_multiplier),
            "noise_shares": spec.noise_shares if spec.mode == "distributed" else 1,
            "skellam": spec.skellam_params().to_record() if spec.mode == "distributed" else None}


def device_verifiable(vault: Vault, spec: RoundSpec | None, policy: Policy) -> float:
    """Epsilon counting only the noise the device added itself: what it can verify without trusting
    anyone (trust.py's device-verifiable figure over the ledger, plus `spec`'s release when given). inf
    once a central round was released (the device added no noise). A distributed release counts with its
    own share: Skellam with lambda / t (noise multiplier z / sqrt(t))."""
    from federated import trust

    evs = trust.events([*history(vault), *([_body(spec)] if spec is not None else [])], "device_verifiable")
    if evs is None:
        return math.inf
    return composed([e if isinstance(e, skellam.Params) else gaussian(e) for e in evs], delta=policy.delta)[0]


def epsilons(vault: Vault, policy: Policy | None = None) -> dict[str, Any]:
    """Every applicable epsilon of the releases so far, side by side (for the owner and the reports), each
    computed over all releases under one trust assumption (federated/trust.py): recorded (the ledger's PLD
    figure: every party as declared), rdp (cross-check), honest_server, honest_majority, device_verifiable
    (inf once a round gave the device nothing it added itself), and amplified (only when every release was
    a central round sampled by the server's secret CSPRNG with a fixed denominator: the weakest claim, the
    device cannot check how it was sampled)."""
    from federated import trust

    policy = policy or Policy()
    past = history(vault)
    if not past:
        return {"releases": 0, "recorded": 0.0, "rdp": 0.0, "labels": [], "device_verifiable": 0.0}
    per = trust.by_assumption(past, delta=policy.delta)
    out: dict[str, Any] = {
        "releases": len(past), "recorded": float(past[-1]["epsilon_after"]),
        "rdp": float(past[-1]["epsilon_after_rdp"]),
        "labels": sorted({str(b["epsilon_label"]) for b in past}),
        "honest_server": per["honest_server"], "honest_majority": per["honest_majority"],
        "device_verifiable": per["device_verifiable"],
    }
    if per["amplified"] is not None:
        out["amplified"] = per["amplified"]
    return out


def exact(events: Sequence[Event], *, delta: float) -> float:
    """The exact epsilon of un-amplified Gaussian releases: they compose to one Gaussian with noise
    multiplier (sum z_i^-2)^(-1/2) (Dong, Roth & Su 2019), whose curve is analytic (Balle & Wang 2018).
    A lower bound on what the pessimistic PLD accountant reports, and cheap whatever z is. A Skellam
    release counts as the Gaussian of its bound's leading term (skellam.effective_noise_multiplier), below
    which its RDP bound never falls: still a lower bound on the recorded figure."""
    if not events:
        return 0.0
    zs = [skellam.effective_noise_multiplier(e) if isinstance(e, skellam.Params) else e[0] for e in events]
    if any(not isinstance(e, skellam.Params) and e[1] != "none" for e in events):
        raise ValueError("the exact composition holds for un-amplified Gaussian releases only")
    return gaussian_epsilon(composed_noise(zs), delta=delta)


def check_budget(vault: Vault, spec: RoundSpec, policy: Policy) -> tuple[float, float]:
    """The hard stop BEFORE training: raises BudgetExhausted (audited by the ledger) when over.

    The exact epsilon is checked first: when even it exceeds the budget the round is refused without
    running the PLD accountant, whose cost grows without bound as z shrinks (a server asking for z = 0.01
    must not keep a phone busy for minutes). Otherwise the recorded PLD figure decides."""
    events = [*recorded_events(vault), spec_event(spec)]
    floor = exact(events, delta=policy.delta)
    if floor > policy.budget_epsilon:
        vledger.refuse_if_over(vault, round=spec.round, model_id=spec.model_id, epsilon_would_be=floor,
                               budget_epsilon=policy.budget_epsilon)
    eps, eps_rdp = composed(events, delta=policy.delta)
    vledger.refuse_if_over(
        vault, round=spec.round, model_id=spec.model_id, epsilon_would_be=eps, budget_epsilon=policy.budget_epsilon,
    )
    return eps, eps_rdp


# ---- the round ---------------------------------------------------------------------------------------

def train_update(global_weights: np.ndarray, ex: feat.Examples, spec: RoundSpec) -> np.ndarray:
    """Train from the global weights on the device's examples; return new - old in float64."""
    from federated import model as fmodel

    start = np.asarray(global_weights, dtype=np.float64)
    net = fmodel.build()
    fmodel.set_flat(net, start)
    fmodel.train_local(net, ex, steps=spec.local_steps, batch_size=spec.batch_size, lr=spec.learning_rate,
                       seed=spec.round)
    return fmodel.get_flat(net).astype(np.float64) - start


def privatize(update: np.ndarray, spec: RoundSpec) -> np.ndarray:
    """What release_round does to the trained update before it leaves the device: clip the whole update
    to L2 norm C (dp.clip, in every mode), then add this device's noise of standard deviation
    spec.device_sigma: Gaussian in local mode, none in central mode, and in distributed mode the Skellam
    share (skellam.device_share: scale by gamma, conditional rounding, Skellam noise of variance
    (gamma device_sigma)^2, residues modulo 2^bits, as float64 integers SecAgg+ carries exactly). The
    empirical audit (federated/audit.py) submits its canaries through this function."""
    from federated import dp

    clipped = dp.clip(update, spec.clip_norm)
    sigma = spec.device_sigma
    if spec.mode == "distributed":
        return skellam.device_share(clipped, spec.skellam_params(), sigma=sigma).astype(np.float64)
    return dp.add_noise(clipped, sigma) if sigma > 0 else clipped


def check_declared(spec: RoundSpec, dim: int) -> None:
    """A distributed round's device refuses (ValueError, before the budget is touched) Skellam parameters
    that differ from what it analyses: its own model size, skellam.BITS, skellam.ROUNDING_BETA."""
    if spec.mode != "distributed":
        return
    analysed = skellam.Params(clip_norm=float(spec.clip_norm), noise_multiplier=float(spec.noise_multiplier),
                              gamma=float(spec.gamma or 0.0), dim=dim, noise_shares=int(spec.noise_shares))
    skellam.check_declared(spec.skellam_params().to_record(), analysed)


def release_round(
    vault: Vault,
    global_weights: np.ndarray,
    spec: RoundSpec,
    policy: Policy | None = None,
    *,
    examples: feat.Examples | None = None,
) -> Released:
    """Run one device round end to end (see the module docstring). Raises BudgetExhausted or
    features.TooLittleData when the device refuses; in both cases nothing was released."""
    t0 = time.perf_counter()
    policy = policy or Policy()
    weights = np.asarray(global_weights, dtype=np.float64)
    if weights.ndim != 1 or not np.all(np.isfinite(weights)):
        raise ValueError("global weights must be a finite 1-d vector")

    check_declared(spec, weights.size)  # a distributed round's Skellam parameters, before the budget
    eps, eps_rdp = check_budget(vault, spec, policy)  # before any training

    ex = examples if examples is not None else feat.examples(vault)
    try:
        feat.require_enough(ex, minimum=policy.min_examples, min_days=policy.min_days)
    except feat.TooLittleData:
        audit.record(vault, TrainingRefused(
            actor="federated", round=spec.round, model_id=spec.model_id, reason="too-little-data",
            examples=len(ex), days=ex.days,
        ))
        raise

    update = train_update(weights, ex, spec)
    norm = float(np.linalg.norm(update))
    noisy = privatize(update, spec)
    verifiable = device_verifiable(vault, spec, policy)

    row = vledger.append(vault, vledger.Release(
        round=spec.round, model_id=spec.model_id, mode=spec.mode, mechanism=spec.mechanism,
        clip_norm=float(spec.clip_norm), noise_multiplier=float(spec.noise_multiplier),
        sampling=spec.sampling, sampling_rate=spec.sampling_rate, delta=policy.delta,
        epsilon_after=eps, epsilon_after_rdp=eps_rdp, epsilon_label=LABELS[spec.mode],
        budget_epsilon=policy.budget_epsilon, noise_shares=spec.noise_shares if spec.mode == "distributed" else 1,
        sampler=spec.sampler, skellam=spec.skellam_params().to_record() if spec.mode == "distributed" else None,
    ))
    audit.record(vault, RoundTrained(
        actor="federated", round=spec.round, model_id=spec.model_id, mode=spec.mode, examples=len(ex),
        ledger_seq=row.seq,
    ))
    return Released(
        update=np.asarray(noisy, dtype=np.float64), spec=spec, epsilon_after=eps, epsilon_after_rdp=eps_rdp,
        epsilon_label=LABELS[spec.mode], epsilon_device_verifiable=verifiable, ledger_seq=row.seq,
        norm_before_clip=norm, examples=len(ex), seconds=time.perf_counter() - t0,
    )


def evaluate(global_weights: np.ndarray, ex: feat.Examples) -> tuple[int, int]:
    """(correct, total) next-app-category predictions of the global model on these examples."""
    from federated import model as fmodel

    net = fmodel.build()
    fmodel.set_flat(net, np.asarray(global_weights, dtype=np.float64))
    res = fmodel.evaluate(net, ex)
    return int(res["app_correct"]), int(res["app_total"])


__all__ = [
    "BudgetExhausted", "LABELS", "MODES", "Policy", "Released", "RoundSpec", "RoundTrained", "TrainingRefused",
    "check_budget", "check_declared", "composed", "device_verifiable", "epsilons", "evaluate", "exact", "history", "privatize", "projected",
    "release_round",
]
