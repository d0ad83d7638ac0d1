"""The report's reads: the first rows of a file across many row groups equal a full
sort, and the calls with talk spurts chosen a row group at a time are the earliest."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.output.reportdir import T0, call, stream
from voipscope.output.call_records import streams_to_batch
from voipscope.output.report.data import Limits, ReportData, _spurts
from voipscope.output.report.query import first_rows


@pytest.mark.parametrize("where", [None, pl.col("kind") == "b"])
def test_first_rows_across_row_groups_equal_a_full_sort(tmp_path: Path, where) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    n = 500
    table = pa.table(
        {
            "start": [rng.choice([None, *range(40)]) for _ in range(n)],  # ties and nulls
            "loss": [rng.random() for _ in range(n)],
            "kind": [rng.choice("ab") for _ in range(n)],
            "nested": [[{"x": i}] for i in range(n)],
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=17)
    frame = pl.read_parquet(path).with_row_index("_row")
    if where is not None:
        frame = frame.filter(where)
    want = (
        frame.sort(["start", "loss", "_row"], descending=[False, True, False], nulls_last=True)
        .head(60)
        .drop("_row")
        .to_dicts()
    )
    got = first_rows(path, ["start", "loss"], 60, where, [False, True])
    assert got == want
    assert first_rows(path, ["start"], 5, None, None, ["kind"])[0].keys() == {"kind"}
    assert first_rows(path, ["start"], 0) == []


def test_earliest_calls_with_talk_spurts_over_row_groups(tmp_path: Path) -> None:
    calls = [
        call(
            n,
            streams=[
                stream(first_seen=T0 + (n * 37) % 101, talk_spurts=[[T0, T0 + 1]]),
                stream(first_seen=T0, talk_spurts=[]),
            ],
        )
        for n in range(101)
    ]
    path = tmp_path / "streams.parquet"
    pq.write_table(pa.Table.from_batches([streams_to_batch(calls)]), path, row_group_size=5)
    calls_path = tmp_path / "calls.parquet"
    pq.write_table(
        pa.table(
            {
                "call_id": ["call-0"],
                "kind": ["call"],
                "caller": ["sip:a@x"],
                "callee": [None],
                "caller_ip": [None],
                "callee_ip": ["10.0.0.9"],
            }
        ),
        calls_path,
    )
    data = ReportData(generated_at=None, summary={})  # type: ignore[arg-type]
    _spurts(data, path, calls_path, Limits(spurt_calls=3))
    assert data.spurt_calls_total == 101
    # (n * 37) % 101 is 0, 1, 2 for n = 0, 71, 41 (37 * 71 = 26 * 101 + 1).
    assert [c.call_id for c in data.spurt_calls] == ["call-0", "call-71", "call-41"]
    assert data.spurt_calls[0].title == "sip:a@x → 10.0.0.9"
    assert all(len(c.streams) == 1 and c.streams[0]["talk_spurts"] for c in data.spurt_calls)
