"""Opus packets read without a decoder (activity.opus_toc) against libopus itself, called
through ctypes: durations and frame boundaries as libopus's own parser has them, on
packets its encoder and repacketizer make (every mode, 2.5-60 ms frames, codes 0-3,
padding, mono and stereo) and on mangled ones; and the SILK voice-activity flags as the
conversation meter's evidence on a stream with background noise, where sizes show
nothing. Skipped where libopus is not installed (Debian: libopus0)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.activity.opus_lib import (
    LIBOPUS,
    SET_BITRATE,
    SET_FORCE_CHANNELS,
    SET_SIGNAL,
    SIGNAL_MUSIC,
    SIGNAL_VOICE,
    Opus,
)
from voipscope.activity import opus_toc as OT
from voipscope.activity import talk_spurts as T

pytestmark = pytest.mark.skipif(LIBOPUS is None, reason="needs libopus (apt libopus0)")

RATE_HZ = 48_000
SCHEDULE = [(0.60, 2.10), (3.00, 3.70), (5.20, 8.00)]  # seconds of speech
DURATION_S = 9.5
TOLERANCE_S = 0.100
SAMPLES = np.zeros(480)


def speechlike(t: np.ndarray, harmonics: int) -> np.ndarray:
    """Voiced sound: a 140 Hz harmonic stack under a 4 Hz syllable envelope, ~-20 dBFS."""
    wave = sum(np.sin(2 * np.pi * 140 * k * t + k) / k for k in range(1, harmonics + 1))
    return 6000.0 * (0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2) * wave


def audio(noise_dbfs: float, harmonics: int = 20, seed: int = 1) -> np.ndarray:
    """The schedule's speech over white noise. 20 harmonics (to 2.8 kHz) is what libopus
    codes in SILK at voice rates; 80 (to 11 kHz) it takes for music at some rates (CELT)."""
    t = np.arange(int(DURATION_S * RATE_HZ)) / RATE_HZ
    speaking = np.zeros(t.size, bool)
    for s, e in SCHEDULE:
        speaking |= (t >= s) & (t < e)
    noise = np.random.default_rng(seed).normal(0, 32768 * 10 ** (noise_dbfs / 20), t.size)
    return np.clip(np.where(speaking, speechlike(t, harmonics), 0) + noise, -32768, 32767)


def our_flags(packet: bytes, offsets: list[tuple[int, int]], stereo: bool) -> int:
    """What the flags must be, read at the frames libopus finds (RFC 6716 §4.2.3)."""
    config = packet[0] >> 3
    if config >= OT.FIRST_CELT_CONFIG:
        return OT.NO_FLAGS
    n = max(1, OT.FRAME_SAMPLES[config] // 960)
    flags = OT.NO_FLAGS
    for at, size in offsets:
        if size == 0:
            continue
        b0 = packet[at]
        voice = (b0 >> (8 - n)) != 0 or (stereo and (b0 >> (7 - 2 * n)) & ((1 << n) - 1) != 0)
        flags = max(flags, int(voice))
    return flags


def check(opus: Opus, packet: bytes) -> int:
    samples, offsets = opus.parse(packet)
    buf = np.frombuffer(b"\xff" + packet + b"\xff", np.uint8)  # our reader stays inside
    duration, flags = OT.packet(buf, 1, len(packet))
    if samples < 0:
        assert duration == 0, packet.hex()
        return 0
    assert duration == samples, packet.hex()
    assert flags == our_flags(packet, offsets, bool(packet[0] & 0x04)), packet.hex()
    return 1


@pytest.mark.parametrize("channels", [1, 2])
def test_packets_read_as_libopus_reads_them(channels: int) -> None:
    sound = audio(-40.0, harmonics=80)  # wideband: hybrid and CELT frames too
    checked = set()
    corpus = []
    for bitrate, frame_ms, music in [(8_000, 20, False), (12_000, 60, False),
                                     (24_000, 40, False), (24_000, 20, False), (32_000, 10, False),
                                     (64_000, 20, False), (128_000, 2.5, True),
                                     (96_000, 5, True), (510_000, 20, True)]:  # fmt: skip
        opus = Opus(channels)  # a fresh encoder: libopus holds its bandwidth decisions
        if channels == 2:
            opus.ctl(SET_FORCE_CHANNELS, 2)
        opus.ctl(SET_BITRATE, bitrate)
        if music:
            opus.ctl(SET_SIGNAL, SIGNAL_MUSIC)
        per = int(frame_ms * 48)
        packets = []
        for k in range(0, 60):
            frame = sound[int(0.6 * RATE_HZ) + k * per : int(0.6 * RATE_HZ) + (k + 1) * per]
            packets.append(opus.encode(np.repeat(frame, channels)))
        corpus += packets
        for p in packets:
            check(opus, p)
            checked.add((p[0] >> 3, p[0] & 3))
        # Several frames in one packet: code 1 (equal sizes), 2, 3 (CBR or VBR), padded.
        for k in range(0, 12, 3):
            group = packets[k : k + (2 if frame_ms >= 40 else 3)]
            if sum(OT.FRAME_SAMPLES[p[0] >> 3] for p in group) > OT.MAX_PACKET_SAMPLES:
                group = group[:2]
            group = [p for p in group if p[0] & 0xFC == group[0][0] & 0xFC]  # one config
            joined = opus.repacketize(group)
            corpus.append(joined)
            check(opus, joined)
            check(opus, opus.pad(joined, len(joined) + 300))
            checked.add((joined[0] >> 3, joined[0] & 3))
    modes = {("silk" if c < 12 else "hybrid" if c < 16 else "celt") for c, _ in checked}
    assert modes == {"silk", "hybrid", "celt"} and {code for _, code in checked} >= {0, 2, 3}
    # Mangled packets (the header bytes most often): libopus refuses or reads them, and
    # so do we, the same way.
    rng = np.random.default_rng(channels)
    readable = 0
    for _ in range(3000):
        p = bytearray(corpus[int(rng.integers(len(corpus)))])
        for _ in range(int(rng.integers(1, 4))):
            within = min(4, len(p)) if rng.random() < 0.7 else len(p)
            at = int(rng.integers(within))
            p[at] = int(rng.integers(256))
        p = p[: int(rng.integers(1, len(p) + 1))] if rng.random() < 0.5 else p
        readable += check(opus, bytes(p))
    assert 300 < readable < 2700  # both outcomes were exercised


def test_random_bytes_never_read_outside_the_packet() -> None:
    rng = np.random.default_rng(9)
    opus = Opus()
    for _ in range(5000):
        packet = rng.integers(0, 256, int(rng.integers(1, 80))).astype(np.uint8).tobytes()
        check(opus, packet)


def spurts_of(packets: list[bytes], ptime_s: float = 0.020) -> tuple[list, str]:
    state = T.new_state(1)
    ev_row, ev_start, ev_end = (np.zeros(64, np.int64) for _ in range(3))
    n = 0
    step = round(ptime_s * RATE_HZ)
    for k, payload in enumerate(packets):
        ts_ns = round(k * ptime_s * 1e9)
        buf = np.frombuffer(payload, np.uint8)
        rtp_ts = (1000 + k * step) & 0xFFFFFFFF
        voice = T.is_voice(state, 0, buf, 0, len(payload), 111, ts_ns, rtp_ts, SAMPLES)
        n = T.account_packet(state, 0, ts_ns, voice, k == 0, ev_row, ev_start, ev_end, n)
    found = [(ev_start[k] / 1e9, ev_end[k] / 1e9) for k in range(n)]
    tail = T.close_spurt(state, 0)
    if tail:
        found.append((tail[0] / 1e9, tail[1] / 1e9))
    return found, T.method_name(state, 0)


def encoded(sound: np.ndarray, bitrate: int, frame_ms: int = 20, **ctl: int) -> list[bytes]:
    opus = Opus()
    opus.ctl(SET_BITRATE, bitrate)
    for request, value in ctl.items():
        opus.ctl(int(request.removeprefix("r")), value)
    per = frame_ms * 48
    return [opus.encode(sound[k : k + per]) for k in range(0, len(sound) - per + 1, per)]


@pytest.mark.parametrize(("noise_dbfs", "bitrate", "frame_ms"),
                         [(-45, 24_000, 20), (-35, 24_000, 20), (-45, 12_000, 20),
                          (-45, 32_000, 20), (-45, 16_000, 60), (-60, 24_000, 20)])  # fmt: skip
def test_talk_spurts_from_the_encoders_own_flags(
    noise_dbfs: int, bitrate: int, frame_ms: int
) -> None:
    """Speech over steady background noise: the frames keep one size group (40-60 B for
    noise against 50-90 B for speech at 24 kbit/s), so sizes would call it all talk; the
    SILK flags follow the speech, within 100 ms of it at both ends."""
    # libopus's own speech/music analysis takes a steady harmonic stack for music and
    # codes it in CELT (no flags) unless told it is voice, as VoIP senders may.
    packets = encoded(audio(noise_dbfs), bitrate, frame_ms, r4024=SIGNAL_VOICE)
    found, method = spurts_of(packets, frame_ms / 1000)
    assert method == "Opus voice-activity flags (SILK)"
    assert len(found) == len(SCHEDULE), found
    for (s, e), (ts, te) in zip(found, SCHEDULE, strict=True):
        assert abs(s - ts) <= TOLERANCE_S and abs(e - te) <= TOLERANCE_S + frame_ms / 1000, (
            found, SCHEDULE)  # fmt: skip


def test_without_flags_the_sizes_judge() -> None:
    """CELT frames (music mode, or rates libopus codes without SILK) carry no flag: the
    stream is judged as before, by sizes and gaps."""
    packets = encoded(audio(-45), 64_000, 20, r4024=SIGNAL_MUSIC)
    assert all(p[0] >> 3 >= OT.FIRST_CELT_CONFIG for p in packets)
    _, method = spurts_of(packets)
    assert method != "Opus voice-activity flags (SILK)"


def test_encrypted_payloads_are_never_read_as_flags() -> None:
    """SRTP: the payload is random to anyone without the key. Its first byte matches a
    20 ms step one packet in ~5; the stream is never taken for Opus."""
    rng = np.random.default_rng(11)
    packets = [rng.integers(0, 256, int(rng.integers(40, 90))).astype(np.uint8).tobytes()
               for _ in range(3000)]  # fmt: skip
    _, method = spurts_of(packets)
    assert method == "packet gaps (DTX)"
