"""dissect/imo.py on datagrams of imo.pcap (client 192.168.12.169:49207; relay
185.155.137.30:36535; peer 93.33.47.58:57604)."""

from __future__ import annotations

import contextlib
import random

import pytest

from voipscope.anomalies import AnomalyLog
from voipscope.dissect.base import UDP, FlowContext, Packet, Probe
from voipscope.dissect.imo import ImoDissector, largest_packed_body, parse_frame
from voipscope.dissect.knowledge import Knowledge
from voipscope.errors import DecodeError

# The relay flow's first four datagrams (client, client, relay, relay), abridged where
# long: the bodies are the capture's first bytes, padded to the length the varint says.
CLIENT_0E = bytes.fromhex("813c0e6848c33455f3c66c5a99f386a2") + bytes(184)  # 188 + 10 trailer
CLIENT_0D = bytes.fromhex("82470d00005e7d6c4467a3f9d9e59613") + bytes(329 - 16)
RELAY_03 = bytes.fromhex("000903219a020000000000")
RELAY_0D = bytes.fromhex("00740d00002de1bd5fb75221") + bytes(118 - 12)
PROBE = bytes.fromhex("0902dc9a020000000000")
REPLY = bytes.fromhex("0903dc9a020000000000")
# The client's video fragment to the relay: 89 46 = 1,222 bytes of a 1,224-byte datagram.
VIDEO_1A = bytes.fromhex("89461a00") + bytes(1220)


def ctx() -> FlowContext:
    return FlowContext(1, UDP, "192.168.12.169", 49207, "185.155.137.30", 36535, 0,
                       Knowledge(), AnomalyLog())  # fmt: skip


def test_frames() -> None:
    relayed = parse_frame(RELAY_03)
    assert (relayed.relayed, relayed.length, relayed.kind, relayed.whole) == (True, 9, 0x03, True)
    video = parse_frame(CLIENT_0D)
    assert (video.relayed, video.length, video.kind, video.whole) == (False, 327, 0x0D, True)
    trailed = parse_frame(CLIENT_0E)
    assert (trailed.length, trailed.kind, trailed.whole) == (188, 0x0E, False)


def test_the_relay_flow_is_imo_media_at_its_fourth_datagram() -> None:
    c, d = ctx(), ImoDissector()
    assert d.probe(c, Packet(CLIENT_0E, 1, 1, 0)) == Probe.MAYBE
    assert d.probe(c, Packet(CLIENT_0D, 2, 2, 0)) == Probe.MAYBE
    assert d.probe(c, Packet(RELAY_03, 3, 3, 1)) == Probe.MAYBE
    assert d.probe(c, Packet(RELAY_0D, 4, 4, 1)) == Probe.MATCH
    (finding,) = c.findings
    assert (finding.protocol, finding.category, finding.app) == ("imo", "voip-media", "imo")
    assert "after a relay 00" in finding.evidence


def test_an_echoed_probe_token_is_enough_and_checks_alone_are_signalling() -> None:
    c, d = ctx(), ImoDissector()
    assert d.probe(c, Packet(b"\x76", 1, 1, 1)) == Probe.MAYBE  # one-byte keepalive
    assert d.probe(c, Packet(PROBE, 2, 2, 0)) == Probe.MAYBE
    assert d.probe(c, Packet(REPLY, 3, 3, 1)) == Probe.MATCH
    (finding,) = c.findings
    assert finding.category == "voip-signaling" and "token came back" in finding.evidence
    # The first media frame after the match makes it media; the flow is followed on for
    # video (audio or video is the flow's to say).
    assert d.dissect(c, Packet(CLIENT_0D, 4, 4, 0)) is None
    assert c.findings[-1].category == "voip-media" and c.findings[-1].media is None
    assert d.dissect(c, Packet(VIDEO_1A, 5, 5, 0)) == Probe.NO
    video = c.findings[-1]
    assert (video.category, video.media, video.at_packet) == ("voip-media", "video", 4)


def test_packed_frames_filling_a_datagram_show_video() -> None:
    # A peer-to-peer datagram of imo.pcap: frames 18 (7 bytes), 0a (1,014), 21 (8), 35 (5).
    packed = (bytes([7, 0x18]) + bytes(6) + bytes([0x87, 0x76, 0x0A]) + bytes(1013)
              + bytes([8, 0x21]) + bytes(7) + bytes([5, 0x35]) + bytes(4))  # fmt: skip
    assert len(packed) == 1039
    assert largest_packed_body(packed) == 1014
    assert largest_packed_body(packed[:-1]) == 0  # the chain does not fill it: no frames
    assert largest_packed_body(b"\x00" + packed) == 1014  # after a relay's 00
    c, d = ctx(), ImoDissector()
    d.probe(c, Packet(PROBE, 1, 1, 0))
    assert d.probe(c, Packet(REPLY, 2, 2, 1)) == Probe.MATCH
    assert d.dissect(c, Packet(CLIENT_0D, 3, 3, 0)) is None
    assert d.dissect(c, Packet(packed, 4, 4, 1)) == Probe.NO
    assert c.findings[-1].media == "video"


def test_a_reply_from_the_same_side_or_another_token_is_no_echo() -> None:
    c, d = ctx(), ImoDissector()
    d.probe(c, Packet(PROBE, 1, 1, 0))
    assert d.probe(c, Packet(REPLY, 2, 2, 0)) == Probe.MAYBE  # the prober itself
    other = bytes.fromhex("0903aabbccdd00000000")
    assert d.probe(c, Packet(other, 3, 3, 1)) == Probe.MATCH  # 3 whole frames, both ways
    assert "token came back" not in c.findings[-1].evidence


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("0a02dc9a020000000000"),  # length 10 in a 10-byte datagram: past the end
        bytes.fromhex("0905dc9a020000000000"),  # whole, but type 05 is not imo's
        bytes.fromhex("0000"),  # a zero length
        bytes.fromhex("ffffff01"),  # a length of four bytes
        b"GET / HTTP/1.1\r\n\r\n",
    ],
)
def test_refused(data: bytes) -> None:
    c, d = ctx(), ImoDissector()
    with contextlib.suppress(DecodeError):
        assert d.probe(c, Packet(data, 1, 1, 0)) == Probe.NO
        return
    with pytest.raises(DecodeError):
        parse_frame(data)


def test_random_datagrams_are_not_imo() -> None:
    """5,000 flows of twelve uniformly random datagrams (the budget), directions
    alternating: none is imo (a whole frame by chance is ~1 in 16,000 datagrams)."""
    rng = random.Random(11)
    matched = 0
    for _ in range(5000):
        c, d = ctx(), ImoDissector()
        for k in range(12):
            data = rng.randbytes(rng.randint(2, 300))
            try:
                verdict = d.probe(c, Packet(data, k, k + 1, k % 2))
            except DecodeError:
                break
            if verdict != Probe.MAYBE:
                matched += verdict == Probe.MATCH
                break
    assert matched == 0


def test_prefixes_raise_only_decode_errors() -> None:
    for data in (CLIENT_0D, RELAY_03, PROBE):
        for cut in range(len(data)):
            with contextlib.suppress(DecodeError):
                parse_frame(data[:cut])
