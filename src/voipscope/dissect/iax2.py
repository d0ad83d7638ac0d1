"""IAX2 frames (RFC 5456 §8) as facts: full frames (with type and sequence numbers) and
mini frames (voice without a full header). Every full frame is handed to the later stages
as an ``Iax2Message`` (call numbers, frame name, the information elements a call tracker
reads); mini frames are not (they are media, counted by the flow)."""

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


# §8.4 / §6: IAX frame subclasses (frame type 6).
IAX_SUBCLASSES = {0x01: "NEW", 0x02: "PING", 0x03: "PONG", 0x04: "ACK", 0x05: "HANGUP",
                  0x06: "REJECT", 0x07: "ACCEPT", 0x08: "AUTHREQ", 0x09: "AUTHREP",
                  0x0A: "INVAL", 0x0B: "LAGRQ", 0x0C: "LAGRP", 0x0D: "REGREQ",
                  0x0E: "REGAUTH", 0x0F: "REGACK", 0x10: "REGREJ", 0x11: "REGREL",
                  0x12: "VNAK", 0x13: "DPREQ", 0x14: "DPREP", 0x15: "DIAL", 0x16: "TXREQ",
                  0x17: "TXCNT", 0x18: "TXACC", 0x19: "TXREADY", 0x1A: "TXREL",
                  0x1B: "TXREJ", 0x1C: "QUELCH", 0x1D: "UNQUELCH", 0x1E: "POKE",
                  0x20: "MWI", 0x21: "UNSUPPORT", 0x22: "TRANSFER", 0x23: "PROVISION",
                  0x24: "FWDOWNL", 0x25: "FWDATA", 0x26: "TXMEDIA", 0x28: "CALLTOKEN"}  # fmt: skip
# §8.3 Table 3: control frame subclasses (frame type 4).
CONTROL_SUBCLASSES = {0x01: "HANGUP", 0x03: "RINGING", 0x04: "ANSWER", 0x05: "BUSY",
                      0x08: "CONGESTION", 0x09: "FLASH", 0x0B: "OPTION", 0x0C: "KEY",
                      0x0D: "UNKEY", 0x0E: "PROGRESS", 0x0F: "PROCEEDING", 0x10: "HOLD",
                      0x11: "UNHOLD"}  # fmt: skip
# §8.6 information elements a call tracker reads.
IE_CALLED_NUMBER = 0x01
IE_CALLING_NUMBER = 0x02
IE_CALLING_NAME = 0x04
IE_CALLED_CONTEXT = 0x05
IE_USERNAME = 0x06
IE_FORMAT = 0x09
IE_CAUSE = 0x16  # text
IE_CAUSECODE = 0x2A  # one octet, a Q.931 cause value (§8.6.21)
MAX_IES = 64  # elements read per frame (attacker-controlled)
TEXT_IES = {IE_CALLED_NUMBER: "called_number", IE_CALLING_NUMBER: "calling_number",
            IE_CALLING_NAME: "calling_name", IE_CALLED_CONTEXT: "called_context",
            IE_USERNAME: "username", IE_CAUSE: "cause"}  # fmt: skip


@dataclass(slots=True)
class Iax2Message:
    """One full frame as a call tracker needs it."""

    source_call: int
    destination_call: int
    retransmitted: bool
    oseqno: int
    iseqno: int
    frame_type: int
    subclass: int
    called_number: str | None = None
    calling_number: str | None = None
    calling_name: str | None = None
    called_context: str | None = None
    username: str | None = None
    cause: str | None = None
    cause_code: int | None = None
    format: int | None = None  # §8.6.9: the codec bit chosen (ACCEPT) or offered (NEW)

    @property
    def name(self) -> str:
        if self.frame_type == FRAME_IAX:
            return IAX_SUBCLASSES.get(self.subclass, f"IAX{self.subclass}")
        if self.frame_type == FRAME_CONTROL:
            return CONTROL_SUBCLASSES.get(self.subclass, f"CONTROL{self.subclass}")
        return FRAME_TYPES.get(self.frame_type, str(self.frame_type))


def parse_iax2_message(data: bytes) -> Iax2Message:
    """A full frame with, for IAX frames, its information elements (§8.6)."""
    frame = parse_iax2(data)
    if not frame.full:
        raise Malformed("IAX2 mini frame has no call signalling")
    msg = Iax2Message(
        frame.source_call,
        frame.destination_call or 0,
        frame.retransmitted,
        frame.oseqno or 0,
        frame.iseqno or 0,
        frame.frame_type or 0,
        frame.subclass or 0,
    )
    if msg.frame_type != FRAME_IAX:
        return msg
    offset = FULL_HEADER_BYTES
    for _ in range(MAX_IES):
        if offset >= len(data):
            return msg
        if offset + 2 > len(data):
            raise Truncated("IAX2 information element ends inside its header")
        ie, length = data[offset], data[offset + 1]
        value = data[offset + 2 : offset + 2 + length]
        if len(value) < length:
            raise Truncated(f"IAX2 information element {ie} runs past the frame")
        offset += 2 + length
        if ie in TEXT_IES:
            setattr(msg, TEXT_IES[ie], value.decode("utf-8", "replace"))
        elif ie == IE_CAUSECODE and length == 1:
            msg.cause_code = value[0]
        elif ie == IE_FORMAT and length == 4:
            msg.format = int.from_bytes(value, "big")
    raise Malformed(f"IAX2 frame with more than {MAX_IES} information elements")


# -- dissector ---------------------------------------------------------------------------

FRAME_CONTROL = 4
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
    # All: a HANGUP comes after minutes of voice. Mini frames (the voice) cost one byte
    # test each once the media finding is made.
    follow_packets = -1
    udp_first_bytes = frozenset(range(0x80, 0x100))  # the F bit of a full frame
    ANOMALIES = {"iax2_malformed": "a datagram of an IAX2 flow that does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        # A flow starts with full frames (NEW/ACK ...) of a known type (§8.2); an IAX
        # frame's subclass is 1..38 (§8.4). Refused from these bytes before any parsing:
        # about half of all random first bytes have the F bit.
        if (
            len(data) < FULL_HEADER_BYTES
            or not data[0] & 0x80
            or data[10] not in FRAME_TYPES
            or (data[10] == FRAME_IAX and not 1 <= data[11] <= 0x26)
        ):
            return Probe.NO
        frame = parse_iax2(data)
        state = ctx.state.setdefault(self.name, Iax2FlowState())
        self._account(state, frame, pkt)
        self._emit(ctx, pkt)
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
        state = ctx.state[self.name]
        data = pkt.payload
        if (state.voice or state.video) and data[:1] and not data[0] & 0x80:
            state.mini_frames += 1  # voice: nothing more to learn from it
            return
        try:
            frame = parse_iax2(data)
        except DecodeError:
            return
        self._emit(ctx, pkt)
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
    def _emit(ctx: FlowContext, pkt: Packet) -> None:
        """Hand a full frame to the later stages. Its elements do not decide the match
        (the header did): one that does not parse is an anomaly, not a NO."""
        if not pkt.payload[:1] or not pkt.payload[0] & 0x80:
            return
        try:
            msg = parse_iax2_message(pkt.payload)
        except DecodeError as exc:
            ctx.anomaly("iax2_malformed", str(exc), pkt.ts_ns)
            return
        ctx.message("IAX2", pkt, msg)

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
