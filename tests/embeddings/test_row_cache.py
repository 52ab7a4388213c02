"""The hydration cache of memory rows is bounded in bytes as well as in rows: heavy notes cannot fill memory."""

from __future__ import annotations

from embeddings.notes import MAX_TEXT_CHARS
from embeddings.records import RECORD_CACHE_BYTES, RECORD_CACHE_ROWS, RowCache, fetch, row_bytes
from embeddings.redaction import Redaction
from embeddings.service import MemoryService
from vault.store import Vault

OWNER = Redaction()


def heavy_notes(svc: MemoryService, n: int) -> list[int]:
    """n notes of the largest text a note may have (each row ~40 KB as Python objects)."""
    return [svc.remember(f"note {i} " + "ä" * (MAX_TEXT_CHARS - 8), metadata={"i": i}).memory_id for i in range(n)]


def sizes(vault: Vault, ids: list[int]) -> dict[int, int]:
    everything = RowCache(capacity=len(ids), max_bytes=1 << 40)
    fetch(vault, ids, OWNER, everything)
    return {i: row_bytes(everything._rows[i][0]) for i in ids}


def test_rows_up_to_the_byte_bound_are_all_kept(vault: Vault, svc: MemoryService) -> None:
    ids = heavy_notes(svc, 3)
    size = sizes(vault, ids)
    cache = RowCache(max_bytes=sum(size.values()))  # just under: all three fit exactly
    fetch(vault, ids, OWNER, cache)
    assert len(cache) == 3 and cache.bytes == sum(size.values())
    found, missing = cache.get(ids)
    assert set(found) == set(ids) and missing == []


def test_one_byte_over_the_bound_evicts_the_least_recent_row(vault: Vault, svc: MemoryService) -> None:
    ids = heavy_notes(svc, 3)
    size = sizes(vault, ids)
    cache = RowCache(max_bytes=sum(size.values()) - 1)
    for i in ids:  # one at a time: ids[0] is the least recently used
        fetch(vault, [i], OWNER, cache)
    assert len(cache) == 2 and cache.bytes == size[ids[1]] + size[ids[2]] <= cache.max_bytes
    assert cache.get(ids)[1] == [ids[0]]


def test_a_row_heavier_than_the_whole_cache_is_read_but_not_kept(vault: Vault, svc: MemoryService) -> None:
    (big,) = heavy_notes(svc, 1)
    cache = RowCache(max_bytes=sizes(vault, [big])[big] - 1)
    assert fetch(vault, [big], OWNER, cache)[big].text.startswith("note 0 ä")
    assert len(cache) == 0 and cache.bytes == 0


def test_the_row_count_bound_still_holds_for_light_rows(vault: Vault, svc: MemoryService) -> None:
    ids = [svc.remember(f"short note {i}").memory_id for i in range(3)]
    cache = RowCache(capacity=2)
    fetch(vault, ids, OWNER, cache)
    assert len(cache) == 2 and cache.bytes == sum(sizes(vault, ids[1:]).values())


def test_clearing_the_cache_returns_its_bytes_to_zero(vault: Vault, svc: MemoryService) -> None:
    ids = heavy_notes(svc, 2)
    cache = RowCache()
    fetch(vault, ids, OWNER, cache)
    assert cache.bytes > 2 * MAX_TEXT_CHARS
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_the_service_hydrates_through_a_cache_with_the_default_bounds(svc: MemoryService) -> None:
    note = svc.remember("Ana prefers the window seat")
    assert svc.search("window seat", k=1).hits[0].memory.memory_id == note.memory_id
    assert (svc._rows.capacity, svc._rows.max_bytes) == (RECORD_CACHE_ROWS, RECORD_CACHE_BYTES)
    assert 0 < svc._rows.bytes <= RECORD_CACHE_BYTES
