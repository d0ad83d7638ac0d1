"""Tones in RTP audio: per frame, the dominant frequency and how tone-like the frame is;
per stream, compact statistics and *runs* of one steady tone (the symbols of
tone-encoded data), decided packet by packet in numba beside the talk spurts.

What a frame (one packet's audio) costs: its samples are decoded (G.711 table lookup, L16
big-endian words averaged down towards 8 kHz, or G.722's lower sub-band, which the
talk-spurt judgement has just decoded into the same buffer), then two passes over them:

1. autocorrelations r0, r1, r2. The frame's power says silent or not. The dominant
   frequency comes from the three-sample identity of a sinusoid,
   x[n-1] + x[n+1] = 2·cos(w)·x[n], solved by least squares over the frame (exact for a
   pure tone, a power-weighted mean frequency otherwise). The order-2 linear-prediction
   error ratio (Levinson on r0..r2) stands in for spectral flatness: by Szegő's theorem
   the error of the best predictor over the signal power *is* the spectral flatness; a
   2-tap predictor is its cheap upper bound (≈0 for a tone, ≈1 for white noise, speech
   in between).
2. a Goertzel filter at that frequency (its coefficient is the 2·cos(w) just found):
   the tone's share of the frame energy, 2·|X(w)|² / (N·Σx²), ≈1 for a pure tone.

Frames that are not one tone but loud are also tried against the eight DTMF
frequencies (ITU-T Q.23) with a Goertzel bank: in-band digits.

A tone frame extends the stream's open run when its frequency is within
``RUN_TOLERANCE`` of the run's and it follows within ``MAX_RUN_GAP_S`` of RTP time (lost
packets do not break a symbol); otherwise the run is handed out (as an event, by the
caller) and a new one opens. Runs are placed by RTP timestamps, not arrival times, so
loss and jitter do not move them. A run is (start, end) in extended RTP timestamp units,
mean frequency, frames and mean tone share; the detector (detect.tone_exfil) decodes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numba import njit

from voipscope.activity.talk_spurts import ALAW_LINEAR, FULL_SCALE_SQUARED, ULAW_LINEAR

# -- which payloads carry samples the kernel can read (RFC 3551 §4.5.14, §4.5.11, table 4)
CODEC_NONE = 0
CODEC_ULAW = 1
CODEC_ALAW = 2
CODEC_L16 = 3  # big-endian two's complement 16-bit, channels interleaved
# G.722's lower sub-band at 8 kHz, one sample per byte (activity.g722_lowband), decoded by
# talk_spurts.is_voice into the frame buffer before frame_samples is asked.
CODEC_G722 = 4
PT_PCMU = 0
PT_PCMA = 8
PT_G722 = 9  # RFC 3551 §4.5.2: clock 8000 (one tick per byte), sampled at 16 kHz
PT_L16_STEREO = 10  # RFC 3551 table 4: L16, 44.1 kHz, 2 channels
PT_L16_MONO = 11  # L16, 44.1 kHz, 1 channel
G711_HZ = 8000
L16_STATIC_HZ = 44100
PT_COUNT = 128
# Codec table columns (float64, one row per payload type)
TC_CODEC = 0
TC_CHANNELS = 1
TC_STEP = 2  # input samples averaged into one analysed sample (L16 down to ~8 kHz)
TC_RATE_HZ = 3  # the analysed samples' rate
TC_CLOCK_HZ = 4  # RTP clock: timestamps count input samples (RFC 3551 §4.5.11)
TC_LEN = 5
ANALYSIS_HZ = 8000  # tones of interest (DTMF, 262-1175 Hz scales) sit far below 4 kHz

# -- frame analysis
MAX_FRAME_SAMPLES = 480  # 60 ms at 8 kHz: a longer packet is judged by its first 60 ms
MIN_FRAME_SAMPLES = 64  # 8 ms: fewer samples hold too few cycles of a 262 Hz tone
# Below this mean power (dBov) a frame is silence: line noise and digital silence sit
# near -70..-60 dBov, speech and tones near -30..-10 dBov (as talk_spurts judges voice).
SILENT_DBOV = -50.0
SILENT_POWER = FULL_SCALE_SQUARED * 10.0 ** (SILENT_DBOV / 10.0)
# A frame is one tone when that tone holds this share of its energy. A pure tone in
# G.711 reaches ~0.99; a tone with its octave harmonic at -6 dB 0.8; a frame straddling
# two tones, speech vowels and chords well below.
TONE_MIN_SHARE = 0.9
# Tones below this are not symbols: a frame at 0 Hz is DC (a stuck sample), and mains hum
# and its harmonics sit at 50/60 Hz.
MIN_TONE_HZ = 100.0
NOISY_MIN_FLATNESS = 0.5  # order-2 flatness of white noise ~1, unvoiced speech ~0.3-0.6
# In-band DTMF (ITU-T Q.23 frequencies; keypad rows x columns, Q.23 figure 1).
DTMF_LOW_HZ = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
# RFC 4733 §3.2 event codes of the keypad: rows 1 2 3 A / 4 5 6 B / 7 8 9 C / * 0 # D.
DTMF_EVENT_OF_KEY = (1, 2, 3, 12, 4, 5, 6, 13, 7, 8, 9, 14, 10, 0, 11, 15)
DTMF_MIN_PAIR_SHARE = 0.7  # the two tones hold this much of the frame's energy
DTMF_MIN_DOMINANCE = 4.0  # each tone 6 dB above the next strongest of its group
DTMF_MAX_TWIST = 6.3  # 8 dB between the two tones (Q.24 allows 4-8 dB)

# -- runs of one tone
RUN_TOLERANCE = 0.02  # relative; a semitone is 5.9 %, a whole tone 12 %
MAX_RUN_GAP_S = 0.07  # up to three lost 20 ms packets inside one run
MIN_RUN_FRAMES = 2  # a single tone frame is handed out as a count, not a run

# Per-stream state columns (float64), one row per stream.
T_FRAMES = 0  # analysed frames
T_LOUD = 1  # frames above SILENT_DBOV
T_TONE = 2  # loud frames of one tone (share >= TONE_MIN_SHARE)
T_NOISY = 3  # loud frames with flatness >= NOISY_MIN_FLATNESS
T_FLAT_SUM = 4  # over loud frames
T_SHARE_SUM = 5  # tone share over loud frames
T_DTMF_FRAMES = 6  # loud frames holding a DTMF pair
T_DTMF_DIGITS = 7  # DTMF pairs after a frame without the same pair: key presses
T_DTMF_LAST = 8  # event code of the last frame's pair, -1 none
T_RUN_START = 9  # extended RTP timestamp where the open run starts, NaN: none open
T_RUN_END = 10  # and where it ends (its last frame's timestamp + samples)
T_RUN_HZ = 11  # mean frequency of the open run
T_RUN_FRAMES = 12
T_RUN_SHARE_SUM = 13
T_SINGLE = 14  # tone frames that stayed alone (runs shorter than MIN_RUN_FRAMES)
T_CLOCK_HZ = 15  # RTP clock of the analysed payload type
T_SAMPLE_HZ = 16  # the analysed samples' rate (8000, or 7350 for L16 at 44.1 kHz)
T_LEN = 17

# What account_frame asks the caller to emit.
EMIT_NONE = 0
EMIT_RUN = 1  # (start ts, end ts, centi-Hz, frames, share per mille)
EMIT_DTMF = 2  # (event code, 0, 0, 0, 0)


def codec_table(rtpmap: Mapping[int, tuple[str, int]] | None = None) -> np.ndarray:
    """Per payload type: codec, channels, decimation, analysis rate, RTP clock.

    Static types from RFC 3551 table 4; a dynamic type is read only when SDP named it L16
    (its rtpmap's clock is used; channels are taken as 1, as RtpMap carries none) or
    G.711. G.722 only as the static type 9 (the talk-spurt judgement decodes it)."""
    table = np.zeros((PT_COUNT, TC_LEN), np.float64)

    def put(pt: int, codec: int, channels: int, clock: int) -> None:
        step = max(1, round(clock / ANALYSIS_HZ))
        table[pt] = (codec, channels, step, clock / step, clock)

    put(PT_PCMU, CODEC_ULAW, 1, G711_HZ)
    put(PT_PCMA, CODEC_ALAW, 1, G711_HZ)
    put(PT_G722, CODEC_G722, 1, G711_HZ)
    put(PT_L16_STEREO, CODEC_L16, 2, L16_STATIC_HZ)
    put(PT_L16_MONO, CODEC_L16, 1, L16_STATIC_HZ)
    for pt, (encoding, clock) in (rtpmap or {}).items():
        if 0 <= pt < PT_COUNT:
            if encoding.upper() == "L16" and clock > 0:
                put(pt, CODEC_L16, 1, int(clock))
            elif encoding.upper() in ("PCMU", "PCMA") and clock == G711_HZ:
                put(pt, CODEC_ULAW if encoding.upper() == "PCMU" else CODEC_ALAW, 1, G711_HZ)
            elif pt == PT_G722 and encoding.upper() == "G722":
                pass  # the static type as RFC 3551 has it (decoded by its number only)
            elif pt >= 96 or table[pt, TC_CODEC] != CODEC_NONE:
                table[pt] = 0.0  # SDP says this number is something else
    return table


def new_state(rows: int) -> np.ndarray:
    state = np.empty((rows, T_LEN), np.float64)
    for row in range(rows):
        reset_row(state, row)  # one definition of a fresh row, the kernel's own
    return state


@njit(cache=True, nogil=True)
def reset_row(state: np.ndarray, row: int) -> None:  # pragma: no cover - numba
    for k in range(T_LEN):
        state[row, k] = 0.0
    state[row, T_DTMF_LAST] = -1.0
    state[row, T_RUN_START] = np.nan


@njit(cache=True, nogil=True)
def frame_samples(
    buf: np.ndarray, start: int, length: int, codecs: np.ndarray, pt: int, x: np.ndarray
) -> tuple[int, int]:  # pragma: no cover - numba
    """Decode the payload ``buf[start:start + length]`` of type ``pt`` into ``x``.
    Returns (analysed samples, RTP timestamp units the payload spans); (0, 0) when the
    type is not readable. The caller promises the payload lies inside ``buf``."""
    codec = int(codecs[pt, TC_CODEC])
    if codec == CODEC_NONE or start < 0 or start + length > buf.shape[0]:
        return 0, 0
    if codec == CODEC_G722:
        return min(length, MAX_FRAME_SAMPLES, x.shape[0]), length  # already in ``x``
    if codec in (CODEC_ULAW, CODEC_ALAW):
        table = ULAW_LINEAR if codec == CODEC_ULAW else ALAW_LINEAR
        n = min(length, MAX_FRAME_SAMPLES, x.shape[0])
        for k in range(n):
            x[k] = table[buf[start + k]]
        return n, length
    channels = max(1, int(codecs[pt, TC_CHANNELS]))
    step = max(1, int(codecs[pt, TC_STEP]))
    stride = 2 * channels  # one input sample of every channel
    frames_in = length // stride
    n = min(frames_in // step, MAX_FRAME_SAMPLES, x.shape[0])
    # Block means of the first channel: a crude low-pass before keeping one in ``step``
    # (its first null sits at the new rate, so tones below 4 kHz pass nearly untouched).
    for k in range(n):
        total = 0.0
        for j in range(step):
            at = start + (k * step + j) * stride
            v = (np.int64(buf[at]) << 8) | np.int64(buf[at + 1])
            total += v - 65536 if v >= 32768 else v
        x[k] = total / step
    return n, frames_in


@njit(cache=True, nogil=True)
def _goertzel_power(x: np.ndarray, n: int, coeff: float) -> float:  # pragma: no cover
    """|X(w)|² of x[:n] at the frequency whose 2·cos(w) is ``coeff`` (Goertzel 1958)."""
    s1 = 0.0
    s2 = 0.0
    for k in range(n):
        s0 = x[k] + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


@njit(cache=True, nogil=True)
def analyse_frame(
    x: np.ndarray, n: int, rate_hz: float
) -> tuple[float, float, float, float, int]:  # pragma: no cover - numba
    """(mean power, dominant Hz, tone share, flatness, DTMF event code or -1) of x[:n].

    Power is in squared 16-bit units; silent frames (below SILENT_POWER) and frames
    shorter than MIN_FRAME_SAMPLES return zeros after the power."""
    if n < MIN_FRAME_SAMPLES:
        return 0.0, 0.0, 0.0, 0.0, -1
    r0 = x[0] * x[0] + x[1] * x[1]
    r1 = x[1] * x[0]
    r2 = 0.0
    for k in range(2, n):
        v = x[k]
        r0 += v * v
        r1 += v * x[k - 1]
        r2 += v * x[k - 2]
    power = r0 / n
    if power < SILENT_POWER:
        return power, 0.0, 0.0, 0.0, -1
    # Least squares on x[n-1] + x[n+1] = 2c·x[n] over n = 1..N-2 (the inner samples).
    num = 2.0 * r1 - x[0] * x[1] - x[n - 1] * x[n - 2]
    den = 2.0 * (r0 - x[0] * x[0] - x[n - 1] * x[n - 1])
    c = num / den if den > 0.0 else 0.0
    c = min(1.0, max(-1.0, c))
    hz = math.acos(c) * rate_hz / (2.0 * math.pi)
    share = min(1.0, 2.0 * _goertzel_power(x, n, 2.0 * c) / (n * r0))
    # Order-2 prediction error ratio (Levinson-Durbin on normalised r1, r2).
    rho1 = r1 / r0
    rho2 = r2 / r0
    e1 = 1.0 - rho1 * rho1
    flatness = 0.0
    if e1 > 0.0:
        phi = (rho2 - rho1 * rho1) / e1
        flatness = min(1.0, max(0.0, e1 * (1.0 - phi * phi)))
    dtmf = -1
    if share < TONE_MIN_SHARE:
        dtmf = _dtmf_pair(x, n, r0, rate_hz)
    return power, hz, share, flatness, dtmf


@njit(cache=True, nogil=True)
def _dtmf_pair(x: np.ndarray, n: int, r0: float, rate_hz: float) -> int:  # pragma: no cover
    """The RFC 4733 event code of the DTMF pair that dominates x[:n], or -1."""
    low = np.empty(4)
    high = np.empty(4)
    for j in range(4):
        low[j] = _goertzel_power(x, n, 2.0 * math.cos(2.0 * math.pi * DTMF_LOW_HZ[j] / rate_hz))
        high[j] = _goertzel_power(x, n, 2.0 * math.cos(2.0 * math.pi * DTMF_HIGH_HZ[j] / rate_hz))
    lo = int(np.argmax(low))
    hi = int(np.argmax(high))
    scale = 2.0 / (n * r0)  # a tone's share of the frame energy, as in analyse_frame
    a = low[lo] * scale
    b = high[hi] * scale
    if a + b < DTMF_MIN_PAIR_SHARE or a <= 0.0 or b <= 0.0:
        return -1
    if a > DTMF_MAX_TWIST * b or b > DTMF_MAX_TWIST * a:
        return -1
    for j in range(4):
        if j != lo and low[j] * DTMF_MIN_DOMINANCE > low[lo]:
            return -1
        if j != hi and high[j] * DTMF_MIN_DOMINANCE > high[hi]:
            return -1
    return DTMF_EVENT_OF_KEY[4 * lo + hi]


@njit(cache=True, nogil=True)
def account_frame(
    state: np.ndarray,
    row: int,
    ts: int,
    span: int,
    power: float,
    hz: float,
    share: float,
    flatness: float,
    dtmf: int,
    clock_hz: float,
    rate_hz: float,
) -> tuple[int, int, int, int, int, int]:  # pragma: no cover - numba
    """Fold one analysed frame (RTP timestamp ``ts``, ``span`` timestamp units) into the
    stream's statistics and open run. Returns (EMIT_*, a, b, c, d, e): at most one thing
    for the caller to hand out (a finished run, else a new in-band key press)."""
    state[row, T_FRAMES] += 1.0
    state[row, T_CLOCK_HZ] = clock_hz
    state[row, T_SAMPLE_HZ] = rate_hz
    loud = power >= SILENT_POWER
    tone = loud and share >= TONE_MIN_SHARE and hz >= MIN_TONE_HZ
    if loud:
        state[row, T_LOUD] += 1.0
        state[row, T_FLAT_SUM] += flatness
        state[row, T_SHARE_SUM] += share
        if flatness >= NOISY_MIN_FLATNESS:
            state[row, T_NOISY] += 1.0
        if tone:
            state[row, T_TONE] += 1.0
    key_press = False
    if dtmf >= 0 and loud:
        state[row, T_DTMF_FRAMES] += 1.0
        if state[row, T_DTMF_LAST] != dtmf:
            state[row, T_DTMF_DIGITS] += 1.0
            key_press = True
    state[row, T_DTMF_LAST] = dtmf if loud else -1
    # -- runs
    if tone and not math.isnan(state[row, T_RUN_START]):
        run_hz = state[row, T_RUN_HZ]
        gap = ts - state[row, T_RUN_END]
        if abs(hz - run_hz) <= RUN_TOLERANCE * run_hz and 0 <= gap <= MAX_RUN_GAP_S * clock_hz:
            frames = state[row, T_RUN_FRAMES] + 1.0
            state[row, T_RUN_HZ] = run_hz + (hz - run_hz) / frames
            state[row, T_RUN_FRAMES] = frames
            state[row, T_RUN_SHARE_SUM] += share
            state[row, T_RUN_END] = ts + span
            return EMIT_NONE, 0, 0, 0, 0, 0
    out = close_run(state, row)
    if tone:
        state[row, T_RUN_START] = ts
        state[row, T_RUN_END] = ts + span
        state[row, T_RUN_HZ] = hz
        state[row, T_RUN_FRAMES] = 1.0
        state[row, T_RUN_SHARE_SUM] = share
    if out[0] == EMIT_NONE and key_press:
        return EMIT_DTMF, dtmf, 0, 0, 0, 0
    return out


@njit(cache=True, nogil=True)
def close_run(
    state: np.ndarray, row: int
) -> tuple[int, int, int, int, int, int]:  # pragma: no cover
    """End the open run (if any); (EMIT_RUN, ...) when it is long enough to hand out."""
    start = state[row, T_RUN_START]
    if math.isnan(start):
        return EMIT_NONE, 0, 0, 0, 0, 0
    state[row, T_RUN_START] = np.nan
    frames = state[row, T_RUN_FRAMES]
    if frames < MIN_RUN_FRAMES:
        state[row, T_SINGLE] += frames
        return EMIT_NONE, 0, 0, 0, 0, 0
    return (
        EMIT_RUN,
        int(start),
        int(state[row, T_RUN_END]),
        round(state[row, T_RUN_HZ] * 100.0),
        int(frames),
        round(state[row, T_RUN_SHARE_SUM] / frames * 1000.0),
    )


def run_record(start: int, end: int, centi_hz: int, frames: int, share_pm: int,
               origin: int, clock_hz: float) -> list[float]:  # fmt: skip
    """A run as the stream record lists it: [start s, end s, Hz, frames, tone share],
    times in media seconds since the stream's first RTP timestamp ``origin``."""
    clock = clock_hz or 1.0
    return [
        round((start - origin) / clock, 6),
        round((end - origin) / clock, 6),
        centi_hz / 100.0,
        float(frames),
        share_pm / 1000.0,
    ]


def summary(state: np.ndarray, row: int) -> dict[str, float | int] | None:
    """The stream's tone statistics for its record (None: no frame was analysed)."""
    s = state[row].tolist()
    frames = int(s[T_FRAMES])
    if frames == 0:
        return None
    loud = int(s[T_LOUD])
    per_loud = 1.0 / loud if loud else 0.0
    return {
        "frames": frames,
        "loud_frames": loud,
        "tone_frames": int(s[T_TONE]),
        "tone_share": round(s[T_TONE] * per_loud, 4),  # of loud frames
        "mean_tone_energy_share": round(s[T_SHARE_SUM] * per_loud, 4),
        "mean_flatness": round(s[T_FLAT_SUM] * per_loud, 4),
        "noisy_share": round(s[T_NOISY] * per_loud, 4),
        "inband_dtmf_frames": int(s[T_DTMF_FRAMES]),
        "inband_dtmf_digits": int(s[T_DTMF_DIGITS]),
        "single_tone_frames": int(s[T_SINGLE]),
        "sample_rate_hz": float(s[T_SAMPLE_HZ]),
    }
