"""The readers-writer lock: readers share, a writer is alone, waiting writers hold new readers back."""

from __future__ import annotations

import threading
import time

import pytest

from vault.rwlock import RWLock


def _held_together(lock: RWLock, side: str, n: int = 4) -> int:
    """The most threads seen inside `side` at once."""
    inside, most, guard = 0, 0, threading.Lock()
    start = threading.Barrier(n)

    def run() -> None:
        nonlocal inside, most
        start.wait()
        with getattr(lock, side)():
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return most


def test_readers_share_and_writers_are_alone() -> None:
    lock = RWLock()
    assert _held_together(lock, "read") > 1
    assert _held_together(lock, "write") == 1


def test_a_waiting_writer_goes_before_new_readers() -> None:
    lock, order = RWLock(), []
    lock.acquire_read()
    writer = threading.Thread(target=lambda: (lock.acquire_write(), order.append("writer"), lock.release_write()))
    writer.start()
    time.sleep(0.05)  # the writer now waits for the first reader
    reader = threading.Thread(target=lambda: (lock.acquire_read(), order.append("reader"), lock.release_read()))
    reader.start()
    time.sleep(0.05)
    assert order == []
    lock.release_read()
    writer.join(2)
    reader.join(2)
    assert order == ["writer", "reader"]


def test_reentrant_and_write_then_read_but_no_upgrade() -> None:
    lock = RWLock()
    with lock, lock.write(), lock.read(), lock.read():
        pass
    with lock.read(), lock.read():
        with pytest.raises(RuntimeError, match="while holding the read lock"):
            lock.acquire_write()
    with lock.write():  # everything was released
        pass
    with pytest.raises(RuntimeError):
        lock.release_read()
