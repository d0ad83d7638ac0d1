"""DHCP (RFC 2131 §2) and BOOTP on UDP 67/68: a lookalike that must never look like VoIP."""

from __future__ import annotations

from voipscope.dissect.base import OTHER, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

MAGIC_COOKIE_OFFSET = 236  # RFC 2131 §3: options begin with 99.130.83.99
MAGIC_COOKIE = b"\x63\x82\x53\x63"
PORTS = frozenset({67, 68})


def check_dhcp(data: bytes) -> int:
    """The op code (1 request, 2 reply) of a BOOTP/DHCP message; raise otherwise."""
    if len(data) < MAGIC_COOKIE_OFFSET + 4:
        raise Truncated(f"DHCP message has {len(data)} bytes, fewer than its fixed part")
    if data[0] not in (1, 2) or data[2] > 16:
        raise Malformed(f"DHCP op {data[0]} / hardware length {data[2]} are not valid")
    if data[MAGIC_COOKIE_OFFSET : MAGIC_COOKIE_OFFSET + 4] != MAGIC_COOKIE:
        raise Malformed("DHCP magic cookie is missing")
    return data[0]


class DhcpDissector(Dissector):
    name = "DHCP"
    ports = PORTS  # the probe refuses flows on other ports
    budget_packets = 2
    udp_first_bytes = frozenset({1, 2})

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if not PORTS & {ctx.src_port, ctx.dst_port}:
            return Probe.NO
        op = check_dhcp(pkt.payload)
        kind = "request" if op == 1 else "reply"
        ctx.report(Finding("DHCP", OTHER, 0.95, f"BOOTP {kind} with the DHCP magic cookie",
                           pkt.seq))  # fmt: skip
        return Probe.MATCH
