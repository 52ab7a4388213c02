"""Context packs: the memories most relevant to a task, as text for a local model within a token budget.

    [1] Tue 4 Mar 2025 14:00–14:30 · event · Calendar: Check-up with Dr. Lee ... (memory 81723..., calendar)

Snippets come in search order (hybrid, filters first, redacted to the caller's view). Tokens are counted
with the embedding model's own tokenizer, per line; WordPiece splits on whitespace first, so the pack's
count is the sum of its lines' counts and never exceeds the budget. A snippet that does not fit is listed
in `left_out` (id, score, tokens) and smaller ones after it may still fit. Citations name each snippet's
memory id, source and time range.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from embeddings.agenda import DAY_END_H, DAY_START_H, Slot
from embeddings.labels import day_label, fold, local
from embeddings.redaction import Redaction
from embeddings.retrieve import Hit

__all__ = ["Agenda", "ContextPack", "LeftOut", "Redaction", "Snippet", "build"]

HEADER = "Memories relevant to the task, most relevant first (cite them by [number]):"
PLAN_HEADER = "Context for planning the task (cite memories by [number]):"
FREE_SHARE = 0.25  # the most of a planning pack's budget its free time may take
BRIEF_CHARS = 120  # an upcoming event's line in a planning pack: its title, time, place and people
ALSO_DATES = 5  # dates of a series' other instances written on its line


@dataclass(frozen=True, slots=True, kw_only=True)
class Snippet:
    n: int
    memory_id: int
    kind: str
    text: str  # the rendered line, as in the pack
    source: str
    start: str | None
    end: str | None
    score: float
    tokens: int
    also: tuple[int, ...] = ()  # the series' other instances named on this line (near-duplicates)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "id": self.memory_id, "kind": self.kind, "text": self.text, "source": self.source,
                "start": self.start, "end": self.end, "score": round(self.score, 6), "tokens": self.tokens,
                "also": list(self.also)}


@dataclass(frozen=True, slots=True, kw_only=True)
class LeftOut:
    memory_id: int
    score: float
    tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextPack:
    text: str
    snippets: tuple[Snippet, ...]
    left_out: tuple[LeftOut, ...]
    tokens_used: int
    token_budget: int
    free: tuple[Slot, ...] = ()  # free time listed in the pack (planning tasks)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "snippets": [s.to_dict() for s in self.snippets],
                "left_out": [{"id": x.memory_id, "score": round(x.score, 6), "tokens": x.tokens} for x in self.left_out],
                "tokens_used": self.tokens_used, "token_budget": self.token_budget,
                "free": [{"start": x.start.isoformat(), "end": x.end.isoformat(), "minutes": x.minutes}
                         for x in self.free]}


def _when(hit: Hit) -> str:
    m = hit.memory
    if m.start_ts is None:
        return "undated"
    s = local(m.start_ts, m.utc_offset_min)
    if m.end_ts is None or m.end_ts <= m.start_ts:
        return f"{day_label(s)} {s:%H:%M}"
    e = local(m.end_ts, m.utc_offset_min)
    return f"{day_label(s)} {s:%H:%M}–{e:%H:%M}" if e.date() == s.date() else f"{day_label(s)} {s:%H:%M} – {day_label(e)} {e:%H:%M}"


def line(n: int, hit: Hit) -> str:
    """One snippet; ingested memories' texts carry their own times, notes get theirs in front."""
    m = hit.memory
    when = f"{_when(hit)}: " if m.kind == "note" else ""
    return f"[{n}] {when}{m.text} ({m.kind}, memory {m.memory_id}, {m.source})"


_DATEISH = re.compile(r"\b(?:mon|tue|wed|thu|fri|sat|sun|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"
                      r"|\d+(?:[:.]\d+)?|\b(?:min|h|km|in|sessions?|all day)\b|[–\-()]")


def series_key(hit: Hit) -> str:
    """What a memory says apart from when: instances of one series, place or app share it (the caller's own
    text, so two places a caller sees only as "a gym" are one series to that caller, as they would be to a
    vault holding only what it sees)."""
    m = hit.memory
    if m.kind in ("note", "routine"):
        return f"{m.kind}|{m.memory_id}"
    return m.kind + "|" + " ".join(_DATEISH.sub(" ", fold(m.text)).split())


def grouped(hits: Sequence[Hit]) -> list[tuple[Hit, list[Hit]]]:
    """Hits in rank order, each with the later hits of its series (near-duplicates) folded under it."""
    groups: dict[str, tuple[Hit, list[Hit]]] = {}
    for h in hits:
        key = series_key(h)
        if key in groups:
            groups[key][1].append(h)
        else:
            groups[key] = (h, [])
    return list(groups.values())


def _short_when(hit: Hit) -> str:
    m = hit.memory
    if m.start_ts is None:
        return "undated"
    s = local(m.start_ts, m.utc_offset_min)
    return f"{s:%a} {s.day} {s:%b}" + (f" {s:%Y}" if m.kind != "event" else "")


def brief(hit: Hit, limit: int = BRIEF_CHARS) -> Hit:
    """The hit with its text cut at a word before `limit` characters ("…" marks the cut): an upcoming event's
    title, time, place and people come first, its agenda and links after."""
    text = hit.memory.text
    if len(text) <= limit:
        return hit
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.—-– ")
    return dataclasses.replace(hit, memory=dataclasses.replace(hit.memory, text=cut + "…"))


def group_line(n: int, hit: Hit, also: Sequence[Hit]) -> str:
    """One snippet; its near-duplicates ride along as dates ("also on Thu 6 Mar, Mon 10 Mar (3 in all)")."""
    text = line(n, hit)
    if not also:
        return text
    dates = sorted(also, key=lambda h: h.memory.start_ts or datetime.max.replace(tzinfo=UTC))
    shown = ", ".join(_short_when(h) for h in dates[:ALSO_DATES])
    more = f" and {len(dates) - ALSO_DATES} more" if len(dates) > ALSO_DATES else ""
    return f"{text}; also on {shown}{more} ({len(also) + 1} in all)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Agenda:
    """What a task about the future needs first: the window's events (time order), its free time, routines."""

    since: datetime
    until: datetime
    offset_min: int
    events: tuple[Hit, ...] = ()
    free: tuple[Slot, ...] = ()
    routines: tuple[Hit, ...] = ()

    def free_days(self) -> list[tuple[str, list[Slot]]]:
        """One line per local day ("Mon 1 Dec: 09:45–12:00, 13:00–20:00", "Sat 6 Dec: all day"), with its slots."""
        by_day: dict[str, list[Slot]] = {}
        for slot in self.free:
            d = local(slot.start, self.offset_min)
            by_day.setdefault(f"{d:%a} {d.day} {d:%b}", []).append(slot)
        whole = timedelta(hours=DAY_END_H - DAY_START_H)
        return [(f"{day}: " + ("all day" if len(slots) == 1 and slots[0].end - slots[0].start == whole else ", ".join(
                 f"{local(x.start, self.offset_min):%H:%M}–{local(x.end, self.offset_min):%H:%M}" for x in slots)),
                 slots) for day, slots in by_day.items()]


def build(hits: Sequence[Hit], *, token_budget: int, count_tokens: Callable[[Sequence[str]], list[int]],
          agenda: Agenda | None = None) -> ContextPack:
    """Greedy packing under `token_budget` tokens (headers included): with an agenda, its events, free time
    and routines first, then the relevant past; near-duplicates of one series share a line."""
    if token_budget <= 0:
        raise ValueError("token_budget must be positive")
    sections: list[tuple[str, Sequence[tuple[Hit, list[Hit]] | tuple[str, list[Slot]]]]] = []
    if agenda is not None:
        a, b = local(agenda.since, agenda.offset_min), local(agenda.until - timedelta(seconds=1), agenda.offset_min)
        window = f"{day_label(a)} – {day_label(b)}"
        sections += [(f"Upcoming, {window}:", grouped([brief(h) for h in agenda.events])), (f"Free time ({DAY_START_H:02d}:00–"
                     f"{DAY_END_H:02d}:00):", agenda.free_days()), ("Routines:", grouped(agenda.routines)),
                     ("Relevant past:", grouped(hits))]
        header = PLAN_HEADER
    else:
        sections.append(("", grouped(hits)))
        header = HEADER
    used = count_tokens([header])[0]
    if used > token_budget:
        return ContextPack(text="", snippets=(), left_out=tuple(
            LeftOut(memory_id=item[0].memory.memory_id, score=item[0].score, tokens=0)
            for _, items in sections for item in items if isinstance(item[0], Hit)), tokens_used=0,
            token_budget=token_budget)
    lines = [header]
    snippets: list[Snippet] = []
    left: list[LeftOut] = []
    free: list[Slot] = []
    def first_cost(title: str, items: Sequence[Any]) -> int:
        if not items:
            return 0
        first = items[0][0] if isinstance(items[0][0], str) else group_line(1, *items[0])
        return sum(count_tokens([title, first] if title else [first]))

    # each later section but the past keeps room for its first line, so one long section cannot starve the rest
    firsts = [first_cost(*section) for section in sections]
    reserves = [sum(firsts[i + 1:-1]) for i in range(len(sections))]
    for (title, items), first, reserve in zip(sections, firsts, reserves, strict=True):
        if not items:
            continue
        title_cost = count_tokens([title])[0] if title else 0
        opened = False
        cap = max(token_budget - reserve, min(token_budget, used + first))
        if items and isinstance(items[0][0], str):  # free time: a long window lists its first days
            cap = min(cap, used + max(first, int(FREE_SHARE * token_budget)))
        for item in items:
            if isinstance(item[0], str):
                text, cost = item[0], count_tokens([item[0]])[0]
            else:
                hit, also = item
                text = group_line(len(snippets) + 1, hit, also)
                cost = count_tokens([text])[0]
            extra = 0 if opened or not title else title_cost
            if used + cost + extra > cap:
                if isinstance(item[0], str):  # free days stay consecutive: a gap would read as a busy day
                    break
                left.append(LeftOut(memory_id=item[0].memory.memory_id, score=item[0].score, tokens=cost))
                left.extend(LeftOut(memory_id=h.memory.memory_id, score=h.score, tokens=0) for h in item[1])
                continue  # the line, and the instances it would have named (0 tokens); a smaller one may fit
            if not opened and title:
                lines.append(title)
                opened = True
            used += cost + extra
            lines.append(text)
            if isinstance(item[0], str):
                free.extend(item[1])
                continue
            m = hit.memory
            snippets.append(Snippet(
                n=len(snippets) + 1, memory_id=m.memory_id, kind=m.kind, text=text, source=m.source,
                start=m.start_ts.isoformat() if m.start_ts else None, end=m.end_ts.isoformat() if m.end_ts else None,
                score=hit.score, tokens=cost, also=tuple(h.memory.memory_id for h in also)))
    filled = bool(snippets) or len(lines) > 1
    return ContextPack(text="\n".join(lines) if filled else "", snippets=tuple(snippets), left_out=tuple(left),
                       tokens_used=used if filled else 0, token_budget=token_budget, free=tuple(free))
