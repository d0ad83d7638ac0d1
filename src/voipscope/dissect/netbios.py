"""NetBIOS over UDP (RFC 1001/1002), as facts: the name service on 137 and the datagram
service on 138, LAN chatter next to every Windows host (and, ignored, plausible bytes on
a port).

Name service (RFC 1002 §4.2.1): a DNS-like 12-byte header whose flags word has its own
layout (R, a 4-bit opcode, AA TC RD RA, two zero bits, B, RCODE), then a question or
resource record whose name is a NetBIOS name in first-level encoding (RFC 1001 §14.1):
length 32, then 32 letters A-P (two per byte of the 16-byte name), then the scope.
Datagram service (RFC 1002 §4.4.1): a message type 0x10-0x16, flags with four zero bits,
the sender's IP address and port, and for data datagrams a length that must add up to
the source name, destination name and user data that follow.
All of this is checked; the port only decides which flows are offered and which of the
two services to parse. Cross-checked with nDPI's netbios.c and Wireshark's
packet-nbns.c / packet-nbdgm.c.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

NAME_SERVICE_PORT = 137  # RFC 1002 §4.2
DATAGRAM_SERVICE_PORT = 138  # RFC 1002 §4.4
NS_HEADER_BYTES = 12  # RFC 1002 §4.2.1.1
# The flags word (RFC 1002 §4.2.1.1): R | OPCODE(4) | AA TC RD RA | 0 0 | B | RCODE(4).
NS_RESPONSE_BIT = 0x8000
NS_OPCODE_SHIFT = 11
NS_RESERVED_BITS = 0x0060
# 9 (refresh, alternate) and 15 (multi-homed registration): Windows, packet-nbns.c.
NS_OPCODES = {0: "query", 5: "registration", 6: "release", 7: "WACK", 8: "refresh",
              9: "refresh", 15: "multi-homed registration"}  # fmt: skip
NS_MAX_RECORDS = 8  # per section; RFC 1002 messages carry one question or one record
ENCODED_NAME_BYTES = 32  # RFC 1001 §14.1: 16 bytes, each as two letters 'A'+nibble
MAX_SCOPE_LABELS = 16  # attacker-controlled count (DESIGN §4)
NAME_LETTERS = frozenset(range(ord("A"), ord("P") + 1))
RR_TYPES = {0x0020: "NB", 0x0021: "NBSTAT"}  # RFC 1002 §4.2.1.2
CLASS_IN = 0x0001
RR_FIXED_BYTES = 10  # type, class, TTL, RDLENGTH (RFC 1002 §4.2.1.3)
QUESTION_POINTER = b"\xc0\x0c"  # label compression to the question name at offset 12

DGM_HEADER_BYTES = 10  # type, flags, id, source IP, source port (RFC 1002 §4.4.1)
DGM_DATA_HEADER_BYTES = 14  # + DGM_LENGTH and PACKET_OFFSET (§4.4.2)
DGM_TYPES = {0x10: "direct unique datagram", 0x11: "direct group datagram",
             0x12: "broadcast datagram", 0x13: "datagram error",
             0x14: "datagram query request", 0x15: "datagram positive query response",
             0x16: "datagram negative query response"}  # fmt: skip
DGM_DATA_TYPES = frozenset({0x10, 0x11, 0x12})
DGM_ERROR = 0x13
DGM_ERROR_CODES = frozenset({0x82, 0x83, 0x84})  # §4.4.3: name absent, bad source/dest
DGM_RESERVED_FLAGS = 0xF0  # §4.4.1: the four high bits of FLAGS are zero


@dataclass(slots=True, frozen=True)
class NetbiosName:
    name: str  # the 15 name characters, trailing spaces removed
    suffix: int  # the 16th byte: the service (0x00 workstation, 0x1d master browser ...)
    end: int  # offset after the name and its scope

    def __str__(self) -> str:
        return f"{self.name}<{self.suffix:02x}>"


@dataclass(slots=True, frozen=True)
class NameServiceMessage:
    opcode: int
    response: bool
    rcode: int
    broadcast: bool
    name: NetbiosName
    rr_type: int

    @property
    def name_of_opcode(self) -> str:
        return NS_OPCODES[self.opcode]


@dataclass(slots=True, frozen=True)
class DatagramMessage:
    msg_type: int
    source_ip: str
    source_port: int
    source_name: NetbiosName | None  # data datagrams
    destination_name: NetbiosName | None  # data datagrams and queries


def read_netbios_name(data: bytes, offset: int) -> NetbiosName:
    """A first-level encoded NetBIOS name and its scope labels at ``offset``."""
    if offset >= len(data):
        raise Truncated("NetBIOS name is missing")
    if data[offset] != ENCODED_NAME_BYTES:
        raise Malformed(f"NetBIOS name length {data[offset]} is not 32")
    start, end = offset + 1, offset + 1 + ENCODED_NAME_BYTES
    if end > len(data):
        raise Truncated("NetBIOS name runs past the datagram")
    encoded = data[start:end]
    if not NAME_LETTERS.issuperset(encoded):
        raise Malformed("NetBIOS name has characters outside A-P")
    raw = bytes(((encoded[k] - 65) << 4) | (encoded[k + 1] - 65) for k in range(0, 32, 2))
    # The scope (RFC 1001 §14.1): DNS-style labels up to a zero byte, usually none.
    at = end
    for _ in range(MAX_SCOPE_LABELS + 1):
        if at >= len(data):
            raise Truncated("NetBIOS name scope runs past the datagram")
        length = data[at]
        if length == 0:
            name = raw[:15].decode("latin-1").rstrip(" ")
            return NetbiosName(name, raw[15], at + 1)
        if length > 63:
            raise Malformed(f"NetBIOS scope label length {length} exceeds 63")
        at += 1 + length
    raise Malformed(f"NetBIOS name scope has more than {MAX_SCOPE_LABELS} labels")


def parse_name_service(data: bytes) -> NameServiceMessage:
    """One NetBIOS name service datagram (RFC 1002 §4.2); Truncated/Malformed."""
    if len(data) < NS_HEADER_BYTES:
        raise Truncated(f"NetBIOS name service message has {len(data)} bytes, fewer than 12")
    flags = int.from_bytes(data[2:4], "big")
    if flags & NS_RESERVED_BITS:
        raise Malformed("NetBIOS name service reserved flag bits are set")
    opcode = (flags >> NS_OPCODE_SHIFT) & 0x0F
    if opcode not in NS_OPCODES:
        raise Malformed(f"NetBIOS name service opcode {opcode} is not defined")
    response = bool(flags & NS_RESPONSE_BIT)
    rcode = flags & 0x000F
    qd, an, ns, ar = (int.from_bytes(data[k : k + 2], "big") for k in (4, 6, 8, 10))
    if max(qd, an, ns, ar) > NS_MAX_RECORDS:
        raise Malformed(f"NetBIOS name service counts {qd}/{an}/{ns}/{ar} are implausible")
    # Requests ask one question and answer none; responses (and WACK) answer without a
    # question (RFC 1002 §4.2.2-§4.2.18).
    if not response:
        if rcode:
            raise Malformed(f"NetBIOS name service request has RCODE {rcode}")
        if qd != 1 or an:
            raise Malformed(f"NetBIOS name service request has {qd} questions, {an} answers")
    elif qd or not an:
        raise Malformed(f"NetBIOS name service response has {qd} questions, {an} answers")
    name = read_netbios_name(data, NS_HEADER_BYTES)
    fixed = 4 if qd else RR_FIXED_BYTES  # question: type, class; record: + TTL, RDLENGTH
    if name.end + fixed > len(data):
        raise Truncated("NetBIOS name service question/record runs past the datagram")
    rr_type = int.from_bytes(data[name.end : name.end + 2], "big")
    rr_class = int.from_bytes(data[name.end + 2 : name.end + 4], "big")
    # WACK answers with type NB (§4.2.16); NBSTAT only in node status (§4.2.17-18).
    if rr_type not in RR_TYPES or rr_class != CLASS_IN:
        raise Malformed(f"NetBIOS record type {rr_type:#06x} class {rr_class} is not NB/IN")
    if not qd:
        _record_data(data, name.end)
    elif ar:
        # Registration, refresh and release carry the name's record after the question,
        # its name a pointer back to the question's (RFC 1002 §4.2.2: 0xC00C).
        at = name.end + 4
        if data[at : at + 2] == QUESTION_POINTER:
            at += 2
        else:
            at = read_netbios_name(data, at).end
        _record_data(data, at)
    return NameServiceMessage(opcode, response, rcode, bool(flags & 0x0010), name, rr_type)


def _record_data(data: bytes, at: int) -> int:
    """Check the fixed part and data length of the record whose name ends at ``at``;
    returns the offset after the record."""
    if at + RR_FIXED_BYTES > len(data):
        raise Truncated("NetBIOS resource record runs past the datagram")
    rr_type = int.from_bytes(data[at : at + 2], "big")
    rr_class = int.from_bytes(data[at + 2 : at + 4], "big")
    if rr_type not in RR_TYPES or rr_class != CLASS_IN:
        raise Malformed(f"NetBIOS record type {rr_type:#06x} class {rr_class} is not NB/IN")
    rdlength = int.from_bytes(data[at + 8 : at + 10], "big")
    end = at + RR_FIXED_BYTES + rdlength
    if end > len(data):
        raise Truncated(f"NetBIOS record data of {rdlength} bytes runs past the datagram")
    return end


def parse_datagram(data: bytes) -> DatagramMessage:
    """One NetBIOS datagram service message (RFC 1002 §4.4); Truncated/Malformed."""
    if len(data) < DGM_HEADER_BYTES:
        raise Truncated(f"NetBIOS datagram has {len(data)} bytes, fewer than 10")
    msg_type = data[0]
    if msg_type not in DGM_TYPES:
        raise Malformed(f"NetBIOS datagram type {msg_type:#04x} is not 0x10-0x16")
    if data[1] & DGM_RESERVED_FLAGS:
        raise Malformed(f"NetBIOS datagram flags {data[1]:#04x} set reserved bits")
    source_ip = str(ipaddress.IPv4Address(data[4:8]))
    source_port = int.from_bytes(data[8:10], "big")
    if msg_type == DGM_ERROR:
        if len(data) < DGM_HEADER_BYTES + 1:
            raise Truncated("NetBIOS datagram error has no error code")
        if data[DGM_HEADER_BYTES] not in DGM_ERROR_CODES:
            raise Malformed(f"NetBIOS datagram error code {data[DGM_HEADER_BYTES]:#04x}")
        return DatagramMessage(msg_type, source_ip, source_port, None, None)
    if msg_type not in DGM_DATA_TYPES:  # query request / responses: a destination name
        return DatagramMessage(msg_type, source_ip, source_port, None,
                               read_netbios_name(data, DGM_HEADER_BYTES))  # fmt: skip
    if len(data) < DGM_DATA_HEADER_BYTES:
        raise Truncated("NetBIOS data datagram header is truncated")
    length = int.from_bytes(data[10:12], "big")
    # §4.4.2: DGM_LENGTH counts the source name, destination name and user data.
    if DGM_DATA_HEADER_BYTES + length != len(data):
        kind = Truncated if DGM_DATA_HEADER_BYTES + length > len(data) else Malformed
        raise kind(f"NetBIOS datagram length {length} does not fit {len(data)} bytes")
    source = read_netbios_name(data, DGM_DATA_HEADER_BYTES)
    destination = read_netbios_name(data, source.end)
    return DatagramMessage(msg_type, source_ip, source_port, source, destination)


# -- dissector ---------------------------------------------------------------------------


class NetbiosDissector(Dissector):
    """NetBIOS name service (UDP 137) and datagram service (UDP 138)."""

    name = "NetBIOS"
    transports = frozenset({UDP})
    ports = frozenset({NAME_SERVICE_PORT, DATAGRAM_SERVICE_PORT})  # the probe checks too
    budget_packets = 2
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        ports = (ctx.src_port, ctx.dst_port)
        if DATAGRAM_SERVICE_PORT in ports:
            return self._datagram(ctx, pkt)
        if NAME_SERVICE_PORT in ports:
            return self._name_service(ctx, pkt)
        return Probe.NO

    def _name_service(self, ctx: FlowContext, pkt: Packet) -> Probe:
        msg = parse_name_service(pkt.payload)  # DecodeError: the stage's NO
        kind = "response" if msg.response else "request"
        ctx.report(Finding(self.name, OTHER, 0.9,
                           f"NetBIOS name service {msg.name_of_opcode} {kind} for "
                           f"{msg.name} ({RR_TYPES[msg.rr_type]}): flags, counts and the "
                           f"A-P encoded name fit RFC 1002", pkt.seq))  # fmt: skip
        return Probe.MATCH

    def _datagram(self, ctx: FlowContext, pkt: Packet) -> Probe:
        msg = parse_datagram(pkt.payload)  # DecodeError: the stage's NO
        evidence = f"NetBIOS {DGM_TYPES[msg.msg_type]}"
        if msg.source_name is not None:
            evidence += f" {msg.source_name} -> {msg.destination_name}, length fits"
        elif msg.destination_name is not None:
            evidence += f" for {msg.destination_name}"
        confidence = 0.85
        # The header repeats the sender's address: matching the IP header (no NAT between,
        # as on a LAN broadcast) is independent evidence.
        if ctx.endpoint(pkt.direction) == (msg.source_ip, msg.source_port):
            evidence += f"; source {msg.source_ip}:{msg.source_port} is the sender"
            confidence = 0.95
        ctx.report(Finding(self.name, OTHER, confidence, evidence, pkt.seq))
        return Probe.MATCH
