"""STUN (RFC 5389/8489, classic RFC 3489) and TURN ChannelData (RFC 8656), as facts.

The attribute table is data: code -> name (RFC 8489 §18.3, RFC 8656 §18, RFC 8445 §16.1,
RFC 5780 §9, and the Microsoft MS-TURN/MS-ICE2 attributes Teams and Skype for Business use).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from socket import inet_ntoa

from voipscope.dissect.base import (
    MEDIA,
    SIGNALING,
    TCP,
    UDP,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.dissect.knowledge import Expectation
from voipscope.dissect.stun_wire import (
    CHANNEL_FIRST_BYTE_MAX,
    CHANNEL_FIRST_BYTE_MIN,
    CHANNEL_HEADER_BYTES,
    STUN_HEADER_BYTES,
    STUN_MAGIC_COOKIE,
)
from voipscope.errors import DecodeError, Malformed, Truncated

# RFC 8656 §12: channel numbers 0x4000-0x4FFF.
CHANNEL_NUMBERS = range(CHANNEL_FIRST_BYTE_MIN << 8, (CHANNEL_FIRST_BYTE_MAX + 1) << 8)
RELAYED_HINT = "turn-relayed"  # FlowContext hint: "ip port" of an allocated relay address
DTLS_HANDSHAKE = 22  # RFC 6347 §4.1 content type: a DTLS handshake record relayed in DATA

# Method (RFC 8489 §18.2, RFC 8656 §17) and class bits (RFC 8489 §5)
METHODS = {0x001: "Binding", 0x003: "Allocate", 0x004: "Refresh", 0x006: "Send",
           0x007: "Data", 0x008: "CreatePermission", 0x009: "ChannelBind"}  # fmt: skip
CLASSES = {0b00: "request", 0b01: "indication", 0b10: "success", 0b11: "error"}

ATTRIBUTES = {
    0x0001: "MAPPED-ADDRESS", 0x0006: "USERNAME", 0x0008: "MESSAGE-INTEGRITY",
    0x0009: "ERROR-CODE", 0x000A: "UNKNOWN-ATTRIBUTES", 0x000C: "CHANNEL-NUMBER",
    0x000D: "LIFETIME", 0x0012: "XOR-PEER-ADDRESS", 0x0013: "DATA", 0x0014: "REALM",
    0x0015: "NONCE", 0x0016: "XOR-RELAYED-ADDRESS", 0x0017: "REQUESTED-ADDRESS-FAMILY",
    0x0018: "EVEN-PORT", 0x0019: "REQUESTED-TRANSPORT", 0x001A: "DONT-FRAGMENT",
    0x001C: "MESSAGE-INTEGRITY-SHA256", 0x001D: "PASSWORD-ALGORITHM", 0x001E: "USERHASH",
    0x0020: "XOR-MAPPED-ADDRESS", 0x0022: "RESERVATION-TOKEN", 0x0024: "PRIORITY",
    0x0025: "USE-CANDIDATE", 0x0026: "PADDING", 0x0027: "RESPONSE-PORT",
    0x8001: "MAPPED-ADDRESS (old)", 0x8002: "PASSWORD-ALGORITHMS", 0x8003: "ALTERNATE-DOMAIN",
    0x8020: "XOR-MAPPED-ADDRESS (draft)", 0x8022: "SOFTWARE", 0x8023: "ALTERNATE-SERVER",
    0x8027: "CACHE-TIMEOUT", 0x8028: "FINGERPRINT", 0x8029: "ICE-CONTROLLED",
    0x802A: "ICE-CONTROLLING", 0x802B: "RESPONSE-ORIGIN", 0x802C: "OTHER-ADDRESS",
    0xC057: "NETWORK-COST", 0x0004: "CHANGE-REQUEST", 0x0005: "SOURCE-ADDRESS (3489)",
    0x8007: "MS-VERSION", 0x8008: "MS-XOR-MAPPED-ADDRESS", 0x8050: "MS-SEQUENCE-NUMBER",
    0x8054: "MS-CANDIDATE-IDENTIFIER", 0x8055: "MS-SERVICE-QUALITY",
    0x8056: "MS-ALTERNATE-MAPPED-ADDRESS", 0x8070: "MS-IMPLEMENTATION-VERSION",
    0x8090: "MS-ALT-MAPPED-ADDRESS", 0xFF03: "GOOG-NETWORK-INFO",
    0xFF04: "GOOG-LAST-ICE-CHECK-RECEIVED", 0xFF05: "GOOG-MISC-INFO", 0xFF10: "MS-TURN-BANDWIDTH",
}  # fmt: skip
XOR_ADDRESS_ATTRIBUTES = frozenset({0x0012, 0x0016, 0x0020, 0x8020})
PLAIN_ADDRESS_ATTRIBUTES = frozenset({0x0001, 0x8001, 0x8023, 0x802B, 0x802C, 0x0005})
TEXT_ATTRIBUTES = frozenset({0x0006, 0x0014, 0x8022, 0x0015})


@dataclass(slots=True)
class StunMessage:
    method: int
    message_class: str
    transaction_id: bytes
    classic: bool  # RFC 3489: no magic cookie
    attributes: list[tuple[int, bytes]] = field(default_factory=list)
    addresses: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)  # SOFTWARE, REALM, USERNAME, NONCE

    @property
    def method_name(self) -> str:
        return METHODS.get(self.method, f"method-0x{self.method:03x}")

    @property
    def attribute_names(self) -> list[str]:
        return [ATTRIBUTES.get(t, f"0x{t:04x}") for t, _ in self.attributes]


def looks_like_stun(data: bytes) -> bool:
    """Cheap first check: top two bits 0 and a length that fits (RFC 8489 §5)."""
    return (
        len(data) >= STUN_HEADER_BYTES
        and data[0] & 0xC0 == 0
        and int.from_bytes(data[2:4], "big") % 4 == 0
        and int.from_bytes(data[2:4], "big") + STUN_HEADER_BYTES <= len(data)
    )


def parse_stun(
    data: bytes, max_attributes: int = 64, strict: bool = True, unpadded_ok: bool = False
) -> StunMessage:
    """Parse one STUN message; raise Truncated/Malformed. Trailing bytes are allowed (TCP).

    ``strict=False`` accepts a length that is not a multiple of 4 and an unpadded last
    attribute, as WhatsApp's STUN dialect sends them; with ``unpadded_ok`` attributes
    are read without padding at all (MS-TURN).
    """
    if len(data) < STUN_HEADER_BYTES:
        raise Truncated(f"STUN message has {len(data)} bytes, fewer than the 20-byte header")
    mtype = int.from_bytes(data[0:2], "big")
    if mtype & 0xC000:
        raise Malformed("STUN message type has its two top bits set")
    length = int.from_bytes(data[2:4], "big")
    if length % 4 and strict:
        raise Malformed(f"STUN message length {length} is not a multiple of 4")
    if STUN_HEADER_BYTES + length > len(data):
        raise Truncated(f"STUN message length {length} runs past the packet")
    # RFC 8489 §5: method bits M0-M11 interleaved with class bits C0 (bit 4), C1 (bit 8).
    method = (mtype & 0x000F) | ((mtype & 0x00E0) >> 1) | ((mtype & 0x3E00) >> 2)
    cls = ((mtype >> 4) & 1) | ((mtype >> 7) & 2)
    classic = int.from_bytes(data[4:8], "big") != STUN_MAGIC_COOKIE
    msg = StunMessage(method, CLASSES[cls], bytes(data[8:20]), classic)
    offset, end = STUN_HEADER_BYTES, STUN_HEADER_BYTES + length
    while offset < end:
        if len(msg.attributes) >= max_attributes:
            raise Malformed(f"STUN message has more than {max_attributes} attributes")
        if end - offset < 4:
            raise Truncated("STUN attribute header is truncated")
        atype = int.from_bytes(data[offset : offset + 2], "big")
        alen = int.from_bytes(data[offset + 2 : offset + 4], "big")
        value = bytes(data[offset + 4 : offset + 4 + alen])
        if offset + 4 + alen > end:
            raise Truncated(f"STUN attribute 0x{atype:04x} runs past the message")
        msg.attributes.append((atype, value))
        name = ATTRIBUTES.get(atype, f"0x{atype:04x}")
        if atype in XOR_ADDRESS_ATTRIBUTES or atype in PLAIN_ADDRESS_ATTRIBUTES:
            address = _address(value, data[4:20] if atype in XOR_ADDRESS_ATTRIBUTES else None)
            if address is not None:
                msg.addresses.setdefault(name, []).append(address)
        elif atype in TEXT_ATTRIBUTES:
            msg.text[name] = value.decode("utf-8", "replace")
        # Values are padded to 4 bytes (§14); Microsoft's MS-TURN does not pad some.
        offset += 4 + alen + (-alen % 4 if strict or unpadded_ok is False else 0)
    return msg


def _address(value: bytes, xor_key: bytes | None) -> tuple[str, int] | None:
    """(MAPPED|XOR-*)-ADDRESS value (RFC 8489 §14.1-14.2); None when it is malformed."""
    if len(value) < 8:
        return None
    family = value[1]
    port = int.from_bytes(value[2:4], "big")
    raw = value[4:]
    if xor_key is not None:
        port ^= STUN_MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, xor_key, strict=False))
    if family == 0x01 and len(raw) >= 4:
        return inet_ntoa(raw[:4]), port  # what str(IPv4Address) gives, ~5x cheaper
    if family == 0x02 and len(raw) >= 16:
        return str(ipaddress.IPv6Address(raw[:16])), port
    return None


def parse_channel_data(data: bytes) -> tuple[int, int]:
    """TURN ChannelData (RFC 8656 §12.4): (channel number, application data length)."""
    if len(data) < CHANNEL_HEADER_BYTES:
        raise Truncated("ChannelData header is truncated")
    channel = int.from_bytes(data[0:2], "big")
    if channel not in CHANNEL_NUMBERS:
        raise Malformed(f"channel number 0x{channel:04x} is outside 0x4000-0x4FFF")
    length = int.from_bytes(data[2:4], "big")
    if CHANNEL_HEADER_BYTES + length > len(data):
        raise Truncated(f"ChannelData length {length} runs past the packet")
    return channel, length


# RFC 7983 §7 (updated by RFC 9443 §3): the first byte says which protocol shares the port.
def demux_first_byte(first: int) -> str:
    if first <= 3:
        return "STUN"
    if 16 <= first <= 19:
        return "ZRTP"
    if 20 <= first <= 63:
        return "DTLS"
    if 64 <= first <= 79:
        return "TURN-ChannelData"
    if 128 <= first <= 191:
        return "RTP/RTCP"
    return "unknown"


# -- dissector ---------------------------------------------------------------------------

TURN_METHODS = frozenset({0x003, 0x004, 0x006, 0x007, 0x008, 0x009})  # RFC 8656 §17
# [MS-TURN]/[MS-ICE2] attributes: Microsoft's STUN/TURN dialect (Skype for Business, Teams).
MS_ATTRIBUTES = frozenset({0x8007, 0x8008, 0x8050, 0x8054, 0x8055, 0x8056, 0x8070, 0x8090,
                           0xFF10})  # fmt: skip
# Google's WebRTC (libwebrtc: Chrome, Meet, and apps built on it) adds these.
GOOG_ATTRIBUTES = frozenset({0xC057, 0xFF03, 0xFF04, 0xFF05})
# Attributes 0x4000-0x4007 are unassigned by IANA; WhatsApp's call relays use them
# (nDPI src/lib/protocols/stun.c attributes the same codes to WhatsApp calls).
WHATSAPP_ATTRIBUTES = frozenset(range(0x4000, 0x4008))
COOKIE_BYTES = STUN_MAGIC_COOKIE.to_bytes(4, "big")
FOLLOW_PACKETS = 8  # responses, SOFTWARE/REALM and TURN peers come in the first packets
# TURN flows are followed longer: the relayed media (Send/Data indications) starts after
# the allocation and the ICE checks.
FOLLOW_TURN_PACKETS = 64


@dataclass(slots=True)
class StunFlowState:
    messages: int = 0
    methods: set[str] = field(default_factory=set)
    turn: bool = False
    channel_data: int = 0
    # (kind, SSRC) -> last sequence (-1: RTCP) of what the DATA attributes carried
    relayed_rtp: dict[tuple[str, int], int] = field(default_factory=dict)
    relayed_dtls: bool = False  # a DTLS handshake record went through the relay
    relayed_rtcp: bool = False  # RTCP inside reported (RTP may still come)
    relayed_media: bool = False  # RTP inside reported: nothing more to learn
    # Requests sent and requests answered (success or error), per direction.
    asked: list[int] = field(default_factory=lambda: [0, 0])
    answered: list[int] = field(default_factory=lambda: [0, 0])


class StunDissector(Dissector):
    """STUN (RFC 8489, classic RFC 3489), TURN (RFC 8656) incl. ChannelData, over UDP
    and TCP (bare or RFC 4571-framed, RFC 6544)."""

    name = "STUN"
    transports = frozenset({UDP, TCP})
    budget_packets = 8
    follow_packets = FOLLOW_TURN_PACKETS
    multiplexed = True
    udp_first_bytes = frozenset(  # STUN, ChannelData
        [*range(0, 4), *range(CHANNEL_FIRST_BYTE_MIN, CHANNEL_FIRST_BYTE_MAX + 1)]
    )
    # The same over TCP: bare STUN, the RFC 6544 16-bit length of a short message, ChannelData.
    tcp_first_bytes = udp_first_bytes
    ANOMALIES = {"stun_malformed": "a message in the STUN range that does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        state = ctx.state.setdefault(self.name, StunFlowState())
        msg = self._message(ctx, state, pkt)
        if msg is None:
            if state.channel_data and not state.messages:
                ctx.report(
                    Finding(
                        "TURN",
                        SIGNALING,
                        0.6,
                        "TURN ChannelData framing (RFC 8656 §12.4) with an exact length",
                        pkt.seq,
                    )
                )
                return Probe.MATCH
            first = pkt.payload[0]
            if ctx.transport == TCP and not state.messages:
                return Probe.NO  # ICE-TCP and TURN-TCP start with STUN
            # Not STUN: NO unless another RFC 7983 protocol may own this packet.
            if 16 <= first <= 79 or 128 <= first <= 191:
                return Probe.PASS if state.messages else Probe.MAYBE
            return Probe.NO
        protocol = "TURN" if state.turn else "STUN"
        kind = "RFC 3489 (no magic cookie)" if msg.classic else "RFC 5389/8489 magic cookie"
        names = [n for n in msg.attribute_names if not n.startswith("0x")][:8]
        evidence = f"STUN {msg.method_name} {msg.message_class}, {kind}"
        if names:
            evidence += f", attributes {', '.join(names)}"
        ctx.report(Finding(protocol, SIGNALING, 0.8 if msg.classic else 0.95, evidence, pkt.seq))
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        state = ctx.state[self.name]
        was_turn = state.turn
        msg = self._message(ctx, state, pkt)
        if msg is not None and state.turn and not was_turn:
            ctx.report(Finding("TURN", SIGNALING, 0.95,
                               f"TURN {msg.method_name} {msg.message_class}", pkt.seq))  # fmt: skip
        done_with_turn = not state.turn or state.relayed_media
        if done_with_turn and pkt.seq > FOLLOW_PACKETS:
            return Probe.NO
        return None

    def _message(self, ctx: FlowContext, state: StunFlowState, pkt: Packet) -> StunMessage | None:
        data = pkt.payload
        if ctx.transport == TCP and len(data) >= 2 and data[0] <= 3:
            # ICE-TCP (RFC 6544) frames with a 16-bit length; bare STUN over TCP does not.
            framed = int.from_bytes(data[:2], "big")
            if framed == len(data) - 2 and len(data) >= 2 + STUN_HEADER_BYTES:
                data = data[2:]
        if not data:
            return None
        first = data[0]
        if CHANNEL_FIRST_BYTE_MIN <= first <= CHANNEL_FIRST_BYTE_MAX:
            try:
                _, length = parse_channel_data(data)
            except DecodeError:
                return None
            # RFC 8656 §12.5: the data fills the datagram (padding to 4 bytes over TCP).
            if length == 0 or not 0 <= len(data) - CHANNEL_HEADER_BYTES - length <= 3:
                return None
            state.channel_data += 1
            if state.channel_data == 1 and state.messages:
                ctx.hint("turn", "ChannelData")
            return None
        if first > 3 or len(data) < STUN_HEADER_BYTES:
            return None
        length = int.from_bytes(data[2:4], "big")
        exact = STUN_HEADER_BYTES + length == len(data)
        # WhatsApp's and Microsoft's (MS-TURN) dialects: magic cookie, but a length that
        # is not a multiple of 4; the datagram ends at the length or its padding.
        lenient = (
            length % 4 != 0
            and data[4:8] == COOKIE_BYTES
            and 0 <= len(data) - STUN_HEADER_BYTES - length <= 3
        )
        if not lenient and not looks_like_stun(data):
            return None
        try:
            try:
                msg = parse_stun(data, strict=not lenient)
            except DecodeError:
                if not lenient:
                    raise
                msg = parse_stun(data, strict=False, unpadded_ok=True)
        except DecodeError as exc:
            if state.messages:
                ctx.anomaly("stun_malformed", str(exc), pkt.ts_ns)
            return None
        if msg.classic and (not exact or msg.method not in METHODS or msg.method != 0x001):
            return None  # RFC 3489 had only Binding; without the cookie demand exactness
        state.messages += 1
        state.methods.add(msg.method_name)
        if msg.method in TURN_METHODS:
            state.turn = True
        self._roles(ctx, state, msg, pkt.direction)
        self._facts(ctx, msg, pkt)
        if msg.method in (0x006, 0x007) and not state.relayed_media:
            self._relayed(ctx, state, msg, pkt)
        return msg

    @staticmethod
    def _roles(ctx: FlowContext, state: StunFlowState, msg: StunMessage, direction: int) -> None:
        """A side that answers requests and sends none is a STUN or TURN server (or an
        ICE-lite media server, RFC 8445 §2.5): ICE agents talking to each other both ask."""
        if msg.message_class == "request":
            state.asked[direction] += 1
        elif msg.message_class in ("success", "error"):
            state.answered[direction] += 1
        ctx.stun_server_side = next(
            (d for d in (0, 1)
             if state.answered[d] and not state.asked[d] and state.asked[1 - d]),
            -1,
        )  # fmt: skip

    @staticmethod
    def _relayed(ctx: FlowContext, state: StunFlowState, msg: StunMessage, pkt: Packet) -> None:
        """Send/Data indications carry the relayed datagrams in DATA (RFC 8656 §11):
        RTP inside them makes this a media flow, however the TURN client frames it; after a
        DTLS handshake through the same relay it is SRTP (RFC 5764)."""
        data = next((v for t, v in msg.attributes if t == 0x0013), b"")
        if len(data) >= 13 and data[0] == DTLS_HANDSHAKE and data[1] == 0xFE:
            state.relayed_dtls = True  # RFC 6347 §4.1: content type 22, version 0xFEFF/FD
            return
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        if 200 <= data[1] <= 207:
            kind, ssrc, seq = "RTCP", int.from_bytes(data[4:8], "big"), None
        else:
            kind, ssrc, seq = (
                "RTP",
                int.from_bytes(data[8:12], "big"),
                int.from_bytes(data[2:4], "big"),
            )
        last = state.relayed_rtp.get((kind, ssrc))
        if len(state.relayed_rtp) < 16:
            state.relayed_rtp[(kind, ssrc)] = seq if seq is not None else -1
        # Two packets of one kind and SSRC (RTP: sequence +1..3) before believing it: an
        # RTCP report about the sender's own SSRC confirms no RTP.
        if last is None or (seq is not None and not 0 < (seq - last) & 0xFFFF <= 3):
            return
        if kind == "RTCP":
            if state.relayed_rtcp:
                return
            state.relayed_rtcp = True  # and go on: the RTP it reports on may follow
        else:
            state.relayed_media = True
        name = kind
        how = f"inside TURN {msg.method_name} indications (DATA attribute)"
        if state.relayed_dtls:
            name = "SRTP" if kind == "RTP" else "SRTCP"
            how += ", after a DTLS handshake through the same relay (RFC 5764)"
        # RTCP a little less sure, so the RTP it reports on names the flow when both came.
        ctx.report(Finding(name, MEDIA, 0.85 if kind == "RTP" else 0.8,
                           f"{name} SSRC 0x{ssrc:08x} {how}", pkt.seq))  # fmt: skip

    @staticmethod
    def _facts(ctx: FlowContext, msg: StunMessage, pkt: Packet) -> None:
        for key in ("SOFTWARE", "REALM"):
            if key in msg.text:
                ctx.hint(key.lower(), msg.text[key][:80])
        types = {t for t, _ in msg.attributes}
        if types & MS_ATTRIBUTES:
            ctx.hint("stun-vendor", "MS-TURN")
        if types & GOOG_ATTRIBUTES:
            ctx.hint("stun-vendor", "GOOG")
        if types & WHATSAPP_ATTRIBUTES:
            ctx.hint("stun-vendor", "WhatsApp")
        if msg.method == 0x003 and msg.message_class == "success":
            # The relayed transport address this flow's client was given (RFC 8656 §7.3):
            # it puts it in its SDP, and a call announcing it is this flow's call.
            for ip, port in msg.addresses.get("XOR-RELAYED-ADDRESS", []):
                ctx.hint(RELAYED_HINT, f"{ip} {port}")
        # TURN peers and relayed addresses carry the session's media (RFC 8656 §2).
        for name in ("XOR-PEER-ADDRESS", "XOR-RELAYED-ADDRESS"):
            for ip, port in msg.addresses.get(name, []):
                ctx.knowledge.expect(
                    ip,
                    port,
                    Expectation(
                        "TURN",
                        MEDIA,
                        f"{name} {ip}:{port} in TURN {msg.method_name} "
                        f"(flow {ctx.flow_id}, packet {pkt.seq})",
                        ctx.flow_id,
                        pkt.ts_ns,
                    ),
                )
