"""Lexical search: Okapi BM25 (k1 = 1.2, b = 0.75, Lucene's idf) over memory texts, in numpy.

DuckDB's fts extension is not an option: the vault session never installs or autoloads extensions and
the wheel does not ship fts. Postings are term-major CSR arrays (doc positions, term frequencies); bulk
appends are tokenised by polars (vectorised) and merged at once, single documents (notes) go to a small
delta that is merged when it grows past MERGE_FRACTION; deleted documents are masked (`kill`) and their
postings dropped at the next merge.

Compact at a million documents (bench/README.md, "Serve memory at 1M"): the term dictionary is a few arrays
(embeddings/terms.py); term frequencies are held in the narrowest of uint8 / uint16 / float32 that holds
them (a snapshot's are read in place); the length-normalised weight of a posting is not kept for every
posting (4 bytes each, 85 MB at the bench's 1M) but computed from the document lengths when a query first
needs the term, and kept for the terms queried last in a cache of WEIGHT_CACHE_BYTES: the
values are the same float32 either way, so the scores are bit for bit those of a weight per posting, and a
common term (the costly ones: ~280k postings) is weighed once, not per query. Tokens (documents and queries alike, one implementation): NFKD with
marks removed, lower case, runs of letters and digits, English stop words removed, plural -s stripped.
Document positions are assigned by the caller (retrieve.Catalog) and never reused until a rebuild.

Statistics over a view. A caller that may see only some documents (a token's scopes) gets scores whose every
statistic is computed over those documents alone: document count, mean length, each query term's document
frequency, and the length normalisation (`View`, built once per view and state by the caller). A caller
that sees every document (the owner) uses the precomputed weights. Either way, what a caller receives
depends only on what it may see.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars tokenises bulk appends; a query, or BM25 restored from a snapshot, needs none
    import polars as pl

import numpy as np

from embeddings.terms import Terms

K1 = 1.2
B = 0.75
MERGE_FRACTION = 0.05
BULK = 64  # appends of at least this many documents are merged straight away
COMMON_FRACTION = 0.2
WEIGHT_CACHE_BYTES = 24 << 20  # the weighed postings of the terms queried last (owner's view), least recent out
STOPWORDS = sorted(set("""
a an and are as at be been but by did do does for from had has have how i if in into is it its me my of on or
our so that the their them then there these they this to was we were what when where which while who whom why
will with you your am can could should would about after before during over under again than too very just
""".split()))


def _token_column(col: pl.Expr) -> pl.Expr:
    return col.str.normalize("NFKD").str.replace_all(r"\p{M}", "").str.to_lowercase().str.extract_all(
        r"[\p{L}\p{N}]+")


def _stem(col: pl.Expr) -> pl.Expr:
    import polars as pl

    n = col.str.len_chars()
    return (pl.when((n > 3) & col.str.ends_with("ies")).then(col.str.slice(0, n - 3) + "y")
            .when((n > 3) & col.str.ends_with("s") & ~col.str.contains("(ss|us|is)$")).then(col.str.slice(0, n - 1))
            .otherwise(col))


def token_frame(texts: Sequence[str], start: int = 0) -> pl.DataFrame:
    """(doc, t) rows: every token of every text, doc numbered from `start`."""
    import polars as pl

    df = pl.DataFrame({"doc": np.arange(start, start + len(texts), dtype=np.int64),
                       "t": pl.Series(list(texts), dtype=pl.String)})
    df = df.with_columns(_token_column(pl.col("t"))).explode("t").drop_nulls("t")
    return df.filter(~pl.col("t").is_in(STOPWORDS)).with_columns(_stem(pl.col("t")))


_STOP = frozenset(STOPWORDS)
_RUN = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[str, ...]:
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.category(c).startswith("M"))
    out = []
    for w in _RUN.findall(folded.lower()):
        if w in _STOP:
            continue
        if len(w) > 3 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        out.append(w)
    return tuple(out)


def tokens(text: str) -> list[str]:
    """One text's tokens, as token_frame makes them (the same rules in Python: a query costs microseconds)."""
    return list(_tokens(text))


def narrow(tf: np.ndarray) -> np.ndarray:
    """Term frequencies (whole numbers) in the narrowest of uint8, uint16 and float32 that holds them all."""
    top = float(tf.max()) if len(tf) else 0.0
    return tf.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.float32)


def _kept_bounds(ptr: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The term bounds `ptr` (len terms + 1) of postings after keeping those where `kept` (one per posting),
    from a running count read at the bounds: no term id per posting is materialised."""
    running = np.zeros(len(kept) + 1, dtype=np.int32 if len(kept) < 2**31 else np.int64)
    np.cumsum(kept, out=running[1:])
    out: np.ndarray = running[np.asarray(ptr, dtype=np.int64)].astype(np.int64)
    return out


def best(hits: np.ndarray, s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of (positions, scores), best first."""
    if not len(hits):
        return hits, s
    kk = min(k, len(hits))
    top = np.argpartition(-s, kk - 1)[:kk]
    top = top[np.argsort(-s[top], kind="stable")]
    return hits[top], s[top]


@dataclass(frozen=True, slots=True)
class View:
    """The documents one caller may see (live ones only) and their statistics."""

    mask: np.ndarray  # bool per position
    live: int
    avgdl: float


class BM25:
    def __init__(self, docs: Sequence[str] = ()) -> None:
        self._terms = Terms()
        self._ptr = np.zeros(1, dtype=np.int64)
        self._docs = np.empty(0, dtype=np.int32)
        self._tf = np.empty(0, dtype=np.uint8)  # narrow(): uint8, uint16 or float32
        self._norm_avgdl = 1.0
        self._dl = np.empty(0, dtype=np.float32)
        self._alive = np.empty(0, dtype=bool)
        self._delta: dict[int, list[tuple[int, int]]] = {}  # term -> [(doc, tf)] not yet merged
        self._delta_docs = 0
        self._cached: tuple[int, float] | None = None
        self._weights: OrderedDict[int, np.ndarray] = OrderedDict()  # term -> its merged postings' weights
        self._weights_bytes = 0
        self._weights_lock = threading.Lock()  # searches run side by side
        self.append(docs)

    def __len__(self) -> int:
        return len(self._dl)

    @property
    def term_count(self) -> int:
        """Distinct terms in the dictionary (those only dead documents held included, until a snapshot)."""
        return len(self._terms)

    @property
    def alive(self) -> int:
        return int(self._alive.sum())

    def append(self, docs: Iterable[str], *, merge: bool = True) -> range:
        """Add documents at the next positions; returns them. merge=False keeps even a bulk append's postings
        pending (merged once they pass MERGE_FRACTION), for a few rows added to a large index."""
        docs = list(docs)
        start = len(self._dl)
        if not docs:
            return range(start, start)
        if len(docs) < BULK:  # a write's few: the same rules in Python (tokens()), no polars in a server
            counted = Counter((start + i, t) for i, text in enumerate(docs) for t in _tokens(text))
            terms = list(dict.fromkeys(t for _, t in counted))
            vocab = dict(zip(terms, self._terms.add(terms).tolist(), strict=True)) if terms else {}
            tids = np.array([vocab[t] for _, t in counted], dtype=np.int64)
            doc = np.array([d for d, _ in counted], dtype=np.int64)
            counts = np.array(list(counted.values()), dtype=np.int64)
        else:
            import polars as pl

            tf = token_frame(docs, start).group_by("doc", "t").len("tf")
            terms = tf["t"].unique().to_list()
            vocab = dict(zip(terms, self._terms.add(terms).tolist(), strict=True))
            tids = tf["t"].replace_strict(vocab, return_dtype=pl.Int64).to_numpy()
            doc = tf["doc"].to_numpy()
            counts = tf["tf"].to_numpy()
        lengths = np.bincount(doc - start, weights=counts, minlength=len(docs)).astype(np.float32)
        self._dl = np.concatenate([self._dl, lengths])
        self._cached = None
        self._alive = np.concatenate([self._alive, np.ones(len(docs), dtype=bool)])
        if merge and len(docs) >= BULK:
            self._merge((tids, doc, counts))
            return range(start, len(self._dl))
        for t, d, c in zip(tids.tolist(), doc.tolist(), counts.tolist(), strict=True):
            self._delta.setdefault(t, []).append((d, c))
        self._delta_docs += len(docs)
        if self._delta_docs > max(256, MERGE_FRACTION * len(self._dl)):
            self._merge()
        return range(start, len(self._dl))

    def kill(self, positions: Iterable[int] | np.ndarray) -> None:
        self._alive[np.asarray(list(positions) if not isinstance(positions, np.ndarray) else positions,
                               dtype=np.int64)] = False
        self._cached = None

    def _merge(self, bulk: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        """Fold the pending postings (and `bulk`'s: term ids, documents, counts) into the sorted ones, dropping
        the dead documents': each added posting goes to the end of its term's range, in the order given, as a
        stable sort of everything by term would place it. O(postings) in place of that sort: at 1M memories
        the sort's int64 copies of every posting took ~1.2 GB when a forget's snapshot was written."""
        nterms = len(self._terms)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if self._delta:
            d = np.asarray([(t, doc, c) for t, posts in self._delta.items() for doc, c in posts], dtype=np.int64)
            parts.append((d[:, 0], d[:, 1], d[:, 2].astype(np.float32)))
        if bulk is not None:
            parts.append((np.asarray(bulk[0], dtype=np.int64), np.asarray(bulk[1], dtype=np.int64),
                          np.asarray(bulk[2]).astype(np.float32)))
        docs, tf = self._docs, self._tf
        ptr = np.zeros(nterms + 1, dtype=np.int64)
        ptr[: len(self._ptr)] = self._ptr
        ptr[len(self._ptr) :] = self._ptr[-1] if len(self._ptr) else 0
        if len(docs):
            live = self._alive[docs]
            if not live.all():
                ptr = _kept_bounds(ptr, live)
                docs, tf = docs[live], tf[live]
        if parts:
            terms = np.concatenate([p[0] for p in parts])
            added, counts = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
            keep = self._alive[added] if len(added) else np.empty(0, dtype=bool)
            terms, added, counts = terms[keep], added[keep], counts[keep]
            order = np.argsort(terms, kind="stable")
            terms, added, counts = terms[order], added[order], counts[order]
            at = ptr[terms + 1]  # the end of each one's term range (np.insert keeps equal positions in order)
            docs = np.insert(docs.astype(np.int32, copy=False), at, added.astype(np.int32))
            wide = np.result_type(tf.dtype, narrow(counts).dtype)
            tf = np.insert(tf.astype(wide, copy=False), at, counts.astype(wide))
            ptr[1:] += np.cumsum(np.bincount(terms, minlength=nterms))
        self._docs, self._tf = docs.astype(np.int32, copy=False), narrow(tf)
        # Lucene-style: the length normalisation of each document under the mean length at merge time
        self._renorm()
        self._ptr = ptr
        self._delta, self._delta_docs = {}, 0

    def settle(self) -> None:
        """Drop the dead documents' postings and weigh every posting under the live documents' mean length: from
        here on it scores as a fresh build of the live texts (the same weights and document frequencies). The
        pending postings stay pending (no re-sort): O(postings), element-wise."""
        if len(self._docs):
            live = self._alive[self._docs]
            if not live.all():
                self._ptr = _kept_bounds(self._ptr, live)
                self._docs, self._tf = self._docs[live], self._tf[live]
        for tid, posts in list(self._delta.items()):
            kept = [(d, c) for d, c in posts if self._alive[d]]
            if kept:
                self._delta[tid] = kept
            else:
                del self._delta[tid]
        self._renorm()
        self._cached = None

    def _renorm(self) -> None:
        """The live documents' mean length becomes the one postings are weighed under."""
        alive_dl = self._dl[self._alive]
        self._norm_avgdl = float(alive_dl.mean()) if len(alive_dl) else 1.0
        with self._weights_lock:  # the postings or their normalisation changed
            self._weights, self._weights_bytes = OrderedDict(), 0

    def compacted(self, new_pos: np.ndarray) -> tuple[Terms, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The live documents' postings renumbered by `new_pos` (old position -> new, -1: dropped), for a
        snapshot: (terms, ptr, docs, tf, dl), terms only the dropped documents held left out. O(postings)."""
        if self._delta:
            self._merge()
        keep = new_pos >= 0
        held = keep[self._docs]  # per posting: its document stays
        bounds = _kept_bounds(self._ptr, held)
        counts = np.diff(bounds)
        used = counts > 0
        ptr = np.zeros(int(used.sum()) + 1, dtype=np.int64)
        np.cumsum(counts[used], out=ptr[1:])
        docs = new_pos.astype(np.int32)[self._docs[held]]
        tf = self._tf[held]
        every = np.zeros(len(self._terms), dtype=bool)  # terms past the postings' last (none held) are dropped
        every[: len(used)] = used
        names = self._terms.subset(every)
        dl = np.empty(int(keep.sum()), dtype=np.float32)
        dl[new_pos[keep]] = self._dl[keep]
        return names, ptr, docs, tf, dl

    @classmethod
    def restore(cls, terms: Terms, ptr: np.ndarray, docs: np.ndarray, tf: np.ndarray, dl: np.ndarray) -> BM25:
        """A BM25 over every document of `dl` from compacted() postings, as a fresh build of the same texts.
        The arrays are kept as given (views of a snapshot's bytes: no copy); `tf` may be uint8 or uint16."""
        bm = cls()
        if tf.dtype not in (np.uint8, np.uint16, np.float32):
            raise ValueError(f"term frequencies as {tf.dtype}")
        bm._terms, bm._ptr, bm._docs, bm._tf = terms, ptr, docs, tf
        bm._dl = dl if dl.dtype == np.float32 else dl.astype(np.float32)
        bm._alive = np.ones(len(dl), dtype=bool)
        bm._renorm()
        return bm

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """A term's postings: (doc positions, term frequencies as float32)."""
        tid = self._terms.get(term)
        if tid is None:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        docs, tf = self._docs[:0], self._tf[:0]
        if tid + 1 < len(self._ptr):
            lo, hi = self._ptr[tid], self._ptr[tid + 1]
            docs, tf = self._docs[lo:hi], self._tf[lo:hi]
        tf = tf.astype(np.float32)
        extra = self._delta.get(tid)
        if extra:
            d = np.asarray(extra, dtype=np.int64)
            docs = np.concatenate([docs, d[:, 0].astype(np.int32)])
            tf = np.concatenate([tf, d[:, 1].astype(np.float32)])
        return docs, tf

    def _stats(self) -> tuple[int, float]:
        """(live documents, mean live document length), cached until the next append or kill."""
        if self._cached is None:
            live = int(self._alive.sum())
            self._cached = (live, float(self._dl[self._alive].mean()) if live else 1.0)
        return self._cached

    def _weigh(self, docs: np.ndarray, tf: np.ndarray) -> np.ndarray:
        """Postings' length-normalised tf under the mean length of the last merge (float32)."""
        tf = tf.astype(np.float32)
        norm = K1 * (1.0 - B + B * self._dl[docs] / (self._norm_avgdl or 1.0))
        return (tf * (K1 + 1.0) / (tf + norm)).astype(np.float32)

    def _weighted(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """A term's postings: (doc positions, length-normalised tf under the mean length of the last merge);
        the merged postings' weights from the cache, or weighed now and cached."""
        tid = self._terms.get(term)
        if tid is None:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        docs, w = self._docs[:0], np.empty(0, np.float32)
        if tid + 1 < len(self._ptr):
            lo, hi = self._ptr[tid], self._ptr[tid + 1]
            docs = self._docs[lo:hi]
            with self._weights_lock:
                cached = self._weights.get(tid)
                if cached is not None:
                    self._weights.move_to_end(tid)
            if cached is None:
                cached = self._weigh(docs, self._tf[lo:hi])
                self._keep(tid, cached)
            w = cached
        extra = self._delta.get(tid)
        if extra:
            d = np.asarray(extra, dtype=np.int64)
            docs = np.concatenate([docs, d[:, 0].astype(np.int32)])
            w = np.concatenate([w, self._weigh(d[:, 0], d[:, 1])])
        return docs, w

    def _keep(self, tid: int, w: np.ndarray) -> None:
        """Cache a term's weights, dropping the least recently used past WEIGHT_CACHE_BYTES."""
        if w.nbytes > WEIGHT_CACHE_BYTES:
            return
        with self._weights_lock:
            if tid in self._weights:
                return
            self._weights[tid] = w
            self._weights_bytes += w.nbytes
            while self._weights_bytes > WEIGHT_CACHE_BYTES:
                _, old = self._weights.popitem(last=False)
                self._weights_bytes -= old.nbytes

    def view(self, visible: np.ndarray) -> View:
        """The statistics of the live documents among `visible` (a bool per position). Lengths are whole
        numbers, summed in float64: the mean is exact whatever the documents' order."""
        mask = self._alive & visible[: len(self._alive)]
        live = int(mask.sum())
        return View(mask=mask, live=live, avgdl=float(self._dl[mask].sum(dtype=np.float64)) / live if live else 1.0)

    def _in_view(self, term: str, view: View) -> tuple[np.ndarray, np.ndarray]:
        """A term's postings among the view's documents, length-normalised under the view's mean length."""
        docs, tf = self._postings(term)
        keep = view.mask[docs]
        docs, tf = docs[keep], tf[keep]
        norm = K1 * (1.0 - B + B * self._dl[docs] / view.avgdl)
        return docs, (tf * (K1 + 1.0) / (tf + norm)).astype(np.float32)

    def scores(self, query: str, mask: np.ndarray | None = None,
               view: View | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(positions, BM25 scores) of the live documents holding a query term and passing the mask, with
        every statistic over `view` when given (else over every live document, precomputed).
        Terms in more than COMMON_FRACTION of the documents are skipped when the query has rarer ones
        (their idf is near zero; their postings are most of the work)."""
        terms = dict.fromkeys(tokens(query))
        if view is None:
            live, _ = self._stats()
            postings = [self._weighted(t) for t in terms]
        else:
            live = view.live
            postings = [self._in_view(t, view) for t in terms]
        postings = [p for p in postings if len(p[0])]
        rare = [p for p in postings if len(p[0]) <= COMMON_FRACTION * live]
        parts_d, parts_w = [], []
        for docs, w in rare or postings:
            df = len(docs)
            idf = math.log(1.0 + (live - df + 0.5) / (df + 0.5))
            parts_d.append(docs)
            parts_w.append(w * np.float32(idf))
        if not parts_d:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        docs, weights = np.concatenate(parts_d), np.concatenate(parts_w)
        pos: np.ndarray
        s: np.ndarray
        if len(parts_d) == 1:
            pos, s = docs.astype(np.int64), weights
        elif len(docs) > len(self._dl) // 8:  # dense enough: one pass over all documents
            full = np.bincount(docs, weights=weights, minlength=len(self._dl))
            hit = full > 0  # flatnonzero over booleans: 5x faster than over the float scores
            hit &= self._alive if mask is None else (self._alive & mask)
            pos = np.flatnonzero(hit)
            return pos.astype(np.int64), full[pos].astype(np.float32)
        else:
            pos, inverse = np.unique(docs, return_inverse=True)
            s = np.bincount(inverse, weights=weights)
        keep = self._alive[pos] if mask is None else (self._alive[pos] & mask[pos])
        return pos[keep].astype(np.int64), s[keep].astype(np.float32)

    def specificity(self, query: str, view: View | None = None) -> float:
        """How rare the query's rarest known term is: its idf over the idf of a term in one document (0..1).
        An identifier or a rare name scores ~1; a query of common words scores low. Over `view` when given."""
        terms = dict.fromkeys(tokens(query))
        if view is None:
            live, _ = self._stats()
            dfs = [len(self._postings(t)[0]) for t in terms]
        else:
            live = view.live
            dfs = [int(view.mask[self._postings(t)[0]].sum()) for t in terms]
        dfs = [d for d in dfs if d]
        if not dfs or live < 2:
            return 0.0
        idf = math.log(1.0 + (live - min(dfs) + 0.5) / (min(dfs) + 0.5))
        return min(1.0, idf / math.log(1.0 + (live - 0.5) / 1.5))

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (positions, scores) with score > 0, best first."""
        return best(*self.scores(query, mask), k)

    def matching_all(self, query: str) -> np.ndarray:
        """Positions of live documents that contain every query token (forget by query)."""
        terms = list(dict.fromkeys(tokens(query)))
        if not terms:
            return np.empty(0, dtype=np.int64)
        result: np.ndarray | None = None
        for term in terms:
            docs = np.unique(self._postings(term)[0]).astype(np.int64)
            result = docs if result is None else np.intersect1d(result, docs, assume_unique=True)
        assert result is not None
        return result[self._alive[result]]
