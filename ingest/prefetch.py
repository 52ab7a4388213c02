"""Run a source's batch generator one batch ahead, in a thread, while the caller keys and writes the last one.

The heavy parts of parsing (the C Records.json reader, polars, numpy) and of writing (DuckDB) release the GIL, so
on two cores the parse of batch n+1 overlaps the write of batch n. Only the producer thread touches the
generator; only the caller touches the vault. Memory: the producer starts on batch n+1+depth only once
the caller is done with batch n (it asks for the next one), so at most 1 + depth batches are alive:
the caller's and the ones parsed ahead (a queue alone would hold one more: the batch waiting in it while
the producer parses the one after). Errors are values as before: an exception in the source is
re-raised in the caller, at the batch where it happened; if the caller stops early (an error while
writing, Ctrl-C), the producer stops at its next batch and the generator is closed in its own thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from typing import Any, TypeVar

T = TypeVar("T")
_WAIT = 0.1  # seconds between checks that the consumer is still there


class _Done:
    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error


def ahead(gen: Generator[T, None, Any], *, depth: int = 1) -> Generator[T, None, Any]:
    """Yield what `gen` yields, produced in a background thread; return what it returns."""
    q: queue.Queue[Any] = queue.Queue()
    slots = threading.Semaphore(1 + depth)  # batches alive: the caller's + those parsed ahead
    stop = threading.Event()

    def wait_slot() -> bool:
        while not stop.is_set():
            if slots.acquire(timeout=_WAIT):
                return True
        return False

    def produce() -> None:
        try:
            while wait_slot():
                try:
                    item = next(gen)
                except StopIteration as e:
                    q.put(_Done(e.value))
                    return
                q.put(item)
                del item  # not held while waiting for the next slot
        except BaseException as e:  # noqa: BLE001 -- handed to the consumer, which re-raises it
            q.put(_Done(error=e))
        finally:
            gen.close()

    worker = threading.Thread(target=produce, name="ingest-parse", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                return item.value
            yield item
            del item  # the caller is done with it: the producer may start another
            slots.release()
    finally:
        stop.set()
        worker.join()
