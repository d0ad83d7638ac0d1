"""What a fixed de-jitter buffer would discard (quality.rtp_kernel S_JB_*), and the MOS
with those discards (quality.stream_mos)."""

from __future__ import annotations

import pytest

from tests.unit.quality.rtp_support import PCMU_TICKS, only_stats, rtp, run, udp_at_us
from voipscope.quality.rtp_streams import MediaStream
from voipscope.quality.stream_mos import stream_scores

FRAME_US = 20_000


def sent(count: int, delay_us, pt: int = 0, ts_of=None):  # type: ignore[no-untyped-def]
    """A PCMU stream sent every 20 ms, packet k arriving ``delay_us(k)`` after it was
    sent; captured in arrival order."""
    packets = [(k * FRAME_US + delay_us(k), k) for k in range(count)]
    return [
        udp_at_us(at, rtp(k + 1, (ts_of or (lambda k: 1000 + k * PCMU_TICKS))(k), pt=pt))
        for at, k in sorted(packets)
    ]


def stream_of(write_pcap, packets) -> MediaStream:  # type: ignore[no-untyped-def]
    (s,) = only_stats(run(write_pcap, packets)).streams
    return s


def test_late_packets_per_buffer_size(write_pcap):
    spikes = {10: 60_000, 20: 250_000, 30: 40_000, 40: 199_000, 41: 201_000}
    s = stream_of(write_pcap, sent(100, lambda k: 5_000 + spikes.get(k, 0)))
    # Late for 50 ms: 60, 250, 199 and 201 ms behind the others; for 200 ms: 250 and 201.
    assert (s.jb50_late, s.jb200_late) == (4, 2)
    assert (s.lost, s.packets) == (0, 100)  # all of them arrived: none lost on the wire


def test_the_buffer_follows_a_lasting_change_of_delay(write_pcap):
    """From packet 250 (sent at 5 s) on, the path is 80 ms longer: a fixed 50 ms buffer
    drops what comes until it has resynced to the new delay. The reference is the least
    transit of this and the previous 10 s window (of arrival since the first packet), so
    packets arriving before 20 s are late: 250 to 995 (995 arrives at 19.98 s)."""
    s = stream_of(write_pcap, sent(2000, lambda k: 80_000 if k >= 250 else 0))
    assert (s.jb50_late, s.jb200_late) == (746, 0)


def test_a_new_timestamp_base_starts_the_buffer_over(write_pcap):
    """A sender that restarts its RTP clock (here 10 s back) is not 10 s late."""
    ts = lambda k: 200_000 + k * PCMU_TICKS if k < 100 else 200_000 + (k - 600) * PCMU_TICKS  # noqa: E731
    s = stream_of(write_pcap, sent(300, lambda k: 0, ts_of=ts))
    assert (s.jb50_late, s.jb200_late) == (0, 0)


def test_duplicates_and_unknown_clocks_are_not_judged(write_pcap):
    packets = sent(20, lambda k: 0)
    late_copy = udp_at_us(25 * FRAME_US, rtp(5, 1000 + 4 * PCMU_TICKS))  # 400 ms after
    s = stream_of(write_pcap, [*packets, late_copy])
    assert (s.duplicates, s.jb50_late) == (1, 0)  # a copy is discarded, not late
    dynamic = stream_of(write_pcap, sent(20, lambda k: 0, pt=96))
    assert dynamic.jb50_late is None and dynamic.jb200_late is None  # no clock: no judge


def test_scores_with_the_buffers_discards() -> None:
    base = {"packets": 1000, "lost": 0, "loss_pct": 0.0, "loss_runs": 0}
    calm = stream_scores({**base, "jb50_late": 0, "jb200_late": 0}, "PCMU")
    assert calm["mos"] == calm["mos_jb50"] == calm["mos_jb200"] == pytest.approx(4.41, abs=0.01)
    jittery = stream_scores({**base, "jb50_late": 50, "jb200_late": 0}, "PCMU")
    assert jittery["mos_jb50"] < jittery["mos_jb200"] == jittery["mos"]
    # 5 % discarded scores as 5 % lost (random).
    lossy = stream_scores({**base, "lost": 50, "packets": 950, "loss_runs": 48}, "PCMU")
    assert jittery["mos_jb50"] == pytest.approx(lossy["mos"], abs=0.02)
    unknown = stream_scores({**base, "jb50_late": None, "jb200_late": None}, "PCMU")
    assert unknown["mos_jb50"] is None and unknown["mos"] is not None
    no_codec = stream_scores({**base, "jb50_late": 0, "jb200_late": 0}, 96)
    assert no_codec["mos"] is None and no_codec["mos_jb50"] is None
