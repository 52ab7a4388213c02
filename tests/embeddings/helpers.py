"""Assertions and fixtures' building blocks shared by the memory tests."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from embeddings import retrieve
from vault.store import Vault


def notes_catalog(texts: list[str], at: datetime) -> retrieve.Catalog:
    """A catalog of agent notes, ids 1..len(texts), all at `at`, without a vault."""
    n = len(texts)
    cat = retrieve.Catalog()
    cat.add(pl.DataFrame({
        "memory_id": list(range(1, n + 1)), "kind": ["note"] * n, "sensitivity": ["note"] * n,
        "source": ["agent"] * n, "start_ts": [at] * n, "end_ts": [at] * n, "utc_offset_min": [0] * n,
        "ingested_at": [at] * n, "tags": [[]] * n, "text": texts, "text_redacted": [None] * n},
        schema_overrides={"tags": pl.List(pl.String), "text_redacted": pl.String}))
    return cat


def tables_containing(vault: Vault, needle: str) -> list[str]:
    """Every table.column (text-like) in the vault whose value contains `needle` (case-insensitive)."""
    found = []
    for table in vault.tables():
        cols = vault.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = 'vault' AND table_name = ?", [table])
        for col, dtype in cols:
            if dtype.upper().startswith(("VARCHAR", "JSON")) or dtype.upper().endswith("[]"):
                n = vault.scalar(f'SELECT count(*) FROM "{table}" WHERE lower(CAST("{col}" AS VARCHAR)) LIKE ?',
                                 [f"%{needle.lower()}%"])
                if n:
                    found.append(f"{table}.{col}")
    return found
