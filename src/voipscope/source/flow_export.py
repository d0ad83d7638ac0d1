"""Flow export datagrams and files (NetFlow v5, v9, IPFIX) -> ExportRecords.

:class:`FlowExportDecoder` holds what export decoding needs across messages: templates
keyed by (exporter address, observation domain or source id, template id), bounded by
``flow_records.max_templates`` (the least recently defined goes first, reported as
``flow_export_template_cache_full``); data sets that arrive before their template, held up
to ``flow_records.max_pending_set_bytes`` and decoded when it arrives (UDP exporters send
templates only every so often, so a collector that starts late sees data first); the
systemInitTimeMilliseconds an options record gave; sequence numbers, to count lost
records. Every oddity becomes a named anomaly (``ANOMALIES``) and decoding goes on.

:func:`read_ipfix_file` reads an IPFIX file (RFC 5655 §7: IPFIX messages back to back),
gzip and stdin too, through the capture reader's windows: a file cut inside a message
gives every message before the cut and a warning with the offset.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from voipscope.anomalies import AnomalyLog
from voipscope.config import FlowRecordConfig, SourceConfig
from voipscope.errors import DecodeError, Malformed, SourceError, Truncated
from voipscope.source import ipfix, netflow_v5, netflow_v9
from voipscope.source.capture import GZIP_MAGIC, open_windows
from voipscope.source.flow_fields import (
    Data,
    ExportRecord,
    Template,
    TimeBase,
    build_record,
    decode_data_record,
)

V9, IPFIX = "netflow_v9", "ipfix"
FAMILIES = {5: "netflow_v5", 9: V9, 10: IPFIX}

ANOMALIES = {
    "netflow_v5_truncated": "a NetFlow v5 datagram shorter than its record count says",
    "netflow_v5_malformed": "a NetFlow v5 header with an impossible record count",
    "netflow_v5_sequence_gap": "NetFlow v5 flow sequence jumped: the exporter's records were lost",
    "netflow_v9_truncated": "a NetFlow v9 datagram cut inside its header or a FlowSet",
    "netflow_v9_malformed": "a NetFlow v9 FlowSet whose length cannot be right",
    "netflow_v9_bad_template": "a NetFlow v9 (options) template record that does not parse",
    "netflow_v9_reserved_flowset": "a NetFlow v9 FlowSet with a reserved id (2-255), skipped",
    "netflow_v9_record_cut": "a NetFlow v9 data FlowSet that ends inside a record",
    "netflow_v9_bad_field_length": "a known NetFlow v9 field with an impossible length, skipped",
    "netflow_v9_data_before_template": "NetFlow v9 data arrived before its template (held)",
    "netflow_v9_data_without_template": "NetFlow v9 data whose template never came, dropped",
    "netflow_v9_bad_time": "a NetFlow v9 record time outside 1970-2262 (export time used)",
    "netflow_v9_sequence_gap": "NetFlow v9 export packets were lost (sequence number jumped)",
    "ipfix_truncated": "an IPFIX message cut inside its header or a Set",
    "ipfix_malformed": "an IPFIX message or Set whose length cannot be right",
    "ipfix_bad_template": "an IPFIX (options) template record that does not parse",
    "ipfix_reserved_set": "an IPFIX Set with an unused id (0, 1, 4-255), skipped",
    "ipfix_record_cut": "an IPFIX data Set that ends inside a record",
    "ipfix_bad_field_length": "a known IPFIX element with an impossible length, skipped",
    "ipfix_data_before_template": "IPFIX data arrived before its template (held)",
    "ipfix_data_without_template": "IPFIX data whose template never came, dropped",
    "ipfix_bad_time": "an IPFIX record time outside 1970-2262 (export time used)",
    "ipfix_sequence_gap": "IPFIX data records were lost (sequence number jumped)",
    "flow_export_template_cache_full": "templates beyond flow_records.max_templates; the "
    "least recently defined was forgotten",
}

TemplateKey = tuple[str, int, int]  # (exporter address, domain / source id, template id)


@dataclass(slots=True)
class _PendingSet:
    family: str
    exporter: str
    domain: int
    body: bytes
    base: TimeBase
    ts: float | None


@dataclass(slots=True)
class ExportStats:
    """Exact counts of one run's export decoding."""

    messages: dict[str, int] = field(default_factory=Counter)  # by family
    flow_records: int = 0
    options_records: int = 0
    records_without_addresses: int = 0  # data records of templates with no IP addresses
    sampled_records: int = 0
    templates_defined: int = 0
    templates_withdrawn: int = 0
    templates_evicted: int = 0
    sets_before_template: int = 0
    sets_recovered: int = 0  # of those, decoded once their template came
    sets_without_template: int = 0  # dropped: the template never came
    records_lost: int = 0  # by sequence numbers

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": dict(sorted(self.messages.items())),
            "flow_records": self.flow_records,
            "options_records": self.options_records,
            "records_without_addresses": self.records_without_addresses,
            "sampled_records": self.sampled_records,
            "templates_defined": self.templates_defined,
            "templates_withdrawn": self.templates_withdrawn,
            "templates_evicted": self.templates_evicted,
            "sets_before_template": self.sets_before_template,
            "sets_recovered": self.sets_recovered,
            "sets_without_template": self.sets_without_template,
            "records_lost": self.records_lost,
        }

    def merge(self, other: ExportStats) -> None:
        """Add another run's counts (every field is a count)."""
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, dict):
                for key, count in theirs.items():
                    mine[key] = mine.get(key, 0) + count
            else:
                setattr(self, name, mine + theirs)


def export_version(data: bytes | memoryview) -> int | None:
    """5, 9 or 10 when ``data`` starts like a NetFlow v5/v9 or IPFIX message, else None."""
    if len(data) < 4:
        return None
    version = int.from_bytes(data[:2], "big")
    if version == 5:
        count = int.from_bytes(data[2:4], "big")
        return 5 if 1 <= count <= netflow_v5.MAX_RECORDS else None
    if version == 9:
        return 9 if len(data) >= netflow_v9.HEADER_BYTES else None
    if version == 10:
        # A datagram cut by the snap length still counts (and is reported as cut).
        return 10 if int.from_bytes(data[2:4], "big") >= ipfix.HEADER_BYTES else None
    return None


class FlowExportDecoder:
    """Stateful: export messages in, flow records out; anomalies to ``anomalies``."""

    def __init__(self, config: FlowRecordConfig | None = None,
                 anomalies: AnomalyLog | None = None) -> None:  # fmt: skip
        self.config = config or FlowRecordConfig()
        self.anomalies = anomalies if anomalies is not None else AnomalyLog()
        self.stats = ExportStats()
        self._templates: OrderedDict[TemplateKey, tuple[str, Template]] = OrderedDict()
        self._pending: OrderedDict[TemplateKey, list[_PendingSet]] = OrderedDict()
        self._pending_bytes = 0
        self._system_init_ms: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._next_sequence: OrderedDict[tuple[str, str, int], tuple[int, int]] = OrderedDict()

    # -- entry points ---------------------------------------------------------------------

    def decode(
        self, data: bytes | memoryview, exporter: str, ts: float | None = None
    ) -> list[ExportRecord]:
        """The flow records of one export datagram or IPFIX message (any version: the
        first two bytes say which). Damage inside becomes anomalies and the records before
        it are kept; a message of no export version at all raises Malformed (the caller
        decides whether that is an oddity). ``ts``: capture time, for the anomalies."""
        version = int.from_bytes(bytes(data[:2]).rjust(2, b"\0"), "big")
        family = FAMILIES.get(version)
        if family is None:
            raise Malformed(f"not a NetFlow v5/v9 or IPFIX message (version {version})")
        self.stats.messages[family] += 1
        try:
            if version == 5:
                return self._decode_v5(data, exporter, ts)
            if version == 9:
                return self._decode_v9(data, exporter, ts)
            return self._decode_ipfix(data, exporter, ts)
        except Truncated as exc:
            self._anomaly(f"{family}_truncated", str(exc), exporter, ts)
        except DecodeError as exc:
            self._anomaly(f"{family}_malformed", str(exc), exporter, ts)
        return []

    def finish(self) -> None:
        """The input ended: data still waiting for a template is reported as lost."""
        for key, sets in self._pending.items():
            self._drop_pending(key, sets, "the input ended before its template came")
        self._pending.clear()
        self._pending_bytes = 0

    # -- NetFlow v5 -----------------------------------------------------------------------

    def _decode_v5(self, data: Data, exporter: str, ts: float | None) -> list[ExportRecord]:
        records, complete = netflow_v5.parse_v5_prefix(data, exporter)
        if not complete:
            self._anomaly(
                "netflow_v5_truncated",
                f"datagram of {len(data)} bytes holds {len(records)} whole records, fewer "
                "than its count",
                exporter,
                ts,
            )
        sequence = int.from_bytes(data[16:20], "big")
        domain = records[0].domain if records else 0
        count = int.from_bytes(data[2:4], "big")
        self._check_sequence("netflow_v5", exporter, domain, sequence, count, ts)
        return self._count(records)

    # -- NetFlow v9 -----------------------------------------------------------------------

    def _decode_v9(self, data: Data, exporter: str, ts: float | None) -> list[ExportRecord]:
        header = netflow_v9.parse_v9_header(data)
        flowsets, problem = netflow_v9.split_flowsets(data)
        if problem is not None:
            name = "netflow_v9_truncated" if "past" in problem else "netflow_v9_malformed"
            self._anomaly(name, problem, exporter, ts)
        # §5.1: the sequence number counts export packets, not records.
        self._check_sequence(V9, exporter, header.source_id, header.sequence, 1, ts)
        base = header.time_base
        records: list[ExportRecord] = []
        for set_id, body in flowsets:
            if set_id in (netflow_v9.TEMPLATE_FLOWSET, netflow_v9.OPTIONS_TEMPLATE_FLOWSET):
                try:
                    if set_id == netflow_v9.TEMPLATE_FLOWSET:
                        templates = netflow_v9.parse_v9_templates(body)
                    else:
                        templates = netflow_v9.parse_v9_options_templates(body)
                except DecodeError as exc:
                    self._anomaly("netflow_v9_bad_template", str(exc), exporter, ts)
                    continue
                for template in templates:
                    records += self._define(V9, exporter, header.source_id, template, ts)
            elif set_id < netflow_v9.MIN_DATA_FLOWSET:
                self._anomaly("netflow_v9_reserved_flowset", f"FlowSet id {set_id}", exporter, ts)
            else:
                pending = _PendingSet(V9, exporter, header.source_id, bytes(body), base, ts)
                records += self._data(set_id, pending)
        return self._count(records)

    # -- IPFIX ----------------------------------------------------------------------------

    def _decode_ipfix(self, data: Data, exporter: str, ts: float | None) -> list[ExportRecord]:
        header = ipfix.parse_ipfix_header(data)
        message = memoryview(data)[: header.length]
        sets, problem = ipfix.split_sets(message)
        if problem is not None:
            name = "ipfix_truncated" if "past" in problem else "ipfix_malformed"
            self._anomaly(name, problem, exporter, ts)
        records: list[ExportRecord] = []
        data_records = 0
        countable = problem is None
        for set_id, body in sets:
            if set_id in (ipfix.TEMPLATE_SET, ipfix.OPTIONS_TEMPLATE_SET):
                try:
                    items = ipfix.parse_ipfix_templates(body, set_id == ipfix.OPTIONS_TEMPLATE_SET)
                except DecodeError as exc:
                    self._anomaly("ipfix_bad_template", str(exc), exporter, ts)
                    continue
                for item in items:
                    if isinstance(item, ipfix.Withdrawal):
                        self._withdraw(exporter, header.domain, item)
                    else:
                        records += self._define(IPFIX, exporter, header.domain, item, ts)
            elif set_id < ipfix.MIN_DATA_SET:
                self._anomaly("ipfix_reserved_set", f"Set id {set_id}", exporter, ts)
            else:
                init = self._system_init_ms.get((exporter, header.domain))
                base = header.time_base(init)
                pending = _PendingSet(IPFIX, exporter, header.domain, bytes(body), base, ts)
                before = self.stats.flow_records + self.stats.options_records
                before += self.stats.records_without_addresses
                known = (exporter, header.domain, set_id) in self._templates
                records += self._data(set_id, pending)
                countable = countable and known
                data_records += (
                    self.stats.flow_records
                    + self.stats.options_records
                    + self.stats.records_without_addresses
                    - before
                )
        if countable:
            # §3.1: the sequence number counts data records sent before this message.
            self._check_sequence(IPFIX, exporter, header.domain, header.sequence, data_records, ts)
        else:
            self._next_sequence.pop((IPFIX, exporter, header.domain), None)
        return records

    # -- templates ------------------------------------------------------------------------

    def _define(self, family: str, exporter: str, domain: int, template: Template,
                ts: float | None) -> list[ExportRecord]:  # fmt: skip
        """Learn a template (a redefinition replaces the old one, RFC 7011 §8.1 over UDP);
        decode the data that waited for it."""
        key = (exporter, domain, template.template_id)
        self._templates.pop(key, None)
        self._templates[key] = (family, template)
        self.stats.templates_defined += 1
        if len(self._templates) > self.config.max_templates:
            old_key, _ = self._templates.popitem(last=False)
            self.stats.templates_evicted += 1
            self._anomaly(
                "flow_export_template_cache_full",
                f"forgot template {old_key[2]} of exporter {old_key[0]} domain {old_key[1]} "
                f"(flow_records.max_templates = {self.config.max_templates})",
                exporter,
                ts,
            )
        waiting = self._pending.pop(key, [])
        records: list[ExportRecord] = []
        for pending in waiting:
            self._pending_bytes -= len(pending.body)
            self.stats.sets_recovered += 1
            records += self._decode_set(template, pending)
        return records

    def _withdraw(self, exporter: str, domain: int, withdrawal: ipfix.Withdrawal) -> None:
        if not withdrawal.withdraws_all:
            if self._templates.pop((exporter, domain, withdrawal.template_id), None):
                self.stats.templates_withdrawn += 1
            return
        doomed = [
            key
            for key, (_, template) in self._templates.items()
            if key[:2] == (exporter, domain) and template.is_options == withdrawal.options
        ]
        for key in doomed:
            del self._templates[key]
        self.stats.templates_withdrawn += len(doomed)

    # -- data -----------------------------------------------------------------------------

    def _data(self, template_id: int, pending: _PendingSet) -> list[ExportRecord]:
        key = (pending.exporter, pending.domain, template_id)
        known = self._templates.get(key)
        if known is not None:
            self._templates.move_to_end(key)
            return self._decode_set(known[1], pending)
        self.stats.sets_before_template += 1
        self._anomaly(
            f"{pending.family}_data_before_template",
            f"data set of template {template_id} (domain {pending.domain}, "
            f"{len(pending.body)} bytes) before the template; held for it",
            pending.exporter,
            pending.ts,
        )
        self._pending.setdefault(key, []).append(pending)
        self._pending.move_to_end(key)
        self._pending_bytes += len(pending.body)
        while self._pending_bytes > self.config.max_pending_set_bytes and self._pending:
            old_key, sets = self._pending.popitem(last=False)
            self._drop_pending(
                old_key, sets, "held data exceeded flow_records.max_pending_set_bytes"
            )
        return []

    def _drop_pending(self, key: TemplateKey, sets: list[_PendingSet], why: str) -> None:
        size = sum(len(s.body) for s in sets)
        self._pending_bytes -= size
        self.stats.sets_without_template += len(sets)
        first = sets[0]
        self.anomalies.add(
            f"{first.family}_data_without_template",
            f"{len(sets)} data set(s), {size} bytes, of template {key[2]} (domain {key[1]}) "
            f"dropped: {why}",
            ts=first.ts,
            count=len(sets),
            src_ip=key[0],
        )

    def _decode_set(self, template: Template, pending: _PendingSet) -> list[ExportRecord]:
        family, body = pending.family, pending.body
        version = 9 if family == V9 else 10
        records: list[ExportRecord] = []
        at = 0
        minimum = max(1, template.min_record_bytes)
        bad_lengths: list[str] = []
        bad_times = 0
        while len(body) - at >= minimum:
            try:
                raw, at = decode_data_record(body, at, template, bad_lengths)
            except Truncated:
                break
            if template.is_options:
                self.stats.options_records += 1
                if "system_init_ms" in raw and family == IPFIX:
                    self._remember_init(pending.exporter, pending.domain, raw["system_init_ms"])
                continue
            record = build_record(raw, pending.exporter, pending.domain, version, pending.base)
            if record is None:
                self.stats.records_without_addresses += 1
                continue
            self.stats.flow_records += 1
            if record.bad_time:
                bad_times += 1
            if record.sampling_interval > 1:
                self.stats.sampled_records += 1
            records.append(record)
        if any(body[at:]):
            # RFC 7011 §3.3.1 / RFC 3954 §5.3: padding is zeros shorter than a record; other
            # bytes left over are a record cut short.
            self._anomaly(
                f"{family}_record_cut",
                f"data set of template {template.template_id} ends {len(body) - at} bytes "
                "into a record",
                pending.exporter,
                pending.ts,
            )
        if bad_times:
            self._anomaly(
                f"{family}_bad_time",
                f"template {template.template_id}: {bad_times} record(s) with a time outside "
                "1970-2262; the export time stands in",
                pending.exporter,
                pending.ts,
                count=bad_times,
            )
        if bad_lengths:
            self._anomaly(
                f"{family}_bad_field_length",
                f"template {template.template_id}: " + ", ".join(sorted(set(bad_lengths))[:4]),
                pending.exporter,
                pending.ts,
                count=len(bad_lengths),
            )
        return records

    def _remember_init(self, exporter: str, domain: int, init_ms: int) -> None:
        self._system_init_ms[(exporter, domain)] = init_ms
        self._system_init_ms.move_to_end((exporter, domain))
        if len(self._system_init_ms) > self.config.max_templates:
            self._system_init_ms.popitem(last=False)

    # -- helpers --------------------------------------------------------------------------

    def _count(self, records: list[ExportRecord]) -> list[ExportRecord]:
        if records and records[0].export_version == 5:
            self.stats.flow_records += len(records)
            self.stats.sampled_records += sum(r.sampling_interval > 1 for r in records)
        return records

    def _check_sequence(self, family: str, exporter: str, domain: int, sequence: int,
                        advance: int, ts: float | None) -> None:  # fmt: skip
        """Count lost records (IPFIX, v5) or export packets (v9) by the header's sequence
        number. RFC 7011 §3.1 counts what was sent *before* the message; some exporters
        (softflowd 1.1.0's IPFIX) count it *with* the message: either is no loss."""
        key = (family, exporter, domain)
        previous = self._next_sequence.get(key)
        self._next_sequence[key] = (sequence, advance)
        self._next_sequence.move_to_end(key)
        if len(self._next_sequence) > self.config.max_templates:
            self._next_sequence.popitem(last=False)
        if previous is None:
            return
        last_sequence, last_advance = previous
        before = (sequence - last_sequence - last_advance) & 0xFFFFFFFF
        with_message = (sequence - advance - last_sequence) & 0xFFFFFFFF
        if before == 0 or with_message == 0:
            return
        gap = min(before, with_message)
        if gap < 1 << 20:  # a bigger jump is a restart or reordering, not loss
            self.stats.records_lost += gap
            unit = "export packets" if family == V9 else "records"
            self._anomaly(
                f"{family}_sequence_gap",
                f"domain {domain}: sequence {sequence} after {last_sequence}: {gap} {unit} lost",
                exporter,
                ts,
                count=gap,
            )

    def _anomaly(self, name: str, detail: str, exporter: str, ts: float | None,
                 count: int = 1) -> None:  # fmt: skip
        self.anomalies.add(name, detail, ts=ts, count=count, src_ip=exporter or None)


# -- IPFIX files (RFC 5655) -----------------------------------------------------------------


@dataclass(slots=True)
class ExportFileInfo:
    """What reading one flow-record input learnt (the CaptureInfo of record inputs)."""

    path: str
    format: str = ""  # "ipfix" | "pcap" | "pcapng" (export datagrams in a capture)
    compressed: bool = False
    messages: int = 0
    packets: int = 0  # capture inputs: packets read
    datagrams_not_export: int = 0  # capture inputs: packets that are no export datagram
    bytes_total: int | None = None
    bytes_done: int = 0
    truncated_at: int | None = None
    corrupt_at: int | None = None
    corrupt_reason: str = ""

    def warnings(self) -> list[str]:
        out = []
        if self.truncated_at is not None:
            out.append(
                f"{self.path}: IPFIX file is truncated at byte offset {self.truncated_at}; "
                f"read the {self.messages} messages before the cut"
            )
        if self.corrupt_at is not None:
            out.append(
                f"{self.path}: corrupt IPFIX message at byte offset {self.corrupt_at} "
                f"({self.corrupt_reason}); read the {self.messages} messages before it"
            )
        return out


def sniff_ipfix(head: bytes) -> bool:
    """Whether a file starting with ``head`` (its first 20 bytes or more) is an IPFIX file:
    version 10, a message length that covers the header, and a first Set header with a
    template, options template or data Set id and a length inside the message."""
    length = ipfix.ipfix_message_length(head)
    if length is None or len(head) < ipfix.HEADER_BYTES:
        return False
    if length == ipfix.HEADER_BYTES:
        return True  # an empty message: legal, rare
    if len(head) < ipfix.HEADER_BYTES + 4:
        return False
    set_id = int.from_bytes(head[16:18], "big")
    set_length = int.from_bytes(head[18:20], "big")
    good_id = set_id in (ipfix.TEMPLATE_SET, ipfix.OPTIONS_TEMPLATE_SET) or set_id >= 256
    return good_id and 4 <= set_length <= length - ipfix.HEADER_BYTES


def is_ipfix_file(path: str) -> bool:
    """An IPFIX file (gzip too) by its content; False for anything unreadable or else."""
    # Only regular files: sniffing a FIFO would eat the bytes the capture reader needs.
    if path == "-" or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(20)
            if head[:2] == GZIP_MAGIC:
                f.seek(0)
                with gzip.GzipFile(fileobj=f) as gz:
                    head = gz.read(20)
    except (OSError, EOFError, gzip.BadGzipFile):
        return False
    return sniff_ipfix(head)


def read_ipfix_file(
    path: str, info: ExportFileInfo, config: SourceConfig | None = None
) -> Iterator[bytes]:
    """The IPFIX messages of a file (RFC 5655), gzip or stdin too, one at a time. A cut
    message sets ``info.truncated_at``, an impossible length ``info.corrupt_at``; the
    messages before are yielded. Not IPFIX at all: SourceError."""
    config = config or SourceConfig()
    windows, compressed = open_windows(path, config)
    info.format, info.compressed = "ipfix", compressed
    info.bytes_total = None if compressed else windows.size_hint
    try:
        head, _ = windows.window(0, ipfix.HEADER_BYTES + 4)
        if head.shape[0] == 0:
            raise SourceError(path, "empty file")
        if not sniff_ipfix(bytes(head[: ipfix.HEADER_BYTES + 4])):
            raise SourceError(path, f"not an IPFIX file (starts with {bytes(head[:4]).hex()})")
        at = 0
        while True:
            buf, _ = windows.window(at, ipfix.HEADER_BYTES)
            if buf.shape[0] == 0:
                break
            if buf.shape[0] < 4:
                info.truncated_at = at
                break
            length = ipfix.ipfix_message_length(bytes(buf[:4]))
            if length is None:
                info.corrupt_at = at
                info.corrupt_reason = f"no IPFIX message header ({bytes(buf[:4]).hex()})"
                break
            buf, _ = windows.window(at, length)
            if buf.shape[0] < length:
                info.truncated_at = at
                break
            yield bytes(buf[:length])
            info.messages += 1
            at += length
            info.bytes_done = at
    finally:
        windows.close()
