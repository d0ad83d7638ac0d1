"""Telegram calls through UDP reflectors (libtgvoip / tgcalls relays).

Every datagram to or from a reflector starts with the call's 16-byte *peer tag*, the
same in both directions. Reflector control packets follow it with twelve 0xFF bytes and
a little-endian 32-bit type (libtgvoip ``MockReflector.cpp``: ``UdpReflectorSelfInfo``
= peer tag, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF, magic 0xc01572c7; ``VoIPController.cpp``:
``TLID_UDP_REFLECTOR_PEER_INFO`` 0x27D9371C, and 0xFFFFFFFE as the client's request).
Voice packets are the peer tag and then encrypted data. Peer-to-peer legs carry no tag
and are left to the behavioural classifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import (
    MEDIA,
    SIGNALING,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.errors import Malformed, Truncated

PEER_TAG_BYTES = 16
SPECIAL_MARK = b"\xff" * 12
TYPES = {
    0xFFFFFFFE: "reflector request",
    0xC01572C7: "UDP_REFLECTOR_SELF_INFO",
    0x27D9371C: "UDP_REFLECTOR_PEER_INFO",
    0xFFFFFFFF: "reflector ping",
}
# Tagged data packets, both directions, before the flow counts as the call's voice
# (reflector pings between calls also carry the tag but come a few per second).
MEDIA_MIN_DATA_PACKETS = 16


@dataclass(slots=True, frozen=True)
class ReflectorPacket:
    peer_tag: bytes
    special_type: int | None  # None: a data (voice) packet


def parse_reflector(data: bytes) -> ReflectorPacket:
    if len(data) < PEER_TAG_BYTES + 4:
        raise Truncated(f"Telegram reflector packet has {len(data)} bytes")
    tag = bytes(data[:PEER_TAG_BYTES])
    body = data[PEER_TAG_BYTES:]
    if body[:12] == SPECIAL_MARK:
        if len(body) < 16:
            raise Truncated("Telegram reflector control packet ends inside its type")
        kind = int.from_bytes(body[12:16], "little")
        if kind not in TYPES:
            raise Malformed(f"Telegram reflector control type 0x{kind:08x} is not known")
        return ReflectorPacket(tag, kind)
    return ReflectorPacket(tag, None)


@dataclass(slots=True)
class TelegramFlowState:
    peer_tag: bytes
    specials: set[int] = field(default_factory=set)
    data: list[int] = field(default_factory=lambda: [0, 0])  # per direction
    reported_media: bool = False


class TelegramDissector(Dissector):
    name = "Telegram"
    budget_packets = 4
    follow_packets = 32

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        msg = parse_reflector(pkt.payload)
        state = ctx.state.get(self.name)
        if state is None:
            state = ctx.state[self.name] = TelegramFlowState(msg.peer_tag)
        elif msg.peer_tag != state.peer_tag:
            return Probe.NO
        self._account(state, msg, pkt)
        # A known control type after the tag, and the tag again on a second packet.
        if not state.specials or sum(state.data) + len(state.specials) < 2:
            return Probe.MAYBE
        names = ", ".join(TYPES[t] for t in sorted(state.specials))
        ctx.report(Finding("Telegram", SIGNALING, 0.9,
                           f"Telegram reflector: 16-byte peer tag on every packet, {names}",
                           pkt.seq, app="Telegram"))  # fmt: skip
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        state: TelegramFlowState = ctx.state[self.name]
        if pkt.payload[:PEER_TAG_BYTES] != state.peer_tag or len(pkt.payload) < 20:
            return None
        try:
            msg = parse_reflector(pkt.payload)
        except (Truncated, Malformed):
            return None
        self._account(state, msg, pkt)
        if (
            not state.reported_media
            and min(state.data)
            and sum(state.data) >= MEDIA_MIN_DATA_PACKETS
        ):
            state.reported_media = True
            ctx.report(Finding("Telegram", MEDIA, 0.85,
                               f"Telegram voice through a reflector: {sum(state.data)} "
                               "encrypted packets with the call's peer tag, both ways",
                               pkt.seq, app="Telegram", media="audio"))  # fmt: skip
            return Probe.NO
        return None

    @staticmethod
    def _account(state: TelegramFlowState, msg: ReflectorPacket, pkt: Packet) -> None:
        if msg.special_type is None:
            state.data[pkt.direction] += 1
        else:
            state.specials.add(msg.special_type)
