"""Media over TCP measured per packet, from real senders (quality.tcp_framing).

- RTP over TCP (RFC 4571): GStreamer sends G.711 µ-law RTP through ``rtpstreampay`` (a
  16-bit length before each packet) on a TCP connection from one namespace to the other.
- TURN over TCP (RFC 8656 §12.5): an aiortc WebRTC call (PCMU over DTLS-SRTP) whose caller
  reaches its relay-only peer through coturn over TCP; every media packet on the caller's
  link is in a Send/Data indication or ChannelData message inside the TCP byte stream.

Each stream's packets, loss, max delta and jitter must equal what tshark reads when told
the port (``-d tcp.port==P,rtp``; ``-d tcp.port==3478,stun -o rtp.heuristic_rtp:TRUE``),
the codec and MOS must be known, and the packets must be all the sender sent.

Traffic stays inside the two network namespaces each test creates (deleted afterwards).
Skipped, with the reason, without root or the tools."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_rtp_streams_vs_tshark import parse_rtp_streams
from tests.realtraffic import tshark_streams
from tests.realtraffic.gen.generate import TURN_PORT, Scenario, capture, run_scenario, turn_server
from tests.realtraffic.media import have, netns_pair
from voipscope.api import iter_calls

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not have("ip", "dumpcap", "tshark"),
    reason="needs root, ip, dumpcap and tshark",
)

RTP_PORT = 5004
FRAMES = 250  # 5 s of 20 ms frames


def _tshark_tcp(capture_path: Path, *decode: str) -> dict:  # type: ignore[type-arg]
    return parse_rtp_streams(subprocess.run(
        ["tshark", "-n", "-r", str(capture_path), *decode, "-q", "-z", "rtp,streams"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout)  # fmt: skip


@pytest.mark.skipif(not have("gst-launch-1.0"), reason="needs GStreamer (gstreamer1.0-tools)")
def test_rtp_over_tcp_from_gstreamer(tmp_path: Path) -> None:
    pcap = tmp_path / "rfc4571.pcap"
    with netns_pair("10.97.0") as (ns_a, ns_b, ip_a, ip_b, dev_a), capture(ns_a, dev_a, pcap, 8):
        receiver = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, "gst-launch-1.0", "-q", "tcpserversrc",
             f"host={ip_b}", f"port={RTP_PORT}", "!", "fakesink"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)
        try:
            subprocess.run(
                ["ip", "netns", "exec", ns_a, "gst-launch-1.0", "-q", "audiotestsrc",
                 "is-live=true", f"num-buffers={FRAMES}", "samplesperbuffer=160", "wave=ticks",
                 "!", "audio/x-raw,rate=8000,channels=1", "!", "mulawenc", "!",
                 "rtppcmupay", "min-ptime=20000000", "max-ptime=20000000", "!",
                 "rtpstreampay", "!", "tcpclientsink", f"host={ip_b}", f"port={RTP_PORT}"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)

    theirs = _tshark_tcp(pcap, "-d", f"tcp.port=={RTP_PORT},rtp")
    assert len(theirs) == 1, theirs
    calls = [c for c in iter_calls(pcap) if c["streams"]]
    assert len(calls) == 1, calls
    (stream,) = calls[0]["streams"]
    print({k: stream[k] for k in ("packets", "lost", "jitter_ms", "max_delta_ms", "mos")})
    assert (stream["src_ip"], stream["dst_port"]) == (ip_a, RTP_PORT)
    assert (stream["codec"], stream["clock_rate_hz"]) == ("PCMU", 8000)
    assert stream["packets"] == FRAMES and stream["lost"] == 0
    tshark_streams.assert_as_tshark(stream, theirs[tshark_streams.key(stream)])
    assert stream["mos"] is not None, stream["mos_reason"]
    assert stream["activity_method"] == "payload energy (G.711)"


@pytest.mark.skipif(
    not have("turnserver") or importlib.util.find_spec("aiortc") is None,
    reason="needs coturn (turnserver) and aiortc",
)
def test_webrtc_call_through_turn_over_tcp(tmp_path: Path) -> None:
    pcap = tmp_path / "turn-tcp.pcap"
    seconds = 6.0
    scenario = Scenario("turn-tcp-pcmu", "call", codec="PCMU", relay=True,
                        turn_transport="tcp", seed=301)  # fmt: skip
    with (
        netns_pair("10.98.0") as (ns_a, ns_b, ip_a, ip_b, dev_a),
        turn_server(ns_b, ip_b, tmp_path),
        capture(ns_a, dev_a, pcap, seconds),
    ):
        run_scenario(scenario, ns_a, ns_b, ip_a, ip_b, seconds)

    theirs = _tshark_tcp(pcap, "-d", f"tcp.port=={TURN_PORT},stun", "-o", "rtp.heuristic_rtp:TRUE")
    calls = [c for c in iter_calls(pcap) if c["streams"]]
    assert len(calls) == 1, calls
    (call,) = calls
    print(call["evidence"])
    assert call["path"] == "relay"
    streams = call["streams"]
    assert len(streams) == len(theirs) == 2, (streams, theirs)
    for s in streams:
        t = theirs[tshark_streams.key(s)]
        print(f"{s['src_ip']}:{s['src_port']} -> {s['dst_port']}: {s['packets']} packets, "
              f"{s['lost']} lost, jitter {s['jitter_ms']} ({s['jitter_reason']}), "
              f"MOS {s['mos']}")  # fmt: skip
        assert (s["payload_type"], s["codec"]) == (0, "PCMU")
        assert s["packets"] >= 100, s  # seconds of media both ways (ICE takes some)
        measured = s["jitter_ms"] is not None
        tshark_streams.assert_as_tshark(s, t, jitter=measured)
        assert s["mos"] is not None, s["mos_reason"]
