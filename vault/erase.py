"""Removing source rows for `forget` (embeddings/forget.py): the write half of its cascade on ingest's tables.

Ingest writes these tables, but the memory layer may not import ingest (they are siblings above the vault),
so the vault, which holds every table's schema, owns the few statements that remove rows from them. The
caller holds the transaction: the whole cascade commits or none of it does.

    forget_rows(vault, "stays", ids, at)   -> rows deleted; ids remembered in forgotten_rows
    drop_summary_day(vault, day)           the day's daily_summaries row
    drop_summary_place(vault, day, place)  -> whether the place was in that day's `places`
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from vault.load import RAW_TABLES
from vault.sqltext import id_list
from vault.store import Vault

FORGETTABLE = frozenset({*RAW_TABLES, "stays", "trips", "app_sessions"})  # tables keyed by row_id


def forget_rows(vault: Vault, table: str, row_ids: Sequence[int], at: datetime) -> int:
    """Delete these rows of `table` and remember their keyed ids (no content) in forgotten_rows, so ingest
    refuses to bring them back from an old export. Returns the rows that were there."""
    if table not in FORGETTABLE:
        raise ValueError(f"vault.erase: {table!r} is not a table forget removes rows from")
    ids = id_list(row_ids)
    n = int(vault.scalar(f"SELECT count(*) FROM {table} WHERE row_id IN (SELECT unnest({ids}))"))
    vault.execute(f"DELETE FROM {table} WHERE row_id IN (SELECT unnest({ids}))")
    vault.execute(f"INSERT INTO forgotten_rows SELECT ?, unnest({ids}), ? ON CONFLICT DO NOTHING", [table, at])
    return n


def drop_summary_day(vault: Vault, day: str) -> None:
    """Remove one local day's daily_summaries row (`day` is YYYY-MM-DD)."""
    vault.execute("DELETE FROM daily_summaries WHERE day = ?::DATE", [day])


def drop_summary_place(vault: Vault, day: str, place: str) -> bool:
    """Remove one place from that day's daily_summaries.places; whether it was there."""
    row = vault.query("SELECT places FROM daily_summaries WHERE day = ?::DATE", [day])
    if not row or not row[0][0]:
        return False
    places = json.loads(row[0][0])
    if places.pop(place, None) is None:
        return False
    vault.execute("UPDATE daily_summaries SET places = ? WHERE day = ?::DATE", [json.dumps(places, sort_keys=True), day])
    return True
