"""Tables written by embeddings/: memories, their history, and vector bookkeeping."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, list[str]]] = []
