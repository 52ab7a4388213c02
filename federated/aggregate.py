"""The reference server's aggregation, pure: what one round does to the devices' updates.

Used by federated/server_app.py (local and central rounds; the SecAgg+ settings of distributed rounds) and
by federated/audit.py, so the empirical audit exercises exactly the arithmetic the server runs:

    local        mean = sum(received updates) / received        (each update already carries its noise)
    central      mean = (sum(received updates) + N(0, (zC)^2)) / sampled
                 (fixed denominator decided before any reply: the number of devices asked, or q N under
                 Poisson sampling, which server_app passes as `sampled`)
    distributed  the Skellam mechanism (federated/skellam.py) under Flower's SecAgg+: each device sends its
                 share as residues modulo 2^22 (integers); SecAgg+'s quantizer is the identity on them
                 (skellam.secagg_settings), its modular sum is exact, and the server decodes the integer
                 sum modulo 2^22 (skellam.decode_sum) and divides it by gamma times the fixed denominator
                 (the number of devices asked, decided before any reply). Discarded (None) with fewer than
                 t survivors (the sum would carry less than the analysed Skellam noise). A round of n
                 devices whose sum could wrap (n D2 plus the noise tail at or above 2^21:
                 skellam.check_round) is refused with a ValueError before anything is sent.
                 skellam.secagg_mean runs SecAgg+'s arithmetic with Flower's own functions; the masks cancel
                 in the modular sum and are left out.

SecAgg+ settings (skellam.secagg_settings): every device shares with every other (num_shares 1.0), and
the reconstruction threshold is t itself, so the server cannot unmask a sum of fewer than t shares; at
most skellam.MAX_DEVICES = 1,023 devices per round (n 2^22 < 2^32: flwr's modular sum cannot wrap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from federated import skellam

MODES = ("local", "central", "distributed")
DEFAULT_NOISE_SHARES_FRACTION = 0.75
SECAGG_MAX_DEVICES = skellam.MAX_DEVICES  # 1023: n 2^22 < 2^32, flwr's modular sum cannot wrap


def mean_update(updates: Sequence[np.ndarray], *, mode: str, sampled: float, clip_norm: float,
                noise_multiplier: float, noise_shares: int | None = None,
                gamma: float | None = None) -> np.ndarray | None:
    """The round's model delta from the updates received (None when nothing was received, or, in
    distributed mode, fewer than t = `noise_shares` shares; `gamma` is the round's Skellam scale).

    `noise_multiplier` 0 means no server noise; only the audit's noise-off control uses it (a RoundSpec
    requires z > 0)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not updates:
        return None
    if mode == "distributed":
        n = int(sampled)
        t = noise_shares if noise_shares is not None else noise_shares_for(n, DEFAULT_NOISE_SHARES_FRACTION)
        p = skellam_params(dim=int(np.asarray(updates[0]).size), clip_norm=clip_norm,
                           noise_multiplier=noise_multiplier, gamma=gamma, noise_shares=t)
        skellam.check_round(n, p)
        if len(updates) < t:
            return None  # short of the analysed noise: the server discards the round
        return decode(skellam.secagg_mean(updates), survivors=len(updates), p=p, denominator=n)
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



def skellam_params(*, dim: int, clip_norm: float, noise_multiplier: float, gamma: float | None,
                   noise_shares: int) -> skellam.Params:
    """A distributed round's Skellam parameters as the server declares them."""
    if gamma is None:
        raise ValueError("a distributed round needs its skellam gamma")
    return skellam.Params(clip_norm=float(clip_norm), noise_multiplier=float(noise_multiplier), gamma=float(gamma),
                          dim=dim, noise_shares=int(noise_shares))


def pick_gamma(*, sampled: int, dim: int, clip_norm: float, noise_multiplier: float, noise_shares: int) -> float:
    """The largest gamma at which `sampled` shares cannot overflow (skellam.gamma_for): the least rounding
    error, so the accountant's bound is closest to the Gaussian's at the same z."""
    probe = skellam_params(dim=dim, clip_norm=clip_norm, noise_multiplier=noise_multiplier, gamma=1.0,
                           noise_shares=noise_shares)
    return skellam.gamma_for(sampled, probe)


def decode(mean: np.ndarray, *, survivors: int, p: skellam.Params, denominator: float) -> np.ndarray:
    """The model delta from what SecAgg+ returned (the mean of `survivors` residue shares): the exact
    integer sum modulo 2^22, divided by gamma times the fixed `denominator`."""
    return skellam.to_update(skellam.decode_sum(mean, survivors), p, denominator)


def secagg_settings(*, sampled: int, noise_shares: int) -> dict[str, Any]:
    """Keyword arguments of flwr's SecAggPlusWorkflow for a distributed round (skellam.secagg_settings):
    reconstruction threshold t, a quantization that is the identity on residues."""
    return skellam.secagg_settings(sampled=sampled, noise_shares=noise_shares)


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


__all__ = ["DEFAULT_NOISE_SHARES_FRACTION", "MODES", "SECAGG_MAX_DEVICES", "decode", "mean_update",
           "noise_shares_for", "pick_gamma", "reconstruction_threshold", "secagg_mean", "secagg_settings",
           "skellam_params"]
