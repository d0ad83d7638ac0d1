"""NetBIOS name and datagram services (RFC 1002 §4.2, §4.4): real messages, each
branch, every truncation, the dissector, and the shared captures against the labels."""

from __future__ import annotations

import struct

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.labelled import labelled, matched
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.netbios import (
    MAX_SCOPE_LABELS,
    NetbiosDissector,
    parse_datagram,
    parse_name_service,
    read_netbios_name,
)
from voipscope.errors import Malformed, Truncated

NETBIOS = NetbiosDissector()
# telegram.pcap frame 613: name query NB WORKGROUP<1d>, broadcast
NAME_QUERY = bytes.fromhex(
    "460e0110000100000000000020464845504643454c45484643455046464641434143414341434143"
    "414341424e0000200001"
)
# zoom.pcap frame 20: refresh NB WORKGROUP<00> with its additional record
REFRESH = bytes.fromhex(
    "45974010000100000000000120464845504643454c45484643455046464641434143414341434143"
    "41434141410000200001c00c00200001000003840006e000c0a80175"
)
# telegram.pcap frame 612: direct group datagram (SMB browser host announcement)
GROUP_DATAGRAM = bytes.fromhex(
    "1102e45ec0a8012b008a00bb000020454545464644454c464545504641434e464345434446464544"
    "424443454843410020464845504643454c4548464345504646464143414341434143414341434142"
    "4e00ff534d4225000000000000000000000000000000000000000000000000000000110000210000"
    "00000000000000e803000000000000000021005600030001000000020032005c4d41494c534c4f54"
    "5c42524f57534500010080fc0a004445534b544f502d52423554313247000a00031000000f0155aa"
    "00"
)

WORKGROUP = b"\x20" + b"FHEPFCELEHFCEPFFFACACACACACACABN" + b"\x00"  # WORKGROUP<1d>


def ns(flags: int, counts=(1, 0, 0, 0), body: bytes = WORKGROUP + b"\x00\x20\x00\x01") -> bytes:
    return struct.pack("!HHHHHH", 0x460E, flags, *counts) + body


def test_real_messages():
    q = parse_name_service(NAME_QUERY)
    assert (q.name_of_opcode, q.response, q.broadcast, str(q.name), q.rr_type) == (
        "query", False, True, "WORKGROUP<1d>", 0x20)  # fmt: skip
    r = parse_name_service(REFRESH)
    assert (r.name_of_opcode, str(r.name)) == ("refresh", "WORKGROUP<00>")
    d = parse_datagram(GROUP_DATAGRAM)
    assert (d.msg_type, d.source_ip, d.source_port) == (0x11, "192.168.1.43", 138)
    assert (str(d.source_name), str(d.destination_name)) == (
        "DESKTOP-RB5T12G<20>", "WORKGROUP<1d>")  # fmt: skip


def test_name_service_branches():
    # A positive query response: no question, one answer record with 6 bytes of data.
    answer = WORKGROUP + b"\x00\x20\x00\x01" + b"\x00\x00\x00\x3c\x00\x06" + bytes(6)
    assert parse_name_service(ns(0x8500, (0, 1, 0, 0), answer)).response
    with pytest.raises(Truncated, match="fewer than 12"):
        parse_name_service(NAME_QUERY[:11])
    with pytest.raises(Malformed, match="reserved flag"):
        parse_name_service(ns(0x0130))
    with pytest.raises(Malformed, match="opcode 1 "):
        parse_name_service(ns(0x0810))
    with pytest.raises(Malformed, match="implausible"):
        parse_name_service(ns(0x0110, (1, 0, 0, 9)))
    with pytest.raises(Malformed, match="RCODE 3"):
        parse_name_service(ns(0x0113))
    with pytest.raises(Malformed, match="request has 2 questions"):
        parse_name_service(ns(0x0110, (2, 0, 0, 0)))
    with pytest.raises(Malformed, match="response has 1 questions"):
        parse_name_service(ns(0x8500))
    with pytest.raises(Malformed, match="not NB/IN"):
        parse_name_service(ns(0x0110, body=WORKGROUP + b"\x00\x01\x00\x01"))  # DNS type A
    with pytest.raises(Truncated, match="runs past"):
        parse_name_service(ns(0x8500, (0, 1, 0, 0), answer[:-1]))
    # A DNS query for a name is not a NetBIOS one: its first label is not 32 letters A-P.
    dns = ns(0x0100, body=b"\x03www\x07example\x03com\x00\x00\x01\x00\x01")
    with pytest.raises(Malformed, match="length 3"):
        parse_name_service(dns)


def test_names():
    assert str(read_netbios_name(WORKGROUP, 0)) == "WORKGROUP<1d>"
    scoped = WORKGROUP[:-1] + b"\x03lan\x00"
    assert read_netbios_name(scoped, 0).end == len(scoped)
    with pytest.raises(Truncated):
        read_netbios_name(b"", 0)
    with pytest.raises(Malformed, match="outside A-P"):
        read_netbios_name(WORKGROUP.replace(b"F", b"Q", 1), 0)
    with pytest.raises(Malformed, match="exceeds 63"):
        read_netbios_name(WORKGROUP[:-1] + b"\x40", 0)
    with pytest.raises(Malformed, match="more than"):
        read_netbios_name(WORKGROUP[:-1] + b"\x01a" * (MAX_SCOPE_LABELS + 1) + b"\x00", 0)


def test_datagram_branches():
    header = bytes([0x11, 0x02]) + b"\xe4\x5e\xc0\xa8\x01\x2b\x00\x8a"
    assert parse_datagram(header[:0] + b"\x13" + header[1:] + b"\x82").msg_type == 0x13
    query = parse_datagram(b"\x14" + header[1:] + WORKGROUP)
    assert str(query.destination_name) == "WORKGROUP<1d>"
    with pytest.raises(Truncated, match="fewer than 10"):
        parse_datagram(header[:9])
    with pytest.raises(Malformed, match="type 0x17"):
        parse_datagram(b"\x17" + GROUP_DATAGRAM[1:])
    with pytest.raises(Malformed, match="reserved bits"):
        parse_datagram(b"\x11\x12" + GROUP_DATAGRAM[2:])
    with pytest.raises(Truncated, match="no error code"):
        parse_datagram(b"\x13" + header[1:])
    with pytest.raises(Malformed, match="error code"):
        parse_datagram(b"\x13" + header[1:] + b"\x80")
    with pytest.raises(Truncated, match="header is truncated"):
        parse_datagram(GROUP_DATAGRAM[:12])
    with pytest.raises(Malformed, match="does not fit"):
        parse_datagram(GROUP_DATAGRAM + b"\x00")
    with pytest.raises(Truncated, match="does not fit"):
        parse_datagram(GROUP_DATAGRAM[:-1])


def test_every_prefix():
    for message in (NAME_QUERY, REFRESH):
        assert prefix_sweep(parse_name_service, message) == 0
    # A registration's record may repeat the name in full instead of pointing to it.
    registration = REFRESH[:2] + b"\x29\x10" + REFRESH[4:50] + WORKGROUP + REFRESH[52:]
    assert parse_name_service(registration).name_of_opcode == "registration"
    with pytest.raises(Malformed, match="not NB/IN"):
        parse_name_service(REFRESH[:52] + b"\x00\x01" + REFRESH[54:])
    assert prefix_sweep(parse_datagram, GROUP_DATAGRAM) == 0


def test_dissector():
    ctx = context(17, ("192.168.1.77", 137), ("192.168.1.255", 137))
    f = run(NETBIOS, ctx, packets(NAME_QUERY)).finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("NetBIOS", OTHER, None, 0.9)
    assert f.evidence.startswith("NetBIOS name service query request for WORKGROUP<1d> (NB)")
    ctx = context(17, ("192.168.1.43", 138), ("192.168.1.255", 138))
    f = run(NETBIOS, ctx, packets(GROUP_DATAGRAM)).finding
    assert f.confidence == 0.95 and "source 192.168.1.43:138 is the sender" in f.evidence
    # Behind a NAT the header names another address: still NetBIOS, less sure.
    ctx = context(17, ("10.0.0.9", 138), ("192.168.1.255", 138))
    assert run(NETBIOS, ctx, packets(GROUP_DATAGRAM)).finding.confidence == 0.85
    # Each service's bytes on the other's port, and near misses, are refused.
    for port, payload in ((137, GROUP_DATAGRAM), (138, NAME_QUERY), (137, NAME_QUERY[:40]),
                          (137, ns(0x0130)), (138, GROUP_DATAGRAM[:-1])):  # fmt: skip
        ctx = context(17, ("192.168.1.77", port), ("192.168.1.255", port))
        assert run(NETBIOS, ctx, packets(payload)).verdicts == [Probe.NO], (port, payload[:4])
    ctx = context(17, ("192.168.1.77", 139), ("192.168.1.255", 139))
    assert run(NETBIOS, ctx, packets(NAME_QUERY)).verdicts == [Probe.NO]


@pytest.mark.parametrize("capture", ["telegram.pcap", "wechat.pcap", "zoom.pcap"])
def test_captures_match_the_labels(capture, shared_captures):
    assert matched(NETBIOS, shared_captures / capture) == labelled(capture, "NetBIOS")
