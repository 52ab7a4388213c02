"""The search catalog and its BM25 postings as a sealed snapshot, so a cold process loads them in O(bytes)
instead of rebuilding them from the memories table (0.6 s of a 1.9 s cold search at 20k memories).

Blob `memory-catalog` (vault.write_blob: AES-256-GCM, bound to its name, like the vector index):

    MAGIC | header length:u32 | JSON header | arrays, each at an 8-byte aligned offset

The header holds the format, the fingerprint of the memories table the snapshot was made from, the small
string tables (kind/sensitivity codes, sources, tag names) and each array's dtype, length and offset; the
arrays are read with numpy.frombuffer (no per-row Python) and kept as views of the decrypted bytes (no second
copy): the filter columns, the BM25 postings (term frequencies as uint8 where they fit) and the term dictionary
(embeddings/terms.py: the terms' UTF-8 bytes, offsets and sorted hashes; no Python object per term). Format 1
held the terms as a JSON list in the header: such a snapshot is of another format, so the catalog is rebuilt
from the rows once and the snapshot rewritten.

Never stale: the fingerprint is the row count and two order-free aggregates of a hash of every row's
(memory_id, content_sha, text_sha, version, updated_at, ingested_at), computed by DuckDB when the snapshot
is written and again when it is read, with a digest of the code and settings that turn rows into the
catalog (embeddings/dialogue.py, lexical.py, retrieve.py and this module's files; the dialogue window's
constants as they are at run time). Any write to the memories table that was not followed by a new
snapshot (another process, a crash in between) changes it: the snapshot is then ignored and the catalog is
rebuilt from the rows (said in a debug log line), as is one that fails its integrity check (a warning).

Small changes go to a delta. A note written, updated or re-indexed with its neighbouring turns changes a few
rows; rewriting the whole snapshot for it cost seconds at 100k memories. So the service records the ids of
the memories it changed since the snapshot in a second, small blob `memory-catalog-delta`: the base
snapshot's fingerprint, the table's fingerprint after the change and the ids (no text). A load whose table
matches the delta's fingerprint restores the base and re-reads those ids' rows into it (as the writing
process did); any other mismatch rebuilds from the rows as before. Once the delta holds more than
DELTA_SHARE of the base's memories or DELTA_MAX_IDS ids, the next flush writes a new base and deletes the
delta. Every blob is replaced atomically, so a crash at any point leaves a base, a delta matching it or
not, and a table: the load either applies a matching pair or rebuilds.

Forgotten means gone: the snapshot is written compacted (dead positions, their postings and any term only
they held are dropped), and the service deletes it (base and delta) in the step that reseals the vector
index after a forget and writes the new one once the rows are gone (embeddings/service.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import dialogue, lexical, retrieve, terms
from embeddings.lexical import BM25
from embeddings.retrieve import Catalog
from vault.errors import IntegrityError
from vault.store import Vault

BLOB = "memory-catalog"
DELTA_BLOB = "memory-catalog-delta"
FORMAT = 2
DELTA_SHARE = 0.05  # a delta holding more ids than this share of the base's memories is folded into a new base
DELTA_MAX_IDS = 2_000  # ... or more than this many: a load re-reads the delta's rows (~0.1 s per 1,000)
_MAGIC = b"LVMCAT1\n"
_ALIGN = 8
_WRITE_BLOCK = 1 << 20  # bytes of an array handed to the sealing writer at a time
# the columns stored as they are (Catalog attributes); kind/sensitivity/source strings and `alive` are derived
_COLUMNS = ("ids", "kind_code", "sensitivity_code", "source_code", "start", "end", "offset", "ingested",
            "has_redacted", "weekday", "minute", "duration")
_TERMS = "bm25_terms_"  # + buf, off, hash, hid: the term dictionary's arrays
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
    for module in (dialogue, lexical, retrieve, terms, sys.modules[__name__]):
        if module.__file__:
            digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(vault: Vault) -> list[Any]:
    """The memories table's content key (count, xor and sum of per-row hashes) and the text rules: equal
    tables under equal rules, equal keys."""
    return [FORMAT, _rules(), *vault.query(_FINGERPRINT)[0]]


def _pack(header: dict[str, Any], arrays: dict[str, np.ndarray], sink: Callable[[bytes | memoryview], None]) -> None:
    """Write the snapshot's bytes to `sink` an array slice at a time (no copy of the whole: at 1M memories
    the snapshot is ~200 MB, and its bytes joined, then sealed, took +1.2 GB)."""
    layout, offset, parts = {}, 0, []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        flat = arr.reshape(-1).view(np.uint8)
        layout[name] = [arr.dtype.str, len(arr), offset]
        parts.append(flat)
        offset += len(flat) + (-len(flat) % _ALIGN)
    head = json.dumps(header | {"arrays": layout}, ensure_ascii=False).encode()
    head += b" " * (-(len(_MAGIC) + 4 + len(head)) % _ALIGN)  # the arrays start aligned
    sink(_MAGIC + struct.pack(">I", len(head)) + head)
    for flat in parts:
        for lo in range(0, len(flat), _WRITE_BLOCK):
            sink(flat[lo : lo + _WRITE_BLOCK].data)
        if len(flat) % _ALIGN:
            sink(b"\0" * (-len(flat) % _ALIGN))


def _unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        raise ValueError("not a catalog snapshot")
    (n,) = struct.unpack_from(">I", data, len(_MAGIC))
    start = len(_MAGIC) + 4 + n
    header = json.loads(data[len(_MAGIC) + 4 : start])
    arrays = {name: np.frombuffer(data, dtype=np.dtype(dt), count=count, offset=start + off)
              for name, (dt, count, off) in header.pop("arrays").items()}
    return header, arrays


def write_to(sink: Callable[[bytes | memoryview], None], cat: Catalog, key: list[Any]) -> None:
    """The catalog's live memories, in the order Catalog.load gives them (start time, then id), written to
    `sink` as the snapshot's bytes."""
    live = np.flatnonzero(cat.alive)
    start = cat.start[live]
    order = live[np.lexsort((cat.ids[live], np.where(start == _NO_TIME, np.iinfo(np.int64).max, start)))]
    new_pos = np.full(len(cat.ids), -1, dtype=np.int64)
    new_pos[order] = np.arange(len(order))
    arrays = {name: getattr(cat, name)[order] for name in _COLUMNS}
    tags = {t: np.sort(new_pos[pos[cat.alive[pos]]]) for t, pos in cat._tags.items()}
    tags = {t: pos for t, pos in tags.items() if len(pos)}
    arrays["tag_ptr"] = np.concatenate([[0], np.cumsum([len(p) for p in tags.values()], dtype=np.int64)]).astype(np.int64)
    arrays["tag_pos"] = np.concatenate([np.empty(0, np.int64), *tags.values()]).astype(np.int32)
    names, ptr, docs, tf, dl = cat.lexical.compacted(new_pos)
    arrays |= {"bm25_ptr": ptr.astype(np.int32) if ptr[-1] < 2**31 else ptr, "bm25_docs": docs, "bm25_dl": dl,
               "bm25_tf": lexical.narrow(tf)}
    arrays |= {_TERMS + name: arr for name, arr in names.arrays().items()}
    header = {"format": FORMAT, "fingerprint": key, "codes": list(cat._codes), "sources": list(cat._sources),
              "tags": list(tags)}
    _pack(header, arrays, sink)


def encode(cat: Catalog, key: list[Any]) -> bytes:
    """The catalog's snapshot as bytes (write_to streams them)."""
    parts: list[bytes] = []
    write_to(lambda b: parts.append(bytes(b)), cat, key)
    return b"".join(parts)


def decode(data: bytes, texts_of: Callable[[np.ndarray], list[str]]) -> tuple[list[Any], Catalog]:
    """(fingerprint, catalog) of a snapshot's bytes; ValueError when they are not one."""
    header, a = _unpack(data)
    if header.get("format") != FORMAT:
        raise ValueError(f"a catalog snapshot of format {header.get('format', 1)}")
    columns = {name: a[name] for name in _COLUMNS}
    ptr = a["tag_ptr"]
    tags = {t: a["tag_pos"][ptr[i] : ptr[i + 1]] for i, t in enumerate(header["tags"])}
    names = terms.Terms.from_arrays({name: a[_TERMS + name] for name in ("buf", "off", "hash", "hid")})
    lexical = BM25.restore(names, a["bm25_ptr"], a["bm25_docs"], a["bm25_tf"], a["bm25_dl"])
    return header["fingerprint"], Catalog.restore(columns, header["codes"], header["sources"], tags, lexical,
                                                  texts_of)


@dataclass(frozen=True, slots=True, kw_only=True)
class Restored:
    """A catalog restored from the snapshot: the base's fingerprint and its size, and the ids the delta re-read."""

    catalog: Catalog
    base_key: list[Any]
    base_size: int
    changed: frozenset[int]


def save(vault: Vault, cat: Catalog) -> list[Any]:
    """Seal the catalog as the snapshot of the memories table as it is now (the caller keeps them in step), and
    drop the delta (it was relative to the previous base). Returns the new base's fingerprint."""
    key = fingerprint(vault)
    with vault.blob_writer(BLOB) as sink:  # sealed as it is written, replaced atomically
        write_to(sink, cat, key)
    vault.delete_blob(DELTA_BLOB)  # a crash before this leaves a delta naming the old base: ignored
    return key


def delta_fits(changed: int, base_size: int) -> bool:
    """May `changed` ids since a base of `base_size` memories go to a delta (else a new base is written)?"""
    return changed <= min(DELTA_MAX_IDS, DELTA_SHARE * base_size)


def save_delta(vault: Vault, base_key: list[Any], changed: Iterable[int]) -> None:
    """Record that the memories table is the base snapshot's (`base_key`) with the rows of `changed` re-read."""
    ids = sorted({int(i) for i in changed})
    vault.write_blob(DELTA_BLOB, json.dumps({"format": FORMAT, "base": base_key, "key": fingerprint(vault),
                                             "ids": ids}).encode())


def drop(vault: Vault) -> None:
    vault.delete_blob(DELTA_BLOB)
    vault.delete_blob(BLOB)


def _delta(vault: Vault, base_key: list[Any], now: list[Any]) -> list[int] | None:
    """The delta's ids when it leads from this base to the table as it is now, else None."""
    try:
        raw = vault.read_blob(DELTA_BLOB)
        delta = json.loads(raw) if raw is not None else None
    except IntegrityError:
        log.warning("the catalog snapshot's delta failed its integrity check; rebuilding the catalog from the memories")
        return None
    except ValueError:
        return None
    if not isinstance(delta, dict) or delta.get("base") != base_key or delta.get("key") != now:
        return None
    ids = delta.get("ids")
    return [int(i) for i in ids] if isinstance(ids, list) else None


def _reread(vault: Vault, cat: Catalog, ids: list[int]) -> None:
    """Bring the catalog's rows of `ids` to the table's (added, changed or gone), as the writing process did."""
    cat.remove(np.asarray(ids, dtype=np.int64))
    # ids are ints, inlined: a bound list costs DuckDB's client a failed `import pandas` per element (~0.5 s per 1,000)
    listed = ",".join(str(int(i)) for i in ids) or "NULL"
    cat.add(vault.frame(f"{Catalog.SELECT} WHERE memory_id IN ({listed}) ORDER BY memory_id"), dialogue.texts(vault, ids),
            merge=False)  # pending postings: no re-sort of them all
    cat.lexical.settle()  # scores as a rebuild from the rows gives them (mean length, document frequencies)


def restore(vault: Vault, texts_of: Callable[[np.ndarray], list[str]]) -> Restored | None:
    """The snapshot's catalog (with its delta applied) when it matches the memories table, else None (rebuild
    from the rows)."""
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
    size = len(cat.ids)
    now = fingerprint(vault)
    if key == now:
        return Restored(catalog=cat, base_key=key, base_size=size, changed=frozenset())
    ids = _delta(vault, key, now)
    if ids is None:
        log.debug("the catalog snapshot is stale (the memories changed since); rebuilding it from the memories")
        return None
    _reread(vault, cat, ids)
    return Restored(catalog=cat, base_key=key, base_size=size, changed=frozenset(ids))


def load(vault: Vault, texts_of: Callable[[np.ndarray], list[str]]) -> Catalog | None:
    """The snapshot's catalog when it matches the memories table, else None (rebuild from the rows)."""
    restored = restore(vault, texts_of)
    return restored.catalog if restored is not None else None
