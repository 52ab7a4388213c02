"""Context packs: the memories most relevant to a task, as text for a local model within a token budget.

    [1] Tue 4 Mar 2025 14:00–14:30 · event · Calendar: Check-up with Dr. Lee ... (memory 81723..., calendar)

Snippets come in search order (hybrid, filters first, redacted to the caller's view). Tokens are counted
with the embedding model's own tokenizer, per line; WordPiece splits on whitespace first, so the pack's
count is the sum of its lines' counts and never exceeds the budget. A snippet that does not fit is listed
in `left_out` (id, score, tokens) and smaller ones after it may still fit. Citations name each snippet's
memory id, source and time range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from embeddings.memories import day_label, local
from embeddings.redaction import Redaction
from embeddings.retrieve import Hit

__all__ = ["ContextPack", "LeftOut", "Redaction", "Snippet", "build"]

HEADER = "Memories relevant to the task, most relevant first (cite them by [number]):"


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

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "id": self.memory_id, "kind": self.kind, "text": self.text, "source": self.source,
                "start": self.start, "end": self.end, "score": round(self.score, 6), "tokens": self.tokens}


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

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "snippets": [s.to_dict() for s in self.snippets],
                "left_out": [{"id": x.memory_id, "score": round(x.score, 6), "tokens": x.tokens} for x in self.left_out],
                "tokens_used": self.tokens_used, "token_budget": self.token_budget}


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


def build(hits: Sequence[Hit], *, token_budget: int, count_tokens: Callable[[Sequence[str]], list[int]]) -> ContextPack:
    """Greedy packing in rank order under `token_budget` tokens (header included)."""
    if token_budget <= 0:
        raise ValueError("token_budget must be positive")
    header_tokens = count_tokens([HEADER])[0]
    if header_tokens > token_budget:
        return ContextPack(text="", snippets=(), left_out=tuple(LeftOut(memory_id=h.memory.memory_id, score=h.score,
                           tokens=0) for h in hits), tokens_used=0, token_budget=token_budget)
    used = header_tokens
    lines = [HEADER]
    snippets: list[Snippet] = []
    left: list[LeftOut] = []
    # number provisionally by rank; renumber what fits so citations are dense
    candidates = [line(i + 1, h) for i, h in enumerate(hits)]
    costs = count_tokens(candidates)
    for i, (hit, cost) in enumerate(zip(hits, costs, strict=True)):
        n = len(snippets) + 1
        text = line(n, hit) if n != i + 1 else candidates[i]
        if n != i + 1:
            cost = count_tokens([text])[0]
        if used + cost > token_budget:
            left.append(LeftOut(memory_id=hit.memory.memory_id, score=hit.score, tokens=cost))
            continue
        used += cost
        lines.append(text)
        m = hit.memory
        snippets.append(Snippet(
            n=n, memory_id=m.memory_id, kind=m.kind, text=text, source=m.source,
            start=m.start_ts.isoformat() if m.start_ts else None, end=m.end_ts.isoformat() if m.end_ts else None,
            score=hit.score, tokens=cost))
    return ContextPack(text="\n".join(lines) if snippets else "", snippets=tuple(snippets), left_out=tuple(left),
                       tokens_used=used if snippets else 0, token_budget=token_budget)
