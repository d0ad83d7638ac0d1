"""pcapng reader (draft-ietf-opsawg-pcapng): sections, interfaces, block kinds, damage."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests import pcapbuild as pb
from tests.readback import fifo_with, read_all
from tests.unit.source.test_pcap import frames
from voipscope.config import SourceConfig
from voipscope.errors import SourceError
from voipscope.source.capture import MAX_INTERFACES, sniff_format

TS = 1_700_000_000_123_456_789
TS_US = 1_700_000_000_123_456_000

ETH = pb.Interface(linktype=1)
RAW = pb.Interface(linktype=101)
SLL = pb.Interface(linktype=113)
NS = pb.Interface(linktype=1, tsresol=9)


def write(tmp_path: Path, data: bytes, name: str = "c.pcapng") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def block_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of every block, walked independently of voipscope."""
    out, pos, e = [], 0, "<"
    while pos + 12 <= len(data):
        (btype,) = struct.unpack_from("<I", data, pos)
        if btype == 0x0A0D0D0A:
            e = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        (length,) = struct.unpack_from(e + "I", data, pos + 4)
        out.append((pos, btype, length))
        pos += length
    return out


def ip4_frame() -> bytes:
    return pb.ipv4(pb.udp(b"raw ip payload", 1111, 2222))


# ---- interfaces, link types, sections -----------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_interfaces_with_different_linktypes_in_one_section(tmp_path, big_endian):
    eth = frames(1)[0]
    raw = ip4_frame()
    cooked = pb.sll(pb.ipv4(pb.udp(b"cooked")))
    packets = [
        pb.Packet(TS_US, eth, interface=0),
        pb.Packet(TS_US + 1000, raw, interface=1),
        pb.Packet(TS_US + 2000, cooked, interface=2),
        pb.Packet(TS_US + 3000, eth, interface=0),
    ]
    data = pb.pcapng_section([ETH, RAW, SLL], packets, big_endian=big_endian)
    assert sniff_format(data) == "pcapng"
    r = read_all(write(tmp_path, data))
    assert r.info.format == "pcapng"
    assert r.info.linktypes == {1, 101, 113}
    assert r.info.sections == 1
    assert [x.linktype for x in r.records] == [1, 101, 113, 1]
    assert r.data == [eth, raw, cooked, eth]
    assert r.ts == [p.ts_ns for p in packets]
    assert r.info.bytes_done == len(data)
    assert r.info.warnings() == []


def test_two_sections_with_different_byte_orders_renumber_interfaces(tmp_path):
    eth, raw = frames(1)[0], ip4_frame()
    first = pb.pcapng_section([ETH], [pb.Packet(TS_US, eth)], big_endian=False)
    # Interface 0 of the second section is raw IP: numbering restarts per section (§4.1).
    second = pb.pcapng_section(
        [RAW, ETH],
        [pb.Packet(TS_US + 1000, raw, interface=0), pb.Packet(TS_US + 2000, eth, interface=1)],
        big_endian=True,
    )
    r = read_all(write(tmp_path, first + second), SourceConfig(window_bytes=64, batch_packets=2))
    assert r.info.sections == 2
    assert [x.linktype for x in r.records] == [1, 101, 1]
    assert r.data == [eth, raw, eth]
    assert r.ts == [TS_US, TS_US + 1000, TS_US + 2000]


def test_a_new_section_forgets_the_old_interfaces(tmp_path):
    first = pb.pcapng_section([ETH, RAW], [pb.Packet(TS_US, frames(1)[0], interface=1)])
    second = pb.pcapng_section([ETH], [pb.Packet(TS_US, b"\x00" * 20, interface=1)])
    r = read_all(write(tmp_path, first + second))
    assert len(r.records) == 1
    assert r.info.packets_bad_interface == 1


# ---- block kinds --------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_obsolete_packet_block(tmp_path, big_endian):
    data = frames(3)
    packets = [pb.Packet(TS_US + k, d) for k, d in enumerate(data)]
    raw = pb.pcapng_section([ETH], packets, big_endian=big_endian, block_kind="pb")
    r = read_all(write(tmp_path, raw))
    assert r.data == data
    assert r.ts == [TS_US, TS_US, TS_US]  # µs default resolution: +k ns is lost


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_simple_packet_block_takes_previous_time_and_snaplen(tmp_path, big_endian):
    full = frames(1, max_payload=1)[0] + bytes(range(60))  # 102 bytes
    packets = [
        pb.Packet(TS_US, full[:40]),
        pb.Packet(0, full, block="spb"),
        pb.Packet(TS_US + 5000, full[:40]),
        pb.Packet(0, full[:30], block="spb"),
    ]
    iface = pb.Interface(linktype=1, snaplen=64)
    r = read_all(write(tmp_path, pb.pcapng_section([iface], packets, big_endian=big_endian)))
    # An SPB has no timestamp (§4.4): it gets the one before it. Its caplen is the
    # smaller of the original length and the interface snaplen.
    assert r.ts == [TS_US, TS_US, TS_US + 5000, TS_US + 5000]
    assert [(x.caplen, x.wirelen) for x in r.records] == [(40, 40), (64, 102), (40, 40), (30, 30)]
    assert r.data[1] == full[:64]
    assert r.data[3] == full[:30]


def test_simple_packet_block_padding_is_not_data(tmp_path):
    full = pb.ethernet(pb.ipv4(pb.udp(b"x" * 21)))  # 63 bytes: the block pads it to 64
    assert len(full) % 4 == 3
    spb = pb.pcapng_block(3, struct.pack("<I", len(full)) + full)
    lying = pb.pcapng_block(3, struct.pack("<I", len(full) + 100) + full)
    r = read_all(write(tmp_path, pb.pcapng_section([ETH], []) + spb + lying))
    # No snaplen: caplen is the original length, or what the block holds if it is less.
    assert [(x.caplen, x.wirelen) for x in r.records] == [(63, 63), (64, 163)]
    assert r.data[0] == full
    assert r.data[1] == full + b"\0"


def test_simple_packet_block_before_any_interface_is_a_bad_interface(tmp_path):
    shb = pb.pcapng_section([], [])
    spb = pb.pcapng_block(3, struct.pack("<I", 20) + b"\x00" * 20)
    r = read_all(write(tmp_path, shb + spb))
    assert r.records == []
    assert r.info.packets_bad_interface == 1
    assert "undescribed pcapng interface" in r.info.warnings()[0]


def test_snaplen_cut_epb(tmp_path):
    full = frames(1)[0]
    raw = pb.pcapng_section([ETH], [pb.Packet(TS_US, full[:20], wirelen=len(full))])
    r = read_all(write(tmp_path, raw))
    assert [(x.caplen, x.wirelen) for x in r.records] == [(20, len(full))]
    assert r.data == [full[:20]]


def test_unknown_blocks_are_skipped(tmp_path):
    data = frames(2)
    nrb = (4, struct.pack("<HH", 0, 0))  # name resolution block, just the end record
    isb = (5, struct.pack("<III", 0, 0, 0))  # interface statistics
    custom = (0xBAD, struct.pack("<I", 32473) + b"opaque")
    packets = [pb.Packet(TS_US + k, d) for k, d in enumerate(data)]
    raw = pb.pcapng_section([ETH], packets, extra_blocks=[nrb, isb, custom])
    raw += pb.pcapng_block(5, struct.pack("<III", 0, 0, 0)) + pb.pcapng_block(0x40000BAD, b"x")
    r = read_all(write(tmp_path, raw))
    assert r.data == data
    assert r.info.truncated_at is None and r.info.corrupt_at is None
    assert r.info.bytes_done == len(raw)


def test_packet_on_an_undescribed_interface_is_counted_and_skipped(tmp_path):
    data = frames(3)
    packets = [
        pb.Packet(TS_US, data[0], interface=0),
        pb.Packet(TS_US, data[1], interface=1),
        pb.Packet(TS_US, data[2], interface=0),
    ]
    for kind in ("epb", "pb"):
        r = read_all(write(tmp_path, pb.pcapng_section([ETH], packets, block_kind=kind)))
        assert r.data == [data[0], data[2]], kind
        assert r.info.packets_bad_interface == 1
        assert r.info.packets == 2


def test_interfaces_beyond_the_cap(tmp_path):
    ifaces = [RAW] + [ETH] * MAX_INTERFACES
    packets = [pb.Packet(TS_US, ip4_frame(), interface=0), pb.Packet(TS_US, b"", interface=256)]
    r = read_all(write(tmp_path, pb.pcapng_section(ifaces, packets)))
    assert r.info.interfaces_over_cap == 1
    assert r.info.packets_bad_interface == 1
    assert r.data == [ip4_frame()]
    assert any("beyond the cap" in w for w in r.info.warnings())


# ---- timestamps ---------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize(
    ("tsresol", "expected"),
    [
        (None, [TS_US, TS_US + 1_000]),  # default 10^-6
        (9, [TS, TS + 1_000]),  # 10^-9
        (3, [1_700_000_000_123_000_000, 1_700_000_000_123_000_000]),  # 10^-3
        (0x80 | 20, None),  # 2^-20
        (0x80 | 30, None),  # 2^-30
    ],
    ids=["default-us", "ns", "ms", "2^-20", "2^-30"],
)
def test_if_tsresol(tmp_path, big_endian, tsresol, expected):
    iface = pb.Interface(linktype=1, tsresol=tsresol)
    packets = [pb.Packet(TS, b"a" * 14), pb.Packet(TS + 1_000, b"b" * 14)]
    raw = pb.pcapng_section([iface], packets, big_endian=big_endian)
    r = read_all(write(tmp_path, raw))
    if expected is None:  # 2^-n: the writer floors to ticks; we floor ticks back to ns
        n = tsresol & 0x7F
        expected = [((p.ts_ns << n) // 10**9 * 10**9) >> n for p in packets]
        tick_ns = 10**9 / 2**n
        assert all(0 <= p.ts_ns - e < tick_ns + 1 for p, e in zip(packets, expected, strict=True))
    assert r.ts == expected


def test_if_tsresol_finer_than_ns_rounds_down(tmp_path):
    ts = 5_000_000_123_456_789  # 2^63 ps is 106 days: keep the ticks in range
    iface = pb.Interface(linktype=1, tsresol=12)
    raw = pb.pcapng_section([iface], [pb.Packet(ts, b"x" * 14)])
    assert read_all(write(tmp_path, raw)).ts == [ts]


@pytest.mark.parametrize(
    "tsresol", [0, 1, 18, 19, 27, 28, 72, 73, 127, 0x80, 0x80 | 33, 0x80 | 34, 0x80 | 63, 0xFF]
)
def test_if_tsresol_extremes_do_not_break_the_reader(tmp_path, tsresol):
    ticks = 3_000_000_123
    header = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, 4, 4)
    epb = pb.pcapng_block(6, header + b"abcd")
    iface = pb.Interface(linktype=1, tsresol=tsresol)
    r = read_all(write(tmp_path, pb.pcapng_section([iface], []) + epb))
    n = tsresol & 0x7F
    exact = (ticks * 10**9) >> n if tsresol & 0x80 else ticks * 10**9 // 10**n
    assert r.ts == [exact]
    assert r.data == [b"abcd"]


@pytest.mark.parametrize("offset_s", [1_600_000_000, -100])
def test_if_tsoffset(tmp_path, offset_s):
    iface = pb.Interface(linktype=1, tsresol=9, tsoffset_s=offset_s)
    r = read_all(write(tmp_path, pb.pcapng_section([iface], [pb.Packet(TS, b"x" * 14)])))
    assert r.ts == [TS]
    # The stored ticks really are relative to the offset (the writer subtracted it).
    raw = pb.pcapng_section([iface], [pb.Packet(TS, b"x" * 14)])
    epb = block_offsets(raw)[-1][0]
    hi, lo = struct.unpack_from("<II", raw, epb + 12)
    assert (hi << 32 | lo) == TS - offset_s * 10**9


def test_interfaces_keep_their_own_resolution(tmp_path):
    packets = [pb.Packet(TS, b"x" * 14, interface=0), pb.Packet(TS, b"y" * 20, interface=1)]
    raw = pb.pcapng_section([ETH, pb.Interface(linktype=101, tsresol=9)], packets)
    assert read_all(write(tmp_path, raw)).ts == [TS_US, TS]


# ---- windows and streams ------------------------------------------------------------


def test_blocks_straddling_windows_and_batches(tmp_path):
    data = frames(500, seed=11)
    kinds = ["epb", "pb", "spb"]
    packets = [
        pb.Packet(TS + k * 1000, d, interface=k % 2, block=kinds[k % 3] if k % 2 == 0 else "epb")
        for k, d in enumerate(data)
    ]
    raw = pb.pcapng_section([NS, pb.Interface(linktype=1, tsresol=9)], packets)
    config = SourceConfig(window_bytes=200, batch_packets=6)
    for path in (write(tmp_path, raw), write(tmp_path, pb.gz(raw), "c.pcapng.gz")):
        r = read_all(path, config)
        assert r.data == data
        assert max(r.batch_sizes) <= 6
        # Only the SPBs (k % 6 == 2) borrow the previous packet's time.
        assert r.ts == [TS + (k - 1 if k % 6 == 2 else k) * 1000 for k in range(500)]


def test_fifo(tmp_path):
    data = frames(100, seed=12)
    raw = pb.pcapng_section([NS], [pb.Packet(TS + k, d) for k, d in enumerate(data)])
    with fifo_with(tmp_path, raw) as path:
        r = read_all(path, SourceConfig(window_bytes=333, batch_packets=8))
    assert r.data == data
    assert r.ts == [TS + k for k in range(100)]


# ---- truncation and corruption ------------------------------------------------------


def test_truncation_sweep_every_prefix(tmp_path):
    data = [frames(1, seed=s, max_payload=30)[0] for s in range(3)]
    packets = [pb.Packet(TS + k, d) for k, d in enumerate(data)]
    raw = pb.pcapng_section([NS], packets, extra_blocks=[(5, b"\0" * 12)])
    blocks = block_offsets(raw)
    shb_len = blocks[0][2]
    epbs = [(off, length) for off, btype, length in blocks if btype == 6]
    starts = {off for off, _, _ in blocks} | {len(raw)}
    path = tmp_path / "cut.pcapng"
    for cut in range(len(raw) + 1):
        path.write_bytes(raw[:cut])
        if cut < shb_len:
            # No whole section header: nothing in the file can be read.
            with pytest.raises(SourceError):
                read_all(path)
            continue
        r = read_all(path, SourceConfig(window_bytes=40, batch_packets=2))
        whole = sum(1 for off, length in epbs if off + length <= cut)
        assert r.data == data[:whole], cut
        assert r.ts == [TS + k for k in range(whole)]
        cut_block = max(off for off in starts if off <= cut)
        assert r.info.truncated_at == (None if cut in starts else cut_block), cut
        assert r.info.corrupt_at is None


def test_truncated_gzip_pcapng(tmp_path):
    data = frames(400, seed=13)
    raw = pb.pcapng_section([NS], [pb.Packet(TS + k, d) for k, d in enumerate(data)])
    gz = pb.gz(raw)
    r = read_all(write(tmp_path, gz[: len(gz) // 2], "cut.pcapng.gz"))
    assert 0 < len(r.records) < 400
    assert r.data == data[: len(r.records)]
    epbs = [off for off, btype, _ in block_offsets(raw) if btype == 6]
    assert r.info.truncated_at == epbs[len(r.records)]


def _three_packets() -> tuple[bytes, list[bytes], list[int]]:
    data = frames(3)
    raw = pb.pcapng_section([NS], [pb.Packet(TS + k, d) for k, d in enumerate(data)])
    epbs = [off for off, btype, _ in block_offsets(raw) if btype == 6]
    return raw, data, epbs


@pytest.mark.parametrize(
    "damage", ["length-not-multiple-of-4", "trailing-length-mismatch", "length-below-12"]
)
def test_corrupt_block_lengths(tmp_path, damage):
    raw, data, epbs = _three_packets()
    buf = bytearray(raw)
    at = epbs[1]
    (length,) = struct.unpack_from("<I", buf, at + 4)
    if damage == "length-not-multiple-of-4":
        struct.pack_into("<I", buf, at + 4, length + 2)
    elif damage == "trailing-length-mismatch":
        struct.pack_into("<I", buf, at + length - 4, length + 4)
    else:
        struct.pack_into("<I", buf, at + 4, 8)
    r = read_all(write(tmp_path, bytes(buf)), SourceConfig(window_bytes=64, batch_packets=1))
    assert r.data == data[:1]
    assert r.info.corrupt_at == at
    assert r.info.truncated_at is None
    assert f"corrupt pcapng record at byte offset {at}" in r.info.warnings()[0]


def test_corrupt_captured_length_larger_than_the_block(tmp_path):
    raw, data, epbs = _three_packets()
    buf = bytearray(raw)
    struct.pack_into("<I", buf, epbs[2] + 20, 5000)
    r = read_all(write(tmp_path, bytes(buf)))
    assert r.data == data[:2]
    assert r.info.corrupt_at == epbs[2]


def test_corrupt_byte_order_magic_in_a_later_section(tmp_path):
    raw, data, _ = _three_packets()
    second = bytearray(pb.pcapng_section([NS], [pb.Packet(TS, b"q" * 14)]))
    second[8:12] = b"\xde\xad\xbe\xef"
    r = read_all(write(tmp_path, raw + bytes(second)))
    assert r.data == data
    assert r.info.corrupt_at == len(raw)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00", "truncated pcapng section header"),
        (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\xde\xad\xbe\xef" + b"\0" * 16, "byte-order magic"),
    ],
    ids=["short", "bad-bom"],
)
def test_unreadable_section_header_is_a_source_error(tmp_path, content, message):
    with pytest.raises(SourceError, match=message):
        read_all(write(tmp_path, content))


def test_empty_section_is_not_an_error(tmp_path):
    r = read_all(write(tmp_path, pb.pcapng_section([], [])))
    assert r.records == []
    assert r.info.sections == 1
    assert r.info.truncated_at is None and r.info.corrupt_at is None
