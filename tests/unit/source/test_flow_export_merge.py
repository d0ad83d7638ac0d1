"""Records -> bidirectional Flow records (record_pipeline.py): both directions and split
records merged, `src` the side that started first, streaming expiry, bounds, CLI/API."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.unit.source.test_flow_export import (
    IPFIX_V4_FIELDS,
    flowset,
    ipfix_flow_message,
    ipfix_message,
    ipfix_v4_data,
    template_record,
)
from voipscope.api import iter_flow_records, read_flow_records
from voipscope.cli.main import app
from voipscope.output.schema import FLOW_SCHEMA

T0_MS = 1_700_000_000_000


def write(tmp_path: Path, messages: list[bytes], name: str = "r.ipfix") -> str:
    path = tmp_path / name
    path.write_bytes(b"".join(messages))
    return str(path)


def rtp(src: str, dst: str, sport: int, dport: int, start_ms: int, seconds: float,
        size: int = 200, reason: int = 1) -> bytes:  # fmt: skip
    packets = int(seconds * 50) + 1
    return ipfix_v4_data(src, dst, sport, dport, packets, packets * size, start_ms,
                         start_ms + int(seconds * 1000), reason=reason)  # fmt: skip


def test_two_directions_become_one_flow_src_started_first(tmp_path: Path) -> None:
    # The callee's direction is exported first but began 300 ms later.
    records = [
        rtp("10.0.0.2", "10.0.0.1", 6000, 4000, T0_MS + 300, 20.0),
        rtp("10.0.0.1", "10.0.0.2", 4000, 6000, T0_MS, 20.0),
    ]
    table = read_flow_records(write(tmp_path, [ipfix_flow_message(records)]))
    assert table.schema.equals(FLOW_SCHEMA, check_metadata=False)
    (flow,) = table.to_pylist()
    assert (flow["src_ip"], flow["src_port"], flow["dst_port"]) == ("10.0.0.1", 4000, 6000)
    assert (flow["src2dst_packets"], flow["dst2src_packets"]) == (1001, 1001)
    assert (flow["src2dst_bytes"], flow["first_seen"]) == (200_200, T0_MS / 1000)
    assert (flow["category"], flow["media"], flow["detected_at_packet"]) == (
        "voip-media", "audio", None,
    )  # fmt: skip
    stats = json.loads(table.schema.metadata[b"voipscope.stats"])
    assert stats["export"]["flow_records"] == 2 and stats["flows"] == 1


def test_records_split_by_active_timeout_merge_and_a_long_gap_splits(tmp_path: Path) -> None:
    a = rtp("10.0.0.1", "10.0.0.2", 4000, 6000, T0_MS, 60.0, reason=2)
    b = rtp("10.0.0.1", "10.0.0.2", 4000, 6000, T0_MS + 60_020, 30.0)
    later = rtp("10.0.0.1", "10.0.0.2", 4000, 6000, T0_MS + 400_000, 5.0)
    msgs = [ipfix_flow_message([a], seq=0), ipfix_flow_message([b], seq=1),
            ipfix_flow_message([later], seq=2)]  # fmt: skip
    flows = read_flow_records(write(tmp_path, msgs)).to_pylist()
    assert [f["src2dst_packets"] for f in flows] == [3001 + 1501, 251]
    assert flows[0]["end_reason"] == "idle"  # the last record's reason


def test_biflow_records_fill_both_directions(tmp_path: Path) -> None:
    fields = [*IPFIX_V4_FIELDS, (2, 8, 29305), (1, 8, 29305)]
    body = rtp("10.0.0.1", "10.0.0.2", 4000, 6000, T0_MS, 10.0) + struct.pack("!QQ", 480, 96_000)
    msg = ipfix_message([flowset(2, template_record(400, fields)), flowset(400, body)])
    (flow,) = read_flow_records(write(tmp_path, [msg])).to_pylist()
    assert (flow["src2dst_packets"], flow["dst2src_packets"], flow["dst2src_bytes"]) == (
        501, 480, 96_000,
    )  # fmt: skip
    assert flow["category"] == "voip-media"


def test_flows_stream_out_as_export_time_moves_on(tmp_path: Path) -> None:
    messages = [
        ipfix_flow_message(
            [rtp("10.0.0.1", "10.0.0.2", 4000 + 2 * i, 6000, T0_MS + i * 600_000, 10.0)], seq=i
        )
        for i in range(5)
    ]
    batches = list(iter_flow_records(write(tmp_path, messages)))
    # Each flow leaves when the next one, 10 min later, moves the exporter's clock on;
    # the last at the end of the input.
    assert [b.num_rows for b in batches] == [1] * 5
    assert batches[0].column("end_reason").to_pylist() == ["idle"]


def test_merged_flow_table_is_bounded(tmp_path: Path) -> None:
    records = [rtp("10.0.0.1", "10.0.0.2", 4000 + i, 6000, T0_MS, 10.0) for i in range(10)]
    table = read_flow_records(write(tmp_path, [ipfix_flow_message(records)]), max_flows=4)
    stats = json.loads(table.schema.metadata[b"voipscope.stats"])
    assert table.num_rows == 10
    assert stats["flows_evicted"] == 6
    assert stats["anomalies"]["flow_records_table_full"] == 6
    assert table.column("end_reason").to_pylist().count("evicted") == 6


def test_export_datagrams_in_a_pcap(tmp_path: Path) -> None:
    from tests import pcapbuild as pb

    records = [rtp("10.0.0.1", "10.0.0.2", 4000, 6000, T0_MS, 20.0)]
    payloads = [ipfix_flow_message(records), b"\x00\x35not an export datagram at all"]
    packets = [
        pb.udp_packet(1000.0 + i, "192.0.2.1", 40000, "192.0.2.9", 4739, p)
        for i, p in enumerate(payloads)
    ]
    path = tmp_path / "export.pcap"
    path.write_bytes(pb.pcap(packets))
    table = read_flow_records(str(path), export_pcap=True)
    (flow,) = table.to_pylist()
    assert flow["src2dst_packets"] == 1001
    assert any("exporter 192.0.2.1" in e for e in flow["evidence"])
    stats = json.loads(table.schema.metadata[b"voipscope.stats"])
    assert stats["inputs"][0]["datagrams_not_export"] == 1


def test_cli_flows_and_calls_on_an_ipfix_file(tmp_path: Path) -> None:
    records = [
        rtp("10.0.0.1", "3.7.35.10", 4000, 8801, T0_MS, 30.0),
        rtp("3.7.35.10", "10.0.0.1", 8801, 4000, T0_MS + 40, 30.0),
    ]
    path = write(tmp_path, [ipfix_flow_message(records)])
    runner = CliRunner()
    result = runner.invoke(app, ["flows", path, "--format", "jsonl"])  # detected by content
    assert result.exit_code == 0, result.output
    (flow,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (flow["category"], flow["app"]) == ("voip-media", "Zoom")
    result = runner.invoke(app, ["calls", path, "--flow-records", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    (call,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (call["app"], call["state"], call["media_flows"]) == ("Zoom", "answered", [0])
    out = tmp_path / "f.parquet"
    assert runner.invoke(app, ["flows", path, "-o", str(out)]).exit_code == 0
    assert pa.parquet.read_table(out).num_rows == 1  # type: ignore[attr-defined]


def test_cli_flow_records_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello, not flows")
    result = runner.invoke(app, ["flows", str(junk), "--flow-records"])
    assert result.exit_code == 3
    assert "junk.bin" in result.stderr
    cut = write(tmp_path, [ipfix_flow_message([rtp("1.1.1.1", "2.2.2.2", 1, 2, T0_MS, 1.0)])])
    data = Path(cut).read_bytes()
    Path(cut).write_bytes(data + data[:30])
    result = runner.invoke(app, ["flows", cut, "--format", "jsonl"])
    assert result.exit_code == 0
    assert f"truncated at byte offset {len(data)}" in result.stderr


@pytest.mark.parametrize("key", ["flow_records.merge_idle_timeout_s", "merge_idle_timeout_s"])
def test_merge_timeout_is_a_config_key(tmp_path: Path, key: str) -> None:
    a = rtp("10.0.0.1", "10.0.0.2", 4000, 6000, T0_MS, 10.0)
    b = rtp("10.0.0.1", "10.0.0.2", 4000, 6000, T0_MS + 70_000, 10.0)
    path = write(tmp_path, [ipfix_flow_message([a, b])])
    assert read_flow_records(path).num_rows == 1
    assert read_flow_records(path, **{key.split(".")[-1]: 30}).num_rows == 2
