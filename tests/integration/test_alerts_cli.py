"""`voipscope alerts`: the Alert record contract in every format, the console table, and
exit status 4 for --fail-on (DESIGN §3)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from tests.integration.test_alerts import SCANNER, sweep_capture
from voipscope.cli.main import app
from voipscope.output.schema import ALERT_SCHEMA

runner = CliRunner()
CONTRACT = ("ts", "kind", "severity", "src_ip", "dst_ip", "summary", "evidence", "data")


def test_jsonl_has_the_alert_record_contract(tmp_path: Path) -> None:
    capture = sweep_capture(tmp_path / "sweep.pcap")
    result = runner.invoke(app, ["alerts", str(capture), "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert set(CONTRACT) <= set(record)
    assert record["kind"] == "sip-scan" and record["src_ip"] == SCANNER
    assert isinstance(record["data"], dict) and record["data"]["hosts"] == 15


def test_csv_parquet_and_table(tmp_path: Path) -> None:
    capture = str(sweep_capture(tmp_path / "sweep.pcap"))
    out = tmp_path / "alerts.parquet"
    assert runner.invoke(app, ["alerts", capture, "-o", str(out)]).exit_code == 0
    table = pq.read_table(out)
    assert table.schema.equals(ALERT_SCHEMA) and table.num_rows == 1
    out_csv = tmp_path / "alerts.csv"
    assert runner.invoke(app, ["alerts", capture, "-o", str(out_csv)]).exit_code == 0
    (row,) = list(csv.DictReader(out_csv.open()))
    assert row["kind"] == "sip-scan" and json.loads(row["data"])["hosts"] == 15
    result = runner.invoke(app, ["alerts", capture, "-f", "table"])
    assert result.exit_code == 0
    assert "sip-scan" in result.stdout and SCANNER in result.stdout
    assert "1 alerts" in result.stdout


def test_fail_on_gives_exit_status_4_at_or_above(tmp_path: Path) -> None:
    capture = str(sweep_capture(tmp_path / "sweep.pcap"))  # one medium alert
    for floor, code in (("low", 4), ("medium", 4), ("high", 0)):
        result = runner.invoke(app, ["alerts", capture, "-f", "jsonl", "--fail-on", floor])
        assert result.exit_code == code, (floor, result.output)
    assert runner.invoke(app, ["alerts", capture, "--fail-on", "severe"]).exit_code == 2


def test_no_alerts_exit_0_even_with_fail_on(tmp_path: Path) -> None:
    result = runner.invoke(app, ["alerts", "--sample", "-f", "jsonl", "--fail-on", "low"])
    assert result.exit_code == 0 and result.stdout == ""


def test_detector_thresholds_are_configuration_keys() -> None:
    """`-c detect.<detector>.<field>`: sip.pcap's softphone failing digest twice for the
    same account is no attack at the default (10 refusals), one at a threshold of 2."""
    from pathlib import Path

    from typer.testing import CliRunner

    from voipscope.cli.main import app

    sip = Path(__file__).resolve().parents[3] / "shared" / "captures" / "ndpi" / "sip.pcap"
    runner = CliRunner()
    default = runner.invoke(app, ["alerts", str(sip), "-f", "jsonl"])
    assert default.exit_code == 0 and default.stdout == ""
    strict = runner.invoke(
        app, ["alerts", str(sip), "-f", "jsonl", "-c", "detect.sip_bruteforce.min_failures=2"]
    )
    assert strict.exit_code == 0 and '"kind":"sip-bruteforce"' in strict.stdout
    unknown = runner.invoke(app, ["alerts", str(sip), "-c", "detect.sip_scan.nope=1"])
    assert unknown.exit_code == 2
