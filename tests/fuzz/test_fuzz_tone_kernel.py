"""Hypothesis over the tone analysis (activity.tones inside the RTP kernel) and the
tone decoder: random G.711/L16 payloads of random lengths, lying offsets, random runs;
and the transits the same kernel keeps (activity.timing) with their judgement.

Nothing may raise, statistics stay consistent, and with NUMBA_BOUNDSCHECK=1 (see
conftest.py) no read may leave its array.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import pcapbuild as pb
from tests.fuzz.support import FAST, LONG, drive_tracker
from tests.unit.activity.g711 import encode
from voipscope.activity import timing as TM
from voipscope.activity import tones as TN
from voipscope.config import FlowConfig
from voipscope.detect.alerts import AlertBook
from voipscope.detect.timing_channel import TimingChannelDetector
from voipscope.detect.tone_exfil import ToneExfilDetector, decode_tone_runs
from voipscope.quality.rtp_streams import RtpStreamTracker

RTPMAP = {96: ("L16", 16000), 97: ("L16", 44100)}  # dynamic L16, read only with an rtpmap
TONE_PTS = [0, 8, 10, 11, 96, 97, 13]


@st.composite
def media_packet(draw: st.DrawFn) -> bytes:
    """An RTP header of a readable payload type (or CN) and a random or tonal payload."""
    pt = draw(st.sampled_from(TONE_PTS))
    head = struct.pack(
        "!BBHII",
        0x80,
        pt | (0x80 if draw(st.booleans()) else 0),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.sampled_from([1, 2])),
    )
    if draw(st.booleans()):
        body = draw(st.binary(max_size=1200))
    else:  # a loud tone, so runs open and close
        hz = draw(st.floats(50, 3900))
        n = draw(st.integers(0, 700))
        wave = 8000 * np.sin(2 * np.pi * hz * np.arange(n) / 8000)
        if pt in (10, 11, 96, 97):
            body = wave.astype(">i2").tobytes()
        else:
            body = encode(wave, "ulaw" if pt == 0 else "alaw")
    return head + body


packets = st.lists(
    st.tuples(
        media_packet(),
        st.sampled_from([(4000, 5000), (4002, 5002)]),
        st.integers(0, 3_000_000_000),  # ns since the previous packet (idle timeouts too)
    ),
    max_size=50,
)


def check_tones(pkts: list[tuple[bytes, tuple[int, int], int]], batch: int) -> None:
    frames, stamps, ts = [], [], 1_700_000_000_000_000_000
    for data, (sport, dport), gap in pkts:
        frames.append((1, pb.ethernet(pb.ipv4(pb.udp(data, sport, dport), "10.0.0.1", "10.0.0.2"))))
        ts += gap
        stamps.append(ts)
    config = FlowConfig(idle_timeout_s=1.0, max_flows=2)
    tracker = RtpStreamTracker(config.max_flows, rtpmap=RTPMAP)
    ended_ids = drive_tracker(tracker, config, frames, stamps, batch)
    detector = ToneExfilDetector()
    for flow_id in ended_ids:
        stats = tracker.pop(flow_id)
        if stats is None:
            continue
        records = [s.to_dict() for s in stats.streams]
        for s in records:
            timing = s["timing"]
            if timing is not None:
                assert timing["packets"] <= min(s["packets"], TM.TIMING_PACKETS)
                assert timing["levels_ms"] == sorted(timing["levels_ms"])
                assert isinstance(timing["coded"], bool)
            tones = s["tones"]
            if tones is not None:
                assert 0 <= tones["tone_frames"] <= tones["loud_frames"] <= tones["frames"]
                assert tones["frames"] <= s["packets"]
                assert 0.0 <= tones["mean_flatness"] <= 1.0
            for start_s, end_s, hz, count, share in s["tone_runs"]:
                assert end_s > start_s and hz >= TN.MIN_TONE_HZ
                assert count >= TN.MIN_RUN_FRAMES and 0.0 <= share <= 1.0
        detector.check_call({"streams": records})


@FAST
@given(pkts=packets, batch=st.integers(1, 8))
def test_random_media_through_the_tone_kernel(pkts, batch):
    check_tones(pkts, batch)


@pytest.mark.slow
@LONG
@given(pkts=packets, batch=st.integers(1, 8))
def test_random_media_through_the_tone_kernel_fuzz_long(pkts, batch):
    check_tones(pkts, batch)


@FAST
@given(
    buf=st.binary(min_size=1, max_size=64),
    start=st.integers(-100, 100),
    length=st.integers(0, 200),
    pt=st.sampled_from([*TONE_PTS, 127]),
    room=st.integers(0, 2 * TN.MIN_FRAME_SAMPLES),
)
def test_frame_samples_never_reads_outside(buf, start, length, pt, room):
    """Offsets and lengths past the buffer are refused; a short scratch is not overrun."""
    codecs = TN.codec_table(RTPMAP)
    x = np.zeros(room)
    n, span = TN.frame_samples(np.frombuffer(buf, np.uint8), start, length, codecs, pt, x)
    assert 0 <= n <= room and span >= 0
    if n:
        TN.analyse_frame(x, n, codecs[pt, TN.TC_RATE_HZ])


runs = st.lists(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=6),
    max_size=40,
)


@FAST
@given(runs=runs)
def test_decoder_takes_any_runs(runs):
    decoded = decode_tone_runs(runs)
    if decoded is not None:
        assert len(decoded.data) * 2 + (decoded.trailing_nibble is not None) == len(decoded.symbols)
    ToneExfilDetector().check_call(
        {"streams": [{"tones": {"loud_frames": 10_000, "tone_share": 1.0}, "tone_runs": runs}]}
    )


@FAST
@given(
    transits=st.lists(
        st.one_of(st.just(int(TM.EMPTY)), st.integers(-32767, 32767), st.integers(-40, 400)),
        max_size=TM.TIMING_PACKETS,
    )
)
def test_timing_analysis_takes_any_transits(transits):
    row = TM.new_state(1)[0]
    row[: len(transits)] = np.asarray(transits, np.int64).astype(np.int16)
    out = TM.analyse(row)
    if out is not None:
        assert out["packets"] == int((row != TM.EMPTY).sum())
        assert len(out["levels_ms"]) == len(out["level_shares"]) <= TM.MAX_LEVELS
        assert sum(out["level_shares"]) <= 1.0 + 1e-9
        record = {"ssrc": "0x1", "timing": out}
        TimingChannelDetector(AlertBook()).on_call({"call_id": "x", "streams": [record]})
