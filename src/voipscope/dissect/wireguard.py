"""WireGuard messages (the WireGuard whitepaper, §5.4), as facts.

A lookalike: an encrypted UDP tunnel on any port (Mullvad offers 5060), carrying a
call's media inside where no RTP header shows. Every message starts with a type byte
(1-4) and three reserved zero bytes, and has an exact size: initiation 148, response 92,
cookie reply 64, transport data 32 + 16n (header 16, encrypted payload padded to 16,
Poly1305 tag 16) — except that implementations stop padding at the tunnel MTU
(Linux: ``min(mtu, ALIGN(len, 16))``), so a full-MTU packet (1452 bytes at the default
MTU 1420) is not a multiple of 16.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import DecodeError, Malformed, Truncated

HEADER_BYTES = 4  # type (1) + reserved zeros (3), whitepaper §5.4.2-5.4.6
INITIATION = 1
RESPONSE = 2
COOKIE_REPLY = 3
TRANSPORT_DATA = 4
MESSAGE_NAMES = {INITIATION: "handshake initiation", RESPONSE: "handshake response",
                 COOKIE_REPLY: "cookie reply", TRANSPORT_DATA: "transport data"}  # fmt: skip
SIZES = {INITIATION: 148, RESPONSE: 92, COOKIE_REPLY: 64}  # §5.4.2, §5.4.3, §5.4.7
TRANSPORT_HEADER_BYTES = 16  # type+reserved, receiver index, 64-bit counter (§5.4.6)
TAG_BYTES = 16  # Poly1305 (§5.4.6); the plaintext is zero-padded to 16 bytes
MIN_TRANSPORT_BYTES = TRANSPORT_HEADER_BYTES + TAG_BYTES  # an empty keepalive
# Transport counters in one direction grow by one per packet; allow some loss and
# reordering between two packets the probe sees.
MAX_COUNTER_STEP = 1024


@dataclass(slots=True, frozen=True)
class WireGuardMessage:
    message_type: int
    sender: int | None  # sender index (initiation, response)
    receiver: int | None  # receiver index (response, cookie reply, transport data)
    counter: int | None  # transport data nonce counter (little-endian, §5.4.6)
    aligned: bool = True  # transport data of 32 + 16n bytes (else cut short at the MTU)

    @property
    def name(self) -> str:
        return MESSAGE_NAMES[self.message_type]


def looks_like_wireguard(data: bytes) -> bool:
    return len(data) >= HEADER_BYTES and 1 <= data[0] <= 4 and data[1:4] == b"\x00\x00\x00"


def parse_wireguard(data: bytes) -> WireGuardMessage:
    """One WireGuard message (one UDP datagram); Truncated/Malformed."""
    if len(data) < HEADER_BYTES:
        raise Truncated(f"WireGuard message has {len(data)} bytes, fewer than 4")
    mtype = data[0]
    if mtype not in MESSAGE_NAMES:
        raise Malformed(f"WireGuard message type {mtype} is not 1-4")
    if data[1:4] != b"\x00\x00\x00":
        raise Malformed("WireGuard reserved bytes are not zero")
    index = int.from_bytes(data[4:8], "little")
    if mtype == TRANSPORT_DATA:
        if len(data) < MIN_TRANSPORT_BYTES:
            raise Truncated(f"WireGuard transport data of {len(data)} bytes is below 32")
        counter = int.from_bytes(data[8:16], "little")
        aligned = (len(data) - MIN_TRANSPORT_BYTES) % 16 == 0
        return WireGuardMessage(mtype, None, index, counter, aligned)
    size = SIZES[mtype]
    if len(data) < size:
        raise Truncated(f"WireGuard {MESSAGE_NAMES[mtype]} has {len(data)} bytes, not {size}")
    if len(data) > size:
        raise Malformed(f"WireGuard {MESSAGE_NAMES[mtype]} has {len(data)} bytes, not {size}")
    if mtype == INITIATION:
        return WireGuardMessage(mtype, index, None, None)
    if mtype == RESPONSE:
        return WireGuardMessage(mtype, index, int.from_bytes(data[8:12], "little"), None)
    return WireGuardMessage(mtype, None, index, None)


# -- dissector ---------------------------------------------------------------------------


@dataclass(slots=True)
class WireGuardFlowState:
    # Last transport data (receiver index, counter) per direction.
    last: list[tuple[int, int] | None] = field(default_factory=lambda: [None, None])


class WireGuardDissector(Dissector):
    """WireGuard on any UDP port: a handshake message of exact size, or transport data
    whose counter climbs under one receiver index (a tunnel seen mid-flow)."""

    name = "WireGuard"
    transports = frozenset({UDP})
    udp_first_bytes = frozenset(MESSAGE_NAMES)
    budget_packets = 4
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if not looks_like_wireguard(data):
            return Probe.NO
        try:
            msg = parse_wireguard(data)
        except DecodeError:
            return Probe.NO
        if msg.message_type != TRANSPORT_DATA:
            index = msg.sender if msg.sender is not None else msg.receiver
            confidence = 0.8 if msg.message_type == COOKIE_REPLY else 0.9
            ctx.report(Finding("WireGuard", OTHER, confidence,
                               f"WireGuard {msg.name}: exact {len(data)} bytes, reserved "
                               f"zeros, index 0x{index or 0:08x}", pkt.seq))  # fmt: skip
            return Probe.MATCH
        state: WireGuardFlowState = ctx.state.setdefault(self.name, WireGuardFlowState())
        if not msg.aligned:
            return Probe.MAYBE  # a full-MTU packet: consistent, but says little
        receiver, counter = msg.receiver or 0, msg.counter or 0
        previous = state.last[pkt.direction]
        state.last[pkt.direction] = (receiver, counter)
        if previous is None:
            return Probe.MAYBE
        if previous[0] != receiver:
            return Probe.NO  # one tunnel direction keeps its receiver index
        step = counter - previous[1]
        if not 0 < step <= MAX_COUNTER_STEP:
            return Probe.MAYBE if -MAX_COUNTER_STEP <= step < 0 else Probe.NO  # reordered
        ctx.report(Finding("WireGuard", OTHER, 0.85,
                           f"WireGuard transport data (reserved zeros, padded sizes): "
                           f"receiver 0x{receiver:08x}, counter {previous[1]} -> {counter}",
                           pkt.seq))  # fmt: skip
        return Probe.MATCH
