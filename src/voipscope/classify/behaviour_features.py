"""Behavioural features of a flow, computed from the kernel's counters (vectorised).

Directions are ordered by packet count, not by who spoke first: the side that sent the
first packet is an accident of the capture, the busier side is a property of the flow.
Every feature is scale-free or logarithmic so that one linear model can weigh them.
"""

from __future__ import annotations

import numpy as np

from voipscope.classify import behaviour_kernel as K

# Inter-arrival bins on a codec frame time (behaviour_kernel.GAP_EDGES_US): 8-12, 17-23,
# 27-33, 37-45 and 55-65 ms, i.e. 10/20/30/40/60 ms framing.
FRAMING_BINS = (2, 4, 6, 8, 10)
# The fewest window packets worth an opinion: below this the histograms are noise.
MIN_PACKETS = 12

SCALARS = (
    "log_mean_size_major", "log_mean_size_minor", "size_cv_major", "size_cv_minor",
    "stable_major", "stable_minor", "range_major", "framing_major", "framing_minor",
    "gap_cv_major", "log_mean_gap_major", "log_pps", "balance", "alternation", "tcp",
    "log_max_size",
)  # fmt: skip
NAMES = (
    *SCALARS,
    *(f"size_bin_{k}" for k in range(K.SIZE_BINS)),
    *(f"gap_bin_{k}" for k in range(K.GAP_BINS)),
)


def _block(rows: np.ndarray, d: np.ndarray, column: int) -> np.ndarray:
    """Column ``column`` of each row's per-direction block ``d`` (0/1 per row)."""
    index = K.B_DIR + d * K.D_LEN + column
    return rows[np.arange(rows.shape[0]), index].astype(np.float64)


def _hist(rows: np.ndarray, d: np.ndarray, first: int, bins: int) -> np.ndarray:
    base = K.B_DIR + d * K.D_LEN + first
    index = base[:, None] + np.arange(bins)[None, :]
    return rows[np.arange(rows.shape[0])[:, None], index].astype(np.float64)


def feature_matrix(rows: np.ndarray) -> np.ndarray:
    """(n, len(NAMES)) float64 features of kernel rows (``B_*`` columns)."""
    n = rows.shape[0]
    pk0 = rows[:, K.B_DIR + K.D_PACKETS]
    pk1 = rows[:, K.B_DIR + K.D_LEN + K.D_PACKETS]
    major = (pk1 > pk0).astype(np.int64)
    minor = 1 - major
    out = np.zeros((n, len(NAMES)))
    if n == 0:
        return out
    col = 0

    def put(values: np.ndarray) -> None:
        nonlocal col
        out[:, col] = values
        col += 1

    stats = {}
    for name, d in (("major", major), ("minor", minor)):
        count = _block(rows, d, K.D_PACKETS)
        total = _block(rows, d, K.D_BYTES)
        squares = _block(rows, d, K.D_BYTES_SQ)
        safe = np.maximum(count, 1.0)
        mean = total / safe
        var = np.maximum(squares / safe - mean * mean, 0.0)
        gaps = np.maximum(count - 1.0, 1.0)
        gap_mean = _block(rows, d, K.D_GAP_SUM_US) / gaps
        gap_var = np.maximum(_block(rows, d, K.D_GAP_SQ_US) / gaps - gap_mean**2, 0.0)
        gap_hist = _hist(rows, d, K.D_GAP_HIST, K.GAP_BINS)
        stats[name] = {
            "count": count,
            "mean": mean,
            "cv": np.sqrt(var) / np.maximum(mean, 1.0),
            "stable": _block(rows, d, K.D_STABLE) / gaps,
            "range": (_block(rows, d, K.D_MAX) - _block(rows, d, K.D_MIN)) / np.maximum(mean, 1),
            "framing": gap_hist[:, FRAMING_BINS].sum(axis=1) / gaps,
            "gap_cv": np.sqrt(gap_var) / np.maximum(gap_mean, 1.0),
            "gap_mean": gap_mean,
            "max": _block(rows, d, K.D_MAX),
            "size_hist": _hist(rows, d, K.D_SIZE_HIST, K.SIZE_BINS),
            "gap_hist": gap_hist,
            "span_ns": _block(rows, d, K.D_LAST_NS) - _block(rows, d, K.D_FIRST_NS),
        }
    a, b = stats["major"], stats["minor"]
    packets = rows[:, K.B_PACKETS].astype(np.float64)
    span_s = np.maximum(np.maximum(a["span_ns"], b["span_ns"]) / 1e9, 1e-3)
    put(np.log1p(a["mean"]))
    put(np.log1p(b["mean"]))
    put(np.minimum(a["cv"], 3.0))
    put(np.minimum(b["cv"], 3.0))
    put(a["stable"])
    put(b["stable"])
    put(np.minimum(a["range"], 10.0))
    put(a["framing"])
    put(b["framing"])
    put(np.minimum(a["gap_cv"], 10.0))
    put(np.log1p(a["gap_mean"] / 1000.0))
    put(np.log1p(packets / span_s))
    put(b["count"] / np.maximum(a["count"], 1.0))
    put(rows[:, K.B_SWITCHES] / np.maximum(packets - 1.0, 1.0))
    put((rows[:, K.B_TRANSPORT] == K.TCP).astype(np.float64))
    put(np.log1p(np.maximum(a["max"], b["max"])))
    sizes = a["size_hist"] + b["size_hist"]
    out[:, col : col + K.SIZE_BINS] = sizes / np.maximum(packets, 1.0)[:, None]
    col += K.SIZE_BINS
    gaps_all = a["gap_hist"] + b["gap_hist"]
    out[:, col : col + K.GAP_BINS] = gaps_all / np.maximum(gaps_all.sum(axis=1), 1.0)[:, None]
    return out


def enough_packets(rows: np.ndarray) -> np.ndarray:
    """Rows with enough window packets for an opinion."""
    return rows[:, K.B_PACKETS] >= MIN_PACKETS


def detected_at(rows: np.ndarray) -> np.ndarray:
    """The flow packet number at which the features were complete: the one that filled
    the window, or the flow's last window packet when it never filled."""
    closed = rows[:, K.B_CLOSED_AT]
    return np.where(closed > 0, closed, rows[:, K.B_LAST_SEQ])


def mean_payload_bytes(rows: np.ndarray) -> np.ndarray:
    total = rows[:, K.B_DIR + K.D_BYTES] + rows[:, K.B_DIR + K.D_LEN + K.D_BYTES]
    return total / np.maximum(rows[:, K.B_PACKETS], 1)
