"""DP on one user's update: clip it, add noise, pick the noise. No state, no I/O, no import-time work.

    clipped = dp.clip(update, C)                      # whole-update L2 clip, float64
    noisy = dp.add_noise(clipped, z * C)              # Gaussian noise from the OS CSPRNG
    z = dp.calibrate(epsilon=1.0, delta=1e-6, rounds=30)   # analytic Gaussian, never the classical formula

The Gaussian math (the CSPRNG noise source, the exact privacy curve, analytic calibration) is in
gaussian.py; the composition of many releases in accounting.py. This module sits above both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from federated import accounting, gaussian, params

CALIBRATIONS = ("analytic", "pld")


def _vector(vec: Any) -> np.ndarray:
    arr = np.asarray(vec, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("the update has NaN or infinite entries; nothing may be released from it")
    return arr


def norm(vec: Any) -> float:
    """L2 norm in float64 that does not overflow for huge entries."""
    arr = np.asarray(vec, dtype=np.float64)
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(arr / scale))


def clip(vec: Any, C: float) -> np.ndarray:
    """The whole update scaled to L2 norm at most C (one user = one privacy unit), as a new float64 array.
    The result's norm is at most C(1 + 1e-9)."""
    c = params.positive("clip norm C", C)
    arr = _vector(vec).copy()
    n = norm(arr)
    if n > c:
        arr *= c / n
        again = norm(arr)
        if again > c:  # rounding: at most a few ulp; scale once more so the bound holds exactly
            arr *= c / again * (1 - 1e-15)
    return arr


def add_noise(vec: Any, sigma: float) -> np.ndarray:
    """vec + N(0, sigma^2 I), float64, noise from the OS CSPRNG (fresh for every call)."""
    s = params.positive("sigma", sigma)
    arr = _vector(vec)
    return arr + s * gaussian.standard_normals(arr.size).reshape(arr.shape)


def calibrate(*, epsilon: float, delta: float, rounds: int = 1, method: str = "analytic") -> float:
    """The smallest noise multiplier z (noise std = z * C) such that `rounds` Gaussian releases without
    amplification are (epsilon, delta)-DP in total.

    method "analytic": the exact curve (gaussian.calibrate), z = sigma_1(epsilon, delta) * sqrt(rounds);
    method "pld": dp-accounting's PLD accountant (what the ledger records; a hair larger).
    Never the classical sqrt(2 ln(1.25/delta)) / epsilon."""
    eps = params.positive("epsilon", epsilon)
    d = params.delta(delta)
    k = params.integer("rounds", rounds, minimum=1)
    if method == "pld":
        return accounting.noise_multiplier_for_budget(eps, d, k)
    if method != "analytic":
        raise ValueError(f"method must be one of {', '.join(CALIBRATIONS)}, got {method!r}")
    return gaussian.calibrate(epsilon=eps, delta=d, rounds=k)


__all__ = ["CALIBRATIONS", "add_noise", "calibrate", "clip", "norm"]
