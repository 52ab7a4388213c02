"""Tables written by api/: capability tokens (hashed) and per-token rate-limit state."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, list[str]]] = []
