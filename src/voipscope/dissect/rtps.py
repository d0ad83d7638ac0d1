"""RTPS, the DDS wire protocol (OMG DDSI-RTPS 2.5 §9.4), as facts.

A lookalike: periodic UDP datagrams between robots, vehicles and ROS 2 nodes, often on
ports (7400+) near the RTP ranges. The message header is unmistakable: "RTPS", a
protocol version, a vendor id and a GUID prefix, then submessages whose lengths chain
to the end of the datagram.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import DecodeError, Malformed, Truncated

MAGIC = b"RTPS"  # §9.4.4.1 ProtocolId
HEADER_BYTES = 20  # magic 4, version 2, vendor id 2, GUID prefix 12 (§9.4.4)
SUBMESSAGE_HEADER_BYTES = 4  # id 1, flags 1, octetsToNextHeader 2 (§9.4.5.1)
ENDIANNESS_FLAG = 0x01  # §9.4.5.1.2: E=1 little-endian
MAJOR_VERSIONS = (1, 2)  # RTPS 1.x (early RTI) and 2.0-2.5
# RTI Connext's liveliness ping: the header's first 8 bytes and this instead of a GUID
# prefix (Wireshark packet-rtps.c).
RTI_PING = b"NDDSPING"
MAX_SUBMESSAGES = 128  # attacker-controlled count (DESIGN §4)
# Submessage kinds (§9.4.5.1.1, DDS-Security 1.1 §7.3.7)
SUBMESSAGES = {0x01: "PAD", 0x06: "ACKNACK", 0x07: "HEARTBEAT", 0x08: "GAP", 0x09: "INFO_TS",
               0x0C: "INFO_SRC", 0x0D: "INFO_REPLY_IP4", 0x0E: "INFO_DST", 0x0F: "INFO_REPLY",
               0x12: "NACK_FRAG", 0x13: "HEARTBEAT_FRAG", 0x15: "DATA", 0x16: "DATA_FRAG",
               0x30: "SEC_BODY", 0x31: "SEC_PREFIX", 0x32: "SEC_POSTFIX", 0x33: "SRTPS_PREFIX",
               0x34: "SRTPS_POSTFIX"}  # fmt: skip
PAD = 0x01
INFO_TS = 0x09
# Vendor ids (OMG/DDS Foundation vendor id registry, as Wireshark's packet-rtps.c shows)
VENDORS = {0x0101: "RTI Connext", 0x0102: "OpenSplice", 0x0103: "OpenDDS", 0x0104: "MilSoft",
           0x0105: "InterCOM DDS", 0x0106: "CoreDX", 0x0107: "Lakota", 0x0108: "ICOUP",
           0x0109: "ETRI Diamond", 0x010A: "RTI Connext Micro", 0x010B: "Vortex Cafe",
           0x010C: "Vortex Gateway", 0x010D: "Vortex Lite", 0x010E: "Qeo",
           0x010F: "eProsima Fast DDS", 0x0110: "Eclipse Cyclone DDS", 0x0111: "GurumDDS",
           0x0112: "RustDDS"}  # fmt: skip


@dataclass(slots=True)
class RtpsMessage:
    version: tuple[int, int]
    vendor_id: int
    guid_prefix: bytes | None  # None for the RTI ping
    submessages: list[tuple[int, int, int]] = field(default_factory=list)  # (id, flags, len)

    @property
    def vendor(self) -> str:
        hex_id = f"{self.vendor_id >> 8:02x}.{self.vendor_id & 0xFF:02x}"
        name = VENDORS.get(self.vendor_id)
        return f"{hex_id} ({name})" if name else hex_id

    @property
    def ping(self) -> bool:
        return self.guid_prefix is None

    @property
    def submessage_names(self) -> list[str]:
        return [SUBMESSAGES.get(sid, f"0x{sid:02x}") for sid, _, _ in self.submessages]


def looks_like_rtps(data: bytes) -> bool:
    return data[:4] == MAGIC and len(data) >= 8 and data[4] in MAJOR_VERSIONS


def parse_rtps(data: bytes) -> RtpsMessage:
    """One RTPS message (one UDP datagram): header and the submessage chain."""
    if len(data) < 8:
        raise Truncated(f"RTPS message has {len(data)} bytes, fewer than the 8-byte start")
    if data[:4] != MAGIC:
        raise Malformed(f"RTPS magic is {data[:4]!r}, not 'RTPS'")
    version = (data[4], data[5])
    if version[0] not in MAJOR_VERSIONS:
        raise Malformed(f"RTPS version {version[0]}.{version[1]} is not 1.x or 2.x")
    vendor_id = int.from_bytes(data[6:8], "big")
    if data[8:] == RTI_PING:
        return RtpsMessage(version, vendor_id, None)
    if len(data) < HEADER_BYTES:
        raise Truncated(f"RTPS header has {len(data)} bytes, fewer than 20")
    msg = RtpsMessage(version, vendor_id, bytes(data[8:20]))
    offset = HEADER_BYTES
    while offset < len(data):
        if len(msg.submessages) >= MAX_SUBMESSAGES:
            raise Malformed(f"RTPS message has more than {MAX_SUBMESSAGES} submessages")
        if len(data) - offset < SUBMESSAGE_HEADER_BYTES:
            raise Truncated("RTPS submessage header is truncated")
        sid, flags = data[offset], data[offset + 1]
        order = "little" if flags & ENDIANNESS_FLAG else "big"
        length = int.from_bytes(data[offset + 2 : offset + 4], order)
        body = offset + SUBMESSAGE_HEADER_BYTES
        if length == 0 and sid not in (PAD, INFO_TS):
            length = len(data) - body  # §9.4.5.1.3: the last submessage runs to the end
        if body + length > len(data):
            raise Truncated(f"RTPS submessage 0x{sid:02x} length {length} runs past the message")
        msg.submessages.append((sid, flags, length))
        offset = body + length
    return msg


# -- dissector ---------------------------------------------------------------------------


class RtpsDissector(Dissector):
    """RTPS (DDS, ROS 2) on any UDP port, from the first message."""

    name = "RTPS"
    transports = frozenset({UDP})
    udp_first_bytes = frozenset(MAGIC[:1])
    budget_packets = 2
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if not looks_like_rtps(data):
            return Probe.NO
        try:
            msg = parse_rtps(data)
        except DecodeError:
            return Probe.NO
        version = f"{msg.version[0]}.{msg.version[1]}"
        if msg.ping:
            evidence = f"RTPS {version} header from {msg.vendor}, RTI liveliness ping"
        else:
            names = msg.submessage_names[:6]
            evidence = (
                f"RTPS {version} header from {msg.vendor}, submessages "
                f"{'+'.join(names) or 'none'} chain to the datagram's end"
            )
        ctx.report(Finding("RTPS", OTHER, 0.95, evidence, pkt.seq))
        return Probe.MATCH
