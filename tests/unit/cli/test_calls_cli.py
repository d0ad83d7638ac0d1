"""`voipscope calls`: the Call record contract in every format, and the console table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from voipscope.cli.main import app, sample_path
from voipscope.output.schema import CALL_SCHEMA, STREAM_FIELDS

runner = CliRunner()
CAPTURES = Path(__file__).resolve().parents[4] / "shared" / "captures" / "ndpi"
CONTRACT = ("call_id", "protocol", "app", "caller", "callee", "start", "answer", "end",
            "state", "final_code", "redirected_to", "streams", "signaling_flows",
            "media_flows")  # fmt: skip
STREAM_CONTRACT = ("src_ip", "src_port", "dst_ip", "dst_port", "ssrc", "payload_type",
                   "codec", "packets", "lost", "loss_pct", "duplicates", "out_of_order",
                   "jitter_ms", "max_delta_ms", "mos", "talk_spurts")  # fmt: skip


def test_jsonl_has_the_call_record_contract() -> None:
    result = runner.invoke(app, ["calls", "--sample", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 13
    assert all(set(CONTRACT) <= set(r) for r in records)
    streams = [s for r in records for s in r["streams"]]
    assert streams and all(set(STREAM_CONTRACT) <= set(s) for s in streams)
    assert {f.name for f in STREAM_FIELDS} >= set(STREAM_CONTRACT)


def test_csv_parquet_and_table(tmp_path) -> None:
    out = tmp_path / "calls.parquet"
    assert runner.invoke(app, ["calls", sample_path(), "-o", str(out)]).exit_code == 0
    table = pq.read_table(out)
    assert table.schema.equals(CALL_SCHEMA) and table.num_rows == 13
    csv = tmp_path / "calls.csv"
    assert runner.invoke(app, ["calls", sample_path(), "-o", str(csv)]).exit_code == 0
    header, *rows = csv.read_text().splitlines()
    assert header.startswith('"call_id"') and len(rows) == 13
    shown = runner.invoke(app, ["calls", sample_path(), "-f", "table"])
    assert shown.exit_code == 0
    assert "cancelled" in shown.stdout and "13 calls and registrations" in shown.stdout
    assert "PCMA/8000" in shown.stdout  # the early-media stream under its call


def test_unreadable_input_exits_3(tmp_path) -> None:
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"not a capture at all")
    result = runner.invoke(app, ["calls", str(bad)])
    assert result.exit_code == 3


def test_calls_settings_are_configuration_keys() -> None:
    # A zero join gap and no out-of-dialog records still give the sample's 13 records;
    # an unknown key is a usage error.
    ok = runner.invoke(app, ["calls", "--sample", "-f", "jsonl", "-c", "calls.app_join_gap_s=0",
                             "-c", "answered_idle_s=10"])  # fmt: skip
    assert ok.exit_code == 0 and len(ok.stdout.splitlines()) == 13
    bad = runner.invoke(app, ["calls", "--sample", "-c", "calls.no_such_key=1"])
    assert bad.exit_code == 2


def test_the_table_flags_a_media_outage_under_its_stream() -> None:
    fax = CAPTURES / "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"
    if not fax.exists():
        pytest.skip("FAX capture not in the shared captures")
    shown = runner.invoke(app, ["calls", str(fax), "-f", "table"], env={"COLUMNS": "160"})
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    (k,) = [i for i, line in enumerate(lines) if "media outage" in line]
    assert "10.35.60.100:15580" in lines[k - 1]  # right under the stream it struck
    assert "media outage 34.3 s" in lines[k] and "09:22:47.953" in lines[k]
    assert "1712 lost" in lines[k]
    # The B2BUA's other leg, answered with two-way SDP and no media in the capture.
    (m,) = [i for i, line in enumerate(lines) if "⚠ no media seen" in line]
    assert "answered" in lines[m - 1] and "09:22:38.657" in lines[m - 1]
    # A clean call shows no such line.
    clean = runner.invoke(app, ["calls", sample_path(), "-f", "table"], env={"COLUMNS": "160"})
    assert "media outage" not in clean.stdout
