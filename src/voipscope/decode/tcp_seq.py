"""TCP sequence numbers read from the header in front of a segment's payload.

The decoder keeps the payload's offset, not the header's: the header is the one 20-60
bytes before the payload whose data offset (RFC 9293 §3.1, in 32-bit words, 5..15)
reaches the payload and whose ports are the packet's. The media framing kernel
(quality/tcp_framing.py) and the dissectors' stream buffers (dissect/stream.py) both
follow a TCP byte stream by these numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voipscope.wire import u16be, u32be

TCP_MIN_HEADER_WORDS = 5  # RFC 9293 §3.1: data offset in 32-bit words, 5..15
TCP_MAX_HEADER_WORDS = 15
SEQ_SPACE = 1 << 32  # RFC 9293 §3.4: sequence numbers are modulo 2^32
SEQ_HALF = 1 << 31


@njit(cache=True, nogil=True, inline="always")
def seq_ahead(seq, expected):  # pragma: no cover - numba
    """Bytes from the next one ``expected`` to ``seq`` (negative: already read). The
    Python callers (dissect/stream.py) use its ``py_func``."""
    return (seq - expected + SEQ_HALF) % SEQ_SPACE - SEQ_HALF


@njit(cache=True, nogil=True)
def tcp_seq(data, l4_off, sport, dport):  # pragma: no cover - numba
    """The sequence number of the segment whose payload starts at ``l4_off`` (-1: no
    header found)."""
    for words in range(TCP_MIN_HEADER_WORDS, TCP_MAX_HEADER_WORDS + 1):
        h = l4_off - 4 * words
        if h < 0:
            break
        if data[h + 12] >> 4 == words and u16be(data, h) == sport and u16be(data, h + 2) == dport:
            return u32be(data, h + 4)
    return -1


@njit(cache=True, nogil=True)
def tcp_seqs(data, l4_off, sport, dport):  # pragma: no cover - numba
    """``tcp_seq`` of many segments (aligned arrays of payload offsets and ports)."""
    out = np.empty(l4_off.shape[0], np.int64)
    for k in range(l4_off.shape[0]):
        out[k] = tcp_seq(data, l4_off[k], sport[k], dport[k])
    return out
