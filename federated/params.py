"""Validation of the numbers the privacy code takes: one function per kind, one wording of each error.

    z = params.positive("noise_multiplier", z)        # a finite number > 0, as a float
    d = params.delta(d)                               # in the open interval (0, 1)
    q = params.open_interval("sampling_rate", q, 0.0, 1.0)
    k = params.integer("rounds", k, minimum=1)        # an int (not a bool, not 3.0) >= 1

Intervals are open unless the name says otherwise; NaN, inf and bools are refused everywhere (a bool is an
int to Python, never a privacy parameter). numpy scalars count as numbers. Each function returns the value
as the type the caller computes with. A leaf: imports nothing of the project.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_REAL = (int, float, np.integer, np.floating)


def number(name: str, v: Any) -> float:
    """v as a float; a finite real number."""
    if isinstance(v, bool) or not isinstance(v, _REAL) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def positive(name: str, v: Any) -> float:
    """v as a float in (0, inf)."""
    x = number(name, v)
    if not x > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return x


def non_negative(name: str, v: Any) -> float:
    """v as a float in [0, inf)."""
    x = number(name, v)
    if x < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return x


def open_interval(name: str, v: Any, lo: float, hi: float) -> float:
    """v as a float in the open interval (lo, hi)."""
    x = number(name, v)
    if not lo < x < hi:
        raise ValueError(f"{name} must be in ({lo:g}, {hi:g}), got {v!r}")
    return x


def delta(v: Any, name: str = "delta") -> float:
    """A DP delta: in (0, 1)."""
    return open_interval(name, v, 0.0, 1.0)


def integer(name: str, v: Any, *, minimum: int) -> int:
    """v as an int >= minimum; v must be an integer type already (3.0 is refused)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def count(name: str, v: Any) -> int:
    """A count > 0 that may arrive as an integral float (Flower's config records carry numbers as
    floats): 50 and 50.0 are 50, 50.5 and 0 are refused."""
    real = not isinstance(v, bool) and isinstance(v, _REAL) and math.isfinite(v)
    if not real or not v > 0 or not float(v).is_integer():
        raise ValueError(f"{name} must be a finite integer > 0, got {v!r}")
    return int(v)


__all__ = ["count", "delta", "integer", "non_negative", "number", "open_interval", "positive"]
