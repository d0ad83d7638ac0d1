"""The bidirectional flow table: packets in, ended flows out, memory bounded by live flows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.config import FlowConfig
from voipscope.decode.batch import DecodedBatch
from voipscope.flows import kernels as K

# Rows evicted at once when the table is full: evicting one at a time would rescan the
# table for every new flow of a flood.
EVICT_FRACTION = 64
INITIAL_INDEX_SIZE = 1 << 14
# Sweep for idle flows at most this often in capture time.
SWEEP_INTERVAL_NS = 1_000_000_000


@dataclass(slots=True)
class FlowAssignment:
    """Per packet of a DecodedBatch: which flow it belongs to (-1: none) and how."""

    slot: np.ndarray  # int64 row in the flow matrix (valid until that flow ends)
    flow_id: np.ndarray  # int64
    direction: np.ndarray  # uint8: 0 src->dst, 1 dst->src
    seq: np.ndarray  # int64: the packet's number within its flow, from 1


class FlowTable:
    """Bidirectional flows on capture time; see :class:`voipscope.config.FlowConfig`.

    ``update`` yields the flows that ended while accounting the batch, as matrices with
    the layout of :mod:`voipscope.flows.kernels` (``F_*`` columns).
    """

    def __init__(self, config: FlowConfig, anomalies: AnomalyLog, first_flow_id: int = 0) -> None:
        if config.max_flows < 1:
            raise ValueError("flows.max_flows must be at least 1")
        self.config = config
        self.anomalies = anomalies
        capacity = config.max_flows
        # np.zeros is calloc: rows never used are never touched and cost no RSS.
        self.flows = np.zeros((capacity, K.NF), np.int64)
        # The index starts small and doubles when half full, up to twice max_flows: RSS
        # follows the live flows, not the configured bound.
        self.max_index_size = 1 << max(4, int(2 * capacity - 1).bit_length())
        self.index = _empty_index(min(self.max_index_size, INITIAL_INDEX_SIZE))
        self.free = np.zeros(capacity, np.int64)
        self.meta = np.zeros(K.M_LEN, np.int64)
        self.meta[K.M_NEXT_ID] = first_flow_id
        self.meta[K.M_IDLE_NS] = int(config.idle_timeout_s * 1e9)
        self.meta[K.M_ACTIVE_NS] = int(config.active_timeout_s * 1e9)
        self.meta[K.M_MEDIA_ACTIVE_NS] = media_active_ns(config)
        self.meta[K.M_TCP_CLOSED_NS] = int(config.tcp_closed_timeout_s * 1e9)
        self.evict_count = max(1, capacity // EVICT_FRACTION)
        self.exp = np.zeros((max(4096, self.evict_count + 1), K.NF), np.int64)
        self.evicted = 0
        self._next_sweep_ns: int | None = None

    @property
    def live(self) -> int:
        return int(self.meta[K.M_LIVE])

    @property
    def next_flow_id(self) -> int:
        return int(self.meta[K.M_NEXT_ID])

    def update(self, d: DecodedBatch, assignment: FlowAssignment) -> Iterator[np.ndarray]:
        """Account the batch's packets; yield matrices of the flows that ended meanwhile."""
        start = 0
        while True:
            stopped, why = K.update_flows(
                self.flows, self.index, self.free, self.meta, self.exp, start,
                d.packets.first_index,
                d.status, d.ts_ns, d.ip_ver, d.proto, d.src_hi, d.src_lo, d.dst_hi, d.dst_lo,
                d.sport, d.dport, d.ip_bytes, d.tcp_flags, d.vlan,
                assignment.slot, assignment.flow_id, assignment.direction, assignment.seq,
            )  # fmt: skip
            if why == K.TABLE_FULL:
                yield from self._drain()
                self._evict_oldest(int(d.ts_ns[stopped]))
            elif why == K.EXPIRED_FULL:
                yield from self._drain()
            elif why == K.INDEX_FULL:
                self._grow_index()
            start = stopped
            if why == K.DONE:
                break
        yield from self._drain()
        if len(d):
            yield from self.sweep(int(d.ts_ns[-1]))

    def mark_call_media(self, slots: np.ndarray, flow_ids: np.ndarray) -> None:
        """Flows ``flow_ids`` (in ``slots``) carry call media: they end by the media
        active timeout (flows.media_active_timeout_s) instead of the ordinary one. A slot
        whose flow ended meanwhile (free, or reused by another flow) is left alone."""
        if slots.size:
            rows = self.flows[slots]
            same = ((rows[:, K.F_STATE] & K.LIVE) != 0) & (rows[:, K.F_ID] == flow_ids)
            self.flows[slots[same], K.F_STATE] |= K.CALL_MEDIA

    def sweep(self, now_ns: int) -> Iterator[np.ndarray]:
        """Expire idle flows; runs at most once per SWEEP_INTERVAL_NS of capture time."""
        if self._next_sweep_ns is not None and now_ns < self._next_sweep_ns:
            return
        self._next_sweep_ns = now_ns + SWEEP_INTERVAL_NS
        start = 0
        while start >= 0:
            start = K.sweep(self.flows, self.index, self.free, self.meta, self.exp, now_ns, start)
            yield from self._drain()

    def flush(self) -> Iterator[np.ndarray]:
        """End of input: the flows already idle (or closed, or too old) at the latest
        packet's time end as such, as a sweep then would have ended them (sweeps run at
        most once a second of capture time, so whether one fell there depended on where
        the batches ended); every other live flow ends with the input, in the order the
        flows began."""
        if self.meta[K.M_LIVE]:
            self._next_sweep_ns = None
            yield from self.sweep(int(self.meta[K.M_CLOCK_NS]))
        high = int(self.meta[K.M_HIGH_WATER])
        live = np.flatnonzero(self.flows[:high, K.F_STATE] & K.LIVE)
        rows = self.flows[live].copy()
        rows[:, K.F_END] = K.END_CAPTURE
        rows = rows[np.argsort(rows[:, K.F_ID], kind="stable")]
        self.flows[:high, K.F_STATE] = 0
        self.index = _empty_index(min(self.max_index_size, INITIAL_INDEX_SIZE))
        for m in (K.M_LIVE, K.M_FREE_TOP, K.M_HIGH_WATER, K.M_N_EXP):
            self.meta[m] = 0
        self._next_sweep_ns = None
        if rows.shape[0]:
            yield rows

    def _drain(self) -> Iterator[np.ndarray]:
        n = int(self.meta[K.M_N_EXP])
        if n:
            out = self.exp[:n].copy()
            self.meta[K.M_N_EXP] = 0
            yield out

    def _grow_index(self) -> None:
        size = min(self.index.shape[0] * 2, self.max_index_size)
        self.index = _empty_index(size)
        K.rebuild_index(self.flows, self.index, int(self.meta[K.M_HIGH_WATER]))

    def _evict_oldest(self, now_ns: int) -> None:
        high = int(self.meta[K.M_HIGH_WATER])
        live = np.flatnonzero(self.flows[:high, K.F_STATE] & K.LIVE)
        count = min(self.evict_count, live.size)
        last_seen = self.flows[live, K.F_LAST_NS]
        oldest = live[np.argpartition(last_seen, count - 1)[:count]] if count < live.size else live
        K.expire_slots(
            self.flows, self.index, self.free, self.meta, self.exp, oldest, K.END_EVICTED
        )
        self.evicted += int(oldest.size)
        self.anomalies.add(
            "flow_table_overflow",
            f"flow table full ({self.config.max_flows} live flows): evicted the "
            f"{oldest.size} least recently seen",
            ts=now_ns / 1e9,
            count=int(oldest.size),
        )


def media_active_ns(config: FlowConfig) -> int:
    """The active timeout of call media flows: flows.media_active_timeout_s, but never
    shorter than the ordinary one, and none when either says none (0): the media timeout
    only ever keeps a call whole longer."""
    ordinary, media = config.active_timeout_s, config.media_active_timeout_s
    if ordinary <= 0 or media <= 0:
        return 0
    return int(max(ordinary, media) * 1e9)


def _empty_index(size: int) -> np.ndarray:
    return np.full(size, -1, np.int64)  # -1: an empty index slot


def new_assignment(n: int) -> FlowAssignment:
    return FlowAssignment(
        slot=np.empty(n, np.int64),
        flow_id=np.empty(n, np.int64),
        direction=np.empty(n, np.uint8),
        seq=np.empty(n, np.int64),
    )
