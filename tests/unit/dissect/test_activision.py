"""Activision (Call of Duty): each message kind, the echo rule, real bytes of
activision.pcap, near misses, and the capture's flows."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.gameflows import matched_ports, other_captures
from voipscope.dissect.activision import (
    ActivisionDissector,
    answers,
    parse_activision,
)
from voipscope.dissect.base import OTHER, Probe
from voipscope.errors import Malformed, Truncated

ACTIVISION = ActivisionDissector()
# activision.pcap frames 1-4: console 192.168.2.100:3074 <-> 108.61.235.31:33441
HELLO = bytes.fromhex("0d0200d3dded03961669981a27af4f381bc0a80015020c6c3deb1fa182")
HELLO_REPLY = bytes.fromhex("0c0200d3dded03961669981a27af4f381bc0a80015020c6c3deb1fa182")
PING = bytes.fromhex("2837303e4800000000280000005a1000c600")
PONG = bytes.fromhex("292800000037303e48000000000100000000000000000000000000")


def test_kinds_and_echo():
    hello, reply = parse_activision(HELLO), parse_activision(HELLO_REPLY)
    assert (hello.kind, reply.kind, len(hello.key)) == ("hello", "hello-reply", 27)
    assert answers(hello, reply) and not answers(reply, hello)
    ping, pong = parse_activision(PING), parse_activision(PONG)
    assert (ping.kind, pong.kind) == ("ping", "pong")
    assert ping.key == bytes.fromhex("37303e480000000028000000") == pong.key
    assert answers(ping, pong) and not answers(hello, pong)


def test_branches():
    with pytest.raises(Truncated, match="empty"):
        parse_activision(b"")
    with pytest.raises(Truncated, match="hello"):
        parse_activision(HELLO[:17])
    with pytest.raises(Truncated, match="ping"):
        parse_activision(PING[:12])
    with pytest.raises(Malformed, match="not an Activision"):
        parse_activision(b"\x0d\x03" + HELLO[2:])


def test_every_prefix():
    for message in (HELLO, HELLO_REPLY, PING, PONG):
        prefix_sweep(parse_activision, message)


def test_real_bytes_match():
    ctx = context(17, ("192.168.2.100", 3074), ("108.61.235.31", 33441))
    r = run(ACTIVISION, ctx, packets(HELLO, (1, HELLO_REPLY)))
    assert r.verdicts == [Probe.MAYBE, Probe.MATCH]
    f = r.finding
    assert (f.protocol, f.category, f.confidence, f.at_packet) == ("Activision", OTHER, 0.9, 2)
    assert "echoing all 27 bytes" in f.evidence
    r = run(ACTIVISION, context(), packets(PING, (1, PONG)))
    assert r.matched_at == 2 and "8-byte token and 4-byte counter" in r.finding.evidence


def test_near_misses():
    other_token = PONG[:5] + bytes([PONG[5] ^ 1]) + PONG[6:]
    other_tail = HELLO_REPLY[:-1] + bytes([HELLO_REPLY[-1] ^ 1])
    for flow in (
        [HELLO, (0, HELLO_REPLY)],  # the "reply" from the same side
        [HELLO, (1, other_tail)],  # one byte of the echo differs
        [PING, (1, other_token)],
        [PING, (1, HELLO_REPLY)],  # a reply of the other kind
        [(1, PONG), (0, PING)],  # the pong came first: no request to answer
        [PING, PING, PING, PING, (1, PONG[:-1] + b"\x01")],
    ):
        assert not run(ACTIVISION, context(), packets(*flow)).matched, flow
    for first in (b"\x0d\x03" + HELLO[2:], HELLO[:17], b"\x80" + HELLO[1:]):
        assert run(ACTIVISION, context(), packets(first)).verdicts == [Probe.NO]


def test_capture(shared_captures):
    assert matched_ports(ACTIVISION, shared_captures / "activision.pcap") == {
        (3074, 33441), (3074, 34311), (3074, 34741), (3074, 37081)}  # fmt: skip


@pytest.mark.parametrize("name", other_captures("activision.pcap"))
def test_no_flow_of_other_captures(shared_captures, name):
    assert not matched_ports(ACTIVISION, shared_captures / name)
