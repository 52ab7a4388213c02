"""Portable encrypted backups: `lifevault export` / `lifevault import`.

A backup is a tar archive of what is already encrypted at rest (keys.json with its wrapped keys,
the checkpointed vault.duckdb, sealed blobs) plus manifest.json listing each member's sha256 and a
MAC over the manifest keyed by the vault's sealed-blob key. It opens anywhere with the passphrase
(or recovery code); nothing in it is plaintext.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from vault import audit
from vault import keys as keymod
from vault.errors import IntegrityError, VaultError, VaultExists, VaultMissing
from vault.fsio import fsync_dir, write_atomic
from vault.store import BLOB_DIR, DB_FILE, Vault

FORMAT = "lifevault-backup/1"


def _mac(key: bytes, manifest: bytes) -> str:
    return hmac.new(key, b"lifevault/backup/v1|" + manifest, hashlib.sha256).hexdigest()


def export(vault: Vault, out: Path) -> dict[str, object]:
    """Write a backup of the open vault to `out` (atomically). Returns the manifest summary."""
    vault.checkpoint()
    home = vault.home
    members: list[tuple[str, Path]] = [(keymod.KEYS_FILE, home / keymod.KEYS_FILE), (DB_FILE, home / DB_FILE)]
    blob_dir = home / BLOB_DIR
    if blob_dir.is_dir():
        members += [(f"{BLOB_DIR}/{p.name}", p) for p in sorted(blob_dir.glob("*.sealed"))]
    files = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in members:
            data = path.read_bytes()
            files[name] = hashlib.sha256(data).hexdigest()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
        manifest = json.dumps(
            {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "files": files},
            sort_keys=True,
        ).encode()
        for name, data in (("manifest.json", manifest), ("manifest.mac", _mac(vault._keys.sealed, manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    payload = buf.getvalue()
    write_atomic(Path(out), payload)
    digest = hashlib.sha256(payload).hexdigest()
    audit.record(vault, audit.BackupExported(sha256=digest, bytes=len(payload)))
    return {"file": str(out), "bytes": len(payload), "sha256": digest, "members": len(files)}


def _read(archive: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(archive, mode="r:") as tar:
            out = {}
            for m in tar.getmembers():
                if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise IntegrityError(f"{archive.name} is not a lifevault backup (unexpected member {m.name!r})")
                f = tar.extractfile(m)
                assert f is not None
                out[m.name] = f.read()
            return out
    except FileNotFoundError:
        raise VaultMissing(f"backup file {archive} does not exist") from None
    except tarfile.TarError:
        raise IntegrityError(f"{archive.name} is not a lifevault backup or is truncated") from None


def restore(archive: Path, home: Path, *, passphrase: str | None = None, recovery_code: str | None = None) -> Vault:
    """Check a backup (manifest, hashes, MAC with the unlocked key) and install it as a new vault home."""
    archive, home = Path(archive), Path(home).expanduser().absolute()
    if (home / keymod.KEYS_FILE).exists() or (home / DB_FILE).exists():
        raise VaultExists(f"{home} already holds a vault; import into an empty --home")
    members = _read(archive)
    try:
        manifest_bytes = members["manifest.json"]
        manifest = json.loads(manifest_bytes)
        mac = members["manifest.mac"].decode()
    except (KeyError, ValueError, UnicodeDecodeError):
        raise IntegrityError(f"{archive.name} has no valid manifest; it is not a lifevault backup") from None
    if manifest.get("format") != FORMAT or set(manifest.get("files", {})) != set(members) - {"manifest.json", "manifest.mac"}:
        raise IntegrityError(f"{archive.name}: manifest does not match the archive's contents")
    for name, digest in manifest["files"].items():
        if hashlib.sha256(members[name]).hexdigest() != digest:
            raise IntegrityError(f"{archive.name}: {name} failed its integrity check (damaged backup)")
    staging = home.with_name(f".{home.name}.importing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700, parents=True)
    try:
        for name, data in members.items():
            if name.startswith("manifest."):
                continue
            target = staging / name
            target.parent.mkdir(mode=0o700, exist_ok=True)
            write_atomic(target, data)
        k = (keymod.unlock_with_recovery(staging, recovery_code) if recovery_code is not None
             else keymod.unlock(staging, passphrase or ""))
        if not hmac.compare_digest(_mac(k.sealed, manifest_bytes), mac):
            raise IntegrityError(f"{archive.name}: the manifest was not written by this vault's keys (tampered backup)")
        if home.exists():
            if any(home.iterdir()):
                raise VaultExists(f"{home} is not empty; import into an empty --home")
            home.rmdir()
        os.replace(staging, home)
        fsync_dir(home.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    vault = Vault.open(home, passphrase, recovery_code=recovery_code)
    try:
        audit.record(vault, audit.BackupImported(sha256=hashlib.sha256(archive.read_bytes()).hexdigest()))
    except VaultError:
        vault.close()
        raise
    return vault
