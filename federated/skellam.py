"""The distributed Skellam mechanism (Agarwal, Kairouz & Liu 2021) on integers that SecAgg+ sums exactly.

A device's share of a distributed round:

    x      the clipped update, ||x||_2 <= C
    r      conditional randomized rounding of gamma x: each coordinate rounded down or up at random (up with
           probability its fractional part), re-drawn until ||r||_2 is within the rounding bound for
           ||gamma x||_2, which is at most D2 (the bound below at ||x||_2 = C) whenever the clip held
    y      r + Poisson(lam / t) - Poisson(lam / t) per coordinate (a Skellam share)
    share  y reduced to the centred residues modulo 2^b, [-2^(b-1), 2^(b-1))

The sum of t honest shares' noise is exactly Skellam with parameter lam per side (variance 2 lam), whatever
the t devices are: Skellam is closed under summation. lam is calibrated so that the noise's standard deviation
in the float domain is z C, as the Gaussian's: 2 lam = (gamma z C)^2.

SecAgg+ (flwr) quantizes every float share: clip to [-clipping_range, clipping_range], shift by
clipping_range, multiply by quantization_range / (2 clipping_range), stochastic rounding. With
clipping_range = 2^(b-1), quantization_range = 2^b and max_weight 1 (weight 1, so its scaling factor is
exactly 1.0), every centred residue maps to itself plus 2^(b-1): an integer, which its stochastic rounding
leaves alone. The server's modular sum (mod 2^32) then holds the sum of the residues plus n 2^(b-1), with no
wrap for n <= MAX_DEVICES (flwr also sums a weight factor of 2^b per device); dequantizing and dividing by
n gives a float from which the integer sum modulo 2^b is recovered exactly (`decode_sum`).

Privacy (Agarwal, Kairouz & Liu 2021, Theorem 3.5 / Corollary 3.6, in their parametrisation variance mu =
2 lam): for integer orders a > 1 the release of the sum is (a, eps(a))-RDP with

    eps(a) <= a D2^2 / (2 mu) + min(((2a - 1) D2^2 + 6 D1) / (4 mu^2), 3 D1 / (2 mu))
            = a D2^2 / (4 lam) + min(((2a - 1) D2^2 + 6 D1) / (16 lam^2), 3 D1 / (4 lam))

D2 and D1 are the L2 and L1 sensitivities in the integer domain: a device's rounded vector, whose L2 norm
conditional rounding bounds by D2 = min(gamma C + sqrt(d), sqrt((gamma C)^2 + d/4 + sqrt(2 ln(1/beta))
(gamma C + sqrt(d)/2))) (Kairouz, Liu & Steinke 2021, Theorem 2, with beta the allowed failure probability of
one rounding draw), and D1 <= min(D2^2, sqrt(d) D2) (an integer vector's L1 norm is at most its squared L2
norm). RDP composes by addition over rounds and converts to (eps, delta) with dp_accounting's RDP conversion.
The leading term is the Gaussian's at noise multiplier sqrt(2 lam) / D2, so this epsilon is never below the
Gaussian RDP epsilon of that multiplier, and approaches it as gamma (and lam) grow.

Overflow: the decoded sum is exact when every coordinate of the true integer sum lies in
(-2^(b-1), 2^(b-1)). Per coordinate the rounded vectors contribute at most n D2 (each |r_j| <= ||r||_2 <= D2),
and the noise of n shares, Skellam of variance n 2 lam / t, exceeds a in absolute value with probability at
most 2 exp(-a^2 / (2 (V + a/3))) (Bernstein: each Poisson side is a sum of independent steps of size 1); a
union bound over the d coordinates fixes a for OVERFLOW_PROBABILITY. `check_round` refuses a round where
n D2 + a >= 2^(b-1), and `gamma_for` picks the largest gamma that passes for the round's n.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BITS = 22  # b: shares are residues modulo 2^b; equals SecAgg+'s quantization_range
MODULUS = 2**BITS
HALF = MODULUS // 2  # SecAgg+'s clipping_range: its quantizer maps a residue x to x + HALF, exactly
SECAGG_MODULUS_RANGE = 2**32
MAX_WEIGHT = 1.0  # every device weighs 1: flwr's scaling factor is exactly 1.0
MAX_DEVICES = SECAGG_MODULUS_RANGE // MODULUS - 1  # 1023: n (2^b) < 2^32, flwr's modular sum cannot wrap
ROUNDING_BETA = math.exp(-0.5)  # per-draw failure probability allowed in the conditional rounding bound
MAX_ROUNDING_DRAWS = 1000  # a draw passes with probability >= 1 - beta: 1000 failures in a row means a bug
OVERFLOW_PROBABILITY = 1e-9  # per round: chance that some coordinate of the sum leaves (-2^(b-1), 2^(b-1))
MAX_DIM = 10_000_000  # a share is d int64 values; bounds what one round can allocate
ORDERS = tuple(range(2, 129)) + tuple(range(132, 1025, 4))  # integer orders: the bound holds for those only
NAME = "skellam"


def rounded_l2_bound(scaled_norm: float, dim: int, beta: float = ROUNDING_BETA) -> float:
    """D2: the L2 norm conditional rounding guarantees for a vector of L2 norm `scaled_norm` (gamma C) in
    `dim` dimensions (Kairouz, Liu & Steinke 2021, Theorem 2)."""
    deterministic = scaled_norm + math.sqrt(dim)  # every coordinate moves by less than 1
    squared = scaled_norm**2 + dim / 4 + math.sqrt(2 * math.log(1 / beta)) * (scaled_norm + math.sqrt(dim) / 2)
    return min(deterministic, math.sqrt(squared))


@dataclass(frozen=True, slots=True, kw_only=True)
class Params:
    """What a device analyses and the server declares for one distributed Skellam round."""

    clip_norm: float  # C
    noise_multiplier: float  # z: the sum's noise has standard deviation z C in the float domain
    gamma: float  # scale before rounding
    dim: int  # d
    noise_shares: int  # t: honest shares whose noise makes up the sum's
    bits: int = BITS
    beta: float = ROUNDING_BETA

    def __post_init__(self) -> None:
        for name in ("clip_norm", "noise_multiplier", "gamma"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
                raise ValueError(f"skellam: {name} must be a finite number > 0, got {v!r}")
        for name, top in (("dim", MAX_DIM), ("noise_shares", MAX_DEVICES)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
                raise ValueError(f"skellam: {name} must be an integer in [1, {top:,}], got {v!r}")
        if self.bits != BITS:
            raise ValueError(f"skellam: only {BITS}-bit residues (SecAgg+'s quantization range), got {self.bits!r}")
        if not 0 < self.beta < 1:
            raise ValueError(f"skellam: beta must be in (0, 1), got {self.beta!r}")

    @property
    def l2_bound(self) -> float:
        """D2, the L2 sensitivity of the integer sum (one device's rounded vector)."""
        return rounded_l2_bound(self.gamma * self.clip_norm, self.dim, self.beta)

    @property
    def l1_bound(self) -> float:
        d2 = self.l2_bound
        return min(d2 * d2, math.sqrt(self.dim) * d2)

    @property
    def lam(self) -> float:
        """The sum's Skellam parameter per Poisson side (variance 2 lam = (gamma z C)^2)."""
        return (self.gamma * self.noise_multiplier * self.clip_norm) ** 2 / 2

    @property
    def lam_share(self) -> float:
        return self.lam / self.noise_shares

    def to_record(self) -> dict[str, Any]:
        """What the ledger and the round's config carry (epsilon is recomputed from these alone)."""
        return {"mechanism": NAME, "clip_norm": float(self.clip_norm), "noise_multiplier": float(self.noise_multiplier),
                "gamma": float(self.gamma), "dim": self.dim, "noise_shares": self.noise_shares, "bits": self.bits,
                "beta": float(self.beta), "skellam_lam": self.lam, "l2_bound": self.l2_bound,
                "l1_bound": self.l1_bound}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Params:
        if rec.get("mechanism") != NAME:
            raise ValueError(f"not a {NAME} record (mechanism {rec.get('mechanism')!r})")
        try:
            return cls(clip_norm=float(rec["clip_norm"]), noise_multiplier=float(rec["noise_multiplier"]),
                       gamma=float(rec["gamma"]), dim=int(rec["dim"]), noise_shares=int(rec["noise_shares"]),
                       bits=int(rec["bits"]), beta=float(rec["beta"]))
        except KeyError as e:
            raise ValueError(f"skellam record: field {e.args[0]!r} is missing") from None


# --- accounting ---------------------------------------------------------------------------------------------

def rdp(order: int, *, l1: float, l2: float, lam: float) -> float:
    """The Skellam mechanism's RDP at integer order > 1 (the module docstring's bound, lam per side)."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 2:
        raise ValueError(f"the Skellam RDP bound holds for integer orders > 1, got {order!r}")
    mu = 2 * lam  # the paper's mu: the variance
    return order * l2**2 / (2 * mu) + min(((2 * order - 1) * l2**2 + 6 * l1) / (4 * mu**2), 3 * l1 / (2 * mu))


def rdp_to_epsilon(curve: Sequence[float], delta: float) -> float:
    """(epsilon, delta) from an RDP curve at ORDERS (dp-accounting's conversion)."""
    from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon

    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    eps, _ = compute_epsilon(list(ORDERS), list(curve), delta)
    return float(eps)


def epsilon(releases: Sequence[Params], delta: float) -> float:
    """(epsilon, delta) of the composition of these distributed Skellam releases (RDP adds up over them)."""
    curve = [sum(rdp(a, l1=p.l1_bound, l2=p.l2_bound, lam=p.lam) for p in releases) for a in ORDERS]
    return rdp_to_epsilon(curve, delta)


def gaussian_epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """The Gaussian mechanism's RDP epsilon at the same orders and conversion, for comparison."""
    return rdp_to_epsilon([rounds * a / (2 * noise_multiplier**2) for a in ORDERS], delta)


def effective_noise_multiplier(p: Params) -> float:
    """sqrt(2 lam) / D2: the Gaussian multiplier of the bound's leading term (below z: rounding inflates D2)."""
    return math.sqrt(2 * p.lam) / p.l2_bound


# --- overflow -------------------------------------------------------------------------------------------------

def noise_tail(devices: int, p: Params) -> float:
    """a such that every coordinate of the noise of `devices` shares stays within +-a, except with probability
    OVERFLOW_PROBABILITY (Bernstein's inequality, union bound over the d coordinates)."""
    variance = devices * 2 * p.lam_share
    log_term = math.log(2 * p.dim / OVERFLOW_PROBABILITY)
    return log_term / 3 + math.sqrt(log_term**2 / 9 + 2 * log_term * variance)


def overflow_margin(devices: int, p: Params) -> float:
    """2^(b-1) minus the largest coordinate the sum of `devices` shares can reach (negative: it can wrap)."""
    return HALF - 1 - (devices * p.l2_bound + noise_tail(devices, p))


def check_round(devices: int, p: Params) -> None:
    """Refuse (ValueError, one line) a round whose sum could wrap modulo 2^b or flwr's 2^32."""
    if not 2 <= devices <= MAX_DEVICES:
        raise ValueError(f"a distributed round takes 2 to {MAX_DEVICES} devices (flwr's modular sum of more could "
                         f"wrap), got {devices}")
    if p.noise_shares > devices:
        raise ValueError(f"noise shares t = {p.noise_shares} exceed the round's {devices} devices")
    if overflow_margin(devices, p) < 0:
        raise ValueError(f"a distributed round of {devices} devices at gamma {p.gamma:g} could overflow the "
                         f"{p.bits}-bit modular sum (n D2 + noise tail >= 2^{p.bits - 1}); use fewer devices or a "
                         f"smaller gamma (at most {gamma_for(devices, p):g})")


def gamma_for(devices: int, p: Params) -> float:
    """The largest gamma (to 4 significant digits, rounded down) at which `devices` shares cannot overflow."""
    def fits(g: float) -> bool:
        q = Params(clip_norm=p.clip_norm, noise_multiplier=p.noise_multiplier, gamma=g, dim=p.dim,
                   noise_shares=p.noise_shares, bits=p.bits, beta=p.beta)
        return overflow_margin(devices, q) >= 0

    lo, hi = 1e-6, float(HALF)
    if not fits(lo):
        raise ValueError(f"no gamma lets {devices} devices of dimension {p.dim} fit in {p.bits} bits")
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    digits = 3 - math.floor(math.log10(lo))
    return math.floor(lo * 10**digits) / 10**digits


# --- device ---------------------------------------------------------------------------------------------------

def _rng() -> np.random.Generator:
    """Philox keyed with 128 bits from os.urandom, fresh for every share (never a seed from the config)."""
    return np.random.Generator(np.random.Philox(key=int.from_bytes(os.urandom(16), "little")))


def conditional_round(scaled: np.ndarray, bound: float, rng: np.random.Generator) -> np.ndarray:
    """Randomized rounding of each coordinate (up with probability its fractional part), re-drawn until the
    rounded vector's L2 norm is at most `bound`."""
    floor = np.floor(scaled)
    frac = scaled - floor
    for _ in range(MAX_ROUNDING_DRAWS):
        r = floor + (rng.random(scaled.shape) < frac)
        if float(np.linalg.norm(r)) <= bound:
            return r.astype(np.int64)
    raise RuntimeError(f"conditional rounding failed {MAX_ROUNDING_DRAWS} times in a row (bound {bound:g})")


def encode(update: np.ndarray, p: Params, rng: np.random.Generator | None = None) -> np.ndarray:
    """One device's share: clip to C, scale by gamma, round conditionally, add its Skellam share, reduce to
    the centred residues modulo 2^b (int64 in [-2^(b-1), 2^(b-1)))."""
    x = np.asarray(update, dtype=np.float64).ravel()
    if x.shape != (p.dim,) or not np.all(np.isfinite(x)):
        raise ValueError(f"a share needs a finite update of dimension {p.dim}, got shape {x.shape}")
    norm = float(np.linalg.norm(x))
    if norm > p.clip_norm:
        x = x * (p.clip_norm / norm)
    return device_share(x, p, sigma=p.noise_multiplier * p.clip_norm / math.sqrt(p.noise_shares), rng=rng)


def device_share(clipped: np.ndarray, p: Params, *, sigma: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """A device's share of a distributed round from its update as clipped by the device round (dp.clip, the
    same clip as the Gaussian path): scale by gamma, round conditionally to the bound for the vector's own
    norm (at most D2 whenever the clip held: rounded_l2_bound grows with the norm), add Skellam noise of
    variance (gamma sigma)^2 (sigma: the round's device sigma, z C / sqrt(t), so each side is
    Poisson((gamma sigma)^2 / 2) = Poisson(lam / t)), reduce to the centred residues modulo 2^b.

    The clip is not repeated here: a device round that lost its clip releases an unclipped share, which the
    empirical audit (federated/audit.py) must see, rather than failing in the rounding."""
    x = np.asarray(clipped, dtype=np.float64).ravel()
    if x.shape != (p.dim,) or not np.all(np.isfinite(x)):
        raise ValueError(f"a share needs a finite update of dimension {p.dim}, got shape {x.shape}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"skellam: sigma must be a finite number >= 0, got {sigma!r}")
    scaled = p.gamma * x
    r = conditional_round(scaled, rounded_l2_bound(float(np.linalg.norm(scaled)), p.dim, p.beta),
                          rng if rng is not None else _rng())
    lam_share = (p.gamma * sigma) ** 2 / 2
    if lam_share > 0:
        noise_rng = rng if rng is not None else _rng()  # its own key: the noise does not depend on the rounding
        r = r + noise_rng.poisson(lam_share, p.dim).astype(np.int64) - noise_rng.poisson(lam_share, p.dim).astype(np.int64)
    return residues(r)


def residues(v: np.ndarray) -> np.ndarray:
    """The centred residues modulo 2^b: [-2^(b-1), 2^(b-1))."""
    return (np.asarray(v, dtype=np.int64) + HALF) % MODULUS - HALF


# --- server ---------------------------------------------------------------------------------------------------

def secagg_settings(*, sampled: int, noise_shares: int) -> dict[str, Any]:
    """SecAggPlusWorkflow's keyword arguments for a Skellam round: reconstruction threshold t, and a
    quantization that is the identity on residues (module docstring)."""
    if not 2 <= sampled <= MAX_DEVICES:
        raise ValueError(f"a distributed round takes 2 to {MAX_DEVICES} devices, got {sampled}")
    if not 2 <= noise_shares <= sampled:
        raise ValueError(f"noise shares t must be in [2, {sampled}], got {noise_shares}")
    return {"num_shares": 1.0, "reconstruction_threshold": noise_shares / sampled, "clipping_range": float(HALF),
            "quantization_range": MODULUS, "modulus_range": SECAGG_MODULUS_RANGE, "max_weight": MAX_WEIGHT}


def secagg_mean(shares: Sequence[np.ndarray]) -> np.ndarray:
    """What SecAgg+ hands the server for these shares (weight 1 each), with flwr's own functions: the client's
    scaling, quantization, weight factor and modular sum, the server's factor extraction, dequantization, offset
    and division (the pairwise masks cancel in the modular sum and are left out)."""
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        factor_combine,
        factor_extract,
        parameters_mod,
        parameters_multiply,
    )
    from flwr.common.secure_aggregation.quantization import dequantize, quantize

    q_ratio = round(1.0 / MAX_WEIGHT * MODULUS)
    dq_ratio = q_ratio / MODULUS
    total: list[np.ndarray] | None = None
    for s in shares:
        share = quantize(parameters_multiply([np.asarray(s, dtype=np.float64)], dq_ratio), float(HALF), MODULUS)
        combined = [a.astype(np.int64) for a in factor_combine(q_ratio, share)]
        total = combined if total is None else [a + b for a, b in zip(total, combined, strict=True)]
        total = parameters_mod(total, SECAGG_MODULUS_RANGE)
    if total is None:
        raise ValueError("no shares")
    q_total, recon = factor_extract(total)
    out = np.asarray(dequantize(recon, float(HALF), MODULUS)[0], dtype=np.float64)
    out += -(len(shares) - 1) * float(HALF)
    out *= MODULUS / int(q_total)
    return out


def decode_sum(mean: np.ndarray, survivors: int) -> np.ndarray:
    """The integer sum of the survivors' shares modulo 2^b (centred) from the mean SecAgg+ returned: the mean
    times n is within 2^-20 of an integer (float64 holds these sums exactly), so rounding recovers it."""
    return residues(np.rint(np.asarray(mean, dtype=np.float64) * survivors).astype(np.int64))


def to_update(total: np.ndarray, p: Params, denominator: float) -> np.ndarray:
    """The model delta: the decoded integer sum back in the float domain, divided by the round's denominator."""
    return np.asarray(total, dtype=np.float64) / (p.gamma * denominator)


def check_declared(declared: Mapping[str, Any], analysed: Params) -> None:
    """A device refuses a round whose declared Skellam parameters differ from the ones it analysed (ValueError
    naming the first field that differs)."""
    expected = analysed.to_record()
    for name in ("mechanism", "clip_norm", "noise_multiplier", "gamma", "dim", "noise_shares", "bits", "beta"):
        got, want = declared.get(name), expected[name]
        same = (got == want if isinstance(want, (str, int)) and not isinstance(want, float)
                else isinstance(got, (int, float)) and math.isclose(float(got), want, rel_tol=1e-12))
        if not same:
            raise ValueError(f"the round declares skellam {name} {got!r}, not the analysed {want!r}; refused")


__all__ = ["BITS", "HALF", "MAX_DEVICES", "MODULUS", "NAME", "OVERFLOW_PROBABILITY", "Params", "check_declared",
           "check_round", "conditional_round", "decode_sum", "device_share", "encode", "epsilon", "gamma_for", "gaussian_epsilon",
           "noise_tail", "rdp", "rdp_to_epsilon", "residues", "rounded_l2_bound", "secagg_mean", "secagg_settings", "to_update"]
