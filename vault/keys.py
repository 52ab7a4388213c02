"""Key management: passphrase -> Argon2id KEK -> wrapped data-encryption keys (keys.json).

The only module that sees the passphrase, the recovery code or raw keys.

keys.json (written atomically, mode 0600):

    {"format": "lifevault-keys/1",
     "kdf": {"name": "argon2id", "salt": b64, "memory_kib": 65536, "iterations": 3, "lanes": 4},
     "recovery_kdf": {... same shape ...},
     "wrapped": {"passphrase": {"duckdb": W, "sealed": W, "rowid": W, "recovery_kek": W},
                 "recovery":   {"duckdb": W, "sealed": W, "rowid": W}},
     "pending": null | {"passphrase": {"duckdb": W}, "recovery": {"duckdb": W}},   # during rotate-key
     "meta": {"created_at": .., "passphrase_changed_at": .., "keys": {"duckdb": {"created_at": .., "generation": 1}, ..}},
     "head_anchor": {"body": {..}, "mac": hex}}   # the privacy ledger's head, written by vault/headanchor.py

    W = {"nonce": b64, "ct": b64}  (AES-256-GCM under the KEK, associated data b"lifevault/dek/<name>")

Three random 32-byte DEKs: `duckdb` (the database), `sealed` (blobs outside the database), `rowid`
(keyed row ids). The recovery code wraps the same DEKs a second time. The passphrase side also wraps
the recovery KEK, so rotate-key can wrap a new DEK for the recovery side without asking for the code;
this grants the passphrase nothing it did not already have (it unwraps every DEK anyway).

Argon2id parameters are bounded both ways, in `init`, in `passwd` and when keys.json is read. The floor is
OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane): below it a stolen keys.json is cheap to
brute-force, so a file lowered below it is refused as "damaged or weakened" instead of being unlocked (and
its weak parameters carried over to a new passphrase). The ceiling bounds what unlocking can cost: a file
raised to 10 million passes or terabytes of memory is refused before any work. `passwd` keeps or raises
the parameters, never lowers them.
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

from vault.errors import KeysDamaged, VaultError, VaultMissing, WrongPassphrase
from vault.fsio import write_atomic
from vault.kdf import Derivation, argon2id

KEYS_FILE = "keys.json"
FORMAT = "lifevault-keys/1"
DEK_NAMES = ("duckdb", "sealed", "rowid")
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I

# Argon2id bounds (see the module docstring). The ceiling's worst case, 1 GiB x 10 passes, is about 25 s of
# one core here; the default (64 MiB, 3 passes, 4 lanes) about 0.25 s.
KDF_MIN_MEMORY_KIB = 19 * 1024
KDF_MIN_ITERATIONS = 2
KDF_MIN_LANES = 1
KDF_MAX_MEMORY_KIB = 1024 * 1024
KDF_MAX_ITERATIONS = 10
KDF_MAX_LANES = 16
SALT_BYTES = 16
NONCE_BYTES = 12
WRAPPED_BYTES = 32 + 16  # a 256-bit key and the GCM tag


def _mib(kib: int) -> str:
    return f"{kib / 1024:g} MiB" if kib >= 1024 else f"{kib} KiB"


def kdf_problem(memory_kib: object, iterations: object, lanes: object) -> str | None:
    """What is wrong with these Argon2id parameters (one phrase), or None when they are within the bounds."""
    for name, value in (("memory", memory_kib), ("iterations", iterations), ("lanes", lanes)):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"Argon2id {name} is not a whole number"
    assert isinstance(memory_kib, int) and isinstance(iterations, int) and isinstance(lanes, int)
    checks = (
        (memory_kib < KDF_MIN_MEMORY_KIB, f"memory {_mib(memory_kib)} is below the floor of {_mib(KDF_MIN_MEMORY_KIB)}"),
        (memory_kib > KDF_MAX_MEMORY_KIB, f"memory {_mib(memory_kib)} is above the ceiling of {_mib(KDF_MAX_MEMORY_KIB)}"),
        (iterations < KDF_MIN_ITERATIONS, f"{iterations} iteration(s) is below the floor of {KDF_MIN_ITERATIONS}"),
        (iterations > KDF_MAX_ITERATIONS, f"{iterations} iterations is above the ceiling of {KDF_MAX_ITERATIONS}"),
        (lanes < KDF_MIN_LANES, f"{lanes} lanes is below the floor of {KDF_MIN_LANES}"),
        (lanes > KDF_MAX_LANES, f"{lanes} lanes is above the ceiling of {KDF_MAX_LANES}"),
    )
    return next((f"Argon2id {what}" for bad, what in checks if bad), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class KdfParams:
    """Argon2id parameters, always within [floor, ceiling] (ValueError otherwise, naming the bound)."""

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        problem = kdf_problem(self.memory_kib, self.iterations, self.lanes)
        if problem:
            raise ValueError(problem)

    def at_least(self, other: KdfParams) -> KdfParams:
        """Each parameter the larger of the two: re-wrapping keeps or raises, never lowers."""
        return KdfParams(memory_kib=max(self.memory_kib, other.memory_kib),
                         iterations=max(self.iterations, other.iterations), lanes=max(self.lanes, other.lanes))

    def lower_than(self, other: KdfParams) -> bool:
        return self.memory_kib < other.memory_kib or self.iterations < other.iterations or self.lanes < other.lanes


KDF_FLOOR = KdfParams(memory_kib=KDF_MIN_MEMORY_KIB, iterations=KDF_MIN_ITERATIONS, lanes=KDF_MIN_LANES)


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


def describe(kdf: KdfParams) -> str:
    return f"{_mib(kdf.memory_kib)}, {kdf.iterations} iterations, {kdf.lanes} lanes"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _argon2_args(kdf: dict[str, Any]) -> dict[str, Any]:
    return {"salt": _unb64(kdf["salt"]), "memory_kib": int(kdf["memory_kib"]), "iterations": int(kdf["iterations"]),
            "lanes": int(kdf["lanes"])}


def _derive(secret: bytes, kdf: dict[str, Any]) -> bytes:
    return argon2id(secret, **_argon2_args(kdf))


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
    problem = _structure_problem(doc)
    if problem:
        raise KeysDamaged(f"{path} is damaged ({problem}); restore it from a backup (`lifevault import`)")
    return doc


def _structure_problem(doc: dict[str, Any]) -> str | None:
    """The first field of keys.json that is missing or not of its shape (sizes included), or None."""
    try:
        for record in ("kdf", "recovery_kdf"):
            kdf = doc[record]
            if kdf["name"] != "argon2id":
                return f"{record} is not Argon2id"
            if len(_unb64(kdf["salt"])) != SALT_BYTES:
                return f"{record} salt is not {SALT_BYTES} bytes"
            for name in ("memory_kib", "iterations", "lanes"):
                if not isinstance(kdf[name], int) or isinstance(kdf[name], bool):
                    return f"{record} {name} is not a whole number"
        wrapped = [(f"{side} {name}", doc["wrapped"][side][name])
                   for side, names in (("passphrase", (*DEK_NAMES, "recovery_kek")), ("recovery", DEK_NAMES))
                   for name in names]
        if doc["pending"] is not None:
            wrapped += [(f"pending {side} duckdb", doc["pending"][side]["duckdb"]) for side in ("passphrase", "recovery")]
        for where, w in wrapped:
            if len(_unb64(w["nonce"])) != NONCE_BYTES or len(_unb64(w["ct"])) != WRAPPED_BYTES:
                return f"wrapped key {where} has the wrong size"
        if not isinstance(doc["meta"]["keys"], dict):
            return "meta keys is not an object"
    except KeyError as e:
        return f"field {e.args[0]!r} is missing"
    except (TypeError, ValueError, AttributeError):  # a list or number where an object or base64 text belongs
        return "a field has the wrong type"
    return None


def _params(home: Path, doc: dict[str, Any], record: str) -> KdfParams:
    """The parameters of one side's KDF, refused outside [floor, ceiling] before any work is done."""
    kdf = doc[record]
    problem = kdf_problem(kdf["memory_kib"], kdf["iterations"], kdf["lanes"])
    if problem:
        fix = ("restore keys.json from a backup, or set a new passphrase with `lifevault passwd --recovery-code`"
               if record == "kdf" else "restore keys.json from a backup")
        side = "passphrase" if record == "kdf" else "recovery-code"
        raise KeysDamaged(f"{keys_path(home)} is damaged or weakened: its {side} {problem}; {fix}")
    return KdfParams(memory_kib=kdf["memory_kib"], iterations=kdf["iterations"], lanes=kdf["lanes"])


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


_WRAP_NAMES = {"passphrase": (*DEK_NAMES, "recovery_kek"), "recovery": DEK_NAMES}


def _open_side(home: Path, doc: dict[str, Any], side: str, kek: bytes) -> dict[str, bytes]:
    try:
        deks = {n: _unwrap(kek, n, doc["wrapped"][side][n]) for n in DEK_NAMES}
        if side == "passphrase":
            deks["recovery_kek"] = _unwrap(kek, "recovery_kek", doc["wrapped"][side]["recovery_kek"])
        if doc["pending"]:
            deks["pending_duckdb"] = _unwrap(kek, "duckdb", doc["pending"][side]["duckdb"])
        return deks
    except InvalidTag:
        if _opens_any(doc, side, kek):  # the secret is right: the file's wrapped keys are not where they belong
            raise KeysDamaged(
                f"{keys_path(home)} is damaged (its wrapped keys were swapped or altered); restore it from a backup"
            ) from None
        what = "passphrase" if side == "passphrase" else "recovery code"
        raise WrongPassphrase(
            f"wrong {what}: keys.json could not be unlocked (try again; `--recovery-code` if you forgot it)"
        ) from None


def _opens_any(doc: dict[str, Any], side: str, kek: bytes) -> bool:
    """Does this KEK open any wrapped key of the side, under any key's name? Only the right secret can."""
    slots = [doc["wrapped"][side][n] for n in _WRAP_NAMES[side]]
    if doc["pending"]:
        slots.append(doc["pending"][side]["duckdb"])
    for w in slots:
        for name in _WRAP_NAMES["passphrase"]:
            try:
                _unwrap(kek, name, w)
                return True
            except InvalidTag:
                continue
    return False


class Unlocking:
    """An unlock under way: keys.json read and its parameters checked at construction (KeysDamaged,
    VaultMissing raised then), the Argon2id derivation running in a thread meanwhile (vault/kdf.py: the GIL
    released), so the caller imports and connects while it runs. keys() waits for it and unwraps the keys,
    raising what unlock() raises (WrongPassphrase, KeysDamaged)."""

    def __init__(self, home: Path, secret: bytes, *, side: str) -> None:
        self.home = Path(home)
        self._doc = read_keyfile(home)
        record = "kdf" if side == "passphrase" else "recovery_kdf"
        _params(home, self._doc, record)
        self._side = side
        self._derivation = Derivation(secret, **_argon2_args(self._doc[record]))
        self._keys: Keys | None = None

    def keys(self) -> Keys:
        if self._keys is None:
            kek = self._derivation.result()
            deks = _open_side(self.home, self._doc, self._side, kek)
            if self._side == "passphrase":
                rkek = deks.pop("recovery_kek")
                self._keys = Keys(**deks, _kek=kek, _recovery_kek=rkek)
            else:
                self._keys = Keys(**deks, _recovery_kek=kek)
        return self._keys


def begin_unlock(home: Path, passphrase: str | None = None, *, recovery_code: str | None = None) -> Unlocking:
    """Start unlocking with the passphrase or, when given, the recovery code (see Unlocking)."""
    if recovery_code is not None:
        return Unlocking(home, _normalise_code(recovery_code), side="recovery")
    if passphrase is None:
        raise VaultError("a passphrase is needed to open the vault")
    return Unlocking(home, passphrase.encode(), side="passphrase")


def unlock(home: Path, passphrase: str) -> Keys:
    return begin_unlock(home, passphrase).keys()


def unlock_with_recovery(home: Path, code: str) -> Keys:
    return begin_unlock(home, recovery_code=code).keys()


def rewrap_floor(home: Path) -> KdfParams:
    """The least parameters a new passphrase may be wrapped under: each the larger of the two sides' (a side
    outside [floor, ceiling] is ignored: it is what a recovery repairs), and never below the floor."""
    doc = read_keyfile(home)
    floor = KDF_FLOOR
    for record in ("kdf", "recovery_kdf"):
        kdf = doc[record]
        if kdf_problem(kdf["memory_kib"], kdf["iterations"], kdf["lanes"]) is None:
            floor = floor.at_least(KdfParams(memory_kib=kdf["memory_kib"], iterations=kdf["iterations"],
                                             lanes=kdf["lanes"]))
    return floor


def change_passphrase(home: Path, keys: Keys, new_passphrase: str, *, kdf: KdfParams | None = None) -> Keys:
    """Re-wrap the same DEKs under a new passphrase (fresh salt). Data untouched. The KDF parameters are kept
    or raised (`kdf`), never lowered: ValueError when `kdf` is below rewrap_floor()."""
    if not new_passphrase:
        raise WrongPassphrase("the new passphrase must not be empty")
    least = rewrap_floor(home)
    if kdf is not None and kdf.lower_than(least):
        raise ValueError(f"the KDF parameters are kept or raised, never lowered (now {describe(least)})")
    kdf = kdf or least
    doc = read_keyfile(home)
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
