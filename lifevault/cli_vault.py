"""Vault commands: init, status, passwd, rotate-key, export, import, audit verify."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lifevault import cli_audit
from lifevault.cli_common import (
    App,
    HomeOpt,
    JsonOpt,
    PassFileOpt,
    RecoveryOpt,
    emit_json,
    err,
    open_vault,
    say,
    say_made_private,
    settings,
)
from lifevault.secrets_input import read_passphrase
from vault import keys as keymod
from vault import status as vault_status
from vault.keys import KdfParams

# vault.store (duckdb), vault.audit, vault.backup and vault.ledger are imported by the commands that use them:
# `--help` loads none of them

audit_app = App(help="Verify and export the audit log and privacy ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("status")(status)
    app.command("passwd")(passwd)
    app.command("rotate-key")(rotate_key)
    app.command("export")(export)
    app.command("import")(import_)
    app.add_typer(audit_app, name="audit")
    audit_app.command("verify")(audit_verify)
    cli_audit.register(audit_app)


def init(
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    kdf_memory_mib: Annotated[int, typer.Option(help="Argon2id memory (MiB), 19 to 1024.")] = 64,
    kdf_iterations: Annotated[int, typer.Option(help="Argon2id passes, 2 to 10.")] = 3,
    kdf_lanes: Annotated[int, typer.Option(help="Argon2id lanes, 1 to 16.")] = 4,
    json_out: JsonOpt = False,
) -> None:
    """Create a vault: keys.json (Argon2id-wrapped keys) and an encrypted vault.duckdb.

    Example: LIFEVAULT_PASSPHRASE=... lifevault init --home ~/.lifevault
    """
    from vault import audit
    from vault.store import Vault

    s = settings(home)
    kdf = _kdf(kdf_memory_mib * 1024, kdf_iterations, kdf_lanes)
    pw = read_passphrase(passphrase_file, confirm=True, prompt="New passphrase")
    vault, code = Vault.create(s.home, pw, kdf=kdf)
    say_made_private(vault.home, vault.home_mode_was)
    with vault:
        audit.record(vault, audit.VaultCreated(cipher="AES-256-GCM", kdf={"name": "argon2id", **_kdf_dict(kdf)}))
    err.print(f"Created vault in {s.home}")
    err.print("Recovery code (shown once; write it down and keep it offline):")
    err.print(f"  {code}")
    if json_out:
        emit_json({"home": str(s.home), "recovery_code": code})


def _kdf(memory_kib: int, iterations: int, lanes: int) -> KdfParams:
    """Argon2id parameters from the --kdf-* options; outside [floor, ceiling] a usage error naming the bound."""
    try:
        return KdfParams(memory_kib=memory_kib, iterations=iterations, lanes=lanes)
    except ValueError as e:
        raise typer.BadParameter(f"--kdf-*: {e}") from None


def _kdf_dict(kdf: KdfParams) -> dict[str, int]:
    return {"memory_kib": kdf.memory_kib, "iterations": kdf.iterations, "lanes": kdf.lanes}


def status(home: HomeOpt = None, passphrase_file: PassFileOpt = None, json_out: JsonOpt = False) -> None:
    """Tables, row counts, file sizes, cipher, key ages, migrations and the last loads.

    Example: lifevault status --json
    """
    with open_vault(home, passphrase_file, read_only=True) as vault:
        info = vault_status.collect(vault)
    if json_out:
        emit_json(info)
        return
    say(f"Vault {info['home']}  cipher {info['cipher']}  KDF {info['kdf']}")
    say("Files: " + ", ".join(f"{k} {v:,} B" for k, v in info["files"].items()))
    for t, n in info["tables"].items():
        say(f"  {t:<28} {n:>12,} rows")
    say("Migrations: " + ", ".join(m["name"] for m in info["migrations"]))
    for load in info.get("last_loads", []):
        say(f"  load {load['load_id']} {load['source']} loaded {load['loaded']} at {load['finished_at']}")


def passwd(
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    recovery_code: RecoveryOpt = None,
    new_passphrase_file: Annotated[
        Path | None, typer.Option(help="Read the new passphrase from this file (else $LIFEVAULT_NEW_PASSPHRASE, else prompt).")
    ] = None,
    kdf_memory_mib: Annotated[
        int | None, typer.Option(help="Raise Argon2id memory (MiB, up to 1024; default: keep).", show_default=False)
    ] = None,
    kdf_iterations: Annotated[
        int | None, typer.Option(help="Raise Argon2id passes (up to 10; default: keep).", show_default=False)
    ] = None,
) -> None:
    """Change the passphrase: re-wraps the keys only, the data is not touched. The KDF parameters are kept
    or raised (--kdf-memory-mib, --kdf-iterations), never lowered.

    Example: lifevault passwd --recovery-code XXXXX-XXXXX-... (when the passphrase is forgotten)
    """
    from vault import audit

    least = keymod.rewrap_floor(settings(home).home)  # (keys.json alone: refused before any passphrase is asked)
    kdf = _kdf(least.memory_kib if kdf_memory_mib is None else kdf_memory_mib * 1024,
               least.iterations if kdf_iterations is None else kdf_iterations, least.lanes)
    if kdf.lower_than(least):
        raise typer.BadParameter(
            f"--kdf-*: passwd keeps or raises the KDF parameters, never lowers them (now {keymod.describe(least)})")
    vault = open_vault(home, passphrase_file, recovery_code)
    with vault:
        env_new = os.environ.get("LIFEVAULT_NEW_PASSPHRASE")
        new = env_new if (env_new and new_passphrase_file is None) else None
        if new is None:
            if new_passphrase_file is None:
                os.environ.pop("LIFEVAULT_PASSPHRASE", None)  # force the prompt for the new one
            new = read_passphrase(new_passphrase_file, confirm=True, prompt="New passphrase")
        vault.change_passphrase(new, kdf=kdf)
        audit.record(vault, audit.PassphraseChanged(via="recovery_code" if recovery_code else "passphrase"))
    err.print("Passphrase changed; the data and the recovery code are unchanged.")


def rotate_key(home: HomeOpt = None, passphrase_file: PassFileOpt = None) -> None:
    """New database key: copy into a new encrypted file, swap atomically, destroy the old wrapped key.

    Example: lifevault rotate-key
    """
    from vault import audit

    with open_vault(home, passphrase_file) as vault:
        vault.rotate_duckdb_key()
        gen = vault_status.key_generation(vault.home, "duckdb")
        audit.record(vault, audit.KeyRotated(key="duckdb", generation=gen))
    err.print(f"Database key rotated (generation {gen}); the old key no longer opens the vault.")


def export(
    out: Annotated[Path, typer.Option("--out", help="Backup file to write.")],
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write an encrypted, portable backup (opens anywhere with the passphrase or recovery code).

    Example: lifevault export --out vault-2025-11.lvbackup
    """
    from vault import backup

    with open_vault(home, passphrase_file) as vault:
        summary = backup.export(vault, out)
    err.print(f"Backup written to {out} ({summary['bytes']:,} bytes, sha256 {str(summary['sha256'])[:16]}…)")
    if json_out:
        emit_json(summary)


def import_(
    archive: Annotated[Path, typer.Argument(help="Backup file written by `lifevault export`.")],
    home: HomeOpt = None,
    passphrase_file: PassFileOpt = None,
    recovery_code: RecoveryOpt = None,
) -> None:
    """Restore a backup into an empty vault home, after checking its integrity.

    Example: lifevault import vault-2025-11.lvbackup --home ~/.lifevault
    """
    from vault import backup

    s = settings(home)
    pw = None if recovery_code else read_passphrase(passphrase_file)
    with backup.restore(archive, s.home, passphrase=pw, recovery_code=recovery_code):
        pass
    err.print(f"Backup restored into {s.home}")


def audit_verify(home: HomeOpt = None, passphrase_file: PassFileOpt = None, json_out: JsonOpt = False) -> None:
    """Recompute the audit-log and privacy-ledger hash chains and every epsilon in the ledger (PLD and RDP),
    and cross-check the ledger against the release anchors in the audit log both ways.

    Reports the first broken link, a release removed from or added to the ledger behind the audit log's
    back, every release whose recorded epsilon differs from the recomputation, and a chain that was already
    broken when the chains were re-hashed under RFC 8785. Exit code 5 on any. Exit code 7 when either chain
    is shorter than, or differs from, the head anchored in keys.json (records removed from both tables).

    Example: lifevault audit verify --json
    """
    from vault import audit, chain, chain_migrate, headanchor, ledger

    with open_vault(home, passphrase_file) as vault:
        anchored = headanchor.check(vault)
        results: list[chain.Verification | ledger.CrossCheck | headanchor.AnchorCheck] = [
            audit.verify(vault), ledger.verify(vault), ledger.cross_check(vault), anchored]
        epsilons = cli_audit.recompute_ledger(vault)
        legacy = chain_migrate.legacy_breaks(vault)
        canon = chain_migrate.canonicalization(vault)
    for r in results:
        err.print(r.summary())
    for line in legacy:
        err.print(line)
    err.print(cli_audit.summary(epsilons))
    if json_out:
        out = {r.table: {"ok": r.ok, "checked": r.checked, "first_broken": r.first_broken, "reason": r.reason}
               for r in results}
        emit_json(out | {"epsilon_recomputed": epsilons, "canonicalization": canon, "broken_before_rehash": legacy})
    if not anchored.ok:
        raise typer.Exit(cli_audit.EXIT_ANCHOR_MISMATCH)
    if not (all(r.ok for r in results) and epsilons["ok"]) or legacy:
        raise typer.Exit(cli_audit.EXIT_CHECK_FAILED)
