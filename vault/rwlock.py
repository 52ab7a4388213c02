"""A readers-writer lock for one open vault shared by threads (the API's worker pool).

    lock = RWLock()
    with lock.read():   # searches, reads: any number at once
        ...
    with lock.write():  # writes, index changes: alone
        ...
    with lock:          # the same as lock.write()

Writers are preferred (a waiting writer holds new readers back, so a stream of searches cannot starve an
ingest). Both sides are reentrant per thread, and a thread holding the write side may also take the read
side; taking the write side while holding only the read side would deadlock, so it raises instead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class RWLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None
        self._writer_depth = 0
        self._waiting_writers = 0
        self._local = threading.local()

    def _reads(self) -> int:
        return getattr(self._local, "reads", 0)

    def acquire_read(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer != me and not self._reads():
                while self._writer is not None or self._waiting_writers:
                    self._cond.wait()
            self._readers += 1
            self._local.reads = self._reads() + 1

    def release_read(self) -> None:
        with self._cond:
            if not self._reads():
                raise RuntimeError("release_read without acquire_read")
            self._readers -= 1
            self._local.reads -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
                return
            if self._reads():
                raise RuntimeError("cannot take the write lock while holding the read lock")
            self._waiting_writers += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer, self._writer_depth = me, 1

    def release_write(self) -> None:
        with self._cond:
            if self._writer != threading.get_ident():
                raise RuntimeError("release_write by a thread that does not hold the write lock")
            self._writer_depth -= 1
            if self._writer_depth == 0:
                self._writer = None
                self._cond.notify_all()

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()

    def __enter__(self) -> RWLock:
        self.acquire_write()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_write()
