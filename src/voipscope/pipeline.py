"""The one module that knows the order of the stages (DESIGN §1).

source -> decode (+ fragment reassembly) -> flows -> dissect -> hooks -> classify -> records
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from voipscope.addresses import format_ip
from voipscope.anomalies import AnomalyLog
from voipscope.classify.arbiter import Arbiter
from voipscope.classify.behaviour import BehaviourTracker
from voipscope.config import Config
from voipscope.decode import DecodedBatch, FragmentReassembler, decode_batch
from voipscope.decode import status as S
from voipscope.decode.kernel import DOUBLE_DOT1Q
from voipscope.dissect.registry import DISSECTORS
from voipscope.dissect.stage import DissectStage
from voipscope.errors import ConfigError, SourceError
from voipscope.flows import FlowHooks, FlowTable, new_assignment
from voipscope.output.flow_records import flows_to_batch
from voipscope.prefetch import prefetch
from voipscope.source import CaptureInfo, PacketBatch, read_capture
from voipscope.source.linktypes import linktype_name

# Double-tagged frames above this share of their outer VLAN's frames (over the run so
# far) are a trunk's encapsulation, not an oddity (see _report_double_tagged).
TRUNK_SHARE = 0.5
VLAN_IDS = 4096  # 802.1Q VID is 12 bits

STATUS_NAMES = {
    S.OK: "decoded", S.NON_IP: "non_ip", S.TRUNCATED_LINK: "truncated_link",
    S.TRUNCATED_IP: "truncated_ip", S.TRUNCATED_L4: "truncated_l4",
    S.BAD_IP_VERSION: "bad_ip_version", S.BAD_IP_HEADER_LEN: "bad_ip_header_len",
    S.BAD_IP_TOTAL_LEN: "bad_ip_total_len", S.UNSUPPORTED_LINK: "unsupported_link",
    S.FRAGMENT: "fragment_unreassembled", S.TOO_MANY_HEADERS: "too_many_headers",
    S.FRAGMENT_HELD: "fragment",
}  # fmt: skip


@dataclass(slots=True)
class RunStats:
    """What a run saw: per input, per decode status, anomalies. Exact counts."""

    inputs: list[CaptureInfo] = field(default_factory=list)
    packets_by_status: dict[str, int] = field(default_factory=dict)
    flows: int = 0
    flows_evicted: int = 0
    datagrams_reassembled: int = 0
    anomalies: AnomalyLog = field(default_factory=AnomalyLog)

    @property
    def packets(self) -> int:
        return sum(info.packets for info in self.inputs)

    def warnings(self) -> list[str]:
        out = [w for info in self.inputs for w in info.warnings()]
        if self.flows_evicted:
            out.append(
                f"flow table overflow: {self.flows_evicted} flows evicted early "
                "(raise flows.max_flows)"
            )
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "packets": self.packets,
            "packets_by_status": dict(sorted(self.packets_by_status.items())),
            "flows": self.flows,
            "flows_evicted": self.flows_evicted,
            "datagrams_reassembled": self.datagrams_reassembled,
            "anomalies": self.anomalies.as_dict(),
            "inputs": [
                {"path": i.path, "format": i.format, "compressed": i.compressed,
                 "linktypes": sorted(i.linktypes), "packets": i.packets,
                 "truncated_at": i.truncated_at, "corrupt_at": i.corrupt_at,
                 **({} if i.kernel_received is None else
                    {"kernel_received": i.kernel_received, "kernel_dropped": i.kernel_dropped})}
                for i in self.inputs
            ],
            "warnings": self.warnings(),
        }  # fmt: skip

    def merge(self, other: RunStats) -> None:
        """Add the counts of a run over other inputs (scale_out: one run per input)."""
        self.inputs.extend(other.inputs)
        for name, count in other.packets_by_status.items():
            self.packets_by_status[name] = self.packets_by_status.get(name, 0) + count
        self.flows += other.flows
        self.flows_evicted += other.flows_evicted
        self.datagrams_reassembled += other.datagrams_reassembled
        self.anomalies.merge(other.anomalies)


class LiveSource(Protocol):
    """What ``FlowPipeline.run_live`` reads: ``voipscope.source.live.LiveCapture``."""

    info: CaptureInfo

    def batches(self) -> Iterator[PacketBatch]: ...


class FlowPipeline:
    """Runs captures through decode and the flow table; yields Flow record batches."""

    def __init__(
        self,
        config: Config | None = None,
        hooks: Sequence[FlowHooks] = (),
        first_flow_id: int = 0,
        inline: Any = None,
    ) -> None:
        """``inline``: a ``voipscope.inline.InlineStage`` that asks a verdict hook about
        flows, calls and alerts as they happen (``run_all``/``run_live`` only)."""
        self.config = config or Config()
        self.hooks = list(hooks)
        self.inline = inline
        self.stats = RunStats(anomalies=AnomalyLog(self.config.anomalies.max_records_per_name))
        self._next_flow_id = first_flow_id
        # Frames seen per outer VLAN id, all and double-tagged: what a trunk is judged by.
        self._vlan_frames = np.zeros(VLAN_IDS, np.int64)
        self._vlan_double_frames = np.zeros(VLAN_IDS, np.int64)
        self.dissect: DissectStage | None = None
        self.arbiter: Arbiter | None = None
        self.behaviour: BehaviourTracker | None = None
        if self.config.dissect.enabled:
            self.dissect = DissectStage(
                self.config.dissect, self.stats.anomalies, DISSECTORS, self.config.flows.max_flows
            )
            self.arbiter = Arbiter(self.dissect.knowledge, self.dissect.live_on_socket)
            if self.config.dissect.behaviour:
                self.behaviour = BehaviourTracker(self.config.flows.max_flows)
        if inline is not None:
            if self.dissect is None:
                raise ConfigError("inline verdict hooks need dissect.enabled=true")
            self.dissect.on_findings = inline.on_findings
            inline.arbiter = self.arbiter
            inline.anomalies = self.stats.anomalies
            inline.contexts = self.dissect.contexts

    def run(
        self, inputs: Sequence[str], progress: Callable[[CaptureInfo], None] | None = None
    ) -> Iterator[pa.RecordBatch]:
        for path in inputs:
            yield from self.run_one(path, progress)

    def run_one(
        self,
        path: str,
        progress: Callable[[CaptureInfo], None] | None = None,
        every_batch: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """Flow records of one input; ``every_batch``: also None after a packet batch
        that ended no flow (for callers that act after every batch)."""
        info = CaptureInfo(path=path)
        self.stats.inputs.append(info)
        batches = read_capture(path, self.config.source, info)
        for batch in self._run_batches(path, batches, info, progress):
            if batch is not None or every_batch:
                yield batch  # type: ignore[misc]

    def _run_batches(
        self,
        path: str,
        packets: Iterator[PacketBatch],
        info: CaptureInfo,
        progress: Callable[[CaptureInfo], None] | None = None,
    ) -> Iterator[pa.RecordBatch | None]:
        """Flow records of one source's packet batches; after a packet batch that ended no
        flow, None, so a live caller can act on every batch (files skip the Nones)."""
        cfg = self.config
        anomalies = self.stats.anomalies
        table = FlowTable(cfg.flows, anomalies, first_flow_id=self._next_flow_id)
        reassembler = FragmentReassembler(cfg.decode, anomalies)
        status_counts = np.zeros(S.N_STATUS, np.int64)
        if self.inline is not None:
            self.inline.in_force.table = table  # the decisions' targets are matched in it

        def decoded() -> Iterator[DecodedBatch]:
            for batch in packets:
                d = decode_batch(batch, cfg.decode.decapsulate_gtp)
                reassembler.process(d)
                yield d

        try:
            for d in prefetch(decoded(), cfg.source.prefetch_batches):
                if self.inline is not None:
                    # Decisions made after the last batch was counted, against it.
                    self.inline.in_force.catch_up()
                a = new_assignment(len(d))
                ended = list(table.update(d, a))
                clock_ns = d.packets.clock_ns
                if clock_ns is not None:
                    # Live capture: the capture clock moved on without packets (source/live).
                    ended.extend(table.sweep(clock_ns))
                status_counts += np.bincount(d.status, minlength=S.N_STATUS)[: S.N_STATUS]
                self._report_decode_anomalies(d)
                own = [s for s in (self.dissect, self.behaviour) if s is not None]
                stages = [*own, *self.hooks]
                if stages:
                    first_packets = np.flatnonzero(a.seq == 1)
                    for hook in stages:
                        hook.on_init(d, a, first_packets)
                        hook.on_update(d, a)
                    self._hand_out_messages()
                    if self.dissect is not None:
                        table.mark_call_media(*self.dissect.take_call_media())
                if self.inline is not None:
                    self.inline.after_batch(d, a, ended)
                if clock_ns is not None:
                    for hook in self.hooks:
                        on_clock = getattr(hook, "on_clock", None)  # optional in FlowHooks
                        if on_clock is not None:
                            on_clock(clock_ns)
                emitted = False
                for batch in self._emit(ended, path):
                    emitted = True
                    yield batch
                if not emitted:
                    yield None
                if progress is not None:
                    progress(info)
            reassembler.flush()
            if self.inline is not None:
                self.inline.in_force.catch_up()
            final = list(table.flush())
            if self.inline is not None:
                self.inline.in_force.flushed(final)
            yield from self._emit(final, path)
        finally:
            self._next_flow_id = table.next_flow_id
            self.stats.flows_evicted += table.evicted
            self.stats.datagrams_reassembled += reassembler.datagrams_reassembled
            for code, count in enumerate(status_counts.tolist()):
                if count:
                    name = STATUS_NAMES[code]
                    self.stats.packets_by_status[name] = (
                        self.stats.packets_by_status.get(name, 0) + count
                    )
        unsupported = int(status_counts[S.UNSUPPORTED_LINK])
        if info.packets and unsupported == info.packets:
            names = ", ".join(f"{t} ({linktype_name(t)})" for t in sorted(info.linktypes))
            raise SourceError(path, f"unsupported link type {names}")

    def run_calls(
        self, path: str, progress: Callable[[CaptureInfo], None] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Call records of one input, in lists as calls become final (the flows still
        run; their records are not kept). Every record names ``path`` as its capture."""
        for kind, records in self.run_all(path, progress, detect=False):
            if kind == "calls":
                yield records  # type: ignore[misc]

    def run_alerts(
        self,
        path: str,
        progress: Callable[[CaptureInfo], None] | None = None,
        detect_config: Any = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Alert records of one input (DESIGN §3 Alert), in lists as each attack goes
        quiet. ``detect_config`` is a ``voipscope.detect.config.DetectConfig``."""
        for kind, records in self.run_all(path, progress, detect_config):
            if kind == "alerts":
                yield records  # type: ignore[misc]

    def run_all(
        self,
        path: str,
        progress: Callable[[CaptureInfo], None] | None = None,
        detect_config: Any = None,
        detect: bool = True,
    ) -> Iterator[tuple[str, pa.RecordBatch | list[dict[str, Any]]]]:
        """Everything about one input in one pass: ("flows", RecordBatch), ("calls",
        [Call records]) and ("alerts", [Alert records]) as each becomes final. The calls
        stage and the detect stage run side by side; the detectors read SIP messages, the
        calls as they finish and the flows as they end. ``detect=False``: calls only."""
        # With an inline hook: raised alerts are looked at after every batch, as live.
        every = self.inline is not None

        def flow_batches() -> Iterator[pa.RecordBatch | None]:
            return self.run_one(path, progress, every)

        yield from self._run_all(path, flow_batches, detect_config, detect)

    def run_live(
        self, capture: LiveSource, detect_config: Any = None
    ) -> Iterator[tuple[str, pa.RecordBatch | list[dict[str, Any]]]]:
        """``run_all`` over a live capture (``voipscope.source.live.LiveCapture``) until it
        stops, then every open flow, call and alert is flushed as at the end of a file.
        Besides flows, calls and alerts (final) it yields ("raised", [Alert records]) as
        soon as an alert opens or its severity rises, so a block list acts within seconds
        instead of after the attack has gone quiet; and it yields after every packet batch
        (at least every ``live.flush_interval_s``), so the caller never waits on a quiet
        link. Its stats input is ``capture.info`` (kernel drops included)."""
        info = capture.info
        self.stats.inputs.append(info)
        name = info.path

        def flow_batches() -> Iterator[pa.RecordBatch | None]:
            return self._run_batches(name, capture.batches(), info)

        yield from self._run_all(name, flow_batches, detect_config, True, live=True)

    def _run_all(
        self,
        path: str,
        flow_batches: Callable[[], Iterator[pa.RecordBatch | None]],
        detect_config: Any,
        detect: bool,
        live: bool = False,
    ) -> Iterator[tuple[str, pa.RecordBatch | list[dict[str, Any]]]]:
        from voipscope.calls.stage import CallsStage  # only these runs pay for them
        from voipscope.detect.stage import DetectStage

        calls = CallsStage(self.config, self.stats.anomalies)
        detector = DetectStage(detect_config, self.stats.anomalies) if detect else None
        stages = [calls] if detector is None else [calls, detector]
        self.hooks.extend(stages)

        def finished(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for record in records:
                record["capture"] = path
            if self.inline is not None:
                self.inline.calls_finished(records)
            if detector is not None:
                detector.add_calls(records)
            return records

        inline = self.inline
        if inline is not None:
            calls.sip.observer = inline.on_sip
            for tracker in calls.trackers:
                book = getattr(tracker, "book", None)  # H.323, MGCP, IAX2, SCCP
                if book is not None:
                    book.observer = inline.on_tracked
            if detector is not None:
                detector.book.observer = inline.on_alert_opened

        def raised_now() -> Iterator[tuple[str, list[dict[str, Any]]]]:
            if live and detector is not None and (raised := detector.raised()):
                yield "raised", raised
            if inline is not None:
                if detector is not None:
                    inline.check_alerts(detector.book.open_alerts())
                if actions := inline.drain():
                    yield "actions", actions

        try:
            for batch in flow_batches():
                if batch is not None:
                    yield "flows", batch
                if records := finished(calls.drain()):
                    yield "calls", records
                yield from raised_now()
                if detector is not None and (alerts := detector.ready()):
                    yield "alerts", alerts
            if records := finished(calls.drain() + calls.finish()):
                yield "calls", records
            yield from raised_now()
            if detector is not None and (alerts := detector.finish()):
                yield "alerts", alerts
            if inline is not None:
                # Alerts of the input's last records: decided now, counted against the
                # last batch and the flows that ended with the input.
                inline.in_force.catch_up()
                if actions := inline.drain():
                    yield "actions", actions
        finally:
            for stage in stages:
                self.hooks.remove(stage)

    def _hand_out_messages(self) -> None:
        if self.dissect is None:
            return
        messages = self.dissect.knowledge.drain_messages()
        if not messages:
            return
        for hook in self.hooks:
            on_messages = getattr(hook, "on_messages", None)  # optional in FlowHooks
            if on_messages is not None:
                on_messages(messages)

    def _report_double_tagged(self, d: DecodedBatch) -> None:
        """One anomaly per (outer VLAN, inner VLAN, source, destination) in the batch."""
        tagged = d.vlan[(d.vlan >= 0) & (d.vlan < VLAN_IDS)]
        if tagged.size == 0:
            return
        self._vlan_frames += np.bincount(tagged, minlength=VLAN_IDS)
        double = (d.vlan_inner >= 0) & ((d.vlan_inner & DOUBLE_DOT1Q) != 0)
        rows = np.flatnonzero(double)
        if rows.size == 0:
            return
        self._vlan_double_frames += np.bincount(d.vlan[rows], minlength=VLAN_IDS)
        # A link that carries 802.1Q inside 802.1Q for everything is a provider trunk
        # (QinQ with a 0x8100 outer tag, common in mobile and metro backhaul): only
        # double tags that are a minority of their outer VLAN's frames are an oddity.
        # The share is the run's so far, not the batch's: a batch of a few frames (a
        # slow live link, a small batch) holding only the attacker's would be "a trunk".
        odd = self._vlan_double_frames < TRUNK_SHARE * self._vlan_frames
        rows = rows[odd[d.vlan[rows]]]
        if rows.size == 0:
            return
        keys = np.stack(
            [d.vlan[rows], d.vlan_inner[rows] & 0x0FFF, d.src_lo[rows], d.dst_lo[rows],
             d.src_hi[rows], d.dst_hi[rows]], axis=1,
        )  # fmt: skip
        _, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
        name, detail = S.DOUBLE_TAGGED
        for at, count in zip(first.tolist(), counts.tolist(), strict=True):
            i = int(rows[at])
            version = int(d.ip_ver[i])
            where = {}
            if version:
                where = {
                    "src_ip": format_ip(version, int(d.src_hi[i]), int(d.src_lo[i])),
                    "dst_ip": format_ip(version, int(d.dst_hi[i]), int(d.dst_lo[i])),
                }
            outer, inner = int(d.vlan[i]), int(d.vlan_inner[i]) & 0x0FFF
            self.stats.anomalies.add(
                name,
                f"VLAN {outer} carrying VLAN {inner}: {detail} "
                f"(first at packet {d.packets.first_index + i + 1})",
                ts=int(d.ts_ns[i]) / 1e9,
                count=count,
                **where,
            )

    def _emit(self, ended: list[np.ndarray], path: str) -> Iterator[pa.RecordBatch]:
        if not ended:
            return
        # One record batch per packet batch: building Arrow columns has a fixed cost.
        rows = ended[0] if len(ended) == 1 else np.concatenate(ended)
        verdicts = None
        if self.dissect is not None and self.arbiter is not None:
            behaviour = None if self.behaviour is None else self.behaviour.take(rows)
            verdicts = self.arbiter.judge_batch(rows, self.dissect.expire(rows), behaviour)
        for hook in self.hooks:
            hook.on_expire(rows)
        self.stats.flows += rows.shape[0]
        batch = flows_to_batch(rows, path, verdicts)
        for hook in self.hooks:
            on_flow_records = getattr(hook, "on_flow_records", None)  # optional in FlowHooks
            if on_flow_records is not None:
                on_flow_records(batch)
        yield batch

    def _report_decode_anomalies(self, d: DecodedBatch) -> None:
        self._report_double_tagged(d)
        bad = np.flatnonzero(
            (d.status != S.OK) & (d.status != S.NON_IP) & (d.status != S.FRAGMENT_HELD)
        )
        if bad.size == 0:
            return
        codes, first, counts = np.unique(d.status[bad], return_index=True, return_counts=True)
        for code, at, count in zip(codes.tolist(), first.tolist(), counts.tolist(), strict=True):
            if code in S.ANOMALIES:
                name, detail = S.ANOMALIES[code]
                row = int(bad[at])
                number = d.packets.first_index + row + 1
                self.stats.anomalies.add(
                    name,
                    f"{detail} (first at packet {number})",
                    ts=int(d.ts_ns[row]) / 1e9,
                    count=count,
                )
