"""Split a sealed container (vault/sealed.py) into its header and its length-prefixed chunks, so tests can
truncate, reorder or splice chunks and check that opening fails as tampering."""

from __future__ import annotations

import struct

HEADER_BYTES = 44  # magic (8), chunk size (4), subkey salt (32): vault/sealed.py, _HEADER


def split(blob: bytes) -> tuple[bytes, list[bytes]]:
    header, pos, out = blob[:HEADER_BYTES], HEADER_BYTES, []
    while pos < len(blob):
        (n,) = struct.unpack_from(">I", blob, pos)
        out.append(blob[pos : pos + 4 + n])
        pos += 4 + n
    return header, out
