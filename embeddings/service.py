"""MemoryService: the memory layer's one facade (the CLI and the API call this, nothing deeper).

    svc = MemoryService(vault)
    svc.index()                                   # sync memories from ingested tables, embed what changed, seal
    svc.search("when did I last see Dr. Lee?", k=5, redaction=Redaction.for_scopes(token.scopes), actor=token.id)
    svc.context("plan my week", token_budget=1500)
    mid = svc.remember("Prefers window seats", tags=["travel"], metadata={"confidence": 0.9}).memory_id
    svc.update(mid, text="Prefers aisle seats"); svc.history(mid); svc.delete(mid)
    plan = svc.forget_preview(ForgetRequest(query="Dr Lee")); svc.forget_commit(plan)
    svc.close()                                   # seals vectors of notes written since the last seal

State (catalog, BM25, the two vector indexes) is loaded lazily on first use and kept in step with every
write made through the service. The catalog and BM25 come from their sealed snapshot when it matches the
memories table (embeddings/snapshot.py), else from the rows (and the snapshot is written then); the redacted
vector index is loaded only for a caller whose redaction searches it (or a write). Every read and write
records a typed audit event (ids and hashes only).
Notes' vectors are added in memory at once (searchable immediately) and sealed by flush()/close(); a
crash before that leaves notes without vectors, which the next load re-embeds.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from embeddings import context as ctx
from embeddings import dialogue, memories, notes, planning, retrieve, snapshot, temporal
from embeddings import index as vindex
from embeddings.encoder import DIM, Encoder, model_version
from embeddings.events import (
    ContextBuilt,
    MemoryForgotten,
    MemoryIndexed,
    MemoryRead,
    MemorySearched,
    MemoryWritten,
)
from embeddings.idsets import contains
from embeddings.records import KINDS, MemoryNotFound, MemoryRecord, RowCache, fetch
from embeddings.redaction import Redaction
from vault import audit, crashpoint
from vault.errors import IntegrityError
from vault.rwlock import RWLock
from vault.sqltext import id_list
from vault.store import Vault

if TYPE_CHECKING:  # forget (and the source tables it reads through vault.read, polars) loads when a forget runs
    from embeddings import forget as fg

INDEX_BLOB = "memory-index"
REDACTED_BLOB = "memory-index-redacted"
ROUTINES_IN_PLAN = 8  # routines in a planning pack, best first
ROUTINES_RANKED = 500  # routines ranked by the task before the meeting ones are dropped (a vault holds dozens)
Progress = Callable[[int, int], None]  # (done, total)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexReport:
    added: int
    changed: int
    removed: int
    embedded: int
    vectors: int
    index_kind: str
    model: str
    model_version: str
    dtype: str
    rebuilt: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    """A call that changes the service's state: alone (the index, catalog and pending vectors change)."""

    @functools.wraps(method)
    def wrapper(self: MemoryService, *args: Any, **kwargs: Any) -> T:
        with self._lock.write():
            self._rows.clear()
            try:
                return method(self, *args, **kwargs)
            finally:
                self._rows.clear()  # whatever the write touched is read afresh

    return wrapper


def _reading(method: Callable[..., T]) -> Callable[..., T]:
    """A call that only reads the service's state (and appends audit records): any number at once, so an API
    serving requests from a thread pool searches on both cores. The state is loaded first, alone."""

    takes_redaction = "redaction" in inspect.signature(method).parameters

    @functools.wraps(method)
    def wrapper(self: MemoryService, *args: Any, **kwargs: Any) -> T:
        need = kwargs.get("redaction", Redaction.OWNER) if takes_redaction else None
        while True:
            with self._lock.read():
                if self._ready_for(need):
                    return method(self, *args, **kwargs)
            with self._lock.write():
                self._state(need)

    return wrapper


def _instances(f: retrieve.Filters) -> retrieve.Filters:
    """A time window asks for what happened in it ("meetings with Tom in the last 30 days", "when did I last
    ..."): routines, which summarise months, would match every window, so they are left out unless the caller
    names the kinds."""
    if f.kinds is None and (f.since is not None or f.until is not None):
        return dataclasses.replace(f, kinds=frozenset(KINDS) - {"routine"})
    return f


def _narrows(tf: temporal.TimeFilter) -> bool:
    """Did the query's time phrases narrow the candidates (a window, weekdays or hours)? When such a window
    holds none of the memories the caller may see -- "in June" asked of a chat from three years ago, "last
    week" of an old export -- the search reads the phrase as words instead of answering nothing."""
    return any(v is not None for v in (tf.since, tf.until, tf.weekdays, tf.hours))


def _set(values: Iterable[str] | None) -> frozenset[str] | None:
    return frozenset(values) if values else None


class MemoryService:
    """The memory layer over one open vault. Public: index, search, context, get, history, remember, update,
    delete, forget_preview, forget_commit, flush, close, stats (signatures are a contract with api/)."""

    def __init__(self, vault: Vault, *, encoder: Encoder | None = None) -> None:
        self.vault = vault
        self.encoder = encoder or Encoder()
        self._catalog: retrieve.Catalog | None = None
        self._full: vindex.VectorIndex | None = None
        self._redacted: vindex.VectorIndex | None = None
        self._pending: dict[int, tuple[str, str]] = {}  # memory id -> (text_sha, dtype) embedded, not yet sealed
        self._dirty = False  # the in-memory indexes differ from the sealed ones
        self._saved = False  # the catalog snapshot on disk is the in-memory catalog
        self._base: tuple[list[Any], int] | None = None  # the snapshot on disk: (fingerprint, memories); None: none
        self._changed: set[int] = set()  # memories written since that snapshot (its delta holds them once flushed)
        self._lock = RWLock()
        self._rows = RowCache()  # hydrated rows of recent hits; cleared around every write

    # ---- state -------------------------------------------------------------------------------------------
    def _header(self, variant: str) -> dict[str, Any]:
        info = self.encoder.info
        return {"model": info.name, "model_version": info.version, "dtype": info.dtype, "dim": info.dim,
                "variant": variant}

    def _load_index(self, name: str) -> vindex.VectorIndex:
        try:
            loaded = vindex.load(self.vault, name)
        except IntegrityError as e:
            raise IntegrityError(f"{e}; the memories are intact: rebuild it with `lifevault index --rebuild`") from None
        if loaded is None:
            return vindex.VectorIndex.new(DIM)
        index, header = loaded
        if header.get("model_version") != model_version() or header.get("dim") != DIM:
            return vindex.VectorIndex.new(DIM)  # another model's vectors: `index` re-embeds
        if header.get("migrated"):
            self._dirty = True  # rebuilt from an older format: the next flush seals it as it is now
        return index

    @property
    def ready(self) -> bool:
        """The catalog, BM25 and the sealed indexes are loaded: a search pays none of it."""
        return self._catalog is not None and self._full is not None and self._redacted is not None

    def _ready_for(self, redaction: Redaction | None) -> bool:
        """Loaded as far as a read in `redaction`'s view needs: the redacted index only when it searches it
        (None: everything)."""
        return self._catalog is not None and self._full is not None and (
            self._redacted is not None or (redaction is not None and not redaction.redacts_text))

    def _texts_of(self, ids: np.ndarray) -> list[str]:
        """The text a redacted caller's BM25 indexes for each id ("" for -1 or a gone memory): the redacted
        text where there is one, else the indexed text (a note with its neighbouring turns)."""
        around = dialogue.texts(self.vault)
        seen = {m: r if r is not None else around.get(m, t)
                for m, t, r in self.vault.query("SELECT memory_id, text, text_redacted FROM memories")}
        return [seen.get(i, "") for i in ids.tolist()]

    def _load_catalog(self) -> retrieve.Catalog:
        """The catalog from its snapshot when that matches the memories table, else from the rows (the
        snapshot is written then, so the next process loads it)."""
        restored = snapshot.restore(self.vault, self._texts_of)
        if restored is None:
            cat = retrieve.Catalog.load(self.vault, dialogue.texts(self.vault), self._texts_of)
            self._base, self._changed = (snapshot.save(self.vault, cat), len(cat.ids)), set()
        else:
            cat = restored.catalog
            self._base, self._changed = (restored.base_key, restored.base_size), set(restored.changed)
        self._saved = True
        return cat

    @_reading
    def warm(self) -> None:
        """Load the catalog, BM25, the sealed indexes and the query encoder now rather than in the first search
        (~4 s at 100k memories, ~35 s at 1M); the API server does it in the background as it starts."""
        self.encoder.encode_query("warm up")

    def serve_queries(self) -> None:
        """This process will answer many queries (the API server): load the query forward and its thread now
        (Encoder.serve_queries). Loads no torch; takes no vault lock."""
        self.encoder.serve_queries()

    def _state(self, redaction: Redaction | None = None) -> tuple[retrieve.Catalog, vindex.VectorIndex,
                                                                    vindex.VectorIndex | None]:
        """The loaded state; the redacted index only when `redaction` searches it (None: everything, for a
        write or a warm-up)."""
        if self._catalog is None:
            self._catalog = self._load_catalog()
        missing: list[int] = []
        if self._full is None:
            self._full = self._load_index(INDEX_BLOB)
            self._catalog.warm(self._full)
            self._drop_stale(self._full)
            missing = self._notes_missing()
        if self._redacted is None and (redaction is None or redaction.redacts_text or missing):
            self._redacted = self._load_index(REDACTED_BLOB)
            self._catalog.warm(self._redacted)
            self._drop_stale(self._redacted)
        if missing:
            self._embed(missing)
        return self._catalog, self._full, self._redacted

    def _write_state(self) -> tuple[retrieve.Catalog, vindex.VectorIndex, vindex.VectorIndex]:
        catalog, full, red = self._state()
        assert red is not None
        return catalog, full, red

    def _notes_missing(self) -> list[int]:
        """Notes that lost their vectors in a crash (the next load embeds them)."""
        assert self._catalog is not None and self._full is not None
        notes_missing = [r[0] for r in self.vault.query(  # updated, but the new vector was never sealed
            "SELECT m.memory_id FROM memories m JOIN memory_vectors v USING (memory_id) "
            "WHERE m.kind = 'note' AND v.text_sha <> m.text_sha")]
        note_ids = self._catalog.ids[self._catalog.alive & (self._catalog.kind == "note")]
        notes_missing += note_ids[~contains(note_ids, self._full.ids())].tolist()  # written, never sealed
        return sorted(set(notes_missing))

    def _drop_stale(self, *indexes: vindex.VectorIndex) -> None:
        """Remove vectors whose memory is gone (forgotten or no longer derived from the sources)."""
        assert self._catalog is not None
        live = self._catalog.ids[self._catalog.alive]
        for ix in indexes:
            stale = ix.ids()[~contains(ix.ids(), live)]  # not np.isin: it imports numpy.ma (idsets.py)
            if len(stale):
                ix.remove(stale)
                self._dirty = True

    def _embed(self, ids: list[int], progress: Progress | None = None, *, write: bool = False) -> int:
        """Embed these memories' texts (and redacted texts) into the in-memory indexes; pending until sealed.
        `write`: a write's few (Encoder.encode's `write`: never torch)."""
        assert self._full is not None and self._redacted is not None
        rows = self.vault.query("SELECT memory_id, text, text_redacted, text_sha, kind FROM memories "
                                f"WHERE memory_id IN (SELECT unnest({id_list(ids)}))")
        around = dialogue.entries(self.vault, [r[0] for r in rows if r[4] == "note"])  # notes: with their turns
        texts = [around[r[0]][1] if r[0] in around else r[1] for r in rows] + [r[2] for r in rows if r[2] is not None]
        blended = [i for i, r in enumerate(rows) if r[0] in around] if dialogue.OWN_WEIGHT else []
        texts += [around[rows[i][0]][0] for i in blended]  # their own texts, blended into their vectors
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], len(texts))

        vecs = self.encoder.encode(texts, progress=step, write=write)
        dtype = self.encoder.forward_dtype(len(texts), write=write)  # numpy's float32 for a few, else the model's
        if blended:
            vecs[blended] = dialogue.blend(vecs[len(texts) - len(blended):], vecs[blended])
        n = len(rows)
        full_ids = np.array([r[0] for r in rows], dtype=np.int64)
        red_ids = np.array([r[0] for r in rows if r[2] is not None], dtype=np.int64)
        self._full.add(full_ids, vecs[:n])
        self._redacted.remove(full_ids)
        self._redacted.add(red_ids, vecs[n:n + len(red_ids)])
        self._pending.update({r[0]: (r[3], dtype) for r in rows})
        self._dirty = True
        return n

    @_locked
    def flush(self) -> None:
        """Seal the changed indexes, record the vectors' provenance (what was embedded by which model) and
        write the catalog snapshot when the catalog changed: the ids of the few memories written since the base
        snapshot as its delta, or a new base once they are many (embeddings/snapshot.py)."""
        self._seal()
        crashpoint.reached("flush.sealed")  # vectors sealed, the catalog snapshot not yet written
        if not self._saved and self._catalog is not None:
            if self._base is not None and snapshot.delta_fits(len(self._changed), self._base[1]):
                snapshot.save_delta(self.vault, self._base[0], self._changed)
            else:
                self._base, self._changed = (snapshot.save(self.vault, self._catalog), len(self._catalog.ids)), set()
            self._saved = True

    def _seal(self) -> None:
        if not self._dirty or self._full is None:
            return
        vindex.save(self.vault, INDEX_BLOB, self._full, self._header("full"))
        if self._redacted is not None:  # not loaded: not changed (every write loads it)
            vindex.save(self.vault, REDACTED_BLOB, self._redacted, self._header("redacted"))
        info = self.encoder.info
        if self._pending and len(self._pending) <= memories.PROVENANCE_ROWS:  # a write's few: no polars
            self.vault.execute(memories.provenance_sql(self._pending, model=info.name, version=info.version,
                                                       at=datetime.now(UTC)))
        elif self._pending:  # one statement for all: a row at a time cost 50 s of CPU for a year's 20,648
            import polars as pl

            provenance = pl.DataFrame(
                {"memory_id": list(self._pending), "text_sha": [sha for sha, _ in self._pending.values()],
                 "dtype": [dtype for _, dtype in self._pending.values()]},
                schema={"memory_id": pl.Int64, "text_sha": pl.String, "dtype": pl.String},
            ).with_columns(model=pl.lit(info.name), model_version=pl.lit(info.version),
                           embedded_at=pl.lit(datetime.now(UTC), dtype=pl.Datetime("us", "UTC")))
            with self.vault.transaction():  # only memories that still exist (one may be forgotten meanwhile)
                live = self.vault.frame("SELECT memory_id FROM memories")["memory_id"]
                self.vault.insert_frame("memory_vectors", provenance.filter(pl.col("memory_id").is_in(live.implode())),
                                        replace=True)
        self._pending.clear()
        self._dirty = False

    def close(self) -> None:
        """Seal pending vectors. The vault stays open (its owner closes it)."""
        self.flush()

    # ---- indexing ----------------------------------------------------------------------------------------
    @_locked
    def index(self, *, rebuild: bool = False, progress: Progress | None = None, actor: str = "owner") -> IndexReport:
        """Sync memories with the ingested tables, embed new or changed ones (all with rebuild), seal."""
        t0 = time.perf_counter()
        from embeddings import memories

        prefetch = getattr(self.encoder, "prefetch", None)
        # the first index after an ingest, or a rebuild, embeds every memory: load the model while they sync
        loading = prefetch() if prefetch is not None and (rebuild or self._first_index()) else None
        try:
            return self._index(memories.sync(self.vault), rebuild=rebuild, progress=progress, actor=actor, t0=t0)
        finally:
            if loading is not None:
                loading.join()  # never leave while torch is loading (a few texts need no model)

    def _index(self, sync: Any, *, rebuild: bool, progress: Progress | None, actor: str, t0: float) -> IndexReport:
        self._catalog = retrieve.Catalog.load(self.vault, dialogue.texts(self.vault), self._texts_of)
        self._saved, self._base = False, None  # a new base snapshot
        if rebuild:
            dim = self.encoder.info.dim
            self._full, self._redacted = vindex.VectorIndex.new(dim), vindex.VectorIndex.new(dim)
            self.vault.execute("DELETE FROM memory_vectors")
        else:
            if self._full is None:
                self._full = self._load_index(INDEX_BLOB)
            if self._redacted is None:
                self._redacted = self._load_index(REDACTED_BLOB)
        self._drop_stale(self._full, self._redacted)
        live = self._catalog.ids[self._catalog.alive]
        info = self.encoder.info
        todo = {r[0] for r in self.vault.query(
            "SELECT m.memory_id FROM memories m LEFT JOIN memory_vectors v USING (memory_id) "
            "WHERE v.memory_id IS NULL OR v.text_sha <> m.text_sha OR v.model <> ? OR v.model_version <> ?",
            [info.name, info.version])}
        todo |= set(live[~np.isin(live, self._full.ids())].tolist())
        embedded = self._embed(sorted(todo), progress) if todo else 0
        self._dirty = True  # always reseal: removals count too
        self.flush()
        report = IndexReport(added=sync.added, changed=sync.changed, removed=sync.removed, embedded=embedded,
                             vectors=len(self._full), index_kind=self._full.stats.kind, model=info.name,
                             model_version=info.version, dtype=info.dtype, rebuilt=rebuild,
                             seconds=round(time.perf_counter() - t0, 3))
        audit.record(self.vault, MemoryIndexed(actor=actor, added=sync.added, changed=sync.changed,
                                               removed=sync.removed, embedded=embedded, vectors=report.vectors,
                                               model=info.name, model_version=info.version, rebuilt=rebuild))
        return report

    def _first_index(self) -> bool:
        """Data was loaded and nothing is embedded yet: the index run about to start embeds every memory."""
        return (not self.vault.query("SELECT 1 FROM memory_vectors LIMIT 1")
                and bool(self.vault.query("SELECT 1 FROM loads LIMIT 1")))

    # ---- reading -----------------------------------------------------------------------------------------
    @_reading
    def search(self, query: str, *, k: int = 10, since: datetime | None = None, until: datetime | None = None,
               kinds: Iterable[str] | None = None, tags: Iterable[str] | None = None,
               sources: Iterable[str] | None = None, as_of: datetime | None = None,
               redaction: Redaction = Redaction.OWNER, mode: retrieve.Mode = "hybrid", parse_time: bool = True,
               now: datetime | None = None, actor: str = "owner",
               fusion: retrieve.Fusion = "score") -> retrieve.SearchResult:
        """Hybrid search, filters before ranking. Each hit carries every signal's rank and score (explain)."""
        if k <= 0:
            raise ValueError("k must be positive")
        now = now or datetime.now().astimezone()
        cleaned, tf = temporal.parse(query, now) if parse_time else (query, temporal.TimeFilter())
        # embedded on the query thread while this one loads the state (a cold process) and runs BM25
        qv = self.encoder.encode_query_soon(cleaned) if cleaned.strip() and mode != "lexical" else None
        catalog, full, red = self._state(redaction)
        base = retrieve.Filters(since=since, until=until, kinds=_set(kinds), tags=_set(tags), sources=_set(sources),
                                as_of=as_of)
        filters = _instances(retrieve.Filters.combine(base, tf))
        speakers = mode == "hybrid" and fusion == "score" and not tf.recency  # a named speaker's notes favoured
        depth = k + dialogue.SPEAKER_POOL if speakers else k
        ranked = retrieve.rank(catalog, full, red, qv, cleaned, k=depth, filters=filters, redaction=redaction,
                               recency=tf.recency, mode=mode, fusion=fusion)
        if not ranked.candidates and _narrows(tf):  # the phrase's window holds nothing the caller may see
            cleaned, tf = query, temporal.TimeFilter(kinds=tf.kinds)  # so it is read as words
            filters = _instances(retrieve.Filters.combine(base, tf))
            qv = self.encoder.encode_query_soon(cleaned) if cleaned.strip() and mode != "lexical" else None
            ranked = retrieve.rank(catalog, full, red, qv, cleaned, k=depth, filters=filters, redaction=redaction,
                                   mode=mode, fusion=fusion)
        if speakers:
            ranked = dialogue.by_speaker(catalog, ranked, cleaned, k, redaction,
                                         lambda ids: fetch(self.vault, ids, redaction, self._rows))
        # The record names the ranked ids and is committed by a worker while their rows are read (the WAL's sync
        # and the read overlap); the answer leaves only after the commit. The ids come from the catalog, kept in
        # step with the table under the lock this search holds, so each is read back: were one not (a catalog
        # out of step), the record would name more than was returned, never less.
        query_sha256, described = audit.text_hash(self.vault, query), filters.describe()
        event = MemorySearched(actor=actor, query_sha256=query_sha256, k=k, returned_ids=list(ranked.ids),
                               filters=described)
        with audit.alongside(self.vault, event):
            records = fetch(self.vault, ranked.ids, redaction, self._rows)
            hits = tuple(
                retrieve.Hit(memory=records[mid], score=score, rank=i + 1, signals=sig)
                for i, (mid, score, sig) in enumerate(
                    (m, s, g) for m, s, g in zip(ranked.ids, ranked.fused, ranked.signals, strict=True)
                    if m in records)
            )
        return retrieve.SearchResult(hits=hits, query_sha256=query_sha256, filters=described,
                                     understood=tf.understood, candidates=ranked.candidates, mode=mode)

    @_reading
    def context(self, task: str, *, token_budget: int = 1500, k: int = 40, since: datetime | None = None,
                until: datetime | None = None, kinds: Iterable[str] | None = None, tags: Iterable[str] | None = None,
                redaction: Redaction = Redaction.OWNER, now: datetime | None = None,
                actor: str = "owner") -> ctx.ContextPack:
        """A token-budgeted, cited context pack for a task (counted with the model's tokenizer). A task about the
        future (embeddings/planning.py) gets the window's events and free time, then routines, then the
        relevant past; near-duplicates share a line."""
        now = now or datetime.now().astimezone()
        plan = planning.window(task, now) if since is None and until is None else None
        cleaned, tf = temporal.parse(task.replace(plan[2], " ", 1) if plan else task, now)
        qv = self.encoder.encode_query_soon(cleaned) if cleaned.strip() else None  # (while the state loads)
        catalog, full, red = self._state(redaction)
        base = retrieve.Filters(since=since, until=until, kinds=_set(kinds), tags=_set(tags))
        filters = _instances(retrieve.Filters.combine(base, tf))

        def ranked_hits(f: retrieve.Filters, n: int, recency: Any = None) -> list[retrieve.Hit]:
            ranked = retrieve.rank(catalog, full, red, qv, cleaned, k=n, filters=f, redaction=redaction,
                                   recency=recency)
            records = fetch(self.vault, ranked.ids, redaction, self._rows)
            return [retrieve.Hit(memory=records[m], score=s, rank=i + 1, signals=g)
                    for i, (m, s, g) in enumerate(zip(ranked.ids, ranked.fused, ranked.signals, strict=True))
                    if m in records]

        agenda = None
        if plan is None:
            hits = ranked_hits(filters, k, tf.recency)
        else:
            agenda = planning.agenda(catalog, plan[0], plan[1], kinds=_set(kinds), redaction=redaction, now=now,
                                     fetch=lambda ids: fetch(self.vault, ids, redaction, self._rows))
            wanted = _set(kinds)
            if wanted is None or "routine" in wanted:
                # the habits the calendar does not already say: places, apps, the phone day (meeting series and
                # the people met in them are what the window's events list, where they happen at all)
                habits = [h for h in ranked_hits(dataclasses.replace(filters, kinds=frozenset({"routine"})), ROUTINES_RANKED)
                          if not {"series", "person"} & set(h.memory.tags)]
                agenda = dataclasses.replace(agenda, routines=tuple(habits[:ROUTINES_IN_PLAN]))
            past = (wanted or frozenset(KINDS)) - {"routine"}
            shown = {h.memory.memory_id for h in agenda.events}
            hits = [h for h in ranked_hits(dataclasses.replace(filters, kinds=past, until=min(filters.until or now, now)), k)
                    if h.memory.memory_id not in shown]
        pack = ctx.build(hits, token_budget=token_budget, count_tokens=self.encoder.count_tokens, agenda=agenda)
        audit.record(self.vault, ContextBuilt(actor=actor, task_sha256=audit.text_hash(self.vault, task), token_budget=token_budget,
                                              tokens_used=pack.tokens_used,
                                              returned_ids=[i for s in pack.snippets for i in (s.memory_id, *s.also)],
                                              left_out=len(pack.left_out)))
        return pack

    @_reading
    def get(self, memory_id: int, *, redaction: Redaction = Redaction.OWNER, actor: str = "owner") -> MemoryRecord:
        """One memory as `redaction` lets the caller see it; MemoryNotFound when absent or hidden. Audited."""
        record = fetch(self.vault, [memory_id], redaction, self._rows).get(memory_id)
        if record is None:
            raise MemoryNotFound(f"no memory {memory_id}")
        audit.record(self.vault, MemoryRead(actor=actor, returned_ids=[memory_id]))
        return record

    @_reading
    def history(self, memory_id: int, *, actor: str = "owner") -> list[notes.NoteVersion]:
        """Every version of a note, oldest first, the current one last (MemoryNotFound / NotEditable otherwise)."""
        versions = notes.history(self.vault, memory_id)
        audit.record(self.vault, MemoryRead(actor=actor, returned_ids=[memory_id]))
        return versions

    # ---- writing -----------------------------------------------------------------------------------------
    def _refresh(self, memory_id: int | None, *, embed: bool, around: Iterable[int] = ()) -> None:
        """Re-read a written note (embedding it again when its text changed) and re-index the notes `around` it
        whose neighbouring turns changed (dialogue.py): only those, whatever the number of notes."""
        catalog, _, _ = self._state()
        self._saved = False
        ids = sorted({*around, *([] if memory_id is None else [memory_id])})
        if not ids:
            return
        self._changed.update(ids)
        catalog.add(retrieve.Rows(self.vault.query(retrieve.Catalog.SELECT
                                                   + f" WHERE memory_id IN (SELECT unnest({id_list(ids)}))")),
                    dialogue.texts(self.vault, ids))
        todo = sorted(set(around) | ({memory_id} if embed and memory_id is not None else set()))
        if todo:
            self._embed(todo, write=True)

    @_locked
    def remember(self, text: str, *, occurred_at: datetime | None = None, tags: Iterable[str] = (),
                 metadata: dict[str, Any] | None = None, source: str = "agent", actor: str = "owner") -> MemoryRecord:
        """Write an agent note; it is searchable at once."""
        self._state()
        note = notes.remember(self.vault, text=text, occurred_at=occurred_at, tags=tags, metadata=metadata,
                              source=source)
        audit.record(self.vault, MemoryWritten(actor=actor, memory_id=note.memory_id, op="create", version=1))
        crashpoint.reached("remember.written")  # the note's row is in, its vector and the snapshot are not
        self._refresh(note.memory_id, embed=True, around=dialogue.neighbours(self.vault, [note.memory_id]))
        return fetch(self.vault, [note.memory_id], Redaction.OWNER)[note.memory_id]

    @_locked
    def update(self, memory_id: int, *, text: str | None = None, occurred_at: Any = notes.UNSET,
               tags: Iterable[str] | None = None, metadata: Any = notes.UNSET, actor: str = "owner") -> MemoryRecord:
        """Change a note (the previous version goes to its history)."""
        self._state()
        before = self.vault.scalar("SELECT version FROM memories WHERE memory_id = ?", [memory_id])
        was_around = dialogue.neighbours(self.vault, [memory_id])
        note, version = notes.update(self.vault, memory_id, text=text, occurred_at=occurred_at, tags=tags,
                                     metadata=metadata)
        audit.record(self.vault, MemoryWritten(actor=actor, memory_id=memory_id, op="update", version=version))
        if version != before:
            around = was_around | dialogue.neighbours(self.vault, [memory_id])
            self._refresh(memory_id, embed=text is not None or bool(around), around=around)
        return fetch(self.vault, [memory_id], Redaction.OWNER)[memory_id]

    @_locked
    def delete(self, memory_id: int, *, actor: str = "owner") -> fg.ForgetReceipt:
        """Delete one memory with its history, vector and (for ingested memories) source rows."""
        from embeddings import forget as fg

        p = self.forget_preview(fg.ForgetRequest(memory_ids=(memory_id,)))
        if not p.memory_ids:
            raise MemoryNotFound(f"no memory {memory_id}")
        return self.forget_commit(p, actor=actor)

    @_locked
    def forget_preview(self, request: fg.ForgetRequest, *, redaction: Redaction = Redaction.OWNER) -> fg.ForgetPlan:
        """What `request` would delete (memories, source rows, summary entries, a preview of the texts);
        changes nothing. `plan.digest` identifies the exact set, for a confirm-then-commit protocol. The
        selection is made in `redaction`'s view (what it may see, matched on the texts it sees)."""
        from embeddings import forget as fg

        catalog, _, _ = self._state()
        return fg.plan(self.vault, catalog, request, redaction)

    @_locked
    def forget_commit(self, plan: fg.ForgetPlan, *, actor: str = "owner") -> fg.ForgetReceipt:
        """Carry out a previewed plan: vectors out and index resealed first, then rows, then CHECKPOINT. Notes
        whose neighbouring turns are forgotten lose their vectors in the same reseal and are indexed again
        without them afterwards (a crash in between leaves them without vectors: the next load embeds them)."""
        from embeddings import forget as fg

        catalog, full, red = self._write_state()
        ids = np.array(plan.memory_ids, dtype=np.int64)
        around = sorted(dialogue.neighbours(self.vault, plan.memory_ids) - set(plan.memory_ids))
        full.remove(np.array(around, dtype=np.int64))
        shown = np.array(plan.shown, dtype=np.int64)  # the receipt counts what the caller sees (the rest goes too)
        removed_shown = full.remove(shown)
        removed = removed_shown + full.remove(ids[~np.isin(ids, shown)])
        red.remove(ids)
        for mid in plan.memory_ids:
            self._pending.pop(mid, None)
        self._dirty = True
        snapshot.drop(self.vault)  # its terms go with the vectors; the new one is written once the rows are gone
        self._saved, self._base = False, None
        self._seal()
        crashpoint.reached("forget.resealed")  # vectors and snapshot gone, rows still there
        now = datetime.now(UTC)
        with self.vault.transaction():
            deleted = fg.delete_rows(self.vault, plan, now=now)
            keyed = functools.partial(audit.text_hash, self.vault)  # the selector's digest and the ids, keyed
            (row,) = audit.record_many(self.vault, [MemoryForgotten(
                actor=actor, target_kind=plan.request.target_kind, selector_sha256=keyed(plan.request.selector_sha256()),
                items=len(plan.memory_ids), memory_id_sha256=[keyed(str(int(i))) for i in plan.memory_ids],
                rows_deleted=deleted, vectors_removed=removed)])  # appended now (never deferred): the receipt has its seq
        self.vault.checkpoint()
        crashpoint.reached("forget.rows_deleted")  # rows gone too, no snapshot yet
        catalog.remove(ids)
        if around:
            self._refresh(None, embed=False, around=around)
        self.flush()
        return fg.ForgetReceipt(memories=len(plan.shown), rows_deleted=deleted | {"memories": len(plan.shown)},
                                vectors_removed=removed_shown, audit_seq=row.seq, at=now)

    # ---- introspection -----------------------------------------------------------------------------------
    @_reading
    def stats(self) -> dict[str, Any]:
        """Counts and model of the loaded state (no personal data)."""
        catalog, full, red = self._write_state()
        return {"memories": len(catalog), "vectors": len(full), "redacted_vectors": len(red),
                "index": full.stats.kind, "tombstones": full.tombstones, "model": self.encoder.info.name,
                "model_version": self.encoder.info.version, "dtype": self.encoder.info.dtype}
