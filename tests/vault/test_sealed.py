from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import sealed
from vault.errors import IntegrityError

KEY = os.urandom(32)
SMALL = 64  # chunk size for tests, so a few hundred bytes span several chunks


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    header, pos, out = blob[:44], 44, []
    while pos < len(blob):
        (n,) = struct.unpack_from(">I", blob, pos)
        out.append(blob[pos : pos + 4 + n])
        pos += 4 + n
    return header, out


@given(st.binary(max_size=600))
@settings(max_examples=60, deadline=None)
def test_any_bytes_round_trip(data):
    assert sealed.unseal(KEY, "obj", sealed.seal(KEY, "obj", data, chunk_size=SMALL)) == data


def test_a_blob_spans_1_mib_chunks_by_default():
    data = os.urandom(2 * sealed.CHUNK_SIZE + 5)
    blob = sealed.seal(KEY, "faiss", data)
    assert len(_chunks(blob)[1]) == 3
    assert sealed.unseal(KEY, "faiss", blob) == data


def test_sealing_twice_gives_different_ciphertexts():
    assert sealed.seal(KEY, "o", b"same") != sealed.seal(KEY, "o", b"same")


def test_plaintext_does_not_appear_in_the_blob():
    blob = sealed.seal(KEY, "o", b"CANARY-SEALED-" * 100, chunk_size=SMALL)
    assert b"CANARY" not in blob


@pytest.mark.parametrize("position", [0, 10, 43, 44, 60, -1])
def test_a_flipped_bit_anywhere_is_detected(position):
    blob = bytearray(sealed.seal(KEY, "o", os.urandom(300), chunk_size=SMALL))
    blob[position] ^= 0x80
    with pytest.raises(IntegrityError):
        sealed.unseal(KEY, "o", bytes(blob))


def test_truncation_at_a_chunk_boundary_is_detected():
    blob = sealed.seal(KEY, "o", os.urandom(300), chunk_size=SMALL)
    header, chunks = _chunks(blob)
    with pytest.raises(IntegrityError):
        sealed.unseal(KEY, "o", header + b"".join(chunks[:-1]))
    with pytest.raises(IntegrityError):
        sealed.unseal(KEY, "o", header)


def test_reordered_duplicated_or_appended_chunks_are_detected():
    blob = sealed.seal(KEY, "o", os.urandom(300), chunk_size=SMALL)
    header, c = _chunks(blob)
    for bad in (
        header + c[1] + c[0] + b"".join(c[2:]),
        header + c[0] + c[0] + b"".join(c[1:]),
        blob + c[-1],
        blob + b"\x00",
    ):
        with pytest.raises(IntegrityError):
            sealed.unseal(KEY, "o", bad)


def test_a_blob_presented_under_another_object_id_or_key_is_refused():
    blob = sealed.seal(KEY, "index", b"data")
    with pytest.raises(IntegrityError):
        sealed.unseal(KEY, "checkpoint", blob)
    with pytest.raises(IntegrityError):
        sealed.unseal(os.urandom(32), "index", blob)


def test_write_is_atomic_and_read_round_trips(tmp_path):
    path = tmp_path / "x.sealed"
    sealed.write(path, KEY, "x", b"one")
    sealed.write(path, KEY, "x", b"two")
    assert sealed.read(path, KEY, "x") == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.sealed"]
