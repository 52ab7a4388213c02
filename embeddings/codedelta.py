"""The codes of vectors added to an IVF index since its blob was last written whole, sealed apart so a
`remember` does not reseal the whole codes blob (~200 MB at 1M with 4-bit codes, ~400 MB with 8-bit ones).
A code file holds codes of the index's own size (what its quantizer writes); one of another size fails.

Each save of only-added vectors seals their (memory id, list, code) as a new record file
`<index>.codes.<random>` (vault/sealed_records.py), absorbing the trailing files no bigger than it the way
a binary counter carries (O(log n) files, each code rewritten O(log n) times), and replaces a small sealed
blob `<index>.delta` naming the whole blob it extends (by a random token in that blob's header), the code
files in slot order, the vector store's segments and the caller's header; the absorbed files are deleted
after it. Opening applies the code files to the lists in order.
A delta naming another token (a crash after a whole write, before its clean-up) is ignored and, by a
read-write open, deleted with its files. A delete, a rebuild or more than CODE_DELTA_MAX added vectors
write the index whole again (which deletes the delta and its code files: a forgotten vector's code is
not kept).
"""

from __future__ import annotations

import os

import faiss
import numpy as np

from vault.sealed_records import RecordReader
from vault.store import Vault

CODE_DELTA_MAX = 65_536  # vectors added since the last whole write that may be sealed as code files (13 MiB
# with 4-bit codes at 384 dimensions, 25 MiB with 8-bit ones)
_HEAD = 16  # bytes before each code: the memory id and the list, int64 each


def write(vault: Vault, prefix: str, ids: np.ndarray, lists: np.ndarray, codes: np.ndarray) -> str:
    """Seal one code file; its name."""
    n, size = codes.shape
    rows = np.empty((n, _HEAD + size), dtype=np.uint8)
    rows[:, :8] = np.ascontiguousarray(ids, dtype=np.int64).view(np.uint8).reshape(n, 8)
    rows[:, 8:16] = np.ascontiguousarray(lists, dtype=np.int64).view(np.uint8).reshape(n, 8)
    rows[:, 16:] = codes
    name = f"{prefix}.codes.{os.urandom(8).hex()}"
    writer = vault.record_writer(name, record_size=_HEAD + size, count=n)
    try:
        writer.write(rows)
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return name


def apply(index: faiss.IndexIDMap, reader: RecordReader) -> None:
    """Append a code file's vectors to the index (their slots continue its last one)."""
    ivf = faiss.downcast_index(index.index)
    size = int(ivf.code_size)
    if reader.record_size != _HEAD + size:
        raise ValueError("a code file of another code size")
    rows = reader.read_all()
    n = len(rows)
    ids = np.ascontiguousarray(rows[:, :8]).view(np.int64).reshape(n)
    lists = np.ascontiguousarray(rows[:, 8:16]).view(np.int64).reshape(n)
    codes = np.ascontiguousarray(rows[:, 16:])
    if n and (lists.min() < 0 or lists.max() >= int(ivf.nlist)):
        raise ValueError("a code file naming a list the index does not have")
    slots = int(ivf.ntotal) + np.arange(n, dtype=np.int64)
    for lst in np.unique(lists):
        at = np.flatnonzero(lists == lst)
        ivf.invlists.add_entries(int(lst), len(at), faiss.swig_ptr(np.ascontiguousarray(slots[at])),
                                 faiss.swig_ptr(np.ascontiguousarray(codes[at])))
    ivf.ntotal += n
    index.ntotal += n
    id_map = np.concatenate([faiss.vector_to_array(index.id_map).astype(np.int64), ids])
    faiss.copy_array_to_vector(id_map, index.id_map)
