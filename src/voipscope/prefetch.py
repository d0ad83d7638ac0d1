"""Run a generator one step ahead in a background thread.

The numba kernels release the GIL (``nogil=True``), so reading + decoding the next batch
overlaps with the flow table and the output of the current one: on two cores the run
takes about as long as its slowest half instead of the sum of both.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(source: Iterator[T], depth: int) -> Iterator[T]:
    """Yield what ``source`` yields, computing up to ``depth`` items ahead.

    Exceptions of ``source`` are raised in the consumer, at the point they occurred. If the
    consumer stops early, the producer stops too and ``source`` is closed.
    """
    if depth <= 0:
        yield from source
        return
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failure(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="voipscope-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
