"""Membership of memory ids in a set of ids, without numpy's isin.

np.isin sorts its second argument through np.unique, which (numpy 2.x) asks np.ma.is_masked and so imports
numpy.ma on a process's first call: ~25 ms of CPU (more under load) that a cold search paid for one membership
test while loading its state. contains() gives the same answer with one sort and a binary search.
"""

from __future__ import annotations

import numpy as np


def contains(ids: np.ndarray, of: np.ndarray) -> np.ndarray:
    """A boolean array shaped like `ids`: ids[i] is in `of` (what np.isin(ids, of) returns)."""
    ids, of = np.asarray(ids), np.sort(np.asarray(of), kind="stable")
    if of.size == 0:
        return np.zeros(ids.shape, dtype=bool)
    at = np.minimum(np.searchsorted(of, ids), of.size - 1)
    return np.asarray(of[at] == ids, dtype=bool)
