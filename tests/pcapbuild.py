"""Build capture files byte by byte for tests: headers, pcap and pcapng containers.

Every function returns bytes; nothing here uses voipscope, so the readers are tested
against an independent writer of the formats.
"""

from __future__ import annotations

import gzip
import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# ---- link and network headers ---------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ethernet(
    payload: bytes, ethertype: int = 0x0800, vlans: Sequence[int] = (), qinq: bool = False
) -> bytes:
    """Ethernet II; ``vlans`` outermost first (802.1ad S-tag 0x88a8 first when ``qinq``)."""
    tags = b""
    for n, vid in enumerate(vlans):
        tpid = 0x88A8 if qinq and n == 0 else 0x8100
        tags += struct.pack("!HH", tpid, vid)
    if not vlans:
        return MAC_B + MAC_A + struct.pack("!H", ethertype) + payload
    first_tpid = tags[:2]
    rest = tags[2:] + struct.pack("!H", ethertype)
    return MAC_B + MAC_A + first_tpid + rest + payload


def sll(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked capture v1: 16 bytes, protocol last."""
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", protocol) + payload


def sll2(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked capture v2: 20 bytes, protocol first."""
    return struct.pack("!HHIHBB8s", protocol, 0, 2, 1, 0, 6, MAC_A + b"\0\0") + payload


def bsd_null(payload: bytes, family: int, big_endian: bool = False) -> bytes:
    return struct.pack(">I" if big_endian else "<I", family) + payload


def ipv4(
    payload: bytes,
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    proto: int = 17,
    ident: int = 1,
    frag_offset: int = 0,
    more_fragments: bool = False,
    total_length: int | None = None,
    ihl: int = 5,
) -> bytes:
    options = b"\x01" * (ihl * 4 - 20)
    total = total_length if total_length is not None else 20 + len(options) + len(payload)
    flags = (0x2000 if more_fragments else 0) | (frag_offset // 8)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ident, flags, 64, proto, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip
    return header + options + payload


def ipv6(
    payload: bytes,
    src: str = "2001:db8::1",
    dst: str = "2001:db8::2",
    next_header: int = 17,
    extensions: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    """IPv6 with extension headers given as (their type, body after next-header/len bytes).

    Bodies are padded to the 8-octet unit; the fragment header (44) takes a 6-byte body.
    """
    chain = b""
    types = [t for t, _ in extensions] + [next_header]
    for n, (ext_type, body) in enumerate(extensions):
        nxt = types[n + 1]
        if ext_type == 44:
            chain += struct.pack("!BB", nxt, 0) + body
        elif ext_type == 51:  # AH: length in 4-octet units minus 2
            body = body + b"\0" * (-(len(body) + 2) % 4)
            chain += struct.pack("!BB", nxt, (len(body) + 2) // 4 - 2) + body
        else:
            body = body + b"\0" * (-(len(body) + 2) % 8)
            chain += struct.pack("!BB", nxt, (len(body) + 2) // 8 - 1) + body
    first = extensions[0][0] if extensions else next_header
    header = struct.pack(
        "!IHBB16s16s", 0x60000000, len(chain) + len(payload), first, 64,
        ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed,
    )  # fmt: skip
    return header + chain + payload


def ipv6_fragment_body(offset: int, more: bool, ident: int) -> bytes:
    return struct.pack("!HI", (offset & 0xFFF8) | (1 if more else 0), ident)


def udp(payload: bytes, sport: int = 5060, dport: int = 5060) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


STUN_MAGIC_COOKIE = 0x2112A442  # RFC 8489 §5
STUN_BINDING_REQUEST, STUN_BINDING_SUCCESS = 0x0001, 0x0101
STUN_REALM = 0x0014  # RFC 8489 §14.9


def stun(
    message_type: int, transaction: int, attributes: Sequence[tuple[int, bytes]] = ()
) -> bytes:
    """A STUN message (RFC 8489 §5): header with the magic cookie, transaction id
    ``transaction`` as 12 bytes, then each (type, value) attribute padded to 4 bytes
    (§14; the length field counts the value without its padding)."""
    body = b"".join(
        struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)
        for kind, value in attributes
    )
    header = struct.pack("!HHI", message_type, len(body), STUN_MAGIC_COOKIE)
    return header + transaction.to_bytes(12, "big") + body


TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp(
    payload: bytes = b"",
    sport: int = 40000,
    dport: int = 5060,
    flags: int = TCP_ACK,
    seq: int = 1,
    ack: int = 1,
) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


# ---- containers -----------------------------------------------------------------------


@dataclass
class Packet:
    ts_ns: int
    data: bytes
    wirelen: int | None = None
    interface: int = 0
    block: str | None = None  # pcapng only: 'epb' | 'spb' | 'pb', overriding block_kind


def pcap(
    packets: Iterable[Packet],
    linktype: int = 1,
    big_endian: bool = False,
    nanosecond: bool = False,
    snaplen: int = 262144,
    kuznetzov: bool = False,
) -> bytes:
    e = ">" if big_endian else "<"
    magic = 0xA1B2CD34 if kuznetzov else (0xA1B23C4D if nanosecond else 0xA1B2C3D4)
    out = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    for p in packets:
        sec, rem = divmod(p.ts_ns, 1_000_000_000)
        frac = rem if nanosecond else rem // 1000
        wire = p.wirelen if p.wirelen is not None else len(p.data)
        out += struct.pack(e + "IIII", sec, frac, len(p.data), wire)
        if kuznetzov:
            out += struct.pack(e + "IHBB", 0, 0, 0, 0)
        out += p.data
    return bytes(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(e: str, btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    length = 12 + len(body)
    return struct.pack(e + "II", btype, length) + body + struct.pack(e + "I", length)


def pcapng_block(btype: int, body: bytes, big_endian: bool = False) -> bytes:
    """One pcapng block of any type: type, length, body padded to 4, length again."""
    return _block(">" if big_endian else "<", btype, body)


def _option(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + _pad4(value)


@dataclass
class Interface:
    linktype: int = 1
    snaplen: int = 0
    tsresol: int | None = None  # raw if_tsresol byte: 6 = µs, 9 = ns, 0x80|n = 2^-n
    tsoffset_s: int | None = None


def pcapng_section(
    interfaces: Sequence[Interface],
    packets: Iterable[Packet],
    big_endian: bool = False,
    block_kind: str = "epb",
    extra_blocks: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    """One section: SHB, IDBs, packets as EPB ('epb'), SPB ('spb') or obsolete PB ('pb').

    ``extra_blocks`` (type, body) go after the IDBs, before the packets.
    """
    e = ">" if big_endian else "<"
    out = bytearray(_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
    for iface in interfaces:
        opts = b""
        if iface.tsresol is not None:
            opts += _option(e, 9, bytes([iface.tsresol]))
        if iface.tsoffset_s is not None:
            opts += _option(e, 14, struct.pack(e + "q", iface.tsoffset_s))
        if opts:
            opts += struct.pack(e + "HH", 0, 0)
        out += _block(e, 1, struct.pack(e + "HHI", iface.linktype, 0, iface.snaplen) + opts)
    for btype, body in extra_blocks:
        out += _block(e, btype, body)
    for p in packets:
        iface = interfaces[p.interface] if p.interface < len(interfaces) else Interface()
        ticks = _ticks(p.ts_ns, iface)
        wire = p.wirelen if p.wirelen is not None else len(p.data)
        kind = p.block or block_kind
        if kind == "epb":
            body = struct.pack(
                e + "IIIII", p.interface, ticks >> 32, ticks & 0xFFFFFFFF, len(p.data), wire
            )
            out += _block(e, 6, body + p.data)
        elif kind == "pb":
            body = struct.pack(
                e + "HHIIII", p.interface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(p.data), wire
            )
            out += _block(e, 2, body + p.data)
        elif kind == "spb":
            out += _block(e, 3, struct.pack(e + "I", wire) + p.data)
        else:
            raise ValueError(kind)
    return bytes(out)


def _ticks(ts_ns: int, iface: Interface) -> int:
    ts_ns -= (iface.tsoffset_s or 0) * 1_000_000_000
    res = 6 if iface.tsresol is None else iface.tsresol
    if res & 0x80:
        return (ts_ns << (res & 0x7F)) // 1_000_000_000
    return ts_ns * 10**res // 1_000_000_000


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def udp_packet(
    ts_s: float, src: str, sport: int, dst: str, dport: int, payload: bytes = b"x" * 20
) -> Packet:
    """An Ethernet/IPv4(or IPv6)/UDP packet at ``ts_s`` seconds."""
    if ":" in src:
        frame = ethernet(ipv6(udp(payload, sport, dport), src, dst), 0x86DD)
    else:
        frame = ethernet(ipv4(udp(payload, sport, dport), src, dst))
    return Packet(round(ts_s * 1e9), frame)


def tcp_packet(
    ts_s: float,
    src: str,
    sport: int,
    dst: str,
    dport: int,
    flags: int,
    payload: bytes = b"",
    seq: int = 1,
) -> Packet:
    """One TCP segment; ``seq``: its sequence number -- a flow of several data segments
    must number them as TCP does (the dissectors join a stream by these numbers)."""
    return Packet(
        round(ts_s * 1e9),
        ethernet(ipv4(tcp(payload, sport, dport, flags, seq), src, dst, proto=6)),
    )
