"""Call of Duty: Mobile game traffic on UDP, as facts.

A lookalike: a phone exchanging small datagrams with game servers. No published format;
nDPI (src/lib/protocols/cod_mobile.c) knows two things, and the bytes of codm.pcap show
them:

* a ping on UDP 7500: 12 bytes, an 8-byte token then ASCII ``ping`` — nDPI takes one
  such datagram on that port; here the other side must send the very same 12 bytes
  back (the token echoed), and the port only decides which flows are looked at;
* a server datagram of more than 350 bytes starting with 0xce that carries the game's
  localisation key ``LOC_PREFAB_LOADOUTNAME_1`` (a loadout name), the fourth datagram
  of the game flow in the capture.

No first-byte gate: the ping starts with a random token, and the loadout datagram
follows others that start with any byte. The budget (as nDPI's four packets) bounds the
cost on other flows.
"""

from __future__ import annotations

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.request_reply import OpenRequests
from voipscope.errors import Malformed, Truncated

PING_PORT = 7500  # nDPI cod_mobile.c: the ping is looked for on this port only
PING_BYTES = 12  # nDPI cod_mobile.c
PING_TAG = b"ping"  # bytes 8-11
LOADOUT_FIRST_BYTE = 0xCE  # nDPI cod_mobile.c
MIN_LOADOUT_BYTES = 351  # nDPI cod_mobile.c: more than 350 bytes
LOADOUT_KEY = b"LOC_PREFAB_LOADOUTNAME_1"  # nDPI cod_mobile.c


def is_ping(data: bytes) -> bool:
    return len(data) == PING_BYTES and data[8:12] == PING_TAG


def find_loadout_key(data: bytes) -> int:
    """Offset of the loadout key in a server datagram; Truncated/Malformed if it has none."""
    if len(data) < MIN_LOADOUT_BYTES:
        raise Truncated(f"CoD Mobile datagram has {len(data)} bytes, fewer than 351")
    if data[0] != LOADOUT_FIRST_BYTE:
        raise Malformed(f"CoD Mobile loadout datagram starts with 0x{data[0]:02x}, not 0xce")
    at = data.find(LOADOUT_KEY)
    if at < 0:
        raise Malformed("no LOC_PREFAB_LOADOUTNAME_1 in the datagram")
    return at


# -- dissector ---------------------------------------------------------------------------


class CodMobileDissector(Dissector):
    """CoD Mobile on any UDP port (the ping on 7500 only): an echoed ping or a loadout."""

    name = "CoD Mobile"
    transports = frozenset({UDP})
    budget_packets = 4  # nDPI gives up after four packets too
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if len(data) == PING_BYTES:
            if PING_PORT not in (ctx.src_port, ctx.dst_port) or not is_ping(data):
                return Probe.MAYBE
            pings: OpenRequests[bytes] | None = ctx.state.get(self.name)
            if pings is None:
                pings = ctx.state[self.name] = OpenRequests()
            if pings.answered_by(pkt.direction, data, bytes.__eq__) is not None:
                ctx.report(Finding("CoD Mobile", OTHER, 0.85,
                                   f"12-byte ping (token {data[:8].hex()} + 'ping') on UDP "
                                   f"{PING_PORT} echoed byte for byte by the other side",
                                   pkt.seq))  # fmt: skip
                return Probe.MATCH
            pings.add(pkt.direction, bytes(data))
            return Probe.MAYBE
        if len(data) < MIN_LOADOUT_BYTES or data[0] != LOADOUT_FIRST_BYTE:
            return Probe.MAYBE
        at = find_loadout_key(data)  # DecodeError: the stage answers NO
        ctx.report(Finding("CoD Mobile", OTHER, 0.8,
                           f"{len(data)}-byte datagram starting 0xce carries the game's "
                           f"localisation key LOC_PREFAB_LOADOUTNAME_1 at offset {at}",
                           pkt.seq))  # fmt: skip
        return Probe.MATCH
