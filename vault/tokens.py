"""The api_tokens table (vault/schema_api.py): capability tokens as stored, hashed.

The table is the vault's (every byte at rest is); api/tokens.py decides what a token means and keeps them in
memory, and reads and writes rows only through these functions:

    stored(vault)                  -> list[StoredToken]   every row
    insert(vault, token)           one new row (the caller holds the transaction with its audit event)
    mark_revoked(vault, token_id, at)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vault.store import Vault


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredToken:
    """One api_tokens row. Only the SHA-256 of the secret is ever stored."""

    token_id: str
    secret_sha256: str = field(repr=False)
    agent: str
    scopes: tuple[str, ...]
    location: str
    purpose: str | None
    rate_per_minute: int
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def stored(vault: Vault) -> list[StoredToken]:
    """Every token row, in no particular order."""
    return [StoredToken(token_id=r[0], secret_sha256=r[1], agent=r[2], scopes=tuple(r[3] or ()), location=r[4],
                        purpose=r[5], rate_per_minute=int(r[6]), created_at=r[7], expires_at=r[8], revoked_at=r[9])
            for r in vault.query("SELECT token_id, secret_sha256, agent, scopes, location, purpose, rate_per_minute, "
                                 "created_at, expires_at, revoked_at FROM api_tokens")]


def insert(vault: Vault, t: StoredToken) -> None:
    vault.execute("INSERT INTO api_tokens (token_id, secret_sha256, agent, scopes, location, purpose, "
                  "rate_per_minute, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  [t.token_id, t.secret_sha256, t.agent, list(t.scopes), t.location, t.purpose, t.rate_per_minute,
                   t.created_at, t.expires_at, t.revoked_at])


def mark_revoked(vault: Vault, token_id: str, at: datetime) -> None:
    vault.execute("UPDATE api_tokens SET revoked_at = ? WHERE token_id = ?", [at, token_id])
