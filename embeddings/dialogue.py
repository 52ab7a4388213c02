"""Conversation notes: a note is indexed with its neighbouring turns, so a short turn ("yes, the blue one")
is found by a question about what the turns around it say. The returned text is the note's own.

A thread is the notes of one `source` and one session, in time order (ties in the order written). A note
says its session in its metadata, `{"session": "2024-05-03-a"}` (or `session_id`, `thread_id`,
`conversation_id`; a string or a number), or with a tag `session:<id>`. Notes that say none form threads
by time adjacency: consecutive notes of one source no more than SESSION_GAP apart. Declared sessions are
split at DECLARED_GAP too, so a neighbour is never further than a few gaps away in time, and finding a
note's neighbours reads only a bounded window of its source's notes.

The indexed text (BM25 document and embedded text) of a note is

    <its own text> | <its own text> | <previous turns, up to BEFORE> | <next turns, up to AFTER>

its own text written OWN_REPEAT times (so the neighbours weigh less than the turn itself: without it, the
short replies after a long turn became near-copies of it and crowded it out of the top 10), its speaker
in front when its metadata names one (`speaker`) its text does not start with, and on each side the
nearest turns while the text gathered on that side (own text included) is shorter than CONTEXT_CHARS: a
long turn (300 characters or more) is indexed alone, a short reply gets up to 3 turns before and 2 after.
Each neighbour is cut to NEIGHBOUR_CHARS. A note with neighbours has one vector, its indexed text's; with
OWN_WEIGHT above 0 it is the normalised sum of OWN_WEIGHT times its own text's embedding (speaker in front)
and the rest times its indexed text's (`blend`), so the turn itself still matches a question about it when
its context is about something else. Off by default: measured on two real LoCoMo conversations it helped
one and hurt the other (bench/README.md). Context comes only from notes,
which all have one sensitivity, so a caller that may see a note may see every text its index entry was built
from (non-interference holds).
When a note is written, changed or deleted, only the notes whose window includes it are re-indexed
(`neighbours`): a window is decided by the turns between the note and its edge, so a change outside it
changes nothing in it.

A question about a person ("What are Melanie's pets' names?") is answered by what that person said: in a
hybrid search, a note whose speaker the query names gets SPEAKER_BONUS added to its fused score (`favour`),
among the k + SPEAKER_POOL best, so the other speaker's turns around the answer ("What are their names?")
no longer crowd it out. A note's speaker is the one its metadata names, else a "Name:" in front of its text
(1-3 words, at most SPEAKER_PREFIX_CHARS characters); the query names it when it holds the whole name as
words, in any case ("Jon's" names Jon, "Jonathan" does not). The bonus depends on the note's own fields and
the query only, so a caller gets the same order as from a vault holding only what it may see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from embeddings.records import MemoryRecord
from embeddings.redaction import Redaction
from embeddings.retrieve import Catalog, Filters, Ranked, Signal
from vault.store import Vault

BEFORE = 3  # previous turns in a note's indexed text, at most
AFTER = 2  # next turns in a note's indexed text, at most
NEIGHBOUR_CHARS = 300  # each neighbour's text is cut to this many characters in the indexed text
SESSION_GAP = timedelta(minutes=30)  # notes without a session: a longer silence starts a new thread
DECLARED_GAP = timedelta(days=1)  # notes of a declared session: a longer silence starts a new thread
WINDOW_SPANS = 64  # time windows read at most to find the threads around a set of notes (_window)
SESSION_KEYS = ("session", "session_id", "thread_id", "conversation_id")  # metadata keys naming the session
SESSION_TAG = "session:"
CONTEXT_CHARS: int | None = 300  # each side's neighbours are added (nearest first) while own + that side's
# text is shorter than this (None: always BEFORE and AFTER turns), so a long turn is indexed alone
OWN_REPEAT = 2  # times a turn's own text is written in its indexed text, so its neighbours weigh less
OWN_WEIGHT = 0.0  # a note with neighbours: its own text's share of its vector (0, the default: the indexed
# text's alone; 0.5 helped one real LoCoMo conversation and hurt the other, bench/README.md, so it is off)
SPEAKER_KEYS = ("speaker", "author")  # metadata keys naming who said a turn (added when the text does not say it)
SPEAKER_CHARS = 100  # a speaker's name from metadata is cut to this many characters in the indexed text
SPEAKER_PREFIX_CHARS = 40  # a "Name:" in front of a note's text is its speaker when the name is this short
SPEAKER_BONUS = 0.15  # added to the fused score of a note whose speaker the query names (bench/README.md:
# 0.1-0.3 helped all five sets alike; 0.15, the low end, moves a mixed vault's other memories least)
SPEAKER_POOL = 20  # the bonus reorders the k + this many best of a search (20 and 10,000 measured the same)
_PREFIX = re.compile(r"([^\W\d_][\w'.-]*(?: [^\W\d_][\w'.-]*){0,2}):\s")
_SELECT = ("SELECT memory_id, source, start_ts, ingested_at, text, metadata, tags FROM memories "
           "WHERE kind = 'note' AND start_ts IS NOT NULL")


@dataclass(frozen=True, slots=True)
class Turn:
    memory_id: int
    source: str
    session: str | None
    at: datetime
    ingested: datetime
    text: str
    speaker: str | None = None


def session_of(metadata: str | None, tags: Iterable[str] | None) -> str | None:
    """The session a note declares (metadata first, then a `session:` tag), None when it declares none."""
    if metadata:
        try:
            meta: Any = json.loads(metadata)
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            for key in SESSION_KEYS:
                value = meta.get(key)
                if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
                    return str(value)
    for tag in tags or ():
        if tag.startswith(SESSION_TAG) and tag[len(SESSION_TAG):].strip():
            return tag[len(SESSION_TAG):]
    return None


def speaker_of(metadata: str | dict[str, Any] | None) -> str | None:
    """Who said a turn, from its metadata (JSON text, or as read back; None when it does not say)."""
    meta = metadata if isinstance(metadata, dict) else _meta(metadata)
    for key in SPEAKER_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:SPEAKER_CHARS]
    return None


def _meta(metadata: str | None) -> dict[str, Any]:
    try:
        meta = json.loads(metadata) if metadata else None
    except ValueError:
        meta = None
    return meta if isinstance(meta, dict) else {}


def _turns(rows: Iterable[Sequence[Any]]) -> list[Turn]:
    return [Turn(memory_id=r[0], source=r[1] or "", session=session_of(r[5], r[6]), at=r[2], ingested=r[3],
                 text=r[4], speaker=speaker_of(r[5])) for r in rows]


def threads(turns: Iterable[Turn]) -> list[list[Turn]]:
    """Turns grouped by (source, session), time-ordered, split where the gap rule says a new thread begins."""
    groups: dict[tuple[str, str | None], list[Turn]] = {}
    for t in turns:
        groups.setdefault((t.source, t.session), []).append(t)
    out: list[list[Turn]] = []
    for (_, session), group in groups.items():
        group.sort(key=lambda t: (t.at, t.ingested, t.memory_id))
        gap = SESSION_GAP if session is None else DECLARED_GAP
        current = [group[0]]
        for prev, t in zip(group, group[1:], strict=False):
            if t.at - prev.at > gap:
                out.append(current)
                current = []
            current.append(t)
        out.append(current)
    return out


def _cut(text: str) -> str:
    return text if len(text) <= NEIGHBOUR_CHARS else text[:NEIGHBOUR_CHARS]


def said(turn: Turn) -> str:
    """A turn's text, with its speaker in front when the metadata names one the text does not start with."""
    if turn.speaker and not turn.text.lower().startswith(turn.speaker.lower()):
        return f"{turn.speaker}: {turn.text}"
    return turn.text


def window(thread: Sequence[Turn], i: int) -> tuple[int, int]:
    """[lo, hi) of the turns in thread[i]'s indexed text: up to BEFORE previous and AFTER next turns, each
    side nearest first while the text gathered so far is under CONTEXT_CHARS (when set)."""
    budget = CONTEXT_CHARS if CONTEXT_CHARS is not None else float("inf")
    used = len(thread[i].text)
    lo = i
    while lo > 0 and i - lo < BEFORE and used < budget:
        lo -= 1
        used += min(len(thread[lo].text), NEIGHBOUR_CHARS)
    used = len(thread[i].text)
    hi = i + 1
    while hi < len(thread) and hi - i - 1 < AFTER and used < budget:
        used += min(len(thread[hi].text), NEIGHBOUR_CHARS)
        hi += 1
    return lo, hi


def indexed_text(thread: Sequence[Turn], i: int) -> str:
    """The text indexed for thread[i]: its own (OWN_REPEAT times), then its previous and next turns."""
    own = said(thread[i])
    lo, hi = window(thread, i)
    around = [_cut(said(t)) for t in thread[lo:i]] + [_cut(said(t)) for t in thread[i + 1:hi]]
    return " | ".join([*[own] * OWN_REPEAT, *around]) if around else own


def _window(vault: Vault, ids: Sequence[int]) -> list[list[Turn]]:
    """The threads around the given notes, read from bounded windows of their sources' notes: each note's
    reach either side (every turn its indexed text or a neighbour's can name lies within it), overlapping
    reaches merged, and at most WINDOW_SPANS windows a call (the nearest merged first). One window from the
    first note to the last, as this read before, spanned a year of notes for a forget of notes a year apart
    (~400,000 rows read at 1M notes, 4.6 s)."""
    if not ids:
        return []
    where = vault.query("SELECT source, start_ts FROM memories WHERE kind = 'note' AND start_ts IS NOT NULL "
                        "AND memory_id IN (SELECT unnest(?::BIGINT[])) ORDER BY source NULLS FIRST, start_ts",
                        [list(ids)])
    reach = DECLARED_GAP * (max(BEFORE, AFTER) + 1)
    spans: list[list[Any]] = []  # [source, lo, hi], by source then time, disjoint
    for source, at in where:
        if spans and spans[-1][0] == source and at - reach <= spans[-1][2]:
            spans[-1][2] = at + reach
        else:
            spans.append([source, at - reach, at + reach])
    gaps = sorted(b[1] - a[2] for a, b in zip(spans, spans[1:], strict=False) if a[0] == b[0])
    if len(spans) > WINDOW_SPANS and gaps:  # merge across the smallest gaps of one source until few remain
        limit = gaps[min(len(spans) - WINDOW_SPANS, len(gaps)) - 1]
        merged = spans[:1]
        for span in spans[1:]:
            if span[0] == merged[-1][0] and span[1] - merged[-1][2] <= limit:
                merged[-1][2] = span[2]
            else:
                merged.append(span)
        spans = merged
    rows: list[Sequence[Any]] = []
    for source, lo, hi in spans:
        rows += vault.query(_SELECT + " AND source IS NOT DISTINCT FROM ? AND start_ts BETWEEN ? AND ?",
                            [source, lo, hi])
    return threads(_turns(rows))


def entries(vault: Vault, ids: Sequence[int] | None = None) -> dict[int, tuple[str, str]]:
    """memory id -> (own text as said, indexed text), for the notes that have neighbours (all notes when `ids`
    is None)."""
    found = threads(_turns(vault.query(_SELECT))) if ids is None else _window(vault, ids)
    wanted = None if ids is None else set(ids)
    return {t.memory_id: (said(t), indexed_text(th, i)) for th in found if len(th) > 1 for i, t in enumerate(th)
            if wanted is None or t.memory_id in wanted}


def texts(vault: Vault, ids: Sequence[int] | None = None) -> dict[int, str]:
    """memory id -> indexed text, for the notes that have neighbours (all notes when `ids` is None)."""
    return {m: indexed for m, (_, indexed) in entries(vault, ids).items()}


def blend(own: np.ndarray, indexed: np.ndarray) -> np.ndarray:
    """The vectors of notes with neighbours: OWN_WEIGHT x own + (1 - OWN_WEIGHT) x indexed, normalised (rows
    of unit vectors in, unit vectors out)."""
    mixed = OWN_WEIGHT * own + (1.0 - OWN_WEIGHT) * indexed
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    return (mixed / np.where(norms > 0, norms, 1.0)).astype(own.dtype, copy=False)


def neighbours(vault: Vault, ids: Sequence[int]) -> set[int]:
    """Notes whose indexed text includes (or, once these are written, would include) one of these notes:
    the AFTER turns before each and the BEFORE turns after it, in their thread as stored now."""
    wanted = set(ids)
    out: set[int] = set()
    for th in _window(vault, ids):
        for i, t in enumerate(th):
            lo, hi = window(th, i)
            if any(n.memory_id in wanted for n in th[lo:hi]):
                out.add(t.memory_id)
    return out - wanted


def speaker_in(text: str, metadata: dict[str, Any] | None) -> str | None:
    """A note's speaker: the one its metadata names, else a short "Name:" in front of its text (None: neither)."""
    named = speaker_of(metadata)
    if named is not None:
        return named
    m = _PREFIX.match(text)
    return m.group(1) if m and len(m.group(1)) <= SPEAKER_PREFIX_CHARS else None


def names(query: str, speaker: str) -> bool:
    """Does the query hold the speaker's whole name as words (any case)?"""
    return re.search(rf"(?<!\w){re.escape(speaker)}(?!\w)", query, flags=re.IGNORECASE) is not None


def favour(ranked: Ranked, named: set[int], k: int) -> Ranked:
    """The k best once the notes in `named` have SPEAKER_BONUS added to their fused scores (a "speaker" signal
    in their explain); otherwise the order is kept (a stable sort)."""
    bonus = [SPEAKER_BONUS if m in named else 0.0 for m in ranked.ids]
    order = sorted(range(len(ranked.ids)), key=lambda i: -(ranked.fused[i] + bonus[i]))[:k]
    speaker = Signal(rank=None, score=1.0, weight=SPEAKER_BONUS, contribution=SPEAKER_BONUS)
    return Ranked(ids=[ranked.ids[i] for i in order], fused=[ranked.fused[i] + bonus[i] for i in order],
                  signals=[ranked.signals[i] | {"speaker": speaker} if bonus[i] else ranked.signals[i] for i in order],
                  candidates=ranked.candidates)


def by_speaker(catalog: Catalog, ranked: Ranked, query: str, k: int, redaction: Redaction,
               read: Callable[[list[int]], dict[int, MemoryRecord]]) -> Ranked:
    """`favour` the notes among the ranked whose speaker the query names; only the notes among them are read
    (`read`: ids -> the records the caller sees), and only when there are some."""
    ids = np.asarray(ranked.ids, dtype=np.int64)
    pos = catalog.position_of(ids)
    is_note = catalog.mask(Filters(kinds=frozenset({"note"})), redaction.visible)
    noted = ids[(pos >= 0) & is_note[np.maximum(pos, 0)]].tolist() if len(ids) else []
    records = read(noted) if noted else {}
    named = {m for m, r in records.items() if (who := speaker_in(r.text, r.metadata)) is not None and names(query, who)}
    return favour(ranked, named, k)
