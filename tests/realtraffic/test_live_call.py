"""A real SIP call made by sipp (UAC on the client side playing G.711 RTP from a pcap, UAS
on the server side) across a veth between two network namespaces this test creates,
while `voipscope live` captures on the server's veth and dumpcap captures the same
interface to a file. The call, its RTP stream and the SIP/RTP flows that `voipscope live`
writes must be those `FlowPipeline.run_all` finds in the file: same calls, same packet
counts. Skipped, with the reason, when not root or sipp/dumpcap/ip are missing."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realtraffic.livens import (
    G711_PCAP,
    SERVER_IF,
    LiveRun,
    VethPair,
    missing,
    sipp_pcap_call,
    stop_process,
    veth_pair,
)
from voipscope.pipeline import FlowPipeline

WHY = missing("sipp", "dumpcap") or (None if G711_PCAP.exists() else f"needs {G711_PCAP}")
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "")

VOIP_PROTOCOLS = {"SIP", "RTP", "RTCP"}


@pytest.fixture
def pair() -> Iterator[VethPair]:
    yield from veth_pair()


def _flow_key(f: dict[str, Any]) -> tuple[Any, ...]:
    return (f["proto"], f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], f["protocol"],
            f["src2dst_packets"], f["dst2src_packets"], f["src2dst_bytes"], f["dst2src_bytes"],
            f["call_id"])  # fmt: skip


def _call_key(c: dict[str, Any]) -> tuple[Any, ...]:
    streams = sorted(
        (s["src_ip"], s["src_port"], s["dst_ip"], s["dst_port"], s["codec"], s["packets"],
         s["lost"]) for s in c["streams"] or []
    )  # fmt: skip
    return (c["call_id"], c["kind"], c["state"], c["final_code"], c["caller"], c["callee"],
            tuple(streams))  # fmt: skip


def test_live_finds_the_call_the_file_has(pair: VethPair, tmp_path: Path) -> None:
    capture = tmp_path / "call.pcapng"
    dumpcap = subprocess.Popen(
        pair.run_in(pair.server, "dumpcap", "-q", "-i", SERVER_IF, "-a", "duration:90",
                    "-w", str(capture)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    live = LiveRun(pair.server, ["-i", SERVER_IF, "--format", "jsonl", "--records", "all"],
                   tmp_path)  # fmt: skip
    try:
        live.wait_listening()
        for _ in range(50):  # dumpcap writes its header once it captures
            if capture.exists() and capture.stat().st_size > 0:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        sipp_pcap_call(pair, tmp_path)
        time.sleep(1.0)  # the last packets reach both captures
    finally:
        code = live.stop(signal.SIGTERM)
        dumpcap.send_signal(signal.SIGINT)
        stop_process(dumpcap)
    assert code == 0, live.stderr_text()[-2000:]

    records = live.records()
    live_flows = [r for r in records if r["record"] == "flow"]
    live_calls = [r for r in records if r["record"] == "call"]

    file_flows: list[dict[str, Any]] = []
    file_calls: list[dict[str, Any]] = []
    for kind, payload in FlowPipeline().run_all(str(capture)):
        if kind == "flows":
            file_flows.extend(payload.to_pylist())  # type: ignore[union-attr]
        elif kind == "calls":
            file_calls.extend(payload)  # type: ignore[arg-type]

    def voip(flows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(_flow_key(f) for f in flows if f["protocol"] in VOIP_PROTOCOLS)

    # The call is there, with its SIP flow and the RTP stream sipp played.
    sip = [f for f in live_flows if f["protocol"] == "SIP"]
    rtp = [f for f in live_flows if f["protocol"] == "RTP" and f["src2dst_packets"] > 100]
    assert len(sip) == 1 and len(rtp) == 1, voip(live_flows)
    assert rtp[0]["dst_port"] == 6000 and rtp[0]["call_id"] == sip[0]["call_id"]
    calls = [c for c in live_calls if c["kind"] == "call"]
    assert len(calls) == 1 and calls[0]["state"] == "answered", live_calls
    (stream,) = [s for s in calls[0]["streams"] if s["packets"] > 100]
    assert stream["codec"].startswith("PCMA") and stream["dst_port"] == 6000
    # Same flows (with packet and byte counts) and same calls as the file of the same packets.
    assert voip(live_flows) == voip(file_flows)
    assert sorted(map(_call_key, live_calls)) == sorted(map(_call_key, file_calls))
    print(f"{len(live_flows)} flows, {len(live_calls)} calls; RTP packets {stream['packets']}")
