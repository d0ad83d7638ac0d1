"""IAX2 frames (RFC 5456 §8) as facts: full frames (with type and sequence numbers) and
mini frames (voice without a full header)."""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import MEDIA, SIGNALING, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import DecodeError, Malformed, Truncated

FULL_HEADER_BYTES = 12  # §8.1.1
MINI_HEADER_BYTES = 4  # §8.1.2
META_HEADER_BYTES = 4  # §8.1.3 (video meta frames: first 16 bits zero)
# §8.2 frame types
FRAME_TYPES = {1: "DTMF_E", 2: "VOICE", 3: "VIDEO", 4: "CONTROL", 5: "NULL", 6: "IAX", 7: "TEXT",
               8: "IMAGE", 9: "HTML", 10: "CNG", 12: "DTMF_B"}  # fmt: skip


@dataclass(slots=True, frozen=True)
class Iax2Frame:
    full: bool
    source_call: int
    destination_call: int | None  # full frames
    retransmitted: bool
    timestamp: int
    oseqno: int | None
    iseqno: int | None
    frame_type: int | None
    subclass: int | None


def parse_iax2(data: bytes) -> Iax2Frame:
    if len(data) < MINI_HEADER_BYTES:
        raise Truncated(f"IAX2 frame has {len(data)} bytes")
    word = int.from_bytes(data[0:2], "big")
    if word & 0x8000 == 0:
        if word == 0:
            raise Malformed("IAX2 meta frame (source call 0) is not decoded")
        return Iax2Frame(
            False, word, None, False, int.from_bytes(data[2:4], "big"), None, None, None, None
        )
    if len(data) < FULL_HEADER_BYTES:
        raise Truncated("IAX2 full frame header is truncated")
    dest = int.from_bytes(data[2:4], "big")
    frame_type = data[10]
    if frame_type not in FRAME_TYPES:
        raise Malformed(f"IAX2 frame type {frame_type} is not known")
    return Iax2Frame(
        True,
        word & 0x7FFF,
        dest & 0x7FFF,
        bool(dest & 0x8000),
        int.from_bytes(data[4:8], "big"),
        data[8],
        data[9],
        frame_type,
        data[11],
    )


# -- dissector ---------------------------------------------------------------------------

FRAME_VOICE = 2
FRAME_VIDEO = 3
FRAME_IAX = 6
IAX2_PORT = 4569  # RFC 5456 §11: weak evidence only, the structure decides


@dataclass(slots=True)
class Iax2FlowState:
    full_frames: int = 0
    mini_frames: int = 0
    voice: bool = False
    video: bool = False
    last_oseq: list[int | None] = field(default_factory=lambda: [None, None])


class Iax2Dissector(Dissector):
    """IAX2 (RFC 5456): signalling and media share one UDP flow."""

    name = "IAX2"
    budget_packets = 4
    follow_packets = 64
    udp_first_bytes = frozenset(range(0x80, 0x100))  # the F bit of a full frame
    ANOMALIES = {"iax2_malformed": "a datagram of an IAX2 flow that does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if len(data) < FULL_HEADER_BYTES or not data[0] & 0x80:
            return Probe.NO  # a flow starts with full frames (NEW/ACK ...)
        frame = parse_iax2(data)
        state = ctx.state.setdefault(self.name, Iax2FlowState())
        self._account(state, frame, pkt)
        # A full frame's subclass for IAX control frames is 1..37 (§8.4); oseqno/iseqno
        # start at 0 and move by one: two consistent frames make a match.
        if frame.frame_type == FRAME_IAX and not 1 <= (frame.subclass or 0) <= 0x26:
            return Probe.NO
        if state.full_frames < 2 and IAX2_PORT not in (ctx.src_port, ctx.dst_port):
            return Probe.MAYBE
        name = FRAME_TYPES.get(frame.frame_type or 0, "?")
        ctx.report(
            Finding(
                "IAX2",
                self._category(state),
                0.9,
                f"IAX2 full frame {name} subclass {frame.subclass}, calls "
                f"{frame.source_call}->{frame.destination_call}",
                pkt.seq,
            )
        )
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        try:
            frame = parse_iax2(pkt.payload)
        except DecodeError:
            return
        state = ctx.state[self.name]
        was_media = state.voice or state.video
        self._account(state, frame, pkt)
        if (state.voice or state.video) and not was_media:
            ctx.report(
                Finding(
                    "IAX2",
                    MEDIA,
                    0.9,
                    f"IAX2 voice/video frames on the flow ({state.mini_frames} mini frames)",
                    pkt.seq,
                    media="video" if state.video else "audio",
                )
            )

    @staticmethod
    def _account(state: Iax2FlowState, frame: Iax2Frame, pkt: Packet) -> None:
        if frame.full:
            state.full_frames += 1
            state.voice |= frame.frame_type == FRAME_VOICE
            state.video |= frame.frame_type == FRAME_VIDEO
        else:
            state.mini_frames += 1
            state.voice = True  # mini frames carry voice only (§8.1.2)

    @staticmethod
    def _category(state: Iax2FlowState) -> str:
        return MEDIA if state.voice or state.video else SIGNALING
