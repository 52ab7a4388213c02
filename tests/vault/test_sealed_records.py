"""Sealed records: random access to small authenticated chunks; any damage fails as tampering."""

from __future__ import annotations

import numpy as np
import pytest

from vault import sealed_records
from vault.errors import IntegrityError, VaultMissing
from vault.store import Vault

HEADER = 56  # magic 8, record size 4, records per chunk 4, count 8, salt 32


def _records(n: int, size: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size), dtype=np.uint8)


def _seal(vault: Vault, name: str, records: np.ndarray) -> None:
    writer = vault.record_writer(name, record_size=records.shape[1], count=len(records))
    for lo in range(0, len(records), 37):  # written in pieces that do not line up with the chunks
        writer.write(records[lo : lo + 37])
    writer.commit()


def _chunks(vault: Vault, name: str) -> tuple[bytes, list[bytes]]:
    data = vault.blob_path(name).read_bytes()
    reader = vault.open_records(name)
    stride = reader._stride
    return data[:HEADER], [data[p : p + stride] for p in range(HEADER, len(data), stride)]


@pytest.mark.parametrize("n", [0, 1, 85, 850, 1000])  # 85 records of 96 bytes fill one 8 KiB chunk
def test_records_read_back_by_position_and_whole_exactly_as_written(vault: Vault, n: int):
    recs = _records(n)
    _seal(vault, "r", recs)
    reader = vault.open_records("r")
    assert reader.count == n and np.array_equal(reader.read_all(), recs)
    if n:
        pick = np.random.default_rng(1).integers(0, n, 200)
        assert np.array_equal(reader.read(pick), recs[pick])  # any order, repeats included
        with pytest.raises(IndexError):
            reader.read(np.array([n]))


def test_the_sealed_file_holds_no_record_in_plaintext(vault: Vault):
    recs = np.tile(np.frombuffer(b"PLAINTEXT-CANARY" * 6, dtype=np.uint8), (300, 1))
    _seal(vault, "r", recs)
    assert b"PLAINTEXT-CANARY" not in vault.blob_path("r").read_bytes()


def test_a_flipped_bit_fails_when_its_chunk_is_read_and_other_chunks_still_read(vault: Vault):
    recs = _records(1000)
    _seal(vault, "r", recs)
    path = vault.blob_path("r")
    data = bytearray(path.read_bytes())
    data[HEADER + 100] ^= 0x01  # inside chunk 0
    path.write_bytes(bytes(data))
    reader = vault.open_records("r")
    with pytest.raises(IntegrityError, match=r"r.sealed failed its integrity check \(tampered"):
        reader.read(np.array([3]))
    assert np.array_equal(reader.read(np.array([500])), recs[[500]])


def test_truncated_extended_reordered_repeated_or_foreign_chunks_fail_as_tampering(vault: Vault):
    recs = _records(1000)
    _seal(vault, "r", recs)
    _seal(vault, "other", recs)  # same records, same name length: another salt, another subkey
    path = vault.blob_path("r")
    good = path.read_bytes()
    header, chunks = _chunks(vault, "r")
    other_header, theirs = _chunks(vault, "other")
    n = len(chunks)
    assert n == 12
    opened_bad = [header + b"".join(chunks[:-1]),  # truncated at a chunk boundary
                  good[:-1],  # truncated by a byte
                  good + b"\0" * 16,  # extended
                  header[:16] + (999).to_bytes(8, "big") + header[24:] + b"".join(chunks)]  # count lowered
    read_bad = [header + chunks[1] + chunks[0] + b"".join(chunks[2:]),  # reordered
                header + chunks[0] + chunks[0] + b"".join(chunks[2:]),  # a chunk repeated
                header + theirs[0] + b"".join(chunks[1:]),  # spliced from another file
                other_header + b"".join(chunks)]  # another file's header (salt)
    for bad in opened_bad:
        path.write_bytes(bad)
        with pytest.raises(IntegrityError, match="r.sealed failed its integrity check"):
            vault.open_records("r").read_all()
    for bad in read_bad:
        path.write_bytes(bad)
        with pytest.raises(IntegrityError, match="r.sealed failed its integrity check"):
            vault.open_records("r").read(np.array([0, 90]))
    path.write_bytes(good)
    assert np.array_equal(vault.open_records("r").read_all(), recs)


def test_a_record_file_presented_under_another_name_fails_and_a_missing_one_is_missing(vault: Vault):
    _seal(vault, "r", _records(10))
    vault.blob_path("s").write_bytes(vault.blob_path("r").read_bytes())
    with pytest.raises(IntegrityError, match="s.sealed failed its integrity check"):
        vault.open_records("s").read(np.array([0]))
    with pytest.raises(VaultMissing):
        vault.open_records("nothing")


def test_a_record_of_max_record_bytes_is_sealed_and_one_byte_more_is_refused(vault: Vault, monkeypatch):
    monkeypatch.setattr(sealed_records, "MAX_RECORD_BYTES", 4096)
    _seal(vault, "r", _records(3, 4096))
    assert np.array_equal(vault.open_records("r").read(np.array([2])), _records(3, 4096)[[2]])
    with pytest.raises(ValueError, match="out of bounds"):
        vault.record_writer("r", record_size=4097, count=1)


def test_a_writer_refuses_more_records_than_announced_and_commits_none_with_fewer(vault: Vault):
    writer = vault.record_writer("r", record_size=8, count=2)
    with pytest.raises(ValueError, match="more records"):
        writer.write(_records(3, 8))
    writer.write(_records(1, 8))
    with pytest.raises(ValueError, match="1 records written of the 2"):
        writer.commit()
    assert not vault.blob_path("r").exists() and not list(vault.blob_path("r").parent.glob(".*tmp"))
