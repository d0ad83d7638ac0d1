"""Epic Games (Unreal Engine, Fortnite) game connections on UDP, as facts.

A lookalike: a stream of small datagrams both ways to game servers in the cloud. The
Unreal Engine opens a connection with a stateless handshake (its
StatelessConnectHandlerComponent, bit-packed, no published byte layout) whose shape nDPI
checks (src/lib/protocols/epicgames.c): the client's first datagram has bit 0x08 of its
first 32-bit word clear and 24 zero bytes at offset 10 (no cookie yet), and the server's
reply starts with the same word with bit 0x08 set.

What the bytes of epicgames.pcapng add, and this dissector checks as well: the reply
comes from the other side, repeats bytes 4-9 of the request, and carries a cookie
(bytes 10-33 no longer all zero). The client's next handshake packet echoes that cookie;
the verdict does not wait for it. A request alone is not enough: 24 zero bytes are
common in padded payloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.request_reply import OpenRequests
from voipscope.errors import Malformed, Truncated

WORD_BYTES = 4  # the first 32-bit word, big-endian as nDPI reads it
REPLY_FLAG = 0x08  # set in the server's word, clear in the client's (nDPI epicgames.c)
ECHO = slice(4, 10)  # bytes the reply repeats from the request (the capture)
COOKIE = slice(10, 34)  # zero in the request, the server's cookie in the reply
MIN_HANDSHAKE_BYTES = COOKIE.stop  # nDPI epicgames.c: at least 34 bytes
ZERO_COOKIE = bytes(COOKIE.stop - COOKIE.start)
# The first byte of every datagram of the four UE flows in epicgames.pcapng is 0bxx000111:
# the low six bits fixed, the top two differing per connection. Learned from the capture,
# not from a specification: a later engine version may need a wider gate.
FIRST_BYTES = frozenset(b for b in range(256) if b & 0x3F == 0x07)


@dataclass(slots=True, frozen=True)
class UnrealHandshake:
    word: int  # the first 32-bit word, big-endian
    echo: bytes  # bytes 4-9
    cookie: bytes  # bytes 10-33

    @property
    def kind(self) -> str:
        """request (client, no cookie yet), challenge (server, with a cookie), response
        (client, echoing the cookie) or other (a server packet without a cookie)."""
        if self.word & REPLY_FLAG:
            return "challenge" if self.cookie != ZERO_COOKIE else "other"
        return "request" if self.cookie == ZERO_COOKIE else "response"


def parse_handshake(data: bytes) -> UnrealHandshake:
    """The fields of a datagram read as an Unreal handshake packet; Truncated when it is
    too short to hold the cookie, Malformed when its first byte is not the engine's."""
    if len(data) < MIN_HANDSHAKE_BYTES:
        raise Truncated(f"Unreal handshake has {len(data)} bytes, fewer than 34")
    if data[0] not in FIRST_BYTES:
        raise Malformed(f"first byte 0x{data[0]:02x} is not 0bxx000111")
    return UnrealHandshake(int.from_bytes(data[:WORD_BYTES], "big"), bytes(data[ECHO]),
                           bytes(data[COOKIE]))  # fmt: skip


def answers(request: UnrealHandshake, reply: UnrealHandshake) -> bool:
    """Is ``reply`` the server's challenge to ``request``?"""
    return reply.word == request.word | REPLY_FLAG and reply.echo == request.echo


# -- dissector ---------------------------------------------------------------------------


class EpicGamesDissector(Dissector):
    """Unreal Engine handshake (Epic Games) on any UDP port: a request and its challenge."""

    name = "EpicGames"
    transports = frozenset({UDP})
    udp_first_bytes = FIRST_BYTES
    # The client repeats its request (three times in the capture) before the challenge.
    budget_packets = 6
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        msg = parse_handshake(pkt.payload)  # DecodeError: the stage answers NO
        requests: OpenRequests[UnrealHandshake] | None = ctx.state.get(self.name)
        if requests is None:
            requests = ctx.state[self.name] = OpenRequests()
        if msg.kind == "request":
            requests.add(pkt.direction, msg)
            return Probe.MAYBE
        request = requests.answered_by(pkt.direction, msg, answers)
        if msg.kind == "challenge" and request is not None:
            evidence = (f"Unreal handshake request {request.word:08x} with a zero "
                        f"24-byte cookie answered from the other side by {msg.word:08x} "
                        "(flag 0x08 set) repeating bytes 4-9 and issuing a cookie")  # fmt: skip
            ctx.report(Finding("EpicGames", OTHER, 0.85, evidence, pkt.seq))
            return Probe.MATCH
        if not requests:
            return Probe.NO  # the flow did not start with a handshake request
        return Probe.MAYBE
