"""Zoom's UDP media transport, as facts: the SFU and media encapsulations around SRTP.

Zoom clients talk to a multimedia router on UDP 8801-8810 (Zoom support article
KB0060548, "Zoom network firewall or proxy server settings"). Zoom does not document the
wire format; what is known comes from Michel et al., "Enabling Passive Measurement of
Zoom Performance in Production Networks" (IMC 2022) and its tools
(github.com/Princeton-Cabernet/zoom-analysis: ``src/lib/zoom.h``, ``src/lib/zoom.cc``,
``wireshark/zoom.lua``), which nDPI's ``src/lib/protocols/zoom.c`` follows:

* **SFU encapsulation** (client <-> server only), 8 bytes: type (1), sequence (2),
  4 bytes, direction (1: 0x00 towards Zoom, 0x04 from Zoom). Type 5 carries media.
* **Media encapsulation** (inside SFU type 5, or alone on peer-to-peer calls): a type
  byte, then type-specific fields, then the (S)RTP or RTCP packet at a fixed offset:

  ====  ======================  ===============================================
  type  meaning                 RTP/RTCP offset within the media header
  ====  ======================  ===============================================
  13    screen share            27, when byte 7 is 0x1E (zoom.cc, zoom.lua)
  15    audio                   19
  16    video                   24 when byte 20 is 0x02, else 20 (zoom.cc)
  30    screen share (P2P)      20
  33-35 RTCP                    16
  ====  ======================  ===============================================

nDPI adds the first bytes of SFU types 1 and 2 (``01 00 02|03`` from the client,
``02 00 02|03`` from the server) and the P2P opening packet (``1F 02 01``, a
length-value list of an address and a UUID, four zero bytes at the end).

Observed in zoom.pcap and zoom2.pcap (not documented anywhere we found, so used only as
consistency checks, never alone): the type-2 reply repeats the 16 bytes at offset 3 of
the client's type-1 packet and adds a 4-byte connection id at offset 19; type 3/4
packets carry that id at offset 9 and type-4 echoes type 3; in the 8-byte SFU header of
type 5 the id sits at offset 3. Older clients (type-1 byte 2 = 0x02, zoom.pcap) put the
media type right after a 1-byte SFU header instead of the 8-byte one.

Join, keepalive and control messages are the app's signalling on its media transport;
type-5 packets carrying RTP/RTCP (and the type-21 bandwidth probes) are media.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import (
    MEDIA,
    SIGNALING,
    UDP,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.dissect.rtp import RtcpPacket, RtpHeader, parse_rtcp_compound, parse_rtp
from voipscope.errors import DecodeError, Malformed, Truncated, Unsupported

ZOOM_UDP_PORTS = range(8801, 8811)  # Zoom KB0060548: multimedia router UDP 8801-8810

# SFU encapsulation (zoom.lua "Zoom SFU Encapsulation"; nDPI zoom.c struct zoom_sfu_enc).
SFU_HEADER_BYTES = 8
SFU_HELLO = 1  # client -> server, nDPI "01 00 02|03"
SFU_HELLO_REPLY = 2  # server -> client, nDPI "02 00 02|03"
SFU_PING, SFU_PONG = 3, 4  # nDPI: "SFU types 3 and 4", weak
SFU_MEDIA = 5
SFU_TYPES = range(1, 8)  # type 7 seen once in zoom2.pcap
SFU_TO_ZOOM, SFU_FROM_ZOOM = 0x00, 0x04
SESSION_ID = slice(3, 19)  # types 1 and 2 (observed)
HELLO_REPLY_CONNECTION = slice(19, 23)  # type 2 (observed)
PING_CONNECTION = slice(9, 13)  # types 3 and 4 (observed)
PING_ECHO = slice(1, 13)  # what a type 4 repeats of a type 3 (observed)

# Media encapsulation types (zoom.h, zoom.lua, nDPI zoom.c struct zoom_media_enc).
SCREEN_SHARE, AUDIO, VIDEO, P2P_SCREEN_SHARE = 13, 15, 16, 30
RTCP_TYPES = frozenset({33, 34, 35})
MEDIA_TYPES = {SCREEN_SHARE: "screen share", AUDIO: "audio", VIDEO: "video",
               P2P_SCREEN_SHARE: "screen share (P2P)", 33: "RTCP", 34: "RTCP", 35: "RTCP",
               # zoom.lua: 21 and 32 "unclear"; 10 and 12 are control messages in zoom2.pcap
               10: "control", 12: "control", 21: "unclear", 32: "unclear"}  # fmt: skip
MEDIA_KIND = {SCREEN_SHARE: "video", AUDIO: "audio", VIDEO: "video", P2P_SCREEN_SHARE: "video"}
SERVER_SCREEN_SHARE_SUBTYPE = 0x1E  # zoom.cc: type 13 carries RTP when byte 7 is 0x1E
AUDIO_RTP_OFFSET = 19
VIDEO_RTP_OFFSET, VIDEO_RTP_OFFSET_FRAMED = 20, 24  # zoom.cc: 24 when byte 20 is 0x02
SCREEN_SHARE_RTP_OFFSET = 27
P2P_SCREEN_SHARE_RTP_OFFSET = 20
RTCP_OFFSET = 16

# Media type 21, "unclear" in zoom.lua: in zoom.pcap and zoom2.pcap ~1 KB datagrams every
# ~10 ms whose body is one byte value repeated (0x01, 0x02, ...): bandwidth probes, in the
# media plane but carrying no audio or video (observed; reported as media without a kind).
PROBE_TYPE = 21
PROBE_MIN_BYTES = 500
PROBE_TAIL_BYTES = 64
PROBES_FOR_MEDIA = 5

# nDPI zoom.c: the first packet of a peer-to-peer call.
P2P_HELLO_PREFIX = b"\x1f\x02\x01"
P2P_HELLO_LIST_OFFSET = 24
P2P_HELLO_MIN_BYTES = 37


@dataclass(slots=True, frozen=True)
class ZoomSfu:
    sfu_type: int
    sequence: int | None = None  # type 5 (2 bytes) or types 3/4 (4-byte counter)
    connection_id: bytes | None = None  # types 2, 3, 4 and long-form 5 (observed)
    direction: int | None = None  # long-form type 5: 0x00 to Zoom, 0x04 from Zoom
    session_id: bytes | None = None  # types 1 and 2 (observed)
    version: int | None = None  # byte 2 of types 1 and 2
    media_offset: int | None = None  # type 5: where the media encapsulation starts


@dataclass(slots=True, frozen=True)
class ZoomMedia:
    media_type: int
    name: str
    kind: str | None  # "audio" | "video" | None
    payload_offset: int | None  # of the RTP/RTCP packet within the media header
    rtp: RtpHeader | None = None
    rtcp: tuple[RtcpPacket, ...] = ()


def parse_zoom_sfu(data: bytes) -> ZoomSfu:
    """The SFU encapsulation header (client <-> Zoom server)."""
    if not data:
        raise Truncated("empty Zoom SFU packet")
    kind = data[0]
    if kind in (SFU_HELLO, SFU_HELLO_REPLY):
        need = SESSION_ID.stop if kind == SFU_HELLO else HELLO_REPLY_CONNECTION.stop
        if len(data) < need:
            raise Truncated(f"Zoom SFU type {kind} has {len(data)} bytes, fewer than {need}")
        if data[1] != 0:
            raise Malformed(f"Zoom SFU type {kind} byte 1 is 0x{data[1]:02x}, not 0")
        return ZoomSfu(
            kind,
            session_id=bytes(data[SESSION_ID]),
            version=data[2],
            connection_id=bytes(data[HELLO_REPLY_CONNECTION]) if kind == SFU_HELLO_REPLY else None,
        )
    if kind in (SFU_PING, SFU_PONG):
        if len(data) < PING_CONNECTION.stop:
            raise Truncated(f"Zoom SFU type {kind} has {len(data)} bytes, fewer than 13")
        return ZoomSfu(
            kind,
            sequence=int.from_bytes(data[1:5], "big"),
            connection_id=bytes(data[PING_CONNECTION]),
        )
    if kind == SFU_MEDIA:
        if len(data) < 2:
            raise Truncated("Zoom SFU media packet has no media header")
        if (
            len(data) > SFU_HEADER_BYTES
            and data[7] in (SFU_TO_ZOOM, SFU_FROM_ZOOM)
            and data[SFU_HEADER_BYTES] in MEDIA_TYPES
        ):
            return ZoomSfu(
                kind,
                sequence=int.from_bytes(data[1:3], "big"),
                connection_id=bytes(data[3:7]),
                direction=data[7],
                media_offset=SFU_HEADER_BYTES,
            )
        if data[1] in MEDIA_TYPES:  # older clients: a 1-byte SFU header (zoom.pcap)
            return ZoomSfu(kind, media_offset=1)
        if len(data) <= SFU_HEADER_BYTES:
            raise Truncated(f"Zoom SFU media packet has {len(data)} bytes, fewer than 9")
        raise Unsupported(f"Zoom media type {data[SFU_HEADER_BYTES]} is not known")
    if kind in SFU_TYPES:
        return ZoomSfu(kind)
    raise Malformed(f"Zoom SFU type {kind} is not 1-7")


def parse_zoom_media(data: bytes) -> ZoomMedia:
    """The media encapsulation and the RTP/RTCP packet it carries (when its type has one)."""
    if not data:
        raise Truncated("empty Zoom media encapsulation")
    kind = data[0]
    name = MEDIA_TYPES.get(kind)
    if name is None:
        raise Unsupported(f"Zoom media type {kind} is not known")
    offset: int | None
    if kind == AUDIO:
        offset = AUDIO_RTP_OFFSET
    elif kind == VIDEO:
        if len(data) <= VIDEO_RTP_OFFSET:
            raise Truncated(f"Zoom video header has {len(data)} bytes, fewer than 21")
        offset = VIDEO_RTP_OFFSET_FRAMED if data[20] == 0x02 else VIDEO_RTP_OFFSET
    elif kind == P2P_SCREEN_SHARE:
        offset = P2P_SCREEN_SHARE_RTP_OFFSET
    elif kind == SCREEN_SHARE:
        if len(data) < 8:
            raise Truncated(f"Zoom screen-share header has {len(data)} bytes, fewer than 8")
        offset = SCREEN_SHARE_RTP_OFFSET if data[7] == SERVER_SCREEN_SHARE_SUBTYPE else None
    elif kind in RTCP_TYPES:
        offset = RTCP_OFFSET
    else:
        offset = None
    if offset is None:
        return ZoomMedia(kind, name, MEDIA_KIND.get(kind), None)
    if len(data) <= offset:
        raise Truncated(f"Zoom {name} header of {len(data)} bytes ends before its payload")
    if kind in RTCP_TYPES:
        rtcp = tuple(parse_rtcp_compound(bytes(data[offset:])))
        return ZoomMedia(kind, name, None, offset, rtcp=rtcp)
    rtp = parse_rtp(bytes(data[offset:]))
    return ZoomMedia(kind, name, MEDIA_KIND.get(kind), offset, rtp=rtp)


def parse_zoom_p2p_hello(data: bytes) -> tuple[str, bytes]:
    """nDPI's P2P opening packet: (address text, UUID bytes)."""
    if len(data) < P2P_HELLO_MIN_BYTES:
        raise Truncated(f"Zoom P2P hello has {len(data)} bytes, fewer than 37")
    if data[0:3] != P2P_HELLO_PREFIX:
        raise Malformed("Zoom P2P hello does not start with 1F 02 01")
    if data[-4:] != b"\0\0\0\0":
        raise Malformed("Zoom P2P hello does not end with four zero bytes")
    at = P2P_HELLO_LIST_OFFSET
    ip_len = int.from_bytes(data[at : at + 4], "big")
    at += 4
    if at + ip_len + 4 > len(data) - 4:
        raise Malformed(f"Zoom P2P hello address length {ip_len} runs past the packet")
    address = bytes(data[at : at + ip_len])
    at += ip_len
    uuid_len = int.from_bytes(data[at : at + 4], "big")
    at += 4
    if at + uuid_len + 4 != len(data):
        raise Malformed(f"Zoom P2P hello UUID length {uuid_len} does not fill the packet")
    return address.decode("ascii", "replace"), bytes(data[at : at + uuid_len])


# First bytes any Zoom UDP packet can start with; anything else ends probing.
_FIRST_BYTES = frozenset(SFU_TYPES) | {P2P_HELLO_PREFIX[0]} | {AUDIO, VIDEO, P2P_SCREEN_SHARE}
_FIRST_BYTES |= RTCP_TYPES


@dataclass(slots=True)
class ZoomState:
    first_seq: int
    on_port: bool
    session_id: bytes | None = None  # from the client's type-1 packet
    connection_id: bytes | None = None  # from the server's type-2 reply
    ping: tuple[int, bytes] | None = None  # (direction, bytes 1-12) of the last type 3
    p2p_ssrc: dict[int, tuple[int, int]] = field(default_factory=dict)  # dir -> (ssrc, seq)
    sfu_ssrc: dict[int, int] = field(default_factory=dict)  # dir -> SSRC inside SFU type 5
    best: float = 0.0
    kinds: set[str] = field(default_factory=set)
    reported: set[tuple[str, str | None]] = field(default_factory=set)
    probes: int = 0  # media-type-21 bandwidth probes after the match


class ZoomDissector(Dissector):
    name = "Zoom"
    transports = frozenset({UDP})
    budget_packets = 8  # nDPI decides within 5; SFU types 3/4 need a reply
    follow_packets = 32  # to see the audio, video and screen-share streams start
    # The SFU types, the P2P opening packet and the media types a P2P flow starts with:
    # the stage answers NO for any other first byte without calling ``probe``.
    udp_first_bytes = _FIRST_BYTES
    ANOMALIES = {"zoom_malformed": "a Zoom SFU/media packet whose RTP or RTCP does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        state = ctx.state.get(self.name)
        if state is None:
            on_port = ctx.src_port in ZOOM_UDP_PORTS or ctx.dst_port in ZOOM_UDP_PORTS
            if not on_port and (not data or data[0] not in _FIRST_BYTES):
                return Probe.NO  # no state: nothing to say about this flow at its end
            state = ctx.state[self.name] = ZoomState(pkt.seq, on_port)
        if not data or data[0] not in _FIRST_BYTES:
            return Probe.NO
        try:
            return self._probe(ctx, pkt, state)
        except DecodeError:
            return Probe.MAYBE

    def _probe(self, ctx: FlowContext, pkt: Packet, state: ZoomState) -> Probe:
        data = pkt.payload
        b0 = data[0]
        port = " on UDP 8801-8810" if state.on_port else ""
        if b0 == SFU_MEDIA:
            return self._sfu_media(ctx, pkt, state, parse_zoom_sfu(data), port)
        if b0 == SFU_HELLO and len(data) >= 60 and data[1] == 0 and data[2] in (2, 3):
            sfu = parse_zoom_sfu(data)
            state.session_id = sfu.session_id
            self._report(
                ctx,
                pkt,
                state,
                0.6 if port else 0.3,
                f"Zoom SFU type 1 (01 00 {data[2]:02x}, nDPI){port}",
            )
            return Probe.MAYBE
        if b0 == SFU_HELLO_REPLY and data[1:2] == b"\0":
            sfu = parse_zoom_sfu(data)
            state.connection_id = sfu.connection_id
            if state.session_id is not None and sfu.session_id == state.session_id:
                self._report(
                    ctx,
                    pkt,
                    state,
                    0.95,
                    f"Zoom SFU type 2 repeats the client's 16-byte session id{port}",
                )
                return Probe.MATCH
            if port:
                self._report(ctx, pkt, state, 0.5, f"Zoom SFU type 2 (02 00 ..){port}")
            return Probe.MAYBE
        if b0 in (SFU_PING, SFU_PONG):
            sfu = parse_zoom_sfu(data)
            if state.connection_id is not None and sfu.connection_id == state.connection_id:
                self._report(
                    ctx,
                    pkt,
                    state,
                    0.85,
                    f"Zoom SFU type {b0} carries the connection id of the type 2{port}",
                )
                return Probe.MATCH
            echo = bytes(data[PING_ECHO])
            if b0 == SFU_PING:
                state.ping = (pkt.direction, echo)
            elif state.ping is not None and state.ping == (1 - pkt.direction, echo):
                self._report(
                    ctx,
                    pkt,
                    state,
                    0.8 if port else 0.6,
                    f"Zoom SFU type 4 echoes the peer's type 3{port}",
                )
                return Probe.MATCH if port else Probe.MAYBE
            return Probe.MAYBE
        if b0 == P2P_HELLO_PREFIX[0]:
            if data[0:3] != P2P_HELLO_PREFIX:
                return Probe.MAYBE
            address, _ = parse_zoom_p2p_hello(data)
            self._report(
                ctx,
                pkt,
                state,
                0.85,
                f"Zoom P2P opening packet (1F 02 01, address {address!r}, nDPI)",
            )
            return Probe.MATCH
        if b0 in (AUDIO, VIDEO, P2P_SCREEN_SHARE) or b0 in RTCP_TYPES:
            return self._p2p_media(ctx, pkt, state, parse_zoom_media(data))
        return Probe.MAYBE

    def _sfu_media(
        self, ctx: FlowContext, pkt: Packet, state: ZoomState, sfu: ZoomSfu, port: str
    ) -> Probe:
        assert sfu.media_offset is not None
        media = parse_zoom_media(pkt.payload[sfu.media_offset :])
        form = "8-byte" if sfu.media_offset == SFU_HEADER_BYTES else "1-byte"
        if media.rtp is not None or media.rtcp:
            inner = f"RTP PT {media.rtp.payload_type}" if media.rtp else "RTCP"
            confidence = 0.9 if port or state.best >= 0.5 else 0.6
            if media.rtp is not None and not port:
                # Off Zoom's ports a second packet of the same RTP stream is needed.
                last = state.sfu_ssrc.get(pkt.direction)
                state.sfu_ssrc[pkt.direction] = media.rtp.ssrc
                if last == media.rtp.ssrc:
                    confidence = 0.85
            self._report(
                ctx,
                pkt,
                state,
                confidence,
                f"Zoom SFU type 5 ({form} header), media type {media.media_type} "
                f"({media.name}) with {inner} at offset {media.payload_offset}{port}",
                media.kind,
                MEDIA,
            )
            return Probe.MATCH if confidence >= 0.8 else Probe.MAYBE
        # A control message: only a consistent header says Zoom.
        consistent = (
            sfu.direction is not None
            and sfu.connection_id is not None
            and sfu.connection_id == state.connection_id
        )
        if consistent:
            self._report(
                ctx,
                pkt,
                state,
                0.85,
                f"Zoom SFU type 5 ({media.name}) with the type-2 connection id{port}",
            )
            return Probe.MATCH
        return Probe.MAYBE

    def _p2p_media(
        self, ctx: FlowContext, pkt: Packet, state: ZoomState, media: ZoomMedia
    ) -> Probe:
        if media.rtp is None:
            return Probe.MAYBE
        ssrc, seq = media.rtp.ssrc, media.rtp.sequence
        last = state.p2p_ssrc.get(pkt.direction)
        state.p2p_ssrc[pkt.direction] = (ssrc, seq)
        if last is None or last[0] != ssrc or not 0 < (seq - last[1]) % 65536 < 64:
            return Probe.MAYBE
        self._report(
            ctx,
            pkt,
            state,
            0.8,
            f"Zoom media type {media.media_type} ({media.name}) without SFU header, "
            f"RTP SSRC {ssrc} in order at offset {media.payload_offset}",
            media.kind,
            MEDIA,
        )
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        data = pkt.payload
        if not data or data[0] != SFU_MEDIA:
            return
        state = ctx.state[self.name]
        try:
            sfu = parse_zoom_sfu(data)
            assert sfu.media_offset is not None
            media = parse_zoom_media(data[sfu.media_offset :])
        except Unsupported:
            return  # a media type nobody has described: not an anomaly
        if media.kind is not None and media.kind not in state.kinds and media.rtp is not None:
            self._report(
                ctx,
                pkt,
                state,
                0.9,
                f"Zoom media type {media.media_type} ({media.name}) with RTP PT "
                f"{media.rtp.payload_type} SSRC {media.rtp.ssrc}",
                media.kind,
                MEDIA,
            )
        elif media.media_type == PROBE_TYPE and _is_probe(data[sfu.media_offset :]):
            state.probes += 1
            if state.probes == PROBES_FOR_MEDIA:
                self._report(
                    ctx,
                    pkt,
                    state,
                    0.8,
                    f"{state.probes} Zoom media-type-21 datagrams of >= {PROBE_MIN_BYTES} bytes "
                    "filled with one repeated byte: media-plane bandwidth probes",
                    None,
                    MEDIA,
                )

    def on_expire(self, ctx: FlowContext) -> None:
        state = ctx.state.get(self.name)
        if state is not None and state.on_port and state.best == 0.0:
            # Port alone (weak): a UDP flow to Zoom's multimedia-router ports.
            ctx.report(
                Finding(
                    "Zoom",
                    SIGNALING,
                    0.2,
                    "UDP port 8801-8810 only (Zoom KB0060548)",
                    state.first_seq,
                    app=None,  # ports never name the app (classify.arbiter)
                )
            )

    def _report(
        self,
        ctx: FlowContext,
        pkt: Packet,
        state: ZoomState,
        confidence: float,
        evidence: str,
        media: str | None = None,
        category: str = SIGNALING,
    ) -> None:
        """Report what is new: a surer finding, or the first media finding of a kind."""
        key = (category, media)
        if confidence <= state.best and key in state.reported:
            return
        state.reported.add(key)
        if media is not None:
            state.kinds.add(media)
        state.best = max(state.best, confidence)
        ctx.report(
            Finding("Zoom", category, confidence, evidence, pkt.seq, app="Zoom", media=media)
        )


def _is_probe(media: bytes) -> bool:
    """A type-21 datagram of the bandwidth-probe shape seen in zoom.pcap and zoom2.pcap."""
    return len(media) >= PROBE_MIN_BYTES and len(set(media[-PROBE_TAIL_BYTES:])) == 1
