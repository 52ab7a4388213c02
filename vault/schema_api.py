"""Tables written by api/: capability tokens, stored hashed.

- `api_tokens`: one row per capability token. The secret itself is never stored: `secret_sha256` is the
  SHA-256 of the 256-bit random secret (high entropy, so a plain hash is enough; comparison is constant
  time). `scopes` are the granted scopes, `location` the precision caveat (none|coarse|precise),
  `expires_at` NULL for no expiry, `revoked_at` set once by `token revoke` (rows are never deleted so the
  audit log's token ids stay resolvable). `rate_per_minute` is the per-token request budget; the
  rate-limit state itself lives in the server's memory (it is not personal data and need not survive a
  restart).
No CHECK or FOREIGN KEY constraints: every table must accept tests/vault/canary.py's planted rows.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0030_api_tokens",
        [
            """CREATE TABLE api_tokens (
                token_id VARCHAR PRIMARY KEY, secret_sha256 VARCHAR NOT NULL, agent VARCHAR NOT NULL,
                scopes VARCHAR[] NOT NULL, location VARCHAR NOT NULL, purpose VARCHAR,
                rate_per_minute INTEGER NOT NULL, created_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ,
                revoked_at TIMESTAMPTZ)""",
        ],
    ),
]
