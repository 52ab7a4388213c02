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
from vault.fsio import AtomicFile, write_atomic

MAGIC = b"LVSEAL01"
CHUNK_SIZE = 1 << 20
_HEADER = struct.Struct(">8sI32s")
_LEN = struct.Struct(">I")
TAG_BYTES = 16


def subkey(key: bytes, salt: bytes, object_id: str, *, domain: str = "sealed") -> AESGCM:
    """The AES-GCM key of one sealed object: HKDF of the vault key, the file's salt, its kind and its id
    (shared with vault/sealed_records.py, whose domain is "records")."""
    if len(key) != 32:
        raise ValueError(f"{domain} data needs a 32-byte key")
    info = f"lifevault/{domain}/v1|".encode() + object_id.encode()
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key))


def chunk_aad(header: bytes, object_id: str, index: int, last: bool) -> bytes:
    """A chunk's associated data: the file header, the object id, the chunk's index and the last flag."""
    oid = object_id.encode()
    return header + struct.pack(">H", len(oid)) + oid + struct.pack(">QB", index, int(last))


def chunk_nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def seal_chunks(key: bytes, object_id: str, data: bytes, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the sealed container piece by piece (header first), without holding a second copy of data."""
    salt = os.urandom(32)
    header = _HEADER.pack(MAGIC, chunk_size, salt)
    aead = subkey(key, salt, object_id)
    yield header
    view = memoryview(data)
    count = max(1, -(-len(view) // chunk_size))
    for i in range(count):
        piece = bytes(view[i * chunk_size : (i + 1) * chunk_size])
        ct = aead.encrypt(chunk_nonce(i), piece, chunk_aad(header, object_id, i, i == count - 1))
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
    aead = subkey(key, salt, object_id)
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
            out.append(aead.decrypt(chunk_nonce(index), blob[pos : pos + length], chunk_aad(header, object_id, index, last)))
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


UNSEAL_WORKERS = 2  # threads decrypting chunks (AES-GCM releases the GIL): one per core of a small machine
UNSEAL_AHEAD = 8  # chunks decrypted ahead of the reader (8 MiB of plaintext in flight at most)


class SealWriter:
    """Seal a stream of writes into `path` atomically, without holding the plaintext: full chunks are
    encrypted as they fill (one held back, so the last one can carry the last-chunk flag). The container
    is byte for byte the format of seal(); commit() renames it into place, abort() leaves the old file."""

    def __init__(self, path: Path, key: bytes, object_id: str, *, chunk_size: int = CHUNK_SIZE) -> None:
        salt = os.urandom(32)
        self._header = _HEADER.pack(MAGIC, chunk_size, salt)
        self._aead, self._oid, self._size = subkey(key, salt, object_id), object_id, chunk_size
        self._pending = bytearray()
        self._index = 0
        self._file = AtomicFile(path)
        self._file.write(self._header)

    def write(self, data: bytes | memoryview) -> None:
        self._pending += data
        while len(self._pending) > self._size:  # more than a chunk: the first one is not the last
            self._emit(memoryview(self._pending)[: self._size], last=False)
            del self._pending[: self._size]

    def _emit(self, piece: memoryview | bytearray, *, last: bool) -> None:
        ct = self._aead.encrypt(chunk_nonce(self._index), bytes(piece), chunk_aad(self._header, self._oid, self._index, last))
        self._file.write(_LEN.pack(len(ct)))
        self._file.write(ct)
        self._index += 1

    def commit(self) -> None:
        self._emit(self._pending, last=True)
        self._pending = bytearray()
        self._file.commit()

    def abort(self) -> None:
        self._file.abort()


def read_chunks(path: Path, key: bytes, object_id: str, *, workers: int = UNSEAL_WORKERS) -> Iterator[memoryview]:
    """The plaintext of a sealed file, chunk by chunk in order, each authenticated (bound to the object id,
    its position and whether it is the last) before it is yielded; chunks are decrypted by `workers`
    threads straight into preallocated buffers, a few ahead of the consumer. Truncation, reordering,
    duplication or appended bytes raise IntegrityError at the chunk where they show."""
    from concurrent.futures import Future, ThreadPoolExecutor

    path = Path(path)
    broken = IntegrityError(f"{path.name} failed its integrity check (tampered, truncated or not {object_id!r})")
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise VaultMissing(f"sealed file {path.name} is missing") from None
    with f, ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="unseal") as pool:
        total = os.fstat(f.fileno()).st_size
        header = f.read(_HEADER.size)
        if len(header) < _HEADER.size or header[:8] != MAGIC:
            raise broken
        _, chunk_size, salt = _HEADER.unpack(header)
        aead = subkey(key, salt, object_id)

        def open_one(index: int, ct: bytearray, last: bool) -> memoryview:
            out = bytearray(len(ct) - TAG_BYTES)
            try:
                aead.decrypt_into(chunk_nonce(index), ct, chunk_aad(header, object_id, index, last), out)
            except InvalidTag:
                raise broken from None
            return memoryview(out)

        queue: list[Future[memoryview]] = []
        pos, index, last = _HEADER.size, 0, False
        while not last or queue:
            while not last and len(queue) < UNSEAL_AHEAD:
                raw = f.read(_LEN.size)
                if len(raw) < _LEN.size:
                    raise broken
                (length,) = _LEN.unpack(raw)
                pos += _LEN.size
                if length < TAG_BYTES or length > chunk_size + TAG_BYTES or pos + length > total:
                    raise broken
                ct = bytearray(length)
                if f.readinto(ct) != length:
                    raise broken
                pos += length
                last = pos == total
                queue.append(pool.submit(open_one, index, ct, last))
                index += 1
            yield queue.pop(0).result()
