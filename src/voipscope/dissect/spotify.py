"""Spotify LAN discovery, as facts: the desktop client's periodic UDP broadcast on 57621.

Not published by Spotify. The datagram starts with the ASCII magic ``SpotUdp`` and a
version digit (``SpotUdp0`` in every capture seen; nDPI's spotify.c keys on the seven
letters with both ports 57621), then a client id and fields whose meaning is unknown.
Only the magic is checked, so the finding names the magic and not more.
"""

from __future__ import annotations

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

DISCOVERY_PORT = 57621  # nDPI spotify.c
MAGIC = b"SpotUdp"
HEADER_BYTES = len(MAGIC) + 1  # the magic and its version digit
# The shortest datagram seen is 40 bytes: magic + version, an 8-byte id, more fields.
MIN_DISCOVERY_BYTES = 16
DIGITS = frozenset(b"0123456789")


def parse_spotify_discovery(data: bytes) -> int:
    """The version digit of a LAN discovery datagram; Truncated/Malformed otherwise."""
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise Malformed("not the Spotify LAN discovery magic SpotUdp")
    if len(data) < MIN_DISCOVERY_BYTES:
        raise Truncated(f"Spotify discovery has {len(data)} bytes, fewer than 16")
    if data[len(MAGIC)] not in DIGITS:
        raise Malformed("Spotify discovery magic is not followed by a version digit")
    return data[len(MAGIC)] - ord("0")


class SpotifyDissector(Dissector):
    """Spotify LAN discovery on UDP 57621."""

    name = "Spotify"
    transports = frozenset({UDP})
    ports = frozenset({DISCOVERY_PORT})  # the probe refuses flows on other ports
    udp_first_bytes = frozenset(MAGIC[:1])
    budget_packets = 2
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if DISCOVERY_PORT not in (ctx.src_port, ctx.dst_port):
            return Probe.NO
        version = parse_spotify_discovery(pkt.payload)  # DecodeError: the stage's NO
        # Eight fixed ASCII bytes on the discovery port: strong, though undocumented.
        ctx.report(Finding(self.name, OTHER, 0.9,
                           f"Spotify LAN discovery: magic SpotUdp{version}, "
                           f"{len(pkt.payload)} bytes", pkt.seq, app="Spotify"))  # fmt: skip
        return Probe.MATCH
