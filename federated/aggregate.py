"""The reference server's aggregation, pure: what one round does to the devices' updates.

Used by federated/server_app.py (local and central rounds) and by federated/audit.py, so the empirical
audit exercises exactly the arithmetic the server runs:

    local        mean = sum(received updates) / received        (each update already carries its noise)
    central      mean = (sum(received updates) + N(0, (zC)^2)) / sampled
                 (fixed denominator: the number of devices asked, decided before any reply)
    distributed  mean = sum(received shares) / received           (what SecAgg+ with uniform weights returns;
                 the shares carry the noise, z C / sqrt(t) each)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MODES = ("local", "central", "distributed")


def mean_update(updates: Sequence[np.ndarray], *, mode: str, sampled: int, clip_norm: float,
                noise_multiplier: float) -> np.ndarray | None:
    """The round's model delta from the updates received (None when nothing was received).

    `noise_multiplier` 0 means no server noise; only the audit's noise-off control uses it (a RoundSpec
    requires z > 0)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not updates:
        return None
    total = np.sum(updates, axis=0)
    if mode == "central":
        from federated import dp

        if noise_multiplier > 0:
            total = dp.add_noise(total, noise_multiplier * clip_norm)
        return total / sampled  # fixed denominator: decided before any reply
    return total / len(updates)


def noise_shares(sampled: int, fraction: float) -> int:
    """Distributed mode: t, the number of honest shares the sum needs (at least 2)."""
    return max(2, math.ceil(fraction * sampled))


__all__ = ["MODES", "mean_update", "noise_shares"]
