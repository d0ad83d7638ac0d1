"""NetFlow v5: a fixed 24-byte header and up to 30 fixed 48-byte records.

Cisco's "NetFlow Export Datagram Format" (v5); no RFC. Times in a record are the
exporter's sysUpTime (ms since boot) at the flow's first and last packet; the header's
unix_secs/unix_nsecs and sysUpTime at export make them absolute.
"""

from __future__ import annotations

import struct

from voipscope.errors import Malformed, Truncated
from voipscope.source.flow_fields import ExportRecord, TimeBase

VERSION = 5
HEADER_BYTES = 24
RECORD_BYTES = 48
MAX_RECORDS = 30  # Cisco's format document: "1-30" records per datagram

# version, count, sysUptime, unix_secs, unix_nsecs, flow_sequence, engine_type, engine_id,
# sampling_interval (top 2 bits: mode, low 14: interval)
_HEADER = struct.Struct("!HHIIIIBBH")
# srcaddr, dstaddr, nexthop, input, output, dPkts, dOctets, First, Last, srcport, dstport,
# pad1, tcp_flags, prot, tos, src_as, dst_as, src_mask, dst_mask, pad2
_RECORD = struct.Struct("!IIIHHIIIIHHBBBBHHBBH")


def parse_v5(data: bytes | memoryview, exporter: str) -> list[ExportRecord]:
    """Every record of one NetFlow v5 datagram. A datagram shorter than its count says
    raises Truncated (the caller may keep what :func:`parse_v5_prefix` returns)."""
    records, complete = parse_v5_prefix(data, exporter)
    if not complete:
        raise Truncated(
            f"NetFlow v5 datagram of {len(data)} bytes is shorter than its header's record "
            "count says"
        )
    return records


def parse_v5_prefix(data: bytes | memoryview, exporter: str) -> tuple[list[ExportRecord], bool]:
    """The whole records of a possibly cut datagram, and whether it was complete."""
    if len(data) < HEADER_BYTES:
        raise Truncated(f"NetFlow v5 header needs {HEADER_BYTES} bytes, got {len(data)}")
    (version, count, uptime_ms, unix_s, unix_ns, _seq, engine_type, engine_id,
     sampling) = _HEADER.unpack_from(data, 0)  # fmt: skip
    if version != VERSION:
        raise Malformed(f"not NetFlow v5 (version {version})")
    if not 1 <= count <= MAX_RECORDS:
        raise Malformed(f"NetFlow v5 header counts {count} records (1-{MAX_RECORDS})")
    base = TimeBase(export_ms=unix_s * 1000 + unix_ns // 1_000_000, sys_uptime_ms=uptime_ms)
    interval = sampling & 0x3FFF
    whole = min(count, (len(data) - HEADER_BYTES) // RECORD_BYTES)
    records = []
    for i in range(whole):
        (src, dst, _hop, _in, _out, packets, octets, first, last, sport, dport, _p1, flags,
         proto, _tos, _sas, _das, _sm, _dm, _p2) = _RECORD.unpack_from(
            data, HEADER_BYTES + i * RECORD_BYTES
        )  # fmt: skip
        first_ns = _absolute_ns(first, base)
        last_ns = _absolute_ns(last, base)
        records.append(
            ExportRecord(
                exporter=exporter,
                domain=engine_type << 8 | engine_id,
                export_version=VERSION,
                ip_version=4,
                src_addr=src,
                dst_addr=dst,
                src_port=sport,
                dst_port=dport,
                proto=proto,
                packets=packets,
                octets=octets,
                first_ns=min(first_ns, last_ns),
                last_ns=max(first_ns, last_ns),
                tcp_flags=flags,
                sampling_interval=interval,
            )
        )
    return records, whole == count


def _absolute_ns(uptime_ms: int, base: TimeBase) -> int:
    assert base.sys_uptime_ms is not None
    # sysUpTime wraps after 49.7 days; a record time is at most that long before export.
    before_export_ms = (base.sys_uptime_ms - uptime_ms) & 0xFFFFFFFF
    return (base.export_ms - before_export_ms) * 1_000_000
