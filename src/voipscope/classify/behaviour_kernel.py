"""numba kernel: compact running features of every flow's first payload packets.

What interactive media looks like without reading its bytes (FIELD §5.2): codecs send one
frame every 10/20/30/40/60 ms, so inter-arrival times bunch at those values; voice frames
are small and nearly constant in size; both sides talk, and packets of the two directions
interleave. The kernel keeps, per flow, just enough counters over the first
``WINDOW_PACKETS`` payload-carrying packets to compute those features at flow end
(behaviour_features.py): sums, extremes, a size histogram and an inter-arrival histogram
per direction. No Python object per packet (DESIGN §2).

State is preallocated numpy, kept the way quality/rtp_kernel.py keeps it:

- ``slot_row[slot]``: 1 + the feature row of the flow now in that flow-table slot (0: none).
  Slots are reused once a flow ends, possibly inside the batch being tracked: a packet
  whose flow id differs from its slot's row starts a new row, and the old one lives on
  until the caller collects it at expiry.
- ``rows``: int64 feature rows; ``free``: stack of released rows. A row is
  ``WINDOWS`` blocks of ``B_LEN`` columns (``B_*``): the first ``WINDOW_PACKETS`` payload
  packets, then the next ``WINDOW_PACKETS``. Two windows because many call flows open
  with ICE checks and a DTLS handshake (RFC 7983 on one 5-tuple): the first window is
  then mostly handshake, the second is media.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voipscope.decode import status as S

UDP = 17
TCP = 6

# The first payload packets of a flow (both directions together) that make its features.
# 48 packets are ~0.5 s of a two-way 20 ms call: the verdict is possible by then, well
# inside the target (first verdict within 1 s / 50 packets).
WINDOW_PACKETS = 48
# Packets beyond this flow packet number are never looked at (pure TCP ACKs before the
# window fills would otherwise keep a flow in the kernel forever).
WINDOWS = 2
MAX_FLOW_SEQ = 4 * WINDOWS * WINDOW_PACKETS
# A size within this many bytes of the direction's previous one counts as "the same":
# constant-bitrate codecs repeat sizes exactly, VBR Opus at 20 ms moves by a few bytes.
STABLE_SIZE_BYTES = 8
MAX_GAP_US = 10_000_000  # gaps are clipped at 10 s so that squared sums cannot overflow

# Payload-size histogram: upper bounds (exclusive) in bytes. Voice frames: 20-200 B
# (G.729 20 B, Opus 20 ms 40-160 B, G.711 160 B); video splits frames near the MTU.
SIZE_EDGES_BYTES = (40, 80, 120, 160, 200, 300, 500, 900, 1200)
SIZE_BINS = len(SIZE_EDGES_BYTES) + 1
# Inter-arrival histogram (same direction): upper bounds (exclusive) in microseconds.
# The bins are centred on the codec frame times 10/20/30/40/60 ms (RFC 3551 §4.5 and
# RFC 7587 §4 packetisations) with the spaces between them as their own bins.
GAP_EDGES_US = (2_000, 8_000, 12_000, 17_000, 23_000, 27_000, 33_000, 37_000, 45_000,
                55_000, 65_000, 100_000, 300_000)  # fmt: skip
GAP_BINS = len(GAP_EDGES_US) + 1

# Feature row columns (int64)
B_FLOW_ID = 0
B_SLOT = 1
B_TRANSPORT = 2
B_PACKETS = 3  # payload packets in the window, both directions
B_SWITCHES = 4  # consecutive window packets that changed direction
B_LAST_DIR = 5
B_CLOSED_AT = 6  # the flow packet number (from 1) that filled the window; 0: not full
B_LAST_SEQ = 7  # the flow packet number of the last window packet
B_DIR = 8  # + direction * D_LEN: per-direction block
# Per-direction block
D_PACKETS = 0
D_BYTES = 1  # L4 payload bytes
D_BYTES_SQ = 2
D_MIN = 3
D_MAX = 4
D_STABLE = 5  # packets within STABLE_SIZE_BYTES of the previous one of this direction
D_PREV_SIZE = 6
D_FIRST_NS = 7
D_LAST_NS = 8
D_GAP_SUM_US = 9
D_GAP_SQ_US = 10
D_SIZE_HIST = 11
D_GAP_HIST = D_SIZE_HIST + SIZE_BINS
D_LEN = D_GAP_HIST + GAP_BINS
B_LEN = B_DIR + 2 * D_LEN
ROW_LEN = WINDOWS * B_LEN

# meta vector
M_TOP = 0  # free rows on the stack
M_HIGH = 1  # rows ever used
M_NEW = 2  # rows allocated since the caller last read ``new_rows``
M_LEN = 3

# Stop reasons
DONE = 0
POOL_FULL = 1


@njit(cache=True, nogil=True, inline="always")
def _bin(value, edges):
    for k in range(len(edges)):
        if value < edges[k]:
            return k
    return len(edges)


@njit(cache=True, nogil=True)
def track_behaviour(
    status, proto, l4_len, ts_ns, slot, flow_id, direction, seq, start,
    slot_row, rows, free, meta, new_rows, size_edges, gap_edges,
):  # fmt: skip
    """Account packets [start, n). Returns (stopped_at, DONE | POOL_FULL)."""
    n = status.shape[0]
    cap = rows.shape[0]
    for i in range(start, n):
        if status[i] != S.OK or l4_len[i] <= 0 or seq[i] > MAX_FLOW_SEQ:
            continue
        p = proto[i]
        if p != UDP and p != TCP:
            continue
        s = slot[i]
        if not 0 <= s < slot_row.shape[0]:
            continue
        fid = flow_id[i]
        r = slot_row[s] - 1
        if r < 0 or rows[r, B_FLOW_ID] != fid:
            if meta[M_TOP] > 0:
                meta[M_TOP] -= 1
                r = free[meta[M_TOP]]
            elif meta[M_HIGH] < cap:
                r = meta[M_HIGH]
                meta[M_HIGH] += 1
            else:
                return i, POOL_FULL
            rows[r, :] = 0
            for w in range(WINDOWS):
                rows[r, w * B_LEN + B_FLOW_ID] = fid
                rows[r, w * B_LEN + B_SLOT] = s
                rows[r, w * B_LEN + B_TRANSPORT] = p
                rows[r, w * B_LEN + B_LAST_DIR] = -1
            slot_row[s] = r + 1
            new_rows[meta[M_NEW]] = r
            meta[M_NEW] += 1
        # The window this packet belongs to: the first one not yet full.
        o = 0
        while o < ROW_LEN and rows[r, o + B_PACKETS] >= WINDOW_PACKETS:
            o += B_LEN
        if o >= ROW_LEN:
            continue
        _account(rows, r, o, np.int64(direction[i]), np.int64(l4_len[i]), ts_ns[i], seq[i],
                 size_edges, gap_edges)  # fmt: skip
    return n, DONE


@njit(cache=True, nogil=True, inline="always")
def _account(rows, r, o, d, size, t, packet_seq, size_edges, gap_edges):
    """One payload packet into the window block at column ``o`` of row ``r``."""
    rows[r, o + B_PACKETS] += 1
    rows[r, o + B_LAST_SEQ] = packet_seq
    if rows[r, o + B_PACKETS] == WINDOW_PACKETS:
        rows[r, o + B_CLOSED_AT] = packet_seq
    last_dir = rows[r, o + B_LAST_DIR]
    if last_dir >= 0 and last_dir != d:
        rows[r, o + B_SWITCHES] += 1
    rows[r, o + B_LAST_DIR] = d
    b = o + B_DIR + d * D_LEN
    count = rows[r, b + D_PACKETS]
    rows[r, b + D_PACKETS] = count + 1
    rows[r, b + D_BYTES] += size
    rows[r, b + D_BYTES_SQ] += size * size
    rows[r, b + D_SIZE_HIST + _bin(size, size_edges)] += 1
    if count == 0:
        rows[r, b + D_MIN] = size
        rows[r, b + D_MAX] = size
        rows[r, b + D_FIRST_NS] = t
    else:
        if size < rows[r, b + D_MIN]:
            rows[r, b + D_MIN] = size
        if size > rows[r, b + D_MAX]:
            rows[r, b + D_MAX] = size
        if abs(size - rows[r, b + D_PREV_SIZE]) <= STABLE_SIZE_BYTES:
            rows[r, b + D_STABLE] += 1
        gap = (t - rows[r, b + D_LAST_NS]) // 1000
        if gap < 0:
            gap = 0  # capture order, not time order: a reordered packet
        if gap > MAX_GAP_US:
            gap = MAX_GAP_US
        rows[r, b + D_GAP_SUM_US] += gap
        rows[r, b + D_GAP_SQ_US] += gap * gap
        rows[r, b + D_GAP_HIST + _bin(gap, gap_edges)] += 1
    rows[r, b + D_PREV_SIZE] = size
    rows[r, b + D_LAST_NS] = t


@njit(cache=True, nogil=True)
def free_rows(picked, slot_row, rows, free, meta):
    """Return rows to the pool and detach them from their slots."""
    for r in picked:
        s = rows[r, B_SLOT]
        if 0 <= s < slot_row.shape[0] and slot_row[s] == r + 1:
            slot_row[s] = 0
        rows[r, B_FLOW_ID] = -1
        free[meta[M_TOP]] = r
        meta[M_TOP] += 1
