"""Hypothesis over the RTP stream kernel: random and near-RTP payloads, random schedules.

Through the real decoder and flow table (tiny tables and batches, so slots are reused and
pools grow), then straight into the kernel with lying offsets. Nothing may raise, and
with NUMBA_BOUNDSCHECK=1 (see conftest.py) no read may leave its array.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import pcapbuild as pb
from tests.fuzz.support import FAST, LONG, drive_tracker
from tests.readback import batch_of
from voipscope.anomalies import AnomalyLog
from voipscope.config import FlowConfig
from voipscope.decode import decode_batch
from voipscope.flows import FlowTable, new_assignment
from voipscope.quality import rtp_kernel as K
from voipscope.quality.rtp_streams import RtpStreamTracker

PORTS = [(4000, 5000), (4002, 5002), (4004, 5004)]


@st.composite
def payload(draw: st.DrawFn) -> bytes:
    """Random bytes, an RTP-ish header with random fields and random damage, or RTCP
    SR/RR packets (compound) whose counts and lengths lie at random."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    if draw(st.booleans()):
        out = b""
        for _ in range(draw(st.integers(1, 3))):
            body = draw(st.binary(max_size=120))
            words = draw(st.one_of(st.just(len(body) // 4), st.integers(0, 0xFFFF)))
            rc = draw(st.integers(0, 31))
            out += struct.pack("!BBH", 0x80 | rc, draw(st.sampled_from([200, 201, 202])), words)
            out += body
        return out
    b0 = draw(st.integers(0x80, 0xBF))
    head = struct.pack(
        "!BBHII",
        b0,
        draw(st.integers(0, 255)),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.sampled_from([1, 2, 3, 4, 5, 6, draw(st.integers(0, 0xFFFFFFFF))])),
    )
    tail = draw(st.binary(max_size=80))
    return (head + tail)[: draw(st.integers(0, 12 + len(tail)))]


packets = st.lists(
    st.tuples(
        payload(),
        st.sampled_from(range(len(PORTS))),
        st.booleans(),  # reverse direction
        st.integers(0, 3_000_000_000),  # ns since the previous packet (idle timeouts too)
    ),
    max_size=60,
)


def check_tracker(pkts: list[tuple[bytes, int, bool, int]], batch: int) -> None:
    frames, stamps, ts = [], [], 1_700_000_000_000_000_000
    for data, flow, reverse, gap in pkts:
        a, b = PORTS[flow]
        sport, dport = (b, a) if reverse else (a, b)
        src, dst = ("10.0.0.2", "10.0.0.1") if reverse else ("10.0.0.1", "10.0.0.2")
        frames.append((1, pb.ethernet(pb.ipv4(pb.udp(data, sport, dport), src, dst))))
        ts += gap
        stamps.append(ts)
    config = FlowConfig(idle_timeout_s=1.0, max_flows=2)
    tracker = RtpStreamTracker(config.max_flows)
    ended_ids = drive_tracker(tracker, config, frames, stamps, batch)
    assert tracker.live_flows == 0
    counted = 0
    for flow_id in ended_ids:
        stats = tracker.pop(flow_id)
        if stats is None:
            continue
        counted += sum(stats.rtcp_packets) + sum(stats.truncated_packets)
        counted += sum(stats.ssrc_overflow_packets)
        for s in stats.streams:
            assert s.packets >= 1 and s.expected >= 1
            assert s.duplicates + s.out_of_order <= s.packets - 1
            assert s.max_delta_ms >= 0 and 0 <= s.payload_type < 128
            assert s.jitter_ms is None or s.jitter_ms >= 0
            c = s.clock_candidates  # dynamic payload type: A.8 per candidate clock
            if c is not None:
                assert s.clock_hz is None and 96 <= c.payload_type < 128
                figures = (*c.jitter_last_ms, *c.mean_jitter_ms, *c.max_jitter_ms)
                assert all(math.isfinite(v) and v >= 0 for v in figures)
                assert c.inferred_clock_hz() in (None, *c.clocks_hz)
            counted += s.packets
    assert counted <= len(frames)


@FAST
@given(pkts=packets, batch=st.integers(1, 8))
def test_random_payloads_through_the_tracker(pkts, batch):
    check_tracker(pkts, batch)


@pytest.mark.slow
@LONG
@given(pkts=packets, batch=st.integers(1, 8))
def test_random_payloads_through_the_tracker_fuzz_long(pkts, batch):
    check_tracker(pkts, batch)


@FAST
@given(
    buf=st.binary(min_size=1, max_size=64),
    rows=st.lists(
        st.tuples(st.integers(-100, 100), st.integers(0, 200), st.integers(-2, 3)),
        min_size=1,
        max_size=20,
    ),
)
def test_kernel_never_reads_outside_its_buffers(buf, rows):
    """Offsets and lengths past the buffer, slots past the table: skipped, not read."""
    n = len(rows)
    off = np.array([r[0] for r in rows], np.int64)
    length = np.array([r[1] for r in rows], np.int32)
    slot = np.array([r[2] for r in rows], np.int64)
    tracker = RtpStreamTracker(2)
    stopped, why = K.track_rtp(
        np.frombuffer(buf, np.uint8), np.zeros(1, np.uint8), np.zeros(n, np.uint8), off,
        length, np.zeros(n, np.uint8), np.full(n, 17, np.uint8),
        np.arange(n, dtype=np.int64), slot, np.arange(n, dtype=np.int64),
        np.zeros(n, np.uint8), 0, tracker.slot_row, tracker.frows, tracker.ffree, tracker.si,
        tracker.sf, tracker.sfree, tracker.meta, tracker.new_rows, tracker.clock_hz,
        tracker.va, tracker.ev,
    )  # fmt: skip
    assert (stopped, why) == (n, K.DONE)


# Each example is ~42,000 packets: a few examples cover the buffer's stop and restart.
WINDOWS = settings(FAST, max_examples=6)


@WINDOWS
@given(
    holds=st.lists(st.sampled_from([0.0, 0.0, 8.0, 300.0, -5.0]), min_size=40, max_size=40),
    lost=st.sets(st.integers(0, 599), max_size=100),
    jumps=st.lists(st.integers(1, 5000), max_size=3),
    batch=st.sampled_from([7, 500, 65536]),
)
def test_transit_windows_of_many_streams_at_once(holds, lost, jumps, batch):
    """70 streams of ~600 packets side by side complete their transit windows together:
    more than the kernel's window buffer holds (it stops, the caller drains, it goes on),
    with losses, sequence jumps and delays; every stream judged, no read out of bounds."""
    frames, stamps = [], []
    streams = 70  # more than rtp_streams.TIMING_WINDOW_BUFFER
    seq_at = {j: 0 for j in range(streams)}
    jump_at = {200 + 150 * n: size for n, size in enumerate(jumps)}
    for k in range(600):
        for j in range(streams):
            seq_at[j] += jump_at.get(k, 1)
            if k in lost:
                continue
            head = struct.pack("!BBHII", 0x80, 8, seq_at[j] & 0xFFFF, k * 160, 0x1000 + j)
            udp = pb.udp(head + b"\xd5" * 160, 6000 + 2 * j, 7000)
            frames.append((1, pb.ethernet(pb.ipv4(udp, "10.0.0.1", "10.0.0.2"))))
            hold_ns = int(holds[k % len(holds)] * 1e6)
            stamps.append(1_700_000_000_000_000_000 + k * 20_000_000 + hold_ns + j)
    order = np.argsort(stamps, kind="stable")
    frames, stamps = [frames[i] for i in order], [stamps[i] for i in order]
    table = FlowTable(FlowConfig(max_flows=128), AnomalyLog())
    tracker = RtpStreamTracker(128)
    ended = []
    for start in range(0, len(frames), batch):
        d = decode_batch(batch_of(frames[start : start + batch], stamps[start : start + batch]))
        a = new_assignment(len(d))
        ended += list(table.update(d, a))
        tracker.on_init(d, a, np.flatnonzero(a.seq == 1))
        tracker.on_update(d, a)
    ended += list(table.flush())
    for rows in ended:
        tracker.on_expire(rows)
    judged = 0
    for rows in ended:
        for flow_id in rows[:, 0].tolist():
            stats = tracker.pop(flow_id)
            for s in stats.streams if stats is not None else []:
                judged += s.timing is not None
                assert s.timing is None or s.timing["windows"] >= 1
    assert judged == streams
