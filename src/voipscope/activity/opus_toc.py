"""What an Opus packet says about itself without decoding it: its duration (RFC 6716 §3.1,
the TOC byte, and §3.2, the frame packing) and, in SILK and hybrid frames, the encoder's
own voice-activity flags (§4.2.3).

Why the flags can be read without a decoder: a SILK frame's first symbols are its VAD
flags (one per 20 ms SILK frame: one for a 10/20 ms Opus frame, two for 40 ms, three
for 60 ms), then the LBRR flag, each range-coded with probability 1/2 (§4.2.3). With the
range decoder of §4.1.1 freshly initialised from the first byte b0 (``val = 127 -
(b0 >> 1)`` after normalisation, ``rng`` = 2^31) a symbol of probability 1/2 is 1 exactly
when the top remaining bit of b0 is 1, and each such symbol consumes one bit: the flags
are the top bits of the frame's first byte, most significant first. libopus reads its
LBRR flag at the next bit down the same way (``opus_packet_has_lbrr``, since 1.5). CELT
frames carry no flag (-1 here). The flags are the encoder's judgement of its own input
(SILK's VAD, silk/VAD.c): speech over a noise floor it tracks, so a sender with
background noise, whose frame sizes stay the same, still says when it talks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SAMPLES_PER_MS = 48  # RFC 7587 §4.1: Opus's RTP clock is always 48 kHz
# RFC 6716 §3.1 table 2: configs 0-11 SILK (10/20/40/60 ms), 12-15 hybrid (10/20),
# 16-31 CELT (2.5/5/10/20); per config, the frame duration in 48 kHz samples.
_SILK_SAMPLES = (480, 960, 1920, 2880)
_HYBRID_SAMPLES = (480, 960)
_CELT_SAMPLES = (120, 240, 480, 960)
FIRST_CELT_CONFIG = 16
MAX_PACKET_SAMPLES = 120 * SAMPLES_PER_MS  # §3.2.5: at most 120 ms per packet
MAX_FRAMES = 48  # §3.2.5
MAX_FRAME_BYTES = 1275  # §3.4 rule R2 (a frame of 2.5-20 ms; 60 ms of SILK needs no more)


def _frame_samples_table() -> np.ndarray:
    table = np.zeros(32, np.int64)
    for config in range(32):
        if config < 12:
            table[config] = _SILK_SAMPLES[config % 4]
        elif config < FIRST_CELT_CONFIG:
            table[config] = _HYBRID_SAMPLES[config % 2]
        else:
            table[config] = _CELT_SAMPLES[config % 4]
    return table


FRAME_SAMPLES = _frame_samples_table()

# What packet() returns besides the duration.
NO_FLAGS = -1  # CELT-only, an empty (DTX) frame, or no valid packet: no VAD flag read


@njit(cache=True, nogil=True)
def _length(buf: np.ndarray, at: int, end: int) -> tuple[int, int]:  # pragma: no cover
    """A frame length (§3.2.1): one byte below 252, else two (4 × second + first).
    Returns (length, bytes used); (-1, 0) when it runs past ``end``."""
    if at >= end:
        return -1, 0
    first = np.int64(buf[at])
    if first < 252:
        return first, 1
    if at + 1 >= end:
        return -1, 0
    return 4 * np.int64(buf[at + 1]) + first, 2


@njit(cache=True, nogil=True)
def _flags(
    buf: np.ndarray, at: int, size: int, silk_frames: int, stereo: bool
) -> int:  # pragma: no cover - numba
    """1 if any VAD flag of the frame at ``buf[at:at + size]`` is set, 0 if none;
    NO_FLAGS for an empty frame (§3.2.1: DTX or a lost frame)."""
    if size <= 0:
        return NO_FLAGS
    b0 = np.int64(buf[at])
    mid = b0 >> (8 - silk_frames)  # the mid (or mono) channel's flags
    if mid != 0:
        return 1
    if stereo:
        # §4.2.3: after the mid channel's VAD flags and LBRR flag, the side channel's.
        side = (b0 >> (7 - 2 * silk_frames)) & ((1 << silk_frames) - 1)
        if side != 0:
            return 1
    return 0


@njit(cache=True, nogil=True)
def packet(buf: np.ndarray, start: int, length: int) -> tuple[int, int]:  # pragma: no cover
    """(duration in 48 kHz samples, voice) of the Opus packet ``buf[start:start+length]``:
    duration 0 when the bytes are no valid packet (§3.4's rules R1-R7 as far as
    lengths go); voice 1/0 from the SILK VAD flags of any frame, NO_FLAGS for CELT."""
    if length < 1 or start < 0 or start + length > buf.shape[0]:
        return 0, NO_FLAGS
    end = start + length
    toc = np.int64(buf[start])
    config = toc >> 3
    stereo = (toc & 0x04) != 0
    code = toc & 0x03
    per_frame = FRAME_SAMPLES[config]
    silky = config < FIRST_CELT_CONFIG
    silk_frames = max(1, per_frame // 960)  # 20 ms SILK frames in one Opus frame
    at = start + 1
    voice = NO_FLAGS
    if code == 0:  # §3.2.2: one frame, the rest of the packet
        if end - at > MAX_FRAME_BYTES:
            return 0, NO_FLAGS
        if silky:
            voice = _flags(buf, at, end - at, silk_frames, stereo)
        return per_frame, voice
    if code == 1:  # §3.2.3: two frames of equal size
        if (end - at) % 2 != 0 or end - at > 2 * MAX_FRAME_BYTES:
            return 0, NO_FLAGS
        half = (end - at) // 2
        if silky:
            voice = max(_flags(buf, at, half, silk_frames, stereo),
                        _flags(buf, at + half, half, silk_frames, stereo))  # fmt: skip
        return 2 * per_frame, voice
    if code == 2:  # §3.2.4: two frames, the first one's length coded
        first, used = _length(buf, at, end)
        at += used
        if first < 0 or at + first > end or end - at - first > MAX_FRAME_BYTES:
            return 0, NO_FLAGS
        if silky:
            voice = max(_flags(buf, at, first, silk_frames, stereo),
                        _flags(buf, at + first, end - at - first, silk_frames, stereo))  # fmt: skip
        return 2 * per_frame, voice
    # §3.2.5: code 3, a frame count byte (v: VBR, p: padding, M: frames), optional padding
    # length, in VBR the first M - 1 frame lengths, then the frames and the padding.
    if at >= end:
        return 0, NO_FLAGS
    count_byte = np.int64(buf[at])
    at += 1
    frames = count_byte & 0x3F
    if frames == 0 or frames * per_frame > MAX_PACKET_SAMPLES:
        return 0, NO_FLAGS
    padding = 0
    if count_byte & 0x40:
        while True:
            if at >= end:
                return 0, NO_FLAGS
            step = np.int64(buf[at])
            at += 1
            padding += 254 if step == 255 else step
            if step != 255:
                break
    data_end = end - padding
    if data_end < at:
        return 0, NO_FLAGS
    vbr = (count_byte & 0x80) != 0
    lengths_at = at
    if vbr:  # M - 1 lengths, the last frame takes what is left
        total = 0
        for _ in range(frames - 1):
            size, used = _length(buf, at, data_end)
            if size < 0:
                return 0, NO_FLAGS
            at += used
            total += size
        if at + total > data_end or data_end - at - total > MAX_FRAME_BYTES:
            return 0, NO_FLAGS
    elif (data_end - at) % frames != 0 or (data_end - at) // frames > MAX_FRAME_BYTES:
        return 0, NO_FLAGS  # CBR: equal frames
    if silky:
        cbr_size = (data_end - at) // frames
        frame_at = at
        for k in range(frames):
            if not vbr:
                size = cbr_size
            elif k == frames - 1:
                size = data_end - frame_at
            else:
                size, used = _length(buf, lengths_at, data_end)
                lengths_at += used
            voice = max(voice, _flags(buf, frame_at, size, silk_frames, stereo))
            frame_at += size
    return frames * per_frame, voice
