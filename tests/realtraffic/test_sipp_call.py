"""A real SIP call made by sipp (UAC playing G.711 RTP from a pcap, UAS answering) inside a
network namespace this test creates, captured with dumpcap, then identified by voipscope.

Traffic stays on the namespace's loopback; the namespace is deleted afterwards. Skipped,
with the reason, when not root or when sipp/dumpcap/ip are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realtraffic.livens import G711_PCAP, link_sipp_pcaps, loopback_netns
from tests.realtraffic.media import dumpcap_on_lo, in_ns
from voipscope.api import read_flows
from voipscope.pipeline import FlowPipeline

TOOLS = ("sipp", "dumpcap", "ip")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in TOOLS) or not G711_PCAP.exists(),
    reason="needs root, sipp (apt sip-tester, with its g711a.pcap), dumpcap and ip",
)


@pytest.fixture
def netns() -> Iterator[str]:
    yield from loopback_netns("vsc")


def test_sipp_call_is_sip_plus_sdp_pinned_rtp(netns: str, tmp_path: Path) -> None:
    capture = tmp_path / "call.pcapng"
    link_sipp_pcaps(tmp_path)
    dumpcap = dumpcap_on_lo(netns, capture, 40)
    uas = None
    try:
        time.sleep(1.0)  # dumpcap needs a moment before the first packet
        uas = subprocess.Popen(
            in_ns(netns, "sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", "5060", "-mp", "6000",
                "-m", "1", "-timeout", "30s", "-nostdin"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        )  # fmt: skip
        time.sleep(0.5)
        uac = subprocess.run(
            in_ns(netns, "sipp", "-sn", "uac_pcap", "127.0.0.1:5060", "-i", "127.0.0.1",
                "-p", "5062", "-mp", "6100", "-m", "1", "-timeout", "30s", "-nostdin"),
            capture_output=True, timeout=60, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert uac.returncode == 0, uac.stderr.decode(errors="replace")[-500:]
        uas.wait(timeout=30)
        time.sleep(0.5)
    finally:
        if uas is not None and uas.poll() is None:
            uas.kill()
        dumpcap.terminate()
        dumpcap.wait(timeout=10)

    rows = read_flows([str(capture)]).to_pylist()
    sip = [r for r in rows if r["protocol"] == "SIP"]
    assert len(sip) == 1 and sip[0]["detected_at_packet"] == 1
    call_id = sip[0]["call_id"]
    assert call_id
    media = [r for r in rows if r["category"] == "voip-media"]
    rtp = [r for r in media if r["protocol"] == "RTP" and r["src2dst_packets"] > 100]
    assert len(rtp) == 1, media
    stream = rtp[0]
    # sipp's uac_pcap plays the pcap's PCMA to the port the UAS answered with (6000).
    assert stream["dst_port"] == 6000 and stream["call_id"] == call_id
    assert stream["detected_at_packet"] == 1 and stream["media"] == "audio"
    assert any("SDP m=audio 6000" in e for e in stream["evidence"])
    assert not [r for r in rows if r["category"] == "unknown" and r["proto"] == "udp"]
    pipeline = FlowPipeline()
    list(pipeline.run([str(capture)]))
    assert pipeline.stats.anomalies.counts.get("dissector_internal_error", 0) == 0
