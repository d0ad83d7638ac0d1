"""Tiny pcap / pcapng reader and classic-pcap writer helpers for the benchmark scripts.

The benchmark harness must not depend on voipscope itself (it measures it), nor on
scapy/dpkt (not installed everywhere), so this module reads the two capture formats
directly. It is deliberately small: it understands exactly what the benchmark inputs
need (classic pcap in both byte orders and both time resolutions; pcapng SHB/IDB/EPB/
SPB/PB blocks with if_tsresol and if_tsoffset) and converts every supported link type
to Ethernet so that one output file can hold them all.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_BSD = 12
LINKTYPE_RAW_OPENBSD = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
# Locally administered, obviously synthetic MACs for frames that had no Ethernet header.
SYNTH_ETH_DST = bytes.fromhex("020000000002")
SYNTH_ETH_SRC = bytes.fromhex("020000000001")

PCAP_GLOBAL_HEADER = struct.Struct("<IHHiIII")
PCAP_RECORD_HEADER = struct.Struct("<IIII")
# Large enough for any frame in the corpus plus the 14 bytes we may prepend.
OUTPUT_SNAPLEN = 262144


class CaptureFormatError(ValueError):
    """The file is neither pcap nor pcapng, or is structurally broken."""


@dataclass(frozen=True, slots=True)
class RawPacket:
    """One captured frame as stored in the file, before link-type conversion."""

    ts_us: int
    linktype: int
    data: bytes
    orig_len: int


def pcap_global_header(linktype: int = LINKTYPE_ETHERNET) -> bytes:
    """Header of a little-endian, microsecond classic pcap file."""
    return PCAP_GLOBAL_HEADER.pack(PCAP_MAGIC_US, 2, 4, 0, 0, OUTPUT_SNAPLEN, linktype)


def read_packets(path: Path) -> Iterator[RawPacket]:
    """Yield every packet of a pcap or pcapng file, whichever it is (decided by magic)."""
    data = path.read_bytes()  # benchmark inputs are small (a few MB at most)
    if len(data) < 4:
        raise CaptureFormatError(f"{path}: too short to be a capture")
    magic_le = struct.unpack_from("<I", data)[0]
    if magic_le == PCAPNG_SHB:
        yield from _read_pcapng(data, path)
    elif magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        yield from _read_pcap(data, "<", magic_le == PCAP_MAGIC_NS)
    else:
        magic_be = struct.unpack_from(">I", data)[0]
        if magic_be not in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            raise CaptureFormatError(f"{path}: unknown magic 0x{magic_le:08x}")
        yield from _read_pcap(data, ">", magic_be == PCAP_MAGIC_NS)


def _read_pcap(data: bytes, endian: str, nanos: bool) -> Iterator[RawPacket]:
    _magic, _vmaj, _vmin, _zone, _sig, _snap, network = struct.unpack_from(endian + "IHHiIII", data)
    # The upper bits of `network` may carry FCS information; the link type is the low 16 bits.
    linktype = network & 0xFFFF
    rec = struct.Struct(endian + "IIII")
    pos = PCAP_GLOBAL_HEADER.size
    while pos + rec.size <= len(data):
        sec, frac, caplen, orig_len = rec.unpack_from(data, pos)
        pos += rec.size
        if pos + caplen > len(data):
            break  # truncated last record, as left by an interrupted capture
        ts_us = sec * 1_000_000 + (frac // 1000 if nanos else frac)
        yield RawPacket(ts_us, linktype, data[pos : pos + caplen], orig_len)
        pos += caplen


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    resolution_num: int = 1  # ticks per second expressed as num / den ...
    power_of_two: bool = False  # ... or as 2**resolution_num when this is set
    offset_s: int = 0

    def to_us(self, ticks: int) -> int:
        if self.power_of_two:
            us = (ticks * 1_000_000) >> self.resolution_num
        elif self.resolution_num >= 6:
            us = ticks // 10 ** (self.resolution_num - 6)
        else:
            us = ticks * 10 ** (6 - self.resolution_num)
        return us + self.offset_s * 1_000_000


def _parse_idb(body: bytes, endian: str) -> _Interface:
    linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body)
    iface = _Interface(linktype, snaplen, resolution_num=6)
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        value = body[pos + 4 : pos + 4 + length]
        if code == 0:  # opt_endofopt
            break
        if code == 9 and length >= 1:  # if_tsresol
            iface.power_of_two = bool(value[0] & 0x80)
            iface.resolution_num = value[0] & 0x7F
        elif code == 14 and length == 8:  # if_tsoffset (seconds)
            iface.offset_s = struct.unpack(endian + "q", value)[0]
        pos += 4 + ((length + 3) & ~3)
    return iface


def _read_pcapng(data: bytes, path: Path) -> Iterator[RawPacket]:
    endian = "<"
    interfaces: list[_Interface] = []
    pos = 0
    while pos + 12 <= len(data):
        block_type = struct.unpack_from(endian + "I", data, pos)[0]
        if block_type == PCAPNG_SHB:
            # A new section may switch byte order and always restarts interface numbering.
            bom = struct.unpack_from("<I", data, pos + 8)[0]
            endian = "<" if bom == PCAPNG_BOM else ">"
            interfaces = []
        block_len = struct.unpack_from(endian + "I", data, pos + 4)[0]
        if block_len < 12 or pos + block_len > len(data):
            break  # truncated tail
        body = data[pos + 8 : pos + block_len - 4]
        pos += block_len
        if block_type == 1:
            interfaces.append(_parse_idb(body, endian))
        elif block_type in (2, 6):
            packet = _parse_packet_block(block_type, body, endian, interfaces, path)
            if packet is not None:
                yield packet
        elif block_type == 3 and interfaces:
            orig_len = struct.unpack_from(endian + "I", body)[0]
            iface = interfaces[0]
            caplen = min(orig_len, len(body) - 4, iface.snaplen or orig_len)
            # Simple packet blocks carry no timestamp at all.
            yield RawPacket(0, iface.linktype, body[4 : 4 + caplen], orig_len)


def _parse_packet_block(
    block_type: int, body: bytes, endian: str, interfaces: list[_Interface], path: Path
) -> RawPacket | None:
    if block_type == 6:  # enhanced packet block
        if_id, ts_hi, ts_lo, caplen, orig_len = struct.unpack_from(endian + "IIIII", body)
    else:  # obsolete packet block
        if_id, _drops, ts_hi, ts_lo, caplen, orig_len = struct.unpack_from(endian + "HHIIII", body)
    start = 20  # both block layouts put the frame right after 20 bytes of fields
    if if_id >= len(interfaces):
        raise CaptureFormatError(f"{path}: packet refers to unknown interface {if_id}")
    iface = interfaces[if_id]
    ts_us = iface.to_us((ts_hi << 32) | ts_lo)
    return RawPacket(ts_us, iface.linktype, body[start : start + caplen], orig_len)


def _ethertype_from_ip_version(payload: bytes) -> int | None:
    if not payload:
        return None
    version = payload[0] >> 4
    return {4: ETHERTYPE_IPV4, 6: ETHERTYPE_IPV6}.get(version)


def _synth_ethernet(ethertype: int, payload: bytes) -> bytes:
    return SYNTH_ETH_DST + SYNTH_ETH_SRC + ethertype.to_bytes(2, "big") + payload


# Bytes of link header removed per link type when the frame is rewrapped in Ethernet.
_STRIP = {
    LINKTYPE_RAW: 0,
    LINKTYPE_RAW_BSD: 0,
    LINKTYPE_RAW_OPENBSD: 0,
    LINKTYPE_IPV4: 0,
    LINKTYPE_IPV6: 0,
    LINKTYPE_NULL: 4,
    LINKTYPE_LOOP: 4,
    LINKTYPE_LINUX_SLL: 16,
    LINKTYPE_LINUX_SLL2: 20,
}
SUPPORTED_LINKTYPES = frozenset({LINKTYPE_ETHERNET, *_STRIP})


def to_ethernet(packet: RawPacket) -> tuple[bytes, int] | None:
    """Return (Ethernet frame, original length) or None if the frame cannot be converted.

    Only the link header changes; the network-layer bytes are copied untouched.
    """
    if packet.linktype == LINKTYPE_ETHERNET:
        return packet.data, packet.orig_len
    strip = _STRIP.get(packet.linktype)
    if strip is None or len(packet.data) < strip:
        return None
    payload = packet.data[strip:]
    ethertype: int | None
    if packet.linktype == LINKTYPE_LINUX_SLL:
        ethertype = int.from_bytes(packet.data[14:16], "big")
    elif packet.linktype == LINKTYPE_LINUX_SLL2:
        ethertype = int.from_bytes(packet.data[0:2], "big")
    else:
        # Raw IP has no type field, and NULL/LOOP's address family is host-byte-order
        # and OS specific (IPv6 is 24, 28 or 30), so the IP version nibble is the
        # reliable signal for all of them.
        ethertype = _ethertype_from_ip_version(payload)
    if ethertype is None or ethertype < 0x0600:
        return None  # not an Ethernet-II protocol (e.g. SLL 802.2 frames): no faithful mapping
    return _synth_ethernet(ethertype, payload), packet.orig_len - strip + 14
