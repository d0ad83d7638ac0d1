"""Templates and information elements shared by NetFlow v9 (RFC 3954) and IPFIX (RFC 7011).

A template is a list of (element id, enterprise number, length) field specifiers; a data
record is those fields back to back. NetFlow v9 field types 1..127 are the IPFIX
information elements of the same number (RFC 7012 §4 took them over), so one table of
elements (IANA "IPFIX Information Elements") serves both. Elements voipscope does not
use are skipped by length; elements of enterprise 29305 are the RFC 5103 reverse
(biflow) counterparts of the standard elements with the same number.

Pure functions: :func:`decode_data_record` turns one record's bytes into a dict of the
elements it knows (``RawFields``); :func:`build_record` turns that into an
:class:`ExportRecord` with absolute times. Errors are ``DecodeError`` subclasses only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voipscope.errors import Malformed, Truncated

# RFC 7011 §7: a field of length 65535 is variable-length, its length in front of it.
VARIABLE_LENGTH = 0xFFFF
# RFC 5103 §6.1: reverse information elements are the forward ones under this PEN.
REVERSE_PEN = 29305
# RFC 7011 §6.1.10 / RFC 5905: NTP era-0 seconds at the Unix epoch.
NTP_UNIX_OFFSET_S = 2_208_988_800

Kind = Literal["u8", "u16", "u32", "u64", "ipv4", "ipv6", "ntp"]
Data = bytes | memoryview

# Information elements read (IANA IPFIX IE registry; RFC 7012 §5 types; v9: RFC 3954 §8).
# id -> (name in RawFields, abstract type: unsigned8/16/32/64, address, NTP timestamp).
ELEMENTS: dict[int, tuple[str, Kind]] = {
    1: ("octets", "u64"),  # octetDeltaCount (v9 IN_BYTES)
    2: ("packets", "u64"),  # packetDeltaCount (v9 IN_PKTS)
    4: ("proto", "u8"),  # protocolIdentifier
    6: ("tcp_flags", "u16"),  # tcpControlBits (1 byte in v9, 2 in IPFIX)
    7: ("src_port", "u16"),  # sourceTransportPort
    8: ("src4", "ipv4"),  # sourceIPv4Address
    11: ("dst_port", "u16"),  # destinationTransportPort
    12: ("dst4", "ipv4"),  # destinationIPv4Address
    21: ("end_uptime_ms", "u32"),  # flowEndSysUpTime (v9 LAST_SWITCHED)
    22: ("start_uptime_ms", "u32"),  # flowStartSysUpTime (v9 FIRST_SWITCHED)
    25: ("min_ip_len", "u64"),  # minimumIpTotalLength
    26: ("max_ip_len", "u64"),  # maximumIpTotalLength
    27: ("src6", "ipv6"),  # sourceIPv6Address
    28: ("dst6", "ipv6"),  # destinationIPv6Address
    34: ("sampling_interval", "u32"),  # samplingInterval (v9 SAMPLING_INTERVAL)
    58: ("vlan", "u16"),  # vlanId
    60: ("ip_version", "u8"),  # ipVersion
    85: ("octets_total", "u64"),  # octetTotalCount
    86: ("packets_total", "u64"),  # packetTotalCount
    136: ("end_reason", "u8"),  # flowEndReason
    150: ("start_s", "u32"),  # flowStartSeconds
    151: ("end_s", "u32"),  # flowEndSeconds
    152: ("start_ms", "u64"),  # flowStartMilliseconds
    153: ("end_ms", "u64"),  # flowEndMilliseconds
    154: ("start_us", "ntp"),  # flowStartMicroseconds (dateTimeMicroseconds, NTP format)
    155: ("end_us", "ntp"),  # flowEndMicroseconds
    156: ("start_ns", "ntp"),  # flowStartNanoseconds (dateTimeNanoseconds, NTP format)
    157: ("end_ns", "ntp"),  # flowEndNanoseconds
    158: ("start_delta_us", "u32"),  # flowStartDeltaMicroseconds (before export time)
    159: ("end_delta_us", "u32"),  # flowEndDeltaMicroseconds
    160: ("system_init_ms", "u64"),  # systemInitTimeMilliseconds
    161: ("duration_ms", "u32"),  # flowDurationMilliseconds
    162: ("duration_us", "u32"),  # flowDurationMicroseconds
    224: ("ip_total_length", "u64"),  # ipTotalLength (one packet: PSAMP-style reports)
    239: ("biflow_direction", "u8"),  # biflowDirection (RFC 5103 §6.3)
    243: ("vlan", "u16"),  # dot1qVlanId
    305: ("sampling_interval", "u32"),  # samplingPacketInterval
    322: ("obs_s", "u32"),  # observationTimeSeconds
    323: ("obs_ms", "u64"),  # observationTimeMilliseconds
    324: ("obs_us", "ntp"),  # observationTimeMicroseconds
    325: ("obs_ns", "ntp"),  # observationTimeNanoseconds
}
# RFC 5103 reverse elements read (PEN 29305, same id): the counters of the other direction.
REVERSE_ELEMENTS = frozenset({1, 2, 6, 25, 26, 85, 86, 152, 153, 154, 155, 156, 157, 161})
# Lengths a field may have: addresses and timestamps exactly; unsigned integers up to their
# abstract type's size (reduced-size encoding, RFC 7011 §6.2, sends fewer bytes).
KIND_LENGTHS = {"ipv4": (4,), "ipv6": (16,), "ntp": (8,), "u8": (1,), "u16": (1, 2),
                "u32": (1, 2, 3, 4), "u64": (1, 2, 3, 4, 5, 6, 7, 8)}  # fmt: skip

# flowEndReason (IANA IPFIX registry, IE 136): 1 idle timeout, 2 active
# timeout, 3 end of flow detected (TCP FIN/RST), 4 forced end, 5 lack of resources.
END_REASONS = {1: "idle", 2: "active-timeout", 3: "tcp-end", 4: "forced-end", 5: "evicted"}

RawFields = dict[str, int]
MAX_TIME_NS = (1 << 63) - 1  # times are int64 ns since the epoch downstream (year 2262)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    element_id: int
    length: int  # VARIABLE_LENGTH for a variable-length field (IPFIX only)
    enterprise: int = 0  # 0: IETF element


@dataclass(frozen=True, slots=True)
class Template:
    """A (data or options) template as the exporter defined it."""

    template_id: int
    fields: tuple[FieldSpec, ...]
    scope_fields: int = 0  # options templates: how many leading fields are scope fields
    is_options: bool = False

    @property
    def min_record_bytes(self) -> int:
        """The shortest a record of this template can be (a variable-length field is at
        least its one length byte): padding at the end of a set is shorter than this."""
        return sum(1 if f.length == VARIABLE_LENGTH else f.length for f in self.fields)


@dataclass(slots=True)
class ExportRecord:
    """One flow record as exported, with absolute times. Addresses are integers (IPv4 in
    32 bits); ``rev_*`` are the reverse direction of an RFC 5103 biflow (zero otherwise)."""

    exporter: str
    domain: int  # IPFIX observation domain, NetFlow v9 source id, v5 engine type/id
    export_version: int  # 5, 9 or 10
    ip_version: int
    src_addr: int
    dst_addr: int
    src_port: int
    dst_port: int
    proto: int
    packets: int
    octets: int  # IP-layer bytes (NetFlow and IPFIX count the IP header and payload)
    first_ns: int
    last_ns: int
    tcp_flags: int = 0
    rev_packets: int = 0
    rev_octets: int = 0
    rev_tcp_flags: int = 0
    rev_first_ns: int | None = None
    rev_last_ns: int | None = None
    biflow: bool = False
    min_ip_len: int | None = None
    max_ip_len: int | None = None
    rev_min_ip_len: int | None = None
    rev_max_ip_len: int | None = None
    end_reason: str | None = None
    vlan: int | None = None
    sampling_interval: int = 0  # 0 or 1: unsampled; N: counters cover 1 in N packets
    bad_time: bool = False  # a time outside 1970..2262: replaced by the export time


@dataclass(frozen=True, slots=True)
class TimeBase:
    """What the message header says about time, to make record times absolute."""

    export_ms: int  # the header's export time, ms since the epoch
    # NetFlow v5/v9: the exporter's sysUpTime at export (ms); IPFIX: None.
    sys_uptime_ms: int | None = None
    # IPFIX: systemInitTimeMilliseconds learnt from an options record of this domain.
    system_init_ms: int | None = None


# RFC 3954 §5.1 / RFC 7011 §3.3.2: every (Flow)Set starts with its id and its length.
SET_HEADER_BYTES = 4


def walk_sets(
    data: bytes | memoryview, header_bytes: int, unit: str, container: str, *,
    short_tail_is_padding: bool,
) -> tuple[list[tuple[int, memoryview]], str | None]:  # fmt: skip
    """(set id, body) of each ``unit`` ("FlowSet", "Set") after the ``container``'s
    ("datagram", "message") header, and the problem that stopped the walk early (a set
    cut by the end or with a length below its header), so the sets before it are still
    used. Fewer than a set header's bytes at the end are padding where the format
    tolerates it (``short_tail_is_padding``), else a problem too."""
    view = memoryview(data)
    out = []
    at = header_bytes
    while at < len(view):
        if at + SET_HEADER_BYTES > len(view):
            if short_tail_is_padding:
                break
            return out, f"{len(view) - at} bytes after the last {unit} are no {unit} header"
        set_id = int.from_bytes(view[at : at + 2], "big")
        length = int.from_bytes(view[at + 2 : at + 4], "big")
        if length < SET_HEADER_BYTES:
            return out, f"{unit} {set_id} at byte {at} has length {length} (< 4)"
        if at + length > len(view):
            return out, f"{unit} {set_id} at byte {at} runs past the {container} end"
        out.append((set_id, view[at + SET_HEADER_BYTES : at + length]))
        at += length
    return out, None


def read_field_specs(
    body: bytes | memoryview, at: int, count: int, with_enterprise: bool
) -> tuple[tuple[FieldSpec, ...], int]:
    """``count`` field specifiers from ``at``; returns them and the offset after them.
    IPFIX (RFC 7011 §3.2): the top bit of the element id says a 4-byte enterprise number
    follows; NetFlow v9 (RFC 3954 §5.2) has no enterprise numbers."""
    fields = []
    for _ in range(count):
        if at + 4 > len(body):
            raise Truncated("template ends inside a field specifier")
        element_id = int.from_bytes(body[at : at + 2], "big")
        length = int.from_bytes(body[at + 2 : at + 4], "big")
        at += 4
        enterprise = 0
        if with_enterprise and element_id & 0x8000:
            if at + 4 > len(body):
                raise Truncated("template ends inside an enterprise number")
            enterprise = int.from_bytes(body[at : at + 4], "big")
            element_id &= 0x7FFF
            at += 4
        if length == 0:
            raise Malformed(f"template field {element_id} has length 0")
        if length == VARIABLE_LENGTH and not with_enterprise:
            raise Malformed("NetFlow v9 template field with variable length 65535")
        fields.append(FieldSpec(element_id, length, enterprise))
    return tuple(fields), at


def _ntp_ns(value: bytes | memoryview) -> int:
    """An NTP-format timestamp (RFC 7011 §6.1.9-10: seconds since 1900, 2^-32 fraction)
    as ns since the Unix epoch."""
    seconds = int.from_bytes(value[:4], "big")
    fraction = int.from_bytes(value[4:8], "big")
    return (seconds - NTP_UNIX_OFFSET_S) * 1_000_000_000 + (fraction * 1_000_000_000 >> 32)


def decode_data_record(
    body: bytes | memoryview, at: int, template: Template, bad_lengths: list[str]
) -> tuple[RawFields, int]:
    """One data record of ``template`` at ``at``: the known elements, and the offset after
    the record. A known element with an impossible length is skipped and named in
    ``bad_lengths`` (the caller reports it); the record still counts."""
    raw: RawFields = {}
    end = len(body)
    for spec in template.fields:
        length = spec.length
        if length == VARIABLE_LENGTH:
            # RFC 7011 §7: one length byte, or 255 and then two length bytes.
            if at >= end:
                raise Truncated("data record ends before a variable-length field")
            length = body[at]
            at += 1
            if length == 255:
                if at + 2 > end:
                    raise Truncated("data record ends inside a variable-length field's length")
                length = int.from_bytes(body[at : at + 2], "big")
                at += 2
        if at + length > end:
            raise Truncated("data record ends inside a field")
        name_kind = None
        if spec.enterprise == 0:
            name_kind = ELEMENTS.get(spec.element_id)
        elif spec.enterprise == REVERSE_PEN and spec.element_id in REVERSE_ELEMENTS:
            name, kind = ELEMENTS[spec.element_id]
            name_kind = ("rev_" + name, kind)
        if name_kind is not None:
            name, kind = name_kind
            value = body[at : at + length]
            if length not in KIND_LENGTHS[kind]:
                bad_lengths.append(f"{name} ({spec.element_id}) of {length} bytes")
            elif kind == "ntp":
                raw[name] = _ntp_ns(value)
            else:
                raw[name] = int.from_bytes(value, "big")
        at += length
    return raw, at


def _uptime_ns(uptime_ms: int, base: TimeBase) -> int | None:
    """A sysUpTime-relative time (ms since the exporter booted) as ns since the epoch."""
    if base.sys_uptime_ms is not None:
        # RFC 3954 §5.1: boot time = export time - sysUpTime. The counter wraps after
        # 49.7 days; the record time is at most that far before the export.
        before_export_ms = (base.sys_uptime_ms - uptime_ms) & 0xFFFFFFFF
        return (base.export_ms - before_export_ms) * 1_000_000
    if base.system_init_ms is not None:
        # RFC 7011 / IANA: flowStartSysUpTime is relative to systemInitTimeMilliseconds.
        return (base.system_init_ms + uptime_ms) * 1_000_000
    return None


def _time_ns(raw: RawFields, which: str, base: TimeBase) -> int | None:
    """Absolute start or end (``which``) in ns from whichever element the record has."""
    prefix = "" if not which.startswith("rev_") else "rev_"
    edge = which.removeprefix("rev_")  # "start" | "end"
    if (v := raw.get(f"{which}_ns")) is not None:
        return v
    if (v := raw.get(f"{which}_us")) is not None:
        # RFC 7011 §6.1.9: the fraction's low 11 bits of dateTimeMicroseconds are noise.
        return v // 1000 * 1000
    if (v := raw.get(f"{which}_ms")) is not None:
        return v * 1_000_000
    if (v := raw.get(f"{which}_s")) is not None:
        return v * 1_000_000_000
    if not prefix:
        if (v := raw.get(f"{edge}_delta_us")) is not None:
            return base.export_ms * 1_000_000 - v * 1000
        uptime = raw.get(f"{edge}_uptime_ms")
        if uptime is not None:
            init = raw.get("system_init_ms")
            if init is not None:
                return (init + uptime) * 1_000_000
            return _uptime_ns(uptime, base)
    return None


def _observation_ns(raw: RawFields) -> int | None:
    for name, scale in (("obs_ns", 1), ("obs_us", 1), ("obs_ms", 1_000_000),
                        ("obs_s", 1_000_000_000)):  # fmt: skip
        if (v := raw.get(name)) is not None:
            return v * scale
    return None


def _span(raw: RawFields, prefix: str, base: TimeBase) -> tuple[int | None, int | None]:
    first = _time_ns(raw, f"{prefix}start", base)
    last = _time_ns(raw, f"{prefix}end", base)
    duration_ns = None
    if (v := raw.get(f"{prefix}duration_us")) is not None:
        duration_ns = v * 1000
    elif (v := raw.get(f"{prefix}duration_ms")) is not None:
        duration_ns = v * 1_000_000
    if duration_ns is not None:
        if first is not None and last is None:
            last = first + duration_ns
        elif last is not None and first is None:
            first = last - duration_ns
    return first, last


def build_record(
    raw: RawFields, exporter: str, domain: int, export_version: int, base: TimeBase
) -> ExportRecord | None:
    """An ExportRecord from one decoded data record, or None when it describes no flow
    (no addresses: an options record, or a template of MAC or MPLS fields only)."""
    if "src4" in raw and "dst4" in raw:
        ip_version, src, dst = 4, raw["src4"], raw["dst4"]
    elif "src6" in raw and "dst6" in raw:
        ip_version, src, dst = 6, raw["src6"], raw["dst6"]
    else:
        return None
    packets = raw.get("packets", raw.get("packets_total"))
    octets = raw.get("octets", raw.get("octets_total"))
    if packets is None and octets is None and "ip_total_length" in raw:
        packets, octets = 1, raw["ip_total_length"]  # a per-packet (PSAMP-style) report
    first, last = _span(raw, "", base)
    if first is None and last is None:
        first = last = _observation_ns(raw)
    if first is None and last is None:
        first = last = base.export_ms * 1_000_000
    first = last if first is None else first
    last = first if last is None else last
    bad_time = not (0 <= first <= MAX_TIME_NS and 0 <= last <= MAX_TIME_NS)
    if bad_time:
        first = last = base.export_ms * 1_000_000  # flagged; the counters still count
    if last < first:
        first, last = last, first
    record = ExportRecord(
        exporter=exporter,
        domain=domain,
        export_version=export_version,
        ip_version=ip_version,
        src_addr=src,
        dst_addr=dst,
        src_port=raw.get("src_port", 0) & 0xFFFF,
        dst_port=raw.get("dst_port", 0) & 0xFFFF,
        proto=raw.get("proto", 0) & 0xFF,
        packets=packets or 0,
        octets=octets or 0,
        first_ns=first,
        last_ns=last,
        tcp_flags=raw.get("tcp_flags", 0) & 0xFF,
        min_ip_len=raw.get("min_ip_len"),
        max_ip_len=raw.get("max_ip_len"),
        end_reason=END_REASONS.get(raw.get("end_reason", 0)),
        vlan=raw["vlan"] & 0x0FFF if "vlan" in raw else None,
        sampling_interval=raw.get("sampling_interval", 0),
        bad_time=bad_time,
    )
    rev_keys = ("rev_packets", "rev_packets_total", "rev_octets", "rev_octets_total")
    if any(k in raw for k in rev_keys):
        record.biflow = True
        record.rev_packets = raw.get("rev_packets", raw.get("rev_packets_total", 0))
        record.rev_octets = raw.get("rev_octets", raw.get("rev_octets_total", 0))
        record.rev_tcp_flags = raw.get("rev_tcp_flags", 0) & 0xFF
        record.rev_min_ip_len = raw.get("rev_min_ip_len")
        record.rev_max_ip_len = raw.get("rev_max_ip_len")
        rev_first, rev_last = _span(raw, "rev_", base)
        if all(t is None or 0 <= t <= MAX_TIME_NS for t in (rev_first, rev_last)):
            record.rev_first_ns, record.rev_last_ns = rev_first, rev_last
        else:
            record.bad_time = True
        if raw.get("biflow_direction") == 2:
            # RFC 5103 §6.3 reverseInitiator: the record's destination began the flow.
            _swap_directions(record)
    return record


def _swap_directions(r: ExportRecord) -> None:
    r.src_addr, r.dst_addr = r.dst_addr, r.src_addr
    r.src_port, r.dst_port = r.dst_port, r.src_port
    r.packets, r.rev_packets = r.rev_packets, r.packets
    r.octets, r.rev_octets = r.rev_octets, r.octets
    r.tcp_flags, r.rev_tcp_flags = r.rev_tcp_flags, r.tcp_flags
    r.min_ip_len, r.rev_min_ip_len = r.rev_min_ip_len, r.min_ip_len
    r.max_ip_len, r.rev_max_ip_len = r.rev_max_ip_len, r.max_ip_len
    if r.rev_first_ns is not None:
        fwd = (r.first_ns, r.last_ns)
        r.first_ns, r.last_ns = r.rev_first_ns, r.rev_last_ns or r.rev_first_ns
        r.rev_first_ns, r.rev_last_ns = fwd
