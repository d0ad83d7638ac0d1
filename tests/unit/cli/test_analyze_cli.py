"""`voipscope analyze`: every record kind written to one directory in one pass."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from voipscope.cli.main import app, sample_path
from voipscope.output.schema import CALL_SCHEMA, FLAT_STREAM_SCHEMA, FLOW_SCHEMA

runner = CliRunner()


def test_analyze_writes_every_record_kind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", sample_path(), "-o", str(out)])
    assert result.exit_code == 0, result.output
    flows = pq.read_table(out / "flows.parquet")
    calls = pq.read_table(out / "calls.parquet")
    streams = pq.read_table(out / "streams.parquet")
    assert flows.schema.equals(FLOW_SCHEMA) and flows.num_rows == 6
    assert calls.schema.equals(CALL_SCHEMA) and calls.num_rows == 13
    assert streams.schema.equals(FLAT_STREAM_SCHEMA) and streams.num_rows >= 1
    # Each flat stream names a call that is in calls.parquet.
    assert set(streams.column("call_id").to_pylist()) <= set(calls.column("call_id").to_pylist())
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["flows"], summary["calls"], summary["alerts"]) == (6, 13, 0)
    assert (out / "alerts.jsonl").read_text() == ""
    assert "6 flows, 13 calls and registrations" in result.stdout


def test_analyze_fail_on_and_detector_keys(tmp_path: Path) -> None:
    # A strict brute-force threshold makes the sample's failed digest attempts an alert.
    args = ["analyze", sample_path(), "-o", str(tmp_path / "o"),
            "-c", "detect.sip_bruteforce.min_failures=2"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    alerts = (tmp_path / "o" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(a)["kind"] for a in alerts] == ["sip-bruteforce"]
    assert runner.invoke(app, [*args, "--fail-on", "high"]).exit_code == 4
    assert runner.invoke(app, ["analyze", sample_path(), "--fail-on", "bad"]).exit_code == 2
