"""Call of Duty: Mobile: the echoed ping on 7500 and the loadout key, real bytes of
codm.pcap, near misses, and the capture's flows."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, run
from tests.readback import payloads_by_frame
from tests.unit.dissect.gameflows import matched_ports, other_captures
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.cod_mobile import (
    LOADOUT_KEY,
    CodMobileDissector,
    find_loadout_key,
    is_ping,
)
from voipscope.errors import Malformed, Truncated

CODM = CodMobileDissector()
# codm.pcap frames 8-9: 10.215.173.1:40282 <-> 23.248.172.158:7500, and back
PING = bytes.fromhex("bbb653ea96fdbb0370696e67")
PHONE, SERVER = ("10.215.173.1", 40282), ("23.248.172.158", 7500)
# The shape of the loadout datagram (codm.pcap frame 13, 485 bytes): 0xce, the key inside
LOADOUT = b"\xce\xa1\xc2\x0d" + bytes(143) + LOADOUT_KEY + bytes(314)


def test_ping_and_loadout():
    assert is_ping(PING) and not is_ping(PING + b"\x00") and not is_ping(PING[:8] + b"pong")
    assert find_loadout_key(LOADOUT) == 147
    with pytest.raises(Truncated, match="fewer than 351"):
        find_loadout_key(LOADOUT[:350])
    with pytest.raises(Malformed, match="not 0xce"):
        find_loadout_key(b"\x4e" + LOADOUT[1:])
    with pytest.raises(Malformed, match="no LOC_PREFAB"):
        find_loadout_key(LOADOUT.replace(LOADOUT_KEY, LOADOUT_KEY.lower()))


def test_real_ping_matches():
    r = run(CODM, context(17, PHONE, SERVER), packets(PING, (1, PING)))
    assert r.verdicts == [Probe.MAYBE, Probe.MATCH]
    f = r.finding
    assert (f.protocol, f.category, f.confidence, f.at_packet) == ("CoD Mobile", OTHER, 0.85, 2)
    assert "bbb653ea96fdbb03" in f.evidence and "echoed" in f.evidence


def test_real_loadout_matches(shared_captures):
    frame_13 = payloads_by_frame(shared_captures / "codm.pcap", 17)[13]
    assert len(frame_13) == 485 and find_loadout_key(frame_13) == 147
    r = run(CODM, context(), packets(b"\x09" * 190, (1, b"\x0e" * 8), (1, frame_13)))
    assert r.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH]
    assert r.finding.confidence == 0.8 and "offset 147" in r.finding.evidence


def test_near_misses():
    elsewhere = ("23.248.172.158", 7501)
    for ctx, flow in (
        (context(17, PHONE, elsewhere), [PING, (1, PING)]),  # not on UDP 7500
        (context(17, PHONE, SERVER), [PING, (0, PING)]),  # not from the other side
        (context(17, PHONE, SERVER), [PING, (1, PING[:7] + b"\x00ping")]),  # token differs
        (context(17, PHONE, SERVER), [PING]),  # nDPI's one datagram is not enough here
        (context(), [b"\x4e" + LOADOUT[1:]]),
        (context(), [LOADOUT[:350]]),
        (context(), [b"\x00" * 600] * 4 + [LOADOUT]),  # the budget is spent by then
    ):
        assert not run(CODM, ctx, packets(*flow)).matched, flow


def test_capture(shared_captures):
    assert matched_ports(CODM, shared_captures / "codm.pcap") == {(7500, 40282), (7948, 38704)}


@pytest.mark.parametrize("name", other_captures("codm.pcap"))
def test_no_flow_of_other_captures(shared_captures, name):
    assert not matched_ports(CODM, shared_captures / name)
