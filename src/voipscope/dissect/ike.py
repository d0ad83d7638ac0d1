"""IKE (ISAKMP) for IPsec: IKEv1 (RFC 2408 §3.1) and IKEv2 (RFC 7296 §3.1) headers, on
UDP 500 and behind the four-byte non-ESP marker on UDP 4500 (RFC 3948 §2.2).

A lookalike: IPsec VPN traffic is not VoIP, and its random-looking SPIs pass weak
signatures (classic Skype's SoM header among them).
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

HEADER_BYTES = 28  # SPIi 8, SPIr 8, next payload, version, exchange, flags, message id, length
NON_ESP_MARKER = b"\x00\x00\x00\x00"  # RFC 3948 §2.2: IKE on the NAT-T port
IKE_PORTS = frozenset({500, 4500})
VERSIONS = {0x10: "IKEv1", 0x20: "IKEv2"}
EXCHANGES = {
    0x10: frozenset({1, 2, 3, 4, 5, 32, 33}),  # RFC 2408 §3.1 + IKEv1 Quick Mode, New Group
    0x20: frozenset({34, 35, 36, 37, 43}),  # RFC 7296 §3.1 + RFC 7383 INTERMEDIATE
}


@dataclass(slots=True, frozen=True)
class IkeHeader:
    version: int
    exchange: int
    length: int


def parse_ike(data: bytes) -> IkeHeader:
    if len(data) < HEADER_BYTES:
        raise Truncated(f"IKE header needs {HEADER_BYTES} bytes, got {len(data)}")
    version, exchange = data[17], data[18]
    if version not in VERSIONS:
        raise Malformed(f"IKE version byte 0x{version:02x} is not 1.0 or 2.0")
    if exchange not in EXCHANGES[version]:
        raise Malformed(f"IKE exchange type {exchange} is not known for {VERSIONS[version]}")
    length = int.from_bytes(data[24:28], "big")
    if length != len(data):
        raise Malformed(f"IKE length {length} does not match the {len(data)}-byte datagram")
    return IkeHeader(version, exchange, length)


class IkeDissector(Dissector):
    name = "IPsec"
    ports = IKE_PORTS  # the probe refuses flows on other ports
    budget_packets = 2

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if not IKE_PORTS & {ctx.src_port, ctx.dst_port}:
            return Probe.NO
        data = pkt.payload
        if data[:4] == NON_ESP_MARKER:
            data = data[4:]
        header = parse_ike(data)
        ctx.report(Finding("IPsec", OTHER, 0.95,
                           f"{VERSIONS[header.version]} header, exchange {header.exchange}, "
                           "length field equal to the datagram", pkt.seq))  # fmt: skip
        return Probe.MATCH
