"""The vector index: FAISS IndexIDMap2 over IndexFlatIP (exact) below IVF_THRESHOLD vectors, IVF above.

Above the threshold the index is an IndexIVFScalarQuantizer (IVF_CODE_BITS = 4-bit codes, 192 bytes a
vector at 384 dimensions, no graph) behind an IndexIDMap, and the exact vectors (float16, scores within
~1e-3 of float32) live in a sealed record store on disk (embeddings/vectorstore.py): a search takes the top
RERANK_DEPTH by the codes from the IVF_NPROBE nearest lists and re-scores them exactly from the store, a
chunk read and decrypted per vector; the page cache holds the store, the process holds the codes. A query
far from every memory (its WEAK_AT-th best shortlisted cosine under WEAK_MATCH) has its neighbours spread
over many lists: it probes WEAK_NPROBE lists too. An index
sealed with 8-bit codes (384 bytes a vector, before the 4-bit change) opens and searches as it was sealed
(its blob names its quantizer; one of another width fails to open with the rebuild hint), and adds keep its
codes; its next rebuild or retraining makes it 4-bit.
The coarse lists are k-means trained on a sample when the index crosses the threshold, and trained again
(a rebuild) when it has grown IVF_REGROW times since. Indexes sealed as HNSW before are rebuilt as IVF
when they are opened.

Vectors are L2-normalised, so inner product is cosine similarity. Ids are memory ids, slots their positions
in the order added. Deletes:
  - Flat: remove_ids, at once (the vector is gone from memory and from the next sealed blob);
  - IVF: the vector's code leaves its list at once and its exact vector is zeroed (in the sealed store at
    the next save); the slot stays numbered (id -1, a tombstone) so no other slot moves, and the index is
    rebuilt from the live vectors when tombstones pass TOMBSTONE_REBUILD.
Searches over a subset (filters applied before ranking): on a Flat index, or a subset of at most
STORE_EXACT_MAX vectors, the subset is scored exactly. Otherwise a subset small for the index (CODE_COST)
has every one of its codes scored, found by slot through a map of where each code sits in the
lists (O(subset), not O(index)); a broader one is searched with a bitmap selector over slots, probing
IVF_NPROBE * FILTER_PROBE_MARGIN / (the subset's share of the index) lists. Either way the shortlist is
re-scored exactly as above.

At rest the index is a sealed blob (AES-256-GCM in 1 MiB chunks, each bound to the blob's name, its
position and whether it is the last): never faiss.write_index to a path, never mmap. The blob starts with a
small JSON header (model, dtype, kind; for IVF the store's segments and a token a `<name>.delta` blob of
codes added since names: embeddings/codedelta.py). FAISS serialises into the sealer and
deserialises from the unsealer a chunk at a time (vault.blob_writer / vault.read_blob_chunks), chunks
decrypted by two threads ahead of it: no plaintext copy of the whole index is ever held, and a damaged
chunk fails before FAISS sees it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import struct
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from embeddings import codedelta
from embeddings.codemap import CodeMap
from embeddings.sealio import Unsealer, legacy_rows
from embeddings.vectorstore import VectorStore
from vault import crashpoint
from vault.errors import IntegrityError, VaultMissing
from vault.sealed_records import RecordReader
from vault.store import Vault

IVF_THRESHOLD = 50_000  # an exact scan costs ~0.1 ms per 1k vectors on one core: ~5 ms here, 12 ms at 100k,
# half of search's 25 ms budget there; IVF answers 1M in ~2 ms (bench/bench_index.py measures its recall
# against the exact scan in the same run)
HNSW_THRESHOLD = IVF_THRESHOLD  # the name callers knew (the index above it was HNSW)
TOMBSTONE_REBUILD = 0.10
BUILD_THREADS = 2  # k-means and bulk adds use both cores of a small machine; searches stay on one (see _threads)
IVF_LISTS = 4  # nlist = IVF_LISTS * sqrt(n) coarse lists, n the vectors it is trained on
IVF_TRAIN_PER_LIST = 40  # k-means sample: this many vectors a list (FAISS warns under 39)
IVF_REGROW = 4  # trained again (rebuilt) once it holds this many times the vectors it was trained on
IVF_CODE_BITS = 4  # bits a component of a new IVF index's codes: 192 bytes a vector at 384 dimensions (8 bits: 384).
# At 1M (bench_index, the same run): resident +233 MB against +425, recall@10 after the re-rank 0.9955 against 0.9970
# (filtered 1.000 both); `lifevault serve` 919-946 MB after 600 searches against 1,070-1,119. Indexes sealed with
# 8-bit codes open and search as they were; a rebuild or a retraining makes them 4-bit
_QTYPES = {8: faiss.ScalarQuantizer.QT_8bit, 4: faiss.ScalarQuantizer.QT_4bit}
IVF_NPROBE = 32  # lists searched (of ~2,800 at 1M): the codes' shortlist holds the true top 10 (bench_index)
RERANK_DEPTH = 100  # shortlist by the codes re-scored exactly from the store (at least k)
WEAK_MATCH = 0.35  # an unfiltered query whose WEAK_AT-th best shortlisted cosine is under this is far from every
WEAK_AT = 10  # memory, its neighbours spread over many lists: it probes WEAK_NPROBE lists as well (1.8% of the
WEAK_NPROBE = 256  # bench's queries; 1M rebuilt, 4,000 lists: recall@10 0.984 -> 0.992; bench/README.md)
FILTER_PROBE_MARGIN = 2  # a filtered search scores ~this many times the vectors an unfiltered one does
STORE_EXACT_MAX = 256  # a filtered IVF search over at most this many vectors scores them all exactly
CODE_COST = 30  # a filtered IVF search scores its subset's codes directly (found by slot: O(subset))
# when that is cheaper than probing the lists through a bitmap, where each stored code of a probed list is
# tested (~20 ns) and a code gathered by slot and scored costs ~this many tests (~0.6 us): at 1M, filters
# under ~2.7% (2,828 lists), at 100k under ~3.3% (1,264 lists, every one of them probed there)
EXACT_BLOCK = 4_096  # vectors gathered at a time by an exact scoring of a subset of a flat index (6 MiB)
ADD_BLOCK = 65_536  # vectors added to an IVF index at a time by a build
_MAGIC = b"LVMIDX1\n"  # then a u32 header length, the JSON header, and FAISS's serialisation
_IO_BLOCK = 1 << 20  # bytes per FAISS read/write callback
_VERSIONS = itertools.count(1)
log = logging.getLogger(__name__)


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


class VectorIndex:
    def __init__(self, index: faiss.Index, *, tombstones: int = 0, store: VectorStore | None = None,
                 trained: int = 0) -> None:
        self._index = index  # IndexIDMap2 over IndexFlatIP, or IndexIDMap over IndexIVFScalarQuantizer
        self.tombstones = tombstones
        self._store = store  # IVF: the exact vectors by slot
        self._trained = trained  # IVF: how many vectors its lists were trained on
        self._want_ivf = False
        # IVF: (the whole blob's token, its vectors, the vectors sealed, the code files since) or None: the
        # next save writes the whole blob (embeddings/codedelta.py)
        self._sealed: tuple[str, int, int, list[list[Any]]] | None = None
        self._ids: np.ndarray | None = None
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None  # _ids[_order]
        self._code_map: CodeMap | None = None  # IVF: where each code sits, for selective filters
        self.version = next(_VERSIONS)  # new on every change, unique across indexes (callers cache slot maps)

    # ---- construction ----------------------------------------------------------------------------------
    @classmethod
    def new(cls, dim: int, *, ivf: bool = False, hnsw: bool = False) -> VectorIndex:
        """An empty exact index; with `ivf` (or `hnsw`, the name it had) one that is IVF from its first add
        of at least IVF_TRAIN_PER_LIST vectors, whatever the threshold."""
        ix = cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))
        ix._want_ivf = ivf or hnsw
        return ix

    @classmethod
    def _built(cls, ids: np.ndarray, vecs: np.ndarray) -> VectorIndex:
        """An IVF index trained on (a sample of) vecs (float32, or float16 from the store: converted a block
        at a time) and holding them."""
        n, dim = vecs.shape
        nlist = max(1, min(int(IVF_LISTS * math.sqrt(n)), n // IVF_TRAIN_PER_LIST))
        ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, _QTYPES[IVF_CODE_BITS],
                                            faiss.METRIC_INNER_PRODUCT)
        ivf.cp.spherical = True  # unit vectors: centroids on the sphere
        sample = vecs
        if n > IVF_TRAIN_PER_LIST * nlist:
            sample = vecs[np.sort(np.random.default_rng(0).choice(n, IVF_TRAIN_PER_LIST * nlist, replace=False))]
        index = faiss.IndexIDMap(ivf)
        with _threads(BUILD_THREADS):
            ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
            for lo in range(0, n, ADD_BLOCK):
                index.add_with_ids(np.ascontiguousarray(vecs[lo : lo + ADD_BLOCK], dtype=np.float32),
                                   np.ascontiguousarray(ids[lo : lo + ADD_BLOCK], dtype=np.int64))
        store = VectorStore(dim)
        store.append(vecs)
        return cls(index, store=store, trained=n)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def is_ivf(self) -> bool:
        return self._store is not None

    @property
    def stats(self) -> IndexStats:
        return IndexStats(kind="ivf" if self.is_ivf else "flat", vectors=len(self),
                          tombstones=self.tombstones, dim=self.dim)

    def __len__(self) -> int:
        return int(self._index.ntotal) - self.tombstones

    def _ivf(self) -> faiss.IndexIVFScalarQuantizer:
        return faiss.downcast_index(self._index.index)

    @property
    def code_bits(self) -> int | None:
        """Bits a component of an IVF index's codes (4, or 8 for one sealed before the 4-bit change); None: flat."""
        if self._store is None:
            return None
        return next(bits for bits, qtype in _QTYPES.items() if qtype == int(self._ivf().sq.qtype))

    # ---- id bookkeeping --------------------------------------------------------------------------------
    def _slots(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ids is None or self._order is None or self._sorted is None:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            order = np.argsort(ids, kind="stable")
            self._ids, self._order, self._sorted = ids, order, ids[order]
        return self._ids, self._order

    def _changed(self, lists: np.ndarray | None = None, removed: np.ndarray | None = None) -> None:
        """After any change; an IVF add or delete names the `lists` it touched (and the `removed` slots):
        the code map re-reads only those, else it is dropped (FAISS may have moved or freed the lists)."""
        self._ids = self._order = self._sorted = None
        if lists is None or self._code_map is None or self._code_map.refresh(lists, removed=removed) != len(self):
            self._code_map = None
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
        """A flat index's float32 vectors as a writable (ntotal, dim) view (no copy)."""
        flat = faiss.downcast_index(self._index.index)
        n = int(flat.ntotal)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)

    def _rows(self, pos: np.ndarray) -> np.ndarray:
        """The stored vectors at slot positions `pos`, as a new float32 array (IVF: from the store)."""
        if self._store is not None:
            return self._store.rows(pos)
        return self._matrix()[pos]

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
        """Add or replace vectors under ids; becomes IVF past IVF_THRESHOLD, trained again past IVF_REGROW."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        self.remove(ids)
        grown = len(self) + len(ids)
        if self._store is None:
            if grown > IVF_THRESHOLD or (self._want_ivf and grown >= IVF_TRAIN_PER_LIST):
                self._rebuild(ivf=True, extra=(ids, vectors))
                return
        elif grown > IVF_REGROW * max(1, self._trained):
            self._rebuild(ivf=True, extra=(ids, vectors))
            return
        touched = None
        if self._code_map is not None:  # the lists FAISS will append to (the same assignment its add makes)
            touched = np.unique(self._ivf().quantizer.assign(vectors, 1))
        with _threads(BUILD_THREADS):
            self._index.add_with_ids(vectors, ids)
        if self._store is not None:
            self._store.append(vectors)
        self._changed(touched)

    def remove(self, ids: np.ndarray) -> int:
        """Delete vectors by id (see module docstring); returns how many were present."""
        pos = self.positions(np.asarray(ids, dtype=np.int64))
        if not len(pos):
            return 0
        if self._store is None:
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))))
            self._changed()
            return removed
        ivf = self._ivf()
        total = int(ivf.ntotal)
        touched = None if self._code_map is None else np.unique(self._code_map.which[pos])
        ivf.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(pos, dtype=np.int64)))  # codes leave their lists
        ivf.ntotal = total  # slots keep their numbers: the next add continues after the last one
        self._store.zero(pos)  # the embedding itself is destroyed, not only unlinked
        id_map = faiss.vector_to_array(self._index.id_map)
        id_map[pos] = -1
        faiss.copy_array_to_vector(id_map, self._index.id_map)
        self.tombstones += len(pos)
        self._sealed = None  # the code may be in a code file: the next save writes the index whole
        self._changed(touched, pos)  # removal moves each list's last entry into the gap
        if self.tombstones > TOMBSTONE_REBUILD * max(1, int(self._index.ntotal)):
            self._rebuild(ivf=len(self) > IVF_THRESHOLD)
        return len(pos)

    def _rebuild(self, *, ivf: bool, extra: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        ids = self.ids()
        pos = self.positions(ids)
        vecs = self._store.rows_all(pos) if self._store is not None else self._matrix()[pos]
        if extra is not None:
            ids, vecs = np.concatenate([ids, extra[0]]), np.concatenate([vecs, extra[1].astype(vecs.dtype)])
        if ivf and len(ids):
            fresh = VectorIndex._built(ids, vecs)
        else:
            fresh = VectorIndex.new(self.dim)
            if len(ids):
                fresh._index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
        self._index, self._store, self._trained, self.tombstones = fresh._index, fresh._store, fresh._trained, 0
        self._sealed = None
        self._changed()

    def rebuild(self) -> None:
        self._rebuild(ivf=len(self) > IVF_THRESHOLD)

    # ---- search ----------------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, subset: np.ndarray | None = None, *,
               slots: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids, scores) by inner product, best first; only ids in `subset` when it is given, or only the
        slot positions `slots` (from positions(): a caller that maps its ids once saves the lookup)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if k <= 0 or len(self) == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if slots is None and subset is None:
            return self._ivf_search(q, k, None) if self._store is not None else self._flat_search(q, k)
        pos = slots if slots is not None else self.positions(subset)  # type: ignore[arg-type]
        if self._store is None or len(pos) <= max(STORE_EXACT_MAX, k):
            return self._exact(q, k, pos)
        if len(pos) * CODE_COST < self._probed(len(pos)):
            return self._codes_search(q, k, pos)
        return self._ivf_search(q, k, pos)

    def _top(self, pos: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        kk = min(k, len(pos))
        top = np.argpartition(-scores, kk - 1)[:kk] if kk < len(pos) else np.arange(len(pos))
        top = top[np.argsort(-scores[top], kind="stable")]
        ids, _ = self._slots()
        return ids[pos[top]], scores[top]

    def _exact(self, q: np.ndarray, k: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the vectors at slot positions `pos`, gathered a block at a time (FAISS's flat scan
        with a selector walks every stored vector: 27 ms for 30k selected of 1M, against ~4 ms here)."""
        if not len(pos):
            return np.empty(0, np.int64), np.empty(0, np.float32)
        scores = np.empty(len(pos), dtype=np.float32)
        for lo in range(0, len(pos), EXACT_BLOCK):
            # einsum, not `@`: BLAS's thread team would spin after the call and slow the next query embedding
            scores[lo : lo + EXACT_BLOCK] = np.einsum("ij,j->i", self._rows(pos[lo : lo + EXACT_BLOCK]), q[0])
        return self._top(pos, scores, k)

    def _flat_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with _one_thread():
            scores, slots = faiss.downcast_index(self._index.index).search(q, min(k, int(self._index.ntotal)))
        keep = slots[0] >= 0
        ids, _ = self._slots()
        return ids[slots[0][keep]], scores[0][keep]

    def _ivf_search(self, q: np.ndarray, k: int, pos: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The top max(k, RERANK_DEPTH) by the codes, re-scored exactly from the store. Unfiltered:
        from the IVF_NPROBE nearest lists. Filtered (only slots in `pos`, through a bitmap selector): a
        filter passing a share s of the index probes IVF_NPROBE * FILTER_PROBE_MARGIN / s lists, so about
        twice as many of its vectors are scored as an unfiltered search scores; when that is every list
        (s under ~2% at 1M) every vector of the subset is scored, and which lists the other vectors put
        it in does not decide what is found."""
        ivf = self._ivf()
        nlist, total = int(ivf.nlist), int(ivf.ntotal)
        params = faiss.SearchParametersIVF()
        params.nprobe = min(nlist, IVF_NPROBE)
        bitmap = selector = None
        if pos is not None:
            params.nprobe = self._filter_nprobe(len(pos))
            mask = np.zeros(total, dtype=bool)
            mask[pos] = True
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(total, faiss.swig_ptr(bitmap))
            params.sel = selector
        depth = max(RERANK_DEPTH, k)
        with _one_thread():
            _, found = ivf.search(q, depth, params=params)
            found = found[0][found[0] >= 0]
            if pos is not None and len(found) < min(depth, len(pos)) and params.nprobe < nlist:
                params.nprobe = nlist  # the probed lists held too few of the subset: all of them
                _, again = ivf.search(q, depth, params=params)
                found = again[0][again[0] >= 0]
        del selector, bitmap
        if not len(found):
            return np.empty(0, np.int64), np.empty(0, np.float32)
        exact = np.einsum("ij,j->i", self._rows(found), q[0])
        if pos is None and params.nprobe < min(nlist, WEAK_NPROBE) and _kth(exact, WEAK_AT) < WEAK_MATCH:
            params.nprobe = min(nlist, WEAK_NPROBE)  # far from every memory: its neighbours sit in many lists
            with _one_thread():
                _, wider = ivf.search(q, depth, params=params)
            found = np.union1d(found, wider[0][wider[0] >= 0])
            exact = np.einsum("ij,j->i", self._rows(found), q[0])
        return self._top(found, exact, k)

    def _filter_nprobe(self, selected: int) -> int:
        return min(int(self._ivf().nlist), math.ceil(IVF_NPROBE * FILTER_PROBE_MARGIN * len(self) / max(1, selected)))

    def _probed(self, selected: int) -> float:
        """About how many stored codes a filtered search over `selected` vectors tests through the lists."""
        return len(self) * self._filter_nprobe(selected) / int(self._ivf().nlist)

    def _codes(self) -> CodeMap:
        if self._code_map is None:
            self._code_map = CodeMap(self._ivf())
        return self._code_map

    def _codes_search(self, q: np.ndarray, k: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filtered, a subset small for the index (see CODE_COST): every one of its codes is scored
        (embeddings/codemap.py: the score FAISS's scan gives it), the top max(k, RERANK_DEPTH) re-scored
        exactly from the store. Which lists hold the others does not matter: what an index of the subset
        alone scanned whole would find."""
        pos, scores = self._codes().scores(q[0], pos)
        if not len(pos):
            return np.empty(0, np.int64), np.empty(0, np.float32)
        depth = min(max(RERANK_DEPTH, k), len(pos))
        short = pos[np.argpartition(-scores, depth - 1)[:depth]] if depth < len(pos) else pos
        return self._top(short, np.einsum("ij,j->i", self._rows(short), q[0]), k)

    # ---- sealing ----------------------------------------------------------------------------------------
    def write(self, sink: Callable[[bytes], None], header: dict[str, Any]) -> None:
        """Serialise into `sink` a block at a time (the magic, the JSON header, then FAISS's format). An IVF
        index's header must name its store's segments (save() seals the store first and adds them)."""
        meta: dict[str, Any] = {"tombstones": self.tombstones, "kind": self.stats.kind}
        if self._store is not None:
            if "segments" not in header:
                raise ValueError("an IVF index is written by save(), which seals its vector store first")
            meta["trained"] = self._trained
        head = json.dumps(header | meta, sort_keys=True).encode()
        sink(_MAGIC + struct.pack(">I", len(head)) + head)
        faiss.write_index(self._index, faiss.PyCallbackIOWriter(sink, _IO_BLOCK))

    @classmethod
    def read(cls, chunks: Iterator[memoryview], *, name: str, records: Callable[[str], RecordReader] | None = None,
             delta: dict[str, Any] | None = None) -> tuple[VectorIndex, dict[str, Any]]:
        """Deserialise from authenticated plaintext chunks; every chunk is read (and so authenticated)
        before the index is returned. An IVF index opens its store's segments with `records`; an index
        sealed as HNSW before is rebuilt (header "migrated": the caller should seal it again)."""
        broken = IntegrityError(f"the sealed index {name!r} is not a lifevault vector index; run `lifevault index --rebuild`")
        src = Unsealer(chunks)
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
        if src.rest() or not isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2) or not isinstance(header, dict):
            raise broken
        tombstones = int(header.get("tombstones", 0))
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            ids, vecs = legacy_rows(index)
            log.warning("the sealed index %r is HNSW (sealed before IVF): rebuilding it from its %d vectors",
                        name, len(ids))
            fresh = cls.new(int(index.d))
            fresh.add(ids, vecs)
            return fresh, header | {"migrated": True}
        if isinstance(inner, faiss.IndexIVFScalarQuantizer):
            if records is None:
                raise ValueError("an IVF index opens its vector store through records= (use load())")
            if int(inner.sq.qtype) not in _QTYPES.values():  # codes this code neither scores by slot nor writes
                raise broken
            token, base = header.get("token"), int(index.ntotal)
            codes: list[list[Any]] = []
            try:
                if delta is not None and token and delta.get("base") == token:
                    for file, start, count in delta["codes"]:
                        reader = records(file)
                        if start != int(index.ntotal) or reader.count != count:
                            raise broken
                        codedelta.apply(index, reader)
                    codes = delta["codes"]
                    header = header | delta["header"] | {"segments": delta["segments"], "codes": codes}
                store = VectorStore.open(int(index.d), header["segments"], records, broken=broken)
            except (KeyError, TypeError, ValueError, VaultMissing):
                raise broken from None
            if len(store) != int(index.ntotal):
                raise broken
            ix = cls(index, tombstones=tombstones, store=store, trained=int(header.get("trained", 0)))
            ix._sealed = (token, base, int(index.ntotal), codes) if token else None
            return ix, header
        if not isinstance(inner, faiss.IndexFlat):
            raise broken
        return cls(index, tombstones=tombstones), header

    def to_bytes(self, header: dict[str, Any]) -> bytes:
        parts: list[bytes] = []
        self.write(parts.append, header)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str) -> tuple[VectorIndex, dict[str, Any]]:
        return cls.read(iter([memoryview(data)]), name=name)


_SAVING: weakref.WeakKeyDictionary[Vault, threading.RLock] = weakref.WeakKeyDictionary()
_SAVING_LOCK = threading.Lock()


def _saving(vault: Vault) -> threading.RLock:
    """One per open vault: a save (new segments, then the blob naming them, then the old ones deleted) and
    the clean-up of a load (the blob read, then every segment it does not name deleted) never interleave,
    so a load never deletes a segment a save has written and not yet named. Other processes are kept out
    by the vault's own lock (vault.lock, exclusive while a vault is open)."""
    with _SAVING_LOCK:
        lock = _SAVING.get(vault)
        if lock is None:
            lock = _SAVING[vault] = threading.RLock()
        return lock


def load(vault: Vault, name: str) -> tuple[VectorIndex, dict[str, Any]] | None:
    """The sealed index `name`, or None when there is none yet. Tampering raises IntegrityError (a damaged
    chunk of the vector store: when a search reads it). Opened read-write, the store segments and code
    files that the blob and its delta do not name, and a delta of an earlier blob, are deleted: left by a
    crash between a save and its clean-up, they may hold a forgotten vector."""
    with _saving(vault):
        chunks = vault.read_blob_chunks(name)
        if chunks is None:
            return None
        delta = vault.read_blob(f"{name}.delta")
        index, header = VectorIndex.read(chunks, name=name, records=vault.open_records,
                                         delta=json.loads(delta) if delta is not None else None)
        if not getattr(vault, "read_only", False):
            named = {s[0] for s in header.get("segments", []) + header.get("codes", [])} if index.is_ivf else set()
            for stale in vault.blob_names(f"{name}.vec.") + vault.blob_names(f"{name}.codes."):
                if stale not in named:
                    vault.delete_blob(stale)
            if delta is not None and "codes" not in header:  # a delta of an earlier whole blob
                vault.delete_blob(f"{name}.delta")
        return index, header


def save(vault: Vault, name: str, index: VectorIndex, header: dict[str, Any]) -> None:
    """Seal the index as blob `name`: an IVF index's new or changed store segments first, then the blob
    naming them (atomically), then the segments no longer named are deleted. An IVF index that only grew
    by at most CODE_DELTA_MAX since its blob was written whole seals the added codes as a code file and
    names it in blob `<name>.delta` instead (embeddings/codedelta.py)."""
    header = {k: v for k, v in header.items() if k not in ("segments", "codes", "token")}
    with _saving(vault):
        sealed, store = index._sealed, index._store
        if store is not None and sealed is not None and int(index._index.ntotal) - sealed[1] <= codedelta.CODE_DELTA_MAX:
            token, base, done, codes = sealed[0], sealed[1], sealed[2], list(sealed[3])
            total = int(index._index.ntotal)
            segments = store.save(vault, name)
            if total > done:  # trailing files no bigger than what follows merge in, like a binary counter's carry
                start = done
                while codes and codes[-1][2] <= total - start:
                    start = codes.pop()[1]
                slots = np.arange(start, total, dtype=np.int64)
                code_map = index._codes()
                ids, _ = index._slots()
                codes = [*codes, [codedelta.write(vault, name, ids[slots], code_map.which[slots],
                                                  code_map.gather(slots)), start, total - start]]
            vault.write_blob(f"{name}.delta", json.dumps({"base": token, "codes": codes, "segments": segments,
                                                          "header": header}, sort_keys=True).encode())
            crashpoint.reached("index.delta_committed")
            store.committed(vault, name)
            for stale in set(vault.blob_names(f"{name}.codes.")) - {c[0] for c in codes}:
                vault.delete_blob(stale)
            index._sealed = (token, base, total, codes)
            return
        token = os.urandom(8).hex()
        extra: dict[str, Any] = {"token": token}
        if store is not None:
            extra["segments"] = store.save(vault, name)
        with vault.blob_writer(name) as sink:
            index.write(sink, header | extra)
        crashpoint.reached("index.blob_committed")  # the blob names the new segments; the old ones are still there
        vault.delete_blob(f"{name}.delta")
        for stale in vault.blob_names(f"{name}.codes."):
            vault.delete_blob(stale)
        if store is not None:
            store.committed(vault, name)
            index._sealed = (token, int(index._index.ntotal), int(index._index.ntotal), [])
        else:
            for stale in vault.blob_names(f"{name}.vec."):
                vault.delete_blob(stale)


def _kth(scores: np.ndarray, k: int) -> float:
    """The k-th best of `scores` (the worst when there are fewer)."""
    if len(scores) <= k:
        return float(scores.min())
    return float(np.partition(scores, len(scores) - k)[len(scores) - k])
