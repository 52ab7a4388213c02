"""Every table the vault holds, as named migrations (vault owns every byte at rest).

Other packages read and write these tables through Vault; they never create tables themselves.
Each area keeps its migrations in its own module; names are globally unique and never change.
"""

from __future__ import annotations

from vault.schema_api import MIGRATIONS as API
from vault.schema_ingest import MIGRATIONS as INGEST
from vault.schema_memory import MIGRATIONS as MEMORY

_CHAIN_COLUMNS = """
    seq BIGINT PRIMARY KEY,
    ts TIMESTAMPTZ NOT NULL,
    kind VARCHAR NOT NULL,
    body VARCHAR NOT NULL,
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
"""

CORE: list[tuple[str, list[str]]] = [
    ("0001_audit_log", [f"CREATE TABLE audit_log ({_CHAIN_COLUMNS})"]),
    ("0002_privacy_ledger", [f"CREATE TABLE privacy_ledger ({_CHAIN_COLUMNS})"]),
    ("0003_vault_meta", ["CREATE TABLE vault_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)"]),
]

# Both hash chains re-hashed under RFC 8785 canonical JSON (no SQL: a Python step)
CHAINS: list[tuple[str, list[str]]] = [("0040_chains_rfc8785", [])]

MIGRATIONS: list[tuple[str, list[str]]] = CORE + INGEST + MEMORY + API + CHAINS
STEPS: dict[str, str] = {"0040_chains_rfc8785": "vault.chain_migrate:migrate"}
