"""Runs of lost packets and the longest gap of a stream (quality.rtp_kernel), and the
burst ratio G.107 takes from them (quality.emodel.measured_burst_ratio)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from voipscope.quality.emodel import measured_burst_ratio, mos


def _arrivals(order: list[int]) -> list:  # type: ignore[type-arg]
    """Packets with sequence numbers ``order`` (1-based, as sent), one per 20 ms of arrival."""
    return [
        udp_at(k * FRAME_MS, rtp(seq, 1000 + (seq - 1) * PCMU_TICKS)) for k, seq in enumerate(order)
    ]


def _with_the_other_direction(packets: list, span_ms: float) -> list:  # type: ignore[type-arg]
    """``packets`` and a steady stream the other way over ``span_ms`` (so the capture is
    never silent: a gap of one stream is no capture gap), in capture order."""
    back = [
        udp_at(k * FRAME_MS + 7, rtp(k + 1, k * PCMU_TICKS, ssrc=0xBACC), src=B, dst=A)
        for k in range(int(span_ms // FRAME_MS))
    ]
    return sorted([*packets, *back], key=lambda p: p.ts_ns)


def _the_stream(write_pcap, packets):  # type: ignore[no-untyped-def]
    """The 0x1234 stream of the capture."""
    streams = [s for _, st in run(write_pcap, packets) if st for s in st.streams]
    (s,) = [s for s in streams if s.ssrc == 0x1234]
    return s


def _runs_of_missing(order: list[int]) -> int:
    """Maximal runs of numbers between the lowest and highest that never arrived."""
    got = set(order)
    missing = [n not in got for n in range(min(got), max(got) + 1)]
    return sum(1 for k, m in enumerate(missing) if m and (k == 0 or not missing[k - 1]))


def test_each_hole_is_one_run(write_pcap):
    packets = [p for k, p in enumerate(steady(30)) if k not in (5, 6, 12, 20, 21, 22)]
    (s,) = only_stats(run(write_pcap, packets)).streams
    assert (s.lost, s.loss_runs) == (6, 3)
    # The longest gap is the three-packet hole: from packet 20 (seq 20) to packet 24.
    assert s.longest_gap_ms == pytest.approx(4 * FRAME_MS)
    assert s.longest_gap_start == pytest.approx(packets[19 - 3].ts_ns / 1e9)
    assert s.outages == 0  # 80 ms is a dropout the loss figures describe, no outage


@pytest.mark.parametrize(
    ("order", "runs"),
    [
        ([1, 2, 4, 3, 5], 0),  # a late packet alone in its hole: the run ends
        ([1, 2, 6, 4, 7], 2),  # one in the middle of a run of three: two runs of one
        ([1, 2, 6, 3, 7], 1),  # at a run's edge: it only shortens
        ([5, 6, 2, 7], 1),  # before the first number: 3 and 4 are missing
        ([5, 6, 4, 7], 0),  # just before the first: nothing missing
        ([1, 2, 3, 3, 5], 1),  # a duplicate changes nothing
    ],
)
def test_late_packets_mend_the_runs(write_pcap, order, runs):
    (s,) = only_stats(run(write_pcap, _arrivals(order))).streams
    assert s.loss_runs == runs == _runs_of_missing(order)


# write_pcap names a new file per call: sharing it across examples is safe.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_runs_match_the_received_set_under_loss_and_reordering(write_pcap, data):
    """Any loss pattern and any reordering within the kernel's 64-number window: the
    count equals the runs of numbers missing from what arrived."""
    count = data.draw(st.integers(3, 60))
    kept = [n for n in range(1, count + 1) if data.draw(st.booleans()) or n in (1, count)]
    order = data.draw(st.permutations(kept))
    (s,) = only_stats(run(write_pcap, _arrivals(list(order)))).streams
    assert s.lost == max(order) - min(order) + 1 - len(order)
    assert s.loss_runs == _runs_of_missing(list(order))


def test_a_pause_of_the_sender_skips_no_numbers(write_pcap):
    """Silence suppression: two seconds without packets, the numbers go on by one."""
    packets = [
        *steady(10),
        *[udp_at(2000 + k * FRAME_MS, rtp(11 + k, 50_000 + k * PCMU_TICKS, marker=k == 0))
          for k in range(10)],
    ]  # fmt: skip
    s = _the_stream(write_pcap, _with_the_other_direction(packets, 2500))
    assert (s.lost, s.loss_runs, s.outages) == (0, 0, 0)
    assert s.longest_gap_ms == pytest.approx(2000 - 9 * FRAME_MS)
    assert s.longest_gap_start == pytest.approx(packets[9].ts_ns / 1e9)


@pytest.mark.parametrize(
    ("gap_slots", "skipped", "outage"),
    [
        (60, 59, True),  # 1.2 s, every number sent: an outage
        (60, 12, True),  # 1.2 s with 12 numbers: 100 ms packets (the slowest admitted)
        (60, 11, False),  # fewer: a pause that ended with some loss
        (45, 44, False),  # 0.9 s: under a second, what the loss figures describe
    ],
)
def test_which_gaps_are_outages(write_pcap, gap_slots, skipped, outage):
    after = 10 + skipped + 1  # the sequence number of the packet after the gap
    packets = [
        *steady(10),
        *[udp_at((9 + gap_slots + k) * FRAME_MS, rtp(after + k, 90_000 + k * PCMU_TICKS))
          for k in range(10)],
    ]  # fmt: skip
    s = _the_stream(write_pcap, _with_the_other_direction(packets, (30 + gap_slots) * FRAME_MS))
    assert s.outages == int(outage)
    if outage:
        assert s.longest_outage_ms == pytest.approx(gap_slots * FRAME_MS)
        assert s.longest_outage_start == pytest.approx(packets[9].ts_ns / 1e9)
        assert (s.longest_outage_lost, s.outage_s) == (skipped, pytest.approx(gap_slots / 50))
    else:
        assert (s.longest_outage_ms, s.longest_outage_start, s.outage_s) == (0.0, None, 0.0)


def test_a_capture_gap_is_no_outage(write_pcap):
    """Nothing at all captured for 0.6 s (both streams stop): the capture's gap."""
    c, d = ("10.0.0.3", 40002), ("10.0.0.4", 50002)
    packets = []
    for k in range(200):
        if not 50 <= k < 110:
            packets.append(udp_at(k * FRAME_MS, rtp(k + 1, 1000 + k * PCMU_TICKS, 0x1)))
            packets.append(udp_at(k * FRAME_MS + 1, rtp(k + 1, 1000 + k * PCMU_TICKS, 0x2), c, d))
    streams = [s for _, st in run(write_pcap, packets) if st for s in st.streams]
    assert [(s.lost, s.capture_gap_missing, s.outages) for s in streams] == [(60, 60, 0)] * 2
    assert [s.loss_runs for s in streams] == [0, 0]  # not the network's either


def test_burst_ratio_is_one_for_random_loss_and_more_for_runs() -> None:
    # Markov form: p = runs / received, q = runs / lost, BurstR = 1 / (p + q).
    expected, lost, runs = 1000, 100, 90
    p, q = runs / (expected - lost), runs / lost
    assert measured_burst_ratio(lost, runs, expected) == pytest.approx(1 / (p + q))
    # Random loss at 10 % leaves runs of 1 / (1 - 0.1) on average: BurstR 1.
    assert measured_burst_ratio(100, 90, 1000) == pytest.approx(1.0)
    assert measured_burst_ratio(100, 20, 1000) == pytest.approx(4.5)
    assert measured_burst_ratio(0, 0, 1000) is None  # nothing lost: nothing to measure
    assert measured_burst_ratio(10, 11, 1000) is None  # more runs than losses: impossible
    assert measured_burst_ratio(-2, 0, 10) is None  # duplicates: no loss


def test_runs_cost_more_mos_than_random_loss_up_to_g107s_range() -> None:
    random_ = mos("PCMU", 5.0).mos
    bursty = mos("PCMU", 5.0, burst_ratio=4.0)
    beyond = mos("PCMU", 5.0, burst_ratio=145.0)
    assert random_ is not None and bursty.mos is not None and bursty.mos < random_
    # G.107 Table 3 admits BurstR up to 8: one long outage measures far above it.
    assert beyond.mos == mos("PCMU", 5.0, burst_ratio=8.0).mos
    assert any("above G.107's range" in a for a in beyond.assumptions)
    # Ie,eff never passes 95 ("nothing heard"): R stays near 0, not far below it.
    worst = mos("PCMU", 90.0, burst_ratio=8.0)
    assert worst.r_factor is not None and worst.r_factor > -5.0 and worst.mos == 1.0


def test_outages_are_counted_with_their_time(write_pcap):
    """Two dropouts with the numbers going on (76 and 101 arrival slots: 1.52 s and
    2.02 s) and a talk pause of 3 s with no number skipped: two outages, 3.54 s."""
    missing = set(range(20, 95)) | set(range(200, 300))
    packets = [p for k, p in enumerate(steady(400)) if k not in missing]
    pause = [
        udp_at(400 * FRAME_MS + 3000 + k * FRAME_MS, rtp(401 + k, 90_000 + k * PCMU_TICKS))
        for k in range(10)
    ]
    s = _the_stream(write_pcap, _with_the_other_direction([*packets, *pause], 11_500))
    assert (s.loss_runs, s.lost) == (2, 175)
    assert s.outages == 2 and s.outage_s == pytest.approx(1.52 + 2.02)
    assert (s.longest_outage_ms, s.longest_outage_lost) == (pytest.approx(2020.0), 100)
    # The longest gap is the pause, which is no outage: its numbers went on by one.
    assert s.longest_gap_ms == pytest.approx(3020.0)
