"""`voipscope analyze`: every record kind written to one directory in one pass."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from tests.reportread import read_report
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
    from voipscope._version import __version__

    assert summary["voipscope_version"] == __version__
    assert (out / "alerts.jsonl").read_text() == ""
    assert "6 flows, 13 calls and registrations" in result.stdout


def test_analyze_fail_on_and_detector_keys(tmp_path: Path) -> None:
    # A strict brute-force threshold makes the sample's failed digest attempts alerts: one
    # per episode (its three bursts of guesses are more than alert_quiet_s apart).
    args = ["analyze", sample_path(), "-o", str(tmp_path / "o"),
            "-c", "detect.sip_bruteforce.min_failures=2"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    alerts = (tmp_path / "o" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(a)["kind"] for a in alerts] == ["sip-bruteforce"] * 3
    assert runner.invoke(app, [*args, "--fail-on", "high"]).exit_code == 4
    assert runner.invoke(app, ["analyze", sample_path(), "--fail-on", "bad"]).exit_code == 2


def test_analyze_writes_the_report_and_no_report_skips_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, ["analyze", sample_path(), "-o", str(out)]).exit_code == 0
    assert (out / "report.html").stat().st_size > 0
    bare = tmp_path / "bare"
    result = runner.invoke(app, ["analyze", sample_path(), "-o", str(bare), "--no-report"])
    assert result.exit_code == 0 and "report:" not in result.stdout
    assert (bare / "flows.parquet").exists() and not (bare / "report.html").exists()


def test_zero_packet_capture_gives_a_report_saying_so(tmp_path: Path, write_pcap) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(write_pcap([])), "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = read_report(out / "report.html")
    assert "The inputs hold no packets: there is nothing to report." in report.text
    assert "Flows: 0 flows" in report.text and "No alert was raised." in report.text


def _names(out: Path) -> set[str]:
    return {p.name for p in out.iterdir()} - {"report.html"}


def test_report_failure_is_one_line_and_keeps_the_records(tmp_path: Path) -> None:
    good = tmp_path / "good"
    args = ["analyze", sample_path(), "-o", str(good), "--no-report"]
    assert runner.invoke(app, args).exit_code == 0
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)  # the report cannot replace a directory
    result = runner.invoke(app, ["analyze", sample_path(), "-o", str(out)])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"voipscope: error: {out / 'report.html'}: cannot write the report")
    assert line.endswith(f"the other records in {out}/ are written")
    assert _names(out) == _names(good)  # every record file, and no temporary file left
    assert pq.read_table(out / "flows.parquet").num_rows == 6
    assert json.loads((out / "summary.json").read_text())["calls"] == 13


def test_a_bug_in_the_report_is_one_line_without_traceback(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import voipscope.output.report as report

    def broken(*args: object, **kwargs: object) -> Path:
        raise KeyError("streams")

    monkeypatch.setattr(report, "write_report", broken)
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", sample_path(), "-o", str(out), "--fail-on", "low"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"voipscope: error: {out / 'report.html'}: the report failed (KeyError: 'streams'); "
        f"run with --traceback for details; the other records in {out}/ are written"
    ]
    assert (out / "calls.parquet").exists() and not (out / "report.html").exists()
    traced = runner.invoke(app, ["analyze", sample_path(), "-o", str(out), "--traceback"])
    assert traced.exit_code == 1 and "Traceback" in traced.stderr
