"""Audio for the tone-exfiltration tests: data encoded as tones, music, DTMF digits.

The encoder is the scheme of issue 7 written independently of the decoder: one tone per
half-byte from 16 fixed frequencies (the C major scale C4..D6, equal temperament with
A4 = 440 Hz, ISO 16), 1/8 s per symbol, 8 kHz 16-bit audio, high nibble first. Each
symbol starts at phase 0 (a naive encoder: the waveform jumps at symbol edges).
"""

from __future__ import annotations

import numpy as np

RATE_HZ = 8000
SYMBOL_S = 0.125
A4_HZ = 440.0
# Semitones from A4 of C4 D4 E4 F4 G4 A4 B4 C5 D5 E5 F5 G5 A5 B5 C6 D6.
C_MAJOR_C4_D6_SEMITONES = (-9, -7, -5, -4, -2, 0, 2, 3, 5, 7, 8, 10, 12, 14, 15, 17)
ALPHABET_HZ = tuple(A4_HZ * 2 ** (s / 12) for s in C_MAJOR_C4_D6_SEMITONES)
AMPLITUDE = 8000.0  # -12 dBov: loud and clear, no clipping in G.711
DTMF_HZ = {  # ITU-T Q.23
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip


def nibbles(data: bytes, high_first: bool = True) -> list[int]:
    out = []
    for byte in data:
        pair = (byte >> 4, byte & 0x0F)
        out.extend(pair if high_first else pair[::-1])
    return out


def encode_tones(
    data: bytes,
    symbol_s: float = SYMBOL_S,
    rate_hz: int = RATE_HZ,
    alphabet_hz: tuple[float, ...] = ALPHABET_HZ,
    lead_s: float = 0.0,
) -> np.ndarray:
    """Float samples in 16-bit scale: ``lead_s`` of quiet line noise, then one tone per
    half-byte of ``data`` for ``symbol_s`` each."""
    per_symbol = round(symbol_s * rate_hz)
    t = np.arange(per_symbol) / rate_hz
    parts = [np.random.default_rng(7).normal(0, 8, round(lead_s * rate_hz))]
    for nibble in nibbles(data):
        parts.append(AMPLITUDE * np.sin(2 * np.pi * alphabet_hz[nibble] * t))
    return np.concatenate(parts)


def music(seconds: float, rate_hz: int = RATE_HZ, seed: int = 3) -> np.ndarray:
    """A stand-in for music on hold: a melody over chords, each note with harmonics
    (1, 1/2, 1/3, 1/4), vibrato (5.5 Hz, ±0.6 %) and a decaying envelope; quarter notes
    at 100 beats a minute on the C major scale, a chord change every bar."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    out = np.zeros_like(t)
    beat_s = 0.6

    def note(hz: float, start: float, length: float, gain: float) -> None:
        at = (t >= start) & (t < start + length)
        u = t[at] - start
        # f(u) = hz·(1 + 0.006·sin(2π·5.5·u)), integrated
        phase = 2 * np.pi * hz * u - hz * 0.006 / 5.5 * np.cos(2 * np.pi * 5.5 * u)
        envelope = np.exp(-u * 1.5) * np.minimum(1.0, u / 0.02)
        voice = sum(np.sin(h * phase) / h for h in (1, 2, 3, 4))
        out[at] += gain * envelope * voice

    chords = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)]  # I IV V I, semitones from C4
    for bar in range(int(seconds / (4 * beat_s)) + 1):
        for s in chords[bar % len(chords)]:
            note(261.63 * 2 ** (s / 12) / 2, bar * 4 * beat_s, 4 * beat_s, 1500.0)
        for beat in range(4):
            s = int(rng.choice(C_MAJOR_C4_D6_SEMITONES)) + 9
            note(261.63 * 2 ** (s / 12), (bar * 4 + beat) * beat_s, beat_s, 3000.0)
    return out


def dtmf(digits: str, rate_hz: int = RATE_HZ, on_s: float = 0.1, off_s: float = 0.1) -> np.ndarray:
    """In-band DTMF key presses (each tone at -16 dBov, no twist)."""
    t = np.arange(round(on_s * rate_hz)) / rate_hz
    gap = np.zeros(round(off_s * rate_hz))
    parts = []
    for d in digits:
        low, high = DTMF_HZ[d]
        parts += [5000 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)), gap]
    return np.concatenate(parts)
