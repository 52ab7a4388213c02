from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vault.sealed_blob import split as split_sealed
from vault import sealed
from vault.errors import IntegrityError

KEY = os.urandom(32)
SMALL = 64  # chunk size for tests, so a few hundred bytes span several chunks


@given(st.binary(max_size=600))
@settings(max_examples=60, deadline=None)
def test_any_bytes_round_trip(data):
    assert sealed.unseal(KEY, "obj", sealed.seal(KEY, "obj", data, chunk_size=SMALL)) == data


def test_a_blob_spans_1_mib_chunks_by_default():
    data = os.urandom(2 * sealed.CHUNK_SIZE + 5)
    blob = sealed.seal(KEY, "faiss", data)
    assert len(split_sealed(blob)[1]) == 3
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
    header, chunks = split_sealed(blob)
    with pytest.raises(IntegrityError):
        sealed.unseal(KEY, "o", header + b"".join(chunks[:-1]))
    with pytest.raises(IntegrityError):
        sealed.unseal(KEY, "o", header)


def test_reordered_duplicated_or_appended_chunks_are_detected():
    blob = sealed.seal(KEY, "o", os.urandom(300), chunk_size=SMALL)
    header, c = split_sealed(blob)
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


@given(st.lists(st.binary(max_size=150), max_size=8))
@settings(max_examples=40, deadline=None)
def test_a_streamed_seal_is_the_same_container_and_reads_back_chunk_by_chunk(tmp_path_factory, writes):
    path = tmp_path_factory.mktemp("s") / "x.sealed"
    writer = sealed.SealWriter(path, KEY, "x", chunk_size=SMALL)
    for w in writes:
        writer.write(w)
    writer.commit()
    data = b"".join(writes)
    assert sealed.unseal(KEY, "x", path.read_bytes()) == data
    assert b"".join(bytes(c) for c in sealed.read_chunks(path, KEY, "x", workers=2)) == data


def test_reading_chunk_by_chunk_detects_truncation_reordering_and_another_object_id(tmp_path):
    path = tmp_path / "x.sealed"
    path.write_bytes(sealed.seal(KEY, "x", os.urandom(1000), chunk_size=SMALL))
    (tmp_path / "y.sealed").write_bytes(sealed.seal(KEY, "x", os.urandom(1000), chunk_size=SMALL))  # another seal
    blob = path.read_bytes()
    header, c = split_sealed(blob)
    _, other = split_sealed((tmp_path / "y.sealed").read_bytes())
    for bad in (header + b"".join(c[:-1]), header + c[1] + c[0] + b"".join(c[2:]), blob + c[-1], blob + b"\x00",
                header + other[0] + b"".join(c[1:])):
        path.write_bytes(bad)
        with pytest.raises(IntegrityError, match="x.sealed failed its integrity check"):
            b"".join(sealed.read_chunks(path, KEY, "x"))
    path.write_bytes(blob)
    with pytest.raises(IntegrityError):
        b"".join(sealed.read_chunks(path, KEY, "y"))


def test_an_aborted_streamed_seal_leaves_the_previous_blob(tmp_path):
    path = tmp_path / "x.sealed"
    sealed.write(path, KEY, "x", b"old")
    writer = sealed.SealWriter(path, KEY, "x")
    writer.write(b"new, half written")
    writer.abort()
    assert sealed.read(path, KEY, "x") == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.sealed"]
