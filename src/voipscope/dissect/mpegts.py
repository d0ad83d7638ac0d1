"""MPEG transport stream over UDP (ISO/IEC 13818-1 §2.4.3), as facts.

A lookalike: constant-rate UDP media (IPTV multicast, cameras, SRT-less contribution
feeds) that is not a call. Raw TS over UDP fills each datagram with 188-byte packets,
each starting with the sync byte 0x47 (RTP-carried TS, RFC 2250, is RTP's business).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

PACKET_BYTES = 188  # §2.4.3.2
SYNC_BYTE = 0x47  # §2.4.3.3
NULL_PID = 0x1FFF  # §2.4.3.3 Table 2-3
# adaptation_field_control (§2.4.3.3 Table 2-5): 00 reserved, 01 payload only,
# 10 adaptation field only (its length is then 183), 11 both (length 0-182).
AFC_RESERVED = 0
AFC_ADAPTATION_ONLY = 2
AFC_BOTH = 3
PIDS = {0x0000: "PAT", 0x0001: "CAT", 0x0002: "TSDT", 0x0011: "SDT/BAT", 0x0012: "EIT",
        NULL_PID: "null"}  # fmt: skip


@dataclass(slots=True, frozen=True)
class TsPacket:
    pid: int
    payload_unit_start: bool
    transport_error: bool
    adaptation_field_control: int
    continuity_counter: int


def looks_like_mpegts(data: bytes) -> bool:
    return len(data) >= PACKET_BYTES and len(data) % PACKET_BYTES == 0 and data[0] == SYNC_BYTE


def parse_ts_packet(data: bytes, offset: int = 0) -> TsPacket:
    """The 4-byte header (and adaptation field length) of the packet at ``offset``."""
    if len(data) - offset < PACKET_BYTES:
        raise Truncated(f"MPEG-TS packet has {len(data) - offset} bytes, not 188")
    if data[offset] != SYNC_BYTE:
        raise Malformed(f"MPEG-TS sync byte is 0x{data[offset]:02x}, not 0x47")
    b1, b2, b3 = data[offset + 1], data[offset + 2], data[offset + 3]
    afc = (b3 >> 4) & 0x03
    if afc == AFC_RESERVED:
        raise Malformed("MPEG-TS adaptation_field_control is the reserved 00")
    if afc in (AFC_ADAPTATION_ONLY, AFC_BOTH):
        length = data[offset + 4]
        if afc == AFC_ADAPTATION_ONLY and length != PACKET_BYTES - 5:
            raise Malformed(f"MPEG-TS adaptation field alone has length {length}, not 183")
        if afc == AFC_BOTH and length > PACKET_BYTES - 6:
            raise Malformed(f"MPEG-TS adaptation field length {length} leaves no payload")
    return TsPacket(((b1 & 0x1F) << 8) | b2, bool(b1 & 0x40), bool(b1 & 0x80), afc, b3 & 0x0F)


def parse_mpegts(data: bytes) -> list[TsPacket]:
    """Every 188-byte packet of one datagram (at most 348 fit in a UDP datagram)."""
    if not data:
        raise Truncated("empty MPEG-TS datagram")
    if len(data) % PACKET_BYTES:
        raise Truncated(f"MPEG-TS datagram of {len(data)} bytes is not a multiple of 188")
    return [parse_ts_packet(data, offset) for offset in range(0, len(data), PACKET_BYTES)]


# -- dissector ---------------------------------------------------------------------------


@dataclass(slots=True)
class MpegTsFlowState:
    packets: int = 0
    pids: set[int] = field(default_factory=set)


class MpegTsDissector(Dissector):
    """Raw MPEG-TS over UDP: two or more 188-byte packets with their sync bytes."""

    name = "MPEG-TS"
    transports = frozenset({UDP})
    udp_first_bytes = frozenset({SYNC_BYTE})
    budget_packets = 3
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if not looks_like_mpegts(data):
            return Probe.NO
        try:
            packets = parse_mpegts(data)
        except (Malformed, Truncated):
            return Probe.NO
        state: MpegTsFlowState = ctx.state.setdefault(self.name, MpegTsFlowState())
        state.packets += len(packets)
        if len(state.pids) < 16:
            state.pids.update(p.pid for p in packets)
        if state.packets < 2:
            return Probe.MAYBE  # one 188-byte packet: wait for the next datagram
        pids = ", ".join(
            f"0x{pid:04x}" + (f" {PIDS[pid]}" if pid in PIDS else "")
            for pid in sorted(state.pids)[:6]
        )
        ctx.report(Finding("MPEG-TS", OTHER, 0.9 if len(packets) > 1 else 0.85,
                           f"MPEG-TS: {len(packets)} x 188-byte packets in the datagram, each "
                           f"with sync byte 0x47; PIDs {pids}", pkt.seq))  # fmt: skip
        return Probe.MATCH
