"""How times and durations are written in memory texts, and how text is folded for matching (a leaf module:
memories, routines and context packs all write them the same way)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta


def local(ts: datetime, offset_min: int | None) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) + timedelta(minutes=offset_min or 0)


def day_label(d: date | datetime) -> str:
    return f"{d:%a} {d.day} {d:%b %Y}"


def duration_label(minutes: float) -> str:
    m = int(round(minutes))
    if m < 60:
        return f"{m} min"
    h, r = divmod(m, 60)
    return f"{h} h {r} min" if r else f"{h} h"


def fold(text: str) -> str:
    """Lower case without accents (for matching place keywords and lexical tokens)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
