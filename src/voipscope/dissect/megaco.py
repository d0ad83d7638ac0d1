"""Megaco/H.248 text encoding (RFC 3525 §B, ITU-T H.248.1 annex B): media gateway control.

Facts: the message header ``MEGACO/1`` (or the compact ``!/1``), the sender's mId, and the
SDP carried in Local/Remote descriptors, which announces the gateway's media like SIP's
SDP does. The binary (ASN.1 BER) encoding is not recognised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voipscope.dissect.base import (
    SIGNALING,
    TCP,
    UDP,
    WHITESPACE_BYTES,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.dissect.sdp import announce_body
from voipscope.errors import Malformed, Truncated

# RFC 3525 §B.2: megacopToken SLASH Version SEP mId; "!" is the short form of "MEGACO".
_HEADER = re.compile(rb"^\s*(MEGACO|!)/(\d)\s+(\S+)", re.IGNORECASE)
# Local{...}/Remote{...} descriptors (short forms L/R) hold SDP in braces.
_SDP_BLOCK = re.compile(rb"(?:Local|Remote|\bL|\bR)\s*\{([^{}]*v=0[^{}]*)\}", re.IGNORECASE)
MAX_SDP_BLOCKS = 8


@dataclass(slots=True, frozen=True)
class MegacoMessage:
    version: int
    mid: str
    sdp_blocks: tuple[bytes, ...]


def parse_megaco(data: bytes) -> MegacoMessage:
    if not data.strip():
        raise Truncated("empty Megaco message")
    m = _HEADER.match(data)
    if m is None:
        raise Malformed(f"not a Megaco text header: {data[:20]!r}")
    version = int(m.group(2))
    if not 1 <= version <= 3:
        raise Malformed(f"Megaco version {version} is not 1-3")
    blocks = tuple(b.strip() for b in _SDP_BLOCK.findall(data)[:MAX_SDP_BLOCKS])
    return MegacoMessage(version, m.group(3).decode("ascii", "replace"), blocks)


class MegacoDissector(Dissector):
    name = "MEGACO"
    transports = frozenset({UDP, TCP})
    budget_packets = 2
    udp_first_bytes = frozenset(b"!Mm") | WHITESPACE_BYTES
    tcp_first_bytes = frozenset(b"!Mm \t\n\r\x0b\x0c")  # after bytes.lstrip()'s whitespace
    follow_packets = -1  # descriptors of every context carry SDP
    ANOMALIES = {"megaco_malformed": "a message of a Megaco flow that does not parse",
                 "megaco_bad_sdp": "an SDP descriptor that does not parse"}  # fmt: skip

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        head = pkt.payload.lstrip()[:8]
        if not (head.startswith(b"!/") or head[:7].upper() == b"MEGACO/"):
            return Probe.NO
        msg = parse_megaco(pkt.payload)
        ctx.report(
            Finding("MEGACO", SIGNALING, 0.95,
                    f"Megaco/H.248 text header version {msg.version}, mId {msg.mid[:40]}",
                    pkt.seq)
        )  # fmt: skip
        self._sdp(ctx, msg, pkt)
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        self._sdp(ctx, parse_megaco(pkt.payload), pkt)  # a DecodeError: megaco_malformed

    @staticmethod
    def _sdp(ctx: FlowContext, msg: MegacoMessage, pkt: Packet) -> None:
        for block in msg.sdp_blocks:
            if b"$" in block:
                # CHOOSE wildcards (H.248.1 §7.1.8): the gateway picks the port later;
                # nothing to expect yet, and not malformed.
                continue
            announce_body(ctx, block[block.find(b"v=0") :], pkt, None, "Megaco", "megaco_bad_sdp")
