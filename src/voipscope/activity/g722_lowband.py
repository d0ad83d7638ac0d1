"""The lower sub-band of ITU-T G.722 decoded: the energy of a frame (who talks when) and
its samples (tones).

G.722 (RTP payload type 9, RFC 3551 §4.5.2) sends a 64 kbit/s frame every 20 ms whether
anyone talks or not, like G.711; but its bytes are sub-band ADPCM, so loudness needs the
decoder. Each byte is one 16 kHz sample pair: 6 bits of the lower band (0-4 kHz, where
speech's energy is) and 2 of the upper. Only the lower band is decoded here (G.722 §4:
the inverse quantiser, the scale-factor adaptation and the pole-zero predictor, blocks
3L, 4L), at 8 kHz, without the QMF synthesis: enough for the frame's power and cheap.

The decoder is stateful across packets: a lost packet leaves the predictor out of step
for a while, as in any receiver, and the adaptation pulls it back. Its state is kept in
the talk-spurt state row (float64 columns holding small integers exactly), so it follows
the stream's row through resets and expiry like the rest.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# G.722 §4.2 tables (Table 17 and the 4-bit / 6-bit inverse quantiser outputs, scaled as
# the reference implementation keeps them).
QM6 = np.array(
    [-136, -136, -136, -136, -24808, -21904, -19008, -16704,
     -14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
     -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576,
     -3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
     24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192,
     10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
     4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032,
     1688, 1360, 1040, 728, 432, 136, -432, -136],
    np.int64,
)  # fmt: skip
QM4 = np.array(
    [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200,
     20456, 12896, 8968, 6288, 4240, 2584, 1200, 0],
    np.int64,
)  # fmt: skip
RL42 = np.array([0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0], np.int64)
WL = np.array([-60, -30, 58, 172, 334, 538, 1198, 3042], np.int64)  # log scale factor steps
ILB = np.array(
    [2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714,
     2774, 2834, 2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676,
     3756, 3838, 3922, 4008],
    np.int64,
)  # fmt: skip
DET_START = 32  # §4.2: the lower band's scale factor after reset
NB_MAX = 18432

# The decoder's state, as columns from the caller's base column.
G_S = 0  # predictor output
G_SP = 1  # its pole part
G_SZ = 2  # its zero part
G_R1 = 3  # reconstructed signal, one and two samples back
G_R2 = 4
G_A1 = 5  # pole coefficients
G_A2 = 6
G_P1 = 7  # partial reconstructed signal, one and two samples back
G_P2 = 8
G_D = 9  # quantised difference signal, 1..6 samples back (G_D + 0 .. G_D + 5)
G_B = 15  # zero coefficients 1..6
G_NB = 21  # log scale factor
G_DET = 22  # scale factor
G_LEN = 23
FULL_SCALE_SQUARED = 32768.0 * 32768.0
SILENT_DBOV = -100.0


@njit(cache=True)
def reset(state: np.ndarray, row: int, base: int) -> None:  # pragma: no cover - numba
    for k in range(G_LEN):
        state[row, base + k] = 0.0
    state[row, base + G_DET] = DET_START


@njit(cache=True)
def _sat(x: int) -> int:  # pragma: no cover - numba
    """To 16 bits, as the reference arithmetic saturates."""
    if x > 32767:
        return 32767
    if x < -32768:
        return -32768
    return x


@njit(cache=True)
def energy_dbov(
    state: np.ndarray,
    row: int,
    base: int,
    buf: np.ndarray,
    start: int,
    length: int,
    out: np.ndarray,
) -> float:  # pragma: no cover - numba
    """Decode ``length`` G.722 bytes at ``buf[start:]`` (one 8 kHz lower-band sample each,
    the first ``len(out)`` of them also written to ``out`` in 16-bit scale) and return
    their mean power relative to full scale, in dB."""
    s = int(state[row, base + G_S])
    sp = int(state[row, base + G_SP])
    sz = int(state[row, base + G_SZ])
    r1 = int(state[row, base + G_R1])
    r2 = int(state[row, base + G_R2])
    a1 = int(state[row, base + G_A1])
    a2 = int(state[row, base + G_A2])
    p1 = int(state[row, base + G_P1])
    p2 = int(state[row, base + G_P2])
    nb = int(state[row, base + G_NB])
    det = int(state[row, base + G_DET])
    d = np.empty(7, np.int64)
    b = np.empty(7, np.int64)
    for k in range(6):
        d[k + 1] = int(state[row, base + G_D + k])
        b[k + 1] = int(state[row, base + G_B + k])
    total = 0.0
    for i in range(length):
        code = buf[start + i] & 0x3F  # 64 kbit/s mode: 6 lower-band bits (RFC 3551)
        # Block 2L/3L: the reconstructed sample from the 6-bit code, the difference the
        # predictor adapts on from its 4-bit truncation.
        rlow = s + ((det * QM6[code]) >> 15)
        rlow = min(16383, max(-16384, rlow))
        sample = 2.0 * rlow
        total += sample * sample
        if i < out.shape[0]:
            out[i] = sample
        coarse = code >> 2
        d0 = (det * QM4[coarse]) >> 15
        # LOGSCL and SCALEL: the scale factor follows the code's magnitude.
        nb = ((nb * 127) >> 7) + WL[RL42[coarse]]
        nb = min(NB_MAX, max(0, nb))
        shift = 8 - (nb >> 11)
        mantissa = ILB[(nb >> 6) & 31]
        det = (mantissa >> shift if shift >= 0 else mantissa << -shift) << 2
        # Block 4L: reconstruct, adapt the two poles and six zeros, predict the next.
        r0 = _sat(s + d0)
        p0 = _sat(sz + d0)
        neg0, neg1, neg2 = p0 < 0, p1 < 0, p2 < 0
        wd2 = _sat(a1 * 4)
        wd2 = -wd2 if neg0 == neg1 else wd2
        wd2 = min(wd2, 32767)
        ap2 = (128 if neg0 == neg2 else -128) + (wd2 >> 7) + ((a2 * 32512) >> 15)
        ap2 = min(12288, max(-12288, ap2))
        ap1 = _sat((192 if neg0 == neg1 else -192) + ((a1 * 32640) >> 15))
        limit = _sat(15360 - ap2)
        ap1 = min(limit, max(-limit, ap1))
        step = 0 if d0 == 0 else 128
        for k in range(1, 7):
            sign = step if (d[k] < 0) == (d0 < 0) else -step
            b[k] = _sat(sign + ((b[k] * 32640) >> 15))
        for k in range(6, 1, -1):
            d[k] = d[k - 1]
        d[1] = d0
        r2, r1 = r1, r0
        p2, p1 = p1, p0
        a1, a2 = ap1, ap2
        sp = _sat(((a1 * _sat(r1 + r1)) >> 15) + ((a2 * _sat(r2 + r2)) >> 15))
        zeros = 0
        for k in range(1, 7):
            zeros += (b[k] * _sat(d[k] + d[k])) >> 15
        sz = _sat(zeros)
        s = _sat(sp + sz)
    state[row, base + G_S] = s
    state[row, base + G_SP] = sp
    state[row, base + G_SZ] = sz
    state[row, base + G_R1] = r1
    state[row, base + G_R2] = r2
    state[row, base + G_A1] = a1
    state[row, base + G_A2] = a2
    state[row, base + G_P1] = p1
    state[row, base + G_P2] = p2
    state[row, base + G_NB] = nb
    state[row, base + G_DET] = det
    for k in range(6):
        state[row, base + G_D + k] = d[k + 1]
        state[row, base + G_B + k] = b[k + 1]
    if total <= 0.0 or length == 0:
        return SILENT_DBOV
    return 10.0 * math.log10(total / length / FULL_SCALE_SQUARED)
