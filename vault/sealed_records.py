"""Sealed records: fixed-size records (vectors) in small, independently authenticated AES-256-GCM chunks,
read back a few at a time by position -- the page cache holds the file, the process does not.

Layout (all integers big-endian):

    header  = b"LVREC001" | record_size:u32 | per_chunk:u32 | count:u64 | salt:32 bytes
    chunk_i = AES-GCM(subkey, nonce=i:96 bits, records[i*per_chunk : (i+1)*per_chunk], aad_i)  (+16-byte tag)

    subkey  = HKDF-SHA256(key, salt, info=b"lifevault/records/v1|" + object_id)
    aad_i   = header | len(object_id):u16 | object_id | i:u64 | last:u8

Every chunk but the last holds per_chunk records, so chunk i sits at a known offset and is read with one
os.pread. The header (record size, count, salt) is authenticated by every chunk, and the file's size must
be exactly what the header says: a flipped bit, a truncated or extended file, reordered or duplicated
chunks, or a file presented under another object id fail with IntegrityError, like vault/sealed.py. A
fresh salt per file gives a fresh subkey, so counter nonces never repeat under one key; a file is written
once (atomically) and never modified in place.
"""

from __future__ import annotations

import os
import struct
import weakref
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag

from vault.errors import IntegrityError, VaultMissing
from vault.fsio import AtomicFile
from vault.sealed import chunk_aad, chunk_nonce, subkey

MAGIC = b"LVREC001"
CHUNK_BYTES = 8 << 10  # plaintext per chunk (records are never split): one read and decryption per 8 KiB
MAX_RECORD_BYTES = 1 << 20  # a record bigger than this is refused (a corrupt header cannot ask for more)
TAG_BYTES = 16
_HEADER = struct.Struct(">8sIIQ32s")
_TAIL = struct.Struct(">QB")  # the chunk index and last flag ending each chunk's AAD


def _chunks(count: int, per_chunk: int) -> int:
    return -(-count // per_chunk)


def _broken(path: Path, object_id: str) -> IntegrityError:
    return IntegrityError(f"{path.name} failed its integrity check (tampered, truncated or not {object_id!r})")


class RecordWriter:
    """Seal exactly `count` records of `record_size` bytes into `path`, streamed in order; commit() renames
    the file into place (atomically), abort() leaves whatever was there."""

    def __init__(self, path: Path, key: bytes, object_id: str, *, record_size: int, count: int) -> None:
        if not 0 < record_size <= MAX_RECORD_BYTES or count < 0:
            raise ValueError(f"records of {record_size} bytes, {count} of them: out of bounds")
        self._size, self._count = record_size, count
        self._per = max(1, CHUNK_BYTES // record_size)
        salt = os.urandom(32)
        self._header = _HEADER.pack(MAGIC, record_size, self._per, count, salt)
        self._aead, self._oid = subkey(key, salt, object_id, domain="records"), object_id
        self._pending = bytearray()
        self._index = self._written = 0
        self._last = max(0, _chunks(count, self._per) - 1)
        self._file = AtomicFile(path)
        self._file.write(self._header)

    def write(self, records: np.ndarray | bytes) -> None:
        data = np.ascontiguousarray(records).data.cast("B") if isinstance(records, np.ndarray) else records
        if len(data) % self._size or self._written + len(data) // self._size > self._count:
            raise ValueError("more records, or a partial record, than the sealed file was opened for")
        self._written += len(data) // self._size
        self._pending += data
        step = self._per * self._size
        start = 0
        while len(self._pending) - start >= step:
            self._emit(memoryview(self._pending)[start : start + step])
            start += step
        del self._pending[:start]

    def _emit(self, piece: memoryview | bytearray) -> None:
        aad = chunk_aad(self._header, self._oid, self._index, self._index == self._last)
        self._file.write(self._aead.encrypt(chunk_nonce(self._index), bytes(piece), aad))
        self._index += 1

    def commit(self) -> None:
        if self._written != self._count:
            self.abort()
            raise ValueError(f"{self._written} records written of the {self._count} announced")
        if self._pending or self._count == 0:
            self._emit(self._pending)
        self._pending = bytearray()
        self._file.commit()

    def abort(self) -> None:
        self._file.abort()


class RecordReader:
    """Random access to a sealed record file: read(positions) preads and authenticates only the chunks that
    hold them. The descriptor closes when the reader is garbage-collected (or on close())."""

    def __init__(self, path: Path, key: bytes, object_id: str) -> None:
        self.path = Path(path)
        self._broken = _broken(self.path, object_id)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise VaultMissing(f"sealed file {self.path.name} is missing") from None
        self._closer = weakref.finalize(self, os.close, self._fd)
        header = os.pread(self._fd, _HEADER.size, 0)
        if len(header) < _HEADER.size or header[:8] != MAGIC:
            self.close()
            raise self._broken
        _, self.record_size, self._per, self.count, salt = _HEADER.unpack(header)
        n = max(1, _chunks(self.count, self._per))
        self._stride = self._per * self.record_size + TAG_BYTES
        tail = self.count - (n - 1) * self._per
        expect = _HEADER.size + (n - 1) * self._stride + tail * self.record_size + TAG_BYTES
        if (not 0 < self.record_size <= MAX_RECORD_BYTES or self._per != max(1, CHUNK_BYTES // self.record_size)
                or os.fstat(self._fd).st_size != expect):
            self.close()
            raise self._broken
        self._header, self._oid, self._n = header, object_id, n
        self._aad_head = chunk_aad(header, object_id, 0, False)[: -_TAIL.size]
        self._aead = subkey(key, salt, object_id, domain="records")

    def close(self) -> None:
        self._closer()

    def _chunk(self, i: int) -> bytes:
        last = i == self._n - 1
        length = ((self.count - i * self._per) * self.record_size if last else self._per * self.record_size) + TAG_BYTES
        ct = os.pread(self._fd, length, _HEADER.size + i * self._stride)
        if len(ct) != length:
            raise self._broken
        try:
            return self._aead.decrypt(i.to_bytes(12, "big"), ct, self._aad_head + _TAIL.pack(i, last))
        except InvalidTag:
            raise self._broken from None

    def read(self, positions: np.ndarray) -> np.ndarray:
        """The records at `positions` (each < count), as a (len, record_size) uint8 array in that order."""
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return np.empty((0, self.record_size), dtype=np.uint8)
        if positions.min() < 0 or positions.max() >= self.count:
            raise IndexError("record position out of range")
        chunk = positions // self._per
        wanted = np.unique(chunk)  # sorted: only the file's last chunk can be short, and it comes last
        plain = b"".join([self._chunk(c) for c in wanted.tolist()])
        rows = np.frombuffer(plain, dtype=np.uint8).reshape(-1, self.record_size)
        picked: np.ndarray = rows[np.searchsorted(wanted, chunk) * self._per + positions - chunk * self._per]
        return picked

    def read_all(self) -> np.ndarray:
        """Every record in order, (count, record_size) uint8 (each chunk authenticated)."""
        out = np.empty((self.count, self.record_size), dtype=np.uint8)
        flat = out.reshape(-1)
        step = self._per * self.record_size
        for i in range(_chunks(self.count, self._per)):
            piece = self._chunk(i)
            flat[i * step : i * step + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        if self.count == 0:
            self._chunk(0)
        return out
