"""RTP and RTCP (RFC 3550): header parsers and the dissector.

The parsers say what the header fields are, or raise a DecodeError naming what is wrong.
One header proves little (a random UDP payload passes the version check one time in
four), so the dissector matches on two packets of one SSRC with advancing sequence
numbers, or on one packet at an address that signalling announced.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from voipscope.dissect.stun_wire import (
    CHANNEL_FIRST_BYTE_MAX,
    CHANNEL_FIRST_BYTE_MIN,
    CHANNEL_HEADER_BYTES,
)
from voipscope.errors import DecodeError, Malformed, Truncated

RTP_VERSION = 2  # RFC 3550 §5.1: V=2
RTP_FIXED_HEADER_BYTES = 12  # §5.1
RTP_EXTENSION_HEADER_BYTES = 4  # §5.3.1: profile-defined 16 bits + length in 32-bit words
# Protocols whose 5-tuples never carry plain RTP, so one RTP-looking datagram beside them
# is chance, not media: classic Skype obfuscates every datagram after its 3-byte SoM
# header with RC4 (Bonfiglio et al., SIGCOMM 2007, §3), and a random first byte has
# version 2 one time in four.
NEVER_RTP_BESIDE = frozenset({"Skype"})
RTCP_HEADER_BYTES = 4  # §6.4.1: V, P, count, PT, length

# RTCP packet types (RFC 3550 §12.1; XR from RFC 3611 §2; feedback from RFC 4585 §6.1)
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
RTCP_RTPFB = 205
RTCP_PSFB = 206
RTCP_XR = 207
RTCP_TYPES = {RTCP_SR: "SR", RTCP_RR: "RR", RTCP_SDES: "SDES", RTCP_BYE: "BYE", RTCP_APP: "APP",
              RTCP_RTPFB: "RTPFB", RTCP_PSFB: "PSFB", RTCP_XR: "XR"}  # fmt: skip
# RFC 3551 §6 tables 4 and 5: static payload types -> (encoding, clock rate, media).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, str]] = {
    0: ("PCMU", 8000, "audio"), 3: ("GSM", 8000, "audio"), 4: ("G723", 8000, "audio"),
    5: ("DVI4", 8000, "audio"), 6: ("DVI4", 16000, "audio"), 7: ("LPC", 8000, "audio"),
    8: ("PCMA", 8000, "audio"), 9: ("G722", 8000, "audio"), 10: ("L16", 44100, "audio"),
    11: ("L16", 44100, "audio"), 12: ("QCELP", 8000, "audio"), 13: ("CN", 8000, "audio"),
    14: ("MPA", 90000, "audio"), 15: ("G728", 8000, "audio"), 16: ("DVI4", 11025, "audio"),
    17: ("DVI4", 22050, "audio"), 18: ("G729", 8000, "audio"), 25: ("CelB", 90000, "video"),
    26: ("JPEG", 90000, "video"), 28: ("nv", 90000, "video"), 31: ("H261", 90000, "video"),
    32: ("MPV", 90000, "video"), 33: ("MP2T", 90000, "video"), 34: ("H263", 90000, "video"),
}  # fmt: skip
# RFC 5761 §4: with RTP and RTCP on one port, RTP payload types 64-95 are avoided because
# with the marker bit they read as RTCP packet types 192-223.
RTCP_MUX_PT_RANGE = range(192, 224)


@dataclass(slots=True, frozen=True)
class RtpHeader:
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrc: tuple[int, ...]
    extension_profile: int | None  # the 16-bit "defined by profile" field, e.g. 0xBEDE
    header_bytes: int  # fixed header + CSRCs + extension
    payload_bytes: int  # after the header, without padding
    padding_bytes: int


def parse_rtp(data: bytes, srtp: bool = False) -> RtpHeader:
    """Parse an RTP header (RFC 3550 §5.1, §5.3.1); raise Truncated or Malformed.

    ``srtp``: the packet may be SRTP (RFC 3711 §3.1), where the padding count is
    encrypted and an authentication tag ends the packet, so padding is not checked.
    """
    if len(data) < RTP_FIXED_HEADER_BYTES:
        raise Truncated(f"RTP packet has {len(data)} bytes, fewer than the 12-byte header")
    b0, b1 = data[0], data[1]
    if b0 >> 6 != RTP_VERSION:
        raise Malformed(f"RTP version is {b0 >> 6}, not 2")
    csrc_count = b0 & 0x0F
    offset = RTP_FIXED_HEADER_BYTES + 4 * csrc_count
    if len(data) < offset:
        raise Truncated("RTP packet has truncated CSRC list")
    csrc = tuple(int.from_bytes(data[12 + 4 * i : 16 + 4 * i], "big") for i in range(csrc_count))
    profile = None
    if b0 & 0x10:
        if len(data) < offset + RTP_EXTENSION_HEADER_BYTES:
            raise Truncated("RTP packet has truncated header extension")
        profile = int.from_bytes(data[offset : offset + 2], "big")
        words = int.from_bytes(data[offset + 2 : offset + 4], "big")
        offset += RTP_EXTENSION_HEADER_BYTES + 4 * words
        if len(data) < offset:
            raise Truncated("RTP header extension runs past the packet")
    padding = 0
    if b0 & 0x20 and not srtp:
        # §5.1: the last octet counts the padding octets, itself included.
        padding = data[-1]
        if padding == 0 or offset + padding > len(data):
            raise Malformed(f"RTP padding count {padding} does not fit the packet")
    return RtpHeader(
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence=int.from_bytes(data[2:4], "big"),
        timestamp=int.from_bytes(data[4:8], "big"),
        ssrc=int.from_bytes(data[8:12], "big"),
        csrc=csrc,
        extension_profile=profile,
        header_bytes=offset,
        payload_bytes=len(data) - offset - padding,
        padding_bytes=padding,
    )


@dataclass(slots=True, frozen=True)
class RtcpPacket:
    packet_type: int
    count: int  # reception report count, source count or subtype, by type
    ssrc: int | None  # sender SSRC (first word after the header) where there is one
    length_bytes: int  # of this packet within the compound


def parse_rtcp_compound(data: bytes, max_packets: int = 32) -> list[RtcpPacket]:
    """Split a compound RTCP packet (RFC 3550 §6.1) into its packets.

    Raises Truncated/Malformed for the first packet that is wrong; ``max_packets`` caps
    the work an attacker can ask for (more is Malformed).
    """
    out: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(out) >= max_packets:
            raise Malformed(f"RTCP compound packet has more than {max_packets} packets")
        if len(data) - offset < RTCP_HEADER_BYTES:
            raise Truncated("RTCP packet header is truncated")
        b0, packet_type = data[offset], data[offset + 1]
        if b0 >> 6 != RTP_VERSION:
            raise Malformed(f"RTCP version is {b0 >> 6}, not 2")
        if packet_type not in RTCP_TYPES:
            raise Malformed(f"RTCP packet type {packet_type} is not known")
        length = (int.from_bytes(data[offset + 2 : offset + 4], "big") + 1) * 4  # §6.4.1
        if offset + length > len(data):
            raise Truncated(
                f"RTCP {RTCP_TYPES[packet_type]} length {length} runs past the datagram"
            )
        ssrc = int.from_bytes(data[offset + 4 : offset + 8], "big") if length >= 8 else None
        out.append(RtcpPacket(packet_type, b0 & 0x1F, ssrc, length))
        offset += length
    if not out:
        raise Truncated("empty RTCP packet")
    # §6.1: a compound packet starts with SR or RR (RFC 5506 reduced-size RTCP relaxes
    # this, so it is a fact to report, not a reason to refuse).
    return out


# -- dissector ---------------------------------------------------------------------------

# RFC 4571 §2: RTP/RTCP over a stream, each packet behind a 16-bit length.
FRAMING_HEADER_BYTES = 2
FRAMED_RFC4571 = " (RFC 4571 framing over TCP)"
INSIDE_CHANNEL_DATA = " (inside TURN ChannelData)"
# A DTLS handshake record (RFC 6347 §4.1: content type 22, version 0xFEFF / 0xFEFD) inside
# ChannelData: the relayed media is DTLS-SRTP (RFC 5764), its RTP headers in clear.
DTLS_HANDSHAKE = 22
DTLS_VERSION_MAJOR = 0xFE
# Consecutive packets of one SSRC: sequence numbers move forward by a little (loss and
# reordering allowed, RFC 3550 appendix A.1 uses MAX_DROPOUT 3000; a tighter window keeps
# random payloads out).
MAX_SEQUENCE_STEP = 100
# The first two packets seen of an SSRC must be nearly consecutive to make a match: a
# capture rarely starts inside a burst of loss, and random payloads rarely step by 1-3.
MAX_FIRST_STEP = 3
FOLLOW_PACKETS = 24  # after a match: enough to collect payload types and SSRCs
# RTCP matched, RTP not yet: an ICE agent's checks and early RTCP can run ahead of the
# media by a hundred packets while a call sets up (stun_signal.pcapng: 92 packets of
# STUN and SRTCP receiver reports before the first RTP), so the flow is followed this
# much further for it.
RTCP_FIRST_FOLLOW_PACKETS = 256
MAX_SSRCS = 16


@dataclass(slots=True)
class RtpFlowState:
    last: list[tuple[int, int] | None]  # per direction: (ssrc, sequence)
    rtp_packets: int = 0
    rtcp_packets: int = 0
    payload_types: dict[int, int] | None = None
    ssrcs: set[int] | None = None
    # how the last packet was carried: "" plain, RFC 4571 over TCP, or TURN ChannelData
    wrapper: str = ""
    relayed_dtls: bool = False  # a DTLS handshake record inside ChannelData (RFC 5764)
    matched_rtp: bool = False
    matched_rtcp: bool = False
    rtp_at: int = 0  # the flow's packet number of each match
    rtcp_at: int = 0


class RtpDissector(Dissector):
    """RTP and RTCP, also multiplexed on one port (RFC 5761), over TCP (RFC 4571) and
    inside TURN ChannelData (RFC 8656 §12.4)."""

    name = "RTP"
    transports = frozenset({UDP, TCP})
    # Packets in the RTP range that did not make a match; STUN/DTLS packets beside it do
    # not count (Probe.PASS).
    budget_packets = 8
    udp_first_bytes = frozenset(  # + ChannelData
        [*range(128, 192), *range(CHANNEL_FIRST_BYTE_MIN, CHANNEL_FIRST_BYTE_MAX + 1)]
    )
    follow_packets = FOLLOW_PACKETS
    multiplexed = True
    ANOMALIES = {
        "rtp_malformed": "a packet of an RTP flow with a broken header (CSRC list, "
        "extension, padding)",
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        state = ctx.state.get(self.name)
        if state is None:
            state = ctx.state[self.name] = RtpFlowState([None, None])
        data = self._unwrap(ctx, state, pkt.payload)
        if data is None:
            # Over TCP: a STUN message of a TURN-over-TCP connection (RFC 8656 §12.5) comes
            # before the ChannelData that carries the media.
            return Probe.PASS if _spoke_stun(ctx) else Probe.NO
        if len(data) < RTCP_HEADER_BYTES:
            return Probe.PASS if data and _other_rfc7983(data[0]) else Probe.NO
        if data[0] >> 6 != RTP_VERSION:
            # STUN, DTLS, ZRTP or TURN ChannelData sharing the 5-tuple (RFC 7983 §7).
            return Probe.PASS if _other_rfc7983(data[0]) else Probe.NO
        if data[1] in RTCP_TYPES:
            return self._probe_rtcp(ctx, state, data, pkt)
        return self._probe_rtp(ctx, state, data, pkt)

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        state = ctx.state[self.name]
        data = self._unwrap(ctx, state, pkt.payload)
        if data is None or len(data) < RTP_FIXED_HEADER_BYTES or data[0] >> 6 != RTP_VERSION:
            return
        if data[1] in RTCP_TYPES:
            state.rtcp_packets += 1
            return
        if not state.matched_rtp:
            # RTCP matched first (multiplexed, RFC 5761): RTP may still be found here.
            self._probe_rtp(ctx, state, data, pkt)
            return
        self._account(state, parse_rtp(data, srtp=True))  # a DecodeError: rtp_malformed

    def follow_more(self, ctx: FlowContext) -> int:
        state: RtpFlowState = ctx.state[self.name]
        if not state.matched_rtcp or state.rtcp_at > state.rtp_at > 0:
            return 0
        if not state.matched_rtp:
            return RTCP_FIRST_FOLLOW_PACKETS
        return state.rtp_at - state.rtcp_at  # RTP came late: as many after it as usual

    def on_expire(self, ctx: FlowContext) -> None:
        state: RtpFlowState = ctx.state[self.name]
        finding = ctx.best("RTP") or ctx.best("SRTP")
        if finding is None or not state.payload_types:
            return
        types = ", ".join(f"{pt}×{n}" for pt, n in sorted(state.payload_types.items()))
        finding.evidence += f"; {state.rtp_packets} RTP packets seen, PT {types}"
        if finding.media is None:
            kinds = {STATIC_PAYLOAD_TYPES[pt][2] for pt in state.payload_types
                     if pt in STATIC_PAYLOAD_TYPES and pt != 13}  # fmt: skip
            if len(kinds) == 1:
                finding.media = kinds.pop()

    # -- internals --

    def _unwrap(self, ctx: FlowContext, state: RtpFlowState, data: bytes) -> bytes | None:
        """The RTP/RTCP bytes of a payload, or None when the framing rules it out."""
        # TURN over TCP (RFC 8656 §12.5) frames by its own messages: ChannelData where the
        # flow spoke STUN, else a first byte 0x40-0x4F is an RFC 4571 length of 16-20 kB.
        channel = bool(data) and CHANNEL_FIRST_BYTE_MIN <= data[0] <= CHANNEL_FIRST_BYTE_MAX
        if ctx.transport == TCP and not (channel and _spoke_stun(ctx)):
            if len(data) < FRAMING_HEADER_BYTES + RTCP_HEADER_BYTES:
                return None
            length = int.from_bytes(data[:2], "big")
            if not RTCP_HEADER_BYTES <= length <= len(data) - FRAMING_HEADER_BYTES:
                return None
            state.wrapper = FRAMED_RFC4571
            return data[FRAMING_HEADER_BYTES : FRAMING_HEADER_BYTES + length]
        if channel and len(data) >= CHANNEL_HEADER_BYTES:
            # TURN ChannelData (RFC 8656 §12.4): 2-byte channel, 2-byte length, data.
            length = int.from_bytes(data[2:4], "big")
            if CHANNEL_HEADER_BYTES + length <= len(data):
                state.wrapper = INSIDE_CHANNEL_DATA
                inner = data[CHANNEL_HEADER_BYTES : CHANNEL_HEADER_BYTES + length]
                if len(inner) > 2 and inner[0] == DTLS_HANDSHAKE and inner[1] == DTLS_VERSION_MAJOR:
                    state.relayed_dtls = True
                return inner
        state.wrapper = ""
        return data

    def _probe_rtcp(self, ctx: FlowContext, state: RtpFlowState, data: bytes, pkt: Packet) -> Probe:
        try:
            packets = parse_rtcp_compound(data)
        except DecodeError:
            # SRTCP (RFC 3711 §3.4): encrypted after the first 8 bytes, then an index and
            # an authentication tag, so the compound lengths do not add up.
            # The first packet's header is in clear and its length fits before the
            # E+index word and the tag; RFC 5506 lets any RTCP type come first.
            first_bytes = (int.from_bytes(data[2:4], "big") + 1) * 4
            if len(data) >= 8 + 4 + 10 and first_bytes + 4 + 4 <= len(data):
                state.rtcp_packets += 1
                # Only beside STUN/DTLS or RTP on the 5-tuple: alone, the clear 8 bytes
                # are too little (a DNS query can look like them).
                beside = state.matched_rtp or any(
                    f.protocol in ("STUN", "TURN", "DTLS")
                    or f.category in (MEDIA, "voip-signaling")
                    for f in ctx.findings
                )
                if state.matched_rtcp or not beside:
                    return Probe.MAYBE
                state.matched_rtcp, state.rtcp_at = True, pkt.seq
                ctx.report(
                    Finding("RTCP", MEDIA, 0.75,
                            f"SRTCP: RTCP {RTCP_TYPES[data[1]]} header in clear, encrypted "
                            f"compound with index and tag (RFC 3711 §3.4){self._how(state)}",
                            pkt.seq)
                )  # fmt: skip
                return Probe.MATCH
            return Probe.MAYBE if state.rtcp_packets or state.rtp_packets else Probe.NO
        state.rtcp_packets += 1
        if state.matched_rtcp:
            return Probe.MAYBE
        first = packets[0]
        lone = first.packet_type not in (RTCP_SR, RTCP_RR) and len(packets) == 1
        if lone and state.rtcp_packets < 2:
            # A lone SDES/BYE/APP is legal (RFC 5506) but weak: wait for a second one.
            return Probe.MAYBE
        names = "+".join(RTCP_TYPES[p.packet_type] for p in packets)
        state.matched_rtcp, state.rtcp_at = True, pkt.seq
        ctx.report(
            Finding(
                "RTCP",
                MEDIA,
                0.9 if first.packet_type in (RTCP_SR, RTCP_RR) else 0.7,
                f"RTCP compound {names}, lengths add up to the datagram{self._how(state)}",
                pkt.seq,
            )
        )
        return Probe.MATCH

    def _probe_rtp(self, ctx: FlowContext, state: RtpFlowState, data: bytes, pkt: Packet) -> Probe:
        try:
            header = parse_rtp(data, srtp=True)
        except DecodeError:
            return Probe.NO if not state.rtp_packets else Probe.MAYBE
        if header.payload_type in range(72, 77):
            return Probe.NO  # RFC 5761 §4: would collide with RTCP SR..APP
        self._account(state, header)
        previous = state.last[pkt.direction]
        state.last[pkt.direction] = (header.ssrc, header.sequence)
        expected = ctx.lookup_expectation(pkt.ts_ns)
        media = None
        if header.payload_type in STATIC_PAYLOAD_TYPES and header.payload_type != 13:
            media = STATIC_PAYLOAD_TYPES[header.payload_type][2]
        codec = STATIC_PAYLOAD_TYPES.get(header.payload_type, ("dynamic",))[0]
        if previous is not None and previous[0] == header.ssrc:
            step = (header.sequence - previous[1]) & 0xFFFF
            if 0 < step <= MAX_FIRST_STEP:
                state.matched_rtp, state.rtp_at = True, pkt.seq
                ctx.report(
                    Finding(
                        self._name(state),
                        MEDIA,
                        0.9,
                        f"RTP v2 PT {header.payload_type} ({codec}), SSRC "
                        f"0x{header.ssrc:08x}, sequence +{step} in one direction"
                        f"{self._how(state)}",
                        pkt.seq,
                        media=media,
                    )
                )
                return Probe.MATCH
            return Probe.MAYBE
        beside = next(
            (
                f.protocol
                for f in ctx.findings
                if f.category in (MEDIA, SIGNALING) and f.protocol not in NEVER_RTP_BESIDE
            ),
            None,
        )
        if beside is not None and header.payload_type not in range(64, 96):
            # The 5-tuple already carries a real-time protocol (STUN/DTLS checks, an
            # app's call setup): one well-formed RTP header is enough.
            state.matched_rtp, state.rtp_at = True, pkt.seq
            ctx.report(
                Finding(self._name(state), MEDIA, 0.85,
                        f"RTP v2 PT {header.payload_type} ({codec}), SSRC 0x{header.ssrc:08x} "
                        f"on a 5-tuple that already carried {beside}{self._how(state)}",
                        pkt.seq, media=media)
            )  # fmt: skip
            return Probe.MATCH
        if expected is not None and expected.protocol in ("RTP", "SRTP"):
            state.matched_rtp, state.rtp_at = True, pkt.seq
            ctx.report(
                Finding(
                    self._name(state),
                    MEDIA,
                    0.85,
                    f"RTP v2 PT {header.payload_type} ({codec}), SSRC 0x{header.ssrc:08x} "
                    f"on an address announced by signalling{self._how(state)}",
                    pkt.seq,
                    media=media or expected.media,
                )
            )
            return Probe.MATCH
        return Probe.MAYBE

    @staticmethod
    def _account(state: RtpFlowState, header: RtpHeader) -> None:
        state.rtp_packets += 1
        if state.payload_types is None:
            state.payload_types = {}
            state.ssrcs = set()
        pts = state.payload_types
        pts[header.payload_type] = pts.get(header.payload_type, 0) + 1
        if state.ssrcs is not None and len(state.ssrcs) < MAX_SSRCS:
            state.ssrcs.add(header.ssrc)

    @staticmethod
    def _how(state: RtpFlowState) -> str:
        if state.relayed_dtls and state.wrapper == INSIDE_CHANNEL_DATA:
            return f"{state.wrapper} after a DTLS handshake through the same relay (RFC 5764)"
        return state.wrapper

    @staticmethod
    def _name(state: RtpFlowState) -> str:
        """SRTP where the relay carried a DTLS-SRTP handshake first, else RTP."""
        relayed_srtp = state.relayed_dtls and state.wrapper == INSIDE_CHANNEL_DATA
        return "SRTP" if relayed_srtp else "RTP"


def _spoke_stun(ctx: FlowContext) -> bool:
    return any(f.protocol in ("STUN", "TURN") for f in ctx.findings)


def _other_rfc7983(first: int) -> bool:
    """STUN 0-3, ZRTP 16-19, DTLS 20-63, TURN ChannelData 64-79 (RFC 7983, RFC 9443)."""
    return first <= 3 or 16 <= first <= 79
