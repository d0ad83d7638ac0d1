"""BitTorrent on the wire, as facts: the peer handshake (BEP 3) over TCP or uTP, uTP
headers (BEP 29), the mainline DHT's bencoded KRPC messages (BEP 5) and the UDP tracker
connect request (BEP 15).

A lookalike: uTP is a steady, bidirectional UDP stream with 20-byte headers, sequence
numbers and timestamps, which a port-blind media heuristic may take for RTP. One uTP
header proves little (its first byte is one of five values), so a flow is matched on
headers that agree with each other: a SYN answered under its connection id, or two
packets of one connection with climbing sequence numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import (
    OTHER,
    TCP,
    UDP,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.errors import DecodeError, Malformed, Truncated

HANDSHAKE_PREFIX = b"\x13BitTorrent protocol"  # BEP 3: pstrlen 19 + pstr
HANDSHAKE_BYTES = 68  # prefix 20, reserved 8, info_hash 20, peer_id 20

UTP_HEADER_BYTES = 20  # BEP 29
UTP_VERSION = 1
UTP_TYPES = {0: "ST_DATA", 1: "ST_FIN", 2: "ST_STATE", 3: "ST_RESET", 4: "ST_SYN"}
ST_DATA, ST_STATE, ST_SYN = 0, 2, 4
# Extension types: 1 selective ACK (BEP 29), 2 extension bits and 3 close reason
# (libtorrent); 0 ends the chain.
UTP_EXTENSIONS = {1: "selective ack", 2: "extension bits", 3: "close reason"}
MAX_UTP_EXTENSIONS = 8
# connection_id, timestamp_microseconds, timestamp_difference_microseconds, wnd_size,
# seq_nr, ack_nr: byte ranges in the header (BEP 29)
UTP_FIELDS = ((2, 4), (4, 8), (8, 12), (12, 16), (16, 18), (18, 20))
MAX_SEQUENCE_STEP = 64  # between two packets of one direction the probe sees
CLOCK_SLACK_US = 50_000  # sender clock vs capture clock, between two packets

TRACKER_PROTOCOL_ID = 0x41727101980  # BEP 15: the connect request's magic constant
TRACKER_CONNECT_BYTES = 16

MAX_BENCODE_ITEMS = 256  # attacker-controlled (DESIGN §4): a KRPC message has ~10
MAX_BENCODE_DEPTH = 16
MAX_INTEGER_DIGITS = 21  # a sign and 20 digits: any 64-bit integer
MAX_LENGTH_DIGITS = 10
KRPC_KINDS = {b"q": "query", b"r": "response", b"e": "error"}  # BEP 5 "y"

Bencoded = int | bytes | list["Bencoded"] | dict[bytes, "Bencoded"]


@dataclass(slots=True, frozen=True)
class UtpHeader:
    packet_type: int
    connection_id: int
    timestamp_us: int
    timestamp_diff_us: int
    wnd_size: int
    seq_nr: int
    ack_nr: int
    extensions: tuple[int, ...]
    payload_offset: int

    @property
    def type_name(self) -> str:
        return UTP_TYPES[self.packet_type]


@dataclass(slots=True, frozen=True)
class KrpcMessage:
    kind: str  # "query" | "response" | "error"
    transaction_id: bytes
    query: str | None  # "ping", "find_node", "get_peers", "announce_peer", ...


@dataclass(slots=True, frozen=True)
class PeerHandshake:
    reserved: bytes
    info_hash: bytes
    peer_id: bytes


def looks_like_utp(data: bytes) -> bool:
    return (
        len(data) >= UTP_HEADER_BYTES
        and data[0] & 0x0F == UTP_VERSION
        and data[0] >> 4 in UTP_TYPES
        and data[1] in (0, *UTP_EXTENSIONS)
    )


def parse_utp(data: bytes) -> UtpHeader:
    """A uTP header and its extension chain (BEP 29); Truncated/Malformed."""
    if len(data) < UTP_HEADER_BYTES:
        raise Truncated(f"uTP packet has {len(data)} bytes, fewer than the 20-byte header")
    if data[0] & 0x0F != UTP_VERSION:
        raise Malformed(f"uTP version {data[0] & 0x0F} is not 1")
    ptype = data[0] >> 4
    if ptype not in UTP_TYPES:
        raise Malformed(f"uTP packet type {ptype} is not 0-4")
    extensions: list[int] = []
    ext = data[1]
    offset = UTP_HEADER_BYTES
    while ext:
        if ext not in UTP_EXTENSIONS:
            raise Malformed(f"uTP extension type {ext} is not known")
        if len(extensions) >= MAX_UTP_EXTENSIONS:
            raise Malformed(f"uTP packet has more than {MAX_UTP_EXTENSIONS} extensions")
        if offset + 2 > len(data):
            raise Truncated("uTP extension header is truncated")
        extensions.append(ext)
        ext, length = data[offset], data[offset + 1]
        offset += 2 + length
        if offset > len(data):
            raise Truncated(f"uTP extension of {length} bytes runs past the packet")
    if ptype in (ST_STATE, ST_SYN) and offset != len(data):
        raise Malformed(f"uTP {UTP_TYPES[ptype]} carries {len(data) - offset} payload bytes")
    fields = [int.from_bytes(data[a:b], "big") for a, b in UTP_FIELDS]
    return UtpHeader(ptype, *fields, tuple(extensions), offset)


def parse_bencode(data: bytes, offset: int = 0) -> tuple[Bencoded, int]:
    """One bencoded value at ``offset`` (BEP 3): the value and the offset after it."""
    items = [0]
    return _bvalue(data, offset, 0, items)


def _bvalue(data: bytes, offset: int, depth: int, items: list[int]) -> tuple[Bencoded, int]:
    if offset >= len(data):
        raise Truncated("bencoded value runs past the packet")
    items[0] += 1
    if items[0] > MAX_BENCODE_ITEMS:
        raise Malformed(f"bencoded value has more than {MAX_BENCODE_ITEMS} items")
    c = data[offset]
    if c == ord("i"):
        end = data.find(b"e", offset + 1, offset + MAX_INTEGER_DIGITS + 2)
        if end < 0:
            if len(data) - offset < MAX_INTEGER_DIGITS + 2:
                raise Truncated("bencoded integer has no end")
            raise Malformed("bencoded integer is too long")
        digits = data[offset + 1 : end]
        body = digits[1:] if digits[:1] == b"-" else digits
        if not body.isdigit() or (body[:1] == b"0" and len(digits) > 1):
            raise Malformed(f"bencoded integer {digits!r} is not canonical")
        return int(digits), end + 1
    if 0x30 <= c <= 0x39:
        colon = data.find(b":", offset, offset + MAX_LENGTH_DIGITS + 1)
        if colon < 0:
            if len(data) - offset < MAX_LENGTH_DIGITS + 1:
                raise Truncated("bencoded string length has no colon")
            raise Malformed("bencoded string length is too long")
        digits = data[offset:colon]
        if not digits.isdigit():
            raise Malformed(f"bencoded string length {digits!r} is not a number")
        start = colon + 1
        end = start + int(digits)
        if end > len(data):
            raise Truncated(f"bencoded string of {int(digits)} bytes runs past the packet")
        return bytes(data[start:end]), end
    if c in (ord("l"), ord("d")):
        if depth >= MAX_BENCODE_DEPTH:
            raise Malformed(f"bencoded value nests deeper than {MAX_BENCODE_DEPTH}")
        offset += 1
        values: list[Bencoded] = []
        while True:
            if offset >= len(data):
                raise Truncated("bencoded list or dictionary has no end")
            if data[offset] == ord("e"):
                offset += 1
                break
            value, offset = _bvalue(data, offset, depth + 1, items)
            values.append(value)
        if c == ord("l"):
            return values, offset
        if len(values) % 2:
            raise Malformed("bencoded dictionary has a key without a value")
        keys = values[0::2]
        if not all(isinstance(k, bytes) for k in keys):
            raise Malformed("bencoded dictionary has a key that is not a string")
        return dict(zip(keys, values[1::2], strict=True)), offset  # type: ignore[arg-type]
    raise Malformed(f"bencoded value starts with {bytes([c])!r}")


def parse_krpc(data: bytes) -> KrpcMessage:
    """A mainline DHT message (BEP 5): one bencoded dictionary filling the datagram."""
    value, end = parse_bencode(data)
    if end != len(data):
        raise Malformed(f"{len(data) - end} bytes after the bencoded KRPC message")
    if not isinstance(value, dict):
        raise Malformed("KRPC message is not a bencoded dictionary")
    kind = value.get(b"y")
    transaction = value.get(b"t")
    if not isinstance(kind, bytes) or kind not in KRPC_KINDS:
        raise Malformed("KRPC message has no y of q, r or e")
    if not isinstance(transaction, bytes):
        raise Malformed("KRPC message has no transaction id t")
    query = value.get(b"q")
    name = query.decode("ascii", "replace")[:32] if isinstance(query, bytes) else None
    return KrpcMessage(KRPC_KINDS[kind], transaction, name)


def parse_handshake(data: bytes) -> PeerHandshake:
    """The peer wire handshake (BEP 3) at the start of a stream."""
    if data[: len(HANDSHAKE_PREFIX)] != HANDSHAKE_PREFIX[: len(data)]:
        raise Malformed("not a BitTorrent handshake")
    if len(data) < HANDSHAKE_BYTES:
        raise Truncated(f"BitTorrent handshake has {len(data)} bytes, fewer than 68")
    return PeerHandshake(bytes(data[20:28]), bytes(data[28:48]), bytes(data[48:68]))


def is_tracker_connect(data: bytes) -> bool:
    """BEP 15 connect request: protocol id, action 0 (connect), transaction id."""
    return (
        len(data) == TRACKER_CONNECT_BYTES
        and int.from_bytes(data[:8], "big") == TRACKER_PROTOCOL_ID
        and data[8:12] == b"\x00\x00\x00\x00"
    )


# -- dissector ---------------------------------------------------------------------------


@dataclass(slots=True)
class BitTorrentFlowState:
    # uTP headers seen while probing: (direction, capture time ns, header)
    utp: list[tuple[int, int, UtpHeader]] = field(default_factory=list)


def _close(a: int, b: int, modulus: int = 0x10000, window: int = MAX_SEQUENCE_STEP) -> bool:
    """``a`` and ``b`` at most ``window`` apart on a wrapping counter."""
    return (a - b) % modulus <= window or (b - a) % modulus <= window


class BitTorrentDissector(Dissector):
    """BitTorrent: peer handshake over TCP, and uTP, DHT and tracker messages over UDP."""

    name = "BitTorrent"
    transports = frozenset({UDP, TCP})
    # DHT "d1:", tracker connect (protocol id 0x41727101980), uTP type << 4 | version 1
    udp_first_bytes = frozenset({ord("d"), 0x00, *(t << 4 | UTP_VERSION for t in UTP_TYPES)})
    tcp_first_bytes = frozenset(HANDSHAKE_PREFIX[:1])
    budget_packets = 4
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if ctx.transport == TCP:
            if data[:20] != HANDSHAKE_PREFIX:
                return Probe.NO
            return self._match(ctx, pkt, 0.99, "BitTorrent peer handshake (BEP 3) over TCP"
                               + _info_hash(data))  # fmt: skip
        if data[:3] == b"d1:":
            try:
                krpc = parse_krpc(data)
            except DecodeError:
                return Probe.NO
            what = f"{krpc.kind} {krpc.query}" if krpc.query else krpc.kind
            return self._match(ctx, pkt, 0.9, f"BitTorrent DHT KRPC {what} (BEP 5), "
                               "one bencoded dictionary filling the datagram")  # fmt: skip
        if is_tracker_connect(data):
            return self._match(ctx, pkt, 0.95, "BitTorrent UDP tracker connect request "
                               "(BEP 15 protocol id 0x41727101980)")  # fmt: skip
        if not looks_like_utp(data):
            return Probe.NO
        try:
            header = parse_utp(data)
        except DecodeError:
            return Probe.NO
        if header.packet_type == ST_DATA and header.payload_offset == len(data):
            return Probe.NO  # ST_DATA carries data (BEP 29)
        payload = data[header.payload_offset :]
        if header.packet_type == ST_DATA and payload[:20] == HANDSHAKE_PREFIX:
            return self._match(ctx, pkt, 0.99, "BitTorrent peer handshake (BEP 3) inside uTP "
                               "ST_DATA" + _info_hash(payload))  # fmt: skip
        state: BitTorrentFlowState = ctx.state.setdefault(self.name, BitTorrentFlowState())
        evidence = self._agrees(state, pkt, header)
        if len(state.utp) < 4:
            state.utp.append((pkt.direction, pkt.ts_ns, header))
        if evidence is None:
            return Probe.MAYBE
        return self._match(ctx, pkt, 0.9, evidence)

    @staticmethod
    def _agrees(state: BitTorrentFlowState, pkt: Packet, h: UtpHeader) -> str | None:
        """Evidence that ``h`` belongs to the same uTP connection as an earlier header:
        the SYN handshake, the connection ids of the two directions with acks that
        follow the other side's sequence, or one direction whose sequence numbers and
        microsecond clock advance with the capture clock."""
        for seen_direction, seen_ts, seen in state.utp:
            if seen_direction != pkt.direction:
                if (
                    seen.packet_type == ST_SYN
                    and h.connection_id == seen.connection_id
                    and h.ack_nr == seen.seq_nr
                ):
                    return (
                        f"uTP ST_SYN answered by {h.type_name}: connection id "
                        f"{h.connection_id}, ack_nr = the SYN's seq_nr {h.ack_nr} (BEP 29)"
                    )
                if (h.connection_id - seen.connection_id) % 0x10000 in (1, 0xFFFF) and (
                    _close(h.ack_nr, seen.seq_nr) and _close(seen.ack_nr, h.seq_nr)
                ):
                    return (
                        f"uTP in both directions with connection ids {seen.connection_id} "
                        f"and {h.connection_id}, each acking the other's seq_nr (BEP 29)"
                    )
                continue
            expected_id = (seen.connection_id + (seen.packet_type == ST_SYN)) & 0xFFFF
            step = (h.seq_nr - seen.seq_nr) % 0x10000
            # Every ST_DATA takes a new seq_nr; ST_STATE repeats the current one.
            stalled = h.packet_type == ST_DATA and seen.packet_type == ST_DATA and not step
            if h.connection_id != expected_id or step > MAX_SEQUENCE_STEP or stalled:
                continue
            # The sender's microsecond clock (32 bits) moves with the capture clock.
            clock = (h.timestamp_us - seen.timestamp_us) % (1 << 32)
            elapsed = (pkt.ts_ns - seen_ts) // 1000
            if abs(clock - elapsed) <= max(CLOCK_SLACK_US, elapsed // 10):
                return (
                    f"uTP {seen.type_name} then {h.type_name} on connection id "
                    f"{h.connection_id}: seq_nr +{step}, sender clock +{clock} us "
                    f"over {elapsed} us of capture"
                )
        return None

    @staticmethod
    def _match(ctx: FlowContext, pkt: Packet, confidence: float, evidence: str) -> Probe:
        ctx.report(Finding("BitTorrent", OTHER, confidence, evidence, pkt.seq))
        return Probe.MATCH


def _info_hash(data: bytes) -> str:
    try:
        handshake = parse_handshake(data)
    except DecodeError:
        return ""
    return f", info_hash {handshake.info_hash.hex()}"
