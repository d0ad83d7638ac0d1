from voipscope.bounded import BucketRate, CappedTable, SlidingCount, SlidingDistinct


def test_capped_table_evicts_least_recent_and_counts() -> None:
    table: CappedTable[int, list[int]] = CappedTable(3, list)
    for key in (1, 2, 3):
        table.get(key)
    table.get(1)  # 1 is now the most recent
    table.get(4)
    assert table.peek(2) is None and table.peek(1) is not None
    assert len(table) == 3 and table.overflow == 1


def test_sliding_distinct_expires_and_caps() -> None:
    seen: SlidingDistinct[str] = SlidingDistinct(window_s=10.0, max_items=3)
    assert seen.add(0.0, "a") == 1
    assert seen.add(1.0, "b") == 2
    assert seen.add(1.5, "a") == 2  # again: not a new item
    assert seen.add(11.2, "c") == 2  # "b" (1.0) left the window, "a" (1.5) stays
    assert seen.add(11.4, "d") == 3
    assert seen.add(11.45, "e") == 3 and seen.overflow == 1  # "a" forgotten: cap
    assert "a" not in seen


def test_sliding_count_threshold_within_window() -> None:
    count = SlidingCount(window_s=10.0, threshold=3)
    assert not count.add(0.0)
    assert not count.add(5.0)
    assert count.add(10.0)  # three within exactly 10 s
    assert not count.add(20.5)  # 5.0, 10.0, 20.5 span 15.5 s
    assert count.in_window(20.5) == 1


def test_bucket_rate_is_bounded_by_the_window() -> None:
    rate = BucketRate(window_s=10.0)
    for i in range(10_000):
        rate.add(i * 0.01)  # 100/s for 100 s
    assert len(rate) <= 11
    assert 1000 <= rate.add(100.0) <= 1100


def test_capped_table_renews_a_stale_entry() -> None:
    table: CappedTable[str, list[int]] = CappedTable(2, list)
    first, old = table.get_renewed("a", lambda v: len(v) > 1)
    assert old is None and first == []
    first.extend([1, 2])
    again, old = table.get_renewed("a", lambda v: len(v) > 5)
    assert again is first and old is None  # not stale: the same entry
    fresh, old = table.get_renewed("a", lambda v: len(v) > 1)
    assert old is first and fresh == [] and table.peek("a") is fresh
    assert len(table) == 1 and table.overflow == 0
