"""H.323 call signalling framing: TPKT (RFC 1006 §6) carrying Q.931 (ITU-T Q.931 §4) with
H.225.0 user-user data. Facts: message type and call reference; the ASN.1 PER H.225 body is
not decoded here."""

from __future__ import annotations

from dataclasses import dataclass

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
