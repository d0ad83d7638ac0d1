"""Among Us (Innersloth) over Hazel, as facts: the client's Hello.

A lookalike: a game of small reliable UDP datagrams to Innersloth's servers on UDP
22023. The game runs on Hazel (willardf/Hazel-Networking), whose datagrams start with a
send option: 0 unreliable, 1 reliable, 8 hello, 9 disconnect, 10 ack, 12 ping
(SkeldJS packages/constant SendOption). The Hello opens every connection (SkeldJS
HelloPacket.ts): send option 8, a big-endian 16-bit nonce, the Hazel version byte, the
client version as a little-endian int32, the player name as a Hazel string (7-bit
packed length, UTF-8), then in newer clients more fields (auth token, language, ...).

The client version is a date: year * 25000 + month * 1800 + day * 50 + revision
(Impostor.Api.Innersloth.GameVersion), so a real Hello decodes to a release date.
nDPI (src/lib/protocols/among_us.c) matches only the first eight bytes of one build
(08 00 01 00 80 d9 02 03: nonce 1, Hazel 0, version 2020.10.8); this dissector checks
the structure instead, so any client version that is a date and a name that fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

AMONG_US_PORT = 22023  # Innersloth's game servers (among_us.pcap) and Impostor's default
HELLO = 0x08  # Hazel SendOption.Hello
HAZEL_VERSIONS = frozenset({0, 1})  # Hazel 0 (2020 clients) and 1 (later ones)
HEADER_BYTES = 8  # send option 1, nonce 2, Hazel version 1, client version 4
# Client versions: years the game has existed; month and day of a calendar.
MIN_YEAR, MAX_YEAR = 2018, 2099
MAX_NAME_BYTES = 64  # the game caps names at 10 characters; UTF-8 up to 4 bytes each
MAX_PACKED_BYTES = 5  # a 32-bit 7-bit-packed integer


@dataclass(slots=True, frozen=True)
class AmongUsHello:
    nonce: int
    hazel_version: int
    client_version: int
    name: str
    trailing_bytes: int  # fields of newer clients after the name

    @property
    def version_text(self) -> str:
        return ".".join(str(p) for p in decode_version(self.client_version))


def decode_version(version: int) -> tuple[int, int, int, int]:
    """year, month, day, revision of an encoded client version."""
    year, rest = divmod(version, 25000)
    month, rest = divmod(rest, 1800)
    day, revision = divmod(rest, 50)
    return year, month, day, revision


def _packed_int(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    for k in range(MAX_PACKED_BYTES):
        if offset + k >= len(data):
            raise Truncated("Hazel packed length runs past the datagram")
        b = data[offset + k]
        value |= (b & 0x7F) << (7 * k)
        if not b & 0x80:
            return value, offset + k + 1
    raise Malformed("Hazel packed length is longer than 5 bytes")


def parse_hello(data: bytes) -> AmongUsHello:
    """One Hazel Hello datagram of an Among Us client; Truncated/Malformed."""
    if len(data) < HEADER_BYTES + 1:
        raise Truncated(f"Among Us hello has {len(data)} bytes, fewer than 9")
    if data[0] != HELLO:
        raise Malformed(f"Hazel send option {data[0]} is not 8 (hello)")
    if data[3] not in HAZEL_VERSIONS:
        raise Malformed(f"Hazel version {data[3]} is not 0 or 1")
    version = int.from_bytes(data[4:8], "little", signed=True)
    year, month, day, _ = decode_version(version) if version > 0 else (0, 0, 0, 0)
    if not (MIN_YEAR <= year <= MAX_YEAR and 1 <= month <= 12 and 1 <= day <= 31):
        raise Malformed(f"client version {version} is not a release date")
    length, start = _packed_int(data, HEADER_BYTES)
    if not 1 <= length <= MAX_NAME_BYTES:
        raise Malformed(f"player name of {length} bytes")
    end = start + length
    if end > len(data):
        raise Truncated(f"player name of {length} bytes runs past the datagram")
    try:
        name = bytes(data[start:end]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed("player name is not UTF-8") from exc
    if not name.isprintable():
        raise Malformed("player name has control characters")
    return AmongUsHello(int.from_bytes(data[1:3], "big"), data[3], version, name,
                        len(data) - end)  # fmt: skip


# -- dissector ---------------------------------------------------------------------------


class AmongUsDissector(Dissector):
    """An Among Us client's Hazel Hello, on flows to or from UDP 22023."""

    name = "AmongUs"
    transports = frozenset({UDP})
    ports = frozenset({AMONG_US_PORT})  # which flows are looked at; the bytes decide
    udp_first_bytes = frozenset({HELLO})
    budget_packets = 2
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if AMONG_US_PORT not in (ctx.src_port, ctx.dst_port):
            return Probe.NO
        hello = parse_hello(pkt.payload)  # DecodeError: the stage answers NO
        tail = f" + {hello.trailing_bytes} bytes of newer fields" if hello.trailing_bytes else ""
        ctx.report(Finding("AmongUs", OTHER, 0.8,
                           f"Hazel hello (send option 8, nonce {hello.nonce}, Hazel "
                           f"{hello.hazel_version}), client version {hello.client_version} = "
                           f"{hello.version_text}, a {len(hello.name.encode())}-byte player "
                           f"name{tail}", pkt.seq))  # fmt: skip
        return Probe.MATCH
