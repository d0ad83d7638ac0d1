"""NAT-PMP (RFC 6886): a real request, each message of §3.2-3.3, each branch, the
dissector, and the shared capture against the labels."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.labelled import labelled, matched
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.natpmp import NatPmpDissector, parse_natpmp
from voipscope.errors import Malformed, Truncated

NATPMP = NatPmpDissector()
# skype.pcap frame 1291: map UDP port 13021, lifetime 3600 s
MAP_REQUEST = bytes.fromhex("0001000032dd32dd00000e10")
# RFC 6886 §3.2: the public address response (success, epoch 600 s, 198.51.100.7).
ADDRESS_RESPONSE = bytes.fromhex("0080000000000258c6336407")
# §3.3: the mapping response (success, epoch 600 s, 13021 -> 40000 for 3600 s).
MAP_RESPONSE = bytes.fromhex("008100000000025832dd9c4000000e10")


def test_messages():
    m = parse_natpmp(MAP_REQUEST)
    assert (m.name, m.internal_port, m.lifetime_s, m.result_code) == (
        "UDP mapping request", 13021, 3600, None)  # fmt: skip
    assert parse_natpmp(b"\x00\x00").name == "public address request"
    r = parse_natpmp(ADDRESS_RESPONSE)
    assert (r.name, r.result_code) == ("public address response", 0)
    r = parse_natpmp(MAP_RESPONSE)
    assert (r.name, r.internal_port, r.lifetime_s) == ("UDP mapping response", 13021, 3600)
    delete_all = bytes.fromhex("000200000000000000000000")  # §3.4
    assert parse_natpmp(delete_all).internal_port == 0


def test_branches():
    with pytest.raises(Truncated):
        parse_natpmp(b"\x00")
    with pytest.raises(Malformed, match="version 2"):
        parse_natpmp(b"\x02" + MAP_REQUEST[1:])  # PCP (RFC 6887), not NAT-PMP
    with pytest.raises(Malformed, match="opcode 3"):
        parse_natpmp(b"\x00\x03" + MAP_REQUEST[2:])
    with pytest.raises(Truncated, match="not 16"):
        parse_natpmp(MAP_RESPONSE[:-1])
    with pytest.raises(Malformed, match="not 12"):
        parse_natpmp(MAP_REQUEST + b"\x00")
    with pytest.raises(Malformed, match="result code 6"):
        parse_natpmp(ADDRESS_RESPONSE[:2] + b"\x00\x06" + ADDRESS_RESPONSE[4:])
    with pytest.raises(Malformed, match="reserved"):
        parse_natpmp(MAP_REQUEST[:2] + b"\x00\x01" + MAP_REQUEST[4:])
    with pytest.raises(Malformed, match="delete-all"):
        parse_natpmp(MAP_REQUEST[:4] + b"\x00\x00" + MAP_REQUEST[6:])


def test_every_prefix():
    for message in (MAP_REQUEST, ADDRESS_RESPONSE, MAP_RESPONSE):
        assert prefix_sweep(parse_natpmp, message) <= 1  # b"\x00\x00" is a request


def test_dissector():
    ctx = context(17, ("192.168.1.34", 54067), ("192.168.1.1", 5351))
    f = run(NATPMP, ctx, packets(MAP_REQUEST)).finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("NAT-PMP", OTHER, None, 0.85)
    assert "internal port 13021, lifetime 3600 s" in f.evidence
    ctx = context(17, ("192.168.1.34", 54067), ("192.168.1.1", 5351))
    assert run(NATPMP, ctx, packets(b"\x00\x00")).finding.confidence == 0.6
    ctx = context(17, ("192.168.1.1", 5351), ("192.168.1.34", 54067))
    assert run(NATPMP, ctx, packets(MAP_RESPONSE)).finding.confidence == 0.9
    for payload in (MAP_REQUEST[:-1], b"\x00\x00\x00", b"\x02" + MAP_REQUEST[1:], bytes(48)):
        ctx = context(17, ("192.168.1.34", 54067), ("192.168.1.1", 5351))
        assert run(NATPMP, ctx, packets(payload)).verdicts == [Probe.NO]
    ctx = context(17, ("192.168.1.34", 54067), ("192.168.1.1", 5350))
    assert run(NATPMP, ctx, packets(MAP_REQUEST)).verdicts == [Probe.NO]


def test_capture_matches_the_labels(shared_captures):
    assert matched(NATPMP, shared_captures / "skype.pcap") == labelled("skype.pcap", "NAT-PMP")
