"""H.323 call signalling framing: TPKT (RFC 1006 §6) carrying Q.931 (ITU-T Q.931 §4) with
H.225.0 user-user data, H.245 on its own TPKT channel, and RAS over UDP. Facts: message
type and call reference, the Q.931 information elements a call needs (cause, calling and
called number, display), and -- decoded by ``h225_asn1`` and ``h245`` -- the H.225.0
call identifier, release reason, H.245 address and media addresses. Each message is
handed to the later stages (``ctx.message``): ``H323Message`` for call signalling,
``RasMessage`` for RAS, ``H245Message`` for H.245."""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import SIGNALING, TCP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.h225_asn1 import H225Body, parse_h323_user_info, parse_ras
from voipscope.dissect.h245 import parse_h245
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import DecodeError, Malformed, Truncated

TPKT_VERSION = 3
TPKT_HEADER_BYTES = 4
Q931_DISCRIMINATOR = 0x08
Q931_MESSAGES = {0x01: "ALERTING", 0x02: "CALL PROCEEDING", 0x03: "PROGRESS", 0x05: "SETUP",
                 0x07: "CONNECT", 0x0F: "CONNECT ACK", 0x45: "DISCONNECT", 0x4D: "RELEASE",
                 0x5A: "RELEASE COMPLETE", 0x62: "FACILITY", 0x6E: "NOTIFY",
                 0x7B: "INFORMATION", 0x7D: "STATUS", 0x75: "STATUS ENQUIRY"}  # fmt: skip


@dataclass(slots=True, frozen=True)
class Q931Message:
    tpkt_length: int
    call_reference: bytes  # the value, flag bit cleared: the same for both sides of a call
    from_originator: bool  # flag bit 0: sent by the side that chose the reference (§4.3)
    message_type: int

    @property
    def name(self) -> str:
        return Q931_MESSAGES.get(self.message_type, f"0x{self.message_type:02x}")


def parse_tpkt_q931(data: bytes) -> Q931Message:
    if len(data) < TPKT_HEADER_BYTES:
        raise Truncated("TPKT header is truncated")
    if data[0] != TPKT_VERSION or data[1] != 0:
        raise Malformed(f"not a TPKT header (version {data[0]}, reserved {data[1]})")
    length = int.from_bytes(data[2:4], "big")
    if length < TPKT_HEADER_BYTES + 3:
        raise Malformed(f"TPKT length {length} is too short for Q.931")
    if length > len(data):
        raise Truncated(f"TPKT length {length} runs past the segment")
    q = data[TPKT_HEADER_BYTES:length]
    if q[0] != Q931_DISCRIMINATOR:
        raise Malformed(f"Q.931 protocol discriminator is 0x{q[0]:02x}, not 0x08")
    ref_len = q[1] & 0x0F
    if 2 + ref_len >= len(q):
        raise Truncated("Q.931 message ends inside its call reference")
    ref = bytearray(q[2 : 2 + ref_len])
    flag = bool(ref and ref[0] & 0x80)
    if ref:
        ref[0] &= 0x7F
    return Q931Message(length, bytes(ref), not flag, q[2 + ref_len])


# Q.931 §4.5 information element identifiers (codeset 0) a call tracker reads.
IE_CAUSE = 0x08  # §4.5.12
IE_DISPLAY = 0x28  # §4.5.16 (national use; H.225.0 §7.2.2.3 allows it)
IE_CALLING_NUMBER = 0x6C  # §4.5.10
IE_CALLED_NUMBER = 0x70  # §4.5.8
IE_USER_USER = 0x7E  # §4.5.30; H.225.0 §7.2.2.1: a two-octet length
MAX_IES = 64  # information elements read per message (attacker-controlled)


@dataclass(slots=True)
class H323Message:
    """One Q.931/H.225.0 call signalling message, as a call tracker needs it."""

    message_type: int
    call_reference: int  # value without the flag bit
    from_originator: bool  # flag bit clear: sent by the side that chose the reference
    calling_number: str | None = None
    called_number: str | None = None
    display: str | None = None
    cause: int | None = None  # Q.931 cause value (§4.5.12 octet 4), e.g. 16 normal clearing
    h225: H225Body | None = None  # None: no user-user IE, or it did not decode
    h225_error: str | None = None  # why the H.225.0 body did not decode
    raw: bytes = b""  # the TPKT packet: tells a TCP retransmission from a new message

    @property
    def name(self) -> str:
        return Q931_MESSAGES.get(self.message_type, f"0x{self.message_type:02x}")


def parse_h323_message(data: bytes) -> H323Message:
    """A whole TPKT packet with Q.931 inside: header, information elements, H.225.0 body."""
    head = parse_tpkt_q931(data)
    q = data[TPKT_HEADER_BYTES : head.tpkt_length]
    msg = H323Message(
        head.message_type,
        int.from_bytes(head.call_reference, "big"),
        head.from_originator,
        raw=bytes(data[: head.tpkt_length]),
    )
    offset = 3 + (q[1] & 0x0F)
    for _ in range(MAX_IES):
        if offset >= len(q):
            break
        ie = q[offset]
        if ie & 0x80:  # single-octet element (shift, sending complete ...): §4.5.1
            offset += 1
            continue
        if ie == IE_USER_USER:
            if offset + 3 > len(q):
                raise Truncated("Q.931 user-user element ends inside its length")
            length = int.from_bytes(q[offset + 1 : offset + 3], "big")
            body = q[offset + 3 : offset + 3 + length]
            offset += 3 + length
        else:
            if offset + 2 > len(q):
                raise Truncated(f"Q.931 element 0x{ie:02x} ends inside its length")
            length = q[offset + 1]
            body = q[offset + 2 : offset + 2 + length]
            offset += 2 + length
        if len(body) < length:
            raise Truncated(f"Q.931 element 0x{ie:02x} runs past the message")
        _element(msg, ie, body)
    else:
        raise Malformed(f"Q.931 message with more than {MAX_IES} information elements")
    return msg


def _element(msg: H323Message, ie: int, body: bytes) -> None:
    if ie == IE_CAUSE:
        # Octet 3: coding standard and location; its extension bit clear means octet
        # 3a (recommendation) follows. Then the cause value (§4.5.12).
        at = 1 if body[:1] and body[0] & 0x80 else 2
        if len(body) <= at:
            raise Truncated("Q.931 cause element has no cause value")
        msg.cause = body[at] & 0x7F
    elif ie in (IE_CALLING_NUMBER, IE_CALLED_NUMBER):
        # Octet 3: type and plan; calling party number has octet 3a (presentation and
        # screening) when the extension bit of octet 3 is clear (§4.5.10).
        at = 1 if ie == IE_CALLED_NUMBER or (body[:1] and body[0] & 0x80) else 2
        digits = body[at:].decode("ascii", "replace")
        if ie == IE_CALLING_NUMBER:
            msg.calling_number = digits
        else:
            msg.called_number = digits
    elif ie == IE_DISPLAY:
        msg.display = body.decode("latin-1").rstrip("\x00")  # some send C strings
    elif ie == IE_USER_USER and body:
        # Octet 3 is the protocol discriminator (0x05: X.208/X.209 coded, H.225.0).
        try:
            msg.h225 = parse_h323_user_info(body[1:])
        except DecodeError as exc:
            msg.h225_error = str(exc)


# -- dissectors --------------------------------------------------------------------------

# X.224 TPDU codes (ITU-T X.224 §13): TPKT also carries ISO transport for RDP and S7comm;
# byte 5 of those segments is one of these after the length indicator.
X224_CODES = frozenset({0xE0, 0xD0, 0xF0, 0x80, 0xC0, 0x50, 0x60, 0x70})
RAS_PORT = 1719  # H.225.0 RAS well-known port
RAS_MAX_CHOICE = 32  # RasMessage alternatives (H.225.0 v7 has 33 incl. extensions)


class H323Dissector(Dissector):
    """H.225.0 call signalling (TPKT + Q.931) and H.245 (TPKT + PER) over TCP."""

    name = "H.323"
    transports = frozenset({TCP})
    tcp_first_bytes = frozenset({TPKT_VERSION})
    budget_packets = 3
    follow_packets = -1  # every message of a call matters (release comes last)
    ANOMALIES = {
        "h323_malformed": "a TPKT packet of an H.323 flow that does not parse",
        "h323_stream_overflow": "a TCP direction buffered more than "
        "dissect.max_stream_buffer_bytes without a complete TPKT packet",
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        stream = ctx.state.get(self.name)
        if stream is None:
            stream = ctx.state[self.name] = StreamBuffers(ctx.max_stream_buffer_bytes)
        buf = stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        if len(buf) < TPKT_HEADER_BYTES + 2:
            # A TPKT header alone in a segment happens (h323.pcap frame 48): wait.
            return Probe.MAYBE if buf[:2] == b"\x03\x00" else Probe.NO
        if buf[0] != TPKT_VERSION or buf[1] != 0:
            return Probe.NO
        length = int.from_bytes(buf[2:4], "big")
        if length < TPKT_HEADER_BYTES + 3:
            return Probe.NO
        if length > len(buf):
            return Probe.MAYBE
        segment = bytes(buf[:length])
        stream.consume(pkt.direction, length)
        if segment[TPKT_HEADER_BYTES] == Q931_DISCRIMINATOR:
            msg = parse_tpkt_q931(segment)
            self._emit_probed(ctx, stream, pkt, segment)
            ctx.report(
                Finding(
                    "H.323",
                    SIGNALING,
                    0.95,
                    f"H.225.0 call signalling: TPKT + Q.931 {msg.name}, call "
                    f"reference 0x{msg.call_reference.hex() or '0'}",
                    pkt.seq,
                )
            )
            return Probe.MATCH
        if segment[TPKT_HEADER_BYTES + 1] in X224_CODES:
            return Probe.NO  # ISO transport (RDP, S7comm), not H.245
        self._emit_probed(ctx, stream, pkt, segment)
        ctx.report(
            Finding(
                "H.323",
                SIGNALING,
                0.6,
                f"TPKT-framed PER message of {length} bytes, not Q.931 or X.224: "
                "H.245 control channel",
                pkt.seq,
            )
        )
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        stream = ctx.state.get(self.name)
        if stream is None:
            stream = ctx.state[self.name] = StreamBuffers(ctx.max_stream_buffer_bytes)
        stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        if stream.overflowed:
            stream.overflowed = False
            ctx.anomaly("h323_stream_overflow", "TCP buffer dropped", pkt.ts_ns)
        self._drain(ctx, stream, pkt)

    def _emit_probed(
        self, ctx: FlowContext, stream: StreamBuffers, pkt: Packet, segment: bytes
    ) -> None:
        """The messages of the matching packet. Their bodies do not decide the match (the
        framing did), so one that does not decode is an anomaly, not a NO."""
        try:
            self._emit(ctx, pkt, segment)
            self._drain(ctx, stream, pkt)
        except DecodeError as exc:
            ctx.anomaly("h323_malformed", str(exc), pkt.ts_ns)

    def _drain(self, ctx: FlowContext, stream: StreamBuffers, pkt: Packet) -> None:
        """Every complete TPKT packet buffered in ``pkt``'s direction, in order."""
        buf = stream.pending[pkt.direction]
        while len(buf) >= TPKT_HEADER_BYTES:
            length = int.from_bytes(buf[2:4], "big")
            if buf[0] != TPKT_VERSION or buf[1] != 0 or length < TPKT_HEADER_BYTES + 1:
                head = bytes(buf[:4]).hex()
                buf.clear()  # lost framing: resynchronise on a later segment
                raise Malformed(f"not a TPKT header: {head}")
            if length > len(buf):
                return  # wait for the rest
            segment = bytes(buf[:length])
            stream.consume(pkt.direction, length)
            self._emit(ctx, pkt, segment)

    @staticmethod
    def _emit(ctx: FlowContext, pkt: Packet, segment: bytes) -> None:
        """Hand one TPKT packet to the later stages: Q.931 call signalling or H.245."""
        if segment[TPKT_HEADER_BYTES] == Q931_DISCRIMINATOR:
            ctx.message("H.323", pkt, parse_h323_message(segment))
        else:
            ctx.message("H.245", pkt, parse_h245(segment[TPKT_HEADER_BYTES:]))


@dataclass(slots=True)
class RasFlowState:
    requests: dict[int, int]  # sequence number -> RasMessage choice, per request seen


class H225RasDissector(Dissector):
    """H.225.0 RAS over UDP: PER-encoded RasMessage whose requests and confirms share a
    requestSeqNum (the structure is too thin to trust one datagram alone)."""

    name = "H.225 RAS"
    budget_packets = 4
    follow_packets = -1  # admission and disengage name the calls
    udp_first_bytes = frozenset(range(0x80))  # extension bit clear
    ANOMALIES = {"h225_ras_malformed": "a datagram of a RAS flow that does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if RAS_PORT not in (ctx.src_port, ctx.dst_port) or len(data) < 4:
            return Probe.NO
        self._emit(ctx, pkt)
        choice = (data[0] >> 2) & 0x1F  # extension bit, then 5-bit alternative index
        if data[0] & 0x80 or choice > RAS_MAX_CHOICE:
            return Probe.NO
        # The message's SEQUENCE preamble (extension and optional-field bits) fills the
        # rest of the first two bytes; requestSeqNum (1..65535, sent minus one) follows.
        seq = int.from_bytes(data[2:4], "big") + 1
        state = ctx.state.setdefault(self.name, RasFlowState({}))
        # Requests have even-ish indexes and their confirm/reject follow (GRQ 0, GCF 1,
        # GRJ 2, RRQ 3, RCF 4, ...): an answer has the request's sequence number.
        request = state.requests.get(seq)
        if request is not None and request < choice <= request + 2:
            ctx.report(
                Finding(
                    "H.323",
                    SIGNALING,
                    0.85,
                    f"H.225.0 RAS: message {choice} answers message {request} "
                    f"with requestSeqNum {seq} on port {RAS_PORT}",
                    pkt.seq,
                )
            )
            return Probe.MATCH
        if len(state.requests) < 16:
            state.requests[seq] = choice
        return Probe.MAYBE

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        ctx.message("H.225 RAS", pkt, parse_ras(pkt.payload))

    @staticmethod
    def _emit(ctx: FlowContext, pkt: Packet) -> None:
        """While probing, a RAS message that decodes is handed on too: the admission
        request of a call often comes before the answer that makes the match. Bytes that
        do not decode are simply not handed on (they may not be RAS at all)."""
        try:
            msg = parse_ras(pkt.payload)
        except DecodeError:
            return
        ctx.message("H.225 RAS", pkt, msg)

    def on_expire(self, ctx: FlowContext) -> None:
        state: RasFlowState = ctx.state[self.name]
        if ctx.best("H.323") is None and len(state.requests) >= 2:
            ctx.report(
                Finding(
                    "H.323",
                    SIGNALING,
                    0.5,
                    f"{len(state.requests)} RAS-shaped messages on port {RAS_PORT} "
                    "without an answer",
                    1,
                )
            )
