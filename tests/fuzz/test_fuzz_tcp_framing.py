"""Hypothesis over media-over-TCP framing (quality.tcp_framing) through the RTP tracker.

TCP segments of random bytes, of RFC 4571 frames and TURN messages whose lengths lie,
cut at random points, with sequence numbers in order, repeated, overlapping, jumping
ahead and behind, FIN and RST among them; through the real decoder and flow table (tiny
tables and batches, so slots are reused and lanes are freed and taken again), then into
the kernel straight with lying offsets. Nothing may raise, with NUMBA_BOUNDSCHECK=1 (see
conftest.py) no read may leave its array, and no packet may come out of nothing.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import pcapbuild as pb
from tests.fuzz.support import FAST, LONG, drive_tracker
from voipscope.config import FlowConfig
from voipscope.quality import tcp_framing as TF
from voipscope.quality.rtp_streams import RtpStreamTracker

PORTS = [(40000, 5004), (40002, 3478)]


@st.composite
def frame(draw: st.DrawFn) -> bytes:
    """An RFC 4571 frame, a ChannelData message or a STUN message, its length honest or
    not, or random bytes."""
    kind = draw(st.sampled_from(["rfc4571", "channel", "stun", "random"]))
    body = draw(st.binary(max_size=200))
    if kind == "random":
        return body
    pt, seq, stamp = (
        draw(st.integers(0, 127)),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 2**32 - 1)),
    )
    rtp = struct.pack("!BBHII", 0x80, pt, seq, stamp, draw(st.sampled_from([1, 2]))) + body
    honest = draw(st.booleans())
    if kind == "rfc4571":
        size = len(rtp) if honest else draw(st.integers(0, 0xFFFF))
        return struct.pack("!H", size) + rtp
    if kind == "channel":
        size = len(rtp) if honest else draw(st.integers(0, 0xFFFF))
        return struct.pack("!HH", 0x4000, size) + rtp + b"\0" * (-len(rtp) % 4)
    attrs = struct.pack("!HH", 0x0013, len(rtp)) + rtp + b"\0" * (-len(rtp) % 4)
    size = len(attrs) if honest else draw(st.integers(0, 0xFFFF))
    mtype = draw(st.sampled_from([0x0016, 0x0017, 0x0003, 0x0101]))
    return struct.pack("!HHI12s", mtype, size, 0x2112A442, bytes(12)) + attrs


segments = st.lists(
    st.tuples(
        st.lists(frame(), min_size=0, max_size=4),
        st.sampled_from(range(len(PORTS))),
        st.booleans(),  # reverse direction
        st.integers(-3000, 3000),  # sequence number moved from where the stream is
        st.sampled_from([0, 0, 0, pb.TCP_FIN, pb.TCP_RST]),
        st.integers(0, 3_000_000_000),  # ns since the previous packet
        st.integers(0, 3),  # cut: keep the front, the back, both halves in two segments
    ),
    max_size=40,
)


def check(pkts, batch: int) -> None:  # type: ignore[no-untyped-def]
    frames, stamps, ts = [], [], 1_700_000_000_000_000_000
    next_seq = {}
    payload_bytes = 0
    for chunks, flow, reverse, shift, flags, gap, cut in pkts:
        a, b = PORTS[flow]
        sport, dport = (b, a) if reverse else (a, b)
        src, dst = ("10.0.0.2", "10.0.0.1") if reverse else ("10.0.0.1", "10.0.0.2")
        data = b"".join(chunks)
        pieces = [data]
        if cut and data:
            half = len(data) // 2
            pieces = (
                [data[:half], data[half:]]
                if cut == 3
                else [data[:half] if cut == 1 else data[half:]]
            )
        for piece in pieces:
            key = (flow, reverse)
            seq = (next_seq.get(key, 1000) + shift) % (1 << 32)
            next_seq[key] = seq + len(piece)
            segment = pb.tcp(piece, sport, dport, pb.TCP_ACK | flags, seq)
            frames.append((1, pb.ethernet(pb.ipv4(segment, src, dst, proto=6))))
            ts += gap
            stamps.append(ts)
            payload_bytes += len(piece)
    config = FlowConfig(idle_timeout_s=1.0, max_flows=2)
    tracker = RtpStreamTracker(config.max_flows)
    ended_ids = drive_tracker(tracker, config, frames, stamps, batch)
    assert tracker.live_flows == 0
    # Every lane handed back: none is held by a flow that ended.
    meta = tracker.lane_meta
    assert meta[TF.LM_TOP] == meta[TF.LM_HIGH]
    counted = 0
    for flow_id in ended_ids:
        stats = tracker.pop(flow_id)
        if stats is None:
            continue
        counted += sum(stats.rtcp_packets) + sum(stats.truncated_packets)
        for s in stats.streams:
            assert s.packets >= 1 and s.duplicates + s.out_of_order <= s.packets - 1
            assert s.max_delta_ms >= 0
            counted += s.packets
    # A packet out is at least a frame's header and an RTCP header's worth of bytes in.
    assert counted * TF.RTCP_MIN_BYTES <= payload_bytes


@FAST
@given(pkts=segments, batch=st.integers(1, 8))
def test_random_segments_through_the_tracker(pkts, batch):
    check(pkts, batch)


@pytest.mark.slow
@LONG
@given(pkts=segments, batch=st.integers(1, 8))
def test_random_segments_through_the_tracker_fuzz_long(pkts, batch):
    check(pkts, batch)


@FAST
@given(
    buf=st.binary(min_size=1, max_size=64),
    rows=st.lists(
        st.tuples(st.integers(-100, 100), st.integers(0, 200), st.integers(-2, 3)),
        min_size=1,
        max_size=20,
    ),
)
def test_cut_frames_never_reads_outside_its_buffers(buf, rows):
    """Offsets and lengths past the buffer, slots past the table: skipped, not read."""
    n = len(rows)
    tracker = RtpStreamTracker(2)
    frames = tracker.tcp_frames
    stopped, why = TF.cut_frames(
        np.frombuffer(buf, np.uint8), np.zeros(n, np.uint8),
        np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int32),
        np.zeros(n, np.uint8), np.full(n, TF.TCP, np.uint8), np.zeros(n, np.int32),
        np.zeros(n, np.int32), np.zeros(n, np.uint8), np.arange(n, dtype=np.int64),
        np.array([r[2] for r in rows], np.int64), np.arange(n, dtype=np.int64),
        np.zeros(n, np.uint8), 0, tracker.slot_lane, tracker.lanes, tracker.lane_buf,
        tracker.lfree, tracker.lane_meta, tracker.tcp_out, frames,
    )  # fmt: skip
    assert (stopped, why) == (n, TF.DONE)
