"""OpenWire, Apache ActiveMQ's native wire format, as facts: a binary TCP protocol
(61616 by default) that connects with a WireFormatInfo command from each side.

Framing (ActiveMQ "OpenWire" documentation; nDPI's openwire.c): with size prefixes on
(the default, and always for WireFormatInfo) every command is a 4-byte big-endian size,
then the command type, then its body. WireFormatInfo is type 1 and its body starts with
the 8-byte magic ``ActiveMQ`` and a 4-byte version. Magic, type, a size that covers at
least the magic and version, and a plausible version are checked; any port.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, TCP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

SIZE_BYTES = 4
WIREFORMAT_INFO = 1  # CommandTypes.WIREFORMAT_INFO
MAGIC = b"ActiveMQ"
MAGIC_AT = SIZE_BYTES + 1
VERSION_AT = MAGIC_AT + len(MAGIC)
HEADER_BYTES = VERSION_AT + 4  # size, type, magic, version
MAX_COMMAND_BYTES = 1 << 20  # a WireFormatInfo carries a few options, never megabytes
MAX_VERSION = 255  # ActiveMQ 5.x/6.x speak 10-12; the field is an int


@dataclass(slots=True, frozen=True)
class WireFormatInfo:
    size: int  # command bytes after the size field
    version: int


def parse_wireformat_info(data: bytes) -> WireFormatInfo:
    """The WireFormatInfo command at the start of an OpenWire connection."""
    if len(data) < SIZE_BYTES + 1:
        raise Truncated(f"OpenWire command has {len(data)} bytes, fewer than 5")
    size = int.from_bytes(data[:SIZE_BYTES], "big")
    if data[SIZE_BYTES] != WIREFORMAT_INFO:
        raise Malformed(f"OpenWire command type {data[SIZE_BYTES]} is not WireFormatInfo")
    if not HEADER_BYTES - SIZE_BYTES <= size <= MAX_COMMAND_BYTES:
        raise Malformed(f"OpenWire WireFormatInfo size {size} is implausible")
    if data[MAGIC_AT:VERSION_AT] != MAGIC[: max(0, len(data) - MAGIC_AT)]:
        raise Malformed("OpenWire WireFormatInfo lacks the ActiveMQ magic")
    if len(data) < HEADER_BYTES:
        raise Truncated("OpenWire WireFormatInfo is truncated before its version")
    version = int.from_bytes(data[VERSION_AT:HEADER_BYTES], "big")
    if not 1 <= version <= MAX_VERSION:
        raise Malformed(f"OpenWire version {version} is implausible")
    return WireFormatInfo(size, version)


class OpenWireDissector(Dissector):
    """OpenWire on any TCP port, from the WireFormatInfo that opens the connection."""

    name = "OpenWire"
    transports = frozenset({TCP})
    # The size prefix of a command under 16 MiB starts with a zero byte.
    tcp_first_bytes = frozenset({0})
    budget_packets = 2  # the client's WireFormatInfo, else the broker's
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if pkt.payload[MAGIC_AT:VERSION_AT] != MAGIC:
            return Probe.NO  # most length-prefixed TCP: cheaper than raising
        info = parse_wireformat_info(pkt.payload)  # DecodeError: the stage's NO
        exact = info.size == len(pkt.payload) - SIZE_BYTES
        ctx.report(Finding(self.name, OTHER, 0.95,
                           f"OpenWire WireFormatInfo: magic ActiveMQ, version {info.version}, "
                           f"{info.size}-byte command{' filling the segment' if exact else ''}",
                           pkt.seq))  # fmt: skip
        return Probe.MATCH
