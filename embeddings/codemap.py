"""Where each 8-bit code of an IVF index sits in FAISS's inverted lists, by slot, so a filter passing few
vectors scores exactly their codes (embeddings/index.py, CODE_COST): O(subset), not O(index).

The map holds each slot's list (-1: none, a tombstone) and the address of its code, and a read-only numpy
view of the address range the lists occupy (FAISS owns the bytes; a view over the range is a pointer and
a shape, and only the codes' own addresses are ever read). A list's codes move when it grows (std::vector
reallocation) and entries move within a list when one is removed, so the index refreshes the lists an add
or a delete touched (refresh) before anything searches again, or drops the map (a rebuild). Built in one
pass over the lists: ~30-60 ms at 100k on a loaded machine, per list an id array and a pointer.

A code's score is the one FAISS's scan gives it: the residual's 8-bit components decode affinely
(vmin + (code + 0.5) / 255 * vdiff, QT_8bit), so q.(centroid + residual) is one gather, one conversion
and one matrix-vector product.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable

import faiss
import numpy as np

CODES_BLOCK = 8_192  # codes gathered and scored at a time (3 MiB of codes, 12 MiB as float32)


class CodeMap:
    def __init__(self, ivf: faiss.IndexIVFScalarQuantizer) -> None:
        self._ivf = ivf
        nlist, self.code_size = int(ivf.nlist), int(ivf.code_size)
        self.which = np.full(0, -1, dtype=np.int32)
        self.addr = np.zeros(0, dtype=np.int64)
        self._base = np.zeros(nlist, dtype=np.int64)
        self._size = np.zeros(nlist, dtype=np.int64)
        self._centroids = ivf.quantizer.reconstruct_n(0, nlist)
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
        # 8 bytes at a time when every code is 8-aligned (malloc aligns the lists; a code is d bytes):
        # a gather 3x faster than byte by byte
        self._unit = 8 if size % 8 == 0 and not (bases % 8).any() else 1
        raw = (np.frombuffer(memoryview((ctypes.c_uint8 * (high - self._low)).from_address(self._low)), dtype=np.uint8)
               if len(bases) else np.zeros(size, dtype=np.uint8))
        raw = raw[: len(raw) // self._unit * self._unit].view(np.uint64 if self._unit == 8 else np.uint8)
        width = size // self._unit
        self._memory = np.lib.stride_tricks.as_strided(raw, shape=(len(raw) - width + 1, width),
                                                       strides=(self._unit, self._unit), writeable=False)

    def scores(self, q: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the slots of `pos` that hold a code, their 8-bit scores for the unit query q)."""
        pos = pos[self.which[pos] >= 0]
        weight = (q * self._vdiff / 255).astype(np.float32)
        shift = float(np.einsum("i,i->", q, self._vmin)) + 0.5 * float(weight.sum())
        # einsum, not `@`: BLAS's thread team would spin after the call and slow the next query embedding
        near = (np.einsum("ij,j->i", self._centroids, q) if self._ivf.by_residual
                else np.zeros(len(self._centroids), dtype=np.float32))
        out = np.empty(len(pos), dtype=np.float32)
        for lo in range(0, len(pos), CODES_BLOCK):
            at = pos[lo : lo + CODES_BLOCK]
            codes = self._memory[(self.addr[at] - self._low) // self._unit].view(np.uint8).astype(np.float32)
            out[lo : lo + CODES_BLOCK] = np.einsum("ij,j->i", codes, weight) + near[self.which[at]] + shift
        return pos, out

    def gather(self, slots: np.ndarray) -> np.ndarray:
        """The 8-bit codes at `slots` (each in a list), (len, code_size) uint8, a copy."""
        return np.array(self._memory[(self.addr[slots] - self._low) // self._unit].view(np.uint8))
