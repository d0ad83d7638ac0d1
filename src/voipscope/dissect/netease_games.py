"""NetEase games (Lost Light, Badlanders, Naraka: Bladepoint) on UDP, as facts.

A lookalike: small periodic datagrams both ways to game servers on arbitrary ports. No
published format; nDPI (src/lib/protocols/netease_games.c) knows three openings, each
from one datagram, and the bytes of netease_games.pcapng show how the server answers
them. A verdict here needs the answer too:

* handshake: a 12-byte datagram ``01 ?? d0 01 <4-byte id> 00 01 01 01`` (nDPI: first
  byte 1, little-endian 0x01d0 at offset 2, 0x01010100 at offset 8), answered from the
  other side by a 12-byte datagram starting with ``01`` that repeats the 4-byte id;
* Lost Light: the 4-byte magic ``b3 af 8d e8`` (nDPI: datagrams of 30+ bytes), also at
  the start of the reply from the other side;
* Naraka: the magic ``07 08 08 0c`` (nDPI: little-endian 0x0c080807, 31+ bytes), and two
  32-bit ids after 4 more bytes: the receiver's, then the sender's; the reply from the
  other side names the first sender as its receiver.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.request_reply import OpenRequests
from voipscope.errors import Malformed, Truncated

HANDSHAKE_BYTES = 12  # nDPI netease_games.c
HANDSHAKE_TYPE = 0x01
HANDSHAKE_MARK = b"\xd0\x01"  # offset 2: little-endian 0x01d0
HANDSHAKE_TAIL = b"\x00\x01\x01\x01"  # offset 8: little-endian 0x01010100
HANDSHAKE_ID = slice(4, 8)  # echoed by the reply (the capture)
LOST_LIGHT_MAGIC = b"\xb3\xaf\x8d\xe8"  # big-endian 0xb3af8de8 (nDPI)
MIN_LOST_LIGHT_BYTES = 30  # nDPI
NARAKA_MAGIC = b"\x07\x08\x08\x0c"  # little-endian 0x0c080807 (nDPI)
MIN_NARAKA_BYTES = 31  # nDPI: more than 30
NARAKA_RECEIVER = slice(8, 12)  # the capture: the peer's id (zero until known)
NARAKA_SENDER = slice(12, 16)  # the capture: the sender's own id
FIRST_BYTES = frozenset({HANDSHAKE_TYPE, LOST_LIGHT_MAGIC[0], NARAKA_MAGIC[0]})
GAMES = {"handshake": "NetEase game", "lost-light": "Lost Light", "naraka": "Naraka"}


@dataclass(slots=True, frozen=True)
class NetEaseMessage:
    variant: str  # "handshake" | "lost-light" | "naraka"
    opening: bool  # could start a conversation (a reply may not be one)
    key: bytes  # handshake: the id; naraka: (receiver id, sender id); lost light: b""


def parse_netease(data: bytes) -> NetEaseMessage:
    """One datagram of one of the three kinds; Truncated/Malformed for anything else."""
    if not data:
        raise Truncated("empty NetEase datagram")
    if data[0] == HANDSHAKE_TYPE:
        if len(data) != HANDSHAKE_BYTES:
            raise Malformed(f"NetEase handshake has {len(data)} bytes, not 12")
        opening = data[2:4] == HANDSHAKE_MARK and data[8:12] == HANDSHAKE_TAIL
        return NetEaseMessage("handshake", opening, bytes(data[HANDSHAKE_ID]))
    if data[:4] == LOST_LIGHT_MAGIC:
        if len(data) < MIN_LOST_LIGHT_BYTES:
            raise Truncated(f"Lost Light datagram has {len(data)} bytes, fewer than 30")
        return NetEaseMessage("lost-light", True, b"")
    if data[:4] == NARAKA_MAGIC:
        if len(data) < MIN_NARAKA_BYTES:
            raise Truncated(f"Naraka datagram has {len(data)} bytes, fewer than 31")
        return NetEaseMessage("naraka", True,
                              bytes(data[NARAKA_RECEIVER] + data[NARAKA_SENDER]))  # fmt: skip
    raise Malformed(f"first bytes {data[:4].hex()} are not a NetEase opening")


def answers(request: NetEaseMessage, reply: NetEaseMessage) -> bool:
    """Is ``reply`` (from the other side) an answer to ``request``?"""
    if request.variant != reply.variant or not request.opening:
        return False
    if request.variant == "handshake":
        return reply.key == request.key
    if request.variant == "naraka":
        return reply.key[:4] == request.key[4:]  # addressed to the first sender's id
    return True  # Lost Light: the magic both ways


# -- dissector ---------------------------------------------------------------------------


class NetEaseGamesDissector(Dissector):
    """NetEase game openings on any UDP port: a datagram and the answer to it."""

    name = "NetEase"
    transports = frozenset({UDP})
    udp_first_bytes = FIRST_BYTES
    budget_packets = 4
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        msg = parse_netease(pkt.payload)  # DecodeError: the stage answers NO
        requests: OpenRequests[NetEaseMessage] | None = ctx.state.get(self.name)
        if requests is None:
            requests = ctx.state[self.name] = OpenRequests()
        if requests.answered_by(pkt.direction, msg, answers) is not None:
            ctx.report(Finding("NetEase", OTHER, _confidence(msg), _evidence(msg), pkt.seq))
            return Probe.MATCH
        if msg.opening:
            requests.add(pkt.direction, msg)
        elif not requests:
            return Probe.NO  # a 12-byte datagram of type 1 that opens nothing
        return Probe.MAYBE


def _confidence(msg: NetEaseMessage) -> float:
    # A 4-byte magic both ways is weaker than a magic plus an echoed id.
    return 0.8 if msg.variant == "lost-light" else 0.85


def _evidence(msg: NetEaseMessage) -> str:
    if msg.variant == "handshake":
        return ("12-byte handshake 01 .. d0 01 .. 00 01 01 01 answered from the other side "
                f"by a 12-byte reply repeating its id {msg.key.hex()}")  # fmt: skip
    if msg.variant == "naraka":
        return ("Naraka magic 0708080c both ways; the reply is addressed to the first "
                f"sender's id {msg.key[:4].hex()}")  # fmt: skip
    return "Lost Light magic b3af8de8 in a datagram and in the reply from the other side"
