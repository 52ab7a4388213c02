"""The vector index: FAISS IndexIDMap2 over IndexFlatIP (exact) below HNSW_THRESHOLD vectors, HNSW above.

Above the threshold the vectors are stored as float16 inside the HNSW index (IndexHNSWSQ, QT_fp16): half
the memory and half the sealed blob of float32, and every score (graph walk, exact scoring of a subset,
the cosines fusion asks for) computed from them is within ~1e-3 of the float32 one, so recall@10 against an
exact float32 scan is unchanged (bench/bench_index.py measures it). Indexes sealed before stay HNSW over
float32 until their next rebuild.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are memory ids. Deletes:
  - Flat: remove_ids, at once (the vector is gone from memory and from the next sealed blob);
  - HNSW (which cannot remove nodes): a tombstone. The node's stored vector is overwritten with zeros
    (so a forgotten memory's embedding is not kept, even sealed) and its id becomes -1, excluded from
    every search; the index is rebuilt from the live vectors when tombstones pass TOMBSTONE_REBUILD.
Searches over a subset (filters applied before ranking): on a Flat index, and on HNSW when the subset is
small enough that scoring it beats a filtered graph walk, the subset's stored vectors are gathered a block
at a time and scored exactly; otherwise HNSW searches with a bitmap selector over slot positions, falling
back to the exact scoring when it returns fewer than k of the subset.

At rest the index is a sealed blob (AES-256-GCM in 1 MiB chunks, each bound to the blob's name, its
position and whether it is the last): never faiss.write_index to a path, never mmap. The blob starts with a
small JSON header (model, dtype, kind). FAISS serialises into the sealer and deserialises from the unsealer
a chunk at a time (vault.blob_writer / vault.read_blob_chunks), chunks decrypted by two threads ahead of
it: no plaintext copy of the whole index is ever held, and a damaged chunk fails before FAISS sees it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from vault.errors import IntegrityError
from vault.store import Vault

HNSW_THRESHOLD = 50_000  # an exact scan costs ~0.1 ms per 1k vectors on one core: ~5 ms here, 12 ms at 100k,
# half of search's 25 ms budget there; HNSW answers 100k in ~1.5 ms (bench/bench_retrieval.py measures its
# recall against the exact scan in the same run)
TOMBSTONE_REBUILD = 0.10
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
BUILD_THREADS = 2  # bulk adds use both cores of a small machine; searches stay on one (see _threads)
HNSW_EF_SEARCH = 96
EXACT_BLOCK = 4_096  # vectors gathered at a time by an exact scoring of a subset (6 MiB)
FILTER_EXACT_MAX = 20_000  # a filtered search over fewer selected vectors than this scores them exactly ...
FILTER_EXACT_FRACTION = 0.05  # ... or over less than this share of an HNSW index (see search())
_MAGIC = b"LVMIDX1\n"  # then a u32 header length, the JSON header, and FAISS's serialisation
_IO_BLOCK = 1 << 20  # bytes per FAISS read/write callback
_VERSIONS = itertools.count(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexStats:
    kind: str
    vectors: int
    tombstones: int
    dim: int


def sorted_lookup(keys_sorted: np.ndarray, order: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each wanted key, its position in the original array (keys_sorted = keys[order], the first of
    equal keys), -1 where absent. Many keys are looked up in sorted order (then put back): binary searches
    in key order walk memory forwards, ~50x faster at 1M than `searchsorted(..., sorter=order)`."""
    if not len(keys_sorted) or not len(wanted):
        return np.full(len(wanted), -1, dtype=np.int64)
    by = np.argsort(wanted, kind="stable") if len(wanted) > 64 else None
    keys = wanted[by] if by is not None else wanted
    at = np.minimum(np.searchsorted(keys_sorted, keys), len(keys_sorted) - 1)
    found = np.where(keys_sorted[at] == keys, order[at], -1)
    if by is None:
        return found
    out = np.empty_like(found)
    out[by] = found
    return out


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """One query gains nothing from FAISS's OpenMP team, and its threads spinning after each search slow
    the next query embedding (torch has its own team) by 2-3x on 2 cores: searches run with n=1, bulk
    adds (graph construction) with BUILD_THREADS."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _one_thread() -> contextlib.AbstractContextManager[None]:
    return _threads(1)


def _storage(index: faiss.Index) -> faiss.Index:
    """The index that holds the vectors: IndexFlat (float32) or IndexScalarQuantizer (float16 codes)."""
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        return faiss.downcast_index(inner.storage)
    return inner


class _Unsealer:
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


class VectorIndex:
    def __init__(self, index: faiss.IndexIDMap2, *, tombstones: int = 0) -> None:
        self._index = index
        self.tombstones = tombstones
        self._ids: np.ndarray | None = None
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None  # _ids[_order]
        self.version = next(_VERSIONS)  # new on every change, unique across indexes (callers cache slot maps)

    # ---- construction ----------------------------------------------------------------------------------
    @classmethod
    def new(cls, dim: int, *, hnsw: bool = False) -> VectorIndex:
        if hnsw:
            inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            inner = faiss.IndexFlatIP(dim)
        return cls(faiss.IndexIDMap2(inner))

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def is_hnsw(self) -> bool:
        return isinstance(faiss.downcast_index(self._index.index), faiss.IndexHNSW)

    @property
    def stats(self) -> IndexStats:
        return IndexStats(kind="hnsw" if self.is_hnsw else "flat", vectors=len(self),
                          tombstones=self.tombstones, dim=self.dim)

    def __len__(self) -> int:
        return int(self._index.ntotal) - self.tombstones

    # ---- id bookkeeping --------------------------------------------------------------------------------
    def _slots(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ids is None or self._order is None or self._sorted is None:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            order = np.argsort(ids, kind="stable")
            self._ids, self._order, self._sorted = ids, order, ids[order]
        return self._ids, self._order

    def _changed(self) -> None:
        self._ids = self._order = self._sorted = None
        self.version = next(_VERSIONS)

    def ids(self) -> np.ndarray:
        ids, _ = self._slots()
        return ids[ids >= 0]

    def slot_of(self, ids: np.ndarray) -> np.ndarray:
        """The slot position of each id, -1 where the index holds no vector for it."""
        _, order = self._slots()
        assert self._sorted is not None
        ids = np.asarray(ids, dtype=np.int64)
        pos = sorted_lookup(self._sorted, order, ids)
        return np.where(ids >= 0, pos, -1)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Slot positions of the given ids (ids not in the index are skipped)."""
        pos = self.slot_of(ids)
        return pos[pos >= 0]

    def _matrix(self) -> np.ndarray:
        """The stored vectors as a writable (ntotal, dim) view (no copy): float32, or float16 above the
        HNSW threshold (use _rows() for float32 rows)."""
        store = _storage(self._index)
        n = int(store.ntotal)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if isinstance(store, faiss.IndexScalarQuantizer):
            raw = faiss.rev_swig_ptr(store.codes.data(), n * int(store.code_size))
            return raw.view(np.float16).reshape(n, self.dim)
        return faiss.rev_swig_ptr(store.get_xb(), n * self.dim).reshape(n, self.dim)

    def _rows(self, pos: np.ndarray) -> np.ndarray:
        """The stored vectors at slot positions `pos`, as a new float32 array."""
        return self._matrix()[pos].astype(np.float32, copy=False)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return np.array(self._rows(self.positions(ids)), dtype=np.float32)

    def scores_of(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The query's inner product with each id's vector (exact), NaN where the index holds none."""
        slot = self.slot_of(ids)
        out = np.full(len(slot), np.nan, dtype=np.float32)
        have = slot >= 0
        if have.any():
            out[have] = self._rows(slot[have]) @ np.asarray(query, dtype=np.float32).reshape(-1)
        return out

    # ---- mutation --------------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors under ids; switches to HNSW when the index grows past HNSW_THRESHOLD."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return
        self.remove(ids)
        if not self.is_hnsw and len(self) + len(ids) > HNSW_THRESHOLD:
            self._rebuild(hnsw=True)
        with _threads(BUILD_THREADS):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._changed()

    def remove(self, ids: np.ndarray) -> int:
        """Delete vectors by id (see module docstring); returns how many were present."""
        pos = self.positions(np.asarray(ids, dtype=np.int64))
        if not len(pos):
            return 0
        if not self.is_hnsw:
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))))
            self._changed()
            return removed
        self._matrix()[pos] = 0.0  # the embedding itself is destroyed, not only unlinked
        id_map = faiss.vector_to_array(self._index.id_map)
        id_map[pos] = -1
        faiss.copy_array_to_vector(id_map, self._index.id_map)
        self._index.construct_rev_map()
        self.tombstones += len(pos)
        self._changed()
        if self.tombstones > TOMBSTONE_REBUILD * max(1, int(self._index.ntotal)):
            self._rebuild(hnsw=len(self) > HNSW_THRESHOLD)
        return len(pos)

    def _rebuild(self, *, hnsw: bool) -> None:
        ids = self.ids()
        vecs = self.vectors(ids)
        fresh = VectorIndex.new(self.dim, hnsw=hnsw)
        if len(ids):
            with _threads(BUILD_THREADS):
                fresh._index.add_with_ids(vecs, ids)
        self._index, self.tombstones = fresh._index, 0
        self._changed()

    def rebuild(self) -> None:
        self._rebuild(hnsw=len(self) > HNSW_THRESHOLD)

    # ---- search ----------------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, subset: np.ndarray | None = None, *,
               slots: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids, scores) by inner product, best first; only ids in `subset` when it is given, or only the
        slot positions `slots` (from positions(): a caller that maps its ids once saves the lookup)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if k <= 0 or len(self) == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        ids, _ = self._slots()
        if slots is not None:
            pos = slots
        elif subset is None:
            if not self.tombstones:
                return self._inner_search(q, k, None)
            pos = np.flatnonzero(ids >= 0)
        else:
            pos = self.positions(subset)
        # FAISS's HNSW walk with a selector costs ~2.5 ms at 1M whatever the filter passes, but its recall falls
        # when the filter passes few (recall@10 against exact on 1M random vectors: 0.985 at 8%, 0.88 at 3%,
        # 0.70 at 1%); gathering and scoring the selected vectors exactly costs ~0.2-0.45 us each. So: exact
        # below FILTER_EXACT_MAX vectors or FILTER_EXACT_FRACTION of the index (at most ~20 ms), the graph above.
        if not self.is_hnsw or len(pos) < max(FILTER_EXACT_MAX, FILTER_EXACT_FRACTION * len(ids)):
            return self._exact(q, k, pos)
        mask = np.zeros(len(ids), dtype=bool)
        mask[pos] = True
        found, scores = self._inner_search(q, k, np.packbits(mask, bitorder="little"))
        if len(found) < min(k, len(pos)):
            return self._exact(q, k, pos)
        return found, scores

    def _exact(self, q: np.ndarray, k: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the vectors at slot positions `pos`, gathered a block at a time (FAISS's flat scan
        with a selector walks every stored vector: 27 ms for 30k selected of 1M, against ~4 ms here)."""
        if not len(pos):
            return np.empty(0, np.int64), np.empty(0, np.float32)
        store = _storage(self._index)
        if isinstance(store, faiss.IndexScalarQuantizer):
            # float16 rows: numpy's cast to float32 would double the cost; FAISS scores the codes with SIMD,
            # visiting only the selected slots (a bitmap test per stored vector, ~1 ms per 1M)
            mask = np.zeros(int(store.ntotal), dtype=bool)
            mask[pos] = True
            bitmap = np.packbits(mask, bitorder="little")
            params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap)))
            with _one_thread():
                top_scores, top_slots = store.search(q, min(k, len(pos)), params=params)
            keep = top_slots[0] >= 0
            ids, _ = self._slots()
            return ids[top_slots[0][keep]], top_scores[0][keep]
        scores = np.empty(len(pos), dtype=np.float32)
        for lo in range(0, len(pos), EXACT_BLOCK):
            # einsum, not `@`: BLAS's thread team would spin after the call and slow the next query embedding
            scores[lo : lo + EXACT_BLOCK] = np.einsum("ij,j->i", self._rows(pos[lo : lo + EXACT_BLOCK]), q[0])
        kk = min(k, len(pos))
        top = np.argpartition(-scores, kk - 1)[:kk]
        top = top[np.argsort(-scores[top], kind="stable")]
        ids, _ = self._slots()
        return ids[pos[top]], scores[top]

    def _inner_search(self, q: np.ndarray, k: int, bitmap: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Search the inner index (with a selector over slot positions), then map slots to ids."""
        inner = faiss.downcast_index(self._index.index)
        selector = faiss.IDSelectorBitmap(int(self._index.ntotal), faiss.swig_ptr(bitmap)) if bitmap is not None else None
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, 2 * k))
            if selector is not None:
                params.sel = selector
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        with _one_thread():
            scores, slots = inner.search(q, min(k, int(self._index.ntotal)), params=params)
        keep = slots[0] >= 0
        ids, _ = self._slots()
        found = ids[slots[0][keep]]
        live = found >= 0
        return found[live], scores[0][keep][live]

    # ---- sealing ----------------------------------------------------------------------------------------
    def write(self, sink: Callable[[bytes], None], header: dict[str, Any]) -> None:
        """Serialise into `sink` a block at a time (the magic, the JSON header, then FAISS's format)."""
        head = json.dumps(header | {"tombstones": self.tombstones}, sort_keys=True).encode()
        sink(_MAGIC + struct.pack(">I", len(head)) + head)
        faiss.write_index(self._index, faiss.PyCallbackIOWriter(sink, _IO_BLOCK))

    @classmethod
    def read(cls, chunks: Iterator[memoryview], *, name: str) -> tuple[VectorIndex, dict[str, Any]]:
        """Deserialise from authenticated plaintext chunks; every chunk is read (and so authenticated)
        before the index is returned."""
        broken = IntegrityError(f"the sealed index {name!r} is not a lifevault vector index; run `lifevault index --rebuild`")
        src = _Unsealer(chunks)
        index, header = None, None
        try:
            start = src.read(len(_MAGIC) + 4)
            if len(start) == len(_MAGIC) + 4 and start.startswith(_MAGIC):
                (n,) = struct.unpack_from(">I", start, len(_MAGIC))
                header = json.loads(src.read(n))
                index = faiss.read_index(faiss.PyCallbackIOReader(src.read, _IO_BLOCK))
        except (ValueError, RuntimeError):
            index = None
        if src.error is not None:
            raise src.error
        if src.rest() or not isinstance(index, faiss.IndexIDMap2) or not isinstance(header, dict):
            raise broken
        return cls(index, tombstones=int(header.get("tombstones", 0))), header

    def to_bytes(self, header: dict[str, Any]) -> bytes:
        parts: list[bytes] = []
        self.write(parts.append, header)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str) -> tuple[VectorIndex, dict[str, Any]]:
        return cls.read(iter([memoryview(data)]), name=name)


def load(vault: Vault, name: str) -> tuple[VectorIndex, dict[str, Any]] | None:
    """The sealed index `name`, or None when there is none yet. Tampering raises IntegrityError."""
    chunks = vault.read_blob_chunks(name)
    if chunks is None:
        return None
    return VectorIndex.read(chunks, name=name)


def save(vault: Vault, name: str, index: VectorIndex, header: dict[str, Any]) -> None:
    with vault.blob_writer(name) as sink:
        index.write(sink, header)
