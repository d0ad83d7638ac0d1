"""Talk spurts from G.711 energy, DTX gaps, VBR sizes and comfort noise, against a known
speech/silence schedule (found within 100 ms of the truth, as issue 5 asks)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.activity.g711 import encode
from voipscope.activity import talk_spurts as T
from voipscope.activity.conversation import conversation, overlap, total

FRAME_S = 0.020
RATE_HZ = 8000
SCHEDULE = [(0.50, 2.10), (3.00, 3.70), (5.20, 8.00), (9.10, 9.60)]  # seconds of speech
DURATION_S = 10.0
TOLERANCE_S = 0.100
SAMPLES = np.zeros(480)  # where a G.722 frame's samples go (for the tone analysis)


def speechlike(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Voiced sound: a 140 Hz harmonic stack with a 4 Hz syllable envelope, ~-20 dBov."""
    f0 = 140.0
    wave = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    return 6000.0 * envelope * wave + rng.normal(0, 30, t.size)


def speaking(t: float) -> bool:
    return any(s <= t < e for s, e in SCHEDULE)


def run(packets: list[tuple[float, bytes, int, bool]]) -> tuple[list[tuple[float, float]], str]:
    """(time s, payload, payload type, marker) -> spurts (s) and the method used."""
    state = T.new_state(1)
    ev_row = np.zeros(64, np.int64)
    ev_start = np.zeros(64, np.int64)
    ev_end = np.zeros(64, np.int64)
    n = 0
    for ts, payload, pt, marker in packets:
        buf = np.frombuffer(payload, np.uint8) if payload else np.zeros(1, np.uint8)
        voice = T.is_voice(state, 0, buf, 0, len(payload), pt, int(ts * 1e9), 0, SAMPLES)
        n = T.account_packet(state, 0, int(ts * 1e9), voice, marker, ev_row, ev_start, ev_end, n)
    spurts = [(ev_start[k] / 1e9, ev_end[k] / 1e9) for k in range(n)]
    tail = T.close_spurt(state, 0)
    if tail:
        spurts.append((tail[0] / 1e9, tail[1] / 1e9))
    return spurts, T.method_name(state, 0)


def assert_matches_schedule(spurts: list[tuple[float, float]]) -> None:
    assert len(spurts) == len(SCHEDULE), spurts
    for (s, e), (ts, te) in zip(spurts, SCHEDULE, strict=True):
        assert abs(s - ts) <= TOLERANCE_S and abs(e - te) <= TOLERANCE_S, (spurts, SCHEDULE)


@pytest.mark.parametrize(("law", "pt"), [("ulaw", 0), ("alaw", 8)])
def test_g711_without_dtx_from_payload_energy(law: str, pt: int) -> None:
    rng = np.random.default_rng(7)
    t = np.arange(int(DURATION_S * RATE_HZ)) / RATE_HZ
    audio = np.where([speaking(x) for x in t], speechlike(t, rng), rng.normal(0, 20, t.size))
    per = int(FRAME_S * RATE_HZ)
    packets = [
        (k * FRAME_S, encode(audio[k * per : (k + 1) * per], law), pt, k == 0)
        for k in range(int(DURATION_S / FRAME_S))
    ]
    spurts, method = run(packets)
    assert method == "payload energy (G.711)"
    assert_matches_schedule(spurts)


def test_dtx_gaps_and_marker_bits() -> None:
    payload = bytes(range(20)) * 2  # an opaque 40-byte frame (say G.729 inside SRTP)
    packets = []
    for s, e in SCHEDULE:
        n = round((e - s) / FRAME_S)
        packets += [(s + k * FRAME_S, payload, 18, k == 0) for k in range(n)]
    spurts, method = run(packets)
    assert method == "packet gaps (DTX)"
    assert_matches_schedule(spurts)


def test_vbr_sizes_and_comfort_noise() -> None:
    """Opus without DTX: a frame every 20 ms, small ones in the pauses."""
    rng = np.random.default_rng(3)
    packets = []
    for k in range(int(DURATION_S / FRAME_S)):
        ts = k * FRAME_S
        if speaking(ts):
            packets.append((ts, bytes(int(rng.integers(70, 110))), 111, False))
        elif k % 25 == 1:
            packets.append((ts, b"\x40", 13, False))  # comfort noise update
        else:
            packets.append((ts, bytes(int(rng.integers(8, 14))), 111, False))  # Opus silence
    spurts, method = run(packets)
    assert method == "packet sizes (VBR)"
    assert_matches_schedule(spurts)


def test_dtx_updates_are_no_speech() -> None:
    """Opus with DTX sends one frame per 400 ms in the pauses (RFC 7587 §3.1.3), of the
    size of a quiet frame or of a loud one: a lone packet is no talk spurt, also when the
    speech after it (marked, RFC 3551 §4.1) comes sooner than the hangover."""
    rng = np.random.default_rng(4)
    packets = []
    for k in range(int(DURATION_S / FRAME_S)):
        ts = k * FRAME_S
        if speaking(ts):
            onset = not speaking(ts - FRAME_S)
            packets.append((ts, bytes(int(rng.integers(70, 110))), 111, onset))
        elif k % 20 == 0:
            packets.append((ts, bytes(int(rng.integers(8, 110))), 111, False))
    spurts, _ = run(packets)
    assert_matches_schedule(spurts)


def test_a_ptime_change_is_no_pause() -> None:
    """WhatsApp: packets of 160 ms (a few hundred bytes) for a while, then of 20 ms
    (50-80 bytes); the sizes differ by the audio each carries, not by speech."""
    rng = np.random.default_rng(5)
    packets = [(k * 0.160, bytes(int(rng.integers(200, 480))), 120, False) for k in range(40)]
    packets += [(6.4 + k * FRAME_S, bytes(int(rng.integers(50, 80))), 120, False)
                for k in range(150)]  # fmt: skip
    spurts, _ = run(packets)
    assert spurts == [(0.0, pytest.approx(6.4 + 149 * FRAME_S + FRAME_S))]


def test_vbr_that_starts_with_speech_keeps_its_first_spurt() -> None:
    packets = [(k * FRAME_S, bytes(90 if k < 50 else 10), 111, False) for k in range(100)]
    spurts, _ = run(packets)
    assert spurts == [(0.0, pytest.approx(49 * FRAME_S + FRAME_S))]


def test_a_constant_stream_is_presence_only() -> None:
    packets = [(k * FRAME_S, bytes(33), 3, False) for k in range(100)]  # GSM, no DTX
    spurts, method = run(packets)
    assert method == "packet gaps (DTX)" and spurts == [(0.0, 99 * FRAME_S + FRAME_S)]


def test_conversation_shares() -> None:
    a = [(0.0, 4.0), (6.0, 8.0)]
    b = [(3.0, 7.0)]
    assert total(a) == 6.0 and overlap(a, b) == 2.0
    shape = conversation(a, b, 0.0, 10.0)
    assert shape == pytest.approx(
        {"a_talk_pct": 60.0, "b_talk_pct": 40.0, "double_talk_pct": 20.0, "silence_pct": 20.0}
    )
    assert conversation(a, b, 5.0, 5.0)["silence_pct"] == 0.0
