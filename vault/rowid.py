"""Keyed row ids: a 63-bit MAC of a natural key (the key's parts joined with \\x1f, UTF-8), under the
vault's rowid key. Without the key nobody can test whether a given natural key is in the vault; with
it, re-ingesting the same export gives the same ids (and adds nothing).

Two schemes; a vault uses one for its whole life (recorded in vault_meta `row_id_scheme`, migration
0014): vaults that held data before 0014 keep `blake2b`, since their ids are stored elsewhere too
(memories, forgotten rows, audit events) and cannot all be recomputed; new vaults use `aes-cmac`.

  blake2b   keyed BLAKE2b-64 (RFC 7693) of the key text, one Python call per row (~1 us each);
  aes-cmac  AES-256-CMAC (NIST SP 800-38B) of the key text, first 8 bytes of the tag, computed
            for a whole column at once: numpy lays the keys out as rows of 16-byte blocks and
            AES-ECB (OpenSSL, AES-NI) encrypts one block column of every row per call. The AES
            key is HKDF-SHA256(rowid key, info "lifevault/rowid/aes-cmac"). Checked against
            `cryptography`'s CMAC in tests/vault/test_rowid.py.

Both keep the id's top 63 bits (an id is a non-negative BIGINT): colliding ids need ~2^31.5 rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:  # pyarrow is imported where an Arrow column is keyed (ingest), not by every open; numpy
    # where ids are computed, not by commands that only open the vault (`status`, `token list`)
    import numpy as np
    import pyarrow as pa

BLAKE2B = "blake2b"
AES_CMAC = "aes-cmac"
SCHEMES = (BLAKE2B, AES_CMAC)
CHUNK_ROWS = 65_536  # rows laid out as blocks at a time (bounds the temporary matrix to a few MiB)


def derive(rowid_key: bytes, info: bytes) -> bytes:
    """A 256-bit subkey of the rowid key for one purpose (HKDF-SHA256, no salt, `info` names the purpose)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(rowid_key)


def cmac_key(rowid_key: bytes) -> bytes:
    return derive(rowid_key, b"lifevault/rowid/aes-cmac")


def _to_ids(digests: np.ndarray) -> np.ndarray:
    """(n, >=8) uint8 digests -> int64 ids: the first 8 bytes big-endian, shifted right by one."""
    import numpy as np

    first = np.ascontiguousarray(digests[:, :8]).view(">u8").ravel()
    return (first >> np.uint64(1)).astype(np.int64)


class RowIds:
    """The row-id function of one vault (scheme + key)."""

    def __init__(self, scheme: str, rowid_key: bytes) -> None:
        import numpy as np

        if scheme not in SCHEMES:
            raise ValueError(f"unknown row id scheme {scheme!r}")
        self.scheme = scheme
        if scheme == BLAKE2B:
            self._blake = hashlib.blake2b(key=rowid_key, digest_size=8)  # the key block is absorbed once
        else:
            self._ecb = Cipher(algorithms.AES(cmac_key(rowid_key)), modes.ECB()).encryptor()
            l0 = int.from_bytes(self._aes(np.zeros((1, 16), np.uint8)).tobytes(), "big")
            k1 = _dbl(l0)
            self._k1 = np.frombuffer(k1.to_bytes(16, "big"), np.uint8)
            self._k2 = np.frombuffer(_dbl(k1).to_bytes(16, "big"), np.uint8)

    def _aes(self, blocks: np.ndarray) -> np.ndarray:
        """AES-ECB of each 16-byte row of `blocks` (same shape and dtype back)."""
        import numpy as np

        return np.frombuffer(self._ecb.update(np.ascontiguousarray(blocks).tobytes()), blocks.dtype).reshape(blocks.shape)

    def of_texts(self, texts: Iterable[str | None]) -> np.ndarray:
        """int64 ids of natural-key texts (None counts as "")."""
        import numpy as np

        if self.scheme == BLAKE2B:
            keyed = self._blake
            digests = []
            for k in texts:
                h = keyed.copy()
                h.update((k or "").encode())
                digests.append(h.digest())
            if not digests:
                return np.empty(0, np.int64)
            return _to_ids(np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 8))
        import pyarrow as pa

        return self.of_arrow(pa.array([k or "" for k in texts], type=pa.large_string()))

    def of_arrow(self, arr: pa.Array[Any] | pa.ChunkedArray[Any]) -> np.ndarray:
        """int64 ids of an Arrow string column (nulls count as ""), vectorised for aes-cmac."""
        import numpy as np
        import pyarrow as pa

        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        col = cast("pa.Array[Any]", arr)
        if self.scheme == BLAKE2B:
            return self.of_texts(col.to_pylist())
        col = col.fill_null("").cast(pa.large_binary())
        n = len(col)
        out = np.empty(n, np.int64)
        for lo in range(0, n, CHUNK_ROWS):
            part = col.slice(lo, CHUNK_ROWS)
            _, offsets_buf, data_buf = part.buffers()  # a binary array's offsets buffer is always there
            offsets = np.frombuffer(memoryview(cast("pa.Buffer", offsets_buf)), np.int64, len(part) + 1, part.offset * 8)
            data = np.frombuffer(memoryview(data_buf), np.uint8) if data_buf is not None else np.empty(0, np.uint8)
            out[lo:lo + len(part)] = self._cmac(data, offsets)
        return out

    def _cmac(self, data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """AES-CMAC ids of the byte strings data[offsets[i]:offsets[i+1]] (numpy on little-endian 64-bit words)."""
        import numpy as np

        base = int(offsets[0])
        starts, lengths = offsets[:-1] - base, np.diff(offsets)
        n = len(lengths)
        nblocks = np.maximum(1, (lengths + 15) // 16)
        out = np.empty(n, np.int64)
        width = int(nblocks.max(initial=1)) * 16
        total = int(offsets[-1]) - base
        padded = np.zeros(total + width, np.uint8)  # room to read a full row past the last key
        padded[:total] = data[base:base + total]
        windows = np.lib.stride_tricks.sliding_window_view(padded, width)
        k1, k2 = self._k1.view("<u8"), self._k2.view("<u8")
        for nb in np.unique(nblocks):  # rows with the same number of blocks go through AES together
            rows = np.flatnonzero(nblocks == nb)
            size = int(nb) * 16
            m8 = windows[starts[rows], :size].copy()  # the key's bytes, then its neighbours'
            length = lengths[rows]
            # keep the key's bytes, zero the neighbours', and put the 10* padding byte right after the key
            m8 *= np.arange(size)[None, :] < length[:, None]
            partial = (length % 16 != 0) | (length == 0)  # an empty key is one partial block
            pad = np.flatnonzero(partial)
            m8[pad, length[pad]] = 0x80
            blocks = m8.view("<u8").reshape(len(rows), int(nb), 2)
            x = np.zeros((len(rows), 2), np.uint64)
            for b in range(int(nb) - 1):
                x = self._aes(x ^ blocks[:, b, :])
            last = blocks[:, -1, :] ^ np.where(partial[:, None], k2, k1)
            out[rows] = _to_ids(self._aes(x ^ last).view(np.uint8))
        return out


def _dbl(v: int) -> int:
    """Doubling in GF(2^128) (CMAC subkey generation)."""
    v <<= 1
    if v >> 128:
        v = (v ^ 0x87) & ((1 << 128) - 1)
    return v
