"""Argon2id in a thread: the unlock's key derivation runs while the command does its other work.

cryptography's Argon2id (OpenSSL) releases the GIL for the whole derivation (tests/vault/test_kdf_threads.py
checks it), so a derivation started in a thread costs a command little wall time: it imports duckdb and its
search stack, and DuckDB loads its extension, meanwhile, on the other core. The parameters are the vault's
own (keys.json), never changed here.
"""

from __future__ import annotations

import threading

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id


def argon2id(secret: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int, length: int = 32) -> bytes:
    return Argon2id(salt=salt, length=length, iterations=iterations, lanes=lanes, memory_cost=memory_kib).derive(secret)


class Derivation:
    """argon2id() running in a thread from construction on; result() waits for it (and raises what it raised)."""

    def __init__(self, secret: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int) -> None:
        self._out: bytes | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lifevault-kdf", daemon=True,
                                        args=(secret, salt, memory_kib, iterations, lanes))
        self._thread.start()

    def _run(self, secret: bytes, salt: bytes, memory_kib: int, iterations: int, lanes: int) -> None:
        try:
            self._out = argon2id(secret, salt=salt, memory_kib=memory_kib, iterations=iterations, lanes=lanes)
        except BaseException as e:  # noqa: BLE001 - handed to the thread that waits in result()
            self._error = e

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> bytes:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._out is not None
        return self._out
