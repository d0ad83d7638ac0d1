"""Cisco SCCP / Skinny messages (TCP 2000, TLS 2443) as facts.

Wire format (Cisco's published SCCP message reference, as Wireshark's packet-skinny.c reads
it): a 4-byte little-endian data length, a 4-byte header version, a 4-byte little-endian
message id, then data; the length counts the header version, the id and the data.
Several messages may share one TCP segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import SIGNALING, TCP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import Malformed, Truncated

HEADER_BYTES = 12
MAX_MESSAGE_BYTES = 64 * 1024
MAX_MESSAGES = 64
# Message ids seen in the shared captures (names as Wireshark gives them); the full table
# has hundreds and belongs in a data file when calls are built from Skinny.
MESSAGES = {0x0000: "KeepAliveReq", 0x0001: "RegisterReq", 0x0002: "IpPort",
            0x000F: "VersionReq", 0x0010: "CapabilitiesRes", 0x002C: "MediaResourceNotification",
            0x0081: "RegisterAck", 0x0098: "VersionRes", 0x009B: "CapabilitiesReq",
            0x0100: "KeepAliveAck"}  # fmt: skip


@dataclass(slots=True, frozen=True)
class SkinnyMessage:
    message_id: int
    data_length: int
    header_version: int

    @property
    def name(self) -> str:
        return MESSAGES.get(self.message_id, f"0x{self.message_id:04x}")


def parse_skinny(data: bytes) -> list[SkinnyMessage]:
    """Every whole message in ``data``; a partial last one raises Truncated."""
    out: list[SkinnyMessage] = []
    offset = 0
    while offset < len(data):
        if len(out) >= MAX_MESSAGES:
            raise Malformed(f"more than {MAX_MESSAGES} Skinny messages in one segment")
        if len(data) - offset < HEADER_BYTES:
            raise Truncated("Skinny header is truncated")
        length = int.from_bytes(data[offset : offset + 4], "little")
        if length < 4 or length > MAX_MESSAGE_BYTES:
            raise Malformed(f"Skinny data length {length} is impossible")
        # The length counts the message id and the data; the length and version fields
        # come on top.
        if offset + 8 + length > len(data):
            raise Truncated(f"Skinny message of {length} bytes runs past the segment")
        version = int.from_bytes(data[offset + 4 : offset + 8], "little")
        message_id = int.from_bytes(data[offset + 8 : offset + 12], "little")
        out.append(SkinnyMessage(message_id, length, version))
        offset += 8 + length
    return out


# -- dissector ---------------------------------------------------------------------------

# Header "version" field: 0 in old releases, 0x11-0x17 for the CallManager 7+ dialects.
HEADER_VERSIONS = frozenset({0, *range(0x11, 0x18)})
MAX_MESSAGE_ID = 0x1FF  # station and call manager messages (0x8000+ are SPCP)


class SkinnyDissector(Dissector):
    """Cisco SCCP/Skinny over TCP (port 2000; 2443 is TLS and looks like TLS)."""

    name = "SCCP"
    transports = frozenset({TCP})
    budget_packets = 3

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        stream = ctx.state.get(self.name)
        if stream is None:
            stream = ctx.state[self.name] = StreamBuffers(ctx.max_stream_buffer_bytes)
        buf = stream.add(pkt.direction, pkt.payload)
        try:
            messages = parse_skinny(bytes(buf))
        except Truncated:
            return Probe.MAYBE if len(buf) < HEADER_BYTES else Probe.NO
        first = messages[0]
        if first.header_version not in HEADER_VERSIONS or any(
            m.message_id > MAX_MESSAGE_ID for m in messages
        ):
            return Probe.NO
        stream.consume(pkt.direction, sum(8 + m.data_length for m in messages))
        known = [m.name for m in messages if m.message_id in MESSAGES]
        confidence = 0.95 if known else 0.7
        names = ", ".join(m.name for m in messages[:4])
        ctx.report(
            Finding(
                "SCCP",
                SIGNALING,
                confidence,
                f"Skinny messages {names}: little-endian length, header version "
                f"0x{first.header_version:02x}, lengths fill the segment",
                pkt.seq,
            )
        )
        return Probe.MATCH
