"""Media over TCP measured per packet, from real senders (quality.tcp_framing).

- RTP over TCP (RFC 4571): GStreamer sends G.711 µ-law RTP through ``rtpstreampay`` (a
  16-bit length before each packet) on a TCP connection from one namespace to the other;
  once clean, once with 5 % of its data segments dropped at the receiver's ingress, after
  the capture point on the sender's link, so that the capture holds each dropped segment
  and, later, TCP's retransmission of it: every packet the sender sent must be read
  once, none lost, none duplicated. (Holes in the captured byte stream, filled later,
  are the unit tests' business: this kernel has no sch_netem, and a drop at the sender's
  own egress is retransmitted at once, before the next segment.)
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
import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.test_rtp_streams_vs_tshark import parse_rtp_streams
from tests.realtraffic import tshark_streams
from tests.realtraffic.gen.generate import TURN_PORT, Scenario, capture, run_scenario, turn_server
from tests.realtraffic.media import have, netns_pair, run
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


@contextmanager
def drop_data_segments(ns: str, dev: str, loss_pct: float) -> Iterator[None]:
    """Drop ``loss_pct`` % of the TCP segments with data to RTP_PORT at the receiving
    device's ingress hook (after the packet taps: a capture there still sees them)."""
    if loss_pct <= 0:
        yield
        return
    table = ("netdev", "vstcploss")
    run("ip", "netns", "exec", ns, "nft", "add", "table", *table)
    run("ip", "netns", "exec", ns, "nft", "add", "chain", *table, "in",
        f'{{ type filter hook ingress device "{dev}" priority 0; }}')  # fmt: skip
    run("ip", "netns", "exec", ns, "nft", "add", "rule", *table, "in", "tcp", "dport",
        str(RTP_PORT), "meta", "length", "gt", "100", "numgen", "random", "mod", "1000", "lt",
        str(int(loss_pct * 10)), "drop")  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", *table], check=False)


@pytest.mark.skipif(not have("gst-launch-1.0", "nft"), reason="needs GStreamer and nft")
@pytest.mark.parametrize("loss_pct", [0.0, 5.0])
def test_rtp_over_tcp_from_gstreamer(tmp_path: Path, loss_pct: float) -> None:
    pcap = tmp_path / "rfc4571.pcap"
    with (
        netns_pair("10.97.0") as (ns_a, ns_b, ip_a, ip_b, dev_a),
        drop_data_segments(ns_b, "vb" + dev_a[2:], loss_pct),  # netns_pair names veths so
        capture(ns_a, dev_a, pcap, 8),
    ):
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

    calls = [c for c in iter_calls(pcap) if c["streams"]]
    assert len(calls) == 1, calls
    (stream,) = calls[0]["streams"]
    print({k: stream[k] for k in ("packets", "lost", "duplicates", "jitter_ms", "max_delta_ms",
                                  "mos")})  # fmt: skip
    assert (stream["src_ip"], stream["dst_port"]) == (ip_a, RTP_PORT)
    assert (stream["codec"], stream["clock_rate_hz"]) == ("PCMU", 8000)
    # Everything the sender sent, once: TCP loses nothing, it delays.
    assert (stream["packets"], stream["lost"], stream["duplicates"]) == (FRAMES, 0, 0)
    assert stream["mos"] is not None, stream["mos_reason"]
    assert stream["activity_method"] == "payload energy (G.711)"
    theirs = _tshark_tcp(pcap, "-d", f"tcp.port=={RTP_PORT},rtp")
    assert len(theirs) == 1, theirs
    row = theirs[tshark_streams.key(stream)]
    tshark_streams.assert_as_tshark(stream, row, jitter=False)
    # Jitter: RFC 3550 A.8 over the packets as tshark decodes them, one by one. Its own
    # stream table agrees with that on the clean run; with retransmissions, where the
    # sender catches up with segments of eight or eleven packets, it printed 13.98 ms
    # where A.8 over its own packet times gives 16.48 ms (ours), so A.8 is the reference.
    mean_ms, max_ms = _a8_over_tshark_packets(pcap)
    print(f"jitter: ours {stream['jitter_ms']:.3f}, A.8 over tshark's packets {mean_ms:.3f}, "
          f"tshark's table {row.mean_jitter_ms}")  # fmt: skip
    assert stream["jitter_ms"] == pytest.approx(mean_ms, rel=0.05, abs=0.1)
    assert stream["max_jitter_ms"] == pytest.approx(max_ms, rel=0.05, abs=0.1)
    if loss_pct:
        retransmitted = subprocess.run(
            ["tshark", "-n", "-r", str(pcap), "-Y", "tcp.analysis.retransmission"],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout.count("\n")  # fmt: skip
        print(f"{retransmitted} retransmitted segments in the capture")
        assert retransmitted >= 1  # the retransmissions the test is about were there
    else:
        assert stream["jitter_ms"] == pytest.approx(row.mean_jitter_ms, rel=0.05, abs=0.1)


def _a8_over_tshark_packets(pcap: Path) -> tuple[float, float]:
    """Mean and max of RFC 3550 A.8's J (ms, 8 kHz) over the RTP packets tshark decodes
    from the TCP stream, in its order, each timed by the frame that completed it."""
    fields = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-d", f"tcp.port=={RTP_PORT},rtp", "-Y", "rtp",
         "-T", "fields", "-e", "frame.time_epoch", "-e", "rtp.timestamp"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    packets = [
        (float(t), int(ts))
        for line in fields.splitlines()
        for t, stamps in [line.split("\t")]
        for ts in stamps.split(",")
    ]
    jitter, history = 0.0, []
    for (t0, ts0), (t1, ts1) in itertools.pairwise(packets):
        d = (t1 - t0) * 1000.0 - (ts1 - ts0) / 8.0
        jitter += (abs(d) - jitter) / 16.0
        history.append(jitter)
    return sum(history) / len(history), max(history)


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
