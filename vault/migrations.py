"""Named, ordered schema migrations, recorded in `_migrations`. The only way the schema changes.

Each migration is (name, SQL statements) and optionally a Python step ("module:function", called with the
vault after the statements), for changes SQL cannot make (re-hashing the chains: vault/chain_migrate.py).
Names never change once released; new ones are appended. All of them are applied in one transaction per
migration when a vault opens.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vault.schema import MIGRATIONS as _DEFINED
from vault.schema import STEPS as _STEPS

if TYPE_CHECKING:
    from vault.store import Vault


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    statements: tuple[str, ...]
    step: str | None = None  # "module:function", imported when the migration runs (no import cycle with store)

    def run_step(self, vault: Vault) -> None:
        if self.step:
            module, func = self.step.split(":")
            getattr(importlib.import_module(module), func)(vault)


MIGRATIONS: tuple[Migration, ...] = tuple(Migration(n, tuple(s), _STEPS.get(n)) for n, s in _DEFINED)
# Python steps run on every open, after the migrations (named like steps: the chains import the store):
# keys.json's head anchor is created for a vault from before it, or caught up after a crash.
AFTER_OPEN: tuple[str, ...] = ("vault.headanchor:on_open",)


def after_open(vault: Vault) -> None:
    for step in AFTER_OPEN:
        module, func = step.split(":")
        getattr(importlib.import_module(module), func)(vault)


def settled(vault: Vault) -> bool:
    """Is the schema the one this code reads: every migration applied, none unknown? All a read-only open
    (vault/store.py) needs: the AFTER_OPEN steps only write (the head anchor's catch-up), so they wait for the
    next read-write open, which finds the vault as the read-only one left it."""
    if "_migrations" not in vault.tables():
        return False
    return {name for _, name, _ in applied(vault)} == {m.name for m in MIGRATIONS}


def applied(vault: Vault) -> list[tuple[int, str, datetime]]:
    return [tuple(r) for r in vault.query("SELECT seq, name, applied_at FROM _migrations ORDER BY seq")]


def apply(vault: Vault) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied now."""
    vault.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (seq INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, "
        "applied_at TIMESTAMPTZ NOT NULL)"
    )
    done = {name for _, name, _ in applied(vault)}
    known = [m.name for m in MIGRATIONS]
    unknown = done - set(known)
    if unknown:
        from vault.errors import VaultError

        raise VaultError(
            f"this vault has migrations this lifevault does not know ({', '.join(sorted(unknown))}); upgrade lifevault"
        )
    now_applied = []
    for m in MIGRATIONS:
        if m.name in done:
            continue
        with vault.transaction():
            for stmt in m.statements:
                vault.execute(stmt)
            m.run_step(vault)
            vault.execute(
                "INSERT INTO _migrations SELECT coalesce(max(seq), 0) + 1, ?, ? FROM _migrations", [m.name, datetime.now(UTC)]
            )
        now_applied.append(m.name)
    return now_applied
