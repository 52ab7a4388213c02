"""A save of the IVF index killed (SIGKILL, vault/crashpoint.py) after its blob names the new store segments
and before the replaced ones are deleted: the next open is consistent, and a writer's open deletes the
leftover segment (it holds the vector just forgotten); a read-only open leaves files alone."""

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

FORGET = """
import sys
import numpy as np
from embeddings import index as vindex
from vault.store import Vault
with Vault.open(sys.argv[1], sys.argv[2]) as vault:
    ix, header = vindex.load(vault, "probe")
    ix.remove(np.array([int(sys.argv[3])]))
    vindex.save(vault, "probe", ix, header)
"""


def _unit(n: int, d: int = 32) -> np.ndarray:
    v = np.random.default_rng(2).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_crash_after_the_blob_opens_consistent_and_a_writer_deletes_the_segment_left_behind(tmp_path: Path):
    home, vecs, ids = tmp_path / "home", _unit(2_000), np.arange(2_000, dtype=np.int64) + 1
    vault, _ = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with vault:
        ix = VectorIndex.new(32, ivf=True)
        ix.add(ids, vecs)
        vindex.save(vault, "probe", ix, {"dim": 32})
        (before,) = vault.blob_names("probe.vec.")
    env = {**os.environ, crashpoint.ENV: "index.blob_committed"}
    run = subprocess.run([sys.executable, "-c", FORGET, str(home), PASSPHRASE, str(ids[5])], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    with Vault.open(home, PASSPHRASE, read_only=True) as reader:
        left = reader.blob_names("probe.vec.")
        assert before in left and len(left) == 2  # the replaced segment, with the forgotten vector in it
        held = reader.open_records(before).read_all().view(np.float16)
        assert np.abs(held[5] - vecs[5]).max() < 1e-3
        opened, _ = vindex.load(reader, "probe")  # type: ignore[misc]
        assert len(opened) == 1_999 and reader.blob_names("probe.vec.") == left
    with Vault.open(home, PASSPHRASE) as writer:
        opened, _ = vindex.load(writer, "probe")  # type: ignore[misc]
        assert writer.blob_names("probe.vec.") == [n for n in left if n != before]
        assert len(opened) == 1_999 and not len(opened.vectors(ids[5:6]))
        assert ids[5] not in opened.search(vecs[5], 10)[0] and opened.search(vecs[6], 1)[0][0] == ids[6]
        assert np.abs(opened.vectors(ids[6:7])[0] - vecs[6]).max() < 1e-3
