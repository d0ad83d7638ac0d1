"""The TPACKET_V3 ring walker of live capture, on rings built byte by byte (no socket, no
root): packets copied out with their times and lengths, blocks given back to the kernel,
VLAN tags the NIC stripped put back, cooked (SLL2) headers made, loopback's outgoing copy
skipped, batches cut when full."""

from __future__ import annotations

import struct

import numpy as np

from tests import pcapbuild as pb
from voipscope.decode import decode_batch
from voipscope.source import kernels_live as K
from voipscope.source.batch import PacketBatch
from voipscope.source.linktypes import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2

BLOCK = 4096
MAC_AT = 80  # where the frame starts after its tpacket3_hdr + sockaddr_ll (aligned)


def frame_record(data: bytes, sec: int, nsec: int, *, vlan: int | None = None,
                 pkttype: int = 0, protocol: int = 0x0800) -> bytes:  # fmt: skip
    status = K.TP_STATUS_VLAN_VALID if vlan is not None else 0
    head = struct.pack("<IIIIIIHH", 0, sec, nsec, len(data), len(data), status, MAC_AT, MAC_AT)
    head += struct.pack("<IIHH", 0, vlan or 0, 0, 0)  # rxhash, vlan_tci, vlan_tpid
    head = head.ljust(K.H_SLL, b"\0")
    # sockaddr_ll: family, protocol (network order), ifindex 7, hatype, pkttype, halen, addr
    sll = struct.pack("<H", 17) + struct.pack("!H", protocol)
    sll += struct.pack("<iHBB", 7, 1, pkttype, 6) + bytes.fromhex("020000000001") + b"\0\0"
    record = (head + sll).ljust(MAC_AT, b"\0") + data
    return record + b"\0" * (-len(record) % 16)


def ring_of(*blocks: list[bytes]) -> np.ndarray:
    ring = np.zeros(BLOCK * len(blocks), np.uint8)
    for b, records in enumerate(blocks):
        base = b * BLOCK
        offsets, at = [], 48
        for record in records:
            offsets.append(at)
            at += len(record)
        status = K.TP_STATUS_USER if records else 0
        ring[base : base + 20] = np.frombuffer(
            struct.pack("<IIIII", 3, 0, status, len(records), 48), np.uint8
        )
        for i, (off, record) in enumerate(zip(offsets, records, strict=True)):
            nxt = offsets[i + 1] - off if i + 1 < len(offsets) else 0
            raw = struct.pack("<I", nxt) + record[4:]
            ring[base + off : base + off + len(raw)] = np.frombuffer(raw, np.uint8)
    return ring


def drain(ring: np.ndarray, *, rows: int = 16, buf_bytes: int = 8192, cooked: bool = False,
          loopback_ifindex: int = 0, snaplen: int = 65535, state=None):  # fmt: skip
    state = np.zeros(K.ST_LEN, np.int64) if state is None else state
    cols = [np.zeros(rows, np.int64) for _ in range(4)]
    buf = np.zeros(buf_bytes, np.uint8)
    n, _pos, why, skipped = K.drain_ring(
        ring, ring.view(np.uint32), BLOCK, ring.shape[0] // BLOCK, state, snaplen, cooked,
        loopback_ifindex, 1 << 40, 0, 0, buf, *cols,
    )  # fmt: skip
    off, caplen, wirelen, ts = cols
    frames = [bytes(buf[off[i] : off[i] + caplen[i]]) for i in range(n)]
    return frames, wirelen[:n].tolist(), ts[:n].tolist(), why, skipped, state


def udp_frame(payload: bytes = b"hello") -> bytes:
    return pb.ethernet(pb.ipv4(pb.udp(payload, 5060, 5060), "10.0.0.1", "10.0.0.2"))


def block_status(ring: np.ndarray, block: int) -> int:
    return int(ring.view(np.uint32)[(block * BLOCK + K.BD_STATUS) // 4])


def test_copies_packets_and_gives_the_blocks_back() -> None:
    a, b, c = udp_frame(b"a"), udp_frame(b"bb"), udp_frame(b"ccc")
    ring = ring_of([frame_record(a, 100, 5), frame_record(b, 100, 6)], [frame_record(c, 101, 7)])
    frames, wirelen, ts, why, _, state = drain(ring)
    assert frames == [a, b, c] and wirelen == [len(a), len(b), len(c)]
    assert ts == [100_000_000_005, 100_000_000_006, 101_000_000_007]
    assert why == K.RING_EMPTY and block_status(ring, 0) == 0 and block_status(ring, 1) == 0
    assert state[K.ST_BLOCK] == 0  # wrapped around to the first block


def test_a_full_batch_stops_mid_block_and_goes_on_from_there() -> None:
    records = [frame_record(udp_frame(bytes([65 + i])), 1, i) for i in range(5)]
    ring = ring_of(records, [])
    first, _, _, why, _, state = drain(ring, rows=3)
    assert why == K.BATCH_FULL and len(first) == 3
    assert block_status(ring, 0) == K.TP_STATUS_USER  # not given back yet
    rest, _, ts, why, _, _ = drain(ring, state=state)
    assert len(rest) == 2 and ts == [1_000_000_003, 1_000_000_004] and why == K.RING_EMPTY
    assert block_status(ring, 0) == 0


def test_stripped_vlan_tag_is_put_back() -> None:
    frame = udp_frame()
    ring = ring_of([frame_record(frame, 1, 0, vlan=42)], [])
    (got,), wirelen, _, _, _, _ = drain(ring)
    assert got == frame[:12] + struct.pack("!HH", 0x8100, 42) + frame[12:]
    assert wirelen == [len(frame) + 4]
    batch = PacketBatch(
        buf=np.frombuffer(got, np.uint8), data_offset=np.array([0]), caplen=np.array([len(got)]),
        wirelen=np.array([len(got)]), ts_ns=np.array([0]),
        linktype=np.array([LINKTYPE_ETHERNET]), first_index=0, file_offset=0,
    )  # fmt: skip
    d = decode_batch(batch)
    assert int(d.vlan[0]) == 42 and int(d.dport[0]) == 5060


def test_cooked_packets_get_an_sll2_header_that_decodes() -> None:
    ip = pb.ipv4(pb.udp(b"x", 1234, 5060), "10.0.0.1", "10.0.0.2")
    ring = ring_of([frame_record(ip, 1, 0)], [])
    (got,), _, _, _, _, _ = drain(ring, cooked=True)
    assert got[:2] == b"\x08\x00" and got[4:8] == struct.pack("!I", 7) and got[20:] == ip
    batch = PacketBatch(
        buf=np.frombuffer(got, np.uint8), data_offset=np.array([0]), caplen=np.array([len(got)]),
        wirelen=np.array([len(got)]), ts_ns=np.array([0]),
        linktype=np.array([LINKTYPE_LINUX_SLL2]), first_index=0, file_offset=0,
    )  # fmt: skip
    d = decode_batch(batch)
    assert int(d.ip_ver[0]) == 4 and int(d.sport[0]) == 1234


def test_loopback_outgoing_copies_are_skipped_and_snaplen_cuts() -> None:
    frame = udp_frame(b"y" * 200)
    ring = ring_of([frame_record(frame, 1, 0, pkttype=K.PACKET_OUTGOING),
                    frame_record(frame, 1, 1)], [])  # fmt: skip
    frames, wirelen, _, _, skipped, _ = drain(ring, loopback_ifindex=7, snaplen=64)
    assert skipped == 1 and frames == [frame[:64]] and wirelen == [len(frame)]
    # Outgoing packets of other interfaces (ifindex 7 is not loopback here) are kept.
    ring = ring_of([frame_record(frame, 1, 0, pkttype=K.PACKET_OUTGOING)], [])
    frames, _, _, _, skipped, _ = drain(ring, loopback_ifindex=1)
    assert skipped == 0 and frames == [frame]
