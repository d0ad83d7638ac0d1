"""WhatsApp's chat transport over TCP (ports 443/5222): the Noise Pipes handshake opens
with a 4-byte prologue, "WA" and a protocol version, or "ED" and a version when the client
talks through an edge routing header (WhatsApp Encryption Overview, "Transport
Security"; the same bytes are nDPI's whatsapp.c signature). Not VoIP: it names the app of
the host, which later call flows from the same client often share.
"""

from __future__ import annotations

from voipscope.dissect.base import OTHER, TCP, Dissector, Finding, FlowContext, Packet, Probe

PROLOGUES = (b"WA", b"ED")
MAX_VERSION_BYTE = 0x0F


class WhatsAppChatDissector(Dissector):
    name = "WhatsApp"
    transports = frozenset({TCP})
    tcp_first_bytes = frozenset(p[0] for p in PROLOGUES)
    budget_packets = 1  # the client's first segment carries the prologue

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if (
            pkt.direction != 0
            or len(data) < 4
            or data[:2] not in PROLOGUES
            or data[2] > MAX_VERSION_BYTE
            or data[3] > MAX_VERSION_BYTE
        ):
            return Probe.NO
        ctx.report(Finding("WhatsApp", OTHER, 0.9,
                           f"Noise handshake prologue {data[:2].decode()} {data[2]}.{data[3]} "
                           "from the client", pkt.seq, app="WhatsApp"))  # fmt: skip
        return Probe.MATCH
