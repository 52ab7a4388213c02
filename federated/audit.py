"""Empirical privacy audit in one run (Steinke, Nasr & Jagielski 2023): a LOWER bound on epsilon.

The accountant gives an upper bound that holds if the code is right. This module checks the code: it
runs the federated mechanism in simulation with m canary clients, each included with probability 1/2
by a CSPRNG held by the audit (the mechanism never sees the bits), scores every canary against what the
mechanism released, guesses "included" for the highest scores and "excluded" for the lowest, and turns
the number of correct guesses into an epsilon that the mechanism provably exceeds with probability at
most `significance`. A correct mechanism gives lower <= upper; a lower bound above the accountant's
upper bound is proof of a bug (verdict "violation"). m canaries can certify at most certifiable_max(m)
(every guess right); when the accountant's bound is above that, the audit could not have seen a leak
(verdict "inconclusive"). powerful_noise_multiplier picks a z where it could.

The mechanism is the real one: every canary goes through client.privatize (the clip and noise step of
client.release_round) with the RoundSpec a device of the round would get, and every round through
aggregate.mean_update (the server's arithmetic), all looked up at call time, so a fault in them is a fault
the audit sees. In distributed mode that is the Skellam mechanism end to end: the device's share (dp.clip,
gamma, conditional rounding, Skellam noise sized by the spec's device sigma, residues modulo 2^22) with the
gamma the server would declare for the round (aggregate.pick_gamma), SecAgg+'s quantization and modular
sum with Flower's own functions, the exact decoding, the t-survivor rule; the accountant's bound is the
Skellam RDP figure a device's ledger records for those rounds.

  canaries   random unit directions u_i in R^dim, submitted as updates of norm `canary_norm`
             (default 1000 C: a correct mechanism clips them to exactly C, so the audit is the one with
             norm-C canaries; a mechanism that adds noise before clipping, or does not clip, shows up;
             distributed: at most distributed_canary_norm, so unclipped canaries cannot wrap the 2^22 sum)
  central /  included canaries take part in every round; the observation is the final model delta
  distributed  (what anyone sees of a central/distributed run)
  local      every canary device takes part; an included one submits its canary, an excluded one a zero
             update; the observation is the device's own releases (what the untrusted server sees)
  probe      one extra round with only `background` devices that submit zero updates (distributed: as many
             devices as a canary round, so its t and gamma are the same): it releases noise
             only and contains no canary. Scores use the observation minus its projection on the probe,
             which costs a correct mechanism one dimension of `dim` and cancels noise that repeats
             (a reused RNG seed).
  score_i    < u_i, observation >

The bound: with r guesses of which v are correct, an (eps, delta)-DP mechanism gives
P[V >= v] <= P[Binomial(r, e^eps/(1+e^eps)) >= v] + 2 m delta alpha (their Theorem 3.1 / Algorithm 2);
the lower bound is the largest eps this rejects at `significance`. The guesses never depend on the
inclusion bits: for each guess count r fixed in advance (GUESS_FRACTIONS of m), the r/2 highest scores
are guessed in and the r/2 lowest out, each r tested at significance / len(GUESS_FRACTIONS).
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from federated import accounting, aggregate, dp, params
from vault import audit as vault_audit

CANARY_NORM_FACTOR = 1000.0
MAX_CANARY_CELLS = 64_000_000  # canaries x dim: the directions alone take 8 bytes per cell (512 MB at the bound)
DeviceStep = Callable[[np.ndarray, Any], np.ndarray]  # (raw update, the round's client.RoundSpec): client.privatize
Aggregator = Callable[..., "np.ndarray | None"]  # aggregate.mean_update's signature


# ---- the bound ----------------------------------------------------------------------------------------

def p_value(*, canaries: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """P[at least `correct` of `guesses` right] under the null hypothesis that the mechanism is
    (epsilon, delta)-DP, for `canaries` canaries each included with probability 1/2."""
    from scipy.special import expit
    from scipy.stats import binom

    if not 0 <= correct <= guesses <= canaries:
        raise ValueError(f"need 0 <= correct <= guesses <= canaries, got {correct}, {guesses}, {canaries}")
    q = float(expit(epsilon))
    beta = float(binom.sf(correct - 1, guesses, q))
    if delta == 0 or correct == 0:
        return min(beta, 1.0)
    i = np.arange(1, correct + 1)
    window = binom.sf(correct - i - 1, guesses, q) - beta  # P[correct - i <= Bin < correct]
    alpha = float(np.max(window / i, initial=0.0))
    return min(beta + alpha * delta * 2 * canaries, 1.0)


def epsilon_lower_bound(*, canaries: int, guesses: int, correct: int, delta: float = 0.0,
                        significance: float = 0.05, floor: float = 0.0) -> float:
    """The largest epsilon that `correct` right guesses out of `guesses` reject at `significance`
    (`floor` when none above it is rejected). E.g. 1000 canaries, 100 of 100 right: 3.4930 at 95%."""
    from scipy.optimize import brentq

    if not 0 < significance < 1:
        raise ValueError(f"significance must be in (0, 1), got {significance!r}")
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    if guesses == 0 or p_value(canaries=canaries, guesses=guesses, correct=correct, epsilon=floor, delta=0.0) > significance:
        return floor

    def margin(eps: float) -> float:  # > 0 while (eps, delta)-DP is rejected
        return significance - p_value(canaries=canaries, guesses=guesses, correct=correct, epsilon=eps, delta=delta)

    if margin(floor) <= 0:
        return floor
    lo, hi = floor, max(1.0, 2 * floor)
    while margin(hi) > 0:
        lo, hi = hi, 2 * hi
    return float(brentq(margin, lo, hi, xtol=1e-7))


GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # declared before any score is seen (Bonferroni over 6)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    """A one-run lower bound and how it was obtained."""

    epsilon: float
    epsilon_max: float  # the largest bound these canaries could certify (every guess right)
    significance: float
    delta: float
    canaries: int
    guesses: int
    correct: int
    hypotheses: int  # guess counts tested (Bonferroni), fixed in advance
    auroc: float


def _guess_counts(canaries: int) -> list[int]:
    """The guess counts r tested, a function of the canary count only (never of the scores or labels)."""
    return sorted({max(2, min(canaries, round(f * canaries))) for f in GUESS_FRACTIONS})


@functools.lru_cache(maxsize=256)
def certifiable_max(*, canaries: int, delta: float = 1e-6, significance: float = 0.05) -> float:
    """The largest lower bound a run with `canaries` canaries can certify at this confidence: the bound
    when every guess is right, at the best of the guess counts tested. A mechanism whose accountant bound
    is above this cannot be shown to leak more than it claims, whatever it does."""
    counts = _guess_counts(canaries)
    sig = significance / len(counts)
    return max(epsilon_lower_bound(canaries=canaries, guesses=r, correct=r, delta=delta, significance=sig)
               for r in counts)


def bound_from_scores(scores: Sequence[float] | np.ndarray, included: Sequence[bool] | np.ndarray, *,
                      delta: float = 1e-6, significance: float = 0.05) -> Bound:
    """Lower bound on epsilon from each canary's score (higher = guessed "in") and whether it was included.

    The labels are used only to count right guesses, never to choose them: for each guess count r fixed
    in advance (GUESS_FRACTIONS of the canaries), the r/2 highest scores are guessed "in" and the r/2
    lowest "out"; each r is tested at significance / (number of r), and the best survives. Ties are broken
    by position, so the order of `scores` must not depend on the labels."""
    sc = np.asarray(scores, dtype=np.float64)
    inc = np.asarray(included, dtype=bool)
    if sc.ndim != 1 or sc.shape != inc.shape:
        raise ValueError("need one score and one inclusion bit per canary")
    if not inc.any() or inc.all():
        raise ValueError("need at least one included and one excluded canary")
    if not np.all(np.isfinite(sc)):
        raise ValueError("canary scores must be finite")
    m = sc.size
    order = np.argsort(-sc, kind="stable")
    ranked = inc[order]
    from_top = np.concatenate([[0], np.cumsum(ranked)])  # included among the k highest
    from_bottom = np.concatenate([[0], np.cumsum(~ranked[::-1])])  # excluded among the k lowest
    counts = _guess_counts(m)
    sig = significance / len(counts)
    best, best_g, best_c = 0.0, 0, 0
    for r in counts:
        k_in = r // 2
        c = int(from_top[k_in] + from_bottom[r - k_in])
        eps = epsilon_lower_bound(canaries=m, guesses=r, correct=c, delta=delta, significance=sig, floor=best)
        if eps > best:
            best, best_g, best_c = eps, r, c
    ins, outs = sc[inc], sc[~inc]
    auroc = float((np.searchsorted(np.sort(outs), ins, side="left").sum()
                   + 0.5 * (np.searchsorted(np.sort(outs), ins, side="right")
                            - np.searchsorted(np.sort(outs), ins, side="left")).sum()) / (ins.size * outs.size))
    return Bound(epsilon=best, epsilon_max=certifiable_max(canaries=m, delta=delta, significance=significance),
                 significance=significance, delta=delta, canaries=m, guesses=best_g, correct=best_c,
                 hypotheses=len(counts), auroc=auroc)


def one_run_bound(in_scores: Sequence[float] | np.ndarray, out_scores: Sequence[float] | np.ndarray, *,
                  delta: float = 1e-6, significance: float = 0.05) -> Bound:
    """bound_from_scores for scores already split by label. Excluded canaries are placed first, so a
    tie between an included and an excluded canary always counts against the guesser."""
    ins = np.asarray(in_scores, dtype=np.float64).ravel()
    outs = np.asarray(out_scores, dtype=np.float64).ravel()
    if ins.size == 0 or outs.size == 0:
        raise ValueError("need at least one included and one excluded canary")
    return bound_from_scores(np.concatenate([outs, ins]),
                             np.concatenate([np.zeros(outs.size, bool), np.ones(ins.size, bool)]),
                             delta=delta, significance=significance)


# ---- the audit CSPRNG ---------------------------------------------------------------------------------

class _Stream:
    """Deterministic randomness for the audit, derived from its seed with SHAKE-256 (domain-separated)."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed

    def bytes(self, label: str, n: int) -> bytes:
        return hashlib.shake_256(self._seed + b"\x00lifevault-audit\x00" + label.encode()).digest(n)

    def bits(self, label: str, n: int) -> np.ndarray:
        return (np.frombuffer(self.bytes(label, n), dtype=np.uint8) & 1).astype(bool)

    def directions(self, label: str, n: int, dim: int) -> np.ndarray:
        """n random unit vectors (Philox keyed by SHAKE-256 of the seed: the directions need not be
        secret, the inclusion bits are what the mechanism must not know)."""
        key = int.from_bytes(self.bytes(label, 16), "little")
        g = np.random.Generator(np.random.Philox(key=key))
        v = g.standard_normal((n, dim))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v


def _seed_bytes(seed: int | str | bytes | None) -> bytes:
    if seed is None:
        return secrets.token_bytes(32)
    if isinstance(seed, bytes):
        return seed
    if isinstance(seed, bool):
        raise ValueError("seed must be an integer, a string or bytes")
    if isinstance(seed, int):
        return seed.to_bytes((max(seed.bit_length(), 1) + 8) // 8, "little", signed=True)
    return str(seed).encode()


# ---- the mechanism in simulation ----------------------------------------------------------------------

POWER_FRACTION = 0.5  # default z: the accountant's bound is this fraction of what the canaries can certify
VERDICTS = ("consistent", "violation", "inconclusive")


def powerful_noise_multiplier(*, canaries: int, rounds: int, delta: float = 1e-6, significance: float = 0.05) -> float:
    """The default z of an audit: the accountant's bound over `rounds` is POWER_FRACTION of the largest
    bound `canaries` canaries can certify, so a broken clip or noise (which the canaries expose almost
    perfectly) is certified above the accountant's bound. The code audited (device clip and noise, server
    aggregation) is the same whatever z is; only the size of the noise changes."""
    target = POWER_FRACTION * certifiable_max(canaries=canaries, delta=delta, significance=significance)
    return dp.calibrate(epsilon=target, delta=delta, rounds=rounds, method="pld")


DISTRIBUTED_CANARY_SIGMAS = 8.0  # distributed: unclipped canaries' sum stays 8 sd inside the modular range


def distributed_canary_norm(spec: Any, *, included: int) -> float:
    """The canary norm of a distributed audit: at most the one at which the sum of `included` canaries, were
    the clip removed, has per-coordinate standard deviation 2^21 / DISTRIBUTED_CANARY_SIGMAS after scaling by
    gamma (c gamma sqrt(included / dim)), so a missing clip shows in the decoded sum instead of wrapping
    modulo 2^22 into noise. Still far above C at the audit's sizes (135 C for 500 canaries, 259 C for 1,000)."""
    from federated import skellam

    return float(skellam.HALF / (DISTRIBUTED_CANARY_SIGMAS * float(spec.gamma) * math.sqrt(max(included, 1) / spec.dim)))


def _device_spec(mode: str, z: float, clip_norm: float, shares: int, *, sampled: int, dim: int) -> Any:
    """The RoundSpec a canary device receives: in distributed mode the Skellam parameters the server
    declares for a round of `sampled` devices (aggregate.pick_gamma, as server_app.round_spec). With the
    noise off (z = 0, the audit's control) devices only clip, as in a central round, and the server adds
    nothing."""
    from federated import client, skellam

    if z > 0 and mode == "distributed":
        gamma = aggregate.pick_gamma(sampled=sampled, dim=dim, clip_norm=clip_norm, noise_multiplier=z,
                                     noise_shares=shares)
        return client.RoundSpec(round=1, model_id="audit", mode=mode, clip_norm=clip_norm, noise_multiplier=z,
                                noise_shares=shares, mechanism=skellam.NAME, gamma=gamma, dim=dim, bits=skellam.BITS)
    if z > 0:
        return client.RoundSpec(round=1, model_id="audit", mode=mode, clip_norm=clip_norm, noise_multiplier=z)
    return client.RoundSpec(round=1, model_id="audit", mode="central", clip_norm=clip_norm, noise_multiplier=1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditResult(vault_audit.AuditEvent):
    """One empirical audit; also the audit-log event (kind `privacy.empirical_audit`) that records it.
    Counts and parameters only: the audit never touches personal data."""

    kind: ClassVar[str] = "privacy.empirical_audit"
    epsilon_lower_bound: float
    epsilon_certifiable_max: float  # the largest lower bound this canary count and confidence can give
    confidence: float
    epsilon_upper_bound: float | None  # accountant (PLD); None: no finite bound (noise switched off)
    epsilon_upper_bound_rdp: float | None
    verdict: str  # consistent | violation (lower > upper: a bug) | inconclusive (the audit could not see one)
    consistent: bool  # not a violation (kept for older readers; `verdict` says whether the audit had power)
    delta: float
    mode: str
    canaries: int
    included: int
    guesses: int
    correct: int
    hypotheses: int
    auroc: float
    rounds: int
    clip_norm: float
    noise_multiplier: float
    canary_norm: float
    dim: int
    background: int
    method: str
    seed_sha256: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def verdict(*, lower: float, certifiable: float, upper: float | None) -> str:
    """violation when the lower bound exceeds the accountant's; inconclusive when even a perfect guesser
    could not have exceeded it (the audit has no power against this claim); consistent otherwise."""
    if upper is None:
        return "consistent"  # noise off: the accountant claims nothing finite
    if lower > upper:
        return "violation"
    return "inconclusive" if certifiable <= upper else "consistent"


def _validate(canaries: int, rounds: int, clip_norm: float, noise_multiplier: float, mode: str, delta: float,
              significance: float, dim: int, background: int) -> None:
    for name, v, lo in (("canaries", canaries, 2), ("rounds", rounds, 1), ("dim", dim, 2), ("background", background, 1)):
        params.integer(name, v, minimum=lo)
    if canaries * dim > MAX_CANARY_CELLS:
        raise ValueError(f"canaries x dim must be at most {MAX_CANARY_CELLS:,}, got {canaries} x {dim}")
    if mode not in aggregate.MODES:
        raise ValueError(f"mode must be one of {', '.join(aggregate.MODES)}, got {mode!r}")
    params.positive("clip_norm", clip_norm)
    params.non_negative("noise_multiplier", noise_multiplier)  # 0 switches the noise off
    params.delta(delta)
    params.open_interval("significance", significance, 0.0, 1.0)


def run_audit(
    canaries: int = 1000,
    *,
    rounds: int,
    clip_norm: float,
    noise_multiplier: float,
    mode: str = "central",
    seed: int | str | bytes | None = None,
    delta: float = 1e-6,
    significance: float = 0.05,
    dim: int | None = None,
    background: int = 4,
    canary_norm: float | None = None,
    noise_shares_fraction: float = aggregate.DEFAULT_NOISE_SHARES_FRACTION,
    device: DeviceStep | None = None,
    aggregator: Aggregator | None = None,
) -> AuditResult:
    """Run the mechanism with canaries and return the one-run lower bound next to the accountant's upper
    bound. Every canary goes through client.privatize (the device's clip and noise in release_round) with
    the RoundSpec a device of this round would receive, and every round through aggregate.mean_update
    (the server's arithmetic; in distributed mode SecAgg+'s quantized modular sum and its t-survivor
    rule), both looked up at call time. `device` and `aggregator` replace them (fault injection in
    tests). `dim` defaults to max(2048, 8 * canaries), so that canaries interfere little with each other."""
    from federated import client

    dim = dim if dim is not None else max(2048, 8 * canaries)
    _validate(canaries, rounds, clip_norm, noise_multiplier, mode, delta, significance, dim, background)
    t0 = time.perf_counter()
    c_norm = float(canary_norm) if canary_norm is not None else CANARY_NORM_FACTOR * clip_norm
    if not (math.isfinite(c_norm) and c_norm > 0):
        raise ValueError(f"canary_norm must be a finite number > 0, got {canary_norm!r}")
    step: DeviceStep = device or (lambda u, spec: client.privatize(u, spec))
    agg: Aggregator = aggregator or (lambda *a, **k: aggregate.mean_update(*a, **k))
    seed_b = _seed_bytes(seed)
    stream = _Stream(seed_b)
    included = stream.bits("inclusion", canaries)
    directions = stream.directions("directions", canaries, dim)
    zero = np.zeros(dim)
    z = float(noise_multiplier)

    specs: list[Any] = []

    def round_(raw: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        shares = aggregate.noise_shares_for(len(raw), noise_shares_fraction)
        spec = _device_spec(mode, z, clip_norm, shares, sampled=len(raw), dim=dim)
        specs.append(spec)
        released = [np.asarray(step(u, spec), dtype=np.float64) for u in raw]
        mean = agg(released, mode=spec.mode, sampled=len(raw), clip_norm=clip_norm, noise_multiplier=z,
                   noise_shares=shares, gamma=spec.gamma)
        return (np.zeros(dim) if mean is None else np.asarray(mean, dtype=np.float64)), released

    # the probe round: zero updates only, noise and nothing else: `background` devices, or in distributed mode
    # as many as a canary round (the same t and gamma, so a device noise that repeats repeats in the probe)
    n_included = int(included.sum())
    probe_mean, probe_released = round_([zero] * (background + (n_included if mode == "distributed" else 0)))
    if canary_norm is None and mode == "distributed" and z > 0:
        c_norm = min(c_norm, distributed_canary_norm(specs[0], included=n_included))
    probe = probe_released[0] if mode == "local" else probe_mean

    if mode == "local":
        observed = np.zeros((canaries, dim))
        raw = [c_norm * directions[i] if included[i] else zero for i in range(canaries)] + [zero] * background
        for _ in range(rounds):
            _, released = round_(raw)
            for i in range(canaries):
                observed[i] += released[i]
    else:
        raw = [c_norm * directions[i] for i in range(canaries) if included[i]] + [zero] * background
        final = np.zeros(dim)
        for _ in range(rounds):
            mean, _ = round_(raw)
            final += mean
        observed = final[None, :]

    pp = float(probe @ probe)
    if pp > 0:
        observed = observed - np.outer(observed @ probe / pp, probe)
    if mode == "local":
        scores = np.einsum("ij,ij->i", directions, observed)
    else:
        scores = directions @ observed[0]

    bound = bound_from_scores(scores, included, delta=delta, significance=significance)
    if z > 0:  # what a device's ledger records for these rounds (specs[0] is the probe's)
        events = [s.skellam_params() if mode == "distributed" else z for s in specs[1:]]
        upper: float | None
        upper, upper_rdp = accounting.compose(events, delta)
    else:
        upper = upper_rdp = None
    v = verdict(lower=bound.epsilon, certifiable=bound.epsilon_max, upper=upper)
    return AuditResult(
        epsilon_lower_bound=bound.epsilon, epsilon_certifiable_max=bound.epsilon_max, confidence=1 - significance,
        epsilon_upper_bound=upper, epsilon_upper_bound_rdp=upper_rdp, verdict=v, consistent=v != "violation",
        delta=delta, mode=mode, canaries=canaries, included=int(included.sum()), guesses=bound.guesses,
        correct=bound.correct, hypotheses=bound.hypotheses, auroc=bound.auroc, rounds=rounds,
        clip_norm=float(clip_norm), noise_multiplier=z, canary_norm=c_norm, dim=dim, background=background,
        method="one-run (Steinke, Nasr, Jagielski 2023), guess counts fixed in advance, Bonferroni over them",
        seed_sha256=hashlib.sha256(seed_b).hexdigest(), seconds=round(time.perf_counter() - t0, 3),
    )


def normal_quantile_scores(mu: float, n: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """The reference check: n "in" scores N(mu, 1) and n "out" scores N(0, 1) as normal quantiles of evenly
    spaced midpoints (deterministic). one_run_bound of these at delta 1e-6 gives 1.13346 for mu = 1."""
    from scipy.special import ndtri

    q = np.asarray(ndtri((np.arange(n) + 0.5) / n), dtype=np.float64)
    return mu + q, q


__all__ = ["AuditResult", "Bound", "CANARY_NORM_FACTOR", "DISTRIBUTED_CANARY_SIGMAS", "distributed_canary_norm", "GUESS_FRACTIONS", "MAX_CANARY_CELLS", "POWER_FRACTION", "VERDICTS",
           "bound_from_scores", "certifiable_max", "epsilon_lower_bound", "normal_quantile_scores", "one_run_bound",
           "p_value", "powerful_noise_multiplier", "run_audit", "verdict"]
