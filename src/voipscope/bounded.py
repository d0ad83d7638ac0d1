"""Bounded per-key state for detectors and cross-flow tables (DESIGN §4: every
attacker-controlled count is capped, and overflowing a cap is counted, never a crash or
unbounded memory).

Keys are source addresses, targets are extensions or destinations: an attacker chooses
both, so every table here has a maximum size, evicts the least recently touched entry
when full, and counts what it evicted in ``overflow``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CappedTable(Generic[K, V]):
    """A dict of at most ``max_keys`` entries; the least recently used one goes first."""

    def __init__(self, max_keys: int, factory: Callable[[], V]) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._factory = factory
        self._items: OrderedDict[K, V] = OrderedDict()
        self.overflow = 0  # entries evicted because the table was full

    def get(self, key: K) -> V:
        """The entry for ``key``, created if new; it becomes the most recently used."""
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        if len(self._items) >= self.max_keys:
            self._items.popitem(last=False)
            self.overflow += 1
        value = self._factory()
        self._items[key] = value
        return value

    def put(self, key: K, value: V) -> None:
        """Set ``key`` to ``value`` (most recently used), evicting the oldest when full."""
        if key in self._items:
            self._items.move_to_end(key)
        elif len(self._items) >= self.max_keys:
            self._items.popitem(last=False)
            self.overflow += 1
        self._items[key] = value

    def get_renewed(self, key: K, stale: Callable[[V], bool]) -> tuple[V, V | None]:
        """The entry for ``key`` as ``get`` gives it, but created afresh when the one there
        is ``stale``; the stale one is returned beside it (None otherwise)."""
        found = self._items.get(key)
        if found is not None and stale(found):
            del self._items[key]
            return self.get(key), found
        return self.get(key), None

    def peek(self, key: K) -> V | None:
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def items(self) -> Iterator[tuple[K, V]]:
        return iter(list(self._items.items()))

    def __len__(self) -> int:
        return len(self._items)


class SlidingDistinct(Generic[K]):
    """Distinct items seen within the last ``window_s`` of capture time, at most
    ``max_items`` of them remembered (the oldest forgotten first, counted in ``overflow``).

    Items are kept in order of their latest sighting, so expiry pops from the front.
    """

    __slots__ = ("_last", "max_items", "overflow", "window_s")

    def __init__(self, window_s: float, max_items: int) -> None:
        self.window_s = window_s
        self.max_items = max_items
        self._last: OrderedDict[K, float] = OrderedDict()
        self.overflow = 0

    def add(self, ts_s: float, item: K) -> int:
        """Record ``item`` at ``ts_s``; returns how many distinct items the window holds."""
        last = self._last
        if item in last:
            last.move_to_end(item)
        elif len(last) >= self.max_items:
            last.popitem(last=False)
            self.overflow += 1
        last[item] = ts_s
        self.expire(ts_s)
        return len(last)

    def expire(self, now_s: float) -> None:
        last = self._last
        horizon = now_s - self.window_s
        while last:
            first = next(iter(last))
            if last[first] >= horizon:
                break
            del last[first]

    def items(self) -> list[K]:
        return list(self._last)

    def oldest_s(self) -> float | None:
        """The time of the least recently sighted item in the window (None: empty)."""
        return next(iter(self._last.values()), None)

    def __len__(self) -> int:
        return len(self._last)

    def __contains__(self, item: object) -> bool:
        return item in self._last


class SlidingCount:
    """Whether ``threshold`` events fell within ``window_s``: keeps only the times of the
    last ``threshold`` events, so its size is bounded by the threshold."""

    __slots__ = ("_times", "threshold", "total", "window_s")

    def __init__(self, window_s: float, threshold: int) -> None:
        self.window_s = window_s
        self.threshold = max(1, threshold)
        self._times: deque[float] = deque(maxlen=self.threshold)
        self.total = 0

    def add(self, ts_s: float) -> bool:
        """Count one event; True when the last ``threshold`` events span <= ``window_s``."""
        self._times.append(ts_s)
        self.total += 1
        return len(self._times) == self.threshold and ts_s - self._times[0] <= self.window_s

    def in_window(self, now_s: float) -> int:
        return sum(1 for t in self._times if now_s - t <= self.window_s)


def add_capped(items: list[V], value: V, cap: int) -> bool:
    """Append ``value`` unless present or the list is full; False when it did not fit."""
    if value in items:
        return True
    if len(items) >= cap:
        return False
    items.append(value)
    return True


class BucketRate:
    """Events within the last ``window_s``, counted in ``bucket_s`` buckets: memory is
    ``window_s / bucket_s`` pairs however fast the events come (a flood is fast)."""

    __slots__ = ("_buckets", "bucket_s", "total", "window_s")

    def __init__(self, window_s: float, bucket_s: float = 1.0) -> None:
        self.window_s = window_s
        self.bucket_s = bucket_s
        self._buckets: deque[list[float]] = deque()  # [bucket start, count]
        self.total = 0

    def add(self, ts_s: float, count: int = 1) -> int:
        """Count events at ``ts_s``; returns the events within the window ending there."""
        start = ts_s - ts_s % self.bucket_s
        buckets = self._buckets
        if buckets and buckets[-1][0] == start:
            buckets[-1][1] += count
        elif not buckets or start > buckets[-1][0]:
            buckets.append([start, count])
        else:  # a little out of order: count it in the newest bucket
            buckets[-1][1] += count
        self.total += count
        # Whole buckets only, those that began within the window: the count covers the
        # last window_s minus at most one bucket, so a rate errs low, never high.
        horizon = ts_s - self.window_s
        while buckets and buckets[0][0] < horizon:
            buckets.popleft()
        return int(sum(b[1] for b in buckets))

    @property
    def first_bucket_s(self) -> float | None:
        """Start of the oldest bucket still in the window (None before any event)."""
        return self._buckets[0][0] if self._buckets else None

    @property
    def last_bucket_s(self) -> float | None:
        """Start of the newest bucket (None before any event)."""
        return self._buckets[-1][0] if self._buckets else None

    def __len__(self) -> int:
        return len(self._buckets)
