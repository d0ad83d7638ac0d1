"""RTP over TCP (RFC 4571) and TURN over TCP (RFC 8656 §12.5) measured per packet:
segments cut back into packets by quality.tcp_framing, through the real pipeline."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from tests import pcapbuild as pb
from tests.unit.quality.rtp_support import FRAME_MS, PCMU_TICKS, rtp, run
from tests.unit.quality.test_rtp_streams import channel_data, data_indication
from voipscope.api import iter_calls
from voipscope.config import Config
from voipscope.decode.tcp_seq import tcp_seq
from voipscope.quality import rtp_kernel as K
from voipscope.quality import tcp_framing as TF
from voipscope.quality.rtp_streams import RtpStreamTracker

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 5000)
T0 = 1_700_000_000.0
ISN = 0xFFFFF000  # the sequence numbers wrap inside the stream


def segment(  # type: ignore[no-untyped-def]
    ms: float, payload: bytes, seq: int, src=CLIENT, dst=SERVER, options: int = 0,
    flags: int = pb.TCP_ACK | pb.TCP_PSH,
):  # fmt: skip
    """A TCP segment at ``ms``; ``options`` 32-bit words of NOPs after the header."""
    header = bytearray(pb.tcp(b"", src[1], dst[1], flags, seq % (1 << 32)))
    header[12] = (5 + options) << 4
    body = bytes(header) + b"\x01" * (4 * options) + payload
    if ":" in src[0]:
        # with a hop-by-hop options header: the TCP header is found behind it too
        hop = [(0, b"\x01\x04\0\0\0\0")]
        frame = pb.ethernet(pb.ipv6(body, src[0], dst[0], 6, hop), 0x86DD)
    else:
        frame = pb.ethernet(pb.ipv4(body, src[0], dst[0], proto=6))
    return pb.Packet(round((T0 + ms / 1000) * 1e9), frame)


def framed(packet: bytes) -> bytes:
    return struct.pack("!H", len(packet)) + packet  # RFC 4571 §2


def frames(count: int, skip: tuple[int, ...] = ()) -> list[bytes]:
    return [framed(rtp(k + 1, 1000 + k * PCMU_TICKS)) for k in range(count) if k not in skip]


def one_per_segment(chunks: list[bytes], skip: tuple[int, ...] = (), **kw) -> list[pb.Packet]:  # type: ignore[no-untyped-def]
    """A segment per packet, every 20 ms; the packets numbered in ``skip`` never sent."""
    times = [k * FRAME_MS for k in range(len(chunks) + len(skip)) if k not in skip]
    out, seq = [], ISN
    for ms, chunk in zip(times, chunks, strict=True):
        out.append(segment(ms, chunk, seq, **kw))
        seq += len(chunk)
    return out


def streams(write_pcap, packets):  # type: ignore[no-untyped-def]
    return [s for _, stats in run(write_pcap, packets) if stats for s in stats.streams]


@pytest.mark.parametrize("options", [0, 3])
def test_rfc4571_one_packet_per_segment(write_pcap, options):
    (s,) = streams(write_pcap, one_per_segment(frames(50, skip=(30,)), skip=(30,), options=options))
    assert (s.ssrc, s.payload_type, s.packets, s.lost) == (0x1234, 0, 49, 1)
    assert s.max_delta_ms == pytest.approx(2 * FRAME_MS)
    assert s.jitter_ms == pytest.approx(0.0)


def test_rfc4571_over_ipv6(write_pcap):
    client, server = ("2001:db8::1", 40000), ("2001:db8::2", 5000)
    (s,) = streams(write_pcap, one_per_segment(frames(20), src=client, dst=server))
    assert (s.src_ip, s.packets, s.lost) == ("2001:db8::1", 20, 0)


def test_packets_split_and_coalesced_across_segments(write_pcap):
    """The byte stream cut anywhere after its first (whole) packet: every packet is read
    once, at the segment that completed it."""
    chunks = frames(60)
    stream = b"".join(chunks[1:])
    rng = random.Random(7)
    cuts = sorted(rng.sample(range(1, len(stream)), 80))
    pieces = [chunks[0]] + [
        stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)
    ]
    packets, seq = [], ISN
    for k, piece in enumerate(pieces):
        packets.append(segment(k * 15, piece, seq))
        seq += len(piece)
    (s,) = streams(write_pcap, packets)
    assert (s.packets, s.lost, s.duplicates, s.out_of_order) == (60, 0, 0, 0)


def test_retransmissions_are_not_duplicates(write_pcap):
    chunks = frames(30)
    packets, seq = [], ISN
    for k, chunk in enumerate(chunks):
        packets.append(segment(k * FRAME_MS, chunk, seq))
        if k % 5 == 0:
            packets.append(segment(k * FRAME_MS + 3, chunk, seq))  # the same bytes again
        if k == 12:
            # a retransmission that overlaps what was read and brings new bytes: the
            # next packet comes in it, the segment that follows has it again
            both = chunk + chunks[k + 1]
            packets.append(segment(k * FRAME_MS + 5, both, seq))
        seq += len(chunk)
    (s,) = streams(write_pcap, packets)
    assert (s.packets, s.lost, s.duplicates) == (30, 0, 0)


def fin(ms: float, seq: int) -> pb.Packet:
    return segment(ms, b"", seq, flags=pb.TCP_FIN | pb.TCP_ACK)


def with_hole(count: int, hole_at: int, gap_ms: float = FRAME_MS) -> tuple[list[pb.Packet], int]:
    """``count`` packets a segment each, but the segment that held the end of packet
    ``hole_at`` and the start of the next is not captured; (packets, next sequence)."""
    chunks = frames(count)
    cut = chunks[hole_at] + chunks[hole_at + 1]
    packets, seq = [], ISN
    for k, chunk in enumerate(chunks):
        if k == hole_at:
            packets.append(segment(k * gap_ms, cut[:50], seq))
            seq += len(cut)  # the segment with the rest is not captured
        elif k != hole_at + 1:
            packets.append(segment(k * gap_ms, chunk, seq))
            seq += len(chunk)
    return packets, seq


def test_a_hole_never_filled_is_given_up_at_the_close(write_pcap):
    """Bytes missing from the capture: the segments after the hole are set aside for the
    retransmission that would fill it; at the FIN the hole is given up, the two packets
    it cut are lost and the lane re-anchors on the next segment of whole packets."""
    packets, seq = with_hole(40, 20)
    (s,) = streams(write_pcap, [*packets, fin(40 * FRAME_MS, seq)])
    assert (s.packets, s.lost) == (38, 2)
    # TCP delivers every byte: those the capture lacks are its own loss, not the path's.
    assert (s.capture_gap_missing, s.loss_runs) == (2, 0)


@pytest.mark.parametrize("end", ["capture", "idle"])
def test_a_hole_never_filled_is_given_up_when_the_flow_ends(write_pcap, end):
    """No FIN, no full set-aside room, no 2 s of waiting: the capture (or the flow, by
    its idle timeout) ends 8 segments after the hole. What was set aside is read then,
    not dropped: the flow's last packets are in its stream."""
    packets, _ = with_hole(30, 20)
    if end == "idle":  # another flow goes on long after this one went quiet
        packets += [
            pb.udp_packet(T0 + 200 + k, "10.9.9.1", 5353, "10.9.9.2", 5353, b"x") for k in range(3)
        ]
    (s,) = streams(write_pcap, packets)
    assert (s.packets, s.lost, s.capture_gap_missing) == (28, 2, 2)


def test_media_first_seen_after_a_hole_at_the_flows_end_is_one_flow(write_pcap):
    """A TURN client's TCP connection opens with an Allocate (no RTP: no row for the flow
    yet), then both directions lose a segment and everything after is set aside until
    the capture ends. Read then, both directions' media are streams of one flow, and the
    tracker hands every row back."""
    allocate = struct.pack("!HHI12s", 0x0003, 8, 0x2112A442, bytes(12)) + struct.pack(
        "!HHB3s", 0x0019, 4, 17, bytes(3)
    )
    packets = []
    for d, (src, dst, seq) in enumerate([(CLIENT, SERVER, 1000), (SERVER, CLIENT, 9000)]):
        chunks = [allocate] + [
            channel_data(rtp(k + 1, k * PCMU_TICKS, ssrc=0xA + d, payload=b"\xff" * 160), pad=True)
            for k in range(12)
        ]
        for k, chunk in enumerate(chunks):
            if k != 1:  # the first ChannelData segment is not captured
                packets.append(segment(k * FRAME_MS + d, chunk, seq, src, dst))
            seq += len(chunk)
    packets.sort(key=lambda p: p.ts_ns)
    tracker = RtpStreamTracker(Config().flows.max_flows)
    results = run(write_pcap, packets, tracker=tracker)
    got = sorted((s.ssrc, s.packets) for _, stats in results if stats for s in stats.streams)
    assert got == [(0xA, 11), (0xB, 11)]
    meta = tracker.meta
    assert meta[K.M_FROWS_TOP] == meta[K.M_FROWS_HIGH] == 1  # one row, handed back


def test_a_hole_is_given_up_when_its_wait_is_over_or_the_room_is(write_pcap):
    # 100 ms apart: the wait (2 s) ends 20 segments after the hole; then the rest
    # follows in order, with no FIN.
    packets, _ = with_hole(60, 10, gap_ms=100)
    (s,) = streams(write_pcap, packets)
    assert (s.packets, s.lost, s.capture_gap_missing) == (58, 2, 2)
    # 20 ms apart: the 32 places fill first (0.64 s).
    packets, _ = with_hole(80, 10)
    (s,) = streams(write_pcap, packets)
    assert (s.packets, s.lost, s.capture_gap_missing) == (78, 2, 2)


def test_reordered_segments_are_read_in_order_when_the_hole_fills(write_pcap):
    """A capture behind a loss: segments 10-14 are captured before segment 9, which TCP
    retransmits 100 ms late. Every packet is read once and in order; those that waited
    are timed by the retransmission that freed them (head-of-line blocking)."""
    chunks = frames(30)
    offsets = np.cumsum([0, *map(len, chunks)])
    order = [*range(9), *range(10, 15), 9, *range(15, 30)]
    times = [k * FRAME_MS if k != 9 else 14 * FRAME_MS + 5 for k in order]
    packets = [
        segment(ms, chunks[k], ISN + int(offsets[k])) for k, ms in zip(order, times, strict=True)
    ]
    (s,) = streams(write_pcap, packets)
    assert (s.packets, s.lost, s.out_of_order, s.duplicates) == (30, 0, 0, 0)
    assert s.max_delta_ms == pytest.approx(6 * FRAME_MS + 5)  # packet 9 waited for its bytes


def test_turn_over_tcp_channel_data_and_indications(write_pcap):
    """A TURN client's TCP connection: an Allocate request, Send indications, then
    ChannelData padded to 4 bytes (RFC 8656 §12.5); the relay answers with Data
    indications and ChannelData. The media inside is measured both ways."""
    allocate = struct.pack("!HHI12s", 0x0003, 8, 0x2112A442, bytes(12)) + struct.pack(
        "!HHB3s", 0x0019, 4, 17, bytes(3)
    )
    up, down = [allocate], []
    for k in range(40):
        inner_up = rtp(k + 1, k * PCMU_TICKS, ssrc=0xA, payload=b"\xff" * 161)
        inner_down = rtp(k + 1, k * PCMU_TICKS, ssrc=0xB, payload=b"\xff" * 161)
        if k < 5:
            up.append(data_indication(inner_up, 0x0016))
            down.append(data_indication(inner_down))
        else:
            up.append(channel_data(inner_up, pad=True))
            down.append(channel_data(inner_down, pad=True))
    packets, seq_up, seq_down = [], 1000, 9000
    for k, chunk in enumerate(up):
        packets.append(segment(k * FRAME_MS, chunk, seq_up))
        seq_up += len(chunk)
    for k, chunk in enumerate(down):
        packets.append(segment((k + 1) * FRAME_MS + 2, chunk, seq_down, SERVER, CLIENT))
        seq_down += len(chunk)
    packets.sort(key=lambda p: p.ts_ns)
    got = sorted((s.ssrc, s.packets, s.lost) for s in streams(write_pcap, packets))
    assert got == [(0xA, 40, 0), (0xB, 40, 0)]


def test_bulk_tcp_opens_no_lane_and_lanes_are_freed(write_pcap):
    """Random payloads (TLS records, file transfers) are not framed media: no stream, and
    no lane at all; the lane of a media connection is freed when its flow ends."""
    rng = random.Random(3)
    bulk, seq = [], 1
    for k in range(3000):
        payload = rng.randbytes(rng.randrange(1, 1460))
        bulk.append(segment(k, payload, seq, ("10.0.0.7", 443), ("10.0.0.8", 50000)))
        seq += len(payload)
    config = Config()
    tracker = RtpStreamTracker(config.flows.max_flows)
    results = run(write_pcap, bulk, tracker=tracker)
    assert all(s is None or not s.streams for _, s in results)
    assert tracker.lane_meta[TF.LM_HIGH] == 0
    tracker = RtpStreamTracker(config.flows.max_flows)
    run(write_pcap, one_per_segment(frames(20)), tracker=tracker)
    assert tracker.lane_meta[TF.LM_HIGH] == 1
    assert tracker.lane_meta[TF.LM_TOP] == 1  # back on the free list


def test_exact_framing_of_random_bytes_is_rare():
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(20_000):
        data = rng.integers(0, 256, int(rng.integers(1, 1500)), dtype=np.uint8)
        hits += TF.exact_framing(data, 0, data.shape[0]) != TF.FRAMING_NONE
    assert hits <= 2


def test_exact_framing_names_each_framing():
    rtp_packet = rtp(1, 160)
    allocate = struct.pack("!HHI12s", 0x0003, 0, 0x2112A442, bytes(12))
    cases = {
        framed(rtp_packet) * 3: TF.FRAMING_RFC4571,
        channel_data(rtp_packet, pad=True) + allocate: TF.FRAMING_TURN,
        allocate: TF.FRAMING_TURN,
        framed(rtp_packet)[:-1]: TF.FRAMING_NONE,  # a packet cut short
        allocate[:4] + b"\0\0\0\0" + allocate[8:]: TF.FRAMING_NONE,  # no magic cookie
        framed(b"\x00" * 12): TF.FRAMING_NONE,  # version 0 inside
    }
    for data, want in cases.items():
        array = np.frombuffer(data, np.uint8)
        assert TF.exact_framing(array, 0, array.shape[0]) == want, data.hex()


def test_tcp_seq_is_read_from_the_header_before_the_payload():
    for options in (0, 1, 10):
        frame = segment(0, b"payload", 0x89ABCDEF, options=options).data
        array = np.frombuffer(frame, np.uint8)
        at = len(frame) - len(b"payload")
        assert tcp_seq(array, at, CLIENT[1], SERVER[1]) == 0x89ABCDEF
        assert tcp_seq(array, at, CLIENT[1], 9999) == -1  # not this packet's ports


def ack(ms: float, seq: int) -> pb.Packet:
    return segment(ms, b"", seq, SERVER, CLIENT, flags=pb.TCP_ACK)


@pytest.mark.parametrize("answered", [False, True])
def test_a_call_over_tcp_is_answered_by_media_both_ways_not_by_acks(write_pcap, answered):
    """Without signalling, "answered" means voice went both ways; over TCP every data
    segment is acknowledged the other way, and those empty segments are not voice."""
    packets = one_per_segment(frames(30))
    if answered:
        back, seq = [], 5000
        for k in range(30):
            chunk = framed(rtp(k + 1, 1000 + k * PCMU_TICKS, ssrc=0x99))
            back.append(segment(k * FRAME_MS + 3, chunk, seq, SERVER, CLIENT))
            seq += len(chunk)
        packets += back
    else:
        packets += [ack(k * FRAME_MS + 1, 1) for k in range(30)]
    packets.sort(key=lambda p: p.ts_ns)
    calls = [c for c in iter_calls(write_pcap(packets)) if c["streams"]]
    assert len(calls) == 1, calls
    assert calls[0]["state"] == ("answered" if answered else "unanswered"), calls[0]["evidence"]


def test_the_capture_hole_bit_is_its_own():
    assert K.AFTER_CAPTURE_HOLE & K.IN_EXTRA == 0
