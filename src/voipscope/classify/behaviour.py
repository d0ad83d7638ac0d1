"""BehaviourTracker: FlowHooks that keep each flow's behavioural features (numba kernel),
then give the arbiter a media opinion for the flows that end.

The features of every UDP/TCP flow's first ``WINDOW_PACKETS`` payload packets are kept in
preallocated rows (behaviour_kernel); at expiry the rows of the ended flows are copied out
and freed in one step, turned into features (vectorised) and scored by the shipped model.
Only flows the model calls media get a Python object; the arbiter uses it only for flows
no dissector identified (docs/identification.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voipscope.classify import behaviour_features as BF
from voipscope.classify import behaviour_kernel as K
from voipscope.classify.behaviour_model import BehaviourModel, shipped_model
from voipscope.config import FlowConfig
from voipscope.decode.batch import DecodedBatch
from voipscope.flows import kernels as F
from voipscope.flows.table import FlowAssignment

INITIAL_ROWS = 4096
# Mean payload above which behavioural media is called video: audio codecs fill
# 20-250-byte frames, video frames are split near the MTU (the arbiter's rule, in
# payload rather than IP bytes).
VIDEO_MEAN_PAYLOAD_BYTES = 370
# Behaviour alone is never as sure as a byte signature: the opinion's confidence is the
# model's probability scaled into [0.5, MAX_CONFIDENCE].
MAX_CONFIDENCE = 0.9


@dataclass(frozen=True, slots=True)
class BehaviourOpinion:
    """The model's view of one ended flow that looks like media."""

    probability: float
    confidence: float
    media: str  # "audio" | "video"
    at_packet: int  # the flow packet (from 1) at which the features were complete
    evidence: str


class BehaviourTracker:
    """FlowHooks: behavioural features per flow; ``take`` hands opinions out at expiry."""

    def __init__(
        self, capacity: int = FlowConfig().max_flows, model: BehaviourModel | None = None
    ) -> None:
        self.model = model if model is not None else shipped_model()
        self.slot_row = np.zeros(capacity, np.int64)  # calloc: unused slots cost no RSS
        self.rows = np.zeros((INITIAL_ROWS, K.ROW_LEN), np.int64)
        self.free = np.zeros(INITIAL_ROWS, np.int64)
        self.new_rows = np.zeros(INITIAL_ROWS, np.int64)
        self.meta = np.zeros(K.M_LEN, np.int64)
        self._row_of: dict[int, int] = {}  # flow id -> row, for flows with a payload packet
        self._size_edges = np.array(K.SIZE_EDGES_BYTES, np.int64)
        self._gap_edges = np.array(K.GAP_EDGES_US, np.int64)

    # -- FlowHooks ------------------------------------------------------------------

    def on_init(self, d: DecodedBatch, a: FlowAssignment, first_packets: np.ndarray) -> None:
        return None  # a row records its flow id; a reused slot starts a new row

    def on_update(self, d: DecodedBatch, a: FlowAssignment) -> None:
        if len(d) == 0:
            return
        start = 0
        while True:
            stopped, why = K.track_behaviour(
                d.status, d.proto, d.l4_len, d.ts_ns, a.slot, a.flow_id, a.direction, a.seq,
                start, self.slot_row, self.rows, self.free, self.meta, self.new_rows,
                self._size_edges, self._gap_edges,
            )  # fmt: skip
            self._collect_new_rows()
            if why == K.DONE:
                return
            self._grow()
            start = int(stopped)

    def on_expire(self, ended: np.ndarray) -> None:
        return None  # the pipeline calls ``take`` before the hooks' on_expire

    # -- for the pipeline -----------------------------------------------------------

    def take_rows(self, ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kernel rows aligned with ``ended``, mask of the flows that have one); the rows
        are freed."""
        n = ended.shape[0]
        out = np.zeros((n, K.ROW_LEN), np.int64)
        present = np.zeros(n, np.bool_)
        at: list[int] = []
        picked: list[int] = []
        for k, flow_id in enumerate(ended[:, F.F_ID].tolist()):
            r = self._row_of.pop(flow_id, None)
            if r is not None:
                at.append(k)
                picked.append(r)
        if picked:
            rows = np.array(picked, np.int64)
            out[at] = self.rows[rows]
            present[at] = True
            K.free_rows(rows, self.slot_row, self.rows, self.free, self.meta)
        return out, present

    def take(self, ended: np.ndarray) -> list[BehaviourOpinion | None]:
        """Media opinions for the ended flows, aligned with ``ended`` (None: not media,
        too few packets, or no model)."""
        rows, present = self.take_rows(ended)
        opinions: list[BehaviourOpinion | None] = [None] * ended.shape[0]
        model = self.model
        if model is None:
            return opinions
        # The first window that convinces the model decides (its packet is the earliest
        # at which the verdict was possible); later windows only for flows still open.
        for w in range(K.WINDOWS):
            block = rows[:, w * K.B_LEN : (w + 1) * K.B_LEN]
            open_ = np.array([o is None for o in opinions], np.bool_)
            scored = np.flatnonzero(present & open_ & BF.enough_packets(block))
            if scored.size == 0:
                continue
            x = BF.feature_matrix(block[scored])
            p = model.probability(x)
            media = np.flatnonzero(p >= model.threshold)
            if media.size == 0:
                continue
            picked = block[scored[media]]
            at = BF.detected_at(picked).tolist()
            mean = BF.mean_payload_bytes(picked).tolist()
            for j, k in enumerate(media.tolist()):
                prob = float(p[k])
                opinions[int(scored[k])] = BehaviourOpinion(
                    probability=prob,
                    confidence=round(0.5 + (MAX_CONFIDENCE - 0.5) * prob, 3),
                    media="video" if mean[j] > VIDEO_MEAN_PAYLOAD_BYTES else "audio",
                    at_packet=int(at[j]),
                    evidence=describe(x[k], prob, int(picked[j, K.B_PACKETS]), w),
                )
        return opinions

    @property
    def live_flows(self) -> int:
        return len(self._row_of)

    # -- internals ------------------------------------------------------------------

    def _collect_new_rows(self) -> None:
        count = int(self.meta[K.M_NEW])
        if count:
            rows = self.new_rows[:count]
            self._row_of.update(
                zip(self.rows[rows, K.B_FLOW_ID].tolist(), rows.tolist(), strict=True)
            )
            self.meta[K.M_NEW] = 0

    def _grow(self) -> None:
        size = 2 * self.rows.shape[0]
        self.rows = _grown(self.rows, size)
        self.free = _grown(self.free, size)
        self.new_rows = _grown(self.new_rows, size)


def describe(x: np.ndarray, probability: float, packets: int, window: int) -> str:
    """The features that make a flow look like a call, in words."""
    f = dict(zip(BF.NAMES, x.tolist(), strict=True))
    which = "first" if window == 0 else "second"
    return (
        f"behaviour: media p={probability:.2f} over the {which} {packets} payload packets; "
        f"{100 * f['framing_major']:.0f}% of gaps on 10/20/30/40/60 ms framing, "
        f"mean {np.expm1(f['log_mean_size_major']):.0f} B (size cv {f['size_cv_major']:.2f}), "
        f"{np.expm1(f['log_pps']):.0f} pkt/s, two-way balance {f['balance']:.2f}, "
        f"alternation {f['alternation']:.2f}"
    )


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, *a.shape[1:]), a.dtype)
    out[: a.shape[0]] = a
    return out
