"""BehaviourTracker: FlowHooks that cut each flow's payload packets into a head and
windows (numba kernel), score each with the shipped models (the head model for the
head, the window model for windows), and give the arbiter a media opinion for the flows
that end.

Heads and windows are scored as they close, a batch at a time and vectorised, each at
its own model's threshold. A flow that fills a window is judged by its windows
(``detected_at_packet`` is the packet that closed the first one called media; later
windows can only raise the confidence); its head speaks only for a flow that ends before
its first window is full, where it is all the evidence there is (then
``detected_at_packet`` is the packet that closed the head, or the last one of a flow
shorter than a head). Why not the larger of the two for every flow: 24 packets cannot
tell a game whose 60 Hz client loop lands near 20 ms from a one-way call, and 48 can
(docs/identification.md).
Per flow the state is one preallocated row; only flows the model calls media get a
Python object (their deciding window's features, for the evidence). The arbiter takes
the opinion as the verdict only for flows no dissector identified, and as a second
opinion beside the others' (docs/identification.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voipscope.classify import behaviour_features as BF
from voipscope.classify import behaviour_kernel as K
from voipscope.classify.behaviour_model import BehaviourModels, shipped_model
from voipscope.config import FlowConfig
from voipscope.decode.batch import DecodedBatch
from voipscope.flows import kernels as F
from voipscope.flows.table import FlowAssignment

INITIAL_ROWS = 4096
READY_WINDOWS = 2048  # closed windows scored at once
# Mean payload above which behavioural media is called video: audio codecs fill
# 20-250-byte frames, video frames are split near the MTU (the arbiter's rule, in
# payload rather than IP bytes).
VIDEO_MEAN_PAYLOAD_BYTES = 370
# Behaviour alone is never as sure as a byte signature: the opinion's confidence is the
# model's best window probability scaled into [0.5, MAX_CONFIDENCE].
MAX_CONFIDENCE = 0.9
PPM = 1_000_000


@dataclass(frozen=True, slots=True)
class BehaviourOpinion:
    """The model's view of one ended flow that looks like media."""

    probability: float  # the highest of its head's and windows'
    confidence: float
    media: str  # "audio" | "video"
    at_packet: int  # the flow packet (from 1) that closed the first media head/window
    evidence: str
    from_head: bool = False  # only the head spoke (the flow ended before a full window)


@dataclass(frozen=True, slots=True)
class ScoredWindows:
    """What ``recorder`` is given: windows as the model saw them (fitting, tests)."""

    flow_id: np.ndarray
    window: np.ndarray  # number of the window in its flow, from 0
    at_packet: np.ndarray
    packets: np.ndarray  # payload packets in the window
    kind: np.ndarray  # behaviour_kernel.WINDOW | HEAD
    features: np.ndarray
    probability: np.ndarray


@dataclass(frozen=True, slots=True)
class _Decision:
    x: np.ndarray
    probability: float
    window: int
    packets: int
    kind: int
    mean_bytes: float


class BehaviourTracker:
    """FlowHooks: behavioural windows per flow; ``take`` hands opinions out at expiry."""

    def __init__(
        self, capacity: int = FlowConfig().max_flows, model: BehaviourModels | None = None
    ) -> None:
        self.model = model if model is not None else shipped_model()
        self.recorder: Callable[[ScoredWindows], None] | None = None
        self.slot_row = np.zeros(capacity, np.int64)  # calloc: unused slots cost no RSS
        self.rows = np.zeros((INITIAL_ROWS, K.ROW_LEN), np.int64)
        self.free = np.zeros(INITIAL_ROWS, np.int64)
        self.new_rows = np.zeros(INITIAL_ROWS, np.int64)
        self.ready = np.zeros((READY_WINDOWS, K.Q_LEN), np.int64)
        self.meta = np.zeros(K.M_LEN, np.int64)
        self._row_of: dict[int, int] = {}  # flow id -> row, for flows with a payload packet
        self._decided: dict[int, _Decision] = {}  # flow id -> its first media window
        self._head_decided: dict[int, _Decision] = {}  # flow id -> its head, if media

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
                self.ready,
            )  # fmt: skip
            self._collect_new_rows()
            self._drain()
            if why == K.DONE:
                return
            if why == K.POOL_FULL:
                self._grow()
            start = int(stopped)

    def on_expire(self, ended: np.ndarray) -> None:
        return None  # the pipeline calls ``take`` before the hooks' on_expire

    # -- for the pipeline -----------------------------------------------------------

    def take(self, ended: np.ndarray) -> list[BehaviourOpinion | None]:
        """Media opinions for the ended flows, aligned with ``ended`` (None: not media,
        too few packets, or no model); their rows are freed."""
        opinions: list[BehaviourOpinion | None] = [None] * ended.shape[0]
        at: list[int] = []
        picked: list[int] = []
        for k, flow_id in enumerate(ended[:, F.F_ID].tolist()):
            r = self._row_of.pop(flow_id, None)
            if r is not None:
                at.append(k)
                picked.append(r)
        if not picked:
            return opinions
        rows = np.array(picked, np.int64)
        self._score_short_flows(rows)
        block = self.rows[rows]
        for k, r in zip(at, range(len(picked)), strict=True):
            flow_id = int(block[r, K.R_FLOW_ID])
            window_decision = self._decided.pop(flow_id, None)
            head_decision = self._head_decided.pop(flow_id, None)
            best = float(block[r, K.R_BEST_PPM]) / PPM
            if block[r, K.R_WINDOWS] == 0 and head_decision is not None:
                # Ended before a full window: the head is the first media evidence.
                decision, first_at = head_decision, int(block[r, K.R_HEAD_AT])
                best = max(best, float(block[r, K.R_HEAD_PPM]) / PPM)
            elif window_decision is not None:
                decision, first_at = window_decision, int(block[r, K.R_FIRST_AT])
            else:
                continue
            opinions[k] = BehaviourOpinion(
                probability=best,
                confidence=round(0.5 + (MAX_CONFIDENCE - 0.5) * best, 3),
                media="video" if decision.mean_bytes > VIDEO_MEAN_PAYLOAD_BYTES else "audio",
                at_packet=first_at,
                evidence=describe(
                    decision, best, int(block[r, K.R_MEDIA_WINDOWS]), int(block[r, K.R_SCORED])
                ),
                from_head=decision.kind == K.HEAD,
            )
        K.free_rows(rows, self.slot_row, self.rows, self.free, self.meta)
        return opinions

    @property
    def live_flows(self) -> int:
        return len(self._row_of)

    # -- internals ------------------------------------------------------------------

    def _drain(self) -> None:
        q = int(self.meta[K.M_READY])
        if q == 0:
            return
        block = self.ready[:q]
        self._score(
            block[:, K.Q_ROW], block[:, K.Q_WINDOW], block[:, K.Q_AT], block[:, K.Q_TRANSPORT],
            block[:, K.Q_COUNT], block[:, K.Q_PACKETS :], block[:, K.Q_KIND],
        )  # fmt: skip
        self.meta[K.M_READY] = 0

    def _score_short_flows(self, rows: np.ndarray) -> None:
        """A flow that ended before filling one window is judged on what it sent, when
        that is enough packets for an opinion: by the head model when it ended before
        its head was full, else (its head was scored) by the window model."""
        block = self.rows[rows]
        short = (block[:, K.R_WINDOWS] == 0) & (block[:, K.R_COUNT] >= BF.MIN_PACKETS)
        if not short.any():
            return
        b = block[short]
        kind = np.where(b[:, K.R_COUNT] < K.HEAD_PACKETS, K.HEAD, K.WINDOW)
        self._score(
            rows[short], b[:, K.R_WINDOWS], b[:, K.R_LAST_SEQ], b[:, K.R_TRANSPORT],
            b[:, K.R_COUNT], b[:, K.R_PACKETS :], kind,
        )  # fmt: skip

    def _score(
        self, rows: np.ndarray, window: np.ndarray, at: np.ndarray, transport: np.ndarray,
        count: np.ndarray, packed: np.ndarray, kind: np.ndarray,
    ) -> None:  # fmt: skip
        models = self.model
        if models is None and self.recorder is None:
            return
        x = BF.feature_matrix(packed, count, transport)
        head = kind == K.HEAD
        p = np.zeros(len(rows))
        threshold = np.ones(len(rows))
        if models is not None:
            for m, model in ((head, models.head), (~head, models.window)):
                if m.any():
                    p[m] = model.probability(x[m])
                    threshold[m] = model.threshold
        if self.recorder is not None:
            self.recorder(ScoredWindows(self.rows[rows, K.R_FLOW_ID].copy(), window.copy(),
                                        at.copy(), count.copy(), kind.copy(), x, p))  # fmt: skip
        if models is None:
            return
        ppm = np.round(p * PPM).astype(np.int64)
        # A flow has one head, scored once: plain assignment.
        self.rows[rows[head], K.R_HEAD_PPM] = ppm[head]
        win = ~head
        np.maximum.at(self.rows[:, K.R_BEST_PPM], rows[win], ppm[win])
        np.add.at(self.rows[:, K.R_SCORED], rows[win], 1)
        media = np.flatnonzero(p >= threshold)
        if media.size == 0:
            return
        np.add.at(self.rows[:, K.R_MEDIA_WINDOWS], rows[media[win[media]]], 1)
        mean = BF.mean_payload_bytes(packed[media], count[media])
        # A flow's windows arrive in order: the first media one decides at_packet.
        for j, k in enumerate(media.tolist()):
            r = int(rows[k])
            decision = _Decision(x[k].copy(), float(p[k]), int(window[k]), int(count[k]),
                                 int(kind[k]), float(mean[j]))  # fmt: skip
            if head[k]:
                self.rows[r, K.R_HEAD_AT] = at[k]
                self._head_decided[int(self.rows[r, K.R_FLOW_ID])] = decision
            elif self.rows[r, K.R_FIRST_AT] == 0:
                self.rows[r, K.R_FIRST_AT] = at[k]
                self._decided[int(self.rows[r, K.R_FLOW_ID])] = decision

    def _collect_new_rows(self) -> None:
        count = int(self.meta[K.M_NEW])
        if count:
            rows = self.new_rows[:count]
            self._row_of.update(
                zip(self.rows[rows, K.R_FLOW_ID].tolist(), rows.tolist(), strict=True)
            )
            self.meta[K.M_NEW] = 0

    def _grow(self) -> None:
        size = 2 * self.rows.shape[0]
        self.rows = _grown(self.rows, size)
        self.free = _grown(self.free, size)
        self.new_rows = _grown(self.new_rows, size)


def describe(decision: _Decision, best: float, media_windows: int, scored: int) -> str:
    """The features that make a flow look like a call, in words."""
    f = dict(zip(BF.NAMES, decision.x.tolist(), strict=True))
    if decision.kind == K.HEAD:
        which = (
            f"its first {decision.packets} payload packets, p={decision.probability:.2f}; "
            f"the flow ended before a full window"
        )
    else:
        which = (
            f"{media_windows} of {scored} windows; the first: window {decision.window + 1}, "
            f"{decision.packets} payload packets, p={decision.probability:.2f}"
        )
    return (
        f"behaviour: media p={best:.2f} ({which}); "
        f"{100 * f['clocked_best']:.0f}% of one direction's "
        f"packets ({100 * f['clocked_both']:.0f}% of the other's) on a 10-60 ms frame clock, "
        f"{100 * f['media_sized']:.0f}% voice/video-sized, mean {decision.mean_bytes:.0f} B, "
        f"{100 * f['repeat_major']:.0f}% repeated sizes"
    )


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, *a.shape[1:]), a.dtype)
    out[: a.shape[0]] = a
    return out
