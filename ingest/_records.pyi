"""The Records.json fast path (ingest/_records.c)."""

from typing import Any

def parse(buf: bytes, pos: int, end: int, /) -> tuple[Any, ...] | None:
    """(n, bytes used, the numbers' float64 buffers..., each text's offsets/data/validity..., starts, ends) of the
    plain elements at buf[pos:end], or None when the first is not plain."""
