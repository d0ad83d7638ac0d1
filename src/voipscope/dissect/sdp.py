"""SDP session descriptions (RFC 8866) as facts: where media will flow, and how.

What the arbiter needs from SDP: the connection address, each media line's port,
transport and formats, rtpmap codecs, ICE candidates (RFC 8839) and the DTLS fingerprint
(RFC 8122) — the expectations that later flows inherit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import FlowContext, Packet
from voipscope.dissect.knowledge import Expectation, Knowledge
from voipscope.dissect.rtp import STATIC_PAYLOAD_TYPES
from voipscope.errors import DecodeError, Malformed
from voipscope.text_fields import is_decimal

MEDIA_CATEGORY = "voip-media"

MAX_MEDIA = 32  # attacker-controlled m-lines; more is Malformed
MAX_LINES = 4096
MAX_SSRCS = 16  # a=ssrc values kept per m= line (attacker-controlled)
MAX_PORT = 65535  # m=, a=rtcp and a=candidate ports (RFC 8866 §5.14: 16-bit)


@dataclass(slots=True)
class SdpMedia:
    media: str  # audio | video | image (T.38) | application | ...
    port: int
    protocol: str  # RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF, udptl, ...
    formats: list[str]
    connection: str | None  # c= of the media, else of the session
    rtpmap: dict[int, str] = field(default_factory=dict)  # payload type -> "PCMU/8000"
    direction: str = "sendrecv"
    candidates: list[tuple[str, str, int, str]] = field(
        default_factory=list
    )  # transport, ip, port, type
    rtcp_port: int | None = None
    rtcp_mux: bool = False
    crypto: bool = False  # SDES a=crypto (RFC 4568): SRTP keys in the signalling
    ssrcs: list[int] = field(default_factory=list)  # a=ssrc (RFC 5576): the sender's SSRCs


@dataclass(slots=True)
class Sdp:
    origin_address: str | None
    session_name: str | None
    connection: str | None
    media: list[SdpMedia] = field(default_factory=list)
    fingerprint: str | None = None


def parse_sdp(body: bytes) -> Sdp:
    text = body.decode("utf-8", "replace")
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or not lines[0].startswith("v="):
        raise Malformed("SDP does not start with v=")
    if len(lines) > MAX_LINES:
        raise Malformed(f"SDP has more than {MAX_LINES} lines")
    sdp = Sdp(None, None, None)
    current: SdpMedia | None = None
    for line in lines:
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1:
            raise Malformed(f"SDP line is not type=value: {line[:40]!r}")
        if kind == "o":
            parts = value.split()
            sdp.origin_address = parts[5] if len(parts) >= 6 else None
        elif kind == "s":
            sdp.session_name = value
        elif kind == "c":
            address = _connection(value)
            if current is None:
                sdp.connection = address
            else:
                current.connection = address
        elif kind == "m":
            if len(sdp.media) >= MAX_MEDIA:
                raise Malformed(f"SDP has more than {MAX_MEDIA} m-lines")
            current = _media_line(value, sdp.connection)
            sdp.media.append(current)
        elif kind == "a":
            _attribute(sdp, current, value)
    return sdp


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) < 3 or parts[0] != "IN":
        raise Malformed(f"SDP c= line is not 'IN IP4|IP6 address': {value[:40]!r}")
    return parts[2].split("/")[0]  # drop a multicast TTL/count


def _media_line(value: str, session_connection: str | None) -> SdpMedia:
    parts = value.split()
    if len(parts) < 3:
        raise Malformed(f"SDP m= line is too short: {value[:40]!r}")
    port_text = parts[1].split("/")[0]
    if not is_decimal(port_text) or int(port_text) > MAX_PORT:
        raise Malformed(f"SDP m= port {parts[1]!r} is not a port")
    return SdpMedia(parts[0], int(port_text), parts[2], parts[3:], session_connection)


def _attribute(sdp: Sdp, media: SdpMedia | None, value: str) -> None:
    name, _, rest = value.partition(":")
    if name == "fingerprint":
        sdp.fingerprint = rest.strip()
    if media is None:
        return
    if name == "rtpmap":
        pt, _, codec = rest.partition(" ")
        if is_decimal(pt):
            media.rtpmap[int(pt)] = codec.strip()
    elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
        media.direction = name
    elif name == "candidate":
        # RFC 8839 §5.1: foundation component transport priority address port typ type ...
        parts = rest.split()
        if len(parts) >= 8 and is_decimal(parts[5]) and int(parts[5]) <= MAX_PORT:
            media.candidates.append((parts[2].lower(), parts[4], int(parts[5]), parts[7]))
    elif name == "rtcp":
        port = rest.split()[0] if rest.split() else ""
        media.rtcp_port = int(port) if is_decimal(port) and int(port) <= MAX_PORT else None
    elif name == "rtcp-mux":
        media.rtcp_mux = True
    elif name == "crypto":
        media.crypto = True
    elif name == "ssrc":
        # RFC 5576 §4.1: a=ssrc:<ssrc-id> <attribute>; one line per attribute, so dedupe.
        first = rest.split()[0] if rest.split() else ""
        if is_decimal(first) and int(first) < 1 << 32 and len(media.ssrcs) < MAX_SSRCS:
            ssrc = int(first)
            if ssrc not in media.ssrcs:
                media.ssrcs.append(ssrc)


def announce(
    knowledge: Knowledge, sdp: Sdp, flow_id: int, ts_ns: int, call_id: str | None, where: str
) -> int:
    """Turn an SDP's media lines into expectations for the flows they announce.

    Each ``m=`` line with a port says media will arrive at ``c=`` address:port (RFC 8866
    §5.14); RTCP goes to port+1 unless ``a=rtcp`` or ``a=rtcp-mux`` say otherwise
    (RFC 3605, RFC 5761). ICE candidates (RFC 8839) are further addresses of the same
    stream. Returns how many expectations were written.
    """
    written = 0
    for m in sdp.media:
        if m.port == 0 or m.connection is None:
            continue  # port 0: the stream is refused or disabled (RFC 3264 §6)
        transport = m.protocol.upper()
        if transport == "UDPTL" or m.media == "image":
            protocol, media = "T.38", None
        elif "SAVP" in transport:
            protocol, media = "SRTP", m.media if m.media in ("audio", "video") else None
        elif "RTP" in transport:
            protocol, media = "RTP", m.media if m.media in ("audio", "video") else None
        else:
            continue  # application/data channels etc.: not media we expect as RTP
        codec = _codec(m)
        evidence = f"SDP m={m.media} {m.port} {m.protocol} ({codec or 'no codec'}) in {where}"
        addresses = [(m.connection, m.port)]
        addresses += [(ip, port) for kind, ip, port, _ in m.candidates if kind == "udp"]
        for ip, port in addresses:
            knowledge.expect(
                ip,
                port,
                Expectation(
                    protocol,
                    MEDIA_CATEGORY,
                    evidence,
                    flow_id,
                    ts_ns,
                    media,
                    call_id=call_id,
                    codec=codec,
                ),
            )
            written += 1
        if protocol != "T.38" and not m.rtcp_mux:
            rtcp_port = m.rtcp_port or m.port + 1
            knowledge.expect(
                m.connection,
                rtcp_port,
                Expectation(
                    "SRTCP" if protocol == "SRTP" else "RTCP",
                    MEDIA_CATEGORY,
                    f"RTCP port of {evidence}",
                    flow_id,
                    ts_ns,
                    media,
                    call_id=call_id,
                ),
            )
            written += 1
    return written


def _codec(m: SdpMedia) -> str | None:
    if not m.formats:
        return None
    first = m.formats[0]
    if is_decimal(first):
        pt = int(first)
        if pt in m.rtpmap:
            return m.rtpmap[pt]
        static = STATIC_PAYLOAD_TYPES.get(pt)
        return f"{static[0]}/{static[1]}" if static else None
    return first  # udptl: "t38"


def announce_body(
    ctx: FlowContext, body: bytes, pkt: Packet, call_id: str | None, what: str, anomaly: str
) -> None:
    """Parse the SDP carried by a signalling message (SIP, MGCP, Megaco) and announce its
    media; a body that does not parse is the named anomaly ``anomaly``."""
    try:
        sdp = parse_sdp(body)
    except DecodeError as exc:
        ctx.anomaly(anomaly, str(exc), pkt.ts_ns)
        return
    announce(ctx.knowledge, sdp, ctx.flow_id, pkt.ts_ns, call_id,
             f"{what} (flow {ctx.flow_id}, packet {pkt.seq})")  # fmt: skip
