"""`voipscope live` on a veth inside network namespaces this test creates: on an idle link
a flow idle past its timeout is written while the command still runs (the capture clock
follows the wall clock when no packet comes); SIGTERM flushes the open flows and exits 0;
a missing interface or a missing capability is one line and exit status 3. Skipped, with
the reason, when not root or `ip` is missing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realtraffic.livens import (
    CLIENT_IP,
    SERVER_IF,
    SERVER_IP,
    LiveRun,
    VethPair,
    missing,
    udp_send,
    veth_pair,
)

needs_root = pytest.mark.skipif(bool(missing()), reason=missing() or "")


@pytest.fixture
def pair() -> Iterator[VethPair]:
    yield from veth_pair()


@needs_root
def test_idle_flow_ends_by_wall_clock_and_sigterm_flushes(pair: VethPair, tmp_path: Path) -> None:
    live = LiveRun(
        pair.server,
        ["-i", SERVER_IF, "--records", "flows", "--format", "jsonl", "--filter", "udp",
         "-c", "flows.idle_timeout_s=2", "--stats"],
        tmp_path,
    )  # fmt: skip
    try:
        live.wait_listening()
        udp_send(pair, CLIENT_IP, SERVER_IP, 40001, count=3, gap_s=0.05)
        sent_at = time.time()
        # Nothing more on the link: the flow must still end (idle 2 s, the clock following
        # the wall clock less 1 s of slack, a 0.5 s hand-over and a 1 s sweep interval).
        idle = live.wait_for("stdout", '"dst_port":40001', timeout_s=15)
        assert idle is not None, live.stderr_text()[-2000:]
        assert live.process.poll() is None  # written while the command runs
        flow = json.loads(idle.text)
        assert flow["end_reason"] == "idle" and flow["src2dst_packets"] == 3
        assert 2.0 <= idle.at - sent_at <= 8.0, idle.at - sent_at
        # A flow still open at SIGTERM is flushed as the end of the capture.
        udp_send(pair, CLIENT_IP, SERVER_IP, 40002, count=2, gap_s=0.05)
        time.sleep(1.0)
    finally:
        code = live.stop(signal.SIGTERM)
    assert code == 0, live.stderr_text()[-2000:]
    flows = {r["dst_port"]: r for r in live.records()}
    assert flows[40002]["end_reason"] == "end-of-capture"
    assert flows[40002]["src2dst_packets"] == 2
    stats = json.loads(live.stderr_text()[live.stderr_text().index("{") :])
    (source,) = stats["inputs"]
    assert source["path"] == f"live:{SERVER_IF}" and source["kernel_dropped"] == 0
    assert source["packets"] == 5  # the filter let only the 5 UDP datagrams through


@needs_root
def test_duration_and_count_stop_by_themselves(pair: VethPair, tmp_path: Path) -> None:
    started = time.monotonic()
    live = LiveRun(pair.server, ["-i", SERVER_IF, "--duration", "2", "--format", "jsonl"],
                   tmp_path)  # fmt: skip
    assert live.process.wait(timeout=60) == 0, live.stderr_text()
    assert time.monotonic() - started < 60
    live = LiveRun(
        pair.server,
        ["-i", SERVER_IF, "--count", "4", "--filter", "udp", "--format", "jsonl",
         "--records", "flows"],
        tmp_path,
    )  # fmt: skip
    live.wait_listening()
    udp_send(pair, CLIENT_IP, SERVER_IP, 40003, count=10, gap_s=0.05)
    assert live.process.wait(timeout=30) == 0, live.stderr_text()
    time.sleep(0.2)
    (flow,) = live.records()
    assert flow["src2dst_packets"] == 4 and flow["end_reason"] == "end-of-capture"


def _voipscope(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "voipscope", "live", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_unknown_interface_is_one_line_and_exit_3() -> None:
    done = _voipscope("-i", "nosuch-if0", "--duration", "1")
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == ["voipscope: error: nosuch-if0: no such network interface"]
    assert done.stdout == ""


@pytest.mark.skipif(
    bool(missing("setpriv")), reason=missing("setpriv") or "needs setpriv (util-linux)"
)
def test_no_capture_permission_is_one_line_and_exit_3() -> None:
    # Root without CAP_NET_RAW (dropped from the bounding set before exec).
    done = _voipscope("-i", "lo", "--duration", "1",
                      prefix=("setpriv", "--bounding-set", "-net_raw", "--"))  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "permission denied" in done.stderr
    assert "CAP_NET_RAW" in done.stderr


def test_usage_errors_exit_2() -> None:
    assert _voipscope("-i", "lo", "--records", "packets").returncode == 2
    assert _voipscope("-i", "lo", "--format", "parquet").returncode == 2
    assert _voipscope("-i", "lo", "--format", "csv", "--records", "all").returncode == 2
    assert _voipscope("-i", "lo", "--apply").returncode == 2


@needs_root
def test_bad_filter_is_a_usage_error(pair: VethPair) -> None:
    done = _voipscope("-i", SERVER_IF, "--filter", "udp port nonsense", "--duration", "1",
                      prefix=tuple(pair.run_in(pair.server)))  # fmt: skip
    assert done.returncode == 2 and "bad --filter" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1


@needs_root
def test_any_interface_reads_cooked_frames_and_loopback_once(
    pair: VethPair, tmp_path: Path
) -> None:
    live = LiveRun(
        pair.server,
        ["-i", "any", "--filter", "udp", "--format", "jsonl", "--records", "flows",
         "--count", "7"],
        tmp_path,
    )  # fmt: skip
    live.wait_listening()
    udp_send(pair, CLIENT_IP, SERVER_IP, 40004, count=3, gap_s=0.05)
    subprocess.run(
        pair.run_in(pair.server, sys.executable, "-c",
                    "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                    "for i in range(4): s.sendto(b'x', ('127.0.0.1', 40005))"),
        check=True, timeout=30,
    )  # fmt: skip
    assert live.process.wait(timeout=30) == 0, live.stderr_text()
    time.sleep(0.2)
    packets = {r["dst_port"]: r["src2dst_packets"] for r in live.records()}
    assert packets == {40004: 3, 40005: 4}  # loopback's sent copy is not counted twice
    assert "link type Linux cooked v2" in live.stderr_text()


SIP_SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5060))
first = (b"INVITE sip:x SIP/2.0\\r\\nVia: a\\r\\nFrom: b\\r\\nTo: c\\r\\nCall-ID: d\\r\\n"
         b"CSeq: 1 INVITE\\r\\n\\r\\n")
for payload in (first, b"INVITE broken\\r\\n"):
    s.sendto(payload, (sys.argv[2], 5060))
    time.sleep(0.05)
"""


@needs_root
def test_anomalies_are_written_when_the_capture_stops(pair: VethPair, tmp_path: Path) -> None:
    """`--anomalies FILE` as on the file commands: the named oddities seen on the wire,
    written when the capture stops."""
    anomalies = tmp_path / "anomalies.jsonl"
    live = LiveRun(
        pair.server,
        ["-i", SERVER_IF, "--count", "2", "--filter", "udp port 5060", "--format", "jsonl",
         "--records", "flows", "--anomalies", str(anomalies)],
        tmp_path,
    )  # fmt: skip
    live.wait_listening()
    subprocess.run(pair.run_in(pair.client, sys.executable, "-c", SIP_SEND, CLIENT_IP, SERVER_IP),
                   check=True, timeout=30)  # fmt: skip
    assert live.process.wait(timeout=30) == 0, live.stderr_text()
    records = [json.loads(line) for line in anomalies.read_text().splitlines()]
    assert [r["name"] for r in records] == ["sip_malformed"], records
    assert records[0]["src_ip"] == CLIENT_IP and records[0]["dst_ip"] == SERVER_IP
