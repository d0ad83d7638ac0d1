"""Classic pcap reader (draft-ietf-opsawg-pcap): headers, timestamps, windows, damage."""

from __future__ import annotations

import io
import random
import struct
import sys
from pathlib import Path

import pytest

from tests import pcapbuild as pb
from tests.readback import fifo_with, read_all
from voipscope.config import SourceConfig
from voipscope.errors import SourceError
from voipscope.source import CaptureInfo, read_capture
from voipscope.source.capture import sniff_format

TS_US = 1_700_000_000_123_456_000  # µs-exact, for µs files
TS_NS = 1_700_000_000_123_456_789


def frames(n: int, seed: int = 1, max_payload: int = 300) -> list[bytes]:
    """n Ethernet/IPv4/UDP frames of varied sizes, each unique (the port is its number)."""
    rnd = random.Random(seed)
    return [
        pb.ethernet(pb.ipv4(pb.udp(rnd.randbytes(rnd.randrange(max_payload)), k % 65536, 9)))
        for k in range(n)
    ]


def write(tmp_path: Path, data: bytes, name: str = "c.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def record_offsets(data: bytes, big_endian: bool = False, header: int = 16) -> list[int]:
    """Offsets of each record header in a pcap file, walked independently of voipscope."""
    e = ">" if big_endian else "<"
    out, pos = [], 24
    while pos < len(data):
        out.append(pos)
        (incl,) = struct.unpack_from(e + "I", data, pos + 8)
        pos += header + incl
    return out


# ---- headers and timestamps ----------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("variant", ["usec", "nsec", "kuznetzov"])
def test_magic_byte_order_and_exact_timestamps(tmp_path, big_endian, variant):
    ts0 = TS_NS if variant == "nsec" else TS_US
    data = frames(3)
    packets = [pb.Packet(ts0 + k * 1_001_000, d) for k, d in enumerate(data)]
    raw = pb.pcap(
        packets,
        big_endian=big_endian,
        nanosecond=variant == "nsec",
        kuznetzov=variant == "kuznetzov",
    )
    assert sniff_format(raw) == "pcap"
    r = read_all(write(tmp_path, raw))
    assert r.info.format == "pcap"
    assert r.info.linktypes == {1}
    assert not r.info.compressed
    assert r.info.bytes_total == len(raw)
    assert r.info.bytes_done == len(raw)
    assert r.info.truncated_at is None and r.info.corrupt_at is None
    assert r.info.warnings() == []
    assert r.ts == [p.ts_ns for p in packets]
    assert r.data == data
    assert [rec.linktype for rec in r.records] == [1, 1, 1]


def test_microsecond_file_keeps_ns_zero_and_ns_file_keeps_every_digit(tmp_path):
    us = read_all(write(tmp_path, pb.pcap([pb.Packet(TS_US, b"x" * 14)]), "us.pcap"))
    ns = read_all(
        write(tmp_path, pb.pcap([pb.Packet(TS_NS, b"x" * 14)], nanosecond=True), "ns.pcap")
    )
    assert us.ts == [TS_US]
    assert ns.ts == [TS_NS]


def test_fcs_bits_in_the_linktype_field_are_not_the_type(tmp_path):
    # LinkType: the upper bits carry the FCS length (draft-ietf-opsawg-pcap §4).
    raw = pb.pcap([pb.Packet(TS_US, frames(1)[0])], linktype=(1 << 28) | (4 << 29) | 1)
    r = read_all(write(tmp_path, raw))
    assert r.info.linktypes == {1}
    assert r.records[0].linktype == 1


@pytest.mark.parametrize("linktype", [0, 1, 12, 14, 101, 108, 113, 228, 229, 276])
def test_every_supported_linktype_is_recorded(tmp_path, linktype):
    r = read_all(write(tmp_path, pb.pcap([pb.Packet(TS_US, b"\x45" * 30)], linktype=linktype)))
    assert r.info.linktypes == {linktype}
    assert [rec.linktype for rec in r.records] == [linktype]


def test_snaplen_cut_keeps_caplen_and_wirelen(tmp_path):
    full = frames(1, max_payload=1)[0] + b"z" * 200
    raw = pb.pcap(
        [pb.Packet(TS_US, full[:64], wirelen=len(full)), pb.Packet(TS_US + 1000, full)],
        snaplen=64,
    )
    r = read_all(write(tmp_path, raw))
    assert [(x.caplen, x.wirelen) for x in r.records] == [(64, len(full)), (len(full),) * 2]
    assert r.data == [full[:64], full]


def test_zero_length_records_are_packets(tmp_path):
    raw = pb.pcap([pb.Packet(TS_US, b""), pb.Packet(TS_US + 1000, b"ab")])
    r = read_all(write(tmp_path, raw))
    assert r.data == [b"", b"ab"]


# ---- windows, batches, streams ------------------------------------------------------


def test_records_straddling_windows_and_batches_come_out_once_in_order(tmp_path):
    data = frames(600, seed=7)
    packets = [pb.Packet(TS_NS + k, d) for k, d in enumerate(data)]
    raw = pb.pcap(packets, nanosecond=True)
    # Windows of 256 bytes cut almost every record; many records exceed the window.
    config = SourceConfig(window_bytes=256, batch_packets=7)
    r = read_all(write(tmp_path, raw), config)
    assert r.data == data
    assert r.ts == [p.ts_ns for p in packets]
    assert max(r.batch_sizes) <= 7
    assert sum(r.batch_sizes) == 600
    assert r.info.truncated_at is None and r.info.corrupt_at is None
    assert r.info.bytes_done == len(raw)


@pytest.mark.parametrize("window", [1, 17, 24, 40, 4096, 1 << 20])
def test_any_window_size_reads_the_same(tmp_path, window):
    data = frames(40, seed=window)
    raw = pb.pcap([pb.Packet(TS_US, d) for d in data])
    r = read_all(write(tmp_path, raw), SourceConfig(window_bytes=window, batch_packets=5))
    assert r.data == data


def test_record_bigger_than_the_window_grows_the_window(tmp_path):
    big = pb.ethernet(pb.ipv4(pb.udp(bytes(range(256)) * 40)))  # ~10 kB
    # Small records after the big one: the grown window holds many of them, and the
    # next window (back to the normal size) must still take the tail it carries over.
    data = [frames(1)[0], big, *frames(300, seed=2)]
    raw = pb.pcap([pb.Packet(TS_US, d) for d in data])
    for path in (write(tmp_path, raw), write(tmp_path, pb.gz(raw), "c.pcap.gz")):
        r = read_all(path, SourceConfig(window_bytes=64, batch_packets=2))
        assert r.data == data, path


def test_gzip_input(tmp_path):
    data = frames(50)
    raw = pb.pcap([pb.Packet(TS_NS + k, d) for k, d in enumerate(data)], nanosecond=True)
    gz = pb.gz(raw)
    assert sniff_format(gz) == "gzip"
    r = read_all(write(tmp_path, gz, "c.pcap.gz"), SourceConfig(window_bytes=300))
    assert r.info.compressed
    assert r.info.bytes_total is None
    assert r.info.format == "pcap"
    assert r.data == data
    assert r.ts == [TS_NS + k for k in range(50)]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_fifo_is_read_as_a_stream(tmp_path, compress):
    data = frames(200, seed=3)
    raw = pb.pcap([pb.Packet(TS_US + k * 1000, d) for k, d in enumerate(data)])
    with fifo_with(tmp_path, pb.gz(raw) if compress else raw) as path:
        r = read_all(path, SourceConfig(window_bytes=500, batch_packets=9))
    assert r.data == data
    assert r.info.compressed is compress
    assert r.info.bytes_total is None
    assert r.info.truncated_at is None


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_stdin_dash(monkeypatch, compress):
    data = frames(30, seed=4)
    raw = pb.pcap([pb.Packet(TS_US, d) for d in data], big_endian=True)
    stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(pb.gz(raw) if compress else raw)))
    monkeypatch.setattr(sys, "stdin", stdin)
    r = read_all("-", SourceConfig(window_bytes=128, batch_packets=4))
    assert r.data == data
    assert r.info.compressed is compress


def test_truncated_fifo_reports_the_cut(tmp_path):
    data = frames(5)
    raw = pb.pcap([pb.Packet(TS_US, d) for d in data])
    offsets = record_offsets(raw)
    with fifo_with(tmp_path, raw[: offsets[3] + 10]) as path:
        r = read_all(path, SourceConfig(window_bytes=64, batch_packets=2))
    assert r.data == data[:3]
    assert r.info.truncated_at == offsets[3]


# ---- truncation and corruption ------------------------------------------------------


@pytest.mark.parametrize("variant", ["le-usec", "be-nsec", "kuznetzov"])
def test_truncation_sweep_every_prefix(tmp_path, variant):
    data = [frames(1, seed=s, max_payload=40)[0] for s in range(4)]
    kuz = variant == "kuznetzov"
    big = variant.startswith("be")
    raw = pb.pcap(
        [pb.Packet(TS_US + k * 1000, d) for k, d in enumerate(data)],
        big_endian=big,
        nanosecond=variant.endswith("nsec"),
        kuznetzov=kuz,
    )
    offsets = record_offsets(raw, big, 24 if kuz else 16)
    assert len(offsets) == 4
    path = tmp_path / "cut.pcap"
    for cut in range(len(raw) + 1):
        path.write_bytes(raw[:cut])
        if cut < 24:
            with pytest.raises(SourceError) as exc:
                read_all(path)
            assert exc.value.path == str(path)
            continue
        r = read_all(path, SourceConfig(window_bytes=50, batch_packets=3))
        whole = sum(
            1 for k, off in enumerate(offsets) if off + 16 + (8 * kuz) + len(data[k]) <= cut
        )
        assert r.data == data[:whole], cut
        boundary = cut == 24 or cut in offsets or cut == len(raw)
        expected = None if boundary else offsets[whole]
        assert r.info.truncated_at == expected, cut
        assert r.info.corrupt_at is None
        if expected is not None:
            assert f"truncated at byte offset {expected}" in r.info.warnings()[0]


def test_truncated_file_header_names_the_problem(tmp_path):
    raw = pb.pcap([])[:20]
    with pytest.raises(SourceError, match="truncated pcap file header"):
        read_all(write(tmp_path, raw))


def test_truncated_gzip_stream_keeps_the_packets_before(tmp_path):
    data = frames(300, seed=5)
    raw = pb.pcap([pb.Packet(TS_US, d) for d in data])
    gz = pb.gz(raw)
    r = read_all(write(tmp_path, gz[: len(gz) * 2 // 3], "cut.pcap.gz"))
    assert 0 < len(r.records) < 300
    assert r.data == data[: len(r.records)]
    assert r.info.truncated_at == record_offsets(raw)[len(r.records)]


def test_corrupt_caplen_stops_with_corrupt_at(tmp_path):
    data = frames(4)
    raw = bytearray(pb.pcap([pb.Packet(TS_US, d) for d in data]))
    offsets = record_offsets(bytes(raw))
    struct.pack_into("<I", raw, offsets[2] + 8, 0xFFFFFFF0)
    r = read_all(write(tmp_path, bytes(raw)), SourceConfig(window_bytes=100, batch_packets=1))
    assert r.data == data[:2]
    assert r.info.corrupt_at == offsets[2]
    assert r.info.truncated_at is None
    assert r.info.bytes_done == offsets[2]
    (warning,) = r.info.warnings()
    assert f"corrupt pcap record at byte offset {offsets[2]}" in warning


def test_max_packet_bytes_is_the_corruption_limit(tmp_path):
    raw = pb.pcap([pb.Packet(TS_US, b"a" * 100), pb.Packet(TS_US, b"b" * 101)])
    r = read_all(write(tmp_path, raw), SourceConfig(max_packet_bytes=100))
    assert r.data == [b"a" * 100]
    assert r.info.corrupt_at == 24 + 16 + 100


# ---- inputs that are not captures ---------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", "not a pcap or pcapng capture"),
        (b"\x00\x01", "not a pcap or pcapng capture"),
        (pb.gz(b"hello, not a capture at all"), "not a pcap or pcapng capture"),
        (pb.gz(b""), "empty file"),
        (b"\x1f\x8b\x08\x00garbage that is not deflate", "damaged gzip"),
    ],
    ids=["empty", "text", "two-bytes", "gzip-text", "gzip-empty", "bad-gzip"],
)
def test_non_captures_are_source_errors(tmp_path, content, message):
    path = write(tmp_path, content, "x.bin")
    with pytest.raises(SourceError, match=message) as exc:
        read_all(path)
    assert exc.value.path == str(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_all(tmp_path / "nope.pcap")
    with pytest.raises(SourceError, match="directory"):
        read_all(tmp_path)


@pytest.mark.parametrize(("linktype", "name"), [(105, "802.11"), (4242, "unknown")])
def test_unknown_linktype_names_the_type(tmp_path, linktype, name):
    raw = pb.pcap([pb.Packet(TS_US, b"x" * 20)], linktype=linktype)
    with pytest.raises(SourceError, match=rf"unsupported link type {linktype} \(.*{name}"):
        read_all(write(tmp_path, raw))


def test_info_is_filled_while_reading(tmp_path):
    data = frames(10)
    raw = pb.pcap([pb.Packet(TS_US, d) for d in data])
    info = CaptureInfo(path="ignored")
    seen = []
    for batch in read_capture(str(write(tmp_path, raw)), SourceConfig(batch_packets=4), info):
        seen.append((info.packets, batch.first_index))
    assert seen == [(4, 0), (8, 4), (10, 8)]
