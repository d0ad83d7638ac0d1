"""Jitter of dynamic payload types (RFC 3551 §3): the kernel runs RFC 3550 A.8 once per
candidate clock; the clock the SDP names (or the stream's own timestamps prove) picks one.
Checked against A.8 written out plainly (rtp_support.a8_reference)."""

from __future__ import annotations

import random

import pytest

from tests.unit.quality.rtp_support import a8_reference, only_stats, rtp, run, udp_at_us
from voipscope.quality import clock_candidates as CC
from voipscope.quality import rtp_kernel as K
from voipscope.quality.clock_candidates import ClockCandidates, resolve
from voipscope.quality.rtp_streams import MediaStream, RtpStreamTracker

OPUS_PT = 111
OPUS_FRAME_TICKS = 960  # 20 ms at 48 kHz (RFC 7587 §4.1: the clock is always 48000)
VIDEO_PT = 96
VIDEO_FRAME_TICKS = 3000  # 30 frames/s at 90 kHz (RFC 6184 §8.2.1)


def opus(count: int, seed: int = 1, spread_us: int = 8000) -> tuple[list[int], list[int]]:
    """Arrivals (µs) and RTP timestamps of an Opus stream: one frame per 20 ms, each late
    by 0..spread_us at random (in order)."""
    rng = random.Random(seed)
    arrivals = [k * 20_000 + rng.randrange(spread_us) for k in range(count)]
    return arrivals, [5000 + k * OPUS_FRAME_TICKS for k in range(count)]


def packets_of(arrivals: list[int], stamps: list[int], pt: int) -> list:  # type: ignore[type-arg]
    return [
        udp_at_us(t, rtp(k + 1, ts, pt=pt, payload=b"\x55" * 80))
        for k, (t, ts) in enumerate(zip(arrivals, stamps, strict=True))
    ]


def only_stream(write_pcap, packets, tracker=None) -> MediaStream:  # type: ignore[no-untyped-def]
    (s,) = only_stats(run(write_pcap, packets, {"max_flows": 1000}, tracker)).streams
    return s


def test_opus_jitter_at_48khz_is_a8_with_the_right_clock(write_pcap) -> None:  # type: ignore[no-untyped-def]
    arrivals, stamps = opus(200)
    s = only_stream(write_pcap, packets_of(arrivals, stamps, OPUS_PT))
    # The record alone does not know the clock: jitter stays unknown, with the reason ...
    assert s.jitter_ms is None and s.clock_hz is None
    assert "dynamic payload type 111" in (s.jitter_unknown or "")
    # ... but carries A.8 under every candidate clock, the right one among them.
    c = s.clock_candidates
    assert c is not None and c.payload_type == OPUS_PT
    assert c.clocks_hz == K.CANDIDATE_CLOCKS_HZ
    last, mean, top = a8_reference(arrivals, stamps, 48000)
    figures = c.figures(48000)
    assert figures is not None
    assert figures["jitter_last_ms"] == pytest.approx(last, rel=1e-9)
    assert figures["jitter_ms"] == pytest.approx(mean, rel=1e-9)
    assert figures["mean_jitter_ms"] == pytest.approx(mean, rel=1e-9)
    assert figures["max_jitter_ms"] == pytest.approx(top, rel=1e-9)
    assert figures["jitter_ts_units"] == pytest.approx(last * 48, rel=1e-9)
    assert figures["clock_rate_hz"] == 48000 and figures["jitter_unknown"] is None
    # A wrong clock reads 960 ticks as 120 ms (8 kHz): a 100 ms error on every packet.
    wrong = c.figures(8000)
    assert wrong is not None and wrong["jitter_ms"] > 30 * mean
    assert c.figures(22050) is None  # not a candidate


def test_candidates_equal_the_known_clock_path(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """With the rtpmap given up front the kernel's single-clock path runs: same figures."""
    arrivals, stamps = opus(120, seed=7)
    packets = packets_of(arrivals, stamps, OPUS_PT)
    dynamic = only_stream(write_pcap, packets).clock_candidates
    assert dynamic is not None
    known = only_stream(write_pcap, packets, RtpStreamTracker(1000, rtpmap={111: ("opus", 48000)}))
    assert known.clock_candidates is None and known.clock_hz == 48000
    figures = dynamic.figures(48000)
    assert figures is not None
    assert figures["jitter_ms"] == pytest.approx(known.jitter_ms, rel=1e-12)
    assert figures["max_jitter_ms"] == pytest.approx(known.max_jitter_ms, rel=1e-12)
    assert figures["jitter_last_ms"] == pytest.approx(known.jitter_last_ms, rel=1e-12)


def test_video_at_90khz(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """H.264-like: 30 frames/s, three packets per frame with the frame's timestamp, 1 ms
    apart; each frame late by 0..10 ms."""
    rng = random.Random(3)
    arrivals, stamps = [], []
    for f in range(90):
        late = rng.randrange(10_000)
        for p in range(3):
            arrivals.append(f * 100_000 // 3 + late + p * 1000)
            stamps.append(f * VIDEO_FRAME_TICKS)
    s = only_stream(write_pcap, packets_of(arrivals, stamps, VIDEO_PT))
    assert s.clock_candidates is not None and s.jitter_ms is None
    last, mean, top = a8_reference(arrivals, stamps, 90000)
    figures = s.clock_candidates.figures(90000)
    assert figures is not None
    assert figures["jitter_last_ms"] == pytest.approx(last, rel=1e-9)
    assert figures["jitter_ms"] == pytest.approx(mean, rel=1e-9)
    assert figures["max_jitter_ms"] == pytest.approx(top, rel=1e-9)
    # Three seconds of 90 kHz timestamps: the stream's own clock is plain.
    assert s.clock_candidates.inferred_clock_hz() == 90000


def test_static_payload_types_carry_no_candidates(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """PCMU with RFC 4733 events (dynamic PT 101): the table clock wins, as before."""
    packets = [udp_at_us(k * 20_000, rtp(k, k * 160)) for k in range(10)]
    packets.append(udp_at_us(200_500, rtp(10, 1600, pt=101, payload=b"\x05\x0a\x00\xa0")))
    s = only_stream(write_pcap, packets)
    assert s.clock_hz == 8000 and s.jitter_ms is not None and s.clock_candidates is None


def test_a_telephone_event_does_not_join_the_opus_estimators(write_pcap) -> None:  # type: ignore[no-untyped-def]
    arrivals, stamps = opus(60, seed=5)
    packets = packets_of(arrivals, stamps, OPUS_PT)
    # Three RFC 4733 packets (PT 126) of one event, timestamp fixed at its start.
    event = [udp_at_us(arrivals[30] + 1000 + r * 100, rtp(500 + r, stamps[30], pt=126,
                                                          payload=b"\x01\x0a\x00\xa0"))
             for r in range(3)]  # fmt: skip
    with_event = only_stream(write_pcap, sorted([*packets, *event], key=lambda p: p.ts_ns))
    assert with_event.clock_candidates is not None
    assert with_event.clock_candidates.payload_type == OPUS_PT


# -- choosing the clock ------------------------------------------------------------------


def stream_dict(s: MediaStream) -> dict:  # type: ignore[type-arg]
    return {name: getattr(s, name) for name in MediaStream.__slots__}


def test_resolve_by_the_sdp_rtpmap(write_pcap) -> None:  # type: ignore[no-untyped-def]
    arrivals, stamps = opus(40)  # too short to infer anything: only the SDP can tell
    s = stream_dict(only_stream(write_pcap, packets_of(arrivals, stamps, OPUS_PT)))
    assert resolve(s, {}) == {}
    got = resolve(s, {111: "opus/48000/2"})
    _, mean, top = a8_reference(arrivals, stamps, 48000)
    assert got["clock_source"] == CC.CLOCK_FROM_SDP and got["clock_rate_hz"] == 48000
    assert got["jitter_ms"] == pytest.approx(mean, rel=1e-9)
    assert got["max_jitter_ms"] == pytest.approx(top, rel=1e-9)
    assert got["jitter_unknown"] is None
    # A clock no candidate covers: known (RTCP can use it), measured jitter is not.
    odd = resolve(s, {111: "L16/22050/1"})
    assert odd["clock_rate_hz"] == 22050 and "22050" in odd["jitter_unknown"]
    assert "jitter_ms" not in odd
    event = resolve(s, {111: "telephone-event/8000"})
    assert "do not measure time" in event["jitter_unknown"] and "jitter_ms" not in event


def test_clock_inferred_from_a_long_regular_stream(write_pcap) -> None:  # type: ignore[no-untyped-def]
    arrivals, stamps = opus(200)  # 4 s
    s = stream_dict(only_stream(write_pcap, packets_of(arrivals, stamps, OPUS_PT)))
    got = resolve(s, {})
    assert got["clock_source"] == CC.CLOCK_INFERRED and got["clock_rate_hz"] == 48000
    assert got["jitter_ms"] == pytest.approx(a8_reference(arrivals, stamps, 48000)[1])


def test_no_inference_from_short_streams_or_timestamps_that_stop(write_pcap) -> None:  # type: ignore[no-untyped-def]
    short = stream_dict(only_stream(write_pcap, packets_of(*opus(60), OPUS_PT)))  # 1.2 s
    assert resolve(short, {}) == {}
    # 2 s of speech, 1 s of silence in which the sender's timestamps stood still (no
    # marker bit either), 2 s of speech: ticks per second fits no clock.
    arrivals, stamps = opus(200)
    arrivals = arrivals[:100] + [t + 1_000_000 for t in arrivals[100:]]
    stalled = stream_dict(only_stream(write_pcap, packets_of(arrivals, stamps, OPUS_PT)))
    candidates = stalled["clock_candidates"]
    assert candidates.inferred_clock_hz() is None
    assert resolve(stalled, {}) == {}


def test_both_witnesses_must_agree() -> None:
    """Ticks per second says 48 kHz, but 44.1 kHz fits the packets best: no clock."""
    clocks = K.CANDIDATE_CLOCKS_HZ
    means = tuple(1.0 if c == 44100 else 5.0 for c in clocks)
    c = ClockCandidates(OPUS_PT, clocks, means, means, means, 500, 48000 * 10, 10.0)
    assert c.inferred_clock_hz() is None
    agreed = ClockCandidates(OPUS_PT, clocks, means, means, means, 500, 44100 * 10, 10.0)
    assert agreed.inferred_clock_hz() == 44100
    off = ClockCandidates(OPUS_PT, clocks, means, means, means, 500, 45500 * 10, 10.0)
    assert off.inferred_clock_hz() is None  # 3 % from 44.1 kHz: not within tolerance
