"""SIP over WebSocket (RFC 7118) as facts: the HTTP/1.1 upgrade (RFC 6455 §4) that asks
for the ``sip`` subprotocol, then WebSocket frames (RFC 6455 §5) whose messages are SIP
messages, one SIP message per WebSocket message (RFC 7118 §5).

WebRTC softphones (JsSIP, SIP.js) and their proxies (Kamailio, Asterisk, FreeSWITCH)
speak it. Plain ``ws://`` only: ``wss://`` is TLS and stays TLS (its SNI names the
server). The SIP messages go to the same places as over UDP and TCP (calls, detectors,
SDP expectations), their transport named ``ws``.

Messages compressed by the permessage-deflate extension (RFC 7692: browsers offer it,
and a server that accepts it compresses its answers) are inflated: one raw DEFLATE
stream per direction, kept from message to message, since by default each message may
refer back to the ones before it (context takeover, §7.1.1); a capture that begins
after some compressed messages may lack that history, and such a message is named
(``sip_ws_compressed``), not read.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from voipscope.bounded import CappedTable
from voipscope.dissect.base import SIGNALING, TCP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.http import HttpHead, head_ended, parse_http_head
from voipscope.dissect.sip import (
    ACCOUNT_ANOMALIES,
    SipDissector,
    SipFlowState,
    account_message,
    looks_like_sip,
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
_WEBSOCKET = re.compile(rb"websocket", re.IGNORECASE)  # the Upgrade token (RFC 6455 §4.1)
RSV1 = 0x4  # RFC 7692 §6: on a message's first frame, the message is compressed
# RFC 7692 §7.2.2: the sender removed these 4 octets (an empty stored block, the end of
# a sync flush) from the end of each compressed message; the receiver puts them back.
DEFLATE_TAIL = b"\x00\x00\xff\xff"


@dataclass(slots=True)
class WsHeader:
    fin: bool
    rsv: int  # RSV1-3 (§5.2): set only by a negotiated extension (permessage-deflate)
    opcode: int
    masked: bool
    key: bytes
    header_bytes: int
    length: int  # payload bytes

    @property
    def frame_bytes(self) -> int:
        return self.header_bytes + self.length


@dataclass(slots=True)
class WsFrame:
    fin: bool
    opcode: int
    masked: bool
    payload: bytes  # unmasked
    frame_bytes: int  # header and payload: what the frame used of the stream
    rsv: int = 0


def parse_ws_header(data: bytes | bytearray) -> WsHeader:
    """The header of the frame at the start of ``data`` (RFC 6455 §5.2). Truncated when
    it continues past ``data``; Malformed for a reserved opcode, a fragmented or oversized
    control frame, or a 64-bit length with its most significant bit set."""
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
    key = b""
    if masked:
        if len(data) < offset + 4:
            raise Truncated("WebSocket masking key has not ended")
        key, offset = bytes(data[offset : offset + 4]), offset + 4
    return WsHeader(fin, rsv, opcode, masked, key, offset, length)


def parse_ws_frame(data: bytes | bytearray, max_payload: int) -> WsFrame:
    """One whole frame from the start of ``data``: parse_ws_header, and Truncated until
    its payload is there; Malformed for a payload over ``max_payload``."""
    h = parse_ws_header(data)
    if h.length > max_payload:
        raise Malformed(f"WebSocket frame of {h.length} bytes (more than {max_payload} buffered)")
    if len(data) < h.frame_bytes:
        raise Truncated(f"WebSocket frame payload needs {h.frame_bytes - len(data)} more bytes")
    return _frame(h, data)


def _frame(h: WsHeader, data: bytes | bytearray) -> WsFrame:
    """The frame ``h`` heads, its payload (all in ``data``) unmasked."""
    payload = bytes(data[h.header_bytes : h.frame_bytes])
    return WsFrame(h.fin, h.opcode, h.masked, unmask(payload, h.key) if h.masked else payload,
                   h.frame_bytes, h.rsv)  # fmt: skip


def unmask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3: octet i XOR key[i mod 4], as one big-integer XOR."""
    n = len(payload)
    if n == 0:
        return payload
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def offers_sip(values: list[str]) -> bool:
    """Sec-WebSocket-Protocol values (the header may repeat, RFC 6455 §11.3.4) list the
    ``sip`` subprotocol."""
    return any(
        token.strip().lower() == SUBPROTOCOL for value in values for token in value.split(",")
    )


def _subprotocols(head: HttpHead) -> list[str]:
    return [value for name, value in head.headers if name == "sec-websocket-protocol"]


def sip_frame(data: bytes | bytearray) -> WsFrame | None:
    """A whole unfragmented text or binary frame at the start of ``data`` whose payload
    starts like a SIP message: SIP over WebSocket seen without its upgrade."""
    try:
        frame = parse_ws_frame(data, len(data))
    except DecodeError:
        return None
    if not frame.fin or frame.rsv or frame.opcode not in DATA_OPCODES:
        return None
    return frame if looks_like_sip(frame.payload) else None


Connection = tuple[str, int, str, int]  # client ip, port, server ip, port


@dataclass(slots=True)
class SipWsState:
    stream: StreamBuffers
    client: int = 0  # direction of the client (the side that masks its frames)
    upgrade_at: int = 0  # packet of the upgrade request (0: not in this flow)
    accepted: bool = False  # the server's 101 naming sip was seen (or is behind us)
    closed: list[bool] = field(default_factory=lambda: [False, False])
    fragments: list[bytearray] = field(default_factory=lambda: [bytearray(), bytearray()])
    fragmenting: list[bool] = field(default_factory=lambda: [False, False])
    # Skip a message's frames to its end (too big, or begun before the capture).
    skipping: list[bool] = field(default_factory=lambda: [False, False])
    # The message being read is compressed (RSV1 on its first frame, RFC 7692 §6).
    compressed: list[bool] = field(default_factory=lambda: [False, False])
    # Per direction, the DEFLATE stream of its compressed messages (zlib decompressobj).
    inflaters: list[Any] = field(default_factory=lambda: [None, None])
    # Payload bytes of an oversized frame still to pass over (its length was known).
    skip_bytes: list[int] = field(default_factory=lambda: [0, 0])
    # The flow began inside a connection: a continuation frame first is no anomaly.
    resumed: list[bool] = field(default_factory=lambda: [False, False])
    sip: SipFlowState = field(default_factory=SipFlowState)  # its .messages: SIP read


class SipWsDissector(Dissector):
    name = "SIP-WS"
    transports = frozenset({TCP})
    # The client's "GET ... HTTP/1.1" upgrade; or a frame, where the flow continues a
    # connection upgraded earlier (a new flow after an idle or active timeout) or the
    # capture began after the upgrade (§5.2 first octet: FIN, RSV, opcode).
    tcp_first_bytes = frozenset(b"G" + bytes([0x00, 0x01, 0x02, 0x80, 0x81, 0x82, 0x88, 0x89,
                                              0x8A]))  # fmt: skip
    budget_packets = 4  # the request head may take a few segments
    follow_packets = -1  # every message of every dialog, as SIP over TCP
    ANOMALIES = {
        "sip_ws_refused": "the server answered the upgrade to the sip subprotocol with "
        "something other than 101 Switching Protocols naming it",
        "sip_ws_bad_frame": "a WebSocket frame that breaks RFC 6455 §5 (reserved opcode, "
        "oversized or fragmented control frame, a mask on the wrong side)",
        "sip_ws_compressed": "a message compressed by permessage-deflate (RFC 7692) that "
        "does not inflate (it refers to messages from before the capture, or is broken): "
        "not read",
        "sip_ws_malformed": "a WebSocket message that is not a SIP message",
        "sip_ws_stream_overflow": "a frame or message longer than "
        "dissect.max_stream_buffer_bytes: passed over unread",
        # What a SIP message says wrong, whatever carries it (sip.account_message).
        **{k: v for k, v in SipDissector.ANOMALIES.items() if k in ACCOUNT_ANOMALIES},
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        state: SipWsState | None = ctx.state.get(self.name)
        if state is None:
            if not pkt.payload.startswith(b"GET "):
                return self._probe_frame(ctx, pkt)
            state = ctx.state[self.name] = SipWsState(StreamBuffers(ctx.max_stream_buffer_bytes))
            state.client = pkt.direction
        if pkt.direction != state.client:
            return Probe.MAYBE  # a server speaking before the request is complete
        buf = state.stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        if state.stream.overflowed:
            return self._no(ctx)
        # Most GETs are plain HTTP: look at the head only once it has ended, and parse it
        # only when it speaks of WebSocket at all.
        if not head_ended(buf):
            return Probe.MAYBE
        if _WEBSOCKET.search(buf) is None:
            return self._no(ctx)
        try:
            head = parse_http_head(bytes(buf))
        except Truncated:
            return Probe.MAYBE
        except DecodeError:
            return self._no(ctx)
        if not head.complete:
            return Probe.MAYBE
        upgrade = (head.header("upgrade") or "").lower()
        if head.method != "GET" or "websocket" not in upgrade:
            return self._no(ctx)
        if not offers_sip(_subprotocols(head)):
            return self._no(ctx)
        state.stream.consume(pkt.direction, head.head_bytes)
        state.upgrade_at = pkt.seq
        port = ctx.endpoint(1 - pkt.direction)[1]
        ctx.report(Finding("SIP", SIGNALING, 0.9, "HTTP upgrade to WebSocket asking for the "
                           f"sip subprotocol (RFC 7118 §4), port {port}", pkt.seq))  # fmt: skip
        self._frames(ctx, state, pkt)  # frames sent right behind the request
        return Probe.MATCH

    def _no(self, ctx: FlowContext) -> Probe:
        ctx.state.pop(self.name, None)  # an HTTP flow keeps no copy of its head here
        return Probe.NO

    def _probe_frame(self, ctx: FlowContext, pkt: Packet) -> Probe:
        """A flow that starts with a frame: one of a connection upgraded to sip earlier in
        the capture (the same 5-tuple), or SIP in a frame without the upgrade."""
        known = _connections(ctx)
        here, there = ctx.endpoint(pkt.direction), ctx.endpoint(1 - pkt.direction)
        sender_is_client = known.peek((*here, *there))
        if sender_is_client is None and known.peek((*there, *here)) is not None:
            sender_is_client = False
        if sender_is_client is not None:
            why = "continues a WebSocket connection upgraded to sip earlier in the capture"
            confidence = 0.9
        else:
            frame = sip_frame(pkt.payload)
            if frame is None:
                return Probe.NO
            sender_is_client = frame.masked  # §5.1: only clients mask
            why = "a SIP message in a WebSocket frame (the upgrade is not in the capture)"
            confidence = 0.8
        state = ctx.state[self.name] = SipWsState(StreamBuffers(ctx.max_stream_buffer_bytes))
        state.client = pkt.direction if sender_is_client else 1 - pkt.direction
        state.accepted = True
        state.resumed = [True, True]
        _remember(ctx, state)
        ctx.report(Finding("SIP", SIGNALING, confidence, f"{why} (RFC 7118)", pkt.seq))
        state.stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        self._frames(ctx, state, pkt)
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        state: SipWsState = ctx.state[self.name]
        direction = pkt.direction
        if state.closed[direction]:
            return Probe.NO if all(state.closed) else None
        data = state.stream.fresh(direction, pkt.payload, pkt.tcp_seq)  # no repeats
        if state.skip_bytes[direction]:
            passed = min(state.skip_bytes[direction], len(data))
            state.skip_bytes[direction] -= passed
            data = data[passed:]
        state.stream.add(direction, data)
        if state.stream.overflowed:
            state.stream.overflowed = False
            ctx.anomaly("sip_ws_stream_overflow", "TCP buffer dropped", pkt.ts_ns)
            return None
        if direction != state.client and not state.accepted:
            refused = self._server_head(ctx, state, pkt)
            if refused is not None:
                return refused
            if not state.accepted:
                return None
        self._frames(ctx, state, pkt)
        return Probe.NO if all(state.closed) else None

    def _server_head(self, ctx: FlowContext, state: SipWsState, pkt: Packet) -> Probe | None:
        """The server's answer to the upgrade: accepted (state.accepted), still coming
        (None), or refused (Probe.NO, anomaly). Frames where the 101 was not captured
        mean it was accepted."""
        buf = state.stream.pending[pkt.direction]
        if not buf.startswith(b"HTTP/"[: len(buf)]):
            if sip_frame(buf) is not None or not buf:
                state.accepted = True
                return None
            ctx.anomaly("sip_ws_refused", "the server answered with neither HTTP nor a "
                        "WebSocket frame", pkt.ts_ns)  # fmt: skip
            return Probe.NO
        try:
            head = parse_http_head(bytes(buf))
        except Truncated:
            return None
        except DecodeError as exc:
            ctx.anomaly("sip_ws_refused", f"the answer does not parse: {exc}", pkt.ts_ns)
            return Probe.NO
        if not head.complete:
            return None
        if head.status != SWITCHING_PROTOCOLS or not offers_sip(_subprotocols(head)):
            what = f"{head.status} {head.reason or ''}".strip()
            ctx.anomaly("sip_ws_refused", f"upgrade answered {what}", pkt.ts_ns)
            return Probe.NO
        state.stream.consume(pkt.direction, head.head_bytes)
        state.accepted = True
        _remember(ctx, state)
        return None

    def _frames(self, ctx: FlowContext, state: SipWsState, pkt: Packet) -> None:
        """Every complete frame of this direction's stream; SIP messages accounted."""
        direction = pkt.direction
        buf = state.stream.pending[direction]
        limit = ctx.max_stream_buffer_bytes
        while buf and not state.closed[direction]:
            try:
                h = parse_ws_header(buf)
            except Truncated:
                return
            except DecodeError as exc:
                self._lost(ctx, state, direction, str(exc), pkt)
                return
            # RFC 6455 §5.1: a client masks every frame, a server none; the wrong way
            # round, this is not where a frame starts.
            if h.masked != (direction == state.client):
                side = "client" if direction == state.client else "server"
                self._lost(ctx, state, direction, f"{side} frame with MASK={int(h.masked)}",
                           pkt)  # fmt: skip
                return
            if h.length > limit - h.header_bytes:
                # Too big to buffer; its length is known, so pass over it and stay framed.
                ctx.anomaly("sip_ws_stream_overflow", f"frame of {h.length} bytes passed over",
                            pkt.ts_ns)  # fmt: skip
                state.skip_bytes[direction] = max(0, h.frame_bytes - len(buf))
                buf.clear()
                state.inflaters[direction] = None  # what it compressed is history we lack
                state.skipping[direction] = h.opcode in DATA_OPCODES or h.opcode == CONTINUATION
                state.fragmenting[direction] = not h.fin
                return
            if len(buf) < h.frame_bytes:
                return
            frame = _frame(h, buf)
            state.stream.consume(direction, h.frame_bytes)
            if frame.opcode == CLOSE:
                state.closed[direction] = True  # §5.5.1: the other side may still send
                return
            if frame.opcode in CONTROL_OPCODES:
                continue  # ping, pong
            message = self._message(ctx, state, frame, direction, pkt)
            if message is not None:
                self._sip(ctx, state, message, pkt)

    @staticmethod
    def _lost(ctx: FlowContext, state: SipWsState, direction: int, why: str, pkt: Packet) -> None:
        """The framing is lost: named, the buffered bytes dropped; reading starts again
        at the next segment (implementations send a frame per segment or more)."""
        ctx.anomaly("sip_ws_bad_frame", why, pkt.ts_ns)
        state.stream.pending[direction].clear()
        state.fragments[direction].clear()
        state.fragmenting[direction] = False
        state.skipping[direction] = False
        state.resumed[direction] = True  # a continuation next is no new anomaly

    def _message(
        self, ctx: FlowContext, state: SipWsState, frame: WsFrame, direction: int, pkt: Packet
    ) -> bytes | None:
        """A whole WebSocket message once its last frame came (§5.4 fragmentation)."""
        parts = state.fragments[direction]
        if frame.opcode in DATA_OPCODES:
            if state.fragmenting[direction] and not state.skipping[direction]:
                ctx.anomaly("sip_ws_bad_frame", "a new message before the last one ended",
                            pkt.ts_ns)  # fmt: skip
            parts.clear()
            state.skipping[direction] = False
            state.compressed[direction] = bool(frame.rsv & RSV1)
        elif not state.fragmenting[direction]:
            if not state.resumed[direction]:
                ctx.anomaly("sip_ws_bad_frame", "a continuation frame outside a message",
                            pkt.ts_ns)  # fmt: skip
            state.resumed[direction] = False
            state.skipping[direction] = not frame.fin  # the rest of a message we missed
            state.fragmenting[direction] = not frame.fin
            return None
        state.resumed[direction] = False
        state.fragmenting[direction] = not frame.fin
        if state.skipping[direction]:
            return None
        parts += frame.payload
        if len(parts) > ctx.max_stream_buffer_bytes:
            ctx.anomaly("sip_ws_stream_overflow", "fragmented message passed over", pkt.ts_ns)
            parts.clear()
            state.inflaters[direction] = None  # what it compressed is history we lack
            state.skipping[direction] = not frame.fin
            return None
        if not frame.fin:
            return None
        message = bytes(parts)
        parts.clear()
        if state.compressed[direction]:
            return self._inflate(ctx, state, direction, message, pkt)
        return message

    @staticmethod
    def _inflate(
        ctx: FlowContext, state: SipWsState, direction: int, message: bytes, pkt: Packet
    ) -> bytes | None:
        """A compressed message inflated (RFC 7692 §7.2.2) within the stream buffer's
        bound, or None with the anomaly that says why not."""
        inflater = state.inflaters[direction]
        if inflater is None or inflater.eof:  # eof: the sender ended its stream (BFINAL)
            # Raw DEFLATE with the largest window: a smaller negotiated one fits in it.
            inflater = state.inflaters[direction] = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            text = inflater.decompress(message + DEFLATE_TAIL, ctx.max_stream_buffer_bytes)
        except zlib.error as exc:
            # Later messages may still inflate (the sender may reset its context).
            state.inflaters[direction] = None
            ctx.anomaly("sip_ws_compressed", f"does not inflate: {exc}", pkt.ts_ns)
            return None
        if inflater.unconsumed_tail:
            state.inflaters[direction] = None  # out of step with the sender now
            ctx.anomaly("sip_ws_stream_overflow", "a compressed message inflates past "
                        "dissect.max_stream_buffer_bytes: passed over", pkt.ts_ns)  # fmt: skip
            return None
        return text

    def _sip(self, ctx: FlowContext, state: SipWsState, message: bytes, pkt: Packet) -> None:
        if not message.strip(b"\r\n "):
            return  # keep-alive (RFC 7118 leaves them to WebSocket; some send CRLF)
        try:
            msg = parse_sip(message)
        except DecodeError as exc:
            ctx.anomaly("sip_ws_malformed", str(exc), pkt.ts_ns)
            return
        if state.sip.messages == 0 and state.upgrade_at:
            what = f"{msg.method} request" if msg.is_request else f"{msg.status_code} response"
            ctx.report(Finding("SIP", SIGNALING, 0.99, f"SIP {what} in a WebSocket message "
                               f"(RFC 7118 §5), after the upgrade to the sip subprotocol at "
                               f"packet {state.upgrade_at}", pkt.seq))  # fmt: skip
        account_message(ctx, state.sip, msg, pkt, via="ws")


MAX_CONNECTIONS = 16_384  # upgraded connections remembered for later flows on them


def _connections(ctx: FlowContext) -> CappedTable[Connection, bool]:
    return ctx.knowledge.table("sip_ws", lambda: CappedTable(MAX_CONNECTIONS, bool))


def _remember(ctx: FlowContext, state: SipWsState) -> None:
    """This connection is SIP over WebSocket: a later flow on its 5-tuple (after an idle
    or active timeout cut this one) continues it."""
    client, server = ctx.endpoint(state.client), ctx.endpoint(1 - state.client)
    _connections(ctx).put((*client, *server), True)
