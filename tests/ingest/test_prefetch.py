from __future__ import annotations

import threading

import pytest

from ingest.prefetch import ahead


def test_items_and_the_return_value_come_through_in_order_from_another_thread():
    threads = set()

    def source():
        for i in range(5):
            threads.add(threading.current_thread().name)
            yield i
        return {"skipped": 2}

    stream = ahead(source())
    got = []
    with pytest.raises(StopIteration) as stop:
        while True:
            got.append(next(stream))
    assert got == [0, 1, 2, 3, 4]
    assert stop.value.value == {"skipped": 2}
    assert threads == {"ingest-parse"}


def test_an_error_in_the_source_is_raised_in_the_caller_after_the_items_before_it():
    def source():
        yield 1
        raise ValueError("bad file")

    stream = ahead(source())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="bad file"):
        next(stream)


def test_a_caller_that_stops_early_stops_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = ahead(source())
    assert next(stream) == 0
    stream.close()
    assert closed.wait(5)


def test_the_producer_parses_one_batch_ahead_of_the_caller_and_no_more():
    started = []

    def source():
        for i in range(6):
            started.append(i)
            yield i

    stream = ahead(source())
    assert next(stream) == 0
    threading.Event().wait(0.3)  # time for the producer to run ahead as far as it may
    assert started == [0, 1]  # the caller holds 0; 1 is parsed ahead; 2 waits until the caller is done with 0
    assert next(stream) == 1
    threading.Event().wait(0.3)
    assert started == [0, 1, 2]
    assert list(stream) == [2, 3, 4, 5]
