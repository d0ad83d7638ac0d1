"""Steam In-Home Streaming (Remote Play) discovery, as facts — the one game protocol in
the shared captures with a published structure.

Documented by its reverse engineering (codingrange.com "Steam In-Home Streaming
Discovery Protocol") and Wireshark's packet-steam-ihs-discovery.c: an 8-byte signature,
then a little-endian length and a protobuf header (CMsgRemoteClientBroadcastHeader),
then a length and a protobuf body, filling the datagram exactly. Steam clients broadcast
it on UDP 27036 every few seconds.

Also the pings a Steam client sends to Valve's Steam Datagram Relay (SDR) servers to
measure the route to them: no published format; nDPI
(src/lib/protocols/steam_datagram_relay.c) matches the ASCII tag ``sdping`` at offset 2
of a datagram of 100+ bytes, noting the content is some 30 bytes and the rest zeros. The
dissector checks that padding as well: the last 32 bytes are zero (steam.pcapng: 31
bytes of content, zeros up to 100).
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import DecodeError, Malformed, Truncated

SIGNATURE = bytes.fromhex("ffffffff214c5fa0")
LENGTH_BYTES = 4  # little-endian uint32 before the header and before the body
# CMsgRemoteClientBroadcastHeader fields (steammessages_remoteclient_discovery.proto)
FIELD_CLIENT_ID = 1
FIELD_MSG_TYPE = 2
FIELD_INSTANCE_ID = 3
MSG_TYPES = {0: "Discovery", 1: "Status", 2: "Offline"}  # ERemoteClientBroadcastMsg
SDR_PING_TYPE = 0x01  # the first byte of both pings in steam.pcapng
SDR_PING_TAG = b"sdping"  # at offset 2 (nDPI steam_datagram_relay.c)
SDR_PING_TAG_AT = 2
MIN_SDR_PING_BYTES = 100  # nDPI steam_datagram_relay.c
SDR_PING_PADDING = bytes(32)  # the end of the datagram (steam.pcapng: 69 zero bytes)
MAX_PROTOBUF_FIELDS = 64  # attacker-controlled count (DESIGN §4)
MAX_VARINT_BYTES = 10
# protobuf wire types: varint, fixed64, length-delimited, fixed32
WIRE_VARINT, WIRE_FIXED64, WIRE_BYTES, WIRE_FIXED32 = 0, 1, 2, 5


@dataclass(slots=True, frozen=True)
class SteamDiscovery:
    client_id: int | None
    msg_type: int | None
    header_bytes: int
    body_bytes: int

    @property
    def msg_name(self) -> str:
        if self.msg_type is None:
            return "no type"
        return MSG_TYPES.get(self.msg_type, f"type {self.msg_type}")


def _varint(data: bytes, offset: int, end: int) -> tuple[int, int]:
    value = 0
    for k in range(MAX_VARINT_BYTES):
        if offset + k >= end:
            raise Truncated("protobuf varint runs past its message")
        b = data[offset + k]
        value |= (b & 0x7F) << (7 * k)
        if not b & 0x80:
            return value, offset + k + 1
    raise Malformed("protobuf varint is longer than 10 bytes")


def parse_protobuf_fields(data: bytes, start: int, end: int) -> dict[int, int | bytes]:
    """Top-level fields of a protobuf message in ``data[start:end]`` (the last value of
    each field number); Truncated/Malformed when the fields do not fill it exactly."""
    if end > len(data):
        raise Truncated("protobuf message runs past the datagram")
    fields: dict[int, int | bytes] = {}
    offset = start
    count = 0
    while offset < end:
        count += 1
        if count > MAX_PROTOBUF_FIELDS:
            raise Malformed(f"protobuf message has more than {MAX_PROTOBUF_FIELDS} fields")
        key, offset = _varint(data, offset, end)
        number, wire = key >> 3, key & 0x07
        if number == 0:
            raise Malformed("protobuf field number 0")
        value: int | bytes
        if wire == WIRE_VARINT:
            value, offset = _varint(data, offset, end)
        elif wire in (WIRE_FIXED64, WIRE_FIXED32):
            size = 8 if wire == WIRE_FIXED64 else 4
            if offset + size > end:
                raise Truncated("protobuf fixed-size field runs past its message")
            value = int.from_bytes(data[offset : offset + size], "little")
            offset += size
        elif wire == WIRE_BYTES:
            length, offset = _varint(data, offset, end)
            if offset + length > end:
                raise Truncated("protobuf length-delimited field runs past its message")
            value = bytes(data[offset : offset + length])
            offset += length
        else:
            raise Malformed(f"protobuf wire type {wire} is not used by proto3 messages")
        fields[number] = value
    return fields


def parse_steam_discovery(data: bytes) -> SteamDiscovery:
    """One discovery datagram: signature, header, body, nothing after."""
    if data[: len(SIGNATURE)] != SIGNATURE[: len(data)]:
        raise Malformed("not the Steam In-Home Streaming discovery signature")
    offset = len(SIGNATURE)
    if len(data) < offset + LENGTH_BYTES:
        raise Truncated("Steam discovery header length is truncated")
    header_bytes = int.from_bytes(data[offset : offset + LENGTH_BYTES], "little")
    header_start = offset + LENGTH_BYTES
    body_length_at = header_start + header_bytes
    if len(data) < body_length_at + LENGTH_BYTES:
        raise Truncated(f"Steam discovery header of {header_bytes} bytes runs past the datagram")
    header = parse_protobuf_fields(data, header_start, body_length_at)
    body_bytes = int.from_bytes(data[body_length_at : body_length_at + LENGTH_BYTES], "little")
    body_start = body_length_at + LENGTH_BYTES
    if body_start + body_bytes > len(data):
        raise Truncated(f"Steam discovery body of {body_bytes} bytes runs past the datagram")
    if body_start + body_bytes < len(data):
        raise Malformed(f"{len(data) - body_start - body_bytes} bytes after the discovery body")
    client = header.get(FIELD_CLIENT_ID)
    mtype = header.get(FIELD_MSG_TYPE)
    return SteamDiscovery(
        client if isinstance(client, int) else None,
        mtype if isinstance(mtype, int) else None,
        header_bytes,
        body_bytes,
    )


def parse_sdr_ping(data: bytes) -> int:
    """A Steam Datagram Relay ping: its first byte; Truncated/Malformed."""
    if len(data) < MIN_SDR_PING_BYTES:
        raise Truncated(f"Steam SDR ping has {len(data)} bytes, fewer than 100")
    if data[SDR_PING_TAG_AT : SDR_PING_TAG_AT + len(SDR_PING_TAG)] != SDR_PING_TAG:
        raise Malformed("no 'sdping' tag at offset 2")
    if data[-len(SDR_PING_PADDING) :] != SDR_PING_PADDING:
        raise Malformed("Steam SDR ping does not end in zero padding")
    return data[0]


# -- dissector ---------------------------------------------------------------------------


class SteamDissector(Dissector):
    """Steam In-Home Streaming discovery on any UDP port (27036 by default), and Steam
    Datagram Relay pings."""

    name = "Steam"
    transports = frozenset({UDP})
    # 0xff: the discovery signature; 0x01: the SDR pings of steam.pcapng (nDPI checks no
    # first byte; a ping of another type would need this gate widened).
    udp_first_bytes = frozenset({SIGNATURE[0], SDR_PING_TYPE})
    budget_packets = 2
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if data[0] == SDR_PING_TYPE:
            parse_sdr_ping(data)  # DecodeError: the stage answers NO
            ctx.report(Finding("Steam", OTHER, 0.85,
                               f"Steam Datagram Relay ping: tag 'sdping' at offset 2 of a "
                               f"{len(data)}-byte datagram ending in zero padding", pkt.seq,
                               app="Steam"))  # fmt: skip
            return Probe.MATCH
        if data[:8] != SIGNATURE:
            return Probe.NO
        try:
            msg = parse_steam_discovery(data)
        except DecodeError:
            return Probe.NO
        ctx.report(Finding("Steam", OTHER, 0.95,
                           f"Steam In-Home Streaming discovery {msg.msg_name}: signature "
                           f"ffffffff214c5fa0, {msg.header_bytes}-byte header and "
                           f"{msg.body_bytes}-byte body fill the datagram", pkt.seq,
                           app="Steam"))  # fmt: skip
        return Probe.MATCH
