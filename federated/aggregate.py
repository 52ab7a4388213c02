"""The reference server's aggregation, pure: what one round does to the devices' updates.

Used by federated/server_app.py (local and central rounds; the SecAgg+ settings of distributed rounds) and
by federated/audit.py, so the empirical audit exercises exactly the arithmetic the server runs:

    local        mean = sum(received updates) / received        (each update already carries its noise)
    central      mean = (sum(received updates) + N(0, (zC)^2)) / sampled
                 (fixed denominator decided before any reply: the number of devices asked, or q N under
                 Poisson sampling, which server_app passes as `sampled`)
    distributed  what Flower's SecAgg+ returns with uniform weights: each share scaled by 1/max_weight,
                 clipped per coordinate to +-clipping_range, stochastically rounded to an integer in
                 [0, QUANTIZATION_RANGE], summed modulo MODULUS_RANGE, dequantized, divided by the
                 survivors; discarded (None) with fewer than t survivors (the shares carry z C / sqrt(t)
                 each, so a sum of fewer than t of them is short of (zC)^2). secagg_mean runs that
                 arithmetic with Flower's own functions; the masks cancel in the modular sum and are left out.

SecAgg+ settings (secagg_settings): every device shares with every other (num_shares 1.0), and the
reconstruction threshold is t itself, so the server cannot unmask a sum of fewer than t shares. Overflow:
each quantized share lies in [0, QUANTIZATION_RANGE], so the modular sum is exact for at most
SECAGG_MAX_DEVICES devices per round (n * 2^22 < 2^32); a larger round is refused. A coordinate of a
share beyond clipping_range = C (1 + 8 z / sqrt(t)) (probability below 1e-15 per coordinate) is clipped
to it, and rounding adds at most one quantization step, 2 clipping_range / 2^22, per coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

MODES = ("local", "central", "distributed")
DEFAULT_NOISE_SHARES_FRACTION = 0.75
SECAGG_QUANTIZATION_RANGE = 2**22
SECAGG_MODULUS_RANGE = 2**32
SECAGG_MAX_WEIGHT = 2.0  # every device weighs 1: the share is scaled by 1/2 before quantization
SECAGG_MAX_DEVICES = SECAGG_MODULUS_RANGE // SECAGG_QUANTIZATION_RANGE - 1  # 1023: the modular sum cannot wrap
SECAGG_TAIL_SIGMAS = 8.0  # clipping_range = C (1 + 8 z / sqrt(t))


def mean_update(updates: Sequence[np.ndarray], *, mode: str, sampled: float, clip_norm: float,
                noise_multiplier: float, noise_shares: int | None = None) -> np.ndarray | None:
    """The round's model delta from the updates received (None when nothing was received, or, in
    distributed mode, fewer than t = `noise_shares` shares).

    `noise_multiplier` 0 means no server noise; only the audit's noise-off control uses it (a RoundSpec
    requires z > 0)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not updates:
        return None
    if mode == "distributed":
        n = int(sampled)
        t = noise_shares if noise_shares is not None else noise_shares_for(n, DEFAULT_NOISE_SHARES_FRACTION)
        if len(updates) < t:
            return None  # short of (zC)^2: the server discards the round
        settings = secagg_settings(sampled=n, noise_shares=t, clip_norm=clip_norm,
                                   noise_multiplier=noise_multiplier)
        return secagg_mean(updates, settings)
    total = np.sum(updates, axis=0)
    if mode == "central":
        from federated import dp

        if noise_multiplier > 0:
            total = dp.add_noise(total, noise_multiplier * clip_norm)
        return total / sampled  # fixed denominator: decided before any reply
    return total / len(updates)


def noise_shares_for(sampled: int, fraction: float) -> int:
    """Distributed mode: t, the number of honest shares the sum needs (at least 2)."""
    return max(2, math.ceil(fraction * sampled))



def secagg_settings(*, sampled: int, noise_shares: int, clip_norm: float, noise_multiplier: float) -> dict[str, Any]:
    """Keyword arguments of flwr's SecAggPlusWorkflow for a distributed round of `sampled` devices whose
    sum needs t = `noise_shares` honest shares: the reconstruction threshold is t (as a fraction of the
    share count, which is every sampled device), never less."""
    if not 2 <= sampled <= SECAGG_MAX_DEVICES:
        raise ValueError(f"a distributed round takes 2 to {SECAGG_MAX_DEVICES} devices (the modular sum of "
                         f"more could wrap), got {sampled}")
    if not 2 <= noise_shares <= sampled:
        raise ValueError(f"noise shares t must be in [2, {sampled}], got {noise_shares}")
    return {
        "num_shares": 1.0,
        "reconstruction_threshold": noise_shares / sampled,
        "clipping_range": clip_norm * (1.0 + SECAGG_TAIL_SIGMAS * noise_multiplier / math.sqrt(noise_shares)),
        "quantization_range": SECAGG_QUANTIZATION_RANGE,
        "modulus_range": SECAGG_MODULUS_RANGE,
        "max_weight": SECAGG_MAX_WEIGHT,
    }


def reconstruction_threshold(settings: dict[str, Any], sampled: int) -> int:
    """The number of survivors SecAggPlusWorkflow requires with these settings (its own rounding)."""
    frac = settings["reconstruction_threshold"]
    return max(round(frac * sampled), 2) if isinstance(frac, float) else int(frac)


def secagg_mean(updates: Sequence[np.ndarray], settings: dict[str, Any]) -> np.ndarray:
    """The mean SecAgg+ hands the server for these shares (weights 1), computed with Flower's own
    quantization and modular arithmetic (client: scale by 1/max_weight, quantize, prepend the weight
    factor; server: sum mod M, extract the factor, dequantize, remove the offset, divide by the factor)."""
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        factor_combine,
        factor_extract,
        parameters_mod,
        parameters_multiply,
    )
    from flwr.common.secure_aggregation.quantization import dequantize, quantize

    q, mod = int(settings["quantization_range"]), int(settings["modulus_range"])
    cr, max_weight = float(settings["clipping_range"]), float(settings["max_weight"])
    q_ratio = round(1.0 / max_weight * q)
    dq_ratio = q_ratio / q
    total: list[np.ndarray] | None = None
    for u in updates:
        share = quantize(parameters_multiply([np.asarray(u, dtype=np.float64)], dq_ratio), cr, q)
        share = [a.astype(np.int64) for a in factor_combine(q_ratio, share)]
        total = share if total is None else [a + b for a, b in zip(total, share, strict=True)]
        total = parameters_mod(total, mod)
    assert total is not None
    q_total, recon = factor_extract(total)
    out = np.asarray(dequantize(recon, cr, q)[0], dtype=np.float64)
    out += -(len(updates) - 1) * cr
    out *= q / int(q_total)
    return out


__all__ = ["DEFAULT_NOISE_SHARES_FRACTION", "MODES", "SECAGG_MAX_DEVICES", "mean_update",
           "noise_shares_for", "reconstruction_threshold", "secagg_mean", "secagg_settings"]
