"""The `voipscope` command: formats, exit statuses, one-line errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests import pcapbuild as pb
from voipscope.cli.main import app, sample_path

runner = CliRunner()


def call(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def capture(write_pcap) -> Path:
    return write_pcap(
        [
            pb.udp_packet(1.0, "10.0.0.1", 5060, "10.0.0.2", 5060, b"OPTIONS"),
            pb.udp_packet(1.5, "10.0.0.2", 5060, "10.0.0.1", 5060, b"SIP/2.0 200 OK"),
            pb.tcp_packet(2.0, "10.0.0.1", 40000, "10.0.0.3", 5061, pb.TCP_SYN),
        ]
    )


def test_version():
    result = call("--version")
    assert result.exit_code == 0 and result.stdout.startswith("voipscope ")


def test_sample_is_bundled_and_readable():
    assert Path(sample_path()).stat().st_size < 200_000
    result = call("flows", "--sample", "--format", "jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 0 and len(rows) == 6
    assert sum(r["src2dst_packets"] + r["dst2src_packets"] for r in rows) == 112


def test_jsonl_has_the_flow_record_contract(capture):
    result = call("flows", str(capture), "--format", "jsonl")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    contract = [
        "flow_id",
        "proto",
        "src_ip",
        "src_port",
        "dst_ip",
        "dst_port",
        "first_seen",
        "last_seen",
        "src2dst_packets",
        "dst2src_packets",
        "src2dst_bytes",
        "dst2src_bytes",
        "category",
        "protocol",
        "app",
        "media",
        "confidence",
        "evidence",
        "detected_at_packet",
        "call_id",
    ]
    assert all(set(contract) <= set(r) for r in rows)
    assert [(r["proto"], r["dst_port"]) for r in rows] == [("udp", 5060), ("tcp", 5061)]


def test_csv_and_parquet_by_suffix(capture, tmp_path):
    out = tmp_path / "f.parquet"
    assert call("flows", str(capture), "-o", str(out)).exit_code == 0
    table = pq.read_table(out)
    assert table.num_rows == 2 and table["src2dst_packets"].to_pylist() == [1, 1]
    csv_out = tmp_path / "f.csv"
    assert call("flows", str(capture), "-o", str(csv_out)).exit_code == 0
    lines = csv_out.read_text().splitlines()
    assert lines[0].startswith('"flow_id"') and len(lines) == 3


def test_table_format(capture):
    result = call("flows", str(capture), "--format", "table")
    assert result.exit_code == 0
    assert "10.0.0.1:5060" in result.stdout and "2 flows" in result.stdout


def test_gzip_input(capture, tmp_path):
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(capture.read_bytes()))
    result = call("flows", str(gz), "--format", "jsonl")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty file"),
        (b"hello, this is not a capture at all", "not a pcap or pcapng capture"),
        (
            pb.pcap([pb.udp_packet(0, "10.0.0.1", 1, "10.0.0.2", 2)], linktype=147),
            "unsupported link type 147",
        ),
    ],
)
def test_unreadable_inputs_exit_3_with_one_line(tmp_path, content, message):
    path = tmp_path / "input.pcap"
    if content is not None:
        path.write_bytes(content)
    result = call("flows", str(path))
    assert result.exit_code == 3
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.output


def test_truncated_capture_gives_flows_before_cut_and_warns(capture, tmp_path):
    data = capture.read_bytes()
    cut = len(data) - 10  # inside the last packet
    truncated = tmp_path / "cut.pcap"
    truncated.write_bytes(data[:cut])
    result = call("flows", str(truncated), "--format", "jsonl")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["src2dst_packets"] + rows[0]["dst2src_packets"] == 2
    last_record = (
        len(data) - len(pb.tcp_packet(2.0, "10.0.0.1", 40000, "10.0.0.3", 5061, 2).data) - 16
    )
    assert f"truncated at byte offset {last_record}" in result.stderr


def test_usage_errors_exit_2(capture):
    assert call("flows", str(capture), "--format", "xml").exit_code == 2
    assert call("flows", str(capture), "-c", "flows.no_such_key=1").exit_code == 2
    assert call("flows", str(capture), "-c", "flows.idle_timeout_s=soon").exit_code == 2
    assert call("flows").exit_code == 2


def test_config_option_applies(write_pcap):
    path = write_pcap([pb.udp_packet(t, "10.0.0.1", 1, "10.0.0.2", 2) for t in (0, 5, 10)])
    result = call("flows", str(path), "-f", "jsonl", "-c", "flows.idle_timeout_s=4")
    assert len(result.stdout.splitlines()) == 3


def test_stdin_and_exit_status_in_a_real_process(capture):
    """The installed entry point as a user runs it: stdin, piping, exit codes."""
    done = subprocess.run(
        [sys.executable, "-m", "voipscope", "flows", "-", "--stats"],
        input=capture.read_bytes(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 2 and rows[0]["capture"] == "-"
    stats = json.loads(done.stderr)
    assert stats["packets"] == 3 and stats["flows"] == 2
    missing = subprocess.run(
        [sys.executable, "-m", "voipscope", "flows", "/nonexistent/x.pcap"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 3
    assert missing.stderr.strip() == "voipscope: error: /nonexistent/x.pcap: no such file"


def test_gzip_on_a_pipe_that_delivers_one_byte_first(capture):
    """The gzip magic split across two pipe reads must still be recognised."""
    data = gzip.compress(capture.read_bytes())
    proc = subprocess.Popen(
        [sys.executable, "-m", "voipscope", "flows", "-", "-f", "jsonl"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(data[:1])
    proc.stdin.flush()
    time.sleep(0.3)
    out, err = proc.communicate(data[1:], timeout=120)
    assert proc.returncode == 0, err
    assert len(out.splitlines()) == 2


def test_sample_flows_carry_verdicts_and_anomalies_go_to_their_own_file(tmp_path):
    anomalies = tmp_path / "anomalies.jsonl"
    result = call("flows", "--sample", "-f", "jsonl", "--anomalies", str(anomalies))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    verdicts = {(r["category"], r["protocol"]) for r in rows}
    assert ("voip-signaling", "SIP") in verdicts and ("voip-media", "RTP") in verdicts
    # Each anomaly record (if the sample has any) names its flow and what was wrong.
    records = [json.loads(line) for line in anomalies.read_text().splitlines()]
    assert all(set(r) == {"ts", "name", "flow_id", "src_ip", "dst_ip", "detail"} for r in records)
    assert all(r["name"] and r["detail"] for r in records)


@pytest.mark.parametrize("command", ["flows", "calls", "alerts"])
def test_anomaly_records_name_the_dissector_and_the_flow(tmp_path, write_pcap, command):
    """Every command that reads packets can write the run's anomalies beside its records."""
    bad = (
        b"INVITE sip:x SIP/2.0\r\nVia: a\r\nFrom: b\r\nTo: c\r\nCall-ID: d\r\n"
        b"CSeq: 1 INVITE\r\n\r\n"
    )
    packets = [
        pb.udp_packet(0.0, "10.0.0.1", 5060, "10.0.0.2", 5060, bad),
        pb.udp_packet(0.1, "10.0.0.1", 5060, "10.0.0.2", 5060, b"INVITE broken\r\n"),
    ]
    anomalies = tmp_path / "a.csv"
    result = call(command, str(write_pcap(packets)), "-f", "jsonl", "--anomalies", str(anomalies))
    assert result.exit_code == 0, result.output
    text = anomalies.read_text()
    assert "sip_malformed" in text and "10.0.0.1" in text
