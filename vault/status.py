"""What `lifevault status` and the privacy report show about the vault: counts and sizes, no contents."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault import keys as keymod
from vault.migrations import applied

if TYPE_CHECKING:
    from vault.store import Vault


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def key_generation(home: Path, name: str) -> int:
    return int(keymod.public_info(home)["meta"]["keys"][name]["generation"])


def collect(vault: Vault) -> dict[str, Any]:
    from vault.store import BLOB_DIR, DB_FILE

    home = vault.home
    tables = {t: int(vault.scalar(f'SELECT count(*) FROM "{t}"')) for t in vault.tables()}
    files = {DB_FILE: _size(home / DB_FILE), DB_FILE + ".wal": _size(home / (DB_FILE + ".wal"))}
    blobs = home / BLOB_DIR
    if blobs.is_dir():
        files |= {f"{BLOB_DIR}/{p.name}": _size(p) for p in sorted(blobs.iterdir())}
    info = keymod.public_info(home)
    out: dict[str, Any] = {
        "home": str(home),
        "cipher": "AES-256-GCM",
        "kdf": info["kdf"],
        "keys": info["meta"]["keys"],
        "passphrase_changed_at": info["meta"].get("passphrase_changed_at"),
        "rotated_at": info["meta"].get("rotated_at"),
        "tables": tables,
        "files": files,
        "migrations": [{"seq": s, "name": n, "applied_at": a.isoformat()} for s, n, a in applied(vault)],
        "duckdb": {
            "enable_external_access": vault.setting("enable_external_access"),
            "lock_configuration": vault.setting("lock_configuration"),
        },
    }
    if "loads" in tables:
        out["last_loads"] = [
            {"load_id": r[0], "source": r[1], "loaded": r[2], "finished_at": str(r[3])}
            for r in vault.query("SELECT load_id, source, loaded, finished_at FROM loads ORDER BY finished_at DESC LIMIT 5")
        ]
    return out
