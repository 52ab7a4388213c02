"""The unlock's Argon2id runs in a thread (vault/kdf.py) with the GIL released, so a command's imports run while
it derives; an unlock started early reports a wrong passphrase when its keys are asked for."""

from __future__ import annotations

import time

import pytest

from vault import keys as keymod
from vault.errors import WrongPassphrase
from vault.kdf import Derivation, argon2id

SALT = bytes(range(16))


def test_the_derivation_leaves_the_gil_to_the_caller():
    """While the default unlock (64 MiB, 3 passes, 4 lanes) derives in its thread, this thread keeps running
    Python: had the derivation held the GIL, the loop would get no CPU until it ended."""
    d = Derivation(b"pw", salt=SALT, memory_kib=65536, iterations=3, lanes=4)
    cpu, started, spins = time.thread_time(), time.perf_counter(), 0
    while not d.done():
        spins += 1
    cpu, waited = time.thread_time() - cpu, time.perf_counter() - started
    assert d.result() == argon2id(b"pw", salt=SALT, memory_kib=65536, iterations=3, lanes=4)
    assert waited > 0.05 and cpu > 0.02, (waited, cpu, spins)


def test_an_early_unlock_gives_the_keys_a_plain_unlock_gives(home):
    home.mkdir()
    keys, _ = keymod.create(home, "pw", kdf=keymod.KDF_FLOOR)
    assert keymod.begin_unlock(home, "pw").keys() == keys
    assert keymod.unlock(home, "pw") == keys


def test_a_wrong_passphrase_started_early_is_refused_when_the_keys_are_asked_for(home):
    home.mkdir()
    keymod.create(home, "pw", kdf=keymod.KDF_FLOOR)
    unlocking = keymod.begin_unlock(home, "not it")
    with pytest.raises(WrongPassphrase, match="wrong passphrase: keys.json could not be unlocked"):
        unlocking.keys()
