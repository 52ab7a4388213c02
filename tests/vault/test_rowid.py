from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import polars as pl
import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from tests.conftest import PASSPHRASE
from vault import rowid
from vault.store import Vault


def _reference_cmac_id(key: bytes, text: str) -> int:
    mac = cmac.CMAC(algorithms.AES(rowid.cmac_key(key)))
    mac.update(text.encode())
    return int.from_bytes(mac.finalize()[:8], "big") >> 1


def _reference_blake2b_id(key: bytes, text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), key=key, digest_size=8).digest(), "big") >> 1


def _texts() -> list[str]:
    rnd = random.Random(7)
    edge = ["", "a", "x" * 15, "y" * 16, "z" * 17, "w" * 32, "é" * 8, "\x1f", "2023-01-01 00:00:00+00:00\x1f51.5\x1f-0.1"]
    return edge + ["".join(rnd.choice("abcé\x1f019 ") for _ in range(rnd.randint(0, 150))) for _ in range(3000)]


@pytest.mark.parametrize("scheme", rowid.SCHEMES)
def test_vectorised_ids_equal_the_reference_mac_of_every_text(scheme, monkeypatch):
    monkeypatch.setattr(rowid, "CHUNK_ROWS", 1000)  # several chunks, sliced Arrow buffers included
    key = os.urandom(32)
    ref = _reference_cmac_id if scheme == rowid.AES_CMAC else _reference_blake2b_id
    texts = _texts()
    expected = np.array([ref(key, t) for t in texts], dtype=np.int64)
    ids = rowid.RowIds(scheme, key)
    assert (ids.of_texts(texts) == expected).all()
    assert (ids.of_arrow(pl.Series(texts).to_arrow()) == expected).all()
    assert (ids.of_arrow(pl.Series([None, *texts]).slice(1).to_arrow()) == expected).all()
    assert (expected >= 0).all()


def test_a_new_vault_uses_aes_cmac_and_its_ids_survive_reopening(home, vault):
    assert vault.row_id_scheme == rowid.AES_CMAC
    keys = pl.Series(["stay\x1f2025-01-01", "", None, "é"])
    first = vault.row_id_column(keys).to_list()
    assert first == vault.row_ids(["stay\x1f2025-01-01", "", None, "é"])
    assert first[1] == first[2]  # null and "" are the same key
    assert vault.row_id("stay", "2025-01-01") == first[0]
    vault.close()
    with Vault.open(home, PASSPHRASE) as again:
        assert again.row_id_scheme == rowid.AES_CMAC
        assert again.row_id_column(keys).to_list() == first


def test_a_vault_that_held_data_before_the_scheme_migration_keeps_its_blake2b_ids(home, vault):
    vault.execute("INSERT INTO quarantine VALUES (1, 'l', 'f', 'x', 0, 'r', NULL, now())")
    # as if this vault predated migration 0014
    vault.execute("DELETE FROM vault_meta WHERE key = 'row_id_scheme'")
    vault.execute("DELETE FROM _migrations WHERE name = '0014_row_id_scheme'")
    rowid_key = vault._keys.rowid
    vault.close()
    with Vault.open(home, PASSPHRASE) as old:
        assert old.row_id_scheme == rowid.BLAKE2B
        assert old.row_id("stay", "2025-01-01") == _reference_blake2b_id(rowid_key, "stay\x1f2025-01-01")
        assert old.row_id_column(pl.Series(["a", None])).to_list() == [
            _reference_blake2b_id(rowid_key, "a"), _reference_blake2b_id(rowid_key, "")]
