"""Discord voice over UDP: IP discovery and the UDP keepalive, as facts.

Discord's voice connection is one UDP flow to a voice server. Before any media the client
runs *IP discovery* (Discord developer docs, "Voice Connections" → "IP Discovery",
https://discord.com/developers/docs/topics/voice-connections#ip-discovery): a 74-byte
request, type 0x1, answered by a 74-byte response, type 0x2, that carries the client's
address as the server saw it (all numbers big-endian):

    type (2) | length = 70 (2) | SSRC (4) | address, NUL-terminated text (64) | port (2)

The voice itself is RTP with payload type 120 (same page, "Voice Packet Structure") and
is the RTP dissector's business, so this dissector is ``multiplexed``: a Discord MATCH
keeps the RTP/STUN/DTLS family probing the same 5-tuple. IP discovery and the keepalive
are the app's control traffic on its voice transport, so they are reported as
signalling: with RTP on the flow the arbiter calls it media (RTP) of app Discord.

While a call is idle the client sends an 8-byte keepalive that the server echoes: the
magic 0x1337CAFE and a 32-bit little-endian counter. Discord does not document it; it is
what nDPI matches (``src/lib/protocols/discord.c``: 8-byte payload starting 0x1337CAFE)
and what discord.pcap and discord_mid_flow.pcap show (counter 0x1a9, 0x1aa, ... echoed).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from voipscope.dissect.base import SIGNALING, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import DecodeError, Malformed, Truncated

# Discord docs, Voice Connections → IP Discovery.
IP_DISCOVERY_BYTES = 74  # 2 + 2 + 4 + 64 + 2
IP_DISCOVERY_LENGTH = 70  # "Message length excluding Type and Length fields"
IP_DISCOVERY_REQUEST = 0x0001
IP_DISCOVERY_RESPONSE = 0x0002
ADDRESS_OFFSET, ADDRESS_BYTES = 8, 64
# The two 4-byte prefixes an IP discovery message can start with (type, length 70).
IP_DISCOVERY_PREFIXES = (b"\x00\x01\x00\x46", b"\x00\x02\x00\x46")
# Discord docs, Voice Connections → Voice Packet Structure: "Payload Type 0x78".
VOICE_RTP_PAYLOAD_TYPE = 0x78
# nDPI discord.c; observed in discord.pcap: magic, then a little-endian counter.
KEEPALIVE_MAGIC = b"\x13\x37\xca\xfe"
KEEPALIVE_BYTES = 8


@dataclass(slots=True, frozen=True)
class IpDiscovery:
    request: bool  # type 0x1 (True) or 0x2 (False)
    ssrc: int
    address: str  # "" in a request
    port: int


def parse_ip_discovery(data: bytes) -> IpDiscovery:
    """One IP discovery message (exactly 74 bytes); raise Truncated/Malformed."""
    if len(data) < IP_DISCOVERY_BYTES:
        raise Truncated(f"Discord IP discovery has {len(data)} bytes, fewer than 74")
    if len(data) > IP_DISCOVERY_BYTES:
        raise Malformed(f"Discord IP discovery has {len(data)} bytes, more than 74")
    kind = int.from_bytes(data[0:2], "big")
    if kind not in (IP_DISCOVERY_REQUEST, IP_DISCOVERY_RESPONSE):
        raise Malformed(f"Discord IP discovery type 0x{kind:04x} is neither 0x1 nor 0x2")
    length = int.from_bytes(data[2:4], "big")
    if length != IP_DISCOVERY_LENGTH:
        raise Malformed(f"Discord IP discovery length {length} is not 70")
    raw = bytes(data[ADDRESS_OFFSET : ADDRESS_OFFSET + ADDRESS_BYTES])
    end = raw.find(b"\0")
    if end < 0:
        raise Malformed("Discord IP discovery address is not NUL-terminated")
    text = raw[:end]
    if not all(0x20 < b < 0x7F for b in text):
        raise Malformed("Discord IP discovery address is not printable text")
    return IpDiscovery(
        request=kind == IP_DISCOVERY_REQUEST,
        ssrc=int.from_bytes(data[4:8], "big"),
        address=text.decode("ascii"),
        port=int.from_bytes(data[72:74], "big"),
    )


def parse_keepalive(data: bytes) -> int:
    """The 8-byte UDP keepalive: return its little-endian counter."""
    if len(data) < KEEPALIVE_BYTES:
        raise Truncated(f"Discord keepalive has {len(data)} bytes, fewer than 8")
    if len(data) > KEEPALIVE_BYTES:
        raise Malformed(f"Discord keepalive has {len(data)} bytes, more than 8")
    if data[0:4] != KEEPALIVE_MAGIC:
        raise Malformed("Discord keepalive does not start with 0x1337CAFE")
    return int.from_bytes(data[4:8], "little")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class DiscordState:
    request_ssrc: int | None = None  # from an IP discovery request
    answered: bool = False  # a response echoing that SSRC was seen
    keepalives: int = 0


class DiscordDissector(Dissector):
    name = "Discord"
    transports = frozenset({UDP})
    budget_packets = 8  # IP discovery opens the flow; RTP beside a match does not count
    follow_packets = 6  # to see the response to a request that matched first
    multiplexed = True  # the voice is RTP on the same 5-tuple
    # 0x00: IP discovery (type 0x0001/0x0002); 0x13: the keepalive. The stage answers
    # PASS for the RTP/RTCP/STUN bytes and NO for the rest without calling ``probe``.
    udp_first_bytes = frozenset({0x00, KEEPALIVE_MAGIC[0]})
    ANOMALIES = {"discord_malformed": "a Discord IP discovery or keepalive that does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        n = len(data)
        # Cheap length and prefix checks first: 74 or 8 bytes with a fixed prefix.
        if n == IP_DISCOVERY_BYTES and data[0:4] in IP_DISCOVERY_PREFIXES:
            try:
                msg = parse_ip_discovery(data)
            except DecodeError:
                return Probe.PASS
            return self._ip_discovery(ctx, pkt, msg)
        if n == KEEPALIVE_BYTES and data[0:4] == KEEPALIVE_MAGIC:
            return self._keepalive(ctx, pkt, parse_keepalive(data))
        # Both first bytes (0x00, 0x13) are in the RFC 7983 ranges (STUN, ZRTP): a packet
        # of a neighbour on the 5-tuple, not evidence against Discord.
        return Probe.PASS

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        data = pkt.payload
        if len(data) == IP_DISCOVERY_BYTES and data[0:4] in IP_DISCOVERY_PREFIXES:
            self._ip_discovery(ctx, pkt, parse_ip_discovery(data))

    def _state(self, ctx: FlowContext) -> DiscordState:
        state = ctx.state.get(self.name)
        if state is None:
            state = ctx.state[self.name] = DiscordState()
        return state

    def _ip_discovery(self, ctx: FlowContext, pkt: Packet, msg: IpDiscovery) -> Probe:
        state = self._state(ctx)
        if msg.request:
            state.request_ssrc = msg.ssrc
            self._report(
                ctx, pkt, 0.85, f"Discord IP discovery request (74 bytes, SSRC {msg.ssrc})"
            )
            return Probe.MATCH
        if state.answered:
            return Probe.MATCH
        evidence = f"Discord IP discovery response (74 bytes, SSRC {msg.ssrc}"
        confidence = 0.85
        if _is_ip(msg.address):
            evidence += f", address {msg.address} port {msg.port}"
            confidence = 0.9
        if state.request_ssrc == msg.ssrc:
            evidence += ", echoing the request's SSRC"
            confidence = 0.97
            state.answered = True
        client_port = ctx.src_port if pkt.direction == 1 else ctx.dst_port
        if msg.port == client_port:
            evidence += ", port equals the client's"
        self._report(ctx, pkt, confidence, evidence + ")")
        return Probe.MATCH

    def _keepalive(self, ctx: FlowContext, pkt: Packet, counter: int) -> Probe:
        state = self._state(ctx)
        state.keepalives += 1
        self._report(ctx, pkt, 0.9, f"Discord UDP keepalive 0x1337CAFE, counter {counter}")
        return Probe.MATCH

    def _report(self, ctx: FlowContext, pkt: Packet, confidence: float, evidence: str) -> None:
        ctx.report(Finding("Discord", SIGNALING, confidence, evidence, pkt.seq, app="Discord"))
