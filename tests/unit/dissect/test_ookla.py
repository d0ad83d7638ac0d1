"""Ookla Speedtest's TCP protocol: the real greetings of ookla.pcap, each branch, the
dissector, and the capture against the labels (its HTTP and TLS flows are not Ookla's
text protocol)."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, run
from tests.unit.dissect.labelled import labelled, matched
from voipscope.dissect.base import OTHER, TCP, Probe
from voipscope.dissect.ookla import OoklaDissector, parse_greeting
from voipscope.errors import Malformed, Truncated

OOKLA = OoklaDissector()
CLIENT = ("192.168.1.192", 37790)
SERVER = ("185.157.229.246", 8080)
# ookla.pcap frames 4 and 6: HI with a session id, the server's HELLO.
HI = bytes.fromhex(
    "48492038653137636236352d633662352d346233392d616463632d3937303036613165343533370a"
)
HELLO = bytes.fromhex(
    "48454c4c4f20322e392028322e392e322920323032312d31312d33302e323135392e666661653065300a"
)
# Frames 44 and 46: a bare HI, an older server.
BARE_HI = bytes.fromhex("48490a")
OLD_HELLO = bytes.fromhex("48454c4c4f20322e3420323031362d31302d30362e313332342e393936616239310a")


def test_greetings():
    assert parse_greeting(HI) == ("HI", None)
    assert parse_greeting(BARE_HI) == ("HI", None)
    assert parse_greeting(HELLO) == ("HELLO", "2.9")
    assert parse_greeting(OLD_HELLO) == ("HELLO", "2.4")


def test_branches():
    with pytest.raises(Malformed, match="not an Ookla greeting"):
        parse_greeting(b"GET / HTTP/1.1\r\n")
    with pytest.raises(Truncated, match="no end"):
        parse_greeting(b"HI 8e17")
    with pytest.raises(Malformed, match="longer than"):
        parse_greeting(b"HI " + b"x" * 200)
    with pytest.raises(Malformed, match="not an Ookla greeting"):
        parse_greeting(b"HEAD / HTTP/1.1\r\n")
    with pytest.raises(Malformed, match="neither"):
        parse_greeting(b"HI\r\n")
    with pytest.raises(Malformed, match="neither"):
        parse_greeting(b"HELLO world\n")


def test_dissector():
    r = run(OOKLA, context(TCP, CLIENT, SERVER), packets(HI, (1, HELLO)))
    assert r.verdicts == [Probe.MAYBE, Probe.MATCH]
    f = r.finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("Ookla", OTHER, "Ookla", 0.9)
    assert f.evidence == "Ookla Speedtest greeting: HELLO 2.9 in answer to HI"
    # Mid-flow: HELLO alone is weaker; HI alone never matches.
    r = run(OOKLA, context(TCP, SERVER, CLIENT), packets(OLD_HELLO))
    assert r.finding.confidence == 0.7
    r = run(OOKLA, context(TCP, CLIENT, SERVER), packets(BARE_HI, BARE_HI, BARE_HI, BARE_HI))
    assert r.verdicts == [Probe.MAYBE] * 3 and not r.matched


def test_near_misses():
    for flow in (
        [b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"],  # HTTP on 8080 starting with H
        [b"HTTP/1.1 200 OK\r\n\r\n"],
        [HI, (1, b"HTTP/1.1 400 Bad Request\r\n\r\n")],
        [b"HI\r\n"],
    ):
        r = run(OOKLA, context(TCP, CLIENT, SERVER), packets(*flow))
        assert not r.matched and r.verdicts[-1] == Probe.NO, flow
    r = run(OOKLA, context(TCP, CLIENT, ("185.157.229.246", 8081)), packets(HI, (1, HELLO)))
    assert r.verdicts == [Probe.NO]


def test_capture_matches_the_labels(shared_captures):
    assert matched(OOKLA, shared_captures / "ookla.pcap") == labelled("ookla.pcap", "Ookla")
