"""FAISS's serialisation of a sealed vector index, read a chunk at a time (embeddings/index.py): the read
callback over authenticated plaintext chunks, and the rows of an index sealed as HNSW before IVF."""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np


class Unsealer:
    """FAISS's read callback over authenticated plaintext chunks; remembers the first error (an
    IntegrityError from the unsealer) so it is raised as itself, not as FAISS's RuntimeError."""

    def __init__(self, chunks: Iterator[memoryview]) -> None:
        self._chunks, self._view, self._at = chunks, memoryview(b""), 0
        self.error: BaseException | None = None

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self._at >= len(self._view):
                try:
                    self._view, self._at = next(self._chunks), 0
                except StopIteration:
                    break
                except BaseException as e:  # noqa: BLE001 -- kept and re-raised by the caller
                    self.error = e
                    break
            take = min(n - len(out), len(self._view) - self._at)
            out += self._view[self._at : self._at + take]
            self._at += take
        return bytes(out)

    def rest(self) -> int:
        """Read every remaining chunk (each is authenticated, the last one's flag included); bytes left over."""
        left = len(self._view) - self._at
        for chunk in self._chunks:
            left += len(chunk)
        return left


def legacy_rows(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """The live (ids, float32 vectors) of an index sealed as HNSW before (float32 or float16 storage)."""
    store = faiss.downcast_index(faiss.downcast_index(index.index).storage)
    n, d = int(store.ntotal), int(index.d)
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    if isinstance(store, faiss.IndexScalarQuantizer):
        raw = faiss.rev_swig_ptr(store.codes.data(), n * int(store.code_size))
        vecs = raw.view(np.float16).reshape(n, d).astype(np.float32)
    else:
        vecs = faiss.rev_swig_ptr(store.get_xb(), n * d).reshape(n, d).copy()
    live = ids >= 0
    return ids[live], vecs[live]
