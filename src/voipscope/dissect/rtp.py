"""RTP and RTCP headers (RFC 3550), as pure parsing functions.

Facts only: what the header fields are, or a DecodeError naming what is wrong. Whether a
flow *is* RTP is decided elsewhere from many packets (a random UDP payload passes the
version check one time in four).
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.errors import Malformed, Truncated

RTP_VERSION = 2  # RFC 3550 §5.1: V=2
RTP_FIXED_HEADER_BYTES = 12  # §5.1
RTP_EXTENSION_HEADER_BYTES = 4  # §5.3.1: profile-defined 16 bits + length in 32-bit words
RTCP_HEADER_BYTES = 4  # §6.4.1: V, P, count, PT, length

# RTCP packet types (RFC 3550 §12.1; XR from RFC 3611 §2; feedback from RFC 4585 §6.1)
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
RTCP_RTPFB = 205
RTCP_PSFB = 206
RTCP_XR = 207
RTCP_TYPES = {RTCP_SR: "SR", RTCP_RR: "RR", RTCP_SDES: "SDES", RTCP_BYE: "BYE", RTCP_APP: "APP",
              RTCP_RTPFB: "RTPFB", RTCP_PSFB: "PSFB", RTCP_XR: "XR"}  # fmt: skip
# RFC 5761 §4: with RTP and RTCP on one port, RTP payload types 64-95 are avoided because
# with the marker bit they read as RTCP packet types 192-223.
RTCP_MUX_PT_RANGE = range(192, 224)


@dataclass(slots=True, frozen=True)
class RtpHeader:
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrc: tuple[int, ...]
    extension_profile: int | None  # the 16-bit "defined by profile" field, e.g. 0xBEDE
    header_bytes: int  # fixed header + CSRCs + extension
    payload_bytes: int  # after the header, without padding
    padding_bytes: int


def parse_rtp(data: bytes) -> RtpHeader:
    """Parse an RTP header (RFC 3550 §5.1, §5.3.1); raise Truncated or Malformed."""
    if len(data) < RTP_FIXED_HEADER_BYTES:
        raise Truncated(f"RTP packet has {len(data)} bytes, fewer than the 12-byte header")
    b0, b1 = data[0], data[1]
    if b0 >> 6 != RTP_VERSION:
        raise Malformed(f"RTP version is {b0 >> 6}, not 2")
    csrc_count = b0 & 0x0F
    offset = RTP_FIXED_HEADER_BYTES + 4 * csrc_count
    if len(data) < offset:
        raise Truncated("RTP packet has truncated CSRC list")
    csrc = tuple(int.from_bytes(data[12 + 4 * i : 16 + 4 * i], "big") for i in range(csrc_count))
    profile = None
    if b0 & 0x10:
        if len(data) < offset + RTP_EXTENSION_HEADER_BYTES:
            raise Truncated("RTP packet has truncated header extension")
        profile = int.from_bytes(data[offset : offset + 2], "big")
        words = int.from_bytes(data[offset + 2 : offset + 4], "big")
        offset += RTP_EXTENSION_HEADER_BYTES + 4 * words
        if len(data) < offset:
            raise Truncated("RTP header extension runs past the packet")
    padding = 0
    if b0 & 0x20:
        # §5.1: the last octet counts the padding octets, itself included.
        padding = data[-1]
        if padding == 0 or offset + padding > len(data):
            raise Malformed(f"RTP padding count {padding} does not fit the packet")
    return RtpHeader(
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence=int.from_bytes(data[2:4], "big"),
        timestamp=int.from_bytes(data[4:8], "big"),
        ssrc=int.from_bytes(data[8:12], "big"),
        csrc=csrc,
        extension_profile=profile,
        header_bytes=offset,
        payload_bytes=len(data) - offset - padding,
        padding_bytes=padding,
    )


@dataclass(slots=True, frozen=True)
class RtcpPacket:
    packet_type: int
    count: int  # reception report count, source count or subtype, by type
    ssrc: int | None  # sender SSRC (first word after the header) where there is one
    length_bytes: int  # of this packet within the compound


def parse_rtcp_compound(data: bytes, max_packets: int = 32) -> list[RtcpPacket]:
    """Split a compound RTCP packet (RFC 3550 §6.1) into its packets.

    Raises Truncated/Malformed for the first packet that is wrong; ``max_packets`` caps
    the work an attacker can ask for (more is Malformed).
    """
    out: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(out) >= max_packets:
            raise Malformed(f"RTCP compound packet has more than {max_packets} packets")
        if len(data) - offset < RTCP_HEADER_BYTES:
            raise Truncated("RTCP packet header is truncated")
        b0, packet_type = data[offset], data[offset + 1]
        if b0 >> 6 != RTP_VERSION:
            raise Malformed(f"RTCP version is {b0 >> 6}, not 2")
        if packet_type not in RTCP_TYPES:
            raise Malformed(f"RTCP packet type {packet_type} is not known")
        length = (int.from_bytes(data[offset + 2 : offset + 4], "big") + 1) * 4  # §6.4.1
        if offset + length > len(data):
            raise Truncated(
                f"RTCP {RTCP_TYPES[packet_type]} length {length} runs past the datagram"
            )
        ssrc = int.from_bytes(data[offset + 4 : offset + 8], "big") if length >= 8 else None
        out.append(RtcpPacket(packet_type, b0 & 0x1F, ssrc, length))
        offset += length
    if not out:
        raise Truncated("empty RTCP packet")
    # §6.1: a compound packet starts with SR or RR (RFC 5506 reduced-size RTCP relaxes
    # this, so it is a fact to report, not a reason to refuse).
    return out
