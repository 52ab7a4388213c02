"""A save of the IVF index killed (SIGKILL, vault/crashpoint.py) after its blob (or its delta of added
codes) is in place and before the files it replaced are deleted: the next open is consistent, and a
writer's open deletes what was left (a replaced store segment holds the vector just forgotten, a code file
its code); a read-only open leaves files alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from embeddings import index as vindex
from embeddings.index import VectorIndex
from tests.conftest import FAST_KDF, PASSPHRASE
from vault import crashpoint
from vault.store import Vault

CHANGE = """
import sys
import numpy as np
from embeddings import index as vindex
with __import__("vault.store").store.Vault.open(sys.argv[1], sys.argv[2]) as vault:
    ix, header = vindex.load(vault, "probe")
    if sys.argv[3] == "forget":
        ix.remove(np.array([int(sys.argv[4])]))
    else:
        ix.add(np.array([int(sys.argv[4])]), np.load(sys.argv[5]))
    vindex.save(vault, "probe", ix, header)
"""


def _unit(n: int, d: int = 32) -> np.ndarray:
    v = np.random.default_rng(2).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _run(home: Path, crash_at: str, *args: str) -> None:
    env = {**os.environ, crashpoint.ENV: crash_at}
    run = subprocess.run([sys.executable, "-c", CHANGE, str(home), PASSPHRASE, *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]


def _seal(home: Path, ids: np.ndarray, vecs: np.ndarray) -> tuple[str, str]:
    """2,000 vectors written whole, then one more sealed as a code file: (the first segment, the code file)."""
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        ix = VectorIndex.new(32, ivf=True)
        ix.add(ids[:2_000], vecs[:2_000])
        vindex.save(vault, "probe", ix, {"dim": 32})
        (first,) = vault.blob_names("probe.vec.")
        ix.add(ids[2_000:2_001], vecs[2_000:2_001])
        vindex.save(vault, "probe", ix, {"dim": 32})
        (codes,) = vault.blob_names("probe.codes.")
    return first, codes


def test_a_crash_after_the_blob_opens_consistent_and_a_writer_deletes_what_was_left(tmp_path: Path):
    home, vecs, ids = tmp_path / "home", _unit(2_001), np.arange(2_001, dtype=np.int64) + 1
    first, codes = _seal(home, ids, vecs)
    _run(home, "index.blob_committed", "forget", str(ids[5]))
    with Vault.open(home, PASSPHRASE, read_only=True) as reader:
        left = reader.blob_names("probe")
        assert {first, codes, "probe.delta"} <= set(left)  # the replaced segment holds the forgotten vector
        held = reader.open_records(first).read_all().view(np.float16)
        assert np.abs(held[5] - vecs[5]).max() < 1e-3
        opened, _ = vindex.load(reader, "probe")  # type: ignore[misc]
        assert len(opened) == 2_000 and reader.blob_names("probe") == left
    with Vault.open(home, PASSPHRASE) as writer:
        opened, _ = vindex.load(writer, "probe")  # type: ignore[misc]
        assert not {first, codes, "probe.delta"} & set(writer.blob_names("probe"))
        assert len(opened) == 2_000 and not len(opened.vectors(ids[5:6]))
        assert ids[5] not in opened.search(vecs[5], 10)[0] and opened.search(vecs[6], 1)[0][0] == ids[6]
        assert opened.search(vecs[2_000], 1)[0][0] == ids[2_000]


def test_a_crash_after_a_delta_opens_with_the_added_vector_and_every_file_named(tmp_path: Path):
    home, vecs, ids = tmp_path / "home", _unit(2_002), np.arange(2_002, dtype=np.int64) + 1
    _seal(home, ids, vecs)
    np.save(tmp_path / "v.npy", vecs[2_001:2_002])
    _run(home, "index.delta_committed", "add", str(ids[2_001]), str(tmp_path / "v.npy"))
    with Vault.open(home, PASSPHRASE) as writer:
        opened, header = vindex.load(writer, "probe")  # type: ignore[misc]
        assert len(opened) == 2_002 and opened.search(vecs[2_001], 1)[0][0] == ids[2_001]
        named = {s[0] for s in header["segments"] + header["codes"]}
        assert set(writer.blob_names("probe")) == named | {"probe", "probe.delta"} and len(header["codes"]) == 1
