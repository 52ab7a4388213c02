"""Plant a canary string in every table the vault has (whatever future migrations add)."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime

from vault.store import Vault

_counter = itertools.count(10_000_000 + random.randrange(1_000_000))


def _value(data_type: str, canary: str) -> object:
    t = data_type.upper()
    if t.endswith("[]"):
        return [_value(t[:-2], canary)]
    if t in ("VARCHAR", "TEXT") or t.startswith("VARCHAR"):
        return canary
    if t == "JSON":
        return json.dumps({"note": canary})
    if t in ("BIGINT", "INTEGER", "HUGEINT", "UBIGINT", "SMALLINT", "TINYINT", "UINTEGER"):
        return next(_counter) % 30000 if t in ("SMALLINT", "TINYINT") else next(_counter)
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return 0.5
    if t == "BOOLEAN":
        return False
    if t.startswith("TIMESTAMP"):
        return datetime.now(UTC)
    if t == "DATE":
        return datetime.now(UTC).date()
    if t == "BLOB":
        return canary.encode()
    raise AssertionError(f"canary planting does not know type {data_type}")


def plant_everywhere(vault: Vault, canary: str) -> list[str]:
    """Insert one row holding `canary` in every text column of every table; returns the tables touched."""
    touched = []
    for table in vault.tables():
        if table == "_migrations":  # schema bookkeeping, not data
            continue
        cols = vault.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = 'vault' AND table_name = ? ORDER BY ordinal_position",
            [table],
        )
        names = ", ".join(f'"{c}"' for c, _ in cols)
        marks = ", ".join("?" for _ in cols)
        vault.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', [_value(t, canary) for _, t in cols])
        touched.append(table)
    return touched
