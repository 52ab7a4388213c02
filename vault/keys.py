"""Key management: passphrase -> Argon2id KEK -> wrapped data-encryption keys (keys.json).

The only module that sees the passphrase, the recovery code or raw keys.

keys.json (written atomically, mode 0600):

    {"format": "lifevault-keys/1",
     "kdf": {"name": "argon2id", "salt": b64, "memory_kib": 65536, "iterations": 3, "lanes": 4},
     "recovery_kdf": {... same shape ...},
     "wrapped": {"passphrase": {"duckdb": W, "sealed": W, "rowid": W, "recovery_kek": W},
                 "recovery":   {"duckdb": W, "sealed": W, "rowid": W}},
     "pending": null | {"passphrase": {"duckdb": W}, "recovery": {"duckdb": W}},   # during rotate-key
     "meta": {"created_at": .., "passphrase_changed_at": .., "keys": {"duckdb": {"created_at": .., "generation": 1}, ..}}}

    W = {"nonce": b64, "ct": b64}  (AES-256-GCM under the KEK, associated data b"lifevault/dek/<name>")

Three random 32-byte DEKs: `duckdb` (the database), `sealed` (blobs outside the database), `rowid`
(keyed row ids). The recovery code wraps the same DEKs a second time. The passphrase side also wraps
the recovery KEK, so rotate-key can wrap a new DEK for the recovery side without asking for the code;
this grants the passphrase nothing it did not already have (it unwraps every DEK anyway).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from vault.errors import KeysDamaged, VaultMissing, WrongPassphrase
from vault.fsio import write_atomic

KEYS_FILE = "keys.json"
FORMAT = "lifevault-keys/1"
DEK_NAMES = ("duckdb", "sealed", "rowid")
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


@dataclass(frozen=True, slots=True, kw_only=True)
class KdfParams:
    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        if self.memory_kib < 8 * self.lanes or self.iterations < 1 or self.lanes < 1:
            raise ValueError("Argon2id parameters out of range")


@dataclass(frozen=True, slots=True)
class Keys:
    """Unwrapped keys for an open vault. Never printed: repr shows names only."""

    duckdb: bytes = field(repr=False)
    sealed: bytes = field(repr=False)
    rowid: bytes = field(repr=False)
    pending_duckdb: bytes | None = field(default=None, repr=False)
    _kek: bytes = field(default=b"", repr=False)
    _recovery_kek: bytes = field(default=b"", repr=False)

    def duckdb_key_text(self, *, pending: bool = False) -> str:
        """The value bound to ATTACH ... (ENCRYPTION_KEY ?): base64 of the DEK."""
        key = self.pending_duckdb if pending else self.duckdb
        assert key is not None
        return base64.b64encode(key).decode()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _derive(secret: bytes, kdf: dict[str, Any]) -> bytes:
    return Argon2id(
        salt=_unb64(kdf["salt"]),
        length=32,
        iterations=int(kdf["iterations"]),
        lanes=int(kdf["lanes"]),
        memory_cost=int(kdf["memory_kib"]),
    ).derive(secret)


def _kdf_record(params: KdfParams) -> dict[str, Any]:
    return {
        "name": "argon2id",
        "salt": _b64(os.urandom(16)),
        "memory_kib": params.memory_kib,
        "iterations": params.iterations,
        "lanes": params.lanes,
    }


def _wrap(kek: bytes, name: str, dek: bytes) -> dict[str, str]:
    nonce = os.urandom(12)
    return {"nonce": _b64(nonce), "ct": _b64(AESGCM(kek).encrypt(nonce, dek, f"lifevault/dek/{name}".encode()))}


def _unwrap(kek: bytes, name: str, w: dict[str, str]) -> bytes:
    return AESGCM(kek).decrypt(_unb64(w["nonce"]), _unb64(w["ct"]), f"lifevault/dek/{name}".encode())


def _normalise_code(code: str) -> bytes:
    return "".join(ch for ch in code.upper() if ch.isalnum()).encode()


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(30))  # 150 bits
    return "-".join(raw[i : i + 5] for i in range(0, 30, 5))


def keys_path(home: Path) -> Path:
    return Path(home) / KEYS_FILE


def read_keyfile(home: Path) -> dict[str, Any]:
    path = keys_path(home)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise VaultMissing(
            f"no keys.json in {home}: this is not a vault home (run `lifevault init` or pass --home)"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise KeysDamaged(f"{path} is damaged (not valid JSON); restore it from a backup (`lifevault import`)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeysDamaged(f"{path} is not a lifevault key file (format {FORMAT} expected)")
    try:
        for side in ("passphrase", "recovery"):
            for name in DEK_NAMES:
                w = doc["wrapped"][side][name]
                _unb64(w["nonce"]), _unb64(w["ct"])
        doc["kdf"]["salt"], doc["recovery_kdf"]["salt"]  # noqa: B018
    except (KeyError, TypeError, ValueError):
        raise KeysDamaged(f"{path} is damaged (missing or malformed fields); restore it from a backup") from None
    return doc


def _write_keyfile(home: Path, doc: dict[str, Any]) -> None:
    write_atomic(keys_path(home), json.dumps(doc, indent=2, sort_keys=True).encode())


def create(home: Path, passphrase: str, *, kdf: KdfParams | None = None) -> tuple[Keys, str]:
    """Write a new keys.json with fresh DEKs; return the keys and the one-time recovery code."""
    if not passphrase:
        raise WrongPassphrase("the passphrase must not be empty")
    params = kdf or KdfParams()
    code = new_recovery_code()
    doc: dict[str, Any] = {
        "format": FORMAT,
        "kdf": _kdf_record(params),
        "recovery_kdf": _kdf_record(params),
        "pending": None,
        "meta": {"created_at": _now(), "passphrase_changed_at": None, "rotated_at": None, "keys": {}},
    }
    kek = _derive(passphrase.encode(), doc["kdf"])
    rkek = _derive(_normalise_code(code), doc["recovery_kdf"])
    deks = {name: os.urandom(32) for name in DEK_NAMES}
    doc["wrapped"] = {
        "passphrase": {n: _wrap(kek, n, k) for n, k in deks.items()} | {"recovery_kek": _wrap(kek, "recovery_kek", rkek)},
        "recovery": {n: _wrap(rkek, n, k) for n, k in deks.items()},
    }
    doc["meta"]["keys"] = {n: {"created_at": _now(), "generation": 1} for n in DEK_NAMES}
    _write_keyfile(home, doc)
    return Keys(**deks, _kek=kek, _recovery_kek=rkek), code


def _open_side(doc: dict[str, Any], side: str, kek: bytes) -> dict[str, bytes]:
    try:
        deks = {n: _unwrap(kek, n, doc["wrapped"][side][n]) for n in DEK_NAMES}
        pending = doc.get("pending")
        if pending:
            deks["pending_duckdb"] = _unwrap(kek, "duckdb", pending[side]["duckdb"])
        return deks
    except InvalidTag:
        what = "passphrase" if side == "passphrase" else "recovery code"
        raise WrongPassphrase(
            f"wrong {what}: keys.json could not be unlocked (try again; `--recovery-code` if you forgot it)"
        ) from None


def unlock(home: Path, passphrase: str) -> Keys:
    doc = read_keyfile(home)
    kek = _derive(passphrase.encode(), doc["kdf"])
    deks = _open_side(doc, "passphrase", kek)
    try:
        rkek = _unwrap(kek, "recovery_kek", doc["wrapped"]["passphrase"]["recovery_kek"])
    except (InvalidTag, KeyError, ValueError):
        raise KeysDamaged(f"{keys_path(home)} is damaged (recovery key wrap); restore it from a backup") from None
    return Keys(**deks, _kek=kek, _recovery_kek=rkek)


def unlock_with_recovery(home: Path, code: str) -> Keys:
    doc = read_keyfile(home)
    rkek = _derive(_normalise_code(code), doc["recovery_kdf"])
    return Keys(**_open_side(doc, "recovery", rkek), _recovery_kek=rkek)


def change_passphrase(home: Path, keys: Keys, new_passphrase: str, *, kdf: KdfParams | None = None) -> Keys:
    """Re-wrap the same DEKs under a new passphrase (fresh salt; KDF parameters may be raised). Data untouched."""
    if not new_passphrase:
        raise WrongPassphrase("the new passphrase must not be empty")
    doc = read_keyfile(home)
    if kdf is None:
        old = doc["kdf"]
        kdf = KdfParams(memory_kib=old["memory_kib"], iterations=old["iterations"], lanes=old["lanes"])
    doc["kdf"] = _kdf_record(kdf)
    kek = _derive(new_passphrase.encode(), doc["kdf"])
    deks = {n: getattr(keys, n) for n in DEK_NAMES}
    doc["wrapped"]["passphrase"] = {n: _wrap(kek, n, k) for n, k in deks.items()} | {
        "recovery_kek": _wrap(kek, "recovery_kek", keys._recovery_kek)
    }
    if doc.get("pending") and keys.pending_duckdb:
        doc["pending"]["passphrase"] = {"duckdb": _wrap(kek, "duckdb", keys.pending_duckdb)}
    doc["meta"]["passphrase_changed_at"] = _now()
    _write_keyfile(home, doc)
    return replace(keys, _kek=kek)


def stage_duckdb_key(home: Path, keys: Keys) -> Keys:
    """Step 1 of rotate-key: write a new DuckDB DEK as `pending` (both sides) before any data moves."""
    if not keys._kek:
        raise WrongPassphrase("rotate-key needs the passphrase (not the recovery code); set a passphrase first")
    doc = read_keyfile(home)
    new = os.urandom(32)
    doc["pending"] = {
        "passphrase": {"duckdb": _wrap(keys._kek, "duckdb", new)},
        "recovery": {"duckdb": _wrap(keys._recovery_kek, "duckdb", new)},
    }
    _write_keyfile(home, doc)
    return replace(keys, pending_duckdb=new)


def promote_pending(home: Path, keys: Keys) -> Keys:
    """Last step of rotate-key: the pending DuckDB DEK becomes current; the old wrapped key is destroyed."""
    doc = read_keyfile(home)
    if not doc.get("pending") or keys.pending_duckdb is None:
        return keys
    for side in ("passphrase", "recovery"):
        doc["wrapped"][side]["duckdb"] = doc["pending"][side]["duckdb"]
    doc["pending"] = None
    gen = doc["meta"]["keys"].get("duckdb", {}).get("generation", 1) + 1
    doc["meta"]["keys"]["duckdb"] = {"created_at": _now(), "generation": gen}
    doc["meta"]["rotated_at"] = _now()
    _write_keyfile(home, doc)
    return replace(keys, duckdb=keys.pending_duckdb, pending_duckdb=None)


def drop_pending(home: Path) -> None:
    """Abandon an unfinished rotation whose new file never replaced the database."""
    doc = read_keyfile(home)
    if doc.get("pending"):
        doc["pending"] = None
        _write_keyfile(home, doc)


def public_info(home: Path) -> dict[str, Any]:
    """What status and reports may show: KDF parameters and key ages, no key material."""
    doc = read_keyfile(home)
    kdf = {k: v for k, v in doc["kdf"].items() if k != "salt"}
    return {"kdf": kdf, "meta": doc["meta"], "rotation_pending": bool(doc.get("pending"))}
