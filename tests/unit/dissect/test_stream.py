"""TCP byte streams for the dissectors joined by sequence number: retransmissions add
nothing, overlaps add what is new, a hole drops the message it cut (dissect/stream.py);
and through the whole pipeline, a SIP INVITE over TCP with segments sent again is one
good INVITE, not a malformed message."""

from __future__ import annotations

import pytest

from tests.unit.quality.test_tcp_media import segment
from voipscope.api import iter_calls
from voipscope.decode.tcp_seq import SEQ_SPACE
from voipscope.dissect.stream import StreamBuffers
from voipscope.pipeline import FlowPipeline

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 5060)


def test_segments_joined_by_sequence_number() -> None:
    s = StreamBuffers(1 << 16)
    assert s.add(0, b"INVITE ", 1000) == b"INVITE "
    assert s.add(0, b"INVITE ", 1000) == b"INVITE "  # a retransmission adds nothing
    assert s.add(0, b"E sip:", 1005) == b"INVITE sip:"  # overlaps by 2 bytes
    assert (s.repeated_bytes, s.holes) == (9, 0)
    assert s.add(1, b"SIP/2.0", 7) == b"SIP/2.0"  # the other direction is its own
    assert s.add(0, b"x@y", 1020) == b"x@y"  # 9 bytes never seen: the partial message goes
    assert s.holes == 1
    s.consume(0, 3)
    assert s.add(0, b"!", 1023) == b"!"


def test_sequence_numbers_wrap_and_unknown_ones_append() -> None:
    s = StreamBuffers(1 << 16)
    s.add(0, b"abcd", SEQ_SPACE - 2)
    assert s.add(0, b"cdef", SEQ_SPACE) == b"abcdef"  # 0 after the wrap: 2 bytes repeated
    assert s.add(0, b"gh", 4 % SEQ_SPACE) == b"abcdefgh"
    assert s.add(0, b"ij") == b"abcdefghij"  # without a number: capture order
    u = StreamBuffers(1 << 16)
    u.add(0, b"ab")
    assert u.add(0, b"ab") == b"abab"  # no numbers at all: capture order, as before


def invite() -> bytes:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\n"
    )
    head = (
        "INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:40000;branch=z9hG4bK-r1\r\n"
        "From: <sip:alice@10.0.0.1>;tag=a1\r\nTo: <sip:bob@10.0.0.2>\r\nCall-ID: retrans-1\r\n"
        "CSeq: 1 INVITE\r\nContact: <sip:alice@10.0.0.1;transport=tcp>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize(
    "segments",
    [
        [(0, 0, 120), (10, 120, None), (300, 120, None)],  # the tail sent again (RTO)
        [(0, 0, 120), (200, 0, 200), (210, 200, None)],  # a retransmission with more bytes
        [(0, 0, None), (300, 0, None)],  # the whole message again
    ],
    ids=["tail-again", "overlap", "whole-again"],
)
def test_retransmitted_segments_of_a_sip_message_over_tcp(write_pcap, segments) -> None:
    """(ms, first byte, end) of each segment of one INVITE. Before: the tail sent again
    was appended after the complete message and reported as a malformed SIP message."""
    message = invite()
    seq = 5000
    packets = [segment(ms, message[a:b], seq + a, CLIENT, SERVER) for ms, a, b in segments]
    path = write_pcap(packets)
    pipeline = FlowPipeline()
    for _ in pipeline.run([str(path)]):
        pass
    assert not pipeline.stats.anomalies.counts, pipeline.stats.anomalies.counts
    (call,) = [c for c in iter_calls(path) if c["kind"] == "call"]
    assert (call["call_id"], call["state"]) == ("retrans-1", "unanswered"), call["evidence"]
