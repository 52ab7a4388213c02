"""The exact vectors behind an IVF index, by slot: float16 (scores within ~1e-3 of float32), kept in sealed
record files (vault/sealed_records.py) and read a few records at a time, so the process holds the codes
and the page cache holds the vectors.

The slots are cut into segments of at most SEGMENT_RECORDS, each its own sealed file named
`<index>.vec.<random>`; the index's sealed blob lists them (name, first slot, count), so the list is
authenticated with the index and a segment from another index or an older save (another name, another
subkey) fails as tampering. Vectors added since the last save live in memory; save() seals them as new
segments, merging trailing segments the way a binary counter carries (a segment absorbs the ones after it
while it is no bigger than they are together), so a single `remember` writes a few records, not the
store, and each vector is rewritten O(log n) times in all. A deleted vector is zeroed in memory at once
and its segment is rewritten (under a new name) by the next save: a forgotten embedding is not kept, even
sealed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vault.errors import IntegrityError, VaultMissing
from vault.sealed_records import RecordReader
from vault.store import Vault

SEGMENT_RECORDS = 65_536  # slots per sealed segment at most (48 MiB at 384 float16): what a delete rewrites
SEAL_BLOCK = 8_192  # records decrypted, zeroed and sealed again at a time by save() (6 MiB at 384 float16)
ROW_CACHE_BYTES = 16 << 20  # sealed vectors kept decrypted (in memory only), least recently used out first:
# 21,845 at dim 384, so the shortlists of recent and similar searches are not read and decrypted again (a
# record costs ~12 us: a search reads ~230, about a third of its time at 100k without the cache)
_DTYPE = np.float16


@dataclass(slots=True)
class _Segment:
    start: int
    count: int
    name: str | None = None  # its sealed file; None: in memory only (not saved yet)
    reader: RecordReader | None = None
    array: np.ndarray | None = None  # float16 (count, dim) while in memory
    zeroed: list[np.ndarray] = field(default_factory=list)  # local positions to zero at the next save


class _Decrypted:
    """The ROW_CACHE_BYTES budget of sealed vectors as stored (float16), by slot. Each row carries the tick of
    its last use; when the cache is full, the least recently used eighth goes at once (so a lookup is a dict
    probe per slot and one vectorised stamp, not a reordering). A slot's vector leaves it when the slot is
    zeroed, so a forgotten embedding is not served from it."""

    def __init__(self, dim: int, capacity_bytes: int) -> None:
        self.capacity = max(0, capacity_bytes // (dim * np.dtype(_DTYPE).itemsize))
        self._dim = dim
        self._rows = np.empty((0, dim), dtype=_DTYPE)  # allocated on first use; pages resident as filled
        self._slot_at = np.empty(0, dtype=np.int64)  # row -> the slot it holds (-1: free)
        self._used = np.empty(0, dtype=np.int64)  # row -> tick of its last use
        self._row_of: dict[int, int] = {}  # slot -> row
        self._free: list[int] = []
        self._tick = 0
        self._lock = threading.Lock()

    def take(self, slots: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fill `out` (float32, len(slots) rows) where the cache holds the slot; the mask of those filled."""
        if not self._row_of:
            return np.zeros(len(slots), dtype=bool)
        with self._lock:
            get = self._row_of.get
            rows = np.fromiter((get(s, -1) for s in slots.tolist()), dtype=np.int64, count=len(slots))
            found = rows >= 0
            if found.any():
                self._tick += 1
                self._used[rows[found]] = self._tick
                out[found] = self._rows[rows[found]]
        return found

    def put(self, slots: np.ndarray, rows: np.ndarray) -> None:
        if not self.capacity or not len(slots):
            return
        slots, rows = slots[-self.capacity :], rows[-self.capacity :]
        with self._lock:
            if not len(self._rows):
                self._rows = np.empty((self.capacity, self._dim), dtype=_DTYPE)
                self._slot_at = np.full(self.capacity, -1, dtype=np.int64)
                self._used = np.zeros(self.capacity, dtype=np.int64)
                self._free = list(range(self.capacity - 1, -1, -1))
            self._tick += 1
            at = []
            for i, slot in enumerate(slots.tolist()):
                r = self._row_of.get(slot)
                if r is None:
                    if not self._free:  # room for the rest of this call at least (the rows it placed are newest)
                        self._evict(max(len(slots) - i, self.capacity // 8))
                    r = self._free.pop()
                    self._row_of[slot], self._slot_at[r] = r, slot
                self._used[r] = self._tick  # (now: an eviction later in this call keeps it)
                at.append(r)
            self._rows[at] = rows

    def _evict(self, n: int) -> None:
        held = np.flatnonzero(self._slot_at >= 0)
        old = held[np.argsort(self._used[held], kind="stable")[: min(n, len(held))]]
        for slot in self._slot_at[old].tolist():
            del self._row_of[slot]
        self._slot_at[old] = -1
        self._free.extend(old[::-1].tolist())

    def drop(self, slots: np.ndarray) -> None:
        with self._lock:
            for slot in slots.tolist():
                r = self._row_of.pop(slot, None)
                if r is not None:
                    self._slot_at[r] = -1
                    self._free.append(r)

    def __contains__(self, slot: int) -> bool:
        return slot in self._row_of


class VectorStore:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._segments: list[_Segment] = []
        self._decrypted = _Decrypted(dim, ROW_CACHE_BYTES)

    def __len__(self) -> int:
        return self._segments[-1].start + self._segments[-1].count if self._segments else 0

    @property
    def record_size(self) -> int:
        return self.dim * np.dtype(_DTYPE).itemsize

    # ---- in memory -------------------------------------------------------------------------------------
    def append(self, vectors: np.ndarray) -> None:
        rows = np.asarray(vectors, dtype=_DTYPE).reshape(-1, self.dim)
        last = self._segments[-1] if self._segments else None
        if last is not None and last.name is None and last.array is not None:
            last.array = np.concatenate([last.array, rows])
            last.count = len(last.array)
        else:
            self._segments.append(_Segment(start=len(self), count=len(rows), array=rows))

    def _locate(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = np.array([s.start for s in self._segments], dtype=np.int64)
        seg = np.searchsorted(starts, slots, side="right") - 1
        return seg, slots - starts[seg]

    def rows(self, slots: np.ndarray) -> np.ndarray:
        """The vectors at `slots` as float32 (len, dim), in that order."""
        slots = np.asarray(slots, dtype=np.int64)
        out = np.empty((len(slots), self.dim), dtype=np.float32)
        if not len(slots):
            return out
        missing = np.flatnonzero(~self._decrypted.take(slots, out))
        if len(missing):
            out[missing] = self._fetch(slots[missing])
        return out

    def _fetch(self, slots: np.ndarray) -> np.ndarray:
        """The vectors at `slots` read from their segments (float16), the sealed ones kept in the cache."""
        out = np.empty((len(slots), self.dim), dtype=_DTYPE)
        seg, local = self._locate(slots)
        for s in np.unique(seg):
            at = np.flatnonzero(seg == s)
            segment = self._segments[int(s)]
            out[at] = self._read(segment, local[at])
            if segment.array is None:
                self._decrypted.put(slots[at], out[at])
        return out

    def _read(self, s: _Segment, local: np.ndarray) -> np.ndarray:
        if s.array is not None:
            return s.array[local]
        assert s.reader is not None
        got = s.reader.read(local).view(_DTYPE)
        for z in s.zeroed:
            got[np.isin(local, z)] = 0
        return got

    def rows_all(self, slots: np.ndarray) -> np.ndarray:
        """Like rows() for many slots, as stored (float16: half the memory of a rebuild at 1M): whole
        segments are decrypted in order."""
        slots = np.asarray(slots, dtype=np.int64)
        out = np.empty((len(slots), self.dim), dtype=_DTYPE)
        seg, local = self._locate(slots) if len(slots) else (slots, slots)
        for s in np.unique(seg):
            at = np.flatnonzero(seg == s)
            out[at] = self._whole(self._segments[int(s)])[local[at]]
        return out

    def _whole(self, s: _Segment) -> np.ndarray:
        if s.array is not None:
            return s.array
        assert s.reader is not None
        got = s.reader.read_all().view(_DTYPE)
        for z in s.zeroed:
            got[z] = 0
        return got

    def zero(self, slots: np.ndarray) -> None:
        """Destroy the vectors at `slots`: at once in memory, at the next save() in sealed segments."""
        slots = np.asarray(slots, dtype=np.int64)
        if not len(slots):
            return
        self._decrypted.drop(slots)
        seg, local = self._locate(slots)
        for s in np.unique(seg):
            segment = self._segments[int(s)]
            at = local[seg == s]
            if segment.array is not None:
                segment.array[at] = 0
            else:
                segment.zeroed.append(at)

    # ---- sealed ----------------------------------------------------------------------------------------
    def save(self, vault: Vault, prefix: str) -> list[list[Any]]:
        """Seal what changed (new vectors, segments with deletions) as new segment files; the manifest to
        keep in the index's sealed blob. The files replaced stay until committed(), once that blob is in place."""
        kept: list[_Segment] = []
        pending: list[_Segment] = []
        for s in self._segments:
            if s.name is not None and not s.zeroed:
                if pending:
                    kept += self._seal(vault, prefix, pending)
                    pending = []
                kept.append(s)
            else:
                pending.append(s)
        # a binary counter's carry: trailing sealed segments no bigger than what follows them are merged in
        new = sum(s.count for s in pending)
        while pending and kept and kept[-1].count <= new and kept[-1].count + new <= SEGMENT_RECORDS:
            s = kept.pop()
            pending.insert(0, s)
            new += s.count
        if pending:
            kept += self._seal(vault, prefix, pending)
        self._segments = kept
        return [[s.name, s.start, s.count] for s in kept]

    def _seal(self, vault: Vault, prefix: str, segments: list[_Segment]) -> list[_Segment]:
        """`segments` (consecutive) sealed again as new files of at most SEGMENT_RECORDS, their zeroed slots
        zero, streamed SEAL_BLOCK records at a time: a forget at 1M rewrites most of the store's 768 MB, and
        holding it whole (as this did) took +1.3 GB."""
        start, total = segments[0].start, sum(s.count for s in segments)
        out: list[_Segment] = []
        pieces = [(lo, min(SEGMENT_RECORDS, total - lo)) for lo in range(0, max(1, total), SEGMENT_RECORDS)]
        blocks = (block for s in segments for block in self._blocks(s))
        pending = np.empty((0, self.dim), dtype=_DTYPE)
        for lo, count in pieces:
            name = f"{prefix}.vec.{os.urandom(8).hex()}"
            writer = vault.record_writer(name, record_size=self.record_size, count=count)
            try:
                left = count
                while left:
                    if not len(pending):
                        pending = next(blocks)
                    take, pending = pending[:left], pending[left:]
                    writer.write(np.ascontiguousarray(take))
                    left -= len(take)
            except BaseException:
                writer.abort()
                raise
            writer.commit()
            out.append(_Segment(start=start + lo, count=count, name=name, reader=vault.open_records(name)))
        return out

    def _blocks(self, s: _Segment) -> Iterator[np.ndarray]:
        """Segment `s`'s vectors in order (float16), SEAL_BLOCK at a time, its zeroed slots zero (_read)."""
        for lo in range(0, s.count, SEAL_BLOCK):
            yield self._read(s, np.arange(lo, min(s.count, lo + SEAL_BLOCK)))

    def committed(self, vault: Vault, prefix: str) -> None:
        """The index blob naming this store's segments is in place: delete every other segment of `prefix`
        (the replaced ones, and any a crash left behind)."""
        live = {s.name for s in self._segments}
        for name in vault.blob_names(f"{prefix}.vec."):
            if name not in live:
                vault.delete_blob(name)

    @classmethod
    def open(cls, dim: int, manifest: list[list[Any]], opener: Callable[[str], RecordReader], *,
             broken: IntegrityError) -> VectorStore:
        store = cls(dim)
        at = 0
        for name, start, count in manifest:
            try:
                reader = opener(name)
            except VaultMissing:
                raise broken from None
            if start != at or reader.count != count or reader.record_size != store.record_size:
                raise broken
            store._segments.append(_Segment(start=start, count=count, name=name, reader=reader))
            at += count
        return store

