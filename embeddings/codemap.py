"""Where each code of an IVF index sits in FAISS's inverted lists, by slot, so a filter passing few vectors
scores exactly their codes (embeddings/index.py, CODE_COST): O(subset), not O(index).

The map holds each slot's list (-1: none, a tombstone) and the address of its code, and a read-only numpy
view of the address range the lists occupy (FAISS owns the bytes; a view over the range is a pointer and
a shape, and only the codes' own addresses are ever read). A list's codes move when it grows (std::vector
reallocation) and entries move within a list when one is removed, so the index refreshes the lists an add
or a delete touched (refresh) before anything searches again, or drops the map (a rebuild). Built in one
pass over the lists: ~30-60 ms at 100k on a loaded machine, per list an id array and a pointer.

A code's score is the one FAISS's scan gives it: the residual's components decode affinely, per
dimension, vmin + (c + 0.5) / top * vdiff, where c is the component's integer, so q.(centroid + residual)
is one gather, one conversion and a matrix-vector product. QT_8bit: a byte a component, top 255. QT_4bit
(new indexes since the 4-bit change): two components a byte, component i in byte i // 2, the low nibble
for even i, top 15; the low and the high nibbles are each scored against their half of the weights.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable

import faiss
import numpy as np

CODES_BLOCK = 2_048  # codes gathered and scored at a time (3 MiB as float32 with 8-bit codes): 10k codes of a
# 200k index score in 3.6-4.0 ms p50 against 4.4-5.7 ms a block of 8,192 (12 MiB as float32), at either width
_TOPS = {faiss.ScalarQuantizer.QT_8bit: 255, faiss.ScalarQuantizer.QT_4bit: 15}  # the integer range each decodes


class CodeMap:
    def __init__(self, ivf: faiss.IndexIVFScalarQuantizer) -> None:
        self._ivf = ivf
        nlist, self.code_size = int(ivf.nlist), int(ivf.code_size)
        self.which = np.full(0, -1, dtype=np.int32)
        self.addr = np.zeros(0, dtype=np.int64)
        self._base = np.zeros(nlist, dtype=np.int64)
        self._size = np.zeros(nlist, dtype=np.int64)
        self._centroids = ivf.quantizer.reconstruct_n(0, nlist)
        qtype = int(ivf.sq.qtype)
        if qtype not in _TOPS:
            raise ValueError(f"codes of scalar quantizer type {qtype} are not scored by slot")
        self._top, self._nibbles = _TOPS[qtype], qtype == faiss.ScalarQuantizer.QT_4bit
        trained = faiss.vector_to_array(ivf.sq.trained)
        self._vmin, self._vdiff = trained[: ivf.d], trained[ivf.d :]
        self.refresh(range(nlist))

    def refresh(self, lists: Iterable[int], *, removed: np.ndarray | None = None) -> int:
        """Re-read the given lists after FAISS changed them (and forget the `removed` slots); how many slots
        it then places (fewer than the index holds: a list it was not told about changed; drop the map)."""
        n = int(self._ivf.ntotal)
        if n > len(self.which):  # room for an eighth more: a `remember` does not copy the map
            more = n - len(self.which) + n // 8
            self.which = np.concatenate([self.which, np.full(more, -1, dtype=np.int32)])
            self.addr = np.concatenate([self.addr, np.zeros(more, dtype=np.int64)])
        if removed is not None:
            self.which[removed], self.addr[removed] = -1, 0
        invlists = self._ivf.invlists
        for lst in lists:
            lst = int(lst)
            count = int(invlists.list_size(lst))
            self._size[lst] = count
            if count:
                slots = faiss.rev_swig_ptr(invlists.get_ids(lst), count)
                self._base[lst] = int(invlists.get_codes(lst))
                self.which[slots] = lst
                self.addr[slots] = self._base[lst] + np.arange(count, dtype=np.int64) * self.code_size
        self._view()
        return int(np.count_nonzero(self.which >= 0))

    def _view(self) -> None:
        used = self._size > 0
        size = self.code_size
        bases = self._base[used]
        self._low = int(bases.min()) if len(bases) else 0
        high = int((bases + self._size[used] * size).max()) if len(bases) else 0
        # 8 bytes at a time when every code is 8-aligned (malloc aligns the lists; a code is d bytes at 8
        # bits, d / 2 at 4): a gather 3x faster than byte by byte
        self._unit = 8 if size % 8 == 0 and not (bases % 8).any() else 1
        raw = (np.frombuffer(memoryview((ctypes.c_uint8 * (high - self._low)).from_address(self._low)), dtype=np.uint8)
               if len(bases) else np.zeros(size, dtype=np.uint8))
        raw = raw[: len(raw) // self._unit * self._unit].view(np.uint64 if self._unit == 8 else np.uint8)
        width = size // self._unit
        self._memory = np.lib.stride_tricks.as_strided(raw, shape=(len(raw) - width + 1, width),
                                                       strides=(self._unit, self._unit), writeable=False)

    def scores(self, q: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the slots of `pos` that hold a code, their scores by the codes for the unit query q)."""
        pos = pos[self.which[pos] >= 0]
        weight = (q * self._vdiff / self._top).astype(np.float32)
        shift = float(np.einsum("i,i->", q, self._vmin)) + 0.5 * float(weight.sum())
        if self._nibbles:  # byte j: component 2j in its low nibble, 2j + 1 in its high one (0 past the last)
            low, high = weight[0::2], np.zeros(self.code_size, dtype=np.float32)
            high[: len(weight[1::2])] = weight[1::2]
        # einsum, not `@`: BLAS's thread team would spin after the call and slow the next query embedding
        near = (np.einsum("ij,j->i", self._centroids, q) if self._ivf.by_residual
                else np.zeros(len(self._centroids), dtype=np.float32))
        out = np.empty(len(pos), dtype=np.float32)
        for lo in range(0, len(pos), CODES_BLOCK):
            at = pos[lo : lo + CODES_BLOCK]
            codes = self._memory[(self.addr[at] - self._low) // self._unit].view(np.uint8)
            if self._nibbles:
                dot = (np.einsum("ij,j->i", (codes & 15).astype(np.float32), low)
                       + np.einsum("ij,j->i", (codes >> 4).astype(np.float32), high))
            else:
                dot = np.einsum("ij,j->i", codes.astype(np.float32), weight)
            out[lo : lo + CODES_BLOCK] = dot + near[self.which[at]] + shift
        return pos, out

    def gather(self, slots: np.ndarray) -> np.ndarray:
        """The codes at `slots` (each in a list), (len, code_size) uint8, a copy."""
        return np.array(self._memory[(self.addr[slots] - self._low) // self._unit].view(np.uint8))
