"""SIP over WebSocket (RFC 7118) as facts: the HTTP/1.1 upgrade (RFC 6455 §4) that asks
for the ``sip`` subprotocol, then WebSocket frames (RFC 6455 §5) whose messages are SIP
messages, one SIP message per WebSocket message (RFC 7118 §5).

WebRTC softphones (JsSIP, SIP.js) and their proxies (Kamailio, Asterisk, FreeSWITCH)
speak it. Plain ``ws://`` only: ``wss://`` is TLS and stays TLS (its SNI names the
server). The SIP messages go to the same places as over UDP and TCP (calls, detectors,
SDP expectations), their transport named ``ws``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import SIGNALING, TCP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.http import parse_http_head
from voipscope.dissect.sip import (
    ACCOUNT_ANOMALIES,
    SipDissector,
    SipFlowState,
    account_message,
    parse_sip,
)
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import DecodeError, Malformed, Truncated

# RFC 6455 §5.2 opcodes; §11.8 keeps 0x3-0x7 and 0xB-0xF reserved.
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({TEXT, BINARY})
CONTROL_OPCODES = frozenset({CLOSE, PING, PONG})
MAX_CONTROL_PAYLOAD = 125  # RFC 6455 §5.5
SUBPROTOCOL = "sip"  # RFC 7118 §4, IANA WebSocket Subprotocol Name Registry
SWITCHING_PROTOCOLS = 101  # RFC 9110 §15.2.2


@dataclass(slots=True)
class WsFrame:
    fin: bool
    opcode: int
    masked: bool
    payload: bytes  # unmasked
    frame_bytes: int  # header and payload: what the frame used of the stream
    rsv: int = 0  # RSV1-3 (§5.2): set only by a negotiated extension (permessage-deflate)


def parse_ws_frame(data: bytes | bytearray, max_payload: int) -> WsFrame:
    """One frame from the start of ``data``. Truncated when the frame continues past it;
    Malformed for a reserved opcode, a fragmented or oversized control frame, a 64-bit
    length with its top bit set (§5.2), or a payload over ``max_payload``."""
    if len(data) < 2:
        raise Truncated("WebSocket frame header has not ended")
    b0, b1 = data[0], data[1]
    fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0x0F
    masked, length = bool(b1 & 0x80), b1 & 0x7F
    if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES and opcode != CONTINUATION:
        raise Malformed(f"WebSocket frame with reserved opcode {opcode:#x}")
    offset = 2
    if length == 126:
        if len(data) < 4:
            raise Truncated("WebSocket 16-bit payload length has not ended")
        length, offset = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        if len(data) < 10:
            raise Truncated("WebSocket 64-bit payload length has not ended")
        length, offset = int.from_bytes(data[2:10], "big"), 10
        if length >> 63:
            raise Malformed("WebSocket 64-bit payload length with its most significant bit set")
    if opcode in CONTROL_OPCODES and (not fin or length > MAX_CONTROL_PAYLOAD):
        raise Malformed(f"WebSocket control frame {opcode:#x} fragmented or over 125 bytes")
    if length > max_payload:
        raise Malformed(f"WebSocket frame of {length} bytes (more than {max_payload} buffered)")
    key = b""
    if masked:
        if len(data) < offset + 4:
            raise Truncated("WebSocket masking key has not ended")
        key, offset = bytes(data[offset : offset + 4]), offset + 4
    end = offset + length
    if len(data) < end:
        raise Truncated(f"WebSocket frame payload needs {end - len(data)} more bytes")
    payload = bytes(data[offset:end])
    return WsFrame(fin, opcode, masked, unmask(payload, key) if masked else payload, end, rsv)


def unmask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3: octet i XOR key[i mod 4], as one big-integer XOR."""
    n = len(payload)
    if n == 0:
        return payload
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def offers_sip(value: str | None) -> bool:
    """A Sec-WebSocket-Protocol value lists the ``sip`` subprotocol."""
    return value is not None and any(
        token.strip().lower() == SUBPROTOCOL for token in value.split(",")
    )


@dataclass(slots=True)
class SipWsState:
    stream: StreamBuffers
    client: int = 0  # direction of the upgrade request
    upgrade_at: int = 0  # its packet
    accepted: bool = False  # the server's 101 naming the sip subprotocol was seen
    closed: bool = False
    fragments: list[bytearray] = field(default_factory=lambda: [bytearray(), bytearray()])
    fragmenting: list[bool] = field(default_factory=lambda: [False, False])
    compressed: list[bool] = field(default_factory=lambda: [False, False])  # skip to its end
    sip: SipFlowState = field(default_factory=SipFlowState)
    messages: int = 0


class SipWsDissector(Dissector):
    name = "SIP-WS"
    transports = frozenset({TCP})
    tcp_first_bytes = frozenset(b"G")  # the client's "GET ... HTTP/1.1" upgrade request
    budget_packets = 4  # the request head may take a few segments
    follow_packets = -1  # every message of every dialog, as SIP over TCP
    ANOMALIES = {
        "sip_ws_refused": "the server answered the upgrade to the sip subprotocol with "
        "something other than 101 Switching Protocols naming it",
        "sip_ws_bad_frame": "a WebSocket frame that breaks RFC 6455 §5 (reserved opcode, "
        "oversized or fragmented control frame, a mask on the wrong side)",
        "sip_ws_compressed": "a frame compressed by an extension (RSV1, permessage-deflate, "
        "RFC 7692): its SIP message is not read",
        "sip_ws_malformed": "a WebSocket message that is not a SIP message",
        "sip_ws_stream_overflow": "more than dissect.max_stream_buffer_bytes without a "
        "complete frame or message",
        # What a SIP message says wrong, whatever carries it (sip.account_message).
        **{k: v for k, v in SipDissector.ANOMALIES.items() if k in ACCOUNT_ANOMALIES},
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        state: SipWsState | None = ctx.state.get(self.name)
        if state is None:
            if not pkt.payload.startswith(b"GET "):
                return Probe.NO
            state = ctx.state[self.name] = SipWsState(StreamBuffers(ctx.max_stream_buffer_bytes))
            state.client = pkt.direction
        if pkt.direction != state.client:
            return Probe.MAYBE  # a server speaking before the request is complete
        buf = state.stream.add(pkt.direction, pkt.payload)
        if state.stream.overflowed:
            return Probe.NO
        try:
            head = parse_http_head(bytes(buf))
        except Truncated:
            return Probe.MAYBE
        except DecodeError:
            return Probe.NO
        if not head.complete:
            return Probe.MAYBE
        upgrade = (head.header("upgrade") or "").lower()
        if head.method != "GET" or "websocket" not in upgrade:
            return Probe.NO
        if not offers_sip(head.header("sec-websocket-protocol")):
            return Probe.NO
        state.stream.consume(pkt.direction, head.head_bytes)
        state.upgrade_at = pkt.seq
        port = ctx.endpoint(1 - pkt.direction)[1]
        ctx.report(Finding("SIP", SIGNALING, 0.9, "HTTP upgrade to WebSocket asking for the "
                           f"sip subprotocol (RFC 7118 §4), port {port}", pkt.seq))  # fmt: skip
        self._frames(ctx, state, pkt)  # frames sent right behind the request
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        state: SipWsState = ctx.state[self.name]
        if state.closed:
            return Probe.NO
        buf = state.stream.add(pkt.direction, pkt.payload)
        if state.stream.overflowed:
            state.stream.overflowed = False
            ctx.anomaly("sip_ws_stream_overflow", "TCP buffer dropped", pkt.ts_ns)
            return None
        if pkt.direction != state.client and not state.accepted:
            try:
                head = parse_http_head(bytes(buf))
            except Truncated:
                return None
            if not head.complete:
                return None
            sip_ok = offers_sip(head.header("sec-websocket-protocol"))
            if head.status != SWITCHING_PROTOCOLS or not sip_ok:
                what = f"{head.status} {head.reason or ''}".strip()
                ctx.anomaly("sip_ws_refused", f"upgrade answered {what}", pkt.ts_ns)
                return Probe.NO
            state.stream.consume(pkt.direction, head.head_bytes)
            state.accepted = True
        self._frames(ctx, state, pkt)
        return None

    def _frames(self, ctx: FlowContext, state: SipWsState, pkt: Packet) -> None:
        """Every complete frame of this direction's stream; SIP messages accounted."""
        direction = pkt.direction
        buf = state.stream.pending[direction]
        limit = ctx.max_stream_buffer_bytes
        while buf:
            try:
                frame = parse_ws_frame(buf, limit)
            except Truncated:
                return
            except DecodeError as exc:
                ctx.anomaly("sip_ws_bad_frame", str(exc), pkt.ts_ns)
                buf.clear()  # the framing is lost: resynchronising is guesswork
                return
            state.stream.consume(direction, frame.frame_bytes)
            # RFC 6455 §5.1: a client masks every frame, a server none.
            if frame.masked != (direction == state.client):
                side = "client" if direction == state.client else "server"
                ctx.anomaly("sip_ws_bad_frame", f"{side} frame with MASK={int(frame.masked)}",
                            pkt.ts_ns)  # fmt: skip
            if frame.opcode == CLOSE:
                state.closed = True
                return
            if frame.opcode in CONTROL_OPCODES:
                continue  # ping, pong
            message = self._message(ctx, state, frame, direction, pkt)
            if message is not None:
                self._sip(ctx, state, message, pkt)

    def _message(
        self, ctx: FlowContext, state: SipWsState, frame: WsFrame, direction: int, pkt: Packet
    ) -> bytes | None:
        """A whole WebSocket message once its last frame came (§5.4 fragmentation)."""
        parts = state.fragments[direction]
        if frame.opcode in DATA_OPCODES:
            if state.fragmenting[direction]:
                ctx.anomaly("sip_ws_bad_frame", "a new message before the last one ended",
                            pkt.ts_ns)  # fmt: skip
            parts.clear()
            # RFC 7692 §6: RSV1 on a message's first frame marks it compressed.
            state.compressed[direction] = bool(frame.rsv & 0x4)
            if state.compressed[direction]:
                ctx.anomaly("sip_ws_compressed", "RSV1 set: permessage-deflate", pkt.ts_ns)
        elif not state.fragmenting[direction]:
            ctx.anomaly("sip_ws_bad_frame", "a continuation frame outside a message", pkt.ts_ns)
            return None
        state.fragmenting[direction] = not frame.fin
        if state.compressed[direction]:
            return None
        parts += frame.payload
        if len(parts) > ctx.max_stream_buffer_bytes:
            ctx.anomaly("sip_ws_stream_overflow", "fragmented message dropped", pkt.ts_ns)
            parts.clear()
            state.fragmenting[direction] = False
            return None
        if not frame.fin:
            return None
        message = bytes(parts)
        parts.clear()
        return message

    def _sip(self, ctx: FlowContext, state: SipWsState, message: bytes, pkt: Packet) -> None:
        if not message.strip(b"\r\n "):
            return  # keep-alive (RFC 7118 §6 leaves them to the WebSocket layer; some send CRLF)
        try:
            msg = parse_sip(message)
        except DecodeError as exc:
            ctx.anomaly("sip_ws_malformed", str(exc), pkt.ts_ns)
            return
        state.messages += 1
        if state.messages == 1:
            what = f"{msg.method} request" if msg.is_request else f"{msg.status_code} response"
            ctx.report(Finding("SIP", SIGNALING, 0.99, f"SIP {what} in a WebSocket message "
                               f"(RFC 7118 §5), after the upgrade to the sip subprotocol at "
                               f"packet {state.upgrade_at}", pkt.seq))  # fmt: skip
        account_message(ctx, state.sip, msg, pkt, via="ws")
