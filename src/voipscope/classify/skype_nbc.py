"""The naive Bayes classifier (NBC) of Bonfiglio et al., SIGCOMM 2007 §4.2: how a flow's
packets are *sized* and *spaced*, independently of their bytes.

The paper's NBC scores each packet's size and the average inter-packet gap of 30-packet
windows against the Skype codecs' distributions (Tstat ``skype.c``: ``bayes_sample`` of
PKTSIZE and AVGIPG, a flow is Skype when the mean belief passes the configured
threshold). Its voice classes were fitted to 2007 traces that are not public, so this
model is the project's own: discrete naive Bayes over

* the payload size of each of a flow's first ``WINDOW_PACKETS`` payload packets, binned
  (``SIZE_EDGES_BYTES``) and split by direction (who sent it), and
* the gap to the flow's previous payload packet, binned on a log scale (``GAP_EDGES_US``),

with per-class bin probabilities (Laplace-smoothed) fitted by ``bench/fit_skype.py`` from
the shared captures and the project's labels, shipped in ``data/skype_model.json``. The
score is the mean log-likelihood ratio per packet (Skype vs not): the evidence string
gives it with the fitted threshold. What the model can know is what the labelled data
holds: classic Skype *signalling* over TCP and UDP (docs/identification.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).with_name("data") / "skype_model.json"
WINDOW_PACKETS = 24  # payload packets scored per flow (the Skype TCP sample's budget)
SIZE_EDGES_BYTES = (1, 9, 17, 33, 65, 129, 257, 513, 1025)  # bin i: [edge[i-1], edge[i])
GAP_EDGES_US = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
N_SIZE = (len(SIZE_EDGES_BYTES) + 1) * 2  # x direction
N_GAP = len(GAP_EDGES_US) + 1


@dataclass(frozen=True, slots=True)
class SkypeModel:
    size_llr: np.ndarray  # (N_SIZE,) log P(bin|Skype) - log P(bin|other)
    gap_llr: np.ndarray  # (N_GAP,)
    threshold: float  # mean LLR per packet at or above which the flow looks like Skype
    csc_random_max_chi2: tuple[float, ...]  # per sample count n: see skype_csc

    def score(self, packets: Sequence[tuple[int, int, int]]) -> float | None:
        """Mean LLR per packet of ``(ts_ns, direction, payload bytes)`` in time order."""
        if not packets:
            return None
        ts = np.array([p[0] for p in packets[:WINDOW_PACKETS]], np.int64)
        direction = np.array([p[1] for p in packets[:WINDOW_PACKETS]], np.int64)
        size = np.array([p[2] for p in packets[:WINDOW_PACKETS]], np.int64)
        return float(
            (self.size_llr[size_bins(size, direction)].sum() + self.gap_llr[gap_bins(ts)].sum())
            / len(ts)
        )


def size_bins(size: np.ndarray, direction: np.ndarray) -> np.ndarray:
    return np.searchsorted(SIZE_EDGES_BYTES, size, side="right") * 2 + (direction & 1)


def gap_bins(ts_ns: np.ndarray) -> np.ndarray:
    """Bins of the gaps between consecutive packets (one fewer than packets)."""
    return np.searchsorted(GAP_EDGES_US, np.diff(ts_ns) // 1000, side="right")


def merged_packets(
    sizes: Sequence[Sequence[int]], times_ns: Sequence[Sequence[int]]
) -> list[tuple[int, int, int]]:
    """The two directions' samples as one time-ordered list of (ts, direction, size)."""
    out = [(t, d, s) for d in (0, 1) for t, s in zip(times_ns[d], sizes[d], strict=False)]
    out.sort()
    return out[:WINDOW_PACKETS]


@cache
def shipped_model(path: Path = MODEL_FILE) -> SkypeModel:
    raw = json.loads(path.read_text())
    return SkypeModel(
        size_llr=np.array(raw["nbc"]["size_llr"], np.float64),
        gap_llr=np.array(raw["nbc"]["gap_llr"], np.float64),
        threshold=float(raw["nbc"]["threshold"]),
        csc_random_max_chi2=tuple(float(x) for x in raw["csc_random_max_chi2"]),
    )
