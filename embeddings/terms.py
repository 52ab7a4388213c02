"""BM25's term dictionary (term -> id) as a few numpy arrays, not a Python object per term.

At 1M memories the bench's texts hold about a million distinct terms: as a dict of str that was 108 MB
resident, as these arrays ~28 MB, restored from the catalog snapshot without a per-term Python object.

    _buf, _off   every frozen term's UTF-8 bytes, concatenated in id order (term i is _buf[_off[i]:_off[i+1]])
    _hash, _hid  the frozen terms' 64-bit BLAKE2b hashes, sorted, and the id of each

A lookup hashes the term, binary-searches the hash and compares the bytes, so two terms whose hashes collide
cost one more comparison, never a wrong id. Terms added since the last freeze sit in a small dict (ids numbered
on from the frozen ones) that is folded into the arrays once it holds more than FREEZE_FRACTION of them (and at
least FREEZE_MIN), so a bulk build freezes about once and a note's few new terms cost a dict insert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

FREEZE_MIN = 4_096  # new terms kept in the dict before they are folded into the arrays ...
FREEZE_FRACTION = 0.05  # ... or this share of the frozen terms, whichever is more


def term_hash(term: str) -> int:
    """The 64-bit hash the dictionary sorts terms by (stable across processes: it is stored in snapshots)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")


class Terms:
    """Term -> id, ids dense from 0 in order of first addition."""

    __slots__ = ("_buf", "_hash", "_hid", "_new", "_off")

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=np.uint8)
        self._off = np.zeros(1, dtype=np.int64)
        self._hash = np.empty(0, dtype=np.uint64)
        self._hid = np.empty(0, dtype=np.int32)
        self._new: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._off) - 1 + len(self._new)

    @property
    def nbytes(self) -> int:
        return self._buf.nbytes + self._off.nbytes + self._hash.nbytes + self._hid.nbytes

    def get(self, term: str) -> int | None:
        """The term's id, None when it is not in the dictionary."""
        tid = self._new.get(term)
        if tid is not None or not len(self._hash):
            return tid
        key = np.uint64(term_hash(term))
        return self._frozen(term, key, int(np.searchsorted(self._hash, key)))

    def _frozen(self, term: str, key: np.uint64, i: int) -> int | None:
        raw = term.encode()
        while i < len(self._hash) and self._hash[i] == key:
            tid = int(self._hid[i])
            if self._buf[self._off[tid] : self._off[tid + 1]].tobytes() == raw:
                return tid
            i += 1
        return None

    def add(self, terms: Sequence[str]) -> np.ndarray:
        """The id of each term; terms not yet known get the next ids (in order of first appearance)."""
        out = np.empty(len(terms), dtype=np.int64)
        frozen = len(self._hash)
        if frozen:
            keys = np.fromiter((term_hash(t) for t in terms), dtype=np.uint64, count=len(terms))
            at = np.searchsorted(self._hash, keys).tolist()
        new = self._new
        for i, t in enumerate(terms):
            tid = new.get(t)
            if tid is None and frozen:
                tid = self._frozen(t, keys[i], at[i])
            if tid is None:
                tid = new[t] = len(self._off) - 1 + len(new)
            out[i] = tid
        if len(new) > max(FREEZE_MIN, FREEZE_FRACTION * (len(self._off) - 1)):
            self.freeze()
        return out

    def freeze(self) -> None:
        """Fold the dict of new terms into the arrays (O(terms) with one sort of the hashes)."""
        if not self._new:
            return
        names = list(self._new)  # insertion order is id order: ids were numbered on as they came
        first = len(self._off) - 1
        raw = [t.encode() for t in names]
        lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
        self._buf = np.concatenate([self._buf, np.frombuffer(b"".join(raw), dtype=np.uint8)])
        self._off = np.concatenate([self._off, self._off[-1] + np.cumsum(lengths)])
        keys = np.concatenate([self._hash, np.fromiter(map(term_hash, names), dtype=np.uint64, count=len(names))])
        ids = np.concatenate([self._hid, np.arange(first, first + len(names), dtype=np.int32)])
        order = np.argsort(keys, kind="stable")
        self._hash, self._hid = keys[order], ids[order]
        self._new = {}

    def term(self, tid: int) -> str:
        """The term of an id (IndexError when there is none)."""
        first = len(self._off) - 1
        if 0 <= tid < first:
            return self._buf[self._off[tid] : self._off[tid + 1]].tobytes().decode()
        for t, i in self._new.items():
            if i == tid:
                return t
        raise IndexError(tid)

    def subset(self, used: np.ndarray) -> Terms:
        """The terms whose `used` flag (a bool per id) is set, renumbered in id order. O(bytes), no Python per term."""
        self.freeze()
        keep = np.flatnonzero(used[: len(self)])
        starts, lengths = self._off[keep], np.diff(self._off)[keep]
        out = Terms()
        out._off = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out._off[1:])
        total = int(out._off[-1])
        out._buf = self._buf[np.repeat(starts - out._off[:-1], lengths) + np.arange(total, dtype=np.int64)]
        by_id = np.empty(len(self._hash), dtype=np.uint64)
        by_id[self._hid] = self._hash
        keys = by_id[keep]
        order = np.argsort(keys, kind="stable")
        out._hash, out._hid = keys[order], order.astype(np.int32)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The dictionary as arrays (for a snapshot; from_arrays() reads them back without copying)."""
        self.freeze()
        return {"buf": self._buf, "off": self._off, "hash": self._hash, "hid": self._hid}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> Terms:
        """The dictionary of arrays(); ValueError when they do not fit together."""
        out = cls()
        buf, off, keys, hid = a["buf"], a["off"], a["hash"], a["hid"]
        n = len(off) - 1
        if (buf.dtype != np.uint8 or off.dtype != np.int64 or keys.dtype != np.uint64 or hid.dtype != np.int32
                or n < 0 or len(keys) != n or len(hid) != n or (n and (off[0] != 0 or off[-1] != len(buf)))):
            raise ValueError("the term dictionary's arrays do not fit together")
        out._buf, out._off, out._hash, out._hid = buf, off, keys, hid
        return out
