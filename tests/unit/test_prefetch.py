from __future__ import annotations

import threading

import pytest

from voipscope.prefetch import prefetch


def test_yields_everything_in_order_from_another_thread():
    threads: set[str] = set()

    def source():
        for i in range(100):
            threads.add(threading.current_thread().name)
            yield i

    assert list(prefetch(source(), depth=2)) == list(range(100))
    assert threads == {"voipscope-prefetch"}


def test_depth_zero_runs_inline():
    def source():
        yield threading.current_thread().name

    assert list(prefetch(source(), depth=0)) == [threading.current_thread().name]


def test_exception_reaches_the_consumer_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise ValueError("boom at 3")

    got = []
    with pytest.raises(ValueError, match="boom at 3"):
        for item in prefetch(source(), depth=4):
            got.append(item)
    assert got == [1, 2]


def test_consumer_stopping_early_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(10_000)
        finally:
            closed.set()

    gen = prefetch(source(), depth=2)
    assert next(gen) == 0
    gen.close()
    assert closed.wait(5)
