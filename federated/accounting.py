"""Pure privacy accounting: the epsilon of a composition of DP releases, with dp-accounting 0.6.0.

    accounting.epsilon([Release(noise_multiplier=1.2)] * 100, 1e-6, accountant="pld")

Two accountants, never mixed up:
  pld  privacy loss distributions (Meiser & Mohammad 2018, Koskela et al. 2020; dp-accounting's
       PLDAccountant, value discretization 1e-4, pessimistic): the figure that is recorded and reported.
       For un-amplified Gaussian releases it is the exact composition up to discretization.
  rdp  Renyi DP (Mironov 2017) with the Balle et al. 2020 conversion: an independent cross-check, always
       a little larger (looser) than PLD.

A `Release` is one application of the Gaussian mechanism to a sum whose sensitivity is the clip norm C,
with noise standard deviation `noise_multiplier * C`, and the sampling the server declared:
  none                 no amplification (the device cannot verify how it was picked): plain Gaussian
  poisson              each user picked independently with probability `sampling_rate` (add/remove one)
  without_replacement  a fixed-size cohort of round(sampling_rate * population) users (replace one; RDP only)

Identical releases are grouped and self-composed, so a history of 10,000 rounds costs what one costs, and
the result does not depend on the order of the events. Nothing is imported from dp_accounting until a
function runs (no import-time work). Above gaussian.py (the exact curve of one release) and params.py;
below dp.py, trust.py and client.py.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from federated import gaussian, params

if TYPE_CHECKING:
    import dp_accounting

SAMPLINGS = ("none", "poisson", "without_replacement")
ACCOUNTANTS = ("pld", "rdp")
PLD_DISCRETIZATION = 1e-4
PLD_MIN_NOISE = 0.25  # below this composed noise multiplier, plain Gaussians use the exact analytic value
EPSILON_CACHE_SIZE = 256  # compositions whose epsilon is kept (epsilon is pure: same events, same answer)


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """One Gaussian release as the accountant counts it (hashable: identical releases are grouped)."""

    noise_multiplier: float
    sampling: str = "none"
    sampling_rate: float | None = None
    population: int | None = None  # without_replacement only: the size of the population sampled from

    def __post_init__(self) -> None:
        params.positive("noise_multiplier", self.noise_multiplier)
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.sampling == "none":
            if self.sampling_rate is not None or self.population is not None:
                raise ValueError("sampling_rate and population are only meaningful with sampling")
            return
        params.open_interval("sampling_rate", self.sampling_rate, 0.0, 1.0)
        if self.sampling == "poisson":
            if self.population is not None:
                raise ValueError("population is only meaningful with sampling without replacement")
            return
        n = self.population
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"population must be an integer >= 2 for sampling without replacement, got {n!r}")
        if self.sample_size < 1:
            raise ValueError("sampling_rate * population must be at least one user")

    @property
    def sample_size(self) -> int:
        """Cohort size for sampling without replacement."""
        assert self.population is not None and self.sampling_rate is not None
        return round(self.sampling_rate * self.population)

    def dp_event(self) -> dp_accounting.DpEvent:
        import dp_accounting

        gaussian = dp_accounting.GaussianDpEvent(float(self.noise_multiplier))
        if self.sampling == "poisson":
            return dp_accounting.PoissonSampledDpEvent(float(self.sampling_rate or 0.0), gaussian)
        if self.sampling == "without_replacement":
            return dp_accounting.SampledWithoutReplacementDpEvent(int(self.population or 0), self.sample_size, gaussian)
        return gaussian


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, got {accountant!r}")


def _accountant(events: Sequence[Release], accountant: str, orders: Sequence[float] | None,
                discretization: float) -> dp_accounting.PrivacyAccountant:
    """A dp-accounting accountant with every event composed (identical events self-composed)."""
    import dp_accounting
    from dp_accounting import pld, rdp

    _check_accountant(accountant)
    for e in events:
        if not isinstance(e, Release):
            raise TypeError(f"events must be accounting.Release, got {type(e).__name__}")
    wor = {e.sampling == "without_replacement" for e in events}
    if len(wor) > 1:
        raise ValueError("releases sampled without replacement (replace-one neighbours) cannot be composed "
                         "with add/remove-one releases")
    relation = (dp_accounting.NeighboringRelation.REPLACE_ONE if True in wor
                else dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE)
    acc: dp_accounting.PrivacyAccountant
    if accountant == "pld":
        if True in wor:
            raise ValueError("the PLD accountant does not support sampling without replacement; use accountant='rdp'")
        acc = pld.PLDAccountant(relation, value_discretization_interval=discretization)
    else:
        acc = rdp.RdpAccountant(orders=list(orders) if orders is not None else None, neighboring_relation=relation)
    groups = Counter(events)
    for release in sorted(groups, key=lambda r: (r.noise_multiplier, r.sampling, r.sampling_rate or 0.0)):
        acc.compose(release.dp_event(), groups[release])
    return acc


def epsilon(
    events: Sequence[Release],
    delta: float,
    *,
    accountant: str = "pld",
    orders: Sequence[float] | None = None,
    value_discretization_interval: float = PLD_DISCRETIZATION,
) -> float:
    """Epsilon at `delta` of the composition of all `events` (0 for no event). Pure, so the last
    EPSILON_CACHE_SIZE answers are kept: a run asks the same composition many times (the noise search, every
    device's trust figures, audit verify's recomputation), and one PLD costs ~0.1-0.3 s of CPU."""
    delta = params.delta(delta)
    _check_accountant(accountant)
    if not events:
        return 0.0
    for e in events:
        if not isinstance(e, Release):
            raise TypeError(f"events must be accounting.Release, got {type(e).__name__}")
    return _epsilon(tuple(events), delta, accountant, None if orders is None else tuple(orders),
                    float(value_discretization_interval))


@functools.lru_cache(maxsize=EPSILON_CACHE_SIZE)
def _epsilon(events: tuple[Release, ...], delta: float, accountant: str, orders: tuple[float, ...] | None,
             value_discretization_interval: float) -> float:
    if accountant == "pld" and all(isinstance(e, Release) and e.sampling == "none" for e in events):
        # Plain Gaussians compose exactly into one Gaussian with 1/z^2 = sum(1/z_i^2). When that z is tiny
        # the PLD grid needs ~1/z^2 points (gigabytes below z = 0.05: a server sending such a z could
        # exhaust a phone before the budget check refuses it), so there the exact analytic value is used.
        # It only happens far above any budget (epsilon > 30 at delta 1e-6).
        z = gaussian.composed(e.noise_multiplier for e in events)
        if z < PLD_MIN_NOISE:
            return gaussian.gaussian_epsilon(z, delta=delta)
    acc = _accountant(events, accountant, orders, value_discretization_interval)
    return float(acc.get_epsilon(delta))


def delta_at(
    events: Sequence[Release],
    epsilon_: float,
    *,
    accountant: str = "pld",
    orders: Sequence[float] | None = None,
    value_discretization_interval: float = PLD_DISCRETIZATION,
) -> float:
    """The smallest delta for which the composition of `events` is (epsilon_, delta)-DP."""
    eps = params.non_negative("epsilon", epsilon_)
    _check_accountant(accountant)
    if not events:
        return 0.0
    acc = _accountant(events, accountant, orders, value_discretization_interval)
    return float(acc.get_delta(eps))


def noise_multiplier_for_budget(
    epsilon: float,
    delta: float,
    rounds: int,
    *,
    sampling_rate: float | None = None,
    accountant: str = "pld",
    orders: Sequence[float] | None = None,
    rtol: float = 1e-6,
) -> float:
    """The smallest noise multiplier z such that `rounds` Gaussian releases with z compose to at most
    `epsilon` at `delta` (un-amplified unless `sampling_rate` is given: then Poisson sampling).

    Binary search on z. The bracket starts at the analytic Gaussian (Balle & Wang 2018): `rounds`
    un-amplified releases with z are exactly one release with z / sqrt(rounds), so the exact answer is
    analytic_sigma * sqrt(rounds); PLD is pessimistic by its discretization, so its answer is a hair larger.
    """
    target = params.positive("epsilon", epsilon)
    delta = params.delta(delta)
    rounds = params.integer("rounds", rounds, minimum=1)
    _check_accountant(accountant)
    sampling = "none"
    if sampling_rate is not None:
        params.open_interval("sampling_rate", sampling_rate, 0.0, 1.0)
        sampling = "poisson"

    def eps_of(z: float) -> float:
        release = Release(noise_multiplier=z, sampling=sampling, sampling_rate=sampling_rate)
        return epsilon_fn([release] * rounds, delta, accountant=accountant, orders=orders)

    def fits(z: float) -> bool:
        return eps_of(z) <= target

    exact = gaussian.calibrate(epsilon=target, delta=delta) * math.sqrt(rounds)
    if sampling == "none":
        # PLD lands within ~1e-6 of the exact answer, RDP a few percent above it: bracket tightly, widen
        # only when needed (every PLD evaluation of a small z costs a fraction of a second).
        step = rtol if accountant == "pld" else 0.05
        lo, hi = exact, exact * (1 + step)
        while fits(lo):  # RDP never; PLD only if its discretization were optimistic
            lo, hi = lo * (1 - step), lo
            step *= 4
        while not fits(hi):
            step *= 4
            lo, hi = hi, exact * (1 + step)
    else:
        lo, hi = exact / 2, exact  # amplification only ever needs less noise than `exact`
        while not fits(hi):
            lo, hi = hi, hi * 1.5
        while fits(lo):
            lo, hi = lo / 2, lo
    while hi - lo > rtol * hi * (1 + 1e-9):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


epsilon_fn = epsilon  # the name `epsilon` is shadowed by parameters in functions above


# ---- Gaussian and Skellam releases together ------------------------------------------------------------
#
# A distributed round runs the Skellam mechanism (federated/skellam.py), whose guarantee is an RDP bound at
# integer orders; there is no PLD for it here. A history with a Skellam release is therefore composed in
# RDP: each plain Gaussian release adds a / (2 z^2) (its exact RDP) at every integer order a of
# skellam.ORDERS, each Skellam release its bound, and the sum converts to (epsilon, delta) with
# dp-accounting's RDP conversion. An upper bound, never below the right value; a history of plain Gaussian
# releases only keeps the PLD figure.

def compose(events: Sequence[Any], delta: float) -> tuple[float, float]:
    """(recorded, rdp) epsilon of un-amplified releases, each a Gaussian noise multiplier z (float) or a
    skellam.Params. Gaussian only: (PLD, RDP) as `epsilon`. With a Skellam release: both are the RDP
    composition at skellam.ORDERS (see above)."""
    from federated import skellam

    delta = params.delta(delta)
    if not events:
        return 0.0, 0.0
    sk = Counter(e for e in events if isinstance(e, skellam.Params))
    zs = [float(e) for e in events if not isinstance(e, skellam.Params)]
    if not sk:
        gs = [Release(noise_multiplier=z) for z in zs]
        return epsilon(gs, delta, accountant="pld"), epsilon(gs, delta, accountant="rdp")
    inv = sum(1.0 / params.positive("noise_multiplier", z) ** 2 for z in zs)  # Gaussian RDP: a sum_i 1/(2 z_i^2)
    curve = [a * inv / 2 + sum(n * skellam.rdp(a, l1=p.l1_bound, l2=p.l2_bound, lam=p.lam) for p, n in sk.items())
             for a in skellam.ORDERS]
    eps = skellam.rdp_to_epsilon(curve, delta)
    return eps, eps


def skellam_row_consistent(body: Mapping[str, Any]) -> bool:
    """A skellam row's derived figures (lambda, D2, D1) are the ones its parameters give, and its top-level
    C, z and t (what the trust figures read) are the record's; True for a Gaussian row."""
    from federated import skellam

    if body.get("mechanism") != skellam.NAME:
        return True
    rec = body["skellam"]
    p = event_of(body)
    derived = (("skellam_lam", p.lam), ("l2_bound", p.l2_bound), ("l1_bound", p.l1_bound),
               ("noise_multiplier", float(body["noise_multiplier"])), ("clip_norm", float(body["clip_norm"])),
               ("noise_shares", float(body["noise_shares"])))
    return all(isinstance(rec.get(k), (int, float)) and math.isclose(float(rec[k]), v, rel_tol=1e-12)
               for k, v in derived)


def event_of(body: Mapping[str, Any]) -> Any:
    """The release a ledger body records, as `compose` counts it (the recorded figure: every party as
    declared): a skellam.Params rebuilt from the row for mechanism skellam, else its noise multiplier."""
    from federated import skellam

    if body.get("mechanism") == skellam.NAME:
        rec = body.get("skellam")
        if not isinstance(rec, Mapping):
            raise ValueError("a skellam release without its skellam parameters")
        return skellam.Params.from_record(rec)
    return float(body["noise_multiplier"])


@dataclass(frozen=True, slots=True, kw_only=True)
class Recomputed:
    """One ledger release's recorded epsilon next to an independent recomputation."""

    index: int  # position in the ledger, oldest first
    delta: float
    recorded_pld: float
    recorded_rdp: float
    pld: float
    rdp: float
    ok: bool


def recompute(bodies: Sequence[Mapping[str, Any]], *, tolerance: float = 1e-6) -> list[Recomputed]:
    """Recompute every `epsilon_after` (PLD) and `epsilon_after_rdp` of a privacy ledger, oldest first.

    The device records the epsilon of all its releases so far, each counted as a plain Gaussian with its
    noise multiplier or, for a distributed Skellam round, with the parameters its row records (mechanism,
    gamma, lambda, bits, D1, D2: `compose`), no amplification assumed whatever sampling the server
    declared, at the release's delta. A recorded value further than `tolerance` (absolute, plus 1e-9 relative) from the
    recomputation is a mismatch."""
    out: list[Recomputed] = []
    events: list[Any] = []
    for i, body in enumerate(bodies):
        events.append(event_of(body))
        delta = float(body["delta"])
        pld_, rdp_ = compose(events, delta)
        rec_pld, rec_rdp = float(body["epsilon_after"]), float(body["epsilon_after_rdp"])
        ok = all(abs(a - b) <= tolerance + 1e-9 * abs(b) for a, b in ((rec_pld, pld_), (rec_rdp, rdp_)))
        ok = ok and skellam_row_consistent(body)
        out.append(Recomputed(index=i, delta=delta, recorded_pld=rec_pld, recorded_rdp=rec_rdp, pld=pld_, rdp=rdp_,
                              ok=ok))
    return out


def zcdp_epsilon(rho: float, delta: float, *, orders: Sequence[float] | None = None) -> float:
    """Epsilon at `delta` of a rho-zCDP guarantee (Bun & Steinke 2016), converted through RDP with the
    Balle et al. 2020 / Canonne et al. 2020 conversion (dp-accounting ZCDpEvent)."""
    import dp_accounting
    from dp_accounting import rdp

    rho = params.positive("rho", rho)
    delta = params.delta(delta)
    acc = rdp.RdpAccountant(orders=list(orders) if orders is not None else _zcdp_orders())
    acc.compose(dp_accounting.ZCDpEvent(rho))
    return float(acc.get_epsilon(delta))


def _zcdp_orders() -> list[float]:
    """Dense orders: a zCDP curve is linear in the order, the optimum can sit anywhere in (1, 1000]."""
    return [1.0 + i / 100.0 for i in range(1, 1000)] + [float(a) for a in range(11, 1001)]


__all__ = ["ACCOUNTANTS", "Recomputed", "Release", "SAMPLINGS", "compose", "delta_at", "event_of", "recompute", "skellam_row_consistent", "epsilon", "noise_multiplier_for_budget", "zcdp_epsilon"]
