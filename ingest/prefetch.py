"""Run a source's batch generator one batch ahead, in a thread, while the caller keys and writes the last one.

The heavy parts of parsing (polars' NDJSON reader, numpy) and of writing (DuckDB) release the GIL, so
on two cores the parse of batch n+1 overlaps the write of batch n. Only the producer thread touches the
generator; only the caller touches the vault. Memory: at most `depth` finished batches wait in the queue.
Errors are values as before: an exception in the source is re-raised in the caller, at the batch where
it happened; if the caller stops early (an error while writing, Ctrl-C), the producer stops at its next
batch and the generator is closed in its own thread.
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
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_WAIT)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration as e:
                    put(_Done(e.value))
                    return
                if not put(item):
                    return
        except BaseException as e:  # noqa: BLE001 -- handed to the consumer, which re-raises it
            put(_Done(error=e))
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
    finally:
        stop.set()
        worker.join()
