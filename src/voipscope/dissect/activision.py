"""Activision (Call of Duty) game traffic on UDP, as facts.

A lookalike: small datagrams every 100-200 ms in both directions between a console
(UDP 3074, the Xbox Live port) and game servers, like a low-rate voice stream. No
published format; what nDPI checks (src/lib/protocols/activision.c: the 16-bit magic
0x0d02 / 0x0c02 of the first packet of each direction, then first bytes 0x28 / 0x29,
and at least five packets) and what the bytes of activision.pcap show:

* hello: ``0d 02`` + N bytes, answered from the other side by ``0c 02`` + the very same
  N bytes (27 in the capture, with the console's LAN address inside);
* ping: ``28`` + 8-byte token + 4-byte little-endian counter + 5 more bytes, answered
  by ``29`` + the counter + the token + ``01`` and zero padding (27 bytes).

A verdict needs the answer: the reply must echo the request's bytes, which random or
other traffic does not (12 echoed bytes for a ping: 1 in 2**96 by chance).
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.request_reply import OpenRequests
from voipscope.errors import Malformed, Truncated

# Message kinds by their leading bytes (nDPI activision.c, and the capture).
HELLO = b"\x0d\x02"  # big-endian 0x0d02
HELLO_REPLY = b"\x0c\x02"  # big-endian 0x0c02
PING = 0x28
PONG = 0x29
MIN_HELLO_BYTES = 18  # nDPI activision.c ignores shorter payloads
TOKEN_BYTES = 8  # ping bytes 1-8, echoed in pong bytes 5-12
COUNTER_BYTES = 4  # ping bytes 9-12, echoed in pong bytes 1-4
MIN_PING_BYTES = 1 + TOKEN_BYTES + COUNTER_BYTES


@dataclass(slots=True, frozen=True)
class ActivisionMessage:
    kind: str  # "hello" | "hello-reply" | "ping" | "pong"
    key: bytes  # what the answer must echo (hello: the tail; ping: token + counter)

    @property
    def is_request(self) -> bool:
        return self.kind in ("hello", "ping")


def parse_activision(data: bytes) -> ActivisionMessage:
    """One datagram: its kind and the bytes a reply echoes; Truncated/Malformed."""
    if not data:
        raise Truncated("empty Activision datagram")
    head = data[:2]
    if head in (HELLO, HELLO_REPLY):
        if len(data) < MIN_HELLO_BYTES:
            raise Truncated(f"Activision hello has {len(data)} bytes, fewer than 18")
        return ActivisionMessage("hello" if head == HELLO else "hello-reply", bytes(data[2:]))
    if data[0] in (PING, PONG):
        if len(data) < MIN_PING_BYTES:
            raise Truncated(f"Activision ping has {len(data)} bytes, fewer than 13")
        if data[0] == PING:
            token, counter = data[1:9], data[9:13]
            return ActivisionMessage("ping", bytes(token + counter))
        counter, token = data[1:5], data[5:13]
        return ActivisionMessage("pong", bytes(token + counter))
    raise Malformed(f"first bytes {data[:2].hex()} are not an Activision message")


def answers(request: ActivisionMessage, reply: ActivisionMessage) -> bool:
    """Is ``reply`` the answer to ``request`` (its kind, and the echoed bytes)?"""
    pair = (request.kind, reply.kind)
    return pair in (("hello", "hello-reply"), ("ping", "pong")) and request.key == reply.key


# -- dissector ---------------------------------------------------------------------------


class ActivisionDissector(Dissector):
    """Activision game traffic on any UDP port: a request and the reply echoing it."""

    name = "Activision"
    transports = frozenset({UDP})
    udp_first_bytes = frozenset({HELLO[0], HELLO_REPLY[0], PING, PONG})
    budget_packets = 4  # hello + reply come first; a lost one leaves room for a ping
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        msg = parse_activision(pkt.payload)  # DecodeError: the stage answers NO
        requests: OpenRequests[ActivisionMessage] | None = ctx.state.get(self.name)
        if requests is None:
            requests = ctx.state[self.name] = OpenRequests()
        if msg.is_request:
            requests.add(pkt.direction, msg)
            return Probe.MAYBE
        if requests.answered_by(pkt.direction, msg, answers) is not None:
            if msg.kind == "hello-reply":
                evidence = (f"hello 0d02 answered from the other side by 0c02 echoing "
                            f"all {len(msg.key)} bytes after the magic")  # fmt: skip
            else:
                evidence = ("ping 0x28 answered from the other side by pong 0x29 echoing "
                            "its 8-byte token and 4-byte counter (swapped)")  # fmt: skip
            ctx.report(Finding("Activision", OTHER, 0.9, evidence, pkt.seq))
            return Probe.MATCH
        return Probe.MAYBE  # a reply to a request we did not see: wait for a pair
