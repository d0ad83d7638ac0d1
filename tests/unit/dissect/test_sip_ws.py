"""SIP over WebSocket (RFC 7118): WebSocket framing against RFC 6455 §5.7's examples and
every way a frame can be cut or broken, and the dissector on hand-made flows (the upgrade,
masked client frames, fragmented messages, frames split over segments, control frames,
a refused upgrade, permessage-deflate). The same traffic from a real server (Kamailio's
websocket module) is tests/realtraffic/test_sip_websocket.py."""

from __future__ import annotations

import os
import zlib

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
    assert offers_sip(["sip"]) and offers_sip(["xmpp, SIP"]) and offers_sip(["chat", "sip"])
    assert not offers_sip(["sips, msrp"]) and not offers_sip([])


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
    # A client frame without a mask is not where a frame starts (RFC 6455 §5.1): the
    # framing is lost until the next segment, as after the reserved opcode; the BYE of
    # the last segment is read.
    assert messages(ctx) == ["BYE/ws"]


def test_a_close_frame_ends_the_following() -> None:
    ctx = ws_context()
    run(SipWsDissector(), ctx, packets(UPGRADE, (1, SWITCHED), mask(b"\x03\xe8", 0x8),
                                        mask(sip("REGISTER"))))  # fmt: skip
    assert messages(ctx) == []


def test_the_server_may_still_send_after_the_client_closed() -> None:
    """RFC 6455 §5.5.1: a Close from one side leaves the other sending until it closes."""
    ctx = ws_context()
    run(SipWsDissector(), ctx, packets(UPGRADE, (1, SWITCHED), mask(b"\x03\xe8", 0x8),
                                        (1, plain(ok())), mask(sip("BYE"))))  # fmt: skip
    assert messages(ctx) == ["200/ws"]


def test_an_oversized_frame_is_passed_over_and_framing_kept() -> None:
    ctx = context(TCP, ("192.0.2.10", 51000), ("198.51.100.7", 8080))
    ctx.max_stream_buffer_bytes = 1024
    big = mask(b"x" * 5000, BINARY)
    flow = packets(UPGRADE, (1, SWITCHED), big[:600], big[600:3000], big[3000:] +
                   mask(sip("REGISTER")))  # fmt: skip
    run(SipWsDissector(), ctx, flow)
    assert [a.name for a in ctx.anomalies.records] == ["sip_ws_stream_overflow"]
    assert messages(ctx) == ["REGISTER/ws"]


def test_server_frames_without_a_captured_101_are_read() -> None:
    ctx = ws_context()
    run(SipWsDissector(), ctx, packets(UPGRADE, mask(sip("REGISTER")), (1, plain(ok()))))
    assert messages(ctx) == ["REGISTER/ws", "200/ws"] and not ctx.anomalies.records


def test_sip_in_a_frame_without_the_upgrade_is_found() -> None:
    """A capture that begins after the upgrade: the first frame, masked by the client,
    carries a SIP request."""
    ctx = ws_context()
    result = run(SipWsDissector(), ctx, packets(mask(sip("INVITE", SDP)), (1, plain(ok()))))
    assert result.matched_at == 1 and messages(ctx) == ["INVITE/ws", "200/ws"]
    assert max(f.confidence for f in ctx.findings) == 0.8
    assert run(SipWsDissector(), ws_context(), packets(mask(b"hello"))).verdicts == [Probe.NO]


# -- through the whole pipeline (every registered dissector, the arbiter, the calls) ----

C, S = ("192.0.2.10", 51000), ("198.51.100.7", 8080)


def tcp_flow(t0: float, segments: list[tuple[int, bytes]]) -> list:  # type: ignore[type-arg]
    """TCP segments of one connection (0: client to server), 10 ms apart, no handshake."""
    from tests import pcapbuild as pb

    out, seq = [], [1000, 5000]  # each direction numbers its bytes (RFC 9293 §3.4)
    for k, (direction, payload) in enumerate(segments):
        src, dst = (C, S) if direction == 0 else (S, C)
        out.append(pb.tcp_packet(t0 + k / 100, src[0], src[1], dst[0], dst[1], 0x18, payload,
                                 seq=seq[direction]))  # fmt: skip
        seq[direction] += len(payload)
    return out


def test_a_split_upgrade_request_is_sip_not_http(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """The request head over three segments: HTTP waits for the head before it matches,
    so SIP over WebSocket is still offered the request (review finding)."""
    from voipscope.api import iter_calls, read_flows

    path = str(write_pcap(tcp_flow(1.0, [(0, UPGRADE[:30]), (0, UPGRADE[30:90]),
                                         (0, UPGRADE[90:]), (1, SWITCHED),
                                         (0, mask(sip("INVITE", SDP))),
                                         (1, plain(ok()))])))  # fmt: skip
    (flow,) = read_flows(path).to_pylist()
    assert (flow["category"], flow["protocol"]) == ("voip-signaling", "SIP"), flow["evidence"]
    (call,) = list(iter_calls(path))
    assert call["transports"] == ["ws"] and call["final_code"] == 200


def test_a_connection_cut_by_the_idle_timeout_continues_as_sip(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """A registered softphone quiet for longer than flows.idle_timeout_s, then called: the
    new flow on the same 5-tuple starts with a frame and is still SIP over WebSocket."""
    from voipscope.api import iter_calls, read_flows

    first = tcp_flow(1.0, [(0, UPGRADE), (1, SWITCHED), (0, mask(sip("REGISTER"))),
                           (1, plain(ok()))])  # fmt: skip
    later = tcp_flow(300.0, [(1, plain(sip("INVITE", SDP))), (0, mask(ok("180 Ringing")))])
    path = str(write_pcap(first + later))
    flows = read_flows(path).to_pylist()
    ends = [(f["protocol"], f["end_reason"]) for f in flows]
    assert ends == [("SIP", "idle"), ("SIP", "end-of-capture")]
    assert any("continues a WebSocket connection" in e for e in flows[1]["evidence"])
    invite = [c for c in iter_calls(path) if c["kind"] == "call"]
    assert len(invite) == 1 and invite[0]["transports"] == ["ws"]


# -- permessage-deflate (RFC 7692) ------------------------------------------------------


class Deflater:
    """One sender's side of permessage-deflate: raw DEFLATE, a sync flush per message,
    its 4-octet tail removed (RFC 7692 §7.2.1); the window kept from message to message
    (context takeover) unless ``takeover`` is False."""

    def __init__(self, takeover: bool = True) -> None:
        self.takeover = takeover
        self._z = zlib.compressobj(wbits=-zlib.MAX_WBITS)

    def __call__(self, message: bytes) -> bytes:
        if not self.takeover:
            self._z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = self._z.compress(message) + self._z.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        return data[:-4]


def rsv1(frame: bytes) -> bytes:
    return bytes([frame[0] | 0x40]) + frame[1:]


def test_rfc7692_examples_inflate() -> None:
    """§7.2.3.1 "Hello" compressed, and §7.2.3.2 the same again referring to the first
    message's window: both from the server (unmasked), as SIP they are malformed, and
    neither is a compression anomaly."""
    ctx = ws_context()
    hello = bytes.fromhex("c107f248cdc9c90700")
    again = bytes.fromhex("c105f200110000")
    run(SipWsDissector(), ctx, packets(UPGRADE, (1, SWITCHED), (1, hello), (1, again)))
    names = [(a.name, a.detail) for a in ctx.anomalies.records]
    assert [n for n, _ in names] == ["sip_ws_malformed", "sip_ws_malformed"], names


def test_compressed_messages_both_ways_with_context_takeover() -> None:
    client, server = Deflater(), Deflater()
    first = client(sip("INVITE", SDP))
    second = client(sip("INVITE", SDP))  # the same text again: all back-references
    assert len(second) < len(first) // 4
    answer = server(ok("200 OK"))
    ctx = ws_context()
    run(SipWsDissector(), ctx, packets(
        UPGRADE, (1, SWITCHED), rsv1(mask(first)), (1, rsv1(plain(answer))),
        rsv1(mask(second)),
    ))  # fmt: skip
    assert messages(ctx) == ["INVITE/ws", "200/ws", "INVITE/ws"]
    assert ctx.anomalies.records == []


def test_a_fragmented_compressed_message_and_a_sender_without_takeover() -> None:
    client = Deflater(takeover=False)
    data = client(sip("REGISTER"))
    head, tail = data[:10], data[10:]
    ctx = ws_context()
    run(SipWsDissector(), ctx, packets(
        UPGRADE, (1, SWITCHED),
        rsv1(mask(head, TEXT, fin=False)), mask(tail, CONTINUATION),  # RSV1 on the first only
        rsv1(mask(client(sip("OPTIONS")))), mask(sip("BYE")),  # an uncompressed one between
        rsv1(mask(client(sip("INFO")))),
    ))  # fmt: skip
    assert messages(ctx) == ["REGISTER/ws", "OPTIONS/ws", "BYE/ws", "INFO/ws"]
    assert ctx.anomalies.records == []


def test_history_from_before_the_capture_is_named_not_guessed() -> None:
    """The client's first message is not in the capture; its second refers back into it
    and does not inflate (an anomaly); a message the client sends after resetting its
    context (a new stream: BFINAL) is read again."""
    client = Deflater()
    client(sip("REGISTER"))  # sent before the capture began
    lost_history = client(sip("REGISTER"))
    ctx = ws_context()
    fresh = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    final = fresh.compress(sip("OPTIONS")) + fresh.flush(zlib.Z_FINISH)  # BFINAL set
    run(SipWsDissector(), ctx, packets(
        UPGRADE, (1, SWITCHED), rsv1(mask(lost_history)), rsv1(mask(final)),
        rsv1(mask(Deflater()(sip("BYE")))),  # after BFINAL: a new stream
    ))  # fmt: skip
    assert [a.name for a in ctx.anomalies.records] == ["sip_ws_compressed"]
    assert messages(ctx) == ["OPTIONS/ws", "BYE/ws"]


def test_a_message_inflating_past_the_buffer_bound_is_passed_over() -> None:
    bomb = Deflater()(sip("MESSAGE", b"A" * (LIMIT * 4)))  # ~1 kB -> 256 kB
    assert len(bomb) < 2000
    ctx = ws_context()
    assert ctx.max_stream_buffer_bytes == LIMIT
    run(SipWsDissector(), ctx, packets(UPGRADE, (1, SWITCHED), rsv1(mask(bomb)),
                                        mask(sip("BYE"))))  # fmt: skip
    assert [a.name for a in ctx.anomalies.records] == ["sip_ws_stream_overflow"]
    assert messages(ctx) == ["BYE/ws"]
