"""Vectors added to an IVF index since its blob was written whole are sealed as small code files named by
a `<index>.delta` blob (embeddings/codedelta.py): the blob is not rewritten, the index opens the same, and
a delete, more than CODE_DELTA_MAX added vectors or a tampered file behave as they must."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embeddings import codedelta
from embeddings import index as vindex
from embeddings.index import VectorIndex
from vault.errors import IntegrityError
from vault.store import Vault


def _unit(n: int, d: int = 32, seed: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _files(vault: Vault) -> set[str]:
    return set(vault.blob_names("probe"))


def _whole_then_a_code_file(vault: Vault) -> tuple[VectorIndex, np.ndarray, np.ndarray, str]:
    """An index of 1,400 vectors written whole, then 100 more sealed as its one code file."""
    vecs, ids = _unit(1_500), np.arange(1_500, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids[:1_400], vecs[:1_400])
    vindex.save(vault, "probe", ix, {"dim": 32})
    ix.add(ids[1_400:], vecs[1_400:])
    vindex.save(vault, "probe", ix, {"dim": 32})
    (codes,) = vault.blob_names("probe.codes.")
    return ix, vecs, ids, codes


def test_adds_up_to_code_delta_max_seal_code_files_and_leave_the_index_blob_as_it_was(vault: Vault, monkeypatch):
    monkeypatch.setattr(codedelta, "CODE_DELTA_MAX", 10)
    vecs, ids = _unit(2_011), np.arange(2_011, dtype=np.int64) * 3 + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids[:2_000], vecs[:2_000])
    vindex.save(vault, "probe", ix, {"dim": 32})
    blob = vault.blob_path("probe").read_bytes()
    ix.add(ids[2_000:2_004], vecs[2_000:2_004])
    vindex.save(vault, "probe", ix, {"dim": 32, "model": "m"})
    ix.add(ids[2_004:2_010], vecs[2_004:2_010])  # 10 since the whole write: still a code file
    vindex.save(vault, "probe", ix, {"dim": 32, "model": "m"})
    assert vault.blob_path("probe").read_bytes() == blob and len(vault.blob_names("probe.codes.")) == 1
    opened, header = vindex.load(vault, "probe")  # type: ignore[misc]
    assert header["model"] == "m" and sorted(opened.ids().tolist()) == sorted(ids[:2_010].tolist())
    for q in (0, 1_999, 2_003, 2_009):
        assert opened.search(vecs[q], 1)[0][0] == ids[q]
        assert opened.search(vecs[q], 1, ids[max(0, q - 300) : q + 1])[0][0] == ids[q]
        assert np.abs(opened.vectors(ids[q : q + 1])[0] - vecs[q]).max() < 1e-3
    opened.add(ids[2_010:], vecs[2_010:])  # 11 since the whole write: written whole, the code files gone
    vindex.save(vault, "probe", opened, header)
    assert vault.blob_path("probe").read_bytes() != blob
    assert not vault.blob_names("probe.codes.") and vault.read_blob("probe.delta") is None
    again, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    assert len(again) == 2_011 and again.search(vecs[2_010], 1)[0][0] == ids[2_010]


def test_a_delete_after_code_files_writes_the_index_whole_and_keeps_no_code_of_it(vault: Vault):
    ix, vecs, ids, codes = _whole_then_a_code_file(vault)
    ix.remove(ids[1_450:1_451])
    vindex.save(vault, "probe", ix, {"dim": 32})
    assert not vault.blob_path(codes).exists()
    assert vault.read_blob("probe.delta") is None
    opened, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    assert ids[1_450] not in opened.ids() and ids[1_450] not in opened.search(vecs[1_450], 10)[0]
    assert opened.search(vecs[1_499], 1)[0][0] == ids[1_499]


def test_a_tampered_code_file_or_delta_fails_as_tampering(vault: Vault):
    ix, vecs, ids, codes = _whole_then_a_code_file(vault)
    path = vault.blob_path(codes)
    good = path.read_bytes()
    path.write_bytes(good[:-20] + bytes([good[-20] ^ 1]) + good[-19:])
    with pytest.raises(IntegrityError):
        vindex.load(vault, "probe")
    path.write_bytes(good)
    delta = json.loads(vault.read_blob("probe.delta"))  # type: ignore[arg-type]
    delta["codes"][0][2] -= 1  # a count the file does not hold
    vault.write_blob("probe.delta", json.dumps(delta).encode())
    with pytest.raises(IntegrityError, match="'probe' is not a lifevault vector index"):
        vindex.load(vault, "probe")


def test_one_add_a_save_keeps_a_code_file_per_binary_digit_of_what_was_added(vault: Vault):
    vecs, ids = _unit(1_507), np.arange(1_507, dtype=np.int64) + 1
    ix = VectorIndex.new(32, ivf=True)
    ix.add(ids[:1_500], vecs[:1_500])
    vindex.save(vault, "probe", ix, {"dim": 32})
    for at in range(1_500, 1_507):
        ix.add(ids[at : at + 1], vecs[at : at + 1])
        vindex.save(vault, "probe", ix, {"dim": 32})
    delta = json.loads(vault.read_blob("probe.delta"))  # type: ignore[arg-type]
    assert [c[1:] for c in delta["codes"]] == [[1_500, 4], [1_504, 2], [1_506, 1]]
    assert set(vault.blob_names("probe.codes.")) == {c[0] for c in delta["codes"]}
    opened, _ = vindex.load(vault, "probe")  # type: ignore[misc]
    assert all(opened.search(vecs[at], 1)[0][0] == ids[at] for at in range(1_495, 1_507))
