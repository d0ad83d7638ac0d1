"""Per-stream RTP statistics (RFC 3550 appendix A) on hand-built packet sequences."""

from __future__ import annotations

import struct

import pytest

from tests.unit.quality.rtp_support import (
    FRAME_MS,
    PCMU_TICKS,
    A,
    B,
    only_stats,
    rtp,
    run,
    steady,
    udp_at,
)
from voipscope.config import Config
from voipscope.pipeline import FlowPipeline
from voipscope.quality import rtp_kernel as K
from voipscope.quality.rtp_streams import RtpStreamTracker


def test_clean_stream(write_pcap):
    stats = only_stats(run(write_pcap, steady(50)))
    (s,) = stats.streams
    assert (s.src_ip, s.src_port, s.dst_ip, s.dst_port) == (A[0], A[1], B[0], B[1])
    assert (s.ssrc, s.payload_type, s.codec, s.clock_hz) == (0x1234, 0, "PCMU", 8000)
    assert (s.packets, s.expected, s.lost, s.duplicates, s.out_of_order) == (50, 50, 0, 0, 0)
    assert s.loss_pct == 0.0
    assert s.max_delta_ms == pytest.approx(FRAME_MS)
    assert s.jitter_ms == pytest.approx(0.0, abs=1e-9)
    assert (s.first_seq, s.last_seq) == (1, 50)
    assert (s.rtp_timestamp_first, s.rtp_timestamp_last) == (1000, 1000 + 49 * PCMU_TICKS)
    assert s.last_seen - s.first_seen == pytest.approx(49 * FRAME_MS / 1000)
    assert s.mos is None  # the calls stage scores streams
    # µ-law 0xFF is digital silence: nobody talks.
    assert s.talk_spurts == [] and s.activity_method == "payload energy (G.711)"
    assert s.dtmf == []


def test_talk_spurts_from_g711_energy_and_rfc4733_digits(write_pcap):
    """Loud frames 0.4-1.0 s, silence around; DTMF '5' then '#' (PT 101, 4-byte events,
    three packets each with one timestamp) between 1.2 and 1.4 s."""
    tone = bytes([0x00, 0x80] * 80)  # µ-law full-scale square wave: unmistakably voice
    packets = []
    for k in range(100):
        ms = k * FRAME_MS
        payload = tone if 400 <= ms < 1000 else b"\xff" * 160
        packets.append(udp_at(ms, rtp(k + 1, 1000 + k * PCMU_TICKS, payload=payload)))
    seq = 200
    for n, (digit, event_ts) in enumerate(((5, 50_000), (11, 51_000))):
        for r in range(3):
            body = bytes([digit, 0x80 if r == 2 else 0x0A]) + (160 * (r + 1)).to_bytes(2, "big")
            ms = 1200 + n * 100 + r * 20 + 5
            packets.append(udp_at(ms, rtp(seq, event_ts, payload=body, pt=101)))
            seq += 1
    packets.sort(key=lambda p: p.ts_ns)
    (s,) = only_stats(run(write_pcap, packets)).streams
    ((start, end),) = s.talk_spurts
    assert start - s.first_seen == pytest.approx(0.400, abs=1e-5)
    assert end - s.first_seen == pytest.approx(1.000, abs=1e-5)  # last voice + one frame
    assert [d["digit"] for d in s.dtmf] == ["5", "#"]
    assert s.dtmf[0]["ts"] - s.first_seen == pytest.approx(1.205, abs=1e-5)


def test_sequence_wraps_at_65535(write_pcap):
    # RFC 3550 A.1: 65530..65535 then 0..5 is one run of 12, not a loss of 65k.
    (s,) = only_stats(run(write_pcap, steady(12, first_seq=65530))).streams
    assert (s.first_seq, s.last_seq, s.expected, s.lost) == (65530, 5, 12, 0)


def test_timestamp_wraps_too(write_pcap):
    packets = [
        udp_at(k * FRAME_MS, rtp(k, (2**32 - 2 * PCMU_TICKS + k * PCMU_TICKS) & 0xFFFFFFFF))
        for k in range(6)
    ]
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert s.jitter_ms == pytest.approx(0.0, abs=1e-9)
    assert s.max_delta_ms == pytest.approx(FRAME_MS)


def test_loss(write_pcap):
    packets = [p for k, p in enumerate(steady(20)) if k not in (5, 6, 12)]
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert (s.packets, s.expected, s.lost) == (17, 20, 3)
    assert s.loss_pct == pytest.approx(15.0)
    assert s.max_delta_ms == pytest.approx(3 * FRAME_MS)


def test_duplicates_make_loss_negative(write_pcap):
    # RFC 3550 A.3: lost = expected - received, so duplicates can make it negative.
    packets = steady(10)
    packets = [*packets[:4], packets[3], *packets[4:8], packets[5], *packets[8:]]
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert (s.packets, s.expected, s.lost, s.duplicates, s.out_of_order) == (12, 10, -2, 2, 0)


def test_reorder_is_out_of_order_not_loss(write_pcap):
    packets = steady(10)
    packets[4], packets[5] = packets[5], packets[4]
    # Keep capture time increasing: the late packet arrives after the early one.
    packets[4].ts_ns, packets[5].ts_ns = packets[5].ts_ns, packets[4].ts_ns
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert (s.packets, s.lost, s.duplicates, s.out_of_order) == (10, 0, 0, 1)


def test_late_packet_before_the_first_extends_the_base(write_pcap):
    packets = steady(6, first_seq=10)
    late = udp_at(6 * FRAME_MS, rtp(9, 1000 - PCMU_TICKS))
    (s,) = only_stats(run(write_pcap, [*packets, late])).streams
    assert (s.packets, s.expected, s.lost, s.out_of_order) == (7, 7, 0, 1)


def test_jitter_on_a_known_arrival_schedule(write_pcap):
    # PCMU, timestamps +160 (20 ms); arrivals at 0, 20, 45, 60 ms. RFC 3550 A.8:
    #   D2 = 20 - 20 = 0    J2 = 0
    #   D3 = 25 - 20 = 5    J3 = 0 + (5 - 0) / 16 = 0.3125
    #   D4 = 15 - 20 = -5   J4 = 0.3125 + (5 - 0.3125) / 16 = 0.60546875
    arrivals = [0, 20, 45, 60]
    packets = [udp_at(t, rtp(k, k * PCMU_TICKS)) for k, t in enumerate(arrivals)]
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert s.jitter_last_ms == pytest.approx(0.60546875)
    assert s.jitter_ts_units == pytest.approx(0.60546875 * 8)  # 8 ticks per ms
    assert s.max_jitter_ms == pytest.approx(0.60546875)
    assert s.jitter_ms == pytest.approx((0 + 0.3125 + 0.60546875) / 3)  # mean, as tshark
    assert s.max_delta_ms == pytest.approx(25.0)


def test_marker_and_comfort_noise_gaps_are_not_network_gaps(write_pcap):
    packets = steady(5)
    # A talk spurt after 1 s of silence starts with the marker bit (RFC 3551 §4.1).
    packets.append(udp_at(1080, rtp(6, 1000 + 54 * PCMU_TICKS, marker=True)))
    packets.append(udp_at(1100, rtp(7, 1000 + 55 * PCMU_TICKS)))
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert s.max_delta_ms == pytest.approx(FRAME_MS)
    assert s.markers == 1


def test_a_stream_marked_on_every_packet_has_no_measured_jitter(write_pcap):
    """Every step irregular (aiortc marks each audio packet): nothing was measured, which
    is said, not reported as a perfect 0 ms (tshark prints 0.000)."""
    packets = [udp_at(k * FRAME_MS + (3 if k % 2 else 0), rtp(k + 1, 1000 + k * PCMU_TICKS,
               marker=True)) for k in range(30)]  # fmt: skip
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert (s.packets, s.lost, s.markers, s.clock_hz) == (30, 0, 30, 8000)
    assert s.jitter_ms is None and s.max_jitter_ms is None
    assert "30 of 30 marked" in (s.jitter_unknown or "")


def test_dynamic_payload_type_has_unknown_jitter(write_pcap):
    packets = [udp_at(k * FRAME_MS, rtp(k, k * 960, pt=111)) for k in range(5)]
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert s.jitter_ms is None and s.clock_hz is None
    assert "dynamic payload type 111" in (s.jitter_unknown or "")
    assert s.max_delta_ms == pytest.approx(FRAME_MS)  # gaps need no clock


def test_rtpmap_gives_the_clock(write_pcap):
    packets = [udp_at(k * FRAME_MS, rtp(k, k * 960, pt=111)) for k in range(5)]
    tracker = RtpStreamTracker(1000, rtpmap={111: ("opus", 48000)})
    (s,) = only_stats(run(write_pcap, packets, {"max_flows": 1000}, tracker)).streams
    assert (s.codec, s.clock_hz) == ("opus", 48000)
    assert s.jitter_ms == pytest.approx(0.0, abs=1e-9)


def test_payload_type_change(write_pcap):
    packets = [*steady(3), udp_at(60, rtp(4, 1000 + 3 * PCMU_TICKS, pt=8))]
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert (s.payload_type, s.last_payload_type, s.payload_type_changed) == (0, 8, True)


def test_ssrc_change_mid_flow_and_both_directions(write_pcap):
    first = steady(5, ssrc=0xAAAA)
    second = steady(5, first_seq=900, ssrc=0xBBBB, start_ms=100)
    back = [udp_at(5 + k * FRAME_MS, rtp(k, k * PCMU_TICKS, 0xCCCC), B, A) for k in range(4)]
    stats = only_stats(run(write_pcap, sorted(first + second + back, key=lambda p: p.ts_ns)))
    by_ssrc = {s.ssrc: s for s in stats.streams}
    assert set(by_ssrc) == {0xAAAA, 0xBBBB, 0xCCCC}
    assert by_ssrc[0xAAAA].packets == 5 and by_ssrc[0xBBBB].first_seq == 900
    assert by_ssrc[0xCCCC].direction == 1 and by_ssrc[0xCCCC].src_port == B[1]


def test_too_many_ssrcs_are_counted_not_tracked(write_pcap):
    packets = []
    for n in range(K.MAX_SSRCS + 2):
        packets += steady(3, ssrc=0x100 + n, start_ms=n * 100)
    stats = only_stats(run(write_pcap, packets))
    assert len(stats.streams) == K.MAX_SSRCS
    assert stats.ssrc_overflow_packets == (6, 0)


def test_truncated_headers(write_pcap):
    packets = [
        udp_at(0, rtp(1, 0, csrc=(1, 2, 3), payload=b"")[:20]),  # CSRC list cut
        udp_at(20, rtp(2, 160, ext_words=10, payload=b"")[:24]),  # extension cut
        udp_at(40, rtp(3, 320, ext_words=1, payload=b"")[:14]),  # extension header cut
        udp_at(60, rtp(4, 480)[:11]),  # not even a fixed header: ignored
    ]
    stats = only_stats(run(write_pcap, packets))
    assert stats.streams == [] and stats.truncated_packets == (3, 0)


def test_header_with_csrc_and_extension_is_rtp(write_pcap):
    packets = [
        udp_at(k * FRAME_MS, rtp(k, k * PCMU_TICKS, csrc=(7, 8), ext_words=2)) for k in range(3)
    ]
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert s.packets == 3


def test_rtcp_is_counted_apart(write_pcap):
    # RFC 5761 §4: second octet 200..223 is RTCP (here an RR and an SR), not RTP.
    rr = bytes([0x81, 201, 0, 7]) + b"\0" * 28
    sr = bytes([0x80, 200, 0, 6]) + b"\0" * 24
    packets = [*steady(4), udp_at(100, rr), udp_at(120, sr, B, A)]
    stats = only_stats(run(write_pcap, packets))
    assert [s.packets for s in stats.streams] == [4]
    assert stats.rtcp_packets == (1, 1)


def test_non_rtp_flow_leaves_no_state(write_pcap):
    packets = [udp_at(k, bytes([0x12, 0x34]) + b"\0" * 30) for k in range(5)]
    results = run(write_pcap, packets)
    assert [s for _, s in results] == [None]


def test_slot_reused_inside_one_batch(write_pcap):
    # An idle gap ends the flow; the same 5-tuple then starts a new flow, which takes the
    # freed slot at once, in the same batch as the old flow's packets.
    old = steady(5, ssrc=0x1111)
    new = steady(7, first_seq=300, ssrc=0x2222, start_ms=5000)
    results = run(write_pcap, old + new, {"idle_timeout_s": 2})
    assert [flow["src2dst_packets"] for flow, _ in results] == [5, 7]
    streams = [stats.streams if stats else None for _, stats in results]
    assert [[(s.ssrc, s.packets, s.lost) for s in ss] for ss in streams if ss] == [
        [(0x1111, 5, 0)],
        [(0x2222, 7, 0)],
    ]


def test_slot_reuse_across_batches_and_evictions(write_pcap):
    # Three flows through a table of two slots, in batches of three packets.
    ends = [((f"10.0.0.{n}", 40000 + n), B) for n in range(1, 4)]
    packets = []
    for k in range(9):
        for n, (src, dst) in enumerate(ends):
            packets.append(udp_at(k * FRAME_MS + n, rtp(k, k * PCMU_TICKS, 0x500 + n), src, dst))
    results = run(write_pcap, packets, {"max_flows": 2, "batch_packets": 3})
    total = {}
    for flow, stats in results:
        assert stats is not None
        (s,) = stats.streams
        assert s.packets == flow["src2dst_packets"]
        assert s.ssrc == 0x500 + int(flow["src_ip"].rsplit(".", 1)[1]) - 1
        total[s.ssrc] = total.get(s.ssrc, 0) + s.packets
    assert total == {0x500: 9, 0x501: 9, 0x502: 9}


def test_pools_grow(write_pcap):
    # More flows than the initial pools hold: the kernel stops, the pools double.
    packets = []
    for n in range(1500):
        src = (f"10.1.{n // 250}.{n % 250 + 1}", 20000 + n)
        packets.append(udp_at(n * 0.01, rtp(1, 0, 0x900 + n), src, B))
    results = run(write_pcap, packets)
    assert sum(len(s.streams) for _, s in results if s) == 1500


def test_unclaimed_results_are_bounded(write_pcap):
    tracker = RtpStreamTracker(1000, max_pending_flows=3)
    packets = [udp_at(n, rtp(1, 0), (f"10.2.0.{n + 1}", 7000), B) for n in range(5)]
    pipeline = FlowPipeline(Config.from_overrides({"max_flows": 1000}), hooks=[tracker])
    list(pipeline.run([str(write_pcap(packets))]))
    assert tracker.dropped_results == 2
    assert len(tracker.streams_for(range(10))) == 3


def _two_streams(skip: range, silent: bool) -> list:  # type: ignore[type-arg]
    """Two concurrent PCMU streams; packets ``skip`` of the first are missing. With
    ``silent`` the second skips them too: nothing at all is captured meanwhile."""
    c = ("10.0.0.3", 40002)
    d = ("10.0.0.4", 50002)
    packets = []
    for k in range(150):
        ms = k * FRAME_MS
        if k not in skip:
            packets.append(udp_at(ms, rtp(k + 1, 1000 + k * PCMU_TICKS, 0x1)))
        if not (silent and k in skip):
            packets.append(udp_at(ms + 1, rtp(k + 1, 1000 + k * PCMU_TICKS, 0x2), c, d))
    return packets


def test_loss_during_a_capture_wide_silence_is_missing_from_the_capture(write_pcap):
    """RFC 3550 counts both as lost (so does tshark); voipscope also says which were
    missing while the capture saw nothing at all (CAPTURE_SILENCE_NS)."""
    results = run(write_pcap, _two_streams(range(50, 80), silent=True))
    streams = [s for _, stats in results if stats for s in stats.streams]
    assert [(s.lost, s.capture_gap_missing) for s in streams] == [(30, 30), (30, 30)]


def test_loss_of_one_stream_while_others_go_on_is_the_network(write_pcap):
    results = run(write_pcap, _two_streams(range(50, 80), silent=False))
    streams = {s.ssrc: s for _, stats in results if stats for s in stats.streams}
    assert (streams[0x1].lost, streams[0x1].capture_gap_missing) == (30, 0)
    assert (streams[0x2].lost, streams[0x2].capture_gap_missing) == (0, 0)


def channel_data(inner: bytes, channel: int = 0x4001, pad: bool = False) -> bytes:
    """TURN ChannelData (RFC 8656 §12.4), padded to 4 bytes or not (over UDP both occur)."""
    out = struct.pack("!HH", channel, len(inner)) + inner
    return out + b"\0" * (-len(inner) % 4 if pad else 0)


@pytest.mark.parametrize("pad", [False, True])
def test_rtp_relayed_inside_turn_channel_data(write_pcap, pad):
    """Media through a TURN relay keeps its RTP header in the clear after the 4-byte
    ChannelData header: the stream is measured as if it came straight."""
    packets = [
        udp_at(k * FRAME_MS + (5 if k == 20 else 0),
               channel_data(rtp(k + 1, 1000 + k * PCMU_TICKS, payload=b"\xff" * 161), pad=pad))
        for k in range(50) if k != 30
    ]  # fmt: skip
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert (s.ssrc, s.payload_type, s.packets, s.lost) == (0x1234, 0, 49, 1)
    assert s.max_delta_ms == pytest.approx(2 * FRAME_MS)
    assert s.jitter_ms > 0


def test_channel_data_with_a_length_past_the_datagram_is_not_read(write_pcap):
    bad = [udp_at(k * FRAME_MS, struct.pack("!HH", 0x4001, 400) + rtp(k + 1, k * 160))
           for k in range(20)]  # fmt: skip
    assert all(s is None or not s.streams for _, s in run(write_pcap, bad))


def data_indication(inner: bytes, kind: int = 0x0017) -> bytes:
    """A TURN Data (or Send, 0x0016) indication (RFC 8656 §11): XOR-PEER-ADDRESS, then
    DATA with the datagram, padded to 4 bytes (RFC 8489 §14)."""
    peer = struct.pack("!HHBBH4s", 0x0012, 8, 0, 1, 0x1234, bytes(4))
    data = struct.pack("!HH", 0x0013, len(inner)) + inner + b"\0" * (-len(inner) % 4)
    body = peer + data
    return struct.pack("!HHI12s", kind, len(body), 0x2112A442, bytes(12)) + body


def test_rtp_relayed_inside_turn_send_and_data_indications(write_pcap):
    out = [udp_at(k * FRAME_MS, data_indication(rtp(k + 1, k * 160), 0x0016)) for k in range(20)]
    back = [udp_at(k * FRAME_MS + 1, data_indication(rtp(k + 1, k * 160, ssrc=0x99)), B, A)
            for k in range(20)]  # fmt: skip
    streams = only_stats(run(write_pcap, sorted(out + back, key=lambda p: p.ts_ns))).streams
    assert sorted((s.ssrc, s.packets, s.lost) for s in streams) == [(0x99, 20, 0), (0x1234, 20, 0)]
