"""Questions the report asks of the record files, each answered without holding a
file: polars aggregates only the flat columns asked for, nested columns (a call's
streams, a stream's talk spurts) are read one row group at a time with pyarrow, tables
get their first rows in two passes, and JSONL is read a line at a time."""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from voipscope.output.report.svg import nice_step

UNKNOWN = "unknown"
MAX_BINS = 60  # bars of a histogram over capture time
MAX_SERIES = 8  # stacked colours of one histogram; the rest sum into "others"
# A capture may hold a few packets from a clock far off (a device at 1970 before NTP):
# drawn over the whole span, the charts would be one bar. A group of at most this many
# flows (or this share of them), separated from the rest by a gap this many times wider
# than the rest's own span (and than OUTLIER_MIN_SPAN_S), is left out of the charts' time
# range, and the report says so; the tables and counts keep them.
OUTLIER_MAX_FLOWS, OUTLIER_MAX_SHARE = 5, 0.01
OUTLIER_GAP_RATIO, OUTLIER_MIN_SPAN_S = 10.0, 60.0


@dataclass(slots=True)
class Histogram:
    t0: float
    bin_s: float
    series: list[tuple[str, list[int]]]


def count_by(lf: pl.LazyFrame, expr: pl.Expr) -> Counter[str]:
    """Rows per value of ``expr`` (null as "unknown") over the whole file."""
    df = (lf.select(expr.fill_null(UNKNOWN).alias("k")).group_by("k").len()).collect()
    return Counter(dict(zip(df["k"].to_list(), df["len"].to_list(), strict=True)))


def row_groups(path: Path, columns: Sequence[str], wanted: Sequence[int] | None = None
               ) -> Iterator[tuple[int, pa.Table]]:  # fmt: skip
    """(index of its first row in the file, table) for each row group of ``path`` (only
    those holding one of the ``wanted`` sorted row indices, when given), one at a time:
    memory is bounded by a row group (analyze writes 16,384 rows each), also for nested
    columns, which polars would decode whole."""
    with pq.ParquetFile(path) as file:
        base = 0
        for group in range(file.metadata.num_row_groups):
            size = file.metadata.row_group(group).num_rows
            if wanted is None or bisect.bisect_left(wanted, base) < bisect.bisect_left(
                wanted, base + size
            ):
                # One thread: decoding the columns in parallel raises the peak, not the
                # report's speed (a few row groups at most).
                yield base, file.read_row_group(group, columns=list(columns), use_threads=False)
            base += size


def first_rows(
    path: Path,
    order: list[str],
    n: int,
    where: pl.Expr | None = None,
    descending: list[bool] | None = None,
    columns: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The first ``n`` rows of ``path`` matching ``where``, by ``order`` (nulls last,
    ties in file order). Polars sorts only the key columns; then only the row groups
    holding the chosen rows are read, one at a time (a file of 100k calls with their
    nested streams never sits in memory whole)."""
    if n <= 0:
        return []
    keys = [*order, "_row"]
    desc = [*(descending or [False] * len(order)), False]
    lf = pl.scan_parquet(path).with_row_index("_row")  # the row's index in the file
    if where is not None:
        lf = lf.filter(where)
    chosen = (
        (lf.select(keys).sort(keys, descending=desc, nulls_last=True).head(n))
        .collect()["_row"]
        .to_list()
    )
    if not chosen:
        return []
    rank = {row: i for i, row in enumerate(chosen)}
    wanted = sorted(chosen)
    rows: list[dict[str, Any]] = [{} for _ in chosen]
    names = list(columns) if columns else pq.read_schema(path).names
    for base, group in row_groups(path, names, wanted):
        lo, hi = bisect.bisect_left(wanted, base), bisect.bisect_left(wanted, base + group.num_rows)
        picked = group.take(pa.array([w - base for w in wanted[lo:hi]], pa.int64()))
        for row, record in zip(wanted[lo:hi], picked.to_pylist(), strict=True):
            rows[rank[row]] = record
    return rows


def top(counts: Counter[str], bars: int, noun: str) -> list[tuple[str, int]]:
    """The ``bars - 1`` largest counts and one bar summing the rest (when there is a rest)."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) <= bars:
        return ranked
    rest = ranked[bars - 1 :]
    return [*ranked[: bars - 1], (f"{len(rest)} other {noun}", sum(n for _, n in rest))]


def histogram(
    lf: pl.LazyFrame,
    time_col: str,
    group: pl.Expr,
    span: tuple[float, float],
    order: tuple[str, ...] = (),
) -> Histogram:
    """Rows per time bin and group, bins of a nice clock step covering ``span``."""
    bin_s = nice_step(max(span[1] - span[0], 1e-3), MAX_BINS)
    t0 = math.floor(span[0] / bin_s) * bin_s
    bins = max(1, math.floor((span[1] - t0) / bin_s) + 1)
    df = (
        lf.filter(pl.col(time_col).is_between(span[0], span[1]))
        .select(
            ((pl.col(time_col) - t0) / bin_s).floor().cast(pl.Int64).clip(0, bins - 1).alias("b"),
            group.fill_null(UNKNOWN).alias("g"),
        )
        .group_by("b", "g")
        .len()
        .collect()
    )
    totals = Counter[str]()
    for g, n in zip(df["g"].to_list(), df["len"].to_list(), strict=True):
        totals[g] += n
    named = [g for g in order if totals[g]] + sorted(
        (g for g in totals if g not in order), key=lambda g: (-totals[g], g)
    )
    kept = named[:MAX_SERIES] if len(named) <= MAX_SERIES else named[: MAX_SERIES - 1]
    others = "others" if len(kept) < len(named) else None
    series = {g: [0] * bins for g in [*kept, *([others] if others else [])]}
    for b, g, n in zip(df["b"].to_list(), df["g"].to_list(), df["len"].to_list(), strict=True):
        series[g if g in kept else others or g][b] += n
    return Histogram(t0, bin_s, list(series.items()))


def chart_span(lf: pl.LazyFrame, total: int) -> tuple[tuple[float, float], int]:
    """The time range the charts draw, and how many flows start outside it: the whole
    span unless a few flows sit far from all the others (OUTLIER_*). Works on the
    distinct seconds of first_seen, so its memory is bounded by the capture's duration
    in seconds, not by its flows."""
    per_second = (
        lf.filter(pl.col("first_seen").is_not_null())
        .group_by(pl.col("first_seen").floor().alias("s"))
        .len()
        .sort("s")
    ).collect()
    seconds, counts = per_second["s"].to_list(), per_second["len"].to_list()
    lo, hi = 0, len(seconds) - 1
    small = max(OUTLIER_MAX_FLOWS, int(total * OUTLIER_MAX_SHARE))
    for _ in range(4):  # a few stray groups at most; each pass drops one
        if hi - lo < 1:
            break
        gaps = [(seconds[i + 1] - seconds[i], i) for i in range(lo, hi)]
        gap, at = max(gaps)
        if gap <= OUTLIER_GAP_RATIO * max(seconds[hi] - seconds[lo] - gap, OUTLIER_MIN_SPAN_S):
            break
        left, right = sum(counts[lo : at + 1]), sum(counts[at + 1 : hi + 1])
        if min(left, right) > small:
            break
        lo, hi = (at + 1, hi) if left <= right else (lo, at)
    start, stop = seconds[lo], seconds[hi] + 1.0
    row = (
        (
            lf.filter(pl.col("first_seen").is_between(start, stop, closed="left")).select(
                pl.len(), pl.col("first_seen").min(), pl.col("last_seen").max()
            )
        )
        .collect()
        .row(0)
    )
    return (float(row[1]), float(max(row[2] or row[1], row[1]))), total - int(row[0])


def lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number from 1, record) of a JSONL file; a missing file is empty."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, json.loads(line)
