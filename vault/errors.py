"""User-facing vault errors: each message is one line that says what happened and what to do."""

from __future__ import annotations


class VaultError(Exception):
    """Base for every error a user can cause or fix. The CLI prints str(e) on one line, exit 1."""

    exit_code = 1


class VaultMissing(VaultError):
    pass


class VaultExists(VaultError):
    pass


class WrongPassphrase(VaultError):
    pass


class KeysDamaged(VaultError):
    pass


class IntegrityError(VaultError):
    """Encrypted data failed authentication: tampered, truncated, or corrupted."""


class VaultLocked(VaultError):
    pass


class DiskFull(VaultError):
    pass


class MemoryCapReached(VaultError):
    """DuckDB needed more than its memory_limit for a statement and could not spill the rest to disk."""


class BudgetExhausted(VaultError):
    """A privacy-ledger append that would exceed the user's lifetime budget."""

    exit_code = 3
