"""Sealed blobs: a chunked AES-256-GCM container for bytes kept outside DuckDB (FAISS index, checkpoints).

Layout (all integers big-endian):

    header  = b"LVSEAL01" | chunk_size:u32 | salt:32 bytes
    chunk_i = length:u32 | AES-GCM(subkey, nonce=i:96 bits, plaintext_i, aad_i)   (ciphertext + 16-byte tag)

    subkey  = HKDF-SHA256(key, salt, info=b"lifevault/sealed/v1|" + object_id)
    aad_i   = header | len(object_id):u16 | object_id | i:u64 | last:u8

A fresh random salt per seal gives a fresh subkey, so counter nonces never repeat under one key.
Because the header, the object id, the chunk index and the last-chunk flag are authenticated,
a flipped bit, a truncated file, reordered or duplicated chunks, appended bytes, or a blob presented
under another object id all fail with IntegrityError.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import IntegrityError, VaultMissing
from vault.fsio import write_atomic

MAGIC = b"LVSEAL01"
CHUNK_SIZE = 1 << 20
_HEADER = struct.Struct(">8sI32s")
_LEN = struct.Struct(">I")
TAG_BYTES = 16


def _subkey(key: bytes, salt: bytes, object_id: str) -> AESGCM:
    if len(key) != 32:
        raise ValueError("sealed blobs need a 32-byte key")
    info = b"lifevault/sealed/v1|" + object_id.encode()
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key))


def _aad(header: bytes, object_id: str, index: int, last: bool) -> bytes:
    oid = object_id.encode()
    return header + struct.pack(">H", len(oid)) + oid + struct.pack(">QB", index, int(last))


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def seal_chunks(key: bytes, object_id: str, data: bytes, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the sealed container piece by piece (header first), without holding a second copy of data."""
    salt = os.urandom(32)
    header = _HEADER.pack(MAGIC, chunk_size, salt)
    aead = _subkey(key, salt, object_id)
    yield header
    view = memoryview(data)
    count = max(1, -(-len(view) // chunk_size))
    for i in range(count):
        piece = bytes(view[i * chunk_size : (i + 1) * chunk_size])
        ct = aead.encrypt(_nonce(i), piece, _aad(header, object_id, i, i == count - 1))
        yield _LEN.pack(len(ct)) + ct


def seal(key: bytes, object_id: str, data: bytes, *, chunk_size: int = CHUNK_SIZE) -> bytes:
    return b"".join(seal_chunks(key, object_id, data, chunk_size=chunk_size))


def unseal(key: bytes, object_id: str, blob: bytes, *, name: str = "sealed blob") -> bytes:
    """Authenticate and decrypt; any damage raises IntegrityError naming `name`."""
    broken = IntegrityError(f"{name} failed its integrity check (tampered, truncated or not {object_id!r})")
    if len(blob) < _HEADER.size or blob[:8] != MAGIC:
        raise broken
    header = blob[: _HEADER.size]
    _, chunk_size, salt = _HEADER.unpack(header)
    aead = _subkey(key, salt, object_id)
    out: list[bytes] = []
    pos, index = _HEADER.size, 0
    while True:
        if pos + _LEN.size > len(blob):
            raise broken
        (length,) = _LEN.unpack_from(blob, pos)
        pos += _LEN.size
        if length < TAG_BYTES or length > chunk_size + TAG_BYTES or pos + length > len(blob):
            raise broken
        last = pos + length == len(blob)
        try:
            out.append(aead.decrypt(_nonce(index), blob[pos : pos + length], _aad(header, object_id, index, last)))
        except InvalidTag:
            raise broken from None
        pos += length
        index += 1
        if last:
            return b"".join(out)


def write(path: Path, key: bytes, object_id: str, data: bytes) -> None:
    """Seal `data` and replace `path` atomically (a crash leaves the old blob or the new one)."""
    write_atomic(Path(path), seal(key, object_id, data))


def read(path: Path, key: bytes, object_id: str) -> bytes:
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise VaultMissing(f"sealed file {path.name} is missing") from None
    return unseal(key, object_id, blob, name=path.name)
