"""Assertions shared by the memory tests."""

from __future__ import annotations

from vault.store import Vault


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
