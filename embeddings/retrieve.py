"""Hybrid retrieval: filters first, then lexical (BM25) and dense (cosine) rankings fused by their scores.

    candidates = every memory passing the filters (visibility, kinds, tags, sources, time range, as-of,
                 weekdays, local hours) -- computed before any ranking, so a narrow filter still yields k
                 results when k exist, and hidden memories never influence scores or counts
    lexical    = BM25 over the candidates' texts (the redacted texts when the caller's location is not precise),
                 every statistic (idf, mean length, the query's specificity) over what the caller may see
                 (Catalog.view), so a narrower caller learns nothing of hidden texts from scores or weights
    dense      = inner product of the query vector with the candidates' vectors (exact over small subsets)
    recency    = only when the query asks "when did I last/first": the most relevant candidates (near-ties on
                 both other signals) come first, latest (or earliest) first
    fused      = "score" (the default): a convex combination over the union of both top lists,
                     cosine + w_lex * BM25 / best BM25,
                 with each signal's score computed exactly for every memory in the union (a memory only BM25
                 found still gets its cosine, and the other way round), so a rare name or identifier the model
                 does not know can rise on its lexical score alone;
                 "rrf": sum over signals of weight / (RRF_K + rank) (Cormack et al. 2009, k = 60), where a memory
                 only one signal found can never pass the other's top ranks.
                 The lexical weight w_lex grows from LEXICAL_MIN_WEIGHT to LEXICAL_MAX_WEIGHT with the rarity of
                 the query's rarest term (dense weighs 1). Score fusion is the default because it measured above
                 rank fusion on both evaluation seeds (bench/README.md), as Bruch et al. (TOIS 2023) report in general.
`explain` keeps every signal's rank (None: beyond the depth that signal searched), score, weight and its
contribution to the fused score.

The Catalog holds, per memory, the columns the filters need (numpy arrays aligned with BM25 positions; kind,
sensitivity and source as small-integer codes into a table of their few distinct strings);
it is loaded from the vault once and kept in step by the service on every write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embeddings.index import VectorIndex, sorted_lookup
from embeddings.lexical import BM25, View, best
from embeddings.records import MemoryRecord
from embeddings.redaction import SENSITIVITIES, Redaction
from embeddings.temporal import TimeFilter

if TYPE_CHECKING:  # frames come from the vault when the catalog is built from rows; a snapshot needs none
    import polars as pl

RRF_K = 60
WEIGHTS = {"dense": 1.0, "lexical": 1.0, "recency": 1.0}
LEXICAL_MIN_WEIGHT = 0.3  # lexical weight for a query of common words ...
LEXICAL_MAX_WEIGHT = 0.5  # ... and for an identifier (bench/eval_retrieval.py: higher lets BM25 put the trips
# to and from a named place above the visits at it; identifiers are found at any weight in [0.3, 1])
MIN_DEPTH = 100
RELEVANT_DENSE_GAP = 0.06  # recency ranks the candidates within this cosine of the best one
RELEVANT_LEXICAL_FRACTION = 0.8  # ... and within this fraction of the best BM25 score
BASE_MASKS = 32  # (view, kinds) candidate masks kept per catalog state (Catalog._base), each a bool per memory
Mode = Literal["hybrid", "dense", "lexical"]
Fusion = Literal["score", "rrf"]
_NO_TIME = np.iinfo(np.int64).min
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    kinds: frozenset[str] | None = None
    tags: frozenset[str] | None = None  # a memory must carry every tag given
    sources: frozenset[str] | None = None
    as_of: datetime | None = None  # only what was known then (ingested_at <= as_of)
    weekdays: frozenset[int] | None = None
    hours: tuple[int, int] | None = None

    @classmethod
    def combine(cls, base: Filters, time: TimeFilter) -> Filters:
        t = time.narrow(since=base.since, until=base.until)
        return cls(since=t.since, until=t.until, kinds=base.kinds if base.kinds is not None else t.kinds,
                   tags=base.tags, sources=base.sources,
                   as_of=base.as_of, weekdays=t.weekdays or base.weekdays, hours=t.hours or base.hours)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("since", "until", "as_of"):
            v = getattr(self, key)
            if v is not None:
                out[key] = v.astimezone(UTC).isoformat()
        for key in ("kinds", "tags", "sources", "weekdays"):
            v = getattr(self, key)
            if v:
                out[key] = sorted(v)
        if self.hours:
            out["hours"] = [f"{m // 60:02d}:{m % 60:02d}" for m in self.hours]
        return out


@dataclass(frozen=True, slots=True)
class Signal:
    rank: int | None  # 1-based; None: beyond the depth this signal searched (its score computed for the fusion)
    score: float  # cosine (dense), BM25 (lexical), epoch seconds (recency)
    weight: float = 1.0
    contribution: float = 0.0  # its part of the fused score (the parts add up to it)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    memory: MemoryRecord
    score: float
    rank: int
    signals: dict[str, Signal] = field(default_factory=dict)

    def to_dict(self, *, explain: bool = False) -> dict[str, Any]:
        out = self.memory.to_dict() | {"score": round(self.score, 6), "rank": self.rank}
        if explain:
            out["explain"] = {name: {"rank": s.rank, "score": round(s.score, 6), "weight": round(s.weight, 4),
                                     "contribution": round(s.contribution, 6)} for name, s in self.signals.items()}
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    hits: tuple[Hit, ...]
    query_sha256: str
    filters: dict[str, Any]
    understood: tuple[str, ...]
    candidates: int
    mode: str

    def to_dict(self, *, explain: bool = False) -> dict[str, Any]:
        return {"hits": [h.to_dict(explain=explain) for h in self.hits], "filters": self.filters,
                "understood": list(self.understood), "candidates": self.candidates, "mode": self.mode}


def _us(col: pl.Series | _Column) -> np.ndarray:
    if isinstance(col, _Column):
        return np.array([_NO_TIME if t is None else (t - _EPOCH) // _ONE_US for t in col], dtype=np.int64)
    return col.dt.epoch("us").fill_null(_NO_TIME).to_numpy().astype(np.int64)


class _Column(list[Any]):
    """One column of Rows, with the frame methods Catalog.add calls."""

    def to_list(self) -> list[Any]:
        return list(self)

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self)

    def fill_null(self, value: Any) -> _Column:
        return _Column(value if v is None else v for v in self)


class Rows:
    """Rows of Catalog.SELECT as vault.query returns them, read by Catalog.add as it reads a polars frame: a
    write's few memories are added without importing polars (and pyarrow) into a server (+~120 MB)."""

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        self.height = len(rows)
        columns = zip(*rows, strict=True) if rows else [()] * len(Catalog.COLUMNS)
        self._columns = {n: _Column(col) for n, col in zip(Catalog.COLUMNS, columns, strict=True)}

    def __getitem__(self, name: str) -> _Column:
        return self._columns[name]


class Catalog:
    """Per-memory filter columns and the BM25 indexes, by position (positions are never reused)."""

    COLUMNS = ("memory_id", "kind", "sensitivity", "source", "start_ts", "end_ts", "utc_offset_min", "ingested_at",
               "tags", "text", "text_redacted")
    SELECT = f"SELECT {', '.join(COLUMNS)} FROM memories"

    def __init__(self) -> None:
        self.ids = np.empty(0, np.int64)
        self.start = np.empty(0, np.int64)
        self.end = np.empty(0, np.int64)
        self.offset = np.empty(0, np.int16)  # minutes east of UTC
        self.ingested = np.empty(0, np.int64)
        self.has_redacted = np.empty(0, bool)
        self.alive = np.empty(0, bool)
        self._codes: dict[str, int] = {}
        self.kind_code = np.empty(0, np.int16)
        self.sensitivity_code = np.empty(0, np.int16)
        self._sources: dict[str, int] = {}
        self.source_code = np.empty(0, np.int32)
        self.weekday = np.empty(0, np.int8)  # local weekday of the start, Monday = 0
        self.minute = np.empty(0, np.int16)  # local minute of day of the start
        self.duration = np.empty(0, np.int16)  # minutes, clipped to [1, 1440]
        self._tags: dict[str, np.ndarray] = {}  # tag -> positions carrying it (int32)
        self._texts: list[str] | None = []  # None: loaded from a snapshot, the texts are read when needed
        self._redacted: dict[int, str] = {}
        self.texts_of: Callable[[np.ndarray], list[str]] | None = None  # ids -> the texts a redacted caller sees
        self._by_id: tuple[np.ndarray, np.ndarray] | None = None  # (ids sorted, their positions): see _id_order
        self._slot_maps: dict[int, np.ndarray] = {}  # index version -> slot per catalog position
        self.lexical = BM25()
        self._lexical_redacted: BM25 | None = None
        self._views: dict[tuple[tuple[str, ...], bool], View] = {}  # per view key; cleared by every add/remove
        self._bases: dict[tuple[frozenset[str], frozenset[str] | None], np.ndarray] = {}  # see _base; same life

    @classmethod
    def load(cls, vault: Any, indexed: dict[int, str] | None = None,
             texts_of: Callable[[np.ndarray], list[str]] | None = None) -> Catalog:
        """The catalog of every memory row. With `texts_of` it keeps no text (466 MB at the bench's 1M): a
        redacted caller's BM25 reads them through it when first needed, as after Catalog.restore."""
        cat = cls()
        cat.add(vault.frame(cls.SELECT + " ORDER BY start_ts NULLS LAST, memory_id"), indexed)
        if texts_of is not None:
            cat._texts, cat._redacted, cat.texts_of = None, {}, texts_of
        return cat

    def __len__(self) -> int:
        return int(np.count_nonzero(self.alive))  # sum() of a bool array: 6x slower (0.8 ms at 1M)

    @property
    def kind(self) -> np.ndarray:
        """Each position's kind as a string (built on each call from the codes: for a one-off, not a search)."""
        return self._names(self._codes)[self.kind_code]

    @property
    def sensitivity(self) -> np.ndarray:
        return self._names(self._codes)[self.sensitivity_code]

    @property
    def source(self) -> np.ndarray:
        return self._names(self._sources, dtype=object)[self.source_code]

    @staticmethod
    def _names(table: dict[str, int], dtype: Any = "<U8") -> np.ndarray:
        return np.array(list(table) or [""], dtype=dtype)

    def add(self, df: pl.DataFrame | Rows, indexed: dict[int, str] | None = None, *, merge: bool = True) -> None:
        """Append memories (a frame shaped like SELECT, or its Rows); ids already present are replaced. `indexed` gives the
        text BM25 indexes for some of them instead of their own (a note with its neighbouring turns);
        merge=False keeps their BM25 postings pending (BM25.append)."""
        if df.height == 0:
            return
        self.remove(df["memory_id"].to_numpy())
        base = len(self.ids)
        self.ids = np.concatenate([self.ids, df["memory_id"].to_numpy().astype(np.int64)])
        self.kind_code = np.concatenate([self.kind_code, self._encode(self._codes, df["kind"].to_list(), np.int16)])
        self.sensitivity_code = np.concatenate([self.sensitivity_code,
                                                self._encode(self._codes, df["sensitivity"].to_list(), np.int16)])
        self.source_code = np.concatenate([self.source_code,
                                           self._encode(self._sources, df["source"].to_list(), np.int32)])
        start, end = _us(df["start_ts"]), _us(df["end_ts"])
        self.start = np.concatenate([self.start, start])
        self.end = np.concatenate([self.end, np.where(end == _NO_TIME, start, end)])
        offset = df["utc_offset_min"].fill_null(0).to_numpy().astype(np.int64)
        self.offset = np.concatenate([self.offset, np.clip(offset, -1440, 1440).astype(np.int16)])
        self.ingested = np.concatenate([self.ingested, _us(df["ingested_at"])])
        red = df["text_redacted"].to_list()
        self.has_redacted = np.concatenate([self.has_redacted, np.array([r is not None for r in red], dtype=bool)])
        self.alive = np.concatenate([self.alive, np.ones(df.height, bool)])
        end = self.end[base:]
        local_min = (start // _US + offset * 60) // 60
        self.weekday = np.concatenate([self.weekday, ((local_min // 1440 + 3) % 7).astype(np.int8)])  # 1970-01-01: Thu
        self.minute = np.concatenate([self.minute, (local_min % 1440).astype(np.int16)])
        self.duration = np.concatenate([self.duration, np.clip((end - start) // (60 * _US), 1, 1440).astype(np.int16)])
        tagged: dict[str, list[int]] = {}
        for i, tags in enumerate(df["tags"].to_list()):
            for t in tags or ():
                tagged.setdefault(t, []).append(base + i)
        for t, pos in tagged.items():
            before = self._tags.get(t)
            new = np.asarray(pos, dtype=np.int32)
            self._tags[t] = new if before is None else np.concatenate([before, new])
        texts = df["text"].to_list()
        if indexed:
            texts = [indexed.get(m, t) for m, t in zip(df["memory_id"].to_list(), texts, strict=True)]
        if self._texts is not None:
            self._texts.extend(texts)
            self._redacted.update({base + i: r for i, r in enumerate(red) if r is not None})
        self.lexical.append(texts, merge=merge)
        if self._lexical_redacted is not None:
            self._lexical_redacted.append(r if r is not None else t for t, r in zip(texts, red, strict=True))
        self._by_id = None
        self._slot_maps = {}
        self._views = {}
        self._bases = {}

    def remove(self, ids: Iterable[int] | np.ndarray) -> None:
        pos = self.positions(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64))
        if not len(pos):
            return
        self.alive[pos] = False
        self.lexical.kill(pos)
        if self._lexical_redacted is not None:
            self._lexical_redacted.kill(pos)
        if self._texts is not None:
            for p in pos.tolist():
                self._texts[p] = ""
                self._redacted.pop(p, None)
        self._slot_maps = {}
        self._views = {}
        self._bases = {}

    @classmethod
    def restore(cls, columns: dict[str, np.ndarray], codes: list[str], sources: list[str],
                tags: dict[str, np.ndarray], lexical: BM25, texts_of: Callable[[np.ndarray], list[str]]) -> Catalog:
        """A catalog of live memories from a snapshot's columns (embeddings/snapshot.py), no per-row Python and
        no copy (the arrays stay views of the snapshot's bytes); the texts stay in the vault (`texts_of` reads
        them when a redacted caller first needs its BM25)."""
        cat = cls()
        for name, values in columns.items():
            setattr(cat, name, values)
        cat._codes = {c: i for i, c in enumerate(codes)}
        cat._sources = {c: i for i, c in enumerate(sources)}
        cat.alive = np.ones(len(cat.ids), dtype=bool)
        cat._tags, cat.lexical, cat._texts, cat.texts_of = tags, lexical, None, texts_of
        return cat

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Live positions of the given ids (unknown ids are skipped)."""
        pos = self.position_of(ids)
        return pos[pos >= 0]

    def position_of(self, ids: np.ndarray) -> np.ndarray:
        """The live position of each id, -1 where it is unknown or deleted."""
        if not len(self.ids) or not len(ids):
            return np.full(len(ids), -1, dtype=np.int64)
        sorted_ids, order = self._id_order()
        pos = sorted_lookup(sorted_ids, order, np.asarray(ids, dtype=np.int64)).astype(np.int64)
        return np.where((pos >= 0) & self.alive[np.maximum(pos, 0)], pos, -1)

    def _id_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids sorted, the position of each), per id the live position first; built once per add()."""
        if self._by_id is None:
            order = np.lexsort((~self.alive, self.ids))
            self._by_id = (self.ids[order], order.astype(np.int32))
        return self._by_id

    def warm(self, *indexes: VectorIndex) -> None:
        """Build the id lookups now (on load, alone) rather than in the first search that needs them."""
        if len(self.ids):
            self._id_order()
            everything = np.ones(len(self.ids), dtype=bool)
            for index in indexes:
                self.slots(index, everything)

    def slots(self, index: VectorIndex, mask: np.ndarray) -> np.ndarray:
        """The index's slot positions of the masked memories that have a vector. The map from catalog position
        to slot is built once per (catalog, index) state: a filtered search then costs a gather, not a
        search of every candidate id among the index's ids (~4 ms at 100k)."""
        slot = self._slot_maps.get(index.version)
        if slot is None:
            slot = np.where(self.alive, index.slot_of(self.ids), -1)
            if len(index) < 2**31:
                slot = slot.astype(np.int32)  # half the map (7.6 MB at 1M); the chosen are widened below
            if len(self._slot_maps) >= 4:  # the full and the redacted index; older versions are dead
                self._slot_maps = {}
            self._slot_maps[index.version] = slot
        chosen = slot[mask]
        return chosen[chosen >= 0].astype(np.int64)

    def bm25(self, *, redacted: bool) -> BM25:
        if not redacted:
            return self.lexical
        if self._lexical_redacted is None:
            if self._texts is None:  # loaded from a snapshot: the texts are read now (dead positions: "")
                assert self.texts_of is not None, "a catalog loaded from a snapshot reads its texts through texts_of"
                texts = self.texts_of(np.where(self.alive, self.ids, -1))
            else:
                texts = [self._redacted.get(i, t) for i, t in enumerate(self._texts)]
            bm = BM25(texts)
            bm.kill(np.flatnonzero(~self.alive))
            self._lexical_redacted = bm
        return self._lexical_redacted

    def view(self, redaction: Redaction) -> View | None:
        """The lexical statistics of what `redaction` may see (None for a caller that sees everything, whose
        statistics are the whole index's, precomputed). Built once per view and catalog state."""
        if redaction.sees_everything:
            return None
        key = redaction.key
        view = self._views.get(key)
        if view is None:
            visible = self.alive & self._member(self.sensitivity_code, redaction.visible)
            view = self.bm25(redacted=redaction.redacts_text).view(visible)
            self._views[key] = view
        return view

    def _base(self, visible: frozenset[str], kinds: frozenset[str] | None) -> np.ndarray:
        """Live memories of the visible sensitivities and the given kinds: built once per (view, kinds) and
        catalog state (a search of the owner's, or of one token's, view no longer pays two passes over n)."""
        key = (visible, kinds)
        base = self._bases.get(key)
        if base is None:
            base = self.alive.copy()
            if not SENSITIVITIES <= visible:
                base &= self._member(self.sensitivity_code, visible)
            if kinds is not None:
                base &= self._member(self.kind_code, kinds)
            if len(self._bases) >= BASE_MASKS:  # views x kind sets: a handful in practice
                self._bases = {}
            self._bases[key] = base
        return base

    def mask(self, f: Filters, visible: frozenset[str]) -> np.ndarray:
        m = self._base(visible, f.kinds).copy()
        if f.sources is not None:
            m &= self._member(self.source_code, f.sources, self._sources)
        for tag in f.tags or ():
            has = np.zeros(len(m), bool)
            has[self._tags.get(tag, [])] = True
            m &= has
        if f.since is None and f.until is None and f.as_of is None and f.weekdays is None and f.hours is None:
            return m
        # whole-array comparisons only, written into `m` and one scratch array: no gathers (a table lookup per
        # memory) and no temporaries the size of the int64 columns (1M memories: ~0.1 ms a comparison)
        scratch = np.empty(len(m), bool)
        if f.since is not None or f.until is not None or f.weekdays is not None or f.hours is not None:
            m &= np.not_equal(self.start, _NO_TIME, out=scratch)  # each of these needs a start time
        if f.since is not None:  # the span [start, max(end, start)] reaches `since`
            since = int(f.since.timestamp() * _US)
            m &= np.greater_equal(self.end, since, out=scratch) | (self.start >= since)
        if f.until is not None:
            m &= np.less(self.start, int(f.until.timestamp() * _US), out=scratch)
        if f.as_of is not None:
            m &= np.less_equal(self.ingested, int(f.as_of.timestamp() * _US), out=scratch)
        if f.weekdays is not None:
            m &= self._on_days(f.weekdays)
        if f.hours is not None:
            m &= self._in_hours(*f.hours)
        return m

    @staticmethod
    def _encode(table: dict[str, int], values: list[str], dtype: type[np.integer]) -> np.ndarray:
        return np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=dtype, count=len(values))

    def _member(self, codes: np.ndarray, values: frozenset[str], table: dict[str, int] | None = None) -> np.ndarray:
        """codes ∈ values, through a lookup table over the few distinct kinds / sensitivities (or sources)."""
        table = self._codes if table is None else table
        hit = np.zeros(len(table) + 1, bool)
        hit[[table[v] for v in values if v in table]] = True
        return hit[codes]

    def _on_days(self, weekdays: frozenset[int]) -> np.ndarray:
        """Is the local weekday of the start one of `weekdays`? One int8 comparison per day named."""
        hit = np.zeros(len(self.weekday), bool)
        for d in sorted(weekdays):
            hit |= self.weekday == d
        return hit

    def _in_hours(self, a: int, b: int) -> np.ndarray:
        """Does the local span [start, end) overlap the daily window [a, b) (minutes; a > b wraps midnight)?
        In the columns' int16 (start minute < 1440, end minute < 2880): no widened copies."""
        s = self.minute
        e = s + self.duration
        windows = [(a, b)] if a < b else [(a, 1440), (0, b)]
        hit = np.zeros(len(s), bool)
        for lo, hi in windows:
            for shift in (0, 1440):  # spans running past midnight continue on the next day
                hit |= (s < hi + shift) & (e > lo + shift)
        return hit


@dataclass(frozen=True, slots=True, kw_only=True)
class Ranked:
    ids: list[int]
    fused: list[float]
    signals: list[dict[str, Signal]]
    candidates: int


def _dense(full: VectorIndex, redacted: VectorIndex | None, cat: Catalog, mask: np.ndarray, q: np.ndarray, depth: int,
           use_redacted: bool) -> tuple[np.ndarray, np.ndarray]:
    everything = bool(mask.all()) if len(mask) else True
    if not use_redacted or redacted is None:
        if everything and len(cat) == len(full):
            return full.search(q, depth)
        return full.search(q, depth, slots=cat.slots(full, mask))
    plain = mask & ~cat.has_redacted
    ids_a, sc_a = full.search(q, depth, slots=cat.slots(full, plain))
    ids_b, sc_b = redacted.search(q, depth, slots=cat.slots(redacted, mask & cat.has_redacted))
    ids, sc = np.concatenate([ids_a, ids_b]), np.concatenate([sc_a, sc_b])
    order = np.argsort(-sc, kind="stable")[:depth]
    return ids[order], sc[order]


def rank(cat: Catalog, full: VectorIndex, redacted: VectorIndex | None,
         query_vector: np.ndarray | Future[np.ndarray] | None, query: str, *, k: int, filters: Filters,
         redaction: Redaction, recency: str | None = None, mode: Mode = "hybrid", fusion: Fusion = "score") -> Ranked:
    """Fused ranking of the candidates that pass `filters` and `redaction.visible`. The query vector may still
    be on its way (a Future, Encoder.encode_query_soon): the mask and BM25 need none, so they run while the
    query thread embeds."""
    mask = cat.mask(filters, redaction.visible)
    n = int(np.count_nonzero(mask))
    depth = max(MIN_DEPTH, 5 * k)
    lists: dict[str, tuple[Sequence[int], Sequence[float]]] = {}
    weights = dict(WEIGHTS)
    exact: dict[str, Callable[[np.ndarray], np.ndarray]] = {}  # signal -> its exact score of any ids
    use_redacted = redaction.redacts_text
    if mode in ("hybrid", "lexical") and query.strip():
        bm25, view = cat.bm25(redacted=use_redacted), cat.view(redaction)  # statistics over the caller's view
        hits, scores = bm25.scores(query, mask, view)
        pos, top = best(hits, scores, depth)
        lists["lexical"] = (cat.ids[pos].tolist(), top.tolist())
        if mode == "hybrid":  # rare terms (names, identifiers) make the lexical ranking more trustworthy
            weights["lexical"] = (LEXICAL_MIN_WEIGHT
                                  + (LEXICAL_MAX_WEIGHT - LEXICAL_MIN_WEIGHT) * bm25.specificity(query, view))

            def lexical(ids: np.ndarray, h: np.ndarray = hits, s: np.ndarray = scores) -> np.ndarray:
                return _scatter(len(cat.ids), h, s)[cat.position_of(ids)]
            exact["lexical"] = lexical
    qv = query_vector.result() if isinstance(query_vector, Future) else query_vector
    if mode in ("hybrid", "dense") and query.strip() and qv is not None and n:
        ids, scores = _dense(full, redacted, cat, mask, qv, depth, use_redacted)
        lists["dense"] = (ids.tolist(), scores.tolist())
        exact["dense"] = lambda ids: _cosines(full, redacted, cat, qv, ids, use_redacted)
    if recency or not lists:
        lists["recency"] = _recency(cat, mask, lists, recency or "latest", depth)
    if fusion == "score" and ("dense" in lists or "lexical" in lists):
        order, fused, signals_of = _score_fusion(lists, weights, exact)
    else:
        fused, signals = _rank_fusion(lists, weights)
        dense_score = {m: s["dense"].score for m, s in signals.items() if "dense" in s}
        order = sorted(fused, key=lambda m: (-fused[m], -dense_score.get(m, -2.0), m))
        signals_of = signals.__getitem__
    if recency and "recency" in lists:  # "when did I last ...": among the near-ties, time decides
        by_time = [m for m in lists["recency"][0] if m in fused]
        first = set(by_time)
        order = by_time + [m for m in order if m not in first]
    order = order[:k]
    return Ranked(ids=order, fused=[fused[m] for m in order], signals=[signals_of(m) for m in order], candidates=n)


def _scatter(n: int, positions: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Scores by catalog position (0 where none), with a trailing 0 for position -1 (unknown ids)."""
    out = np.zeros(n + 1, dtype=np.float32)
    out[positions] = scores
    return out


def _cosines(full: VectorIndex, redacted: VectorIndex | None, cat: Catalog, q: np.ndarray, ids: np.ndarray,
             use_redacted: bool) -> np.ndarray:
    """The exact cosine of each id's vector (the redacted text's where the caller sees that), 0 without one."""
    out = full.scores_of(q, ids)
    if use_redacted and redacted is not None:
        pos = cat.position_of(ids)
        red = (pos >= 0) & cat.has_redacted[np.maximum(pos, 0)]
        out[red] = redacted.scores_of(q, ids[red])
    return np.nan_to_num(out, nan=0.0)


def _rank_fusion(lists: dict[str, tuple[Sequence[int], Sequence[float]]],
                 weights: dict[str, float]) -> tuple[dict[int, float], dict[int, dict[str, Signal]]]:
    fused: dict[int, float] = {}
    signals: dict[int, dict[str, Signal]] = {}
    for name, (ids, scores) in lists.items():
        w = weights[name]
        for r, (mid, s) in enumerate(zip(ids, scores, strict=True), 1):
            fused[mid] = fused.get(mid, 0.0) + w / (RRF_K + r)
            signals.setdefault(mid, {})[name] = Signal(rank=r, score=float(s), weight=w, contribution=w / (RRF_K + r))
    return fused, signals


def _score_fusion(lists: dict[str, tuple[Sequence[int], Sequence[float]]], weights: dict[str, float],
                  exact: dict[str, Callable[[np.ndarray], np.ndarray]],
                  ) -> tuple[list[int], dict[int, float], Callable[[int], dict[str, Signal]]]:
    """weight x cosine + weight x BM25 / best BM25 over the union of the top lists, each signal's score exact for
    every memory of the union: (the union best first, fused score by id, the signals of an id). Ties go to the
    higher cosine, then the lower id. Recency (when asked) orders afterwards and adds nothing here; the signals
    are built only for the hits returned."""
    names = [name for name in ("dense", "lexical") if name in lists]
    listed = [np.asarray(lists[name][0], dtype=np.int64) for name in names]
    every = np.concatenate(listed) if listed else np.empty(0, np.int64)
    distinct, first = np.unique(every, return_index=True)  # each id once, at its first listing
    seen = np.argsort(first, kind="stable")
    union = every[first[seen]]  # in order of first listing, as before
    slot_of = np.empty(len(first), dtype=np.int64)
    slot_of[seen] = np.arange(len(first))  # distinct position -> union position
    at: dict[int, int] = {}  # id -> union position, filled for the hits returned only
    fused = np.zeros(len(union))
    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}  # name -> ranks, scores, has, scale
    for name, ids_of in zip(names, listed, strict=True):
        scores = lists[name][1]
        where = slot_of[np.searchsorted(distinct, ids_of)]
        ranks, values, has = np.zeros(len(union), np.int64), np.zeros(len(union)), np.zeros(len(union), bool)
        ranks[where], values[where], has[where] = np.arange(1, len(ids_of) + 1), scores, True
        if name in exact and not has.all():
            values[~has] = exact[name](union[~has])
            has[:] = True
        scale = weights[name] / scores[0] if name == "lexical" and len(scores) and scores[0] > 0 else weights[name]
        fused += scale * values
        parts[name] = (ranks, values, has, scale)
    cosine = parts["dense"][1] if "dense" in parts else np.zeros(len(union))
    order = union[np.lexsort((union, -cosine, -fused))].tolist()
    recent = {m: (r, s) for r, (m, s) in enumerate(zip(*lists["recency"], strict=True), 1)} if "recency" in lists else {}

    def signals_of(m: int) -> dict[str, Signal]:
        if not at:
            at.update(zip(union.tolist(), range(len(union)), strict=True))
        i = at[m]
        out = {name: Signal(rank=int(ranks[i]) or None, score=float(values[i]), weight=weights[name],
                            contribution=float(scale * values[i]))
               for name, (ranks, values, has, scale) in parts.items() if has[i]}
        if m in recent:
            out["recency"] = Signal(rank=recent[m][0], score=float(recent[m][1]), weight=0.0)
        return out

    return order, dict(zip(union.tolist(), fused.tolist(), strict=True)), signals_of


def _recency(cat: Catalog, mask: np.ndarray, lists: dict[str, tuple[Sequence[int], Sequence[float]]], direction: str,
             depth: int) -> tuple[list[int], list[float]]:
    """The most relevant candidates (near the best dense score and the best BM25 score) ordered by time; all
    candidates by time when there is no query text."""
    if lists:
        sets = []
        if "dense" in lists and lists["dense"][1]:
            best = lists["dense"][1][0]
            sets.append({m for m, s in zip(*lists["dense"], strict=True) if s >= best - RELEVANT_DENSE_GAP})
        if "lexical" in lists and lists["lexical"][1]:
            best = lists["lexical"][1][0]
            sets.append({m for m, s in zip(*lists["lexical"], strict=True) if s >= RELEVANT_LEXICAL_FRACTION * best})
        relevant = set.intersection(*sets) if sets else set()
        if not relevant and sets:
            relevant = set.union(*sets)
        pos = cat.positions(np.fromiter(relevant, dtype=np.int64, count=len(relevant)))
    else:
        pos = np.flatnonzero(mask)
    start = cat.start[pos]
    order = np.argsort(-start if direction == "latest" else start, kind="stable")[:depth]
    chosen = pos[order]
    return cat.ids[chosen].tolist(), (cat.start[chosen] / _US).tolist()
