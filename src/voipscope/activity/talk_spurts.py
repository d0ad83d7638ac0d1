"""Who talks when: talk spurts of one RTP stream, decided packet by packet in numba.

A packet is *voice* or *silence* from what the wire shows, cheapest evidence first:
- comfort noise (RFC 3389, PT 13 and the old 19) and payloads of at most 3 bytes (Opus
  DTX and digital-silence frames, RFC 6716 §2.1.9 / RFC 7587 §3.1.3) are silence, and
  so is a lone short spurt between them (a comfort-noise update);
- G.711 without DTX sends a packet every 20 ms whether anyone talks or not, but decoding
  µ-law/A-law is a table lookup: the frame's energy in dBov against the stream's own noise
  floor says voice or not (ITU-T P.56's idea of an adaptive threshold, much simplified);
  G.722 likewise, from its lower sub-band decoded (g722_lowband);
- variable-bit-rate codecs (Opus, also inside SRTP whose headers and sizes are clear)
  shrink their frames in silence: once the stream's sizes fall into two groups far apart
  (small silence frames, large voice frames), a frame nearer the large group is voice;
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

from voipscope.activity import g722_lowband as G722
from voipscope.activity import opus_toc as OPUS

PT_PCMU = 0  # RFC 3551 §6 table 4
PT_PCMA = 8
PT_G722 = 9
PT_CN = 13  # RFC 3389
PT_CN_OLD = 19
PT_DYNAMIC_FIRST = 96  # RFC 3551 §3; Opus has no static type (RFC 7587 §4.1)
# Frames too small to carry speech: Opus DTX frames of 1-2 bytes (RFC 7587 §3.1.3) and
# libopus's 3-byte frames of digital silence (TOC + 2 bytes); no codec in use codes 20 ms
# of speech in 3 bytes (the leanest, codec2 at 700 bit/s, takes 4 per 40 ms).
DTX_MAX_PAYLOAD_BYTES = 3
MIN_G711_BYTES = 40  # 5 ms of 8 kHz audio: less is too little to judge energy
MIN_G722_BYTES = 40  # likewise: one byte per 8 kHz lower-band sample
FRAME_NS = 20_000_000  # a spurt ends one (typical, RFC 3551 §4.2) frame after its last voice
HANGOVER_NS = 300_000_000  # pauses between words shorter than this stay inside a spurt
# A spurt of a single voice packet is no speech: it is a codec's comfort-noise update
# (libopus in DTX sends one every ~400 ms, between 1-byte frames or nothing; RFC 3389
# senders likewise) or a click. It is void when a silence frame follows it, and never
# reported. (Counted in packets, not time: one packet of a 60 ms ptime is still short.)
MIN_SPURT_PACKETS = 2
# Voice must stand this far above the stream's noise floor, and above an absolute floor
# (digital silence and line noise sit near -70..-60 dBov, speech near -30..-15 dBov).
VOICE_OVER_NOISE_DB = 15.0
VOICE_MIN_DBOV = -50.0
NOISE_RISE_DB_PER_PACKET = 0.02  # the floor creeps up ~1 dB/s at 50 packets/s
# VBR: a codec that shrinks its frames in silence shows two groups of sizes: libopus
# without DTX sends 3-byte frames of digital silence and tens of bytes of background noise
# against hundreds for speech (RFC 6716 §2.1.9 leaves the rate to the encoder), AMR and
# EVS a few bytes of SID against 30-60 (RFC 4867 §4.3.2). Each frame joins the group whose
# running size (log scale) is nearer and moves it by SIZE_TRACK_RATE, so a big first frame
# or a codec's soft speech frames shift the groups only a little and a codec switch is
# followed. The sizes speak only once each group has had SIZE_GROUP_MIN_FRAMES frames and
# the large one is at least SIZE_GROUP_RATIO times the small one: speech alone spreads an
# encoder's sizes by less (a constant-bit-rate encoder not at all; baresip's Opus speech
# frames run 120-400 bytes around 250), so until a stream has paused, every frame present
# is voice.
SIZE_TRACK_RATE = 0.25
# Only packets that follow the previous one within PACED_MAX_GAP_NS (a run of frames sent
# back to back) move the groups; one after a longer gap may carry another amount of audio
# (a sender bundling or changing its ptime: WhatsApp sends 160 ms packets of a few hundred
# bytes before its 20 ms ones of 50-80; a DTX update, RFC 7587 §3.1.3: one frame per
# 400 ms) and is judged against the groups as they are. RFC 3551 §4.5's frames run to
# 30 ms and ptimes to 60; 70 ms leaves room for jitter.
PACED_MAX_GAP_NS = 70_000_000
SIZE_GROUP_MIN_FRAMES = 3  # a single big first frame (some encoders start so) is no group
SIZE_GROUP_RATIO = 2.5
SILENT_DBOV = -100.0
# Opus in the clear is recognised from its own bytes, not from SDP (the kernel sees no
# SDP, and RTP without signalling counts too): every packet's TOC byte and frame packing
# give its duration (RFC 6716 §3.1-3.2), and Opus's RTP clock is always 48 kHz (RFC 7587
# §4.1), so a paced packet's timestamp step must equal it. Random bytes (SRTP) match one
# packet in ~5 at a 20 ms step; Opus all but those after a loss.
OPUS_MIN_MATCHES = 10
OPUS_MATCHES_PER_MISS = 4

# Methods, as stored per stream (the highest one used wins).
METHOD_PRESENCE = 0  # packets present = talk: silence only from DTX gaps
METHOD_SIZE = 1
METHOD_ENERGY = 2
METHOD_ENERGY_G722 = 3
METHOD_OPUS_VAD = 4
METHOD_NAMES = (
    "packet gaps (DTX)",
    "packet sizes (VBR)",
    "payload energy (G.711)",
    "payload energy (G.722 lower band)",
    "Opus voice-activity flags (SILK)",
)
# The judgements that read the audio itself, not the packets' sizes and times: inside
# SRTP they read ciphertext (calls.stage withdraws them there).
PAYLOAD_METHOD_NAMES = frozenset(
    METHOD_NAMES[m] for m in (METHOD_ENERGY, METHOD_ENERGY_G722, METHOD_OPUS_VAD)
)

# Per-stream state columns (float64), one row per stream.
V_SPURT_START = 0  # ns, NaN outside a spurt
V_LAST_VOICE = 1  # ns of the last voice packet
V_NOISE_DB = 2  # energy floor (G.711), NaN until the first frame
V_SMALL_BYTES = 3  # the two size groups (VBR): running size, NaN until the first packet
V_LARGE_BYTES = 4
V_METHOD = 5
V_RESTART = 6  # a better method just began: RESTART_* says what becomes of the open spurt
V_SMALL_FRAMES = 7  # frames each size group has taken
V_LARGE_FRAMES = 8
V_SPURT_PACKETS = 9  # voice packets in the open spurt
V_LAST_PACKET_NS = 10  # arrival of the stream's previous packet, NaN before the first
V_PREV_BYTES = 11  # and its payload size
V_G722 = 12  # the G.722 lower-band decoder's state (g722_lowband), G722.G_LEN columns
V_RTP_TS = V_G722 + G722.G_LEN  # the previous packet's RTP timestamp, NaN before the first
V_OPUS_MATCHES = V_RTP_TS + 1  # paced packets whose Opus duration equals the timestamp step
V_OPUS_MISSES = V_RTP_TS + 2  # and those whose does not
V_VAD_RUN_START = V_RTP_TS + 3  # arrival of the first of the frames flagged voice in a row
V_VAD_RUN_PACKETS = V_RTP_TS + 4  # (NaN after a frame flagged silence) and how many
V_LEN = V_RTP_TS + 5

RESTART_PRESENCE = 1.0  # sizes began to speak: a voice frame voids the presence spurt
# The Opus flags began to speak: the open spurt is replaced by the run of flagged frames
# up to this one (the frames before recognition were judged by presence or size).
RESTART_FROM_VAD_RUN = 2.0


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
    state = np.empty((rows, V_LEN), np.float64)
    for row in range(rows):
        reset_row(state, row)  # one definition of a fresh row, the kernel's own
    return state


@njit(cache=True)
def reset_row(state: np.ndarray, row: int) -> None:  # pragma: no cover - numba
    for k in range(V_LEN):
        state[row, k] = 0.0
    state[row, V_SPURT_START] = np.nan
    state[row, V_NOISE_DB] = np.nan
    state[row, V_SMALL_BYTES] = np.nan
    state[row, V_LAST_PACKET_NS] = np.nan
    state[row, V_RTP_TS] = np.nan
    state[row, V_VAD_RUN_START] = np.nan
    G722.reset(state, row, V_G722)


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
    state: np.ndarray,
    row: int,
    buf: np.ndarray,
    start: int,
    length: int,
    payload_type: int,
    ts_ns: int,
    rtp_ts: int,
    samples: np.ndarray,
) -> bool:  # pragma: no cover - numba
    """Decide one packet (``length`` payload bytes at ``buf[start:]``, arrived at
    ``ts_ns``, RTP timestamp ``rtp_ts``) and update the stream's floors. A G.722 payload
    is decoded whole (its decoder must see every byte) and its first samples left in
    ``samples`` for the tone analysis after this call."""
    last = state[row, V_LAST_PACKET_NS]
    paced = not math.isnan(last) and ts_ns - last <= PACED_MAX_GAP_NS
    previous_bytes = state[row, V_PREV_BYTES]
    state[row, V_LAST_PACKET_NS] = ts_ns
    state[row, V_PREV_BYTES] = length
    if payload_type == PT_G722 and length > 0:
        energy = G722.energy_dbov(state, row, V_G722, buf, start, length, samples)
        if length < MIN_G722_BYTES:
            return False
        return _energy_says_voice(state, row, energy, METHOD_ENERGY_G722)
    if payload_type >= PT_DYNAMIC_FIRST:
        flagged = _opus_says(state, row, buf, start, length, ts_ns, rtp_ts, paced)
        if flagged != OPUS.NO_FLAGS:
            return flagged == 1
    if payload_type in (PT_CN, PT_CN_OLD) or length <= DTX_MAX_PAYLOAD_BYTES:
        return False
    if payload_type in (PT_PCMU, PT_PCMA) and length >= MIN_G711_BYTES:
        table = ULAW_LINEAR if payload_type == PT_PCMU else ALAW_LINEAR
        energy = g711_energy_dbov(buf, start, length, table)
        return _energy_says_voice(state, row, energy, METHOD_ENERGY)
    return _size_says_voice(state, row, float(length), paced, previous_bytes)


@njit(cache=True, inline="always")
def _opus_recognised(matches: float, misses: float) -> bool:
    """Enough TOC durations matched the timestamp steps, and few enough did not."""
    return matches >= OPUS_MIN_MATCHES and matches >= OPUS_MATCHES_PER_MISS * misses


@njit(cache=True)
def _opus_says(
    state: np.ndarray,
    row: int,
    buf: np.ndarray,
    start: int,
    length: int,
    ts_ns: int,
    rtp_ts: int,
    paced: bool,
) -> int:  # pragma: no cover - numba
    """The encoder's own verdict on the frame, once the stream is known to be Opus
    (OPUS_MIN_MATCHES): 1 voice, 0 silence; OPUS.NO_FLAGS while it is not, for a CELT
    frame (no flags: sizes judge it) and for a frame too small to matter (the DTX rule)."""
    previous_ts = state[row, V_RTP_TS]
    state[row, V_RTP_TS] = rtp_ts
    duration, flags = OPUS.packet(buf, start, length)
    if paced and not math.isnan(previous_ts):
        step = (rtp_ts - np.int64(previous_ts)) & 0xFFFFFFFF
        if duration > 0 and step == duration:
            state[row, V_OPUS_MATCHES] += 1.0
        else:
            state[row, V_OPUS_MISSES] += 1.0
    # The run of flagged frames is followed from the first packet on: at recognition it
    # re-judges the frames before.
    if flags == 1 and length > DTX_MAX_PAYLOAD_BYTES:
        if math.isnan(state[row, V_VAD_RUN_START]):
            state[row, V_VAD_RUN_START] = ts_ns
            state[row, V_VAD_RUN_PACKETS] = 0.0
        state[row, V_VAD_RUN_PACKETS] += 1.0
    elif flags == 0 or length <= DTX_MAX_PAYLOAD_BYTES:
        state[row, V_VAD_RUN_START] = np.nan
    if (
        flags == OPUS.NO_FLAGS
        or length <= DTX_MAX_PAYLOAD_BYTES
        or not _opus_recognised(state[row, V_OPUS_MATCHES], state[row, V_OPUS_MISSES])
    ):
        return OPUS.NO_FLAGS
    if state[row, V_METHOD] < METHOD_OPUS_VAD:
        state[row, V_METHOD] = METHOD_OPUS_VAD
        state[row, V_RESTART] = RESTART_FROM_VAD_RUN
    return flags


@njit(cache=True)
def _energy_says_voice(
    state: np.ndarray, row: int, energy: float, method: int
) -> bool:  # pragma: no cover - numba
    """Voice when the frame stands well above the stream's own noise floor."""
    noise = state[row, V_NOISE_DB]
    if math.isnan(noise) or energy < noise:
        noise = energy
    else:
        noise += NOISE_RISE_DB_PER_PACKET
    state[row, V_NOISE_DB] = noise
    state[row, V_METHOD] = max(state[row, V_METHOD], method)
    return energy >= VOICE_MIN_DBOV and energy >= noise + VOICE_OVER_NOISE_DB


@njit(cache=True)
def _size_says_voice(
    state: np.ndarray, row: int, size: float, paced: bool, previous_bytes: float
) -> bool:  # pragma: no cover - numba
    """The VBR judgement (see SIZE_GROUP_RATIO): a paced frame joins the nearer size
    group (see PACED_MAX_GAP_NS); voice unless the groups are apart and the frame is
    nearer the small one."""
    small = state[row, V_SMALL_BYTES]
    if math.isnan(small):
        if not paced:
            return True
        state[row, V_SMALL_BYTES] = size
        state[row, V_LARGE_BYTES] = size
        state[row, V_SMALL_FRAMES] = 1.0
        return True
    large = state[row, V_LARGE_BYTES]
    # Nearer on a log scale (the boundary is the geometric mean of the two); while the
    # groups are still one size, a larger frame starts the large group.
    to_small = abs(math.log(size / small))
    to_large = abs(math.log(size / large))
    in_small = to_small < to_large or (to_small == to_large and size <= small)
    if paced:
        _join(state, row, size, in_small)
        small = state[row, V_SMALL_BYTES]
        large = state[row, V_LARGE_BYTES]
    if (
        large < SIZE_GROUP_RATIO * small
        or state[row, V_SMALL_FRAMES] < SIZE_GROUP_MIN_FRAMES
        or state[row, V_LARGE_FRAMES] < SIZE_GROUP_MIN_FRAMES
    ):
        return True
    if state[row, V_METHOD] < METHOD_SIZE:
        state[row, V_METHOD] = METHOD_SIZE
        # The packet before was a small one: the stream was in a pause, and the spurt
        # opened on presence alone is void (account_packet); a large one: speech went on.
        if previous_bytes <= DTX_MAX_PAYLOAD_BYTES or abs(math.log(previous_bytes / small)) < abs(
            math.log(previous_bytes / large)
        ):
            state[row, V_RESTART] = RESTART_PRESENCE
    return not in_small


@njit(cache=True)
def _join(state: np.ndarray, row: int, size: float, in_small: bool) -> None:  # pragma: no cover
    """Move the size group the frame joins."""
    small = state[row, V_SMALL_BYTES]
    if in_small and size * SIZE_GROUP_RATIO <= small:
        # Far below anything so far: the first frame of a pause, evidence enough alone.
        if state[row, V_LARGE_FRAMES] < SIZE_GROUP_MIN_FRAMES:
            # The frames so far were one group, the large one (speech from the start).
            state[row, V_LARGE_BYTES] = max(state[row, V_LARGE_BYTES], small)
            state[row, V_LARGE_FRAMES] = state[row, V_SMALL_FRAMES]
        state[row, V_SMALL_BYTES] = size
        state[row, V_SMALL_FRAMES] = float(SIZE_GROUP_MIN_FRAMES)
    elif in_small:
        state[row, V_SMALL_BYTES] = small + SIZE_TRACK_RATE * (size - small)
        state[row, V_SMALL_FRAMES] += 1.0
    else:
        large = state[row, V_LARGE_BYTES]
        state[row, V_LARGE_BYTES] = large + SIZE_TRACK_RATE * (size - large)
        state[row, V_LARGE_FRAMES] += 1.0


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
    restart = state[row, V_RESTART]
    if restart == RESTART_FROM_VAD_RUN:
        # The Opus flags just became trusted: what presence or sizes made of the frames
        # before gives way to the run of frames the encoder flagged up to this one.
        state[row, V_RESTART] = 0.0
        start = np.nan
        state[row, V_SPURT_START] = np.nan
        run_start = state[row, V_VAD_RUN_START]
        if voice and not math.isnan(run_start):
            start = run_start
            last = ts_ns
            state[row, V_SPURT_START] = run_start
            state[row, V_SPURT_PACKETS] = state[row, V_VAD_RUN_PACKETS] - 1.0
    elif restart == RESTART_PRESENCE:
        # Sizes just became informative and showed that the frames before, judged by
        # presence only, were mostly silence: their spurt is void, and a voice frame now
        # opens the first real one.
        state[row, V_RESTART] = 0.0
        if voice:
            start = np.nan
            state[row, V_SPURT_START] = np.nan
    short = state[row, V_SPURT_PACKETS] < MIN_SPURT_PACKETS
    if not voice:
        if math.isnan(start):
            return n_events
        if short:
            state[row, V_SPURT_START] = np.nan  # a lone update between silence frames
        elif ts_ns - last > HANGOVER_NS:
            n_events = _emit(state, row, start, last, ev_row, ev_start, ev_end, n_events)
        return n_events
    if not math.isnan(start):
        gap = ts_ns - last
        # A DTX gap, or a marker bit after more than a frame or two of nothing: the old
        # spurt ended at its last voice packet.
        if gap > HANGOVER_NS or (marker and gap > 2 * FRAME_NS):
            n_events = _emit(state, row, start, last, ev_row, ev_start, ev_end, n_events)
            start = np.nan
    if math.isnan(start):
        state[row, V_SPURT_START] = ts_ns
        state[row, V_SPURT_PACKETS] = 0.0
    state[row, V_SPURT_PACKETS] += 1.0
    state[row, V_LAST_VOICE] = ts_ns
    return n_events


@njit(cache=True)
def _emit(
    state: np.ndarray,
    row: int,
    start: float,
    last: float,
    ev_row: np.ndarray,
    ev_start: np.ndarray,
    ev_end: np.ndarray,
    n_events: int,
) -> int:  # pragma: no cover - numba
    """Close the open spurt as an event: it ended one frame after its last voice packet
    (a spurt of one packet is dropped, see MIN_SPURT_PACKETS)."""
    state[row, V_SPURT_START] = np.nan
    if state[row, V_SPURT_PACKETS] < MIN_SPURT_PACKETS:
        return n_events
    ev_row[n_events] = row
    ev_start[n_events] = int(start)
    ev_end[n_events] = int(last) + FRAME_NS
    return n_events + 1


def close_spurt(state: np.ndarray, row: int) -> tuple[int, int] | None:
    """The spurt still open at the stream's end, if any (as start/end ns)."""
    start = state[row, V_SPURT_START]
    if math.isnan(start) or state[row, V_SPURT_PACKETS] < MIN_SPURT_PACKETS:
        return None
    return int(start), int(state[row, V_LAST_VOICE]) + FRAME_NS


def method_name(state: np.ndarray, row: int) -> str:
    return METHOD_NAMES[int(state[row, V_METHOD])]


def is_opus(state: np.ndarray, row: int) -> bool:
    """The stream's payloads were recognised as Opus: their TOC durations matched the
    48 kHz timestamp steps (the rule ``_opus_says`` applies packet by packet)."""
    return bool(_opus_recognised.py_func(state[row, V_OPUS_MATCHES], state[row, V_OPUS_MISSES]))
