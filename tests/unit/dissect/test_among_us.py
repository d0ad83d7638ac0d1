"""Among Us: the Hazel Hello, each branch, every truncation, real bytes of among_us.pcap,
near misses, and the capture's flow."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.gameflows import matched_ports, other_captures
from voipscope.dissect.among_us import AmongUsDissector, decode_version, parse_hello
from voipscope.dissect.base import OTHER, Probe
from voipscope.errors import Malformed, Truncated

AMONG_US = AmongUsDissector()
# among_us.pcap frame 1: 10.0.0.1:64260 -> 172.105.251.170:22023
HELLO = bytes.fromhex("0800010080d9020306414141414141")
CLIENT, SERVER = ("10.0.0.1", 64260), ("172.105.251.170", 22023)


def test_hello():
    hello = parse_hello(HELLO)
    assert (hello.nonce, hello.hazel_version, hello.client_version) == (1, 0, 50518400)
    assert (hello.name, hello.trailing_bytes, hello.version_text) == ("AAAAAA", 0, "2020.10.8.0")
    assert decode_version(2021 * 25000 + 6 * 1800 + 30 * 50 + 1) == (2021, 6, 30, 1)
    newer = HELLO[:3] + b"\x01" + HELLO[4:] + bytes(9)  # Hazel 1, token and more after
    assert parse_hello(newer).trailing_bytes == 9


def test_branches():
    with pytest.raises(Truncated, match="fewer than 9"):
        parse_hello(HELLO[:8])
    with pytest.raises(Malformed, match="send option"):
        parse_hello(b"\x01" + HELLO[1:])
    with pytest.raises(Malformed, match="Hazel version 2"):
        parse_hello(HELLO[:3] + b"\x02" + HELLO[4:])
    for version in (0, -5, 2017 * 25000 + 10 * 1800 + 50, 2020 * 25000 + 13 * 1800 + 50,
                    2020 * 25000 + 10 * 1800):  # fmt: skip
        bad = HELLO[:4] + version.to_bytes(4, "little", signed=True) + HELLO[8:]
        with pytest.raises(Malformed, match="not a release date"):
            parse_hello(bad)
    with pytest.raises(Malformed, match="name of 0 bytes"):
        parse_hello(HELLO[:8] + b"\x00")
    with pytest.raises(Truncated, match="runs past"):
        parse_hello(HELLO[:8] + b"\x07" + HELLO[9:])
    with pytest.raises(Malformed, match="longer than 5"):
        parse_hello(HELLO[:8] + b"\xff" * 6)
    with pytest.raises(Malformed, match="not UTF-8"):
        parse_hello(HELLO[:8] + b"\x02\xff\xfe")
    with pytest.raises(Malformed, match="control"):
        parse_hello(HELLO[:8] + b"\x02A\x07")


def test_every_prefix():
    assert prefix_sweep(parse_hello, HELLO) == 0


def test_real_bytes_match():
    r = run(AMONG_US, context(17, CLIENT, SERVER), packets(HELLO))
    assert r.verdicts == [Probe.MATCH]
    f = r.finding
    assert (f.protocol, f.category, f.confidence, f.at_packet) == ("AmongUs", OTHER, 0.8, 1)
    assert "2020.10.8.0" in f.evidence and "AAAAAA" not in f.evidence  # no player names


def test_near_misses():
    elsewhere = ("172.105.251.170", 22024)
    assert run(AMONG_US, context(17, CLIENT, elsewhere), packets(HELLO)).verdicts == [Probe.NO]
    for first in (
        HELLO[:-1],  # the name is cut short
        HELLO[:4] + (2020 * 25000 + 13 * 1800).to_bytes(4, "little") + HELLO[8:],  # month 13
        b"\x08\x00\x01\x00" + bytes(11),  # a zero-filled hello
    ):
        assert run(AMONG_US, context(17, CLIENT, SERVER), packets(first)).verdicts == [Probe.NO]


def test_capture(shared_captures):
    assert matched_ports(AMONG_US, shared_captures / "among_us.pcap") == {(22023, 64260)}


@pytest.mark.parametrize("name", other_captures("among_us.pcap"))
def test_no_flow_of_other_captures(shared_captures, name):
    assert not matched_ports(AMONG_US, shared_captures / name)
