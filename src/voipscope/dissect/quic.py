"""QUIC (RFC 9000, RFC 8999 invariants, v2 RFC 9369) and Google QUIC, as facts.

A lookalike: encrypted UDP with a steady packet rate, which a behavioural media model
could take for SRTP. What is visible in the clear decides:

* IETF long headers: header form and fixed bit, a known version, connection ID lengths
  of at most 20 bytes (RFC 9000 §17.2) and, for Initial/0-RTT/Handshake, a Length that
  fits the datagram. Short headers say nothing on their own (RFC 9000 §17.3); they are
  only accepted on a flow that showed a long header first.
* gQUIC before Q046 ("public header", Google's QUIC wire layout): flags with the
  reserved bits clear, an 8-byte connection ID and a ``Q0dd`` version; its handshake
  messages (CHLO/REJ/SHLO, "QUIC Crypto") travel in the clear, with the server name.
  Mid-flow (no version, no handshake message), two packets of one direction with the
  same flags and 8-byte connection ID and a climbing packet number.
* gQUIC Q046+ and T0xx use long headers (Q046 with the nibble-coded CID lengths of the
  early IETF drafts).

The TLS ClientHello of IETF QUIC is encrypted with keys derived from the DCID (RFC 9001
§5.2); reading its SNI would need AES, which voipscope does not depend on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import DecodeError, Malformed, Truncated

HEADER_FORM = 0x80  # RFC 9000 §17.2
FIXED_BIT = 0x40  # RFC 9000 §17.2, §17.3
MAX_CID_BYTES = 20  # RFC 9000 §17.2 (v1, v2 and drafts >= 22)
MIN_INITIAL_DATAGRAM = 1200  # RFC 9000 §14.1: client Initial datagrams are padded to this

V1 = 0x00000001
V2 = 0x6B3343CF  # RFC 9369 §3.1
DRAFT_PREFIX = 0xFF000000  # draft-ietf-quic-transport-NN: 0xff0000NN
FIRST_LENGTH_BYTE_DRAFT = 22  # drafts before 22 coded both CID lengths in one byte
MVFST_PREFIX = 0xFACEB000  # Facebook's mvfst (IANA QUIC versions registry)
VERSION_NEGOTIATION = 0x00000000  # RFC 9000 §17.2.1
GQUIC_NIBBLE_CIDS = b"Q046"  # the one gQUIC long-header version with nibble CID lengths

# Long header packet types (RFC 9000 §17.2; RFC 9369 §3.2 rotates them for v2)
V1_TYPES = {0: "Initial", 1: "0-RTT", 2: "Handshake", 3: "Retry"}
V2_TYPES = {1: "Initial", 2: "0-RTT", 3: "Handshake", 0: "Retry"}

# gQUIC public header flags (QUIC wire layout, Wireshark packet-gquic.c)
GQUIC_VERSION_FLAG = 0x01
GQUIC_RESET_FLAG = 0x02
GQUIC_CID_FLAG = 0x08  # 8-byte connection ID present
GQUIC_RESERVED = 0x80 | 0x40  # must be zero before Q046 (0x40 was "multipath", never used)
GQUIC_CID_BYTES = 8
GQUIC_PN_BYTES = {0x00: 1, 0x10: 2, 0x20: 4, 0x30: 6}  # public flags 0x30
MAX_PACKET_NUMBER_STEP = 64  # between two packets of one direction the probe sees
# QUIC Crypto handshake messages: tag, u16 entry count, u16 padding, then entries of
# (tag, u32 end offset), little-endian, tags strictly ascending.
GQUIC_MESSAGE_TAGS = (b"CHLO", b"SHLO", b"REJ\x00", b"SREJ")
GQUIC_MESSAGE_HEADER_BYTES = 8
MAX_GQUIC_ENTRIES = 128
GQUIC_SEARCH_BYTES = 96  # the message starts after the headers and first frame bytes


@dataclass(slots=True, frozen=True)
class QuicLongHeader:
    version: int
    packet_type: str  # "Initial", "0-RTT", "Handshake", "Retry", or "long" (gQUIC)
    dcid: bytes
    scid: bytes
    length: int | None  # the Length field where the version has one
    header_bytes: int  # up to the packet number


@dataclass(slots=True, frozen=True)
class GQuicPublicHeader:
    flags: int
    cid: bytes | None
    version: int | None


@dataclass(slots=True)
class GQuicMessage:
    tag: str  # "CHLO", "SHLO", "REJ"
    values: dict[str, bytes] = field(default_factory=dict)  # the entries that fit
    entries: int = 0

    def text(self, tag: str) -> str | None:
        value = self.values.get(tag)
        return None if value is None else value.decode("ascii", "replace")


def version_name(version: int) -> str | None:
    """The name of a QUIC version voipscope knows, or None."""
    if version == V1:
        return "QUIC v1"
    if version == V2:
        return "QUIC v2"
    if version & 0xFFFFFF00 == DRAFT_PREFIX and version & 0xFF:
        return f"QUIC draft-{version & 0xFF}"
    if version & 0xFFFFFF00 == MVFST_PREFIX:
        return f"QUIC mvfst 0x{version:08x}"
    raw = version.to_bytes(4, "big")
    if raw[:2] in (b"Q0", b"T0") and raw[2:].isdigit():
        return f"gQUIC {raw.decode('ascii')}"
    return None


def _is_gquic(version: int) -> bool:
    return version.to_bytes(4, "big")[:2] in (b"Q0", b"T0")


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """RFC 9000 §16 variable-length integer at ``offset``: (value, next offset)."""
    if offset >= len(data):
        raise Truncated("QUIC variable-length integer is truncated")
    size = 1 << (data[offset] >> 6)
    if offset + size > len(data):
        raise Truncated("QUIC variable-length integer is truncated")
    value = data[offset] & 0x3F
    for b in data[offset + 1 : offset + size]:
        value = (value << 8) | b
    return value, offset + size


def parse_quic_long_header(data: bytes) -> QuicLongHeader:
    """A long header packet of a known version (RFC 9000 §17.2); Truncated/Malformed."""
    if len(data) < 7:
        raise Truncated(f"QUIC long header needs 7 bytes, has {len(data)}")
    first = data[0]
    if not first & HEADER_FORM:
        raise Malformed("QUIC packet has a short header")
    version = int.from_bytes(data[1:5], "big")
    if version == VERSION_NEGOTIATION:
        raise Malformed("QUIC version negotiation packet (no version of its own)")
    name = version_name(version)
    if name is None:
        raise Malformed(f"QUIC version 0x{version:08x} is not known")
    if not first & FIXED_BIT:
        raise Malformed("QUIC long header has its fixed bit clear")
    raw = version.to_bytes(4, "big")
    nibbles = raw == GQUIC_NIBBLE_CIDS or (
        version & 0xFFFFFF00 == DRAFT_PREFIX and version & 0xFF < FIRST_LENGTH_BYTE_DRAFT
    )
    if nibbles:
        # Drafts < 22 and Q046: DCIL and SCIL in one byte, each 0 or 3 + n (n 1..15).
        dcil, scil = data[5] >> 4, data[5] & 0x0F
        dlen, slen = (dcil + 3 if dcil else 0), (scil + 3 if scil else 0)
        offset = 6
        dcid, offset = _take(data, offset, dlen, "DCID")
        scid, offset = _take(data, offset, slen, "SCID")
    else:
        dlen = data[5]
        if dlen > MAX_CID_BYTES:
            raise Malformed(f"QUIC DCID length {dlen} exceeds {MAX_CID_BYTES}")
        dcid, offset = _take(data, 6, dlen, "DCID")
        if offset >= len(data):
            raise Truncated("QUIC long header ends before the SCID length")
        slen = data[offset]
        if slen > MAX_CID_BYTES:
            raise Malformed(f"QUIC SCID length {slen} exceeds {MAX_CID_BYTES}")
        scid, offset = _take(data, offset + 1, slen, "SCID")
    if _is_gquic(version):
        return QuicLongHeader(version, "long", dcid, scid, None, offset)
    types = V2_TYPES if version == V2 else V1_TYPES
    packet_type = types[(first >> 4) & 0x03]
    length = None
    if packet_type == "Initial":
        token_length, offset = read_varint(data, offset)
        if offset + token_length > len(data):
            raise Truncated(f"QUIC Initial token of {token_length} bytes runs past the datagram")
        offset += token_length
    if packet_type != "Retry":
        length, offset = read_varint(data, offset)
        if offset + length > len(data):
            raise Malformed(f"QUIC {packet_type} Length {length} runs past the datagram")
        if length < 1 + (first & 0x03):  # at least the packet number (RFC 9000 §17.2)
            raise Malformed(f"QUIC {packet_type} Length {length} is shorter than its number")
    return QuicLongHeader(version, packet_type, dcid, scid, length, offset)


def _take(data: bytes, offset: int, n: int, what: str) -> tuple[bytes, int]:
    if offset + n > len(data):
        raise Truncated(f"QUIC {what} runs past the datagram")
    return data[offset : offset + n], offset + n


def parse_gquic_public_header(data: bytes) -> GQuicPublicHeader:
    """The public header of gQUIC before Q046: flags, 8-byte CID, optional version."""
    if not data:
        raise Truncated("empty gQUIC packet")
    flags = data[0]
    if flags & GQUIC_RESERVED:
        raise Malformed(f"gQUIC public flags 0x{flags:02x} have reserved bits set")
    offset = 1
    cid = None
    if flags & GQUIC_CID_FLAG:
        cid, offset = _take(data, offset, GQUIC_CID_BYTES, "gQUIC connection ID")
    version = None
    if flags & GQUIC_VERSION_FLAG and not flags & GQUIC_RESET_FLAG:
        raw, offset = _take(data, offset, 4, "gQUIC version")
        version = int.from_bytes(raw, "big")
        if not (raw[:2] == b"Q0" and raw[2:].isdigit()):
            raise Malformed(f"gQUIC version {raw!r} is not Q0dd")
    return GQuicPublicHeader(flags, cid, version)


def parse_gquic_message(data: bytes, offset: int = 0) -> GQuicMessage:
    """A QUIC Crypto handshake message at ``offset``: its tag and the entries whose
    values lie within ``data`` (a REJ may continue in later packets)."""
    if len(data) - offset < GQUIC_MESSAGE_HEADER_BYTES:
        raise Truncated("gQUIC handshake message header is truncated")
    tag = data[offset : offset + 4]
    if tag not in GQUIC_MESSAGE_TAGS:
        raise Malformed(f"gQUIC handshake message tag {tag!r} is not known")
    count = int.from_bytes(data[offset + 4 : offset + 6], "little")
    if count == 0 or count > MAX_GQUIC_ENTRIES:
        raise Malformed(f"gQUIC handshake message has {count} entries")
    table = offset + GQUIC_MESSAGE_HEADER_BYTES
    values_start = table + 8 * count
    if values_start > len(data):
        raise Truncated("gQUIC handshake message tag table runs past the packet")
    msg = GQuicMessage(tag.rstrip(b"\x00").decode("ascii"), entries=count)
    previous_tag = -1
    previous_end = 0
    for k in range(count):
        entry = table + 8 * k
        entry_tag = int.from_bytes(data[entry : entry + 4], "little")
        end = int.from_bytes(data[entry + 4 : entry + 8], "little")
        if entry_tag <= previous_tag:
            raise Malformed("gQUIC handshake message tags are not in ascending order")
        if end < previous_end:
            raise Malformed("gQUIC handshake message offsets go backwards")
        if values_start + end <= len(data):
            name = data[entry : entry + 4].rstrip(b"\x00").decode("ascii", "replace")
            msg.values[name] = data[values_start + previous_end : values_start + end]
        previous_tag, previous_end = entry_tag, end
    return msg


def find_gquic_message(data: bytes, start: int = 0) -> GQuicMessage | None:
    """The first handshake message that parses in the clear part of a gQUIC packet."""
    window = data[: start + GQUIC_SEARCH_BYTES + GQUIC_MESSAGE_HEADER_BYTES]
    for tag in GQUIC_MESSAGE_TAGS:
        at = window.find(tag, start)
        if at >= 0:
            try:
                return parse_gquic_message(data, at)
            except DecodeError:
                continue
    return None


# -- dissector ---------------------------------------------------------------------------


@dataclass(slots=True)
class QuicFlowState:
    # Last version-less gQUIC public header per direction: (flags, CID, packet number).
    last: list[tuple[int, bytes, bytes] | None] = field(default_factory=lambda: [None, None])


class QuicDissector(Dissector):
    """IETF QUIC (long headers of known versions) and gQUIC (public header, clear-text
    handshake messages), on any UDP port."""

    name = "QUIC"
    transports = frozenset({UDP})
    # Long headers (form and fixed bit), and gQUIC public flags (reserved bits clear).
    udp_first_bytes = frozenset(b for b in range(256) if b & 0xC0 in (0xC0, 0x00))
    budget_packets = 3
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if not data:
            return Probe.NO
        first = data[0]
        if first & HEADER_FORM:
            return self._long(ctx, pkt)
        if first & GQUIC_RESERVED:
            return Probe.NO  # a short header (or not QUIC): nothing to go on before a long one
        if first & GQUIC_CID_FLAG:
            return self._gquic(ctx, pkt)
        # A gQUIC header without connection ID (a server's, mid-flow): no evidence, but
        # no contradiction of a client direction already seen.
        state: QuicFlowState | None = ctx.state.get(self.name)
        return Probe.MAYBE if state is not None and any(state.last) else Probe.NO

    def _long(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        try:
            header = parse_quic_long_header(data)
        except DecodeError:
            return Probe.NO
        name = version_name(header.version) or ""
        if _is_gquic(header.version):
            evidence = f"{name} long header, {len(header.dcid)}-byte connection ID"
            confidence = 0.85
            msg = find_gquic_message(data, header.header_bytes)
            if msg is not None:
                evidence += self._handshake(ctx, msg, pkt)
                confidence = 0.95
        else:
            evidence = (
                f"{name} {header.packet_type} long header, DCID {len(header.dcid)} bytes, "
                f"SCID {len(header.scid)} bytes"
            )
            confidence = 0.85
            if header.packet_type == "Initial" and len(data) >= MIN_INITIAL_DATAGRAM:
                evidence += f", padded to {len(data)} bytes"
                confidence = 0.95
        ctx.report(Finding("QUIC", OTHER, confidence, evidence, pkt.seq))
        return Probe.MATCH

    def _gquic(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        try:
            header = parse_gquic_public_header(data)
        except DecodeError:
            return Probe.NO
        msg = find_gquic_message(data, GQUIC_CID_BYTES + 1)
        if header.version is not None:
            name = version_name(header.version)
            evidence = f"{name} public header with version and 8-byte connection ID"
            confidence = 0.95 if msg is not None else 0.9
        elif msg is not None:
            evidence = "gQUIC public header (no version: server side)"
            confidence = 0.85
        else:
            return self._gquic_mid_flow(ctx, pkt, header)
        if msg is not None:
            evidence += self._handshake(ctx, msg, pkt)
        ctx.report(Finding("QUIC", OTHER, confidence, evidence, pkt.seq))
        return Probe.MATCH

    def _gquic_mid_flow(self, ctx: FlowContext, pkt: Packet, header: GQuicPublicHeader) -> Probe:
        """A public header without version or handshake (the capture began mid-flow):
        one byte of flags says little, but the same 8-byte connection ID under the same
        flags with a climbing packet number, twice in one direction, does."""
        data = pkt.payload
        size = GQUIC_PN_BYTES[header.flags & 0x30]
        raw = data[1 + GQUIC_CID_BYTES : 1 + GQUIC_CID_BYTES + size]
        if header.cid is None or len(raw) < size:
            return Probe.NO
        state: QuicFlowState = ctx.state.setdefault(self.name, QuicFlowState())
        previous = state.last[pkt.direction]
        state.last[pkt.direction] = (header.flags, header.cid, raw)
        if previous is None:
            return Probe.MAYBE
        if previous[:2] != (header.flags, header.cid):
            return Probe.NO
        steps = {
            (int.from_bytes(raw, order) - int.from_bytes(previous[2], order)) % (1 << 8 * size)
            for order in ("little", "big")  # little-endian before Q039, big-endian after
        }
        step = min(steps)
        if not 0 < step <= MAX_PACKET_NUMBER_STEP:
            return Probe.NO
        ctx.report(Finding("QUIC", OTHER, 0.7,
                           f"gQUIC public header mid-flow: flags 0x{header.flags:02x}, "
                           f"connection ID {header.cid.hex()} repeated, packet number "
                           f"+{step}", pkt.seq))  # fmt: skip
        return Probe.MATCH

    @staticmethod
    def _handshake(ctx: FlowContext, msg: GQuicMessage, pkt: Packet) -> str:
        out = f", {msg.tag} in the clear ({msg.entries} tags)"
        sni = msg.text("SNI")
        if msg.tag == "CHLO" and sni:
            out += f", SNI {sni}"
            server_ip = ctx.endpoint(1 - pkt.direction)[0]
            ctx.knowledge.learn_name(server_ip, sni, "QUIC SNI", ctx.flow_id, pkt.ts_ns)
            ctx.hint("sni", sni)
        agent = msg.text("UAID")
        if agent:
            out += f", UAID {agent[:60]}"
        return out
