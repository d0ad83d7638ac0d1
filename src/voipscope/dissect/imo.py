"""imo (imo.im) calls: the UDP framing of its voice and video engine, read from the bytes
of imo.pcap (a video call through a relay, 185.155.137.30, and peer to peer).

A datagram carries frames of ``[length][body]``: the length a big-endian base-128 varint
(high bit: another byte follows) counting the body exactly -- ``89 46`` = 9·128 + 70 =
1,222 of a 1,224-byte datagram -- and a relay's datagrams begin with one ``00`` before
it. The body's first byte is the frame's type:

- ``02`` a probe with a token, answered by ``03`` with the same token from the other end
  (``09 02 dc 9a 02 00 00 00 00 00`` and back ``09 03 dc 9a 02 ...``);
- ``0d`` media, a 16-bit counter after the type (``0d 00 00``, ``0d 00 01``, ...);
- ``1a`` the client's 1,222-byte video fragments, the relay's 8-byte reports.

Later datagrams pack several frames or add a trailer (types ``0a``, ``0e``, ``18``); the
first ones of a flow are single whole frames. nDPI (``imo.c``) matches three fixed
prefixes of these (``09 02`` at 10 bytes, ``00 09 03`` at 11, ``88 49 1a 00`` at 1,099)
and two equal one-byte datagrams. Here a datagram counts when it is one whole frame of a
known type; the flow is imo's when three do and both directions sent one, or when a
probe's token comes back from the other end. Media once a media frame of voice or video
size is seen; until then the checks are signalling. A ``1a`` video fragment later makes
the flow video (the relayed flow of imo.pcap: mean packet 398 bytes, which the mean-size
rule called audio).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import MEDIA, SIGNALING, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

PROBE, PROBE_REPLY, MEDIA_FRAME, VIDEO_FRAME = 0x02, 0x03, 0x0D, 0x1A
WHOLE_FRAME_TYPES = {
    PROBE: "probe",
    PROBE_REPLY: "probe reply",
    MEDIA_FRAME: "media",
    VIDEO_FRAME: "video/report",
}
# Types seen only inside packed or trailed datagrams: they keep a flow in play.
OTHER_TYPES = frozenset({0x0A, 0x0E, 0x18, 0x27})
TOKEN_BYTES = 4  # after a probe's type: the part the reply repeats
# The shortest whole frame imo.pcap shows is the relay's 8-byte 1a report (a probe is 9:
# type, token, four zeros); a shorter "frame" is two bytes that happen to agree.
MIN_WHOLE_BODY_BYTES = 8
MAX_VARINT_BYTES = 3  # 2,097,151: beyond any datagram
MATCH_WHOLE_FRAMES = 3
# A media frame this large carries voice or video (the counter and a few header bytes
# are 3-8 bytes; the relay's 8-byte 1a reports are not media).
MEDIA_MIN_BODY_BYTES = 32
# A frame this large is video (imo.pcap's relayed client sends 1a fragments of 1,222
# bytes, split near the MTU; the peer-to-peer one packs 0a frames of ~1,014): the call is
# a video call. Its voice frames run to a few hundred bytes.
VIDEO_MIN_BODY_BYTES = 600


@dataclass(slots=True, frozen=True)
class ImoFrame:
    relayed: bool  # the relay's leading 00
    length: int  # the varint: bytes of the first frame's body
    kind: int  # the body's first byte
    whole: bool  # the datagram is exactly this one frame
    body: bytes


def parse_frame(data: bytes) -> ImoFrame:
    """The first frame of a datagram; raises ``DecodeError`` when it cannot be one."""
    # A varint never starts with 00 (a zero length would end there): a relay's prefix.
    prefix = 1 if len(data) > 2 and data[0] == 0 else 0
    length, at = _frame_at(data, prefix)
    body = bytes(data[at : at + length])
    return ImoFrame(prefix == 1, length, body[0], at + length == len(data), body)


def _frame_at(data: bytes, at: int) -> tuple[int, int]:
    """(body length, body offset) of the frame whose length varint starts at ``at``."""
    length = 0
    for k in range(MAX_VARINT_BYTES):
        if at >= len(data):
            raise Truncated("imo frame ends inside its length")
        byte = data[at]
        at += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
        if k == MAX_VARINT_BYTES - 1:
            raise Malformed("imo frame length runs past three bytes")
    if length == 0 or at + length > len(data):
        raise Malformed(f"imo frame of {length} bytes in {len(data) - at} left")
    return length, at


def largest_packed_body(data: bytes) -> int:
    """The largest frame body of a datagram that is a chain of frames filling it exactly
    (a later datagram packs several: ``18`` 7 bytes, ``0a`` 1,014, ``21`` 8, ``35`` 5 in
    one of 1,039); 0 when the bytes are no such chain."""
    at = 1 if len(data) > 2 and data[0] == 0 else 0
    largest = 0
    while at < len(data):
        try:
            length, at = _frame_at(data, at)
        except (Truncated, Malformed):
            return 0
        largest = max(largest, length)
        at += length
    return largest


@dataclass(slots=True)
class ImoFlowState:
    whole: list[int] = field(default_factory=lambda: [0, 0])  # per direction
    kinds: set[int] = field(default_factory=set)
    tokens: dict[bytes, int] = field(default_factory=dict)  # probe token -> direction
    echoed: bool = False
    relayed: bool = False
    media: bool = False
    media_at: int = 0  # the packet of the first media finding: the verdict's
    video: bool = False


class ImoDissector(Dissector):
    name = "imo"
    budget_packets = 12
    follow_packets = 64

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        state = ctx.state.get(self.name)
        if state is None:
            state = ctx.state[self.name] = ImoFlowState()
        if len(pkt.payload) == 1:
            return Probe.MAYBE  # imo's one-byte keepalives, nothing to read
        frame = parse_frame(pkt.payload)
        if frame.kind not in WHOLE_FRAME_TYPES and frame.kind not in OTHER_TYPES:
            return Probe.NO
        self._account(state, frame, pkt.direction)
        enough = sum(state.whole) >= MATCH_WHOLE_FRAMES and min(state.whole) > 0
        if not (enough or state.echoed):
            return Probe.MAYBE
        self._report(ctx, state, pkt.seq)
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        """Follow the flow until its media shows, then until a video fragment does (or
        the follow budget ends): audio or video is the flow's to say."""
        state: ImoFlowState = ctx.state[self.name]
        if state.video:
            return Probe.NO
        try:
            frame = parse_frame(pkt.payload)
        except (Truncated, Malformed):
            return None
        had_media = state.media
        self._account(state, frame, pkt.direction)
        if state.media and not had_media:
            self._report(ctx, state, pkt.seq)
        # A datagram of one whole frame is its own chain: no second walk over it.
        largest = frame.length if frame.whole else largest_packed_body(pkt.payload)
        if largest >= VIDEO_MIN_BODY_BYTES:
            state.video = True
            # Media since the first media frame (or this one); video is what it was.
            ctx.report(self._finding(state, state.media_at or pkt.seq))
            return Probe.NO
        return None

    def _report(self, ctx: FlowContext, state: ImoFlowState, seq: int) -> None:
        if state.media and not state.media_at:
            state.media_at = seq
        ctx.report(self._finding(state, seq))

    @staticmethod
    def _account(state: ImoFlowState, frame: ImoFrame, direction: int) -> None:
        if not frame.whole or frame.kind not in WHOLE_FRAME_TYPES:
            return
        if len(frame.body) < MIN_WHOLE_BODY_BYTES:
            return
        state.whole[direction] += 1
        state.kinds.add(frame.kind)
        state.relayed = state.relayed or frame.relayed
        token = frame.body[1 : 1 + TOKEN_BYTES]
        if frame.kind == PROBE and len(token) == TOKEN_BYTES:
            state.tokens.setdefault(token, direction)
        elif frame.kind == PROBE_REPLY and state.tokens.get(token, direction) != direction:
            state.echoed = True
        if frame.kind in (MEDIA_FRAME, VIDEO_FRAME) and len(frame.body) >= MEDIA_MIN_BODY_BYTES:
            state.media = True

    @staticmethod
    def _finding(state: ImoFlowState, seq: int) -> Finding:
        kinds = ", ".join(f"{k:02x} {WHOLE_FRAME_TYPES[k]}" for k in sorted(state.kinds))
        evidence = (
            f"imo framing: {sum(state.whole)} datagrams each one whole frame (varint length "
            f"= the rest{', after a relay 00' if state.relayed else ''}), both ways; "
            f"types {kinds}"
        )
        if state.echoed:
            evidence += "; a probe's token came back from the other end"
        if state.video:
            # Surer than the first media finding, so it is the one the arbiter keeps.
            evidence += "; video (frames of >= 600 bytes)"
            return Finding("imo", MEDIA, 0.9, evidence, seq, app="imo", media="video")
        if state.media:
            return Finding("imo", MEDIA, 0.85, evidence + "; voice/video frames", seq, app="imo")
        return Finding("imo", SIGNALING, 0.8, evidence, seq, app="imo")
