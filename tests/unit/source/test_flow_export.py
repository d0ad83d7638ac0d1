"""NetFlow v5, v9 and IPFIX parsing on hand-built bytes: one fixture per parser branch,
prefix-truncation sweeps, the template cache and its bounds, IPFIX files (RFC 5655).

The builders at the top are shared with tests/fuzz/test_fuzz_flow_export.py and the
merge tests (test_flow_export_merge.py).
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import struct
from pathlib import Path

import pytest

from voipscope.anomalies import AnomalyLog
from voipscope.config import FlowRecordConfig
from voipscope.errors import DecodeError, Malformed, SourceError, Truncated
from voipscope.source import ipfix, netflow_v5, netflow_v9
from voipscope.source.flow_export import (
    ANOMALIES,
    ExportFileInfo,
    FlowExportDecoder,
    is_ipfix_file,
    read_ipfix_file,
    sniff_ipfix,
)

T0_S = 1_700_000_000  # export time of the built messages
PEN_REVERSE = 29305


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


# -- builders ---------------------------------------------------------------------------------


def v5_record(src: str, dst: str, sport: int, dport: int, packets: int, octets: int,
              first: int, last: int, proto: int = 17, flags: int = 0) -> bytes:  # fmt: skip
    return struct.pack(
        "!4s4s4sHHIIIIHHBBBBHHBBH", ip4(src), ip4(dst), b"\0" * 4, 1, 2, packets, octets,
        first, last, sport, dport, 0, flags, proto, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip


def v5_datagram(records: list[bytes], uptime_ms: int = 100_000, unix_s: int = T0_S,
                seq: int = 0, count: int | None = None, sampling: int = 0) -> bytes:  # fmt: skip
    header = struct.pack(
        "!HHIIIIBBH", 5, len(records) if count is None else count, uptime_ms, unix_s, 0,
        seq, 0, 0, sampling,
    )  # fmt: skip
    return header + b"".join(records)


def fields_bytes(fields: list[tuple[int, int] | tuple[int, int, int]], enterprise: bool) -> bytes:
    out = b""
    for spec in fields:
        element_id, length = spec[0], spec[1]
        pen = spec[2] if len(spec) == 3 else 0
        if pen and enterprise:
            out += struct.pack("!HHI", element_id | 0x8000, length, pen)
        else:
            out += struct.pack("!HH", element_id, length)
    return out


def template_record(template_id: int, fields: list, enterprise: bool = True) -> bytes:
    return struct.pack("!HH", template_id, len(fields)) + fields_bytes(fields, enterprise)


def options_template_record(template_id: int, scope: list, options: list) -> bytes:
    """IPFIX (RFC 7011 §3.4.2.2): id, field count, scope field count, specifiers."""
    head = struct.pack("!HHH", template_id, len(scope) + len(options), len(scope))
    return head + fields_bytes(scope + options, True)


def flowset(set_id: int, body: bytes) -> bytes:
    """An IPFIX Set or a NetFlow v9 FlowSet (the same 4-byte header)."""
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def ipfix_message(sets: list[bytes], domain: int = 1, export_s: int = T0_S, seq: int = 0) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export_s, seq, domain) + body


def v9_datagram(flowsets: list[bytes], uptime_ms: int = 100_000, unix_s: int = T0_S,
                seq: int = 0, source_id: int = 7) -> bytes:  # fmt: skip
    body = b"".join(flowsets)
    return struct.pack("!HHIIII", 9, len(flowsets), uptime_ms, unix_s, seq, source_id) + body


# The template of the IPFIX tests: v4 5-tuple, delta counters, ms times, flags, end reason.
IPFIX_V4_FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8),
                   (153, 8), (6, 2), (136, 1)]  # fmt: skip


def ipfix_v4_data(src: str, dst: str, sport: int, dport: int, packets: int, octets: int,
                  start_ms: int, end_ms: int, proto: int = 17, flags: int = 0,
                  reason: int = 1) -> bytes:  # fmt: skip
    return struct.pack(
        "!4s4sHHBQQQQHB", ip4(src), ip4(dst), sport, dport, proto, packets, octets,
        start_ms, end_ms, flags, reason,
    )  # fmt: skip


def ipfix_flow_message(records: list[bytes], template_id: int = 256, with_template: bool = True,
                       domain: int = 1, seq: int = 0, export_s: int = T0_S) -> bytes:  # fmt: skip
    sets = [flowset(2, template_record(template_id, IPFIX_V4_FIELDS))] if with_template else []
    if records:
        sets.append(flowset(template_id, b"".join(records)))
    return ipfix_message(sets, domain=domain, seq=seq, export_s=export_s)


def decoder(**config: int) -> FlowExportDecoder:
    return FlowExportDecoder(FlowRecordConfig(**config), AnomalyLog())


# -- NetFlow v5 -------------------------------------------------------------------------------


def test_v5_records_with_absolute_times() -> None:
    data = v5_datagram(
        [
            v5_record("10.0.0.1", "10.0.0.2", 4000, 5004, 50, 10_000, 94_000, 99_000),
            v5_record("10.0.0.2", "10.0.0.1", 5004, 4000, 49, 9_800, 94_010, 99_010, 6, 0x1B),
        ],
        uptime_ms=100_000,
    )
    a, b = netflow_v5.parse_v5(data, "192.0.2.9")
    assert (a.src_addr, a.dst_addr) == (0x0A000001, 0x0A000002)
    assert (a.src_port, a.dst_port, a.proto, a.packets, a.octets) == (4000, 5004, 17, 50, 10_000)
    # RFC-less but universal: absolute = export time - (sysUpTime - record uptime).
    assert a.first_ns == (T0_S * 1000 - 6000) * 1_000_000
    assert a.last_ns == (T0_S * 1000 - 1000) * 1_000_000
    assert (b.proto, b.tcp_flags, b.exporter, b.export_version) == (6, 0x1B, "192.0.2.9", 5)


def test_v5_uptime_wrap_is_before_export() -> None:
    # sysUpTime wrapped to 1000 ms after the flow began at uptime 2^32 - 1000.
    data = v5_datagram([v5_record("1.1.1.1", "2.2.2.2", 1, 2, 1, 40, 2**32 - 1000, 500)],
                       uptime_ms=1000)  # fmt: skip
    (r,) = netflow_v5.parse_v5(data, "")
    assert r.first_ns == (T0_S * 1000 - 2000) * 1_000_000
    assert r.last_ns == (T0_S * 1000 - 500) * 1_000_000


def test_v5_truncated_keeps_whole_records_and_reports() -> None:
    full = v5_datagram([v5_record("1.1.1.1", "2.2.2.2", 1, 2, 3, 120, 0, 10)] * 2)
    cut = full[:-10]
    with pytest.raises(Truncated):
        netflow_v5.parse_v5(cut, "")
    d = decoder()
    records = d.decode(cut, "192.0.2.1")
    assert len(records) == 1
    assert d.anomalies.counts["netflow_v5_truncated"] == 1


def test_v5_bad_count_is_malformed() -> None:
    with pytest.raises(Malformed):
        netflow_v5.parse_v5(v5_datagram([], count=0), "")
    d = decoder()
    assert d.decode(v5_datagram([], count=31), "x") == []
    assert d.anomalies.counts["netflow_v5_malformed"] == 1


def test_v5_sampling_and_sequence_gap() -> None:
    d = decoder()
    rec = v5_record("1.1.1.1", "2.2.2.2", 1, 2, 3, 120, 0, 10)
    (r,) = d.decode(v5_datagram([rec], seq=0, sampling=0x4000 | 100), "e")
    assert r.sampling_interval == 100
    d.decode(v5_datagram([rec], seq=1 + 5), "e")  # five flows were lost in between
    assert d.anomalies.counts["netflow_v5_sequence_gap"] == 5
    assert d.stats.records_lost == 5


# -- NetFlow v9 -------------------------------------------------------------------------------

V9_FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4), (22, 4), (21, 4),
             (6, 1)]  # fmt: skip


def v9_data(src: str, dst: str, packets: int, octets: int, first: int, last: int) -> bytes:
    return struct.pack("!4s4sHHBIIIIB", ip4(src), ip4(dst), 5060, 5060, 17, packets, octets,
                       first, last, 0)  # fmt: skip


def test_v9_template_then_data_with_uptime_times() -> None:
    data = v9_datagram(
        [
            flowset(0, template_record(300, V9_FIELDS, enterprise=False)),
            flowset(300, v9_data("10.1.1.1", "10.2.2.2", 7, 3500, 90_000, 95_000) + b"\0\0"),
        ],
        uptime_ms=100_000,
    )
    d = decoder()
    (r,) = d.decode(data, "198.51.100.1")
    assert (r.packets, r.octets, r.domain, r.export_version) == (7, 3500, 7, 9)
    assert r.first_ns == (T0_S * 1000 - 10_000) * 1_000_000
    assert r.last_ns == (T0_S * 1000 - 5_000) * 1_000_000
    assert not d.anomalies.counts  # the two padding bytes are not a cut record


def test_v9_options_template_data_is_skipped() -> None:
    # §6.1: scope 1 field (system, 4 bytes), option 1 field (sampling interval 34, 4 bytes).
    options = struct.pack("!HHH", 400, 4, 4) + struct.pack("!HHHH", 1, 4, 34, 4)
    data = v9_datagram([flowset(1, options), flowset(400, struct.pack("!II", 0, 100))])
    d = decoder()
    assert d.decode(data, "e") == []
    assert d.stats.options_records == 1
    assert not d.anomalies.counts


def test_v9_data_before_template_is_held_then_decoded() -> None:
    d = decoder()
    first = v9_datagram([flowset(300, v9_data("10.1.1.1", "10.2.2.2", 1, 60, 1, 2))], seq=0)
    assert d.decode(first, "e") == []
    assert d.anomalies.counts["netflow_v9_data_before_template"] == 1
    second = v9_datagram([flowset(0, template_record(300, V9_FIELDS, False))], seq=1)
    (r,) = d.decode(second, "e")
    assert r.packets == 1
    assert d.stats.sets_recovered == 1
    # Another exporter's template of the same id is not this exporter's.
    assert d.decode(first, "other") == []
    d.finish()
    assert d.anomalies.counts["netflow_v9_data_without_template"] == 1


def test_v9_reserved_flowset_and_bad_length() -> None:
    d = decoder()
    d.decode(v9_datagram([flowset(5, b"abcd")]), "e")
    assert d.anomalies.counts["netflow_v9_reserved_flowset"] == 1
    bad = v9_datagram([]) + struct.pack("!HH", 300, 2)
    d.decode(bad, "e")
    assert d.anomalies.counts["netflow_v9_malformed"] == 1
    past = v9_datagram([]) + struct.pack("!HH", 300, 40) + b"x" * 8
    d.decode(past, "e")
    assert d.anomalies.counts["netflow_v9_truncated"] == 1


def test_v9_bad_template_is_reported() -> None:
    d = decoder()
    d.decode(v9_datagram([flowset(0, struct.pack("!HH", 12, 1) + b"\0\x08\0\x04")]), "e")
    assert d.anomalies.counts["netflow_v9_bad_template"] == 1
    with pytest.raises(Malformed):
        netflow_v9.parse_v9_templates(struct.pack("!HHHH", 300, 1, 8, 0xFFFF))


# -- IPFIX ------------------------------------------------------------------------------------


def test_ipfix_template_and_data() -> None:
    msg = ipfix_flow_message(
        [
            ipfix_v4_data(
                "10.0.0.1",
                "10.0.0.2",
                4000,
                5004,
                250,
                50_000,
                T0_S * 1000 - 5000,
                T0_S * 1000,
                flags=0,
                reason=2,
            )
        ]
    )
    d = decoder()
    (r,) = d.decode(msg, "203.0.113.5")
    assert (r.src_port, r.dst_port, r.packets, r.octets, r.domain) == (4000, 5004, 250, 50_000, 1)
    assert r.first_ns == (T0_S * 1000 - 5000) * 1_000_000
    assert r.end_reason == "active-timeout"
    assert not r.biflow


def test_ipfix_variable_length_and_enterprise_fields() -> None:
    fields = [(8, 4), (12, 4), (96, 0xFFFF), (100, 4, 9), (2, 4), (1, 4), (101, 0xFFFF, 9)]
    long_name = b"n" * 300  # RFC 7011 §7: 255 then a two-byte length
    data = (
        ip4("10.0.0.1") + ip4("10.0.0.2")
        + bytes([5]) + b"sip-x"
        + b"\xde\xad\xbe\xef"
        + struct.pack("!II", 3, 180)
        + b"\xff" + struct.pack("!H", len(long_name)) + long_name
    )  # fmt: skip
    msg = ipfix_message([flowset(2, template_record(999, fields)), flowset(999, data)])
    d = decoder()
    (r,) = d.decode(msg, "e")
    assert (r.packets, r.octets) == (3, 180)
    assert not d.anomalies.counts


def test_ipfix_biflow_reverse_fields() -> None:
    fields = [*IPFIX_V4_FIELDS, (2, 8, PEN_REVERSE), (1, 8, PEN_REVERSE), (6, 2, PEN_REVERSE),
              (152, 8, PEN_REVERSE), (153, 8, PEN_REVERSE)]  # fmt: skip
    body = ipfix_v4_data("10.0.0.1", "10.0.0.2", 1, 2, 10, 1000, 5000, 9000)
    body += struct.pack("!QQHQQ", 8, 960, 0x12, 5100, 9100)
    msg = ipfix_message([flowset(2, template_record(257, fields)), flowset(257, body)])
    (r,) = decoder().decode(msg, "e")
    assert r.biflow
    assert (r.rev_packets, r.rev_octets, r.rev_tcp_flags) == (8, 960, 0x12)
    assert (r.rev_first_ns, r.rev_last_ns) == (5100 * 10**6, 9100 * 10**6)


def test_ipfix_biflow_reverse_initiator_swaps() -> None:
    fields = [*IPFIX_V4_FIELDS, (2, 8, PEN_REVERSE), (1, 8, PEN_REVERSE), (239, 1)]
    body = ipfix_v4_data("10.0.0.1", "10.0.0.2", 1, 2, 10, 1000, 5000, 9000)
    body += struct.pack("!QQB", 4, 400, 2)  # biflowDirection reverseInitiator
    msg = ipfix_message([flowset(2, template_record(257, fields)), flowset(257, body)])
    (r,) = decoder().decode(msg, "e")
    assert (r.src_addr, r.src_port, r.packets, r.rev_packets) == (0x0A000002, 2, 4, 10)


def test_ipfix_ipv6_and_ntp_times() -> None:
    fields = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (86, 4), (85, 4), (156, 8), (155, 8)]
    src, dst = ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("2001:db8::2")
    ntp_s = T0_S + 2_208_988_800
    start = struct.pack("!II", ntp_s, 1 << 31)  # .5 s
    end = struct.pack("!II", ntp_s + 2, 0)
    body = src.packed + dst.packed + struct.pack("!HHBII", 1, 2, 17, 5, 500) + start + end
    msg = ipfix_message([flowset(2, template_record(300, fields)), flowset(300, body)])
    (r,) = decoder().decode(msg, "e")
    assert (r.ip_version, r.src_addr, r.packets, r.octets) == (6, int(src), 5, 500)
    assert r.first_ns == T0_S * 10**9 + 500_000_000
    assert r.last_ns == (T0_S + 2) * 10**9


def test_ipfix_sysuptime_with_system_init_from_options() -> None:
    init_ms = T0_S * 1000 - 60_000
    options = options_template_record(500, [(149, 4)], [(160, 8)])
    option_data = struct.pack("!IQ", 1, init_ms)
    fields = [(8, 4), (12, 4), (2, 4), (1, 4), (22, 4), (21, 4)]
    body = ip4("1.1.1.1") + ip4("2.2.2.2") + struct.pack("!IIII", 2, 100, 1000, 3000)
    d = decoder()
    d.decode(ipfix_message([flowset(3, options), flowset(500, option_data)]), "e")
    msg = ipfix_message([flowset(2, template_record(300, fields)), flowset(300, body)])
    (r,) = d.decode(msg, "e")
    assert r.first_ns == (init_ms + 1000) * 10**6
    assert r.last_ns == (init_ms + 3000) * 10**6
    assert d.stats.options_records == 1


def test_ipfix_withdrawal_one_and_all() -> None:
    d = decoder()
    data = ipfix_v4_data("1.1.1.1", "2.2.2.2", 1, 2, 1, 60, 0, 0)
    assert len(d.decode(ipfix_flow_message([data]), "e")) == 1
    withdraw = ipfix_message([flowset(2, struct.pack("!HH", 256, 0))])
    d.decode(withdraw, "e")
    assert d.stats.templates_withdrawn == 1
    assert d.decode(ipfix_flow_message([data], with_template=False), "e") == []
    assert d.anomalies.counts["ipfix_data_before_template"] == 1
    d.decode(ipfix_flow_message([]), "e")  # the template again: the held set is decoded
    assert d.stats.sets_recovered == 1
    d.decode(ipfix_message([flowset(2, struct.pack("!HH", 2, 0))]), "e")  # withdraw all
    assert d.decode(ipfix_flow_message([data], with_template=False), "e") == []
    d.finish()
    assert d.anomalies.counts["ipfix_data_without_template"] == 1


def test_ipfix_reserved_set_bad_field_length_and_cut_record() -> None:
    d = decoder()
    d.decode(ipfix_message([flowset(1, b"")]), "e")
    assert d.anomalies.counts["ipfix_reserved_set"] == 1
    fields = [(8, 4), (12, 4), (2, 3), (7, 5)]  # sourceTransportPort of 5 bytes is no port
    body = ip4("1.1.1.1") + ip4("2.2.2.2") + b"\0\0\x07" + b"\0" * 5 + b"\x01\x02"
    d.decode(ipfix_message([flowset(2, template_record(260, fields)), flowset(260, body)]), "e")
    assert d.anomalies.counts["ipfix_record_cut"] == 1
    assert d.anomalies.counts["ipfix_bad_field_length"] == 1


def test_ipfix_data_records_without_addresses_are_counted() -> None:
    msg = ipfix_message([flowset(2, template_record(270, [(2, 4)])), flowset(270, b"\0\0\0\1")])
    d = decoder()
    assert d.decode(msg, "e") == []
    assert d.stats.records_without_addresses == 1


def test_ipfix_sequence_gap_counts_lost_records() -> None:
    d = decoder()
    data = ipfix_v4_data("1.1.1.1", "2.2.2.2", 1, 2, 1, 60, 0, 0)
    d.decode(ipfix_flow_message([data, data], seq=0), "e")
    d.decode(ipfix_flow_message([data], seq=2), "e")
    assert not d.anomalies.counts
    d.decode(ipfix_flow_message([data], seq=10), "e")
    assert d.anomalies.counts["ipfix_sequence_gap"] == 7


def test_template_cache_is_bounded() -> None:
    d = decoder(max_templates=2)
    data = ipfix_v4_data("1.1.1.1", "2.2.2.2", 1, 2, 1, 60, 0, 0)
    for template_id in (256, 257, 258):
        d.decode(ipfix_flow_message([], template_id=template_id), "e")
    assert d.anomalies.counts["flow_export_template_cache_full"] == 1
    assert d.stats.templates_evicted == 1
    assert d.decode(ipfix_flow_message([data], template_id=256, with_template=False), "e") == []
    assert len(d.decode(ipfix_flow_message([data], template_id=258, with_template=False), "e"))


def test_pending_sets_are_bounded() -> None:
    d = decoder(max_pending_set_bytes=100)
    data = ipfix_v4_data("1.1.1.1", "2.2.2.2", 1, 2, 1, 60, 0, 0)
    for template_id in (300, 301, 302):
        d.decode(ipfix_flow_message([data], template_id=template_id, with_template=False), "e")
    assert d.anomalies.counts["ipfix_data_without_template"] >= 1
    assert d.stats.sets_without_template >= 1


def test_anomaly_names_are_all_declared() -> None:
    d = decoder(max_templates=1)
    for data in _damaged_samples():
        with contextlib.suppress(DecodeError):
            d.decode(data, "e")
    d.finish()
    assert set(d.anomalies.counts) <= set(ANOMALIES), d.anomalies.counts


# -- truncation sweeps --------------------------------------------------------------------------


def _samples() -> list[bytes]:
    data = ipfix_v4_data("10.0.0.1", "10.0.0.2", 1, 2, 5, 300, 10, 20)
    return [
        v5_datagram([v5_record("1.1.1.1", "2.2.2.2", 1, 2, 3, 120, 0, 10)] * 2),
        v9_datagram(
            [
                flowset(0, template_record(300, V9_FIELDS, enterprise=False)),
                flowset(300, v9_data("10.1.1.1", "10.2.2.2", 7, 3500, 90_000, 95_000)),
            ]
        ),
        ipfix_flow_message([data, data]),
        ipfix_message(
            [
                flowset(2, template_record(999, [(8, 4), (12, 4), (96, 0xFFFF), (1, 4, 9)])),
                flowset(999, ip4("1.1.1.1") + ip4("2.2.2.2") + b"\x03abc" + b"\0\0\0\1"),
            ]
        ),
    ]


def _damaged_samples() -> list[bytes]:
    out = []
    for sample in _samples():
        out += [sample[:n] for n in range(len(sample) + 1)]
    return out


@pytest.mark.parametrize("sample", range(4))
def test_every_prefix_gives_records_or_decode_error(sample: int) -> None:
    full = _samples()[sample]
    d = decoder()
    whole = len(d.decode(full, "e"))
    for n in range(len(full)):
        d = decoder()
        try:
            records = d.decode(full[:n], "e")
        except DecodeError:
            continue
        assert len(records) <= whole


def test_pure_parsers_raise_only_decode_errors_on_prefixes() -> None:
    for full in _samples():
        for n in range(len(full) + 1):
            prefix = full[:n]
            for parse in (
                lambda b: netflow_v5.parse_v5(b, ""),
                netflow_v9.parse_v9_header,
                netflow_v9.split_flowsets,
                ipfix.parse_ipfix_header,
                ipfix.split_sets,
                lambda b: ipfix.parse_ipfix_templates(b[16:], False),
                lambda b: ipfix.parse_ipfix_templates(b[20:], True),
                lambda b: netflow_v9.parse_v9_templates(b[24:]),
                lambda b: netflow_v9.parse_v9_options_templates(b[24:]),
            ):
                with contextlib.suppress(DecodeError):
                    parse(prefix)


# -- IPFIX files (RFC 5655) -------------------------------------------------------------------


def _ipfix_file(tmp_path: Path, messages: list[bytes], name: str = "a.ipfix") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(messages))
    return path


def test_ipfix_file_is_read_message_by_message(tmp_path: Path) -> None:
    data = ipfix_v4_data("1.1.1.1", "2.2.2.2", 1, 2, 1, 60, 0, 0)
    messages = [ipfix_flow_message([data]), ipfix_flow_message([data, data], seq=1)]
    path = _ipfix_file(tmp_path, messages)
    assert is_ipfix_file(str(path))
    info = ExportFileInfo(path=str(path))
    assert list(read_ipfix_file(str(path), info)) == messages
    assert (info.messages, info.truncated_at, info.warnings()) == (2, None, [])
    gz = tmp_path / "a.ipfix.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert is_ipfix_file(str(gz))
    info = ExportFileInfo(path=str(gz))
    assert list(read_ipfix_file(str(gz), info)) == messages
    assert info.compressed


def test_truncated_ipfix_file_keeps_messages_before_the_cut(tmp_path: Path) -> None:
    data = ipfix_v4_data("1.1.1.1", "2.2.2.2", 1, 2, 1, 60, 0, 0)
    messages = [ipfix_flow_message([data]), ipfix_flow_message([data], seq=1)]
    whole = b"".join(messages)
    for cut in range(len(messages[0]) + 20, len(whole)):
        path = _ipfix_file(tmp_path, [whole[:cut]], f"cut{cut}.ipfix")
        info = ExportFileInfo(path=str(path))
        got = list(read_ipfix_file(str(path), info))
        assert got == messages[:1]
        assert info.truncated_at == len(messages[0])
        assert "truncated at byte offset" in info.warnings()[0]


def test_not_an_ipfix_file(tmp_path: Path) -> None:
    for content in (b"", b"\xd4\xc3\xb2\xa1" + b"\0" * 20, ipfix_message([])[:10]):
        path = _ipfix_file(tmp_path, [content], "x.bin")
        assert not is_ipfix_file(str(path)) or content == b""
        with pytest.raises(SourceError):
            list(read_ipfix_file(str(path), ExportFileInfo(path=str(path))))


def test_sniff_needs_a_plausible_first_set() -> None:
    good = ipfix_flow_message([])
    assert sniff_ipfix(good[:20])
    assert not sniff_ipfix(good[:2] + b"\0\x05" + good[4:20])  # length below the header
    assert not sniff_ipfix(good[:16] + struct.pack("!HH", 1, 8))  # set id 1 is unused
    assert not sniff_ipfix(b"\0\x09" + good[2:20])
