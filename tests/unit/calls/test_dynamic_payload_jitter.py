"""A call whose SDP says ``a=rtpmap:111 opus/48000/2``: its streams get jitter in ms by
that clock (RFC 3550 A.8 at 48 kHz), the far end's RTCP jitter too, and tshark, which also
takes the clock from the SDP, reports the same. Through the whole pipeline on a capture
built packet by packet."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests import pcapbuild as pb
from tests.integration.test_rtp_streams_vs_tshark import (
    JITTER_ABS_MS,
    JITTER_REL,
    parse_rtp_streams,
)
from tests.unit.quality.rtp_support import a8_reference
from voipscope.api import iter_calls
from voipscope.quality.clock_candidates import CLOCK_FROM_SDP

A, B = "10.0.0.1", "10.0.0.2"
A_PORT, B_PORT = 4000, 5000
T0_NS = 1_700_000_000 * 1_000_000_000
OPUS_TICKS = 960  # 20 ms at 48 kHz (RFC 7587 §4.1)


def sdp(ip: str, port: int) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 111 126\r\na=rtpmap:111 opus/48000/2\r\n"
        "a=rtpmap:126 telephone-event/8000\r\n"
    )


def sip(first_line: str, cseq: str, body: str = "", to_tag: str = "") -> bytes:
    head = (
        f"{first_line}\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK1\r\n"
        f"From: <sip:alice@{A}>;tag=a1\r\nTo: <sip:bob@{B}>{to_tag}\r\n"
        f"Call-ID: opus1@{A}\r\nCSeq: {cseq}\r\nContact: <sip:alice@{A}>\r\n"
    )
    if body:
        head += f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    else:
        head += "Content-Length: 0\r\n\r\n"
    return head.encode()


def at_us(us: int, src: str, sport: int, dst: str, dport: int, payload: bytes) -> pb.Packet:
    """A UDP packet at an exact microsecond after T0 (pcap's resolution)."""
    frame = pb.udp_packet(0.0, src, sport, dst, dport, payload).data
    return pb.Packet(T0_NS + us * 1000, frame)


def opus_stream(
    src: str, sport: int, dst: str, dport: int, ssrc: int, start_us: int, seed: int
) -> tuple[list[pb.Packet], list[int], list[int]]:
    """60 Opus packets (1.2 s, 20 ms each), each late by 0..8 ms at random."""
    rng = random.Random(seed)
    arrivals = [start_us + k * 20_000 + rng.randrange(8000) for k in range(60)]
    stamps = [1000 + k * OPUS_TICKS for k in range(60)]
    packets = [
        at_us(t, src, sport, dst, dport,
              struct.pack("!BBHII", 0x80, 111, k + 1, ts, ssrc) + b"\x55" * 80)
        for k, (t, ts) in enumerate(zip(arrivals, stamps, strict=True))
    ]  # fmt: skip
    return packets, arrivals, stamps


def receiver_report(ssrc: int, about: int, jitter_ticks: int) -> bytes:
    block = struct.pack("!IBBHIIII", about, 0, 0, 0, 60, jitter_ticks, 0, 0)
    body = struct.pack("!I", ssrc) + block
    return struct.pack("!BBH", 0x81, 201, len(body) // 4) + body


@pytest.fixture
def opus_call(write_pcap) -> tuple[Path, dict[int, tuple[list[int], list[int]]]]:  # type: ignore[no-untyped-def]
    a_packets, a_arrivals, a_stamps = opus_stream(A, A_PORT, B, B_PORT, 0xA, 1_000_000, 1)
    b_packets, b_arrivals, b_stamps = opus_stream(B, B_PORT, A, A_PORT, 0xB, 1_000_500, 2)
    packets = [
        at_us(0, A, 5060, B, 5060, sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE", sdp(A, A_PORT))),
        at_us(500_000, B, 5060, A, 5060,
              sip("SIP/2.0 200 OK", "1 INVITE", sdp(B, B_PORT), ";tag=b1")),
        at_us(600_000, A, 5060, B, 5060, sip(f"ACK sip:bob@{B} SIP/2.0", "1 ACK", "", ";tag=b1")),
        *a_packets,
        *b_packets,
        # Bob's RTCP about Alice's stream: 480 ticks of jitter = 10 ms at 48 kHz.
        at_us(2_100_000, B, B_PORT + 1, A, A_PORT + 1, receiver_report(0xB, 0xA, 480)),
        at_us(3_000_000, A, 5060, B, 5060, sip(f"BYE sip:bob@{B} SIP/2.0", "2 BYE", "", ";tag=b1")),
        at_us(3_100_000, B, 5060, A, 5060, sip("SIP/2.0 200 OK", "2 BYE", "", ";tag=b1")),
    ]  # fmt: skip
    path = write_pcap(sorted(packets, key=lambda p: p.ts_ns))
    return path, {0xA: (a_arrivals, a_stamps), 0xB: (b_arrivals, b_stamps)}


def test_sdp_rtpmap_clock_gives_jitter_in_ms(opus_call) -> None:  # type: ignore[no-untyped-def]
    path, truth = opus_call
    (call,) = [c for c in iter_calls(path) if c["kind"] == "call"]
    streams = {int(s["ssrc"], 16): s for s in call["streams"]}
    assert set(streams) == {0xA, 0xB}
    for ssrc, (arrivals, stamps) in truth.items():
        s = streams[ssrc]
        last, mean, top = a8_reference(arrivals, stamps, 48000)
        assert s["pairing"] == "sdp-address" and s["codec"] == "opus/48000/2"
        assert (s["clock_rate_hz"], s["clock_source"]) == (48000, CLOCK_FROM_SDP)
        assert s["jitter_reason"] is None
        assert s["jitter_ms"] == pytest.approx(mean, rel=1e-9)
        assert s["mean_jitter_ms"] == pytest.approx(mean, rel=1e-9)
        assert s["max_jitter_ms"] == pytest.approx(top, rel=1e-9)
        assert s["jitter_last_ms"] == pytest.approx(last, rel=1e-9)
        assert s["jitter_ts_units"] == pytest.approx(last * 48, rel=1e-9)
        assert "clock_candidates" not in s  # internal to the quality stage
    # The far end's report, in timestamp units, read with the same clock.
    assert streams[0xA]["rtcp_jitter_ms"] == pytest.approx(10.0)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_same_jitter_as_tshark_with_the_sdp(opus_call) -> None:  # type: ignore[no-untyped-def]
    path, _ = opus_call
    done = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-q", "-z", "rtp,streams"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    theirs = parse_rtp_streams(done.stdout)
    (call,) = [c for c in iter_calls(path) if c["kind"] == "call"]
    ours = {(s["src_ip"], s["src_port"], s["dst_ip"], s["dst_port"], int(s["ssrc"], 16)): s
            for s in call["streams"]}  # fmt: skip
    assert set(theirs) == set(ours)
    for key, t in theirs.items():
        o = ours[key]
        assert (t.packets, t.lost) == (o["packets"], o["lost"])
        assert t.mean_jitter_ms > 0.1  # tshark knew the clock (it prints 0 when it does not)
        for theirs_ms, ours_ms in ((t.mean_jitter_ms, o["jitter_ms"]),
                                   (t.max_jitter_ms, o["max_jitter_ms"])):  # fmt: skip
            assert abs(theirs_ms - ours_ms) <= max(JITTER_ABS_MS, JITTER_REL * theirs_ms)
