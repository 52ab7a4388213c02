"""Freed heap goes back to the system when the server falls idle after a burst of requests (glibc only).

A search allocates and frees arrays of a few MB (scores and masks over every memory) on whichever worker
thread runs it; glibc keeps what is freed in its arenas, where long-lived objects allocated since (cache
entries) pin it: at 1M memories ~40 MB more stays "free but held" after 100 searches than after the
warm-up. `malloc_trim(0)` returns the free pages of every arena; it walks them all, so it runs in a
background thread once no request has come for TRIM_IDLE_S, never on a request's path. Elsewhere than
Linux with glibc (macOS, musl) there is no malloc_trim and this does nothing.

Measured at 1M (bench/README.md): it gives back 10-26 MB after a burst, beyond what glibc and DuckDB
release on their own. Limiting the arenas (M_ARENA_MAX 2) changed nothing measurable, and a fixed mmap
threshold (large arrays mapped and unmapped each time) saved 43-55 MB at +25-50% CPU a search: neither
is used.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import sys
import threading
import time
from collections.abc import Callable

TRIM_IDLE_S = 1.0  # seconds without a request after which the freed heap is trimmed (once per burst)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim() -> bool:
    """Give the free pages of every malloc arena back to the system; False where there is no malloc_trim."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


class IdleTrim:
    """Calls `trim` once after each burst of `touch()`es, when none has come for `idle_s` seconds."""

    def __init__(self, idle_s: float = TRIM_IDLE_S, trim: Callable[[], bool] = trim) -> None:
        self.idle_s = idle_s
        self._trim = trim
        self._last = 0.0
        self._wake = threading.Event()
        self._stop = False
        self.trims = 0
        self._thread: threading.Thread | None = None

    def start(self) -> IdleTrim:
        if _malloc_trim() is not None or self._trim is not trim:  # nothing to do without glibc
            self._thread = threading.Thread(target=self._run, name="lifevault-heap-trim", daemon=True)
            self._thread.start()
        return self

    def touch(self) -> None:
        """A request ended."""
        self._last = time.monotonic()
        self._wake.set()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stop:
                return
            self._wake.clear()
            while (left := self._last + self.idle_s - time.monotonic()) > 0:  # wait out the burst
                if self._wake.wait(left) and self._stop:
                    return
                self._wake.clear()
            if self._trim():
                self.trims += 1
