"""RtpStreamTracker: FlowHooks that measure every RTP stream, then hand them out at expiry.

The tracker follows every UDP flow speculatively (rtp_kernel); whether a flow *was* RTP is
the arbiter's call, made when the flow ends. So the pipeline's caller takes the streams of
the flows judged RTP/SRTP from :meth:`RtpStreamTracker.pop` (or ``streams_for``) after
the Flow records of those flows were yielded, and leaves the rest: results not taken
are dropped oldest-first beyond ``max_pending_flows`` (memory stays bounded by live
flows, DESIGN §2).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from voipscope.activity import talk_spurts as TS
from voipscope.activity import timing as TM
from voipscope.activity import tones as TN
from voipscope.addresses import format_ip
from voipscope.config import FlowConfig
from voipscope.decode import status as S
from voipscope.decode.batch import DecodedBatch
from voipscope.flows import kernels as F
from voipscope.flows.table import FlowAssignment
from voipscope.quality import rtp_kernel as K
from voipscope.quality import tcp_framing as TF
from voipscope.quality.clock_candidates import ClockCandidates
from voipscope.quality.payload_types import (
    RtpMap,
    clock_table_hz,
    encoding_name,
    jitter_unknown_reason,
)

INITIAL_FLOW_ROWS = 1024
INITIAL_STREAM_ROWS = 1024
OPUS = "opus"  # RFC 7587 §7: the media subtype
# TCP directions carrying framed media: rare, and a 128 kB buffer each (calloc'd: it
# costs memory only as far as it is written).
INITIAL_TCP_LANES = 8
# Frames cut from one batch's segments; grown when a lane's held and set-aside bytes
# and a segment would not fit.
INITIAL_TCP_OUT_BYTES = 1 << 18
INITIAL_TCP_FRAMES = 4096
# Ended flows whose streams wait for the caller; beyond this the oldest are dropped.
MAX_PENDING_FLOWS = 16384
EVENT_BUFFER = 4096  # talk-spurt, DTMF and tone events per kernel call before the caller drains
TIMING_WINDOW_BUFFER = 64  # complete transit windows per kernel call before the caller drains
MAX_SPURTS_PER_STREAM = 20_000  # ~1 spurt per 2 s: over 10 hours; more are counted
MAX_DTMF_PER_STREAM = 1024
MAX_RTCP_PER_FLOW = 4096  # reports and blocks kept per flow (one every ~5 s: hours)
# Runs of one tone kept per stream: tone-encoded data makes ~8 a second (1/8 s symbols),
# speech and music a few a minute; over an hour of symbols, more are counted.
MAX_TONE_RUNS_PER_STREAM = 30_000
DTMF_DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2 events 0-15


@dataclass(slots=True)
class MediaStream:
    """One direction of RTP of one SSRC: the Media stream record of DESIGN §3, and more."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ssrc: int
    payload_type: int  # of the first packet
    codec: str | None
    packets: int
    lost: int  # expected - received (RFC 3550 A.3); negative with duplicates
    loss_pct: float
    duplicates: int
    out_of_order: int
    jitter_ms: float | None  # mean A.8 estimate over regular packets, as tshark reports it
    max_delta_ms: float
    mos: float | None = None  # E-model: another stage's job
    talk_spurts: list[list[float]] | None = None  # activity: another stage's job
    # -- beyond the contract's minimum
    flow_id: int = -1
    direction: int = 0  # 0: the flow's src -> dst
    expected: int = 0
    first_seq: int = 0
    last_seq: int = 0  # of the last packet to arrive
    payload_type_changed: bool = False
    last_payload_type: int = 0
    markers: int = 0
    first_seen: float = 0.0  # capture time, epoch seconds
    last_seen: float = 0.0
    rtp_timestamp_first: int = 0
    rtp_timestamp_last: int = 0
    clock_hz: int | None = None
    max_jitter_ms: float | None = None
    jitter_last_ms: float | None = None  # the running A.8 estimate after the last packet
    jitter_ts_units: float | None = None  # the same in RTP timestamp units (RFC 3550 A.8)
    jitter_unknown: str | None = None  # why jitter_ms is None
    # Internal, not in the output contract: the clock was unknown while the flow ran (a
    # dynamic payload type), so A.8 ran per candidate clock; the calls stage keeps the one
    # the call's SDP rtpmap names (quality.clock_candidates.resolve).
    clock_candidates: ClockCandidates | None = None
    # Of ``lost``: numbers skipped across a stretch where the capture saw nothing at all
    # (rtp_kernel.CAPTURE_SILENCE_NS): missing from the capture, not lost on the wire.
    capture_gap_missing: int = 0
    # Runs of consecutive lost packets on the wire (those across a capture gap left out):
    # with the loss, G.107's burst ratio (quality.emodel.measured_burst_ratio).
    loss_runs: int = 0
    # The longest stretch without a packet of the stream: its length, when it began
    # (epoch s). Of the stretches that were media outages (rtp_kernel.is_outage: the
    # sender went on numbering, nothing reached the capture point): how many, their
    # seconds in all, and the longest with the sequence numbers it skipped.
    longest_gap_ms: float = 0.0
    longest_gap_start: float | None = None
    outages: int = 0
    outage_s: float = 0.0
    longest_outage_ms: float = 0.0
    longest_outage_start: float | None = None
    longest_outage_lost: int = 0
    # Packets a fixed de-jitter buffer of 50 / 200 ms would have discarded as too late
    # (rtp_kernel.JB_*); None where no packet had a known clock while the flow ran.
    jb50_late: int | None = None
    jb200_late: int | None = None
    activity_method: str | None = None  # how talk_spurts were found (activity.talk_spurts)
    # The codec the payloads themselves showed: "opus" when every packet's TOC (RFC 6716
    # §3.1) gave the duration its timestamp step says at 48 kHz (RFC 7587 §4.1).
    payload_codec: str | None = None
    talk_spurts_dropped: int = 0  # beyond MAX_SPURTS_PER_STREAM
    dtmf: list[dict[str, Any]] = field(default_factory=list)  # RFC 4733 events
    # -- tones (activity.tones): G.711 and L16 only; None when no frame was analysed
    tones: dict[str, Any] | None = None  # frame statistics: tone share, flatness, ...
    # [start s, end s, Hz, frames, tone share] per run of one tone, times in media seconds
    # since the stream's first RTP timestamp (loss and jitter do not move them)
    tone_runs: list[list[float]] = field(default_factory=list)
    tone_runs_dropped: int = 0  # beyond MAX_TONE_RUNS_PER_STREAM
    inband_dtmf: list[dict[str, Any]] = field(default_factory=list)  # DTMF tone pairs in audio
    # Transit levels of the first sequence numbers against the stream's clock
    # (activity.timing): a covert channel in the send times. None: not judged.
    timing: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _StreamEvents:
    spurts: list[list[float]] = field(default_factory=list)  # [start s, end s]
    dtmf: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    tone_runs: list[list[float]] = field(default_factory=list)
    tone_runs_dropped: int = 0
    inband_dtmf: list[dict[str, Any]] = field(default_factory=list)
    # Judged transit windows (activity.timing.keep_window) and how many were judged.
    timing_windows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    timing_judged: int = 0
    timing_coded_left_out: int = 0
    timing_code: tuple[int, list[float]] | None = None  # (window, levels) of the last code

    def judge_timing_window(self, transits: np.ndarray, window: int) -> None:
        """One complete (or the last) transit window of the stream (activity.timing)."""
        judged, self.timing_code = TM.judge_window(transits, window, self.timing_code)
        self.timing_judged += judged is not None
        if not TM.keep_window(self.timing_windows, window, judged):
            self.timing_coded_left_out += 1


@dataclass(slots=True)
class _Ended:
    """An ended flow's rows, copied out of the pools; records are built on demand."""

    flow: np.ndarray  # F_* row of flows.kernels
    frow: np.ndarray  # FR_* row of rtp_kernel
    si: np.ndarray  # (2 * MAX_SSRCS, S_LEN): the stream rows, in FR_STREAMS order
    sf: np.ndarray  # (2 * MAX_SSRCS, SF_LEN)
    va: np.ndarray  # (2 * MAX_SSRCS, V_LEN): talk-spurt state
    tn: np.ndarray  # (2 * MAX_SSRCS, T_LEN): tone state
    tm: dict[int, np.ndarray]  # stream slot -> its transits (activity.timing), judged ones
    events: dict[tuple[int, int], _StreamEvents]  # (direction, SSRC) -> spurts and DTMF
    rtcp: list[dict[str, Any]] = field(default_factory=list)  # sender reports, report blocks


@dataclass(slots=True)
class RtpFlowStats:
    """What the tracker saw on one ended flow."""

    flow_id: int
    streams: list[MediaStream] = field(default_factory=list)
    rtcp_packets: tuple[int, int] = (0, 0)  # per direction
    truncated_packets: tuple[int, int] = (0, 0)  # version 2, header cut short
    ssrc_overflow_packets: tuple[int, int] = (0, 0)  # SSRCs beyond MAX_SSRCS
    # RTCP (RFC 3550 §6.4) seen on the flow: {"kind": "sr", ts, ssrc, ntp_mid, direction}
    # and {"kind": "block", ts, about_ssrc, fraction_lost, cumulative_lost, jitter_ts,
    # lsr, dlsr, direction}; quality.rtcp_reports turns them into per-stream figures.
    rtcp: list[dict[str, Any]] = field(default_factory=list)


class RtpStreamTracker:
    """FlowHooks: per-(flow, direction, SSRC) RTP statistics (RFC 3550 appendix A)."""

    def __init__(
        self,
        capacity: int = FlowConfig().max_flows,
        rtpmap: RtpMap | None = None,
        max_pending_flows: int = MAX_PENDING_FLOWS,
        tones: bool = True,
    ) -> None:
        """``capacity``: the flow table's ``flows.max_flows`` (slots are indices below it).
        ``rtpmap``: SDP payload-type overrides {pt: (encoding, clock Hz)} for every flow.
        ``tones``: analyse G.711/L16 frames for tones (activity.tones)."""
        self.rtpmap = dict(rtpmap or {})
        self.clock_hz = clock_table_hz(self.rtpmap)
        self.tones = tones
        self.codecs = TN.codec_table(self.rtpmap)
        self.scratch = np.zeros(TN.MAX_FRAME_SAMPLES, np.float64)
        self.max_pending_flows = max_pending_flows
        # np.zeros is calloc: slots never used cost no RSS.
        self.slot_row = np.zeros(capacity, np.int64)
        self.frows = np.zeros((INITIAL_FLOW_ROWS, K.FR_LEN), np.int64)
        self.ffree = np.zeros(INITIAL_FLOW_ROWS, np.int64)
        self.new_rows = np.zeros(INITIAL_FLOW_ROWS, np.int64)
        self.si = np.zeros((INITIAL_STREAM_ROWS, K.S_LEN), np.int64)
        self.sf = np.zeros((INITIAL_STREAM_ROWS, K.SF_LEN), np.float64)
        self.sfree = np.zeros(INITIAL_STREAM_ROWS, np.int64)
        self.va = TS.new_state(INITIAL_STREAM_ROWS)
        self.tn = TN.new_state(INITIAL_STREAM_ROWS if tones else 1)
        self.tm = TM.new_state(INITIAL_STREAM_ROWS if tones else 1)
        self.tmw = TM.new_state(TIMING_WINDOW_BUFFER if tones else 1)
        self.ev = np.zeros((EVENT_BUFFER, K.EV_LEN), np.int64)
        # (flow id, direction, SSRC) -> events of live streams; moved to _Ended at expiry
        self._events: dict[int, dict[tuple[int, int], _StreamEvents]] = {}
        self._rtcp: dict[int, list[dict[str, Any]]] = {}  # flow id -> its RTCP, live flows
        self.meta = np.zeros(K.M_LEN, np.int64)
        self._row_of: dict[int, int] = {}  # flow id -> flow row, for tracked flows only
        self._ended: OrderedDict[int, _Ended] = OrderedDict()
        self.dropped_results = 0
        self._no_extra = np.zeros(1, np.uint8)
        # Media over TCP (RFC 4571, TURN over TCP): lanes per TCP direction and the frames
        # cut out of a batch's segments (quality.tcp_framing).
        self.slot_lane = np.zeros(2 * capacity, np.int64)
        self.lanes, self.lane_buf, self.lfree = TF.new_lanes(INITIAL_TCP_LANES)
        self.lane_meta = np.zeros(TF.LM_LEN, np.int64)
        self.tcp_out = np.zeros(INITIAL_TCP_OUT_BYTES, np.uint8)
        self.tcp_frames = np.zeros((TF.FRAME_ROWS, INITIAL_TCP_FRAMES), np.int64)

    # -- FlowHooks ------------------------------------------------------------------

    def on_init(self, d: DecodedBatch, a: FlowAssignment, first_packets: np.ndarray) -> None:
        # Nothing to do: a flow row records its flow id, and the kernel starts a new row
        # when a slot's packets carry another flow id (a reused slot).
        return None

    def on_update(self, d: DecodedBatch, a: FlowAssignment) -> None:
        n = len(d)
        if n == 0:
            return
        extra, in_extra, l4_off = self._no_extra, np.zeros(n, np.uint8), d.l4_off
        if d.reassembled:
            # Datagrams rebuilt from fragments live outside the window: give the kernel
            # their payloads in a side buffer.
            l4_off = d.l4_off.copy()
            chunks = []
            at = 0
            for i, payload in d.reassembled.items():
                in_extra[i] = K.IN_EXTRA
                l4_off[i] = at
                chunks.append(payload)
                at += len(payload)
            extra = np.frombuffer(b"".join(chunks) or b"\0", np.uint8)
        frames = self._cut_tcp_media(d, a, in_extra, l4_off)
        if frames:
            arrays = self._with_frames(d, a, extra, in_extra, l4_off, frames)
        else:
            arrays = (extra, in_extra, l4_off, d.l4_len, d.status, d.proto, d.ts_ns,
                      a.slot, a.flow_id, a.direction)  # fmt: skip
        self._track(d.packets.buf, arrays, self.slot_row)

    def _track(self, buf: np.ndarray, arrays: tuple[np.ndarray, ...], slot_row: np.ndarray) -> None:
        """Run the kernel over packet columns ``arrays`` (extra .. direction), growing
        the pools as it asks."""
        start = 0
        while True:
            stopped, why = K.track_media(
                buf, *arrays, start,
                slot_row, self.frows, self.ffree, self.si, self.sf, self.sfree,
                self.meta, self.new_rows, self.clock_hz, self.va, self.ev,
                self.tn, self.codecs, self.scratch, self.tones, self.tm, self.tmw,
            )  # fmt: skip
            self._collect_new_rows()
            self._drain_events()
            if why == K.DONE:
                return
            if why == K.FLOW_POOL_FULL:
                self._grow_flow_rows()
            elif why == K.STREAM_POOL_FULL:
                self._grow_stream_rows()
            start = int(stopped)

    def on_expire(self, ended: np.ndarray) -> None:
        high = int(self.lane_meta[TF.LM_HIGH])
        if high:
            lanes = np.flatnonzero(np.isin(self.lanes[:high, TF.LN_FLOW_ID], ended[:, F.F_ID]))
            if lanes.size:
                self._read_left_aside(ended, lanes)
                TF.free_lanes(lanes, self.slot_lane, self.lanes, self.lfree, self.lane_meta)
        ids = ended[:, F.F_ID].tolist()
        rows: list[int] = []
        at: list[int] = []
        for k, flow_id in enumerate(ids):
            r = self._row_of.pop(flow_id, None)
            if r is not None:
                rows.append(r)
                at.append(k)
        if not rows:
            return
        # Copy the ended flows' rows out (numpy, all at once) and free the pools; the
        # records are built only for the flows the caller asks for (most flows with an
        # RTP-looking packet are not RTP: DNS ids, random payloads).
        picked = np.array(rows, np.int64)
        frows = self.frows[picked]
        refs = np.maximum(frows[:, K.FR_STREAMS :] - 1, 0)
        si, sf, va = self.si[refs], self.sf[refs], self.va[refs]
        tn = self.tn[refs] if self.tones else TN.new_state(refs.size).reshape(*refs.shape, -1)
        # Transits only of streams with enough packets to judge (most RTP-looking flows
        # are not RTP: a flow of random payloads fills all 8 stream slots with a few
        # packets each), so a batch of ended flows does not copy 8 kB each.
        tm: list[dict[int, np.ndarray]] = [{} for _ in rows]
        if self.tones:
            judged = (si[..., K.S_PACKETS] >= TM.MIN_PACKETS) & (frows[:, K.FR_STREAMS :] > 0)
            for flow_at, slot in zip(*np.nonzero(judged), strict=True):
                tm[flow_at][int(slot)] = self.tm[refs[flow_at, slot]].copy()
        flows = ended[at]
        K.free_flow_rows(picked, self.slot_row, self.frows, self.ffree, self.sfree, self.meta)
        for j, k in enumerate(at):
            events = self._events.pop(ids[k], {})
            rtcp = self._rtcp.pop(ids[k], [])
            self._ended[ids[k]] = _Ended(
                flows[j], frows[j], si[j], sf[j], va[j], tn[j], tm[j], events, rtcp
            )
        while len(self._ended) > self.max_pending_flows:
            self._ended.popitem(last=False)
            self.dropped_results += 1

    # -- for the caller -------------------------------------------------------------

    def pop(self, flow_id: int) -> RtpFlowStats | None:
        """The ended flow's statistics (None: no RTP-looking packet), handed out once."""
        ended = self._ended.pop(flow_id, None)
        return None if ended is None else self._stats(ended)

    @property
    def capture_silences(self) -> int:
        """Stretches of CAPTURE_SILENCE_NS or more in which nothing at all was captured."""
        return int(self.meta[K.M_SILENCES])

    def discard(self, flow_id: int) -> None:
        """Forget an ended flow's results unread (it was not media after all)."""
        self._ended.pop(flow_id, None)

    def streams_for(self, flow_ids: Iterable[int]) -> list[MediaStream]:
        """The streams of ended flows (e.g. those judged RTP), handed out once."""
        out: list[MediaStream] = []
        for flow_id in flow_ids:
            stats = self.pop(int(flow_id))
            if stats is not None:
                out.extend(stats.streams)
        return out

    @property
    def live_flows(self) -> int:
        """Flows with tracking state (RTP-looking packets) not yet ended."""
        return len(self._row_of)

    # -- internals ------------------------------------------------------------------

    def _cut_tcp_media(
        self, d: DecodedBatch, a: FlowAssignment, in_extra: np.ndarray, l4_off: np.ndarray
    ) -> int:
        """Cut the RTP/RTCP (or TURN) frames out of the batch's TCP segments; returns how
        many (in ``tcp_frames`` and ``tcp_out``)."""
        self.lane_meta[TF.LM_FRAMES] = 0
        self.lane_meta[TF.LM_OUT] = 0
        start = 0
        while True:
            stopped, why = TF.cut_frames(
                d.packets.buf, in_extra, l4_off, d.l4_len, d.status, d.proto, d.sport,
                d.dport, d.tcp_flags, d.ts_ns, a.slot, a.flow_id, a.direction, start,
                self.slot_lane, self.lanes,
                self.lane_buf, self.lfree, self.lane_meta, self.tcp_out, self.tcp_frames,
            )  # fmt: skip
            if why == TF.DONE:
                return int(self.lane_meta[TF.LM_FRAMES])
            if why == TF.LANES_FULL:
                size = 2 * self.lanes.shape[0]
                lanes, lane_buf, lfree = TF.new_lanes(size)
                lanes[: self.lanes.shape[0]] = self.lanes
                lane_buf[: self.lanes.shape[0]] = self.lane_buf
                lfree[: self.lanes.shape[0]] = self.lfree
                self.lanes, self.lane_buf, self.lfree = lanes, lane_buf, lfree
            else:
                self._grow_tcp_out()
            start = int(stopped)

    def _grow_tcp_out(self) -> None:
        """Twice the room for frames cut from TCP (the framing kernels stop at OUT_FULL
        before touching anything, and are called again)."""
        self.tcp_out = _grown(self.tcp_out, 2 * self.tcp_out.shape[0])
        self.tcp_frames = _grown(self.tcp_frames.T, 2 * self.tcp_frames.shape[1]).T.copy()

    def _read_left_aside(self, ended: np.ndarray, lanes: np.ndarray) -> None:
        """Segments the ended flows' TCP lanes (``lanes``) set aside before a hole that
        never filled are read now (the flow is over: no retransmission will come), timed
        by the flow's last packet as at a FIN, their frames marked as after a capture hole."""
        ending = lanes[self.lanes[lanes, TF.LN_STASHED] > 0]
        if ending.size == 0:
            return
        self.lane_meta[TF.LM_FRAMES] = 0
        self.lane_meta[TF.LM_OUT] = 0
        start = 0
        while True:
            stopped, why = TF.read_left_aside(
                ending, start, self.lanes, self.lane_buf, self.lane_meta, self.tcp_out,
                self.tcp_frames,
            )  # fmt: skip
            if why == TF.DONE:
                break
            self._grow_tcp_out()
            start = int(stopped)
        count = int(self.lane_meta[TF.LM_FRAMES])
        if count == 0:
            return
        frames = self.tcp_frames[:, :count]
        lane = ending[frames[TF.FRAME_PACKET]]
        flow_id = self.lanes[lane, TF.LN_FLOW_ID]
        last_ns = dict(zip(ended[:, F.F_ID].tolist(), ended[:, F.F_LAST_NS].tolist(), strict=True))
        # The flow-table slots may hold other flows by now: the kernel finds each ended
        # flow's row through a slot map of its own, one place per flow (both directions'
        # lanes share it, and a flow with no row yet gets exactly one).
        flows, place = np.unique(flow_id, return_inverse=True)
        place = place.astype(np.int64)
        slot_row = np.array([self._row_of.get(f, -1) + 1 for f in flows.tolist()], np.int64)
        used = int(self.lane_meta[TF.LM_OUT])
        arrays = (
            self.tcp_out[:used],
            (K.IN_EXTRA | frames[TF.FRAME_FLAGS]).astype(np.uint8),
            frames[TF.FRAME_OFFSET],
            frames[TF.FRAME_LENGTH].astype(np.int32),
            np.full(count, S.OK, np.uint8),
            np.full(count, K.UDP, np.uint8),  # datagrams now, as the kernel reads
            np.array([last_ns[f] for f in flow_id.tolist()], np.int64),
            place,
            flow_id,
            self.lanes[lane, TF.LN_DIR].astype(np.uint8),
        )
        # Every frame is in the side buffer; ``buf`` is read-only as a mapped file's is,
        # so the kernel runs the machine code it has (a writable one is another build).
        buf = arrays[0].view()
        buf.flags.writeable = False
        self._track(buf, arrays, slot_row)

    def _with_frames(
        self,
        d: DecodedBatch,
        a: FlowAssignment,
        extra: np.ndarray,
        in_extra: np.ndarray,
        l4_off: np.ndarray,
        count: int,
    ) -> tuple[np.ndarray, ...]:
        """The kernel's packet columns with each frame cut from a TCP segment placed
        right after that segment, as a datagram of its own in the side buffer."""
        frames = self.tcp_frames[:, :count]
        pkt, off = frames[TF.FRAME_PACKET], frames[TF.FRAME_OFFSET]
        length, flags = frames[TF.FRAME_LENGTH], frames[TF.FRAME_FLAGS]
        n = len(d)
        order = np.argsort(np.concatenate([2 * np.arange(n), 2 * pkt + 1]), kind="stable")
        used = int(self.lane_meta[TF.LM_OUT])
        merged = np.concatenate([extra, self.tcp_out[:used]])

        def placed(column: np.ndarray, frames: np.ndarray) -> np.ndarray:
            return np.concatenate([column, frames.astype(column.dtype)])[order]

        return (
            merged,
            placed(in_extra, K.IN_EXTRA | flags),  # and a capture hole before (tcp_framing)
            placed(l4_off, off + extra.shape[0]),
            placed(d.l4_len, length),
            placed(d.status, np.full(count, S.OK)),
            placed(d.proto, np.full(count, K.UDP)),  # datagrams now, as the kernel reads
            placed(d.ts_ns, d.ts_ns[pkt]),
            placed(a.slot, a.slot[pkt]),
            placed(a.flow_id, a.flow_id[pkt]),
            placed(a.direction, a.direction[pkt]),
        )

    def _collect_new_rows(self) -> None:
        count = int(self.meta[K.M_NEW])
        if count:
            rows = self.new_rows[:count]
            self._row_of.update(
                zip(self.frows[rows, K.FR_FLOW_ID].tolist(), rows.tolist(), strict=True)
            )
            self.meta[K.M_NEW] = 0

    def _grow_flow_rows(self) -> None:
        size = 2 * self.frows.shape[0]
        self.frows = _grown(self.frows, size)
        self.ffree = _grown(self.ffree, size)
        self.new_rows = _grown(self.new_rows, size)

    def _grow_stream_rows(self) -> None:
        size = 2 * self.si.shape[0]
        self.si = _grown(self.si, size)
        self.sf = _grown(self.sf, size)
        self.sfree = _grown(self.sfree, size)
        self.va = np.concatenate([self.va, TS.new_state(size - self.va.shape[0])])
        if self.tones:
            self.tn = np.concatenate([self.tn, TN.new_state(size - self.tn.shape[0])])
            self.tm = np.concatenate([self.tm, TM.new_state(size - self.tm.shape[0])])

    def _drain_events(self) -> None:
        """Move the kernel's events to their streams (rows are reused later: key them by
        flow id, direction and SSRC now)."""
        count = int(self.meta[K.M_EVENTS])
        if not count:
            return
        ev = self.ev[:count]
        kinds = ev[:, K.EV_KIND]
        rtcp = (kinds == K.EV_RTCP_SR) | (kinds == K.EV_RTCP_BLOCK)
        if rtcp.any():
            self._drain_rtcp(ev[rtcp])
            ev = ev[~rtcp]
            count = ev.shape[0]
            if not count:
                self.meta[K.M_EVENTS] = 0
                self.meta[K.M_TM_WINDOWS] = 0
                return
        rows = ev[:, K.EV_ROW]
        flow_rows = self.si[rows, K.S_FLOW_ROW]
        flow_ids = self.frows[flow_rows, K.FR_FLOW_ID].tolist()
        directions = self.si[rows, K.S_DIRECTION].tolist()
        ssrcs = self.si[rows, K.S_SSRC].tolist()
        origins = self.si[rows, K.S_TS_FIRST].tolist()
        clocks = self.tn[rows, TN.T_CLOCK_HZ].tolist() if self.tones else [0.0] * count
        for j, (kind, _, a, b, c, d, e) in enumerate(ev.tolist()):
            streams = self._events.setdefault(flow_ids[j], {})
            events = streams.setdefault((directions[j], ssrcs[j]), _StreamEvents())
            if kind == K.EV_SPURT:
                if len(events.spurts) < MAX_SPURTS_PER_STREAM:
                    events.spurts.append([a / 1e9, b / 1e9])
                else:
                    events.dropped += 1
            elif kind == K.EV_TONE_RUN:
                if len(events.tone_runs) < MAX_TONE_RUNS_PER_STREAM:
                    events.tone_runs.append(TN.run_record(a, b, c, d, e, origins[j], clocks[j]))
                else:
                    events.tone_runs_dropped += 1
            elif kind == K.EV_TIMING_WINDOW:
                events.judge_timing_window(self.tmw[b], a)
            elif kind == K.EV_INBAND_DTMF:
                if len(events.inband_dtmf) < MAX_DTMF_PER_STREAM:
                    events.inband_dtmf.append(
                        {"ts": a / 1e9, "digit": DTMF_DIGITS[b], "via": "in-band"}
                    )
            elif len(events.dtmf) < MAX_DTMF_PER_STREAM:
                events.dtmf.append({"ts": a / 1e9, "digit": DTMF_DIGITS[b], "via": "RFC 4733"})
        self.meta[K.M_EVENTS] = 0
        self.meta[K.M_TM_WINDOWS] = 0

    def _drain_rtcp(self, ev: np.ndarray) -> None:
        """RTCP events name their flow row (RTCP has no stream row)."""
        flow_ids = self.frows[ev[:, K.EV_ROW], K.FR_FLOW_ID].tolist()
        for flow_id, (kind, _, a, b, c, d, e) in zip(flow_ids, ev.tolist(), strict=True):
            reports = self._rtcp.setdefault(flow_id, [])
            if len(reports) >= MAX_RTCP_PER_FLOW:
                continue
            if kind == K.EV_RTCP_SR:
                reports.append({"kind": "sr", "ts": a / 1e9, "ssrc": b,
                                "ntp_mid": c & 0xFFFFFFFF, "direction": c >> 32})  # fmt: skip
            else:
                cumulative = c & 0xFFFFFF
                if cumulative & 0x800000:  # RFC 3550 §6.4.1: a signed 24-bit number
                    cumulative -= 1 << 24
                reports.append({
                    "kind": "block", "ts": a / 1e9, "about_ssrc": b,
                    "fraction_lost": (d >> 32) / 256.0, "cumulative_lost": cumulative,
                    "jitter_ts": d & 0xFFFFFFFF, "lsr": e, "dlsr": c >> 25,
                    "direction": (c >> 24) & 1,
                })  # fmt: skip

    def _stats(self, ended: _Ended) -> RtpFlowStats:
        flow = ended.flow
        fr = ended.frow.tolist()
        version = int(flow[F.F_IPVER])
        ends = (
            (format_ip(version, int(flow[F.F_SRC_HI]), int(flow[F.F_SRC_LO])),
             int(flow[F.F_SPORT])),
            (format_ip(version, int(flow[F.F_DST_HI]), int(flow[F.F_DST_LO])),
             int(flow[F.F_DPORT])),
        )  # fmt: skip
        stats = RtpFlowStats(
            flow_id=int(flow[F.F_ID]),
            rtcp_packets=(fr[K.FR_RTCP], fr[K.FR_RTCP + 1]),
            truncated_packets=(fr[K.FR_TRUNCATED], fr[K.FR_TRUNCATED + 1]),
            ssrc_overflow_packets=(fr[K.FR_OVERFLOW], fr[K.FR_OVERFLOW + 1]),
            rtcp=ended.rtcp,
        )
        for k, ref in enumerate(fr[K.FR_STREAMS : K.FR_LEN]):
            if ref:
                stream = self._stream(
                    stats.flow_id, ends, ended.si[k].tolist(), ended.sf[k].tolist()
                )
                events = ended.events.get((stream.direction, stream.ssrc), _StreamEvents())
                spurts = list(events.spurts)
                tail = TS.close_spurt(ended.va, k)
                if tail is not None:
                    spurts.append([tail[0] / 1e9, tail[1] / 1e9])
                stream.talk_spurts = spurts
                stream.activity_method = TS.method_name(ended.va, k)
                if TS.is_opus(ended.va, k):
                    stream.payload_codec = OPUS
                stream.talk_spurts_dropped = events.dropped
                stream.dtmf = events.dtmf
                if self.tones:
                    self._add_tones(stream, events, ended.tn, k, ended.si[k])
                    stream.timing = self._timing(ended, k, events)
                stats.streams.append(stream)
        return stats

    @staticmethod
    def _timing(ended: _Ended, k: int, events: _StreamEvents) -> dict[str, Any] | None:
        """The judgement of stream slot ``k``'s transits (its complete windows and the one
        it ended in), with the clock they were taken against; ``clock_provisional`` when no
        payload type table or rtpmap named it (a dynamic type: the kernel's pick from the
        timestamps, see rtp_kernel._transit_clock)."""
        kept = ended.tm.get(k)
        if kept is not None:  # the window the stream ended in (an ended flow's: read once)
            events.judge_timing_window(kept, int(ended.si[k][K.S_TM_WINDOW]))
        judged = TM.combine(
            events.timing_windows, events.timing_judged, events.timing_coded_left_out
        )
        if judged is not None:
            s = ended.si[k]
            judged["clock_hz"] = int(s[K.S_TM_CLOCK_HZ])
            judged["clock_provisional"] = not int(s[K.S_CLOCK_HZ])
        return judged

    @staticmethod
    def _add_tones(
        stream: MediaStream, events: _StreamEvents, tn: np.ndarray, k: int, s: np.ndarray
    ) -> None:
        stream.tones = TN.summary(tn, k)
        runs = list(events.tone_runs)
        what, a, b, c, d, e = TN.close_run(tn, k)  # the run still open at the end
        if what == TN.EMIT_RUN:
            origin = int(s[K.S_TS_FIRST])
            runs.append(TN.run_record(a, b, c, d, e, origin, float(tn[k, TN.T_CLOCK_HZ])))
        stream.tone_runs = runs
        stream.tone_runs_dropped = events.tone_runs_dropped
        stream.inband_dtmf = events.inband_dtmf

    def _stream(
        self,
        flow_id: int,
        ends: tuple[tuple[str, int], tuple[str, int]],
        s: list[int],
        sf: list[float],
    ) -> MediaStream:
        jitter, max_jitter, mean = sf[: K.SF_CANDIDATES]
        direction = s[K.S_DIRECTION]
        (src_ip, src_port), (dst_ip, dst_port) = ends if direction == 0 else ends[::-1]
        expected = s[K.S_MAX_EXT] - s[K.S_MIN_EXT] + 1
        lost = expected - s[K.S_PACKETS]
        pt = s[K.S_PT_FIRST]
        clock = s[K.S_CLOCK_HZ] or None
        mean_jitter: float | None = None
        why = None
        candidates = None
        if clock is None:
            why = jitter_unknown_reason(pt, self.rtpmap) or "no packet with a known clock"
            if s[K.S_DYN_PT]:
                candidates = _candidates(s, sf)
        elif s[K.S_JITTER_PACKETS] == 0 and s[K.S_PACKETS] > 1:
            # Every step was irregular (a marker bit, comfort noise, a timestamp going
            # back): A.8 as Wireshark applies it skips those, so nothing was measured,
            # and 0 ms would read as a perfect path. aiortc marks every audio packet.
            why = (
                "no packet followed another without a marker bit or comfort noise "
                f"({s[K.S_MARKERS]} of {s[K.S_PACKETS]} marked): no interarrival step to measure"
            )
        else:
            mean_jitter = mean
        measured = mean_jitter is not None
        return MediaStream(
            src_ip=src_ip,
            src_port=src_port,
            dst_ip=dst_ip,
            dst_port=dst_port,
            ssrc=s[K.S_SSRC],
            payload_type=pt,
            codec=encoding_name(pt, self.rtpmap),
            packets=s[K.S_PACKETS],
            lost=lost,
            loss_pct=100.0 * lost / expected,
            duplicates=s[K.S_DUPLICATES],
            out_of_order=s[K.S_OUT_OF_ORDER],
            capture_gap_missing=s[K.S_GAP_MISSING],
            loss_runs=max(s[K.S_LOSS_RUNS] - s[K.S_GAP_RUNS], 0),
            longest_gap_ms=s[K.S_LONGEST_GAP_NS] / 1e6,
            longest_gap_start=(
                s[K.S_LONGEST_GAP_START_NS] / 1e9 if s[K.S_LONGEST_GAP_NS] > 0 else None
            ),
            outages=s[K.S_OUTAGES],
            outage_s=s[K.S_OUTAGE_NS] / 1e9,
            longest_outage_ms=s[K.S_LONGEST_OUTAGE_NS] / 1e6,
            longest_outage_start=(
                s[K.S_LONGEST_OUTAGE_START_NS] / 1e9 if s[K.S_OUTAGES] > 0 else None
            ),
            longest_outage_lost=s[K.S_LONGEST_OUTAGE_SKIPPED],
            jb50_late=s[K.S_JB_LATE_SHORT] if s[K.S_JB_JUDGED] else None,
            jb200_late=s[K.S_JB_LATE_LONG] if s[K.S_JB_JUDGED] else None,
            jitter_ms=mean_jitter,
            max_delta_ms=s[K.S_MAX_DELTA_NS] / 1e6,
            flow_id=flow_id,
            direction=direction,
            expected=expected,
            first_seq=s[K.S_FIRST_SEQ],
            last_seq=s[K.S_LAST_SEQ],
            payload_type_changed=s[K.S_PT_CHANGES] > 0,
            last_payload_type=s[K.S_PT_LAST],
            markers=s[K.S_MARKERS],
            first_seen=s[K.S_FIRST_NS] / 1e9,
            last_seen=s[K.S_LAST_NS] / 1e9,
            rtp_timestamp_first=s[K.S_TS_FIRST],
            rtp_timestamp_last=s[K.S_TS_LAST] & 0xFFFFFFFF,
            clock_hz=clock,
            max_jitter_ms=max_jitter if measured else None,
            jitter_last_ms=jitter if measured else None,
            jitter_ts_units=jitter * clock / 1000.0 if clock and measured else None,
            jitter_unknown=why,
            clock_candidates=candidates,
        )


def _candidates(s: list[int], sf: list[float]) -> ClockCandidates:
    """The kernel's per-candidate-clock columns of one stream row."""
    cols = [
        sf[K.SF_CANDIDATES + col :: K.SF_PER_CANDIDATE]
        for col in (K.SF_C_JITTER, K.SF_C_MEAN_JITTER, K.SF_C_MAX_JITTER)
    ]
    return ClockCandidates(
        payload_type=s[K.S_DYN_PT] - 1,
        clocks_hz=K.CANDIDATE_CLOCKS_HZ,
        jitter_last_ms=tuple(cols[0]),
        mean_jitter_ms=tuple(cols[1]),
        max_jitter_ms=tuple(cols[2]),
        regular_packets=s[K.S_DYN_JITTER_PACKETS],
        rtp_ticks=s[K.S_DYN_TICKS],
        arrival_s=s[K.S_DYN_NS] / 1e9,
    )


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, *a.shape[1:]), a.dtype)
    out[: a.shape[0]] = a
    return out
