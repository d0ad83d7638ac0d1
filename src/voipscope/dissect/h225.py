"""H.323 call signalling framing: TPKT (RFC 1006 §6) carrying Q.931 (ITU-T Q.931 §4) with
H.225.0 user-user data. Facts: message type and call reference; the ASN.1 PER H.225 body is
not decoded here."""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import SIGNALING, TCP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import Malformed, Truncated

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
    budget_packets = 3

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        stream = ctx.state.get(self.name)
        if stream is None:
            stream = ctx.state[self.name] = StreamBuffers(ctx.max_stream_buffer_bytes)
        buf = stream.add(pkt.direction, pkt.payload)
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


@dataclass(slots=True)
class RasFlowState:
    requests: dict[int, int]  # sequence number -> RasMessage choice, per request seen


class H225RasDissector(Dissector):
    """H.225.0 RAS over UDP: PER-encoded RasMessage whose requests and confirms share a
    requestSeqNum (the structure is too thin to trust one datagram alone)."""

    name = "H.225 RAS"
    budget_packets = 4
    udp_first_bytes = frozenset(range(0x80))  # extension bit clear

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if RAS_PORT not in (ctx.src_port, ctx.dst_port) or len(data) < 4:
            return Probe.NO
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
