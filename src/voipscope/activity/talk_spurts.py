"""Who talks when: talk spurts of one RTP stream, decided packet by packet in numba.

A packet is *voice* or *silence* from what the wire shows, cheapest evidence first:
- comfort noise (RFC 3389, PT 13 and the old 19) and 1–2 byte payloads (Opus DTX
  frames, RFC 6716 §2.1.9 / RFC 7587 §3.1.3) are silence;
- G.711 without DTX sends a packet every 20 ms whether anyone talks or not, but decoding
  µ-law/A-law is a table lookup: the frame's energy in dBov against the stream's own noise
  floor says voice or not (ITU-T P.56's idea of an adaptive threshold, much simplified);
- variable-bit-rate codecs (Opus, also inside SRTP whose headers and sizes are clear)
  shrink their frames in silence: a payload well above the stream's small-frame floor is
  voice;
- anything else present is voice, and the silences are the gaps between packets
  (discontinuous transmission, RFC 3551 §4.1, with the marker bit on a spurt's first
  packet).

Spurts are assembled with a hangover: silence shorter than ``HANGOVER_NS`` inside speech
(stops between words) does not end a spurt. A spurt ends one frame after its last voice
packet. Events (stream row, start, end) go to caller-provided arrays, so the numba caller
needs no Python object per packet.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

PT_PCMU = 0  # RFC 3551 §6 table 4
PT_PCMA = 8
PT_CN = 13  # RFC 3389
PT_CN_OLD = 19
DTX_MAX_PAYLOAD_BYTES = 2  # Opus DTX / empty frames (RFC 7587 §3.1.3)
MIN_G711_BYTES = 40  # 5 ms of 8 kHz audio: less is too little to judge energy
FRAME_NS = 20_000_000  # a spurt ends one (typical, RFC 3551 §4.2) frame after its last voice
HANGOVER_NS = 300_000_000  # pauses between words shorter than this stay inside a spurt
# Voice must stand this far above the stream's noise floor, and above an absolute floor
# (digital silence and line noise sit near -70..-60 dBov, speech near -30..-15 dBov).
VOICE_OVER_NOISE_DB = 15.0
VOICE_MIN_DBOV = -50.0
NOISE_RISE_DB_PER_PACKET = 0.02  # the floor creeps up ~1 dB/s at 50 packets/s
# VBR: frames at least this much above the small-frame floor are voice, once the stream
# has shown that its sizes vary at all.
VBR_MIN_SPREAD_BYTES = 12
VBR_VOICE_FRACTION = 0.35
SILENT_DBOV = -100.0

# Methods, as stored per stream (the highest one used wins).
METHOD_PRESENCE = 0  # packets present = talk: silence only from DTX gaps
METHOD_SIZE = 1
METHOD_ENERGY = 2
METHOD_NAMES = ("packet gaps (DTX)", "packet sizes (VBR)", "payload energy (G.711)")

# Per-stream state columns (float64), one row per stream.
V_SPURT_START = 0  # ns, NaN outside a spurt
V_LAST_VOICE = 1  # ns of the last voice packet
V_NOISE_DB = 2  # energy floor (G.711), NaN until the first frame
V_SIZE_FLOOR = 3  # small-frame floor (bytes), NaN until the first packet
V_SIZE_PEAK = 4
V_METHOD = 5
V_VOICE_PACKETS = 6
V_SILENT_PACKETS = 7
V_RESTART = 8  # 1: a better method just began; the spurt opened on presence alone is void
V_LEN = 9


def _g711_tables() -> tuple[np.ndarray, np.ndarray]:
    """ITU-T G.711 expansion of every code to 16-bit linear (§2 µ-law, §3 A-law)."""
    ulaw = np.empty(256, np.float64)
    alaw = np.empty(256, np.float64)
    for code in range(256):
        u = ~code & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        ulaw[code] = (0x84 - t) if u & 0x80 else (t - 0x84)
        a = code ^ 0x55
        seg = (a & 0x70) >> 4
        v = (a & 0x0F) << 4
        v = v + 8 if seg == 0 else ((v + 0x108) << (seg - 1))
        alaw[code] = v if a & 0x80 else -v
    return ulaw, alaw


ULAW_LINEAR, ALAW_LINEAR = _g711_tables()
FULL_SCALE_SQUARED = 32768.0 * 32768.0


def new_state(rows: int) -> np.ndarray:
    state = np.zeros((rows, V_LEN), np.float64)
    reset_rows(state, np.arange(rows))
    return state


def reset_rows(state: np.ndarray, rows: np.ndarray) -> None:
    state[rows] = 0.0
    state[rows, V_SPURT_START] = np.nan
    state[rows, V_NOISE_DB] = np.nan
    state[rows, V_SIZE_FLOOR] = np.nan


@njit(cache=True)
def reset_row(state: np.ndarray, row: int) -> None:  # pragma: no cover - numba
    for k in range(V_LEN):
        state[row, k] = 0.0
    state[row, V_SPURT_START] = np.nan
    state[row, V_NOISE_DB] = np.nan
    state[row, V_SIZE_FLOOR] = np.nan


@njit(cache=True)
def g711_energy_dbov(
    buf: np.ndarray, start: int, length: int, table: np.ndarray
) -> float:  # pragma: no cover - numba
    """Mean power of the frame relative to a full-scale square wave, in dB."""
    total = 0.0
    for k in range(length):
        x = table[buf[start + k]]
        total += x * x
    if total <= 0.0:
        return SILENT_DBOV
    return 10.0 * math.log10(total / length / FULL_SCALE_SQUARED)


@njit(cache=True)
def is_voice(
    state: np.ndarray, row: int, buf: np.ndarray, start: int, length: int, payload_type: int
) -> bool:  # pragma: no cover - numba
    """Decide one packet (``length`` payload bytes at ``buf[start:]``) and update the
    stream's floors."""
    if payload_type in (PT_CN, PT_CN_OLD) or length <= DTX_MAX_PAYLOAD_BYTES:
        return False
    if payload_type in (PT_PCMU, PT_PCMA) and length >= MIN_G711_BYTES:
        table = ULAW_LINEAR if payload_type == PT_PCMU else ALAW_LINEAR
        energy = g711_energy_dbov(buf, start, length, table)
        noise = state[row, V_NOISE_DB]
        if math.isnan(noise) or energy < noise:
            noise = energy
        else:
            noise += NOISE_RISE_DB_PER_PACKET
        state[row, V_NOISE_DB] = noise
        state[row, V_METHOD] = max(state[row, V_METHOD], METHOD_ENERGY)
        return energy >= VOICE_MIN_DBOV and energy >= noise + VOICE_OVER_NOISE_DB
    size = float(length)
    floor = state[row, V_SIZE_FLOOR]
    if math.isnan(floor):
        state[row, V_SIZE_FLOOR] = size
        state[row, V_SIZE_PEAK] = size
        return True
    # Floors that forget slowly: the small-frame floor rises and the peak sinks by a byte
    # every ~2 s at 50 packets/s, so a codec switch mid-call is followed.
    floor = min(size, floor + 0.01)
    peak = max(size, state[row, V_SIZE_PEAK] - 0.01)
    state[row, V_SIZE_FLOOR] = floor
    state[row, V_SIZE_PEAK] = peak
    if peak - floor < VBR_MIN_SPREAD_BYTES:
        return True
    if state[row, V_METHOD] < METHOD_SIZE:
        state[row, V_METHOD] = METHOD_SIZE
        state[row, V_RESTART] = 1.0
    return size >= floor + VBR_VOICE_FRACTION * (peak - floor)


@njit(cache=True)
def account_packet(
    state: np.ndarray,
    row: int,
    ts_ns: int,
    voice: bool,
    marker: bool,
    ev_row: np.ndarray,
    ev_start: np.ndarray,
    ev_end: np.ndarray,
    n_events: int,
) -> int:  # pragma: no cover - numba
    """Advance the stream's spurt state by one packet; returns the new event count
    (the caller makes sure ``n_events < len(ev_row)`` before calling)."""
    start = state[row, V_SPURT_START]
    last = state[row, V_LAST_VOICE]
    if state[row, V_RESTART] != 0.0:
        # Sizes just became informative, the frames before were judged by presence only.
        # A large frame now means those were the small (silent) ones: void their spurt.
        # A small frame now means they were speech: their spurt stands.
        state[row, V_RESTART] = 0.0
        if voice:
            start = np.nan
            state[row, V_SPURT_START] = np.nan
    if not voice:
        state[row, V_SILENT_PACKETS] += 1
        if not math.isnan(start) and ts_ns - last > HANGOVER_NS:
            ev_row[n_events] = row
            ev_start[n_events] = int(start)
            ev_end[n_events] = int(last) + FRAME_NS
            n_events += 1
            state[row, V_SPURT_START] = np.nan
        return n_events
    state[row, V_VOICE_PACKETS] += 1
    if not math.isnan(start):
        gap = ts_ns - last
        # A DTX gap, or a marker bit after more than a frame or two of nothing: the old
        # spurt ended at its last voice packet.
        if gap > HANGOVER_NS or (marker and gap > 2 * FRAME_NS):
            ev_row[n_events] = row
            ev_start[n_events] = int(start)
            ev_end[n_events] = int(last) + FRAME_NS
            n_events += 1
            state[row, V_SPURT_START] = ts_ns
    else:
        state[row, V_SPURT_START] = ts_ns
    state[row, V_LAST_VOICE] = ts_ns
    return n_events


def close_spurt(state: np.ndarray, row: int) -> tuple[int, int] | None:
    """The spurt still open at the stream's end, if any (as start/end ns)."""
    start = state[row, V_SPURT_START]
    if math.isnan(start):
        return None
    return int(start), int(state[row, V_LAST_VOICE]) + FRAME_NS


def method_name(state: np.ndarray, row: int) -> str:
    return METHOD_NAMES[int(state[row, V_METHOD])]
