"""SQL string literals, for what cannot be bound as a parameter (LOAD's and ATTACH's paths) and the hash
chains' multi-row inserts. A leaf: the store and the chains both use it, and the chains must not import
the store at run time (the store runs their migration steps and after-open hooks while it opens).
"""

from __future__ import annotations


def sql_literal(text: str) -> str:
    """A quoted SQL string literal (DuckDB's standard strings: a quote is doubled, backslashes are plain
    characters): for paths and the audit chain's hot-path inserts; keys are always bound as parameters."""
    return "'" + text.replace("'", "''") + "'"


__all__ = ["sql_literal"]
