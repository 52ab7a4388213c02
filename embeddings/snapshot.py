"""The search catalog and its BM25 postings as a sealed snapshot, so a cold process loads them in O(bytes)
instead of rebuilding them from the memories table (0.6 s of a 1.9 s cold search at 20k memories).

Blob `memory-catalog` (vault.write_blob: AES-256-GCM, bound to its name, like the vector index):

    MAGIC | header length:u32 | JSON header | arrays, each at an 8-byte aligned offset

The header holds the format, the fingerprint of the memories table the snapshot was made from, the string
tables (kind/sensitivity codes, sources, tag names, BM25 terms) and each array's dtype, length and offset;
the arrays are read with numpy.frombuffer (no per-row Python).

Never stale: the fingerprint is the row count and two order-free aggregates of a hash of every row's
(memory_id, content_sha, text_sha, version, updated_at, ingested_at), computed by DuckDB when the snapshot
is written and again when it is read, with a digest of the code and settings that turn rows into the
catalog (embeddings/dialogue.py, lexical.py, retrieve.py and this module's files; the dialogue window's
constants as they are at run time). Any write to the memories table that was not followed by a new
snapshot (another process, a crash in between) changes it: the snapshot is then ignored and the catalog is
rebuilt from the rows (said in a debug log line), as is one that fails its integrity check (a warning).

Forgotten means gone: the snapshot is written compacted (dead positions, their postings and any term only
they held are dropped), and the service deletes it in the step that reseals the vector index after a
forget and writes the new one once the rows are gone (embeddings/service.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import dialogue, lexical, retrieve
from embeddings.lexical import BM25
from embeddings.retrieve import Catalog
from vault.errors import IntegrityError
from vault.store import Vault

BLOB = "memory-catalog"
FORMAT = 1
_MAGIC = b"LVMCAT1\n"
_ALIGN = 8
# the columns stored as they are (Catalog attributes); kind/sensitivity strings and `alive` are derived
_COLUMNS = ("ids", "kind_code", "sensitivity_code", "start", "end", "offset", "ingested", "has_redacted",
            "weekday", "minute", "duration")
_FINGERPRINT = ("SELECT count(*), coalesce(bit_xor(h), 0)::VARCHAR, coalesce(sum(h::HUGEINT), 0)::VARCHAR FROM "
                "(SELECT hash(memory_id, content_sha, text_sha, version, updated_at, ingested_at) AS h FROM memories)")
_NO_TIME = np.iinfo(np.int64).min

log = logging.getLogger(__name__)


def _rules() -> str:
    """A digest of what the catalog depends on besides the rows: the code that makes indexed texts, tokens,
    columns and this format (any change to those modules' files rebuilds once) and the dialogue window's
    settings as they are now (its upper-case constants, which an evaluation may change at run time)."""
    knobs = sorted((n, repr(v)) for n, v in vars(dialogue).items()
                   if n.isupper() and isinstance(v, int | float | str | tuple | timedelta | None))
    digest = hashlib.sha256(repr(knobs).encode())
    for module in (dialogue, lexical, retrieve, sys.modules[__name__]):
        if module.__file__:
            digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(vault: Vault) -> list[Any]:
    """The memories table's content key (count, xor and sum of per-row hashes) and the text rules: equal
    tables under equal rules, equal keys."""
    return [FORMAT, _rules(), *vault.query(_FINGERPRINT)[0]]


def _pack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    layout, parts, offset = {}, [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        layout[name] = [arr.dtype.str, len(arr), offset]
        parts.append(arr.tobytes())
        pad = -len(parts[-1]) % _ALIGN
        parts.append(b"\0" * pad)
        offset += len(parts[-2]) + pad
    head = json.dumps(header | {"arrays": layout}, ensure_ascii=False).encode()
    head += b" " * (-(len(_MAGIC) + 4 + len(head)) % _ALIGN)  # the arrays start aligned
    return b"".join([_MAGIC, struct.pack(">I", len(head)), head, *parts])


def _unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        raise ValueError("not a catalog snapshot")
    (n,) = struct.unpack_from(">I", data, len(_MAGIC))
    start = len(_MAGIC) + 4 + n
    header = json.loads(data[len(_MAGIC) + 4 : start])
    arrays = {name: np.frombuffer(data, dtype=np.dtype(dt), count=count, offset=start + off)
              for name, (dt, count, off) in header.pop("arrays").items()}
    return header, arrays


def _codes(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct strings (in first-seen order) and each value's code."""
    table: dict[str, int] = {}
    codes = np.fromiter((table.setdefault(v, len(table)) for v in values.tolist()), dtype=np.int32, count=len(values))
    return list(table), codes


def encode(cat: Catalog, key: list[Any]) -> bytes:
    """The catalog's live memories, in the order Catalog.load gives them (start time, then id), as bytes."""
    live = np.flatnonzero(cat.alive)
    start = cat.start[live]
    order = live[np.lexsort((cat.ids[live], np.where(start == _NO_TIME, np.iinfo(np.int64).max, start)))]
    new_pos = np.full(len(cat.ids), -1, dtype=np.int64)
    new_pos[order] = np.arange(len(order))
    arrays = {name: getattr(cat, name)[order] for name in _COLUMNS}
    sources, arrays["source"] = _codes(cat.source[order])
    tags = {t: np.sort(new_pos[pos[cat.alive[pos]]]) for t, pos in cat._tags.items()}
    tags = {t: pos for t, pos in tags.items() if len(pos)}
    arrays["tag_ptr"] = np.concatenate([[0], np.cumsum([len(p) for p in tags.values()], dtype=np.int64)]).astype(np.int64)
    arrays["tag_pos"] = np.concatenate([np.empty(0, np.int64), *tags.values()]).astype(np.int32)
    terms, ptr, docs, tf, dl = cat.lexical.compacted(new_pos)
    arrays |= {"bm25_ptr": ptr, "bm25_docs": docs, "bm25_dl": dl,
               "bm25_tf": tf.astype(np.uint16) if not len(tf) or tf.max() < 65536 else tf}
    header = {"fingerprint": key, "codes": list(cat._codes), "sources": sources, "tags": list(tags), "terms": terms}
    return _pack(header, arrays)


def decode(data: bytes, texts_of: Callable[[np.ndarray], list[str]]) -> tuple[list[Any], Catalog]:
    """(fingerprint, catalog) of a snapshot's bytes; ValueError when they are not one."""
    header, a = _unpack(data)
    columns = {name: a[name] for name in _COLUMNS}
    columns["source"] = np.array(header["sources"] or [""], dtype=object)[a["source"]]
    ptr = a["tag_ptr"]
    tags = {t: a["tag_pos"][ptr[i] : ptr[i + 1]].astype(np.int64) for i, t in enumerate(header["tags"])}
    lexical = BM25.restore(header["terms"], a["bm25_ptr"], a["bm25_docs"], a["bm25_tf"], a["bm25_dl"])
    return header["fingerprint"], Catalog.restore(columns, header["codes"], tags, lexical, texts_of)


def save(vault: Vault, cat: Catalog) -> None:
    """Seal the catalog as the snapshot of the memories table as it is now (the caller keeps them in step)."""
    vault.write_blob(BLOB, encode(cat, fingerprint(vault)))


def drop(vault: Vault) -> None:
    vault.delete_blob(BLOB)


def load(vault: Vault, texts_of: Callable[[np.ndarray], list[str]]) -> Catalog | None:
    """The snapshot's catalog when it matches the memories table, else None (rebuild from the rows)."""
    try:
        data = vault.read_blob(BLOB)
    except IntegrityError:
        log.warning("the catalog snapshot failed its integrity check; rebuilding the catalog from the memories")
        return None
    if data is None:
        log.debug("no catalog snapshot yet; building the catalog from the memories")
        return None
    try:
        key, cat = decode(data, texts_of)
    except (ValueError, KeyError, TypeError, IndexError):
        log.debug("the catalog snapshot is of another format; rebuilding the catalog from the memories")
        return None
    if key != fingerprint(vault):
        log.debug("the catalog snapshot is stale (the memories changed since); rebuilding it from the memories")
        return None
    return cat
