"""The media endpoints an SDP body announces, as plain values a Call record can carry.

Each ``m=`` line says: send this kind of media to ip:port with one of these codecs
(RFC 8866 §5.14, RFC 3264 offer/answer). The lead pairs RTP streams to calls with them,
so every line is kept, port 0 (refused, RFC 3264 §6) included.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.rtp import STATIC_PAYLOAD_TYPES
from voipscope.dissect.sdp import SdpMedia, parse_sdp
from voipscope.text_fields import is_decimal

# RFC 8866 §6.7: the direction attributes; at session level they apply to every m= line
# that does not name its own.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
MAX_CANDIDATES_PER_MEDIA = 16  # ICE candidates kept per m= line (attacker-controlled)


@dataclass(slots=True, frozen=True)
class MediaEndpoint:
    media: str  # audio | video | image (T.38) | application ...
    ip: str | None  # c= of the media line, else of the session
    port: int  # 0: the stream is refused or removed
    protocol: str  # RTP/AVP, RTP/SAVP, udptl ...
    payload_types: tuple[int, ...]
    codecs: tuple[str, ...]  # "PCMA/8000", "telephone-event/8000", "t38"
    direction: str
    rtcp_port: int | None
    rtcp_mux: bool
    crypto: bool
    candidates: tuple[tuple[str, int, str], ...]  # ICE (ip, port, type)
    ssrcs: tuple[int, ...] = ()  # a=ssrc (RFC 5576): the SSRCs the sender will use

    def to_record(self) -> dict[str, object]:
        return {
            "media": self.media,
            "ip": self.ip,
            "port": self.port,
            "protocol": self.protocol,
            "payload_types": list(self.payload_types),
            "codecs": list(self.codecs),
            "direction": self.direction,
            "rtcp_port": self.rtcp_port,
            "rtcp_mux": self.rtcp_mux,
            "crypto": self.crypto,
            "candidates": [list(c) for c in self.candidates],
            "ssrcs": list(self.ssrcs),
        }


def announced_media(body: bytes) -> list[MediaEndpoint]:
    """Parse an SDP body; raises ``DecodeError`` (from ``parse_sdp``) when it is not SDP."""
    sdp = parse_sdp(body)
    session_direction = _session_direction(body)
    out = []
    for m in sdp.media:
        direction = m.direction
        if direction == "sendrecv" and session_direction is not None:
            direction = session_direction  # parse_sdp keeps only media-level attributes
        out.append(
            MediaEndpoint(
                media=m.media,
                ip=m.connection,
                port=m.port,
                protocol=m.protocol,
                payload_types=tuple(int(f) for f in m.formats if is_decimal(f, 3)),
                codecs=tuple(_codecs(m)),
                direction=direction,
                rtcp_port=m.rtcp_port,
                rtcp_mux=m.rtcp_mux,
                crypto=m.crypto,
                candidates=tuple(
                    (ip, port, kind)
                    for _, ip, port, kind in m.candidates[:MAX_CANDIDATES_PER_MEDIA]
                ),
                ssrcs=tuple(m.ssrcs),
            )
        )
    return out


def _codecs(m: SdpMedia) -> list[str]:
    out = []
    for fmt in m.formats:
        if not is_decimal(fmt, 3):
            out.append(fmt)  # udptl "t38", webrtc-datachannel ...
            continue
        pt = int(fmt)
        if pt in m.rtpmap:
            out.append(m.rtpmap[pt])
        elif pt in STATIC_PAYLOAD_TYPES:  # RFC 3551 §6 static payload types
            name, rate, _ = STATIC_PAYLOAD_TYPES[pt]
            out.append(f"{name}/{rate}")
        else:
            out.append(f"PT{pt}")
    return out


def _session_direction(body: bytes) -> str | None:
    """A direction attribute before the first m= line (session level)."""
    head = body.split(b"\nm=", 1)[0]
    for line in head.splitlines():
        value = line.strip()
        if value.startswith(b"a="):
            name = value[2:].decode("ascii", "replace")
            if name in DIRECTIONS:
                return name
    return None


def is_hold(endpoints: list[MediaEndpoint]) -> bool:
    """An offer that puts the peer on hold (RFC 3264 §8.4): every live stream sendonly or
    inactive, or the RFC 2543 form c=0.0.0.0."""
    live = [e for e in endpoints if e.port != 0]
    return bool(live) and all(
        e.direction in ("sendonly", "inactive") or e.ip == "0.0.0.0" for e in live
    )
