"""SIP over WebSocket (RFC 7118): WebSocket framing against RFC 6455 §5.7's examples and
every way a frame can be cut or broken, and the dissector on hand-made flows (the upgrade,
masked client frames, fragmented messages, frames split over segments, control frames,
a refused upgrade, permessage-deflate). The same traffic from a real server (Kamailio's
websocket module) is tests/realtraffic/test_sip_websocket.py."""

from __future__ import annotations

import os

import pytest

from tests.dissectdrive import context, packets, run
from voipscope.dissect.base import SIGNALING, TCP, Probe
from voipscope.dissect.sip_ws import (
    BINARY,
    CONTINUATION,
    PING,
    TEXT,
    SipWsDissector,
    offers_sip,
    parse_ws_frame,
    unmask,
)
from voipscope.errors import Malformed, Truncated

LIMIT = 64 << 10

# RFC 6455 §5.7
HELLO_UNMASKED = bytes.fromhex("810548656c6c6f")
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")
HEL, LO = bytes.fromhex("010348656c"), bytes.fromhex("80026c6f")
PING_HELLO = bytes.fromhex("890548656c6c6f")
BINARY_256 = bytes.fromhex("827e0100") + bytes(range(256))
BINARY_64K = bytes.fromhex("827f0000000000010000") + bytes(65536)


def test_rfc6455_examples() -> None:
    frame = parse_ws_frame(HELLO_UNMASKED, LIMIT)
    assert (frame.fin, frame.opcode, frame.masked, frame.payload) == (True, TEXT, False, b"Hello")
    frame = parse_ws_frame(HELLO_MASKED, LIMIT)
    assert (frame.masked, frame.payload, frame.frame_bytes) == (True, b"Hello", 11)
    first, last = parse_ws_frame(HEL, LIMIT), parse_ws_frame(LO, LIMIT)
    assert (first.fin, first.opcode, first.payload) == (False, TEXT, b"Hel")
    assert (last.fin, last.opcode, last.payload) == (True, CONTINUATION, b"lo")
    assert parse_ws_frame(PING_HELLO, LIMIT).opcode == PING
    frame = parse_ws_frame(BINARY_256, LIMIT)
    assert (frame.opcode, len(frame.payload), frame.frame_bytes) == (BINARY, 256, 260)
    frame = parse_ws_frame(BINARY_64K, LIMIT + 1)
    assert len(frame.payload) == 65536 and frame.frame_bytes == 65546


@pytest.mark.parametrize("data", [HELLO_UNMASKED, HELLO_MASKED, BINARY_256, BINARY_64K])
def test_every_prefix_is_truncated(data: bytes) -> None:
    for cut in [*range(min(len(data), 300)), len(data) - 1]:
        with pytest.raises(Truncated):
            parse_ws_frame(data[:cut], LIMIT + 1)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (bytes([0x83, 0x00]), "reserved opcode"),
        (bytes([0x8B, 0x00]), "reserved opcode"),
        (bytes([0x09, 0x00]), "fragmented"),  # PING without FIN
        (bytes([0x89, 0x7E, 0x00, 0x80]) + bytes(128), "over 125"),
        (bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1]), "most significant bit"),
        (bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 1]), "more than"),
    ],
)
def test_broken_frames_are_malformed(data: bytes, why: str) -> None:
    with pytest.raises(Malformed, match=why):
        parse_ws_frame(data, LIMIT)


def test_unmask_is_xor_with_the_key_repeated() -> None:
    key = os.urandom(4)
    payload = os.urandom(1001)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    assert unmask(masked, key) == payload and unmask(b"", key) == b""


def test_subprotocol_list() -> None:
    assert offers_sip("sip") and offers_sip("xmpp, SIP") and not offers_sip("sips, msrp")
    assert not offers_sip(None)


def mask(
    payload: bytes, opcode: int = TEXT, fin: bool = True, key: bytes = b"\x01\x02\x03\x04"
) -> bytes:
    """A client frame (masked) of ``payload``."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def plain(payload: bytes, opcode: int = TEXT, fin: bool = True) -> bytes:
    """A server frame (unmasked)."""
    n = len(payload)
    size = bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big")
    return bytes([(0x80 if fin else 0) | opcode]) + size + payload


UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: proxy.example.net\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
SWITCHED = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Protocol: sip\r\n\r\n")  # fmt: skip
SDP = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\n")  # fmt: skip


def sip(method: str, body: bytes = b"") -> bytes:
    return (f"{method} sip:bob@proxy.example.net SIP/2.0\r\n"
            "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n"
            "From: <sip:alice@example.net>;tag=a1\r\nTo: <sip:bob@example.net>\r\n"
            f"Call-ID: ws-1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip


def ok(code: str = "200 OK") -> bytes:
    return (f"SIP/2.0 {code}\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n"
            "From: <sip:alice@example.net>;tag=a1\r\nTo: <sip:bob@example.net>;tag=b2\r\n"
            "Call-ID: ws-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()  # fmt: skip


def ws_context():  # type: ignore[no-untyped-def]
    return context(TCP, ("192.0.2.10", 51000), ("198.51.100.7", 8080))


def messages(ctx) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for ev in ctx.knowledge.messages:
        m = ev.message
        out.append((m.method if m.is_request else str(m.status_code)) + f"/{ev.via}")
    return out


def test_upgrade_then_sip_messages_in_frames() -> None:
    invite = sip("INVITE", SDP)
    half = len(invite) // 2
    flow = packets(
        UPGRADE,
        (1, SWITCHED + plain(b"", PING)),  # a ping right behind the 101
        mask(invite[:half], TEXT, fin=False)[:9],  # a frame split over two segments
        mask(invite[:half], TEXT, fin=False)[9:] + mask(b"", PING),  # control between fragments
        mask(invite[half:], CONTINUATION),
        (1, plain(ok("100 Trying")) + plain(ok("180 Ringing"))),  # two frames, one segment
        (1, plain(ok())),
    )
    ctx = ws_context()
    result = run(SipWsDissector(), ctx, flow)
    assert result.matched_at == 1
    assert messages(ctx) == ["INVITE/ws", "100/ws", "180/ws", "200/ws"]
    best = max(ctx.findings, key=lambda f: f.confidence)
    assert best.protocol == "SIP" and best.category == SIGNALING and best.at_packet == 5
    assert "after the upgrade to the sip subprotocol at packet 1" in best.evidence
    # The INVITE's SDP announced its media address for the flows to come.
    assert ctx.knowledge.expected("192.0.2.10", 40000, ctx.first_ts_ns + 10**9) is not None
    assert not ctx.anomalies.records


def test_plain_websocket_and_plain_http_are_not_sip() -> None:
    for request in (UPGRADE.replace(b"Protocol: sip", b"Protocol: chat"),
                    b"GET /index.html HTTP/1.1\r\nHost: example.net\r\n\r\n"):  # fmt: skip
        result = run(SipWsDissector(), ws_context(), packets(request))
        assert result.verdicts == [Probe.NO]


def test_request_head_over_two_segments() -> None:
    result = run(SipWsDissector(), ws_context(), packets(UPGRADE[:30], UPGRADE[30:]))
    assert result.verdicts == [Probe.MAYBE, Probe.MATCH]


def test_a_refused_upgrade_is_an_anomaly_and_ends_the_following() -> None:
    ctx = ws_context()
    refused = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    run(SipWsDissector(), ctx, packets(UPGRADE, (1, refused), mask(sip("REGISTER"))))
    assert [a.name for a in ctx.anomalies.records] == ["sip_ws_refused"]
    assert messages(ctx) == []


def test_bad_frames_and_compressed_messages_are_named() -> None:
    ctx = ws_context()
    deflated = bytearray(mask(b"\x00compressed bytes"))
    deflated[0] |= 0x40  # RSV1: permessage-deflate (RFC 7692)
    run(SipWsDissector(), ctx, packets(
        UPGRADE, (1, SWITCHED), bytes(deflated), plain(sip("OPTIONS")),  # client unmasked
        mask(b"not sip at all"), bytes([0x83, 0x80, 0, 0, 0, 0]), mask(sip("BYE")),
    ))  # fmt: skip
    names = [a.name for a in ctx.anomalies.records]
    assert names == ["sip_ws_compressed", "sip_ws_bad_frame", "sip_ws_malformed",
                     "sip_ws_bad_frame"]  # fmt: skip
    # The unmasked OPTIONS is read (named, not dropped); after the reserved opcode the
    # framing is lost until the next segment, whose BYE is read.
    assert messages(ctx) == ["OPTIONS/ws", "BYE/ws"]


def test_a_close_frame_ends_the_following() -> None:
    ctx = ws_context()
    run(SipWsDissector(), ctx, packets(UPGRADE, (1, SWITCHED), mask(b"\x03\xe8", 0x8),
                                        mask(sip("REGISTER"))))  # fmt: skip
    assert messages(ctx) == []
