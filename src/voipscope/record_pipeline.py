"""Flow-record input: NetFlow v5/v9 and IPFIX records -> Flow records (DESIGN §1: flow
records skip decode/dissect and enter at flows/classify).

source (IPFIX file, or export datagrams in a pcap) -> FlowExportDecoder -> FlowMerger
(unidirectional records of both directions, and the pieces an exporter's timeouts cut,
merged into bidirectional flows) -> classify.flow_features -> Flow records (FLOW_SCHEMA)
-> app calls (calls.app_calls). Streaming like ``FlowPipeline.run``: a flow leaves the
merger once its exporter's records have moved ``flow_records.merge_idle_timeout_s`` past
it (export time, per exporter and domain), so memory holds live flows, never all flows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from voipscope.addresses import format_ip
from voipscope.anomalies import AnomalyLog
from voipscope.calls.app_calls import AppCallGrouper
from voipscope.classify import flow_features as ff
from voipscope.classify.verdict import VerdictColumns
from voipscope.config import Config
from voipscope.decode import FragmentReassembler, decode_batch
from voipscope.decode import status as S
from voipscope.errors import SourceError
from voipscope.flows import kernels as K
from voipscope.output.flow_records import flows_to_batch
from voipscope.source import CaptureInfo, read_capture
from voipscope.source.flow_export import (
    ExportFileInfo,
    ExportStats,
    FlowExportDecoder,
    export_version,
    is_ipfix_file,
    read_ipfix_file,
)
from voipscope.source.flow_fields import ExportRecord

ANOMALIES = {
    "flow_records_table_full": "open merged flows beyond flows.max_flows; the least "
    "recently updated was written early",
}
UDP = 17
RECENT_FLOWS = 65536  # ended flows remembered for the RTP/RTCP port+1 pairing
SWEEP_STEP_NS = 1_000_000_000  # export time between two expiry sweeps of an exporter
_END_CODES = {"idle": K.END_IDLE, "active-timeout": K.END_ACTIVE, "tcp-end": K.END_TCP,
              "evicted": K.END_EVICTED, "forced-end": K.END_CAPTURE}  # fmt: skip
_MASK64 = (1 << 64) - 1
_MAX64 = (1 << 63) - 1

FlowKey = tuple[str, int, int, int, int, int, int]  # exporter, domain, proto, a, a_port, b, b_port


def _signed64(x: int) -> int:
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


def _halves(version: int, addr: int) -> tuple[int, int]:
    """An address as the flow table keeps it: two int64 halves, IPv4 IPv4-mapped."""
    if version == 4:
        return 0, (0xFFFF << 32) | (addr & 0xFFFFFFFF)
    return _signed64(addr >> 64), _signed64(addr)


@dataclass(slots=True)
class _Side:
    """One direction (a -> b or b -> a) of a merged flow."""

    packets: int = 0
    octets: int = 0
    tcp_flags: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    order: int = 1 << 62  # arrival rank of the first record of this direction (tie-break)

    def add(self, packets: int, octets: int, flags: int, first: int | None,
            last: int | None, order: int) -> None:  # fmt: skip
        self.packets += packets
        self.octets += octets
        self.tcp_flags |= flags
        if first is not None:
            self.first_ns = first if self.first_ns is None else min(self.first_ns, first)
            self.order = min(self.order, order)
        if last is not None:
            self.last_ns = last if self.last_ns is None else max(self.last_ns, last)


@dataclass(slots=True)
class MergedFlow:
    key: FlowKey
    ip_version: int
    first_ns: int
    last_ns: int
    touched_ns: int  # the exporter's clock when a record last joined
    sides: tuple[_Side, _Side] = field(default_factory=lambda: (_Side(), _Side()))
    records: int = 0
    end_reason: str | None = None
    end_reason_at_ns: int = -1
    vlan: int | None = None
    sampled: bool = False
    versions: set[int] = field(default_factory=set)

    def add(self, r: ExportRecord, forward: bool, order: int, clock_ns: int) -> None:
        a_to_b, b_to_a = self.sides
        fwd, rev = (a_to_b, b_to_a) if forward else (b_to_a, a_to_b)
        fwd.add(r.packets, r.octets, r.tcp_flags, r.first_ns, r.last_ns, order)
        if r.biflow and (r.rev_packets or r.rev_octets):
            # RFC 5103: without reverse times the reverse side began no earlier than the
            # forward one (the record's source is the initiator); order breaks the tie.
            first = r.rev_first_ns if r.rev_first_ns is not None else r.first_ns
            last = r.rev_last_ns if r.rev_last_ns is not None else r.last_ns
            rev.add(r.rev_packets, r.rev_octets, r.rev_tcp_flags, first, last, order + 1)
        self.first_ns = min(self.first_ns, r.first_ns)
        self.last_ns = max(self.last_ns, r.last_ns)
        self.touched_ns = clock_ns
        self.records += 1
        self.versions.add(r.export_version)
        self.sampled |= r.sampling_interval > 1
        if r.vlan is not None and self.vlan is None:
            self.vlan = r.vlan
        if r.end_reason is not None and r.last_ns >= self.end_reason_at_ns:
            self.end_reason, self.end_reason_at_ns = r.end_reason, r.last_ns


def flow_key(r: ExportRecord) -> tuple[FlowKey, bool]:
    """The record's bidirectional key (lower (address, port) first) and whether the
    record's source is the key's first endpoint."""
    forward = (r.src_addr, r.src_port) <= (r.dst_addr, r.dst_port)
    a, b = ((r.src_addr, r.src_port), (r.dst_addr, r.dst_port))
    if not forward:
        a, b = b, a
    # IPv4 and IPv6 addresses never collide in a key: ip_version is part of the proto.
    return (r.exporter, r.domain, r.proto | r.ip_version << 8, a[0], a[1], b[0], b[1]), forward


OpenFlows = OrderedDict[FlowKey, MergedFlow]
RecentFlows = OrderedDict[FlowKey, ff.FlowCounters]


class FlowMerger:
    """Unidirectional and split records -> bidirectional flows, bounded by live flows.

    Flows are held per (exporter, domain) in the order records last joined them; that
    exporter's clock is the latest record end it exported. A flow is done when the clock
    is ``idle_ns`` past the moment its last record joined, or when a record of its key
    starts more than ``idle_ns`` after it ended (the exporter's idle timeout split it).
    """

    def __init__(self, idle_ns: int, max_flows: int, anomalies: AnomalyLog) -> None:
        self.idle_ns = idle_ns
        self.max_flows = max_flows
        self.anomalies = anomalies
        self._open: dict[tuple[str, int], OpenFlows] = {}
        self._clock: dict[tuple[str, int], int] = {}
        self._swept: dict[tuple[str, int], int] = {}
        self._live = 0
        self._order = 0
        self.evicted = 0

    def add(self, records: Sequence[ExportRecord]) -> list[tuple[MergedFlow, int]]:
        """Feed records; returns the flows that ended, with their end code."""
        ended: list[tuple[MergedFlow, int]] = []
        touched: set[tuple[str, int]] = set()
        for r in records:
            source = (r.exporter, r.domain)
            clock = max(self._clock.get(source, r.last_ns), r.last_ns)
            self._clock[source] = clock
            touched.add(source)
            flows = self._open.setdefault(source, OrderedDict())
            key, forward = flow_key(r)
            flow = flows.get(key)
            if flow is not None and r.first_ns > flow.last_ns + self.idle_ns:
                del flows[key]
                self._live -= 1
                ended.append((flow, K.END_IDLE))
                flow = None
            if flow is None:
                flow = MergedFlow(key, r.ip_version, r.first_ns, r.last_ns, clock)
                flows[key] = flow
                self._live += 1
                if self._live > self.max_flows:
                    ended.append(self._evict(flows, r))
            else:
                flows.move_to_end(key)
            self._order += 2
            flow.add(r, forward, self._order, clock)
        for source in touched:
            clock = self._clock[source]
            if clock - self._swept.get(source, -(1 << 62)) >= SWEEP_STEP_NS:
                self._swept[source] = clock
                ended.extend(self._sweep(source, clock))
        return ended

    def flush(self) -> list[tuple[MergedFlow, int]]:
        """The input ended: every open flow."""
        ended = [(f, K.END_CAPTURE) for flows in self._open.values() for f in flows.values()]
        self._open.clear()
        self._live = 0
        return ended

    def find(self, key: FlowKey) -> MergedFlow | None:
        flows = self._open.get((key[0], key[1]))
        return None if flows is None else flows.get(key)

    def _sweep(self, source: tuple[str, int], clock: int) -> Iterator[tuple[MergedFlow, int]]:
        flows = self._open[source]
        while flows:
            key, flow = next(iter(flows.items()))
            if clock - flow.touched_ns <= self.idle_ns:
                break
            del flows[key]
            self._live -= 1
            yield flow, K.END_IDLE

    def _evict(self, flows: OpenFlows, r: ExportRecord) -> tuple[MergedFlow, int]:
        # The exporter that overflowed gives up its least recently updated flow (the one
        # just added is the most recent, so never itself unless it is alone).
        source = max(self._open.values(), key=len) if len(flows) <= 1 else flows
        key, flow = next(iter(source.items()))
        del source[key]
        self._live -= 1
        self.evicted += 1
        self.anomalies.add(
            "flow_records_table_full",
            f"{self.max_flows} merged flows open (flows.max_flows): the least recently "
            "updated was written early",
            ts=r.last_ns / 1e9,
            src_ip=r.exporter or None,
        )
        return flow, K.END_EVICTED


@dataclass(slots=True)
class RecordRunStats:
    """What a flow-record run saw. The same interface as pipeline.RunStats for the CLI:
    ``anomalies``, ``warnings()``, ``to_dict()``."""

    inputs: list[ExportFileInfo] = field(default_factory=list)
    export: ExportStats = field(default_factory=ExportStats)
    flows: int = 0
    flows_evicted: int = 0
    anomalies: AnomalyLog = field(default_factory=AnomalyLog)

    def warnings(self) -> list[str]:
        out = [w for info in self.inputs for w in info.warnings()]
        if self.flows_evicted:
            out.append(
                f"merged-flow table overflow: {self.flows_evicted} flows written early "
                "(raise flows.max_flows)"
            )
        if self.export.sets_without_template:
            out.append(
                f"{self.export.sets_without_template} data sets were dropped: their template "
                "never came (anomalies *_data_without_template)"
            )
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "input_kind": "flow-records",
            "flows": self.flows,
            "flows_evicted": self.flows_evicted,
            "export": self.export.to_dict(),
            "anomalies": self.anomalies.as_dict(),
            "inputs": [
                {"path": i.path, "format": i.format, "compressed": i.compressed,
                 "messages": i.messages, "packets": i.packets,
                 "datagrams_not_export": i.datagrams_not_export,
                 "truncated_at": i.truncated_at, "corrupt_at": i.corrupt_at}
                for i in self.inputs
            ],
            "warnings": self.warnings(),
        }  # fmt: skip

    def merge(self, other: RecordRunStats) -> None:
        """Add the counts of a run over other inputs (scale_out: one run per input)."""
        self.inputs.extend(other.inputs)
        self.export.merge(other.export)
        self.flows += other.flows
        self.flows_evicted += other.flows_evicted
        self.anomalies.merge(other.anomalies)


Message = tuple[bytes, str, float | None]  # (export message, exporter address, capture time)


class RecordPipeline:
    """Flow-record inputs -> Flow record batches (and app calls). ``export_pcap``: read
    pcap/pcapng inputs as captures of export datagrams (UDP NetFlow/IPFIX); without it
    only IPFIX files are read."""

    def __init__(
        self, config: Config | None = None, export_pcap: bool = False, first_flow_id: int = 0
    ) -> None:
        self.config = config or Config()
        self.export_pcap = export_pcap
        self.stats = RecordRunStats(
            anomalies=AnomalyLog(self.config.anomalies.max_records_per_name)
        )
        self._next_flow_id = first_flow_id

    # -- runs -------------------------------------------------------------------------------

    def run(self, inputs: Sequence[str]) -> Iterator[pa.RecordBatch]:
        for path in inputs:
            yield from self.run_one(path)

    def run_one(
        self, path: str, progress: Callable[[Any], None] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Flow records of one input as flows end."""
        cfg = self.config
        info = ExportFileInfo(path=path)
        self.stats.inputs.append(info)
        decoder = FlowExportDecoder(cfg.flow_records, self.stats.anomalies)
        decoder.stats = self.stats.export
        idle_ns = int(cfg.flow_records.merge_idle_timeout_s * 1e9)
        merger = FlowMerger(idle_ns, cfg.flows.max_flows, self.stats.anomalies)
        recent: RecentFlows = OrderedDict()
        try:
            for message, exporter, ts in self._messages(path, info):
                records = decoder.decode(message, exporter, ts)
                if records:
                    ended = merger.add(records)
                    if ended:
                        yield self._emit(ended, path, merger, recent)
                if progress is not None:
                    progress(info)
            decoder.finish()
            ended = merger.flush()
            if ended:
                yield self._emit(ended, path, merger, recent)
        finally:
            self.stats.flows_evicted += merger.evicted

    def run_calls(
        self, path: str, progress: Callable[[Any], None] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """App calls (calls/app_calls.py) grouped from the Flow records of one input."""
        grouper = AppCallGrouper(join_gap_s=self.config.calls.app_join_gap_s)
        for batch in self.run_one(path, progress):
            calls = list(grouper.add(batch.to_pylist()))
            if calls:
                yield _named(calls, path)
        calls = list(grouper.finish())
        if calls:
            yield _named(calls, path)

    def run_alerts(self, path: str, progress: Callable[[Any], None] | None = None,
                   detect_config: Any = None) -> Iterator[list[dict[str, Any]]]:  # fmt: skip
        raise SourceError(path, "alerts are not built for flow-record input yet")

    # -- sources ------------------------------------------------------------------------------

    def _messages(self, path: str, info: ExportFileInfo) -> Iterator[Message]:
        """An IPFIX file (stdin: IPFIX only) or, with ``export_pcap``, a capture."""
        if self.export_pcap and path != "-" and not is_ipfix_file(path):
            yield from self._capture_messages(path, info)
            return
        for message in read_ipfix_file(path, info, self.config.source):
            yield message, "", None

    def _capture_messages(self, path: str, info: ExportFileInfo) -> Iterator[Message]:
        """Export datagrams in a pcap/pcapng: UDP payloads that start like NetFlow v5/v9
        or IPFIX, exporter = their source address. IP fragments are reassembled."""
        cinfo = CaptureInfo(path=path)
        reassembler = FragmentReassembler(self.config.decode, self.stats.anomalies)
        try:
            for batch in read_capture(path, self.config.source, cinfo):
                d = decode_batch(batch, self.config.decode.decapsulate_gtp)
                reassembler.process(d)
                udp = np.flatnonzero((d.status == S.OK) & (d.proto == UDP))
                info.format, info.compressed = cinfo.format, cinfo.compressed
                info.bytes_total, info.bytes_done = cinfo.bytes_total, cinfo.bytes_done
                info.packets = cinfo.packets
                if udp.size == 0:
                    continue
                payloads = d.payloads(udp)
                for row, payload in zip(udp.tolist(), payloads, strict=True):
                    if export_version(payload) is None:
                        info.datagrams_not_export += 1
                        continue
                    version = int(d.ip_ver[row])
                    exporter = format_ip(version, int(d.src_hi[row]), int(d.src_lo[row]))
                    info.messages += 1
                    yield payload, exporter, int(d.ts_ns[row]) / 1e9
        finally:
            info.packets = cinfo.packets
            info.truncated_at, info.corrupt_at = cinfo.truncated_at, cinfo.corrupt_at
            info.corrupt_reason = cinfo.corrupt_reason
        if info.messages == 0 and cinfo.packets:
            raise SourceError(path, "no NetFlow v5/v9 or IPFIX export datagram in the capture")

    # -- records --------------------------------------------------------------------------------

    def _emit(self, ended: list[tuple[MergedFlow, int]], path: str, merger: FlowMerger,
              recent: RecentFlows) -> pa.RecordBatch:  # fmt: skip
        ended.sort(key=lambda item: (item[0].first_ns, item[0].key))
        counters = [_counters(flow) for flow, _ in ended]
        for (flow, _), c in zip(ended, counters, strict=True):
            recent[flow.key] = c
            recent.move_to_end(flow.key)
        while len(recent) > RECENT_FLOWS:
            recent.popitem(last=False)
        n = len(ended)
        rows = np.zeros((n, K.NF), np.int64)
        verdicts = VerdictColumns.unknown(n)
        for i, ((flow, end_code), c) in enumerate(zip(ended, counters, strict=True)):
            self._fill_row(rows[i], flow, end_code)
            rtcp = _neighbour(flow.key, +1, merger, recent)
            rtp = _neighbour(flow.key, -1, merger, recent)
            v = ff.judge(c, rtcp, rtp)
            v.evidence.append(_provenance(flow))
            verdicts.put(i, v)
        self.stats.flows += n
        return flows_to_batch(rows, path, verdicts)

    def _fill_row(self, row: np.ndarray, flow: MergedFlow, end_code: int) -> None:
        _, _, proto_v, a, a_port, b, b_port = flow.key
        src_is_a = _src_is_a(flow)
        src, sport, dst, dport = (a, a_port, b, b_port) if src_is_a else (b, b_port, a, a_port)
        out, back = flow.sides if src_is_a else flow.sides[::-1]
        row[K.F_ID] = self._next_flow_id
        self._next_flow_id += 1
        row[K.F_PROTO] = proto_v & 0xFF
        row[K.F_IPVER] = flow.ip_version
        row[K.F_SRC_HI], row[K.F_SRC_LO] = _halves(flow.ip_version, src)
        row[K.F_DST_HI], row[K.F_DST_LO] = _halves(flow.ip_version, dst)
        row[K.F_SPORT], row[K.F_DPORT] = sport, dport
        row[K.F_FIRST_NS], row[K.F_LAST_NS] = flow.first_ns, flow.last_ns
        # unsigned64 counters summed over records may pass int64: saturate (never wrap).
        row[K.F_PKTS_FWD], row[K.F_PKTS_REV] = min(out.packets, _MAX64), min(back.packets, _MAX64)
        row[K.F_BYTES_FWD], row[K.F_BYTES_REV] = min(out.octets, _MAX64), min(back.octets, _MAX64)
        row[K.F_FLAGS_FWD], row[K.F_FLAGS_REV] = out.tcp_flags, back.tcp_flags
        row[K.F_VLAN] = -1 if flow.vlan is None else flow.vlan
        reason = _END_CODES.get(flow.end_reason or "")
        row[K.F_END] = end_code if end_code == K.END_EVICTED or reason is None else reason


def _src_is_a(flow: MergedFlow) -> bool:
    """`src` is the side that started first (ties: the side whose record came first)."""
    a_to_b, b_to_a = flow.sides
    if b_to_a.first_ns is None:
        return True
    if a_to_b.first_ns is None:
        return False
    return (a_to_b.first_ns, a_to_b.order) <= (b_to_a.first_ns, b_to_a.order)


def _counters(flow: MergedFlow) -> ff.FlowCounters:
    _, _, proto_v, a, a_port, b, b_port = flow.key
    src_is_a = _src_is_a(flow)
    out, back = flow.sides if src_is_a else flow.sides[::-1]
    ends = ((a, a_port), (b, b_port)) if src_is_a else ((b, b_port), (a, a_port))
    v = flow.ip_version
    return ff.FlowCounters(
        proto=proto_v & 0xFF,
        src_ip=_text(v, ends[0][0]),
        src_port=ends[0][1],
        dst_ip=_text(v, ends[1][0]),
        dst_port=ends[1][1],
        first_ns=flow.first_ns,
        last_ns=flow.last_ns,
        fwd=ff.Direction(out.packets, out.octets, out.first_ns, out.last_ns),
        rev=ff.Direction(back.packets, back.octets, back.first_ns, back.last_ns),
        sampled=flow.sampled,
    )


def _text(version: int, addr: int) -> str:
    hi, lo = _halves(version, addr)
    return format_ip(version, hi, lo)


def _neighbour(
    key: FlowKey, step: int, merger: FlowMerger, recent: RecentFlows
) -> ff.FlowCounters | None:
    """The flow between the same hosts on both ports + ``step`` (RTP/RTCP, RFC 3550 §11),
    open or recently ended."""
    exporter, domain, proto_v, a, a_port, b, b_port = key
    if proto_v & 0xFF != UDP or not (0 < a_port + step < 65536 and 0 < b_port + step < 65536):
        return None
    ends = sorted(((a, a_port + step), (b, b_port + step)))
    other = (exporter, domain, proto_v, ends[0][0], ends[0][1], ends[1][0], ends[1][1])
    if (c := recent.get(other)) is not None:
        return c
    flow = merger.find(other)
    return None if flow is None else _counters(flow)


def _provenance(flow: MergedFlow) -> str:
    exporter, domain = flow.key[0], flow.key[1]
    versions = "/".join({5: "NetFlow v5", 9: "NetFlow v9", 10: "IPFIX"}[v]
                        for v in sorted(flow.versions))  # fmt: skip
    where = f"exporter {exporter}" if exporter else "file"
    return f"from {flow.records} {versions} record(s), {where}, domain {domain}"


def _named(calls: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    for call in calls:
        call["capture"] = path
    return calls


def pipeline_for(config: Config, paths: Sequence[str], flow_records: bool) -> Any:
    """The pipeline for a command's inputs: RecordPipeline with ``--flow-records`` or when
    every input is an IPFIX file (by content); the packet FlowPipeline otherwise."""
    from voipscope.pipeline import FlowPipeline

    if flow_records:
        return RecordPipeline(config, export_pcap=True)
    if paths and all(p != "-" and is_ipfix_file(p) for p in paths):
        return RecordPipeline(config)
    return FlowPipeline(config)


__all__ = ["ANOMALIES", "FlowMerger", "RecordPipeline", "RecordRunStats", "pipeline_for"]
