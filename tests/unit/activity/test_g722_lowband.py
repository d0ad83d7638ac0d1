"""The G.722 lower-band decoder against spandsp's G.722 codec (the one baresip and
Asterisk use), called through ctypes: the same bytes must give the same power, frame by
frame. Skipped where libspandsp is not installed (Debian: libspandsp2, which
baresip-core brings)."""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np
import pytest

from voipscope.activity import g722_lowband as G722

SPANDSP = ctypes.util.find_library("spandsp")
pytestmark = pytest.mark.skipif(SPANDSP is None, reason="needs libspandsp (apt libspandsp2)")

G722_SAMPLE_RATE_8000 = 0x0001  # spandsp: decode the lower band only, at 8 kHz
FRAME_BYTES = 160  # 20 ms
SAMPLES = np.zeros(FRAME_BYTES)


def spandsp() -> ctypes.CDLL:
    lib = ctypes.CDLL(SPANDSP)
    for name in ("g722_encode_init", "g722_decode_init"):
        getattr(lib, name).restype = ctypes.c_void_p
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    for name in ("g722_encode", "g722_decode"):
        getattr(lib, name).restype = ctypes.c_int
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_int]  # fmt: skip
    return lib


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """16 kHz: voiced bursts (a harmonic stack under a syllable envelope), pauses of
    faint noise, and one loud stretch that clips the predictor's range."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    voiced = sum(np.sin(2 * np.pi * 130 * k * t + k) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 0.7 * t), 0, None) ** 0.5
    audio = 9000 * envelope * voiced + rng.normal(0, 40, t.size)
    audio[len(audio) // 2 : len(audio) // 2 + 4000] *= 4
    return np.clip(audio, -32768, 32767).astype(np.int16)


def test_the_power_of_every_frame_is_spandsps() -> None:
    lib = spandsp()
    audio = speech_like(6.0, seed=1)
    encoder = lib.g722_encode_init(None, 64_000, 0)
    coded = np.zeros(len(audio) // 2, np.uint8)
    n = lib.g722_encode(encoder, coded.ctypes.data, audio.ctypes.data, len(audio))
    assert n == len(coded)
    decoder = lib.g722_decode_init(None, 64_000, G722_SAMPLE_RATE_8000)
    state = np.zeros((1, G722.G_LEN), np.float64)
    G722.reset(state, 0, 0)
    loud = 0
    for start in range(0, len(coded), FRAME_BYTES):
        frame = np.ascontiguousarray(coded[start : start + FRAME_BYTES])
        theirs = np.zeros(len(frame), np.int16)
        assert lib.g722_decode(decoder, theirs.ctypes.data, frame.ctypes.data, len(frame)) == len(
            frame
        )
        power = float(np.mean(theirs.astype(np.float64) ** 2)) / 32768.0**2
        expected = 10 * math.log10(power) if power > 0 else G722.SILENT_DBOV
        assert G722.energy_dbov(state, 0, 0, coded, start, len(frame), SAMPLES) == pytest.approx(
            expected, abs=1e-9
        ), start
        loud += expected > -30
    assert loud > 50  # the frames did carry speech-level sound


def test_silence_stays_silent_and_sound_comes_through() -> None:
    lib = spandsp()
    quiet = np.zeros(16_000, np.int16)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)).astype(np.int16)
    audio = np.concatenate([quiet, tone])
    encoder = lib.g722_encode_init(None, 64_000, 0)
    coded = np.zeros(len(audio) // 2, np.uint8)
    lib.g722_encode(encoder, coded.ctypes.data, audio.ctypes.data, len(audio))
    state = np.zeros((1, G722.G_LEN), np.float64)
    G722.reset(state, 0, 0)
    levels = [G722.energy_dbov(state, 0, 0, coded, k, FRAME_BYTES, SAMPLES)
              for k in range(0, len(coded), FRAME_BYTES)]  # fmt: skip
    # A 440 Hz sine at 8000 peak: -15.3 dBov in the lower band; silence far below.
    assert max(levels[:50]) < -60
    assert all(-17 < x < -14 for x in levels[55:]), levels[55:]


def test_tones_read_from_the_decoded_lower_band() -> None:
    """What the tone analysis sees of a G.722 call: the frames' samples, left by the
    talk-spurt judgement, give each tone's frequency (the tone-exfiltration alphabet,
    C4..D6, sits in the lower band)."""
    from voipscope.activity import talk_spurts as TS
    from voipscope.activity import tones as TN

    lib = spandsp()
    notes_hz = (261.63, 440.0, 1174.66)  # C4, A4, D6
    t = np.arange(12 * 320) / 16_000  # 240 ms of each at 16 kHz: 12 frames of 20 ms
    audio = np.concatenate([8000 * np.sin(2 * np.pi * hz * t) for hz in notes_hz])
    audio = audio.astype(np.int16)
    encoder = lib.g722_encode_init(None, 64_000, 0)
    coded = np.zeros(len(audio) // 2, np.uint8)
    lib.g722_encode(encoder, coded.ctypes.data, audio.ctypes.data, len(audio))
    codecs = TN.codec_table({9: ("G722", 8000)})  # as the SDP of a G.722 call names it
    state = TS.new_state(1)
    scratch = np.zeros(TN.MAX_FRAME_SAMPLES)
    heard = []
    for k, start in enumerate(range(0, len(coded) - FRAME_BYTES + 1, FRAME_BYTES)):
        TS.is_voice(state, 0, coded, start, FRAME_BYTES, 9, k * 20_000_000, k * 160, scratch)
        got, span = TN.frame_samples(coded, start, FRAME_BYTES, codecs, 9, scratch)
        assert (got, span) == (FRAME_BYTES, FRAME_BYTES)  # 20 ms: 160 ticks of 8 kHz
        _, hz, share, _, _ = TN.analyse_frame(scratch, got, codecs[9, TN.TC_RATE_HZ])
        heard.append((hz, share))
    per_note = len(heard) // len(notes_hz)
    for n, note_hz in enumerate(notes_hz):
        # The frames inside each note (not the one the predictor is still adapting on).
        for hz, share in heard[n * per_note + 2 : (n + 1) * per_note]:
            assert abs(hz - note_hz) < 0.01 * note_hz and share > 0.9, (note_hz, hz, share)
