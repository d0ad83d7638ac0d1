"""NetEase games: the three openings, their answers, real bytes of netease_games.pcapng,
near misses, and the capture's flows."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.gameflows import matched_ports, other_captures
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.netease_games import NetEaseGamesDissector, answers, parse_netease
from voipscope.errors import Malformed, Truncated

NETEASE = NetEaseGamesDissector()
# netease_games.pcapng frames 11-12 (UDP 4513), 14-15 (4170), 16 (28203) and the first 48
# bytes of 17 (its reply, 290 bytes: the rest is not read)
HANDSHAKE = bytes.fromhex("01b5d001112a3d0300010101")
HANDSHAKE_REPLY = bytes.fromhex("0114d301112a3d0348411701")
LOST_LIGHT = bytes.fromhex("b3af8de8ff007257355c5c6e6663716a492f545a6763747455537a69422b")
LOST_LIGHT_REPLY = bytes.fromhex("b3af8de8ff000328c2069a1fe90cf50601008c3c14ec43f579faae16f601")
NARAKA = bytes.fromhex(
    "0708080c626386180000000000000001000003acf8458b4d1029d41406772df0cb1407d40e326789148bc7"
    "4819b3cf774ad11600000000000000000000000000000000000000000000000000000000000000"
)
NARAKA_REPLY = bytes.fromhex(
    "0708080ce8ed83450000000100007e040001033ca7378be780c0a599c15882ea1591b455915838e4689431"
    "a8429d05e98f"
)


def test_kinds_and_answers():
    hs, hs_reply = parse_netease(HANDSHAKE), parse_netease(HANDSHAKE_REPLY)
    assert (hs.variant, hs.opening, hs_reply.opening) == ("handshake", True, False)
    assert hs.key == hs_reply.key == bytes.fromhex("112a3d03")
    assert answers(hs, hs_reply) and not answers(hs_reply, hs)
    ll, ll_reply = parse_netease(LOST_LIGHT), parse_netease(LOST_LIGHT_REPLY)
    assert ll.variant == "lost-light" and answers(ll, ll_reply)
    nk, nk_reply = parse_netease(NARAKA), parse_netease(NARAKA_REPLY)
    assert nk.key == bytes.fromhex("0000000000000001")
    assert nk_reply.key == bytes.fromhex("0000000100007e04")
    assert answers(nk, nk_reply) and not answers(nk, nk) and not answers(hs, ll_reply)


def test_branches():
    with pytest.raises(Truncated, match="empty"):
        parse_netease(b"")
    with pytest.raises(Malformed, match="not 12"):
        parse_netease(HANDSHAKE + b"\x00")
    with pytest.raises(Truncated, match="Lost Light"):
        parse_netease(LOST_LIGHT[:29])
    with pytest.raises(Truncated, match="Naraka"):
        parse_netease(NARAKA[:30])
    with pytest.raises(Malformed, match="not a NetEase"):
        parse_netease(b"\xb3\xaf\x8d\xe9" + LOST_LIGHT[4:])


def test_every_prefix():
    assert prefix_sweep(parse_netease, HANDSHAKE) == 0
    assert prefix_sweep(parse_netease, LOST_LIGHT) == 0
    assert prefix_sweep(parse_netease, NARAKA) == len(NARAKA) - 31


@pytest.mark.parametrize(
    ("request_", "reply", "confidence", "words"),
    [
        (HANDSHAKE, HANDSHAKE_REPLY, 0.85, "repeating its id 112a3d03"),
        (LOST_LIGHT, LOST_LIGHT_REPLY, 0.8, "Lost Light magic b3af8de8"),
        (NARAKA, NARAKA_REPLY, 0.85, "first sender's id 00000001"),
    ],
)
def test_real_bytes_match(request_, reply, confidence, words):
    r = run(NETEASE, context(), packets(request_, (1, reply)))
    assert r.verdicts == [Probe.MAYBE, Probe.MATCH]
    f = r.finding
    assert (f.protocol, f.category, f.confidence, f.at_packet) == ("NetEase", OTHER, confidence, 2)
    assert words in f.evidence


def test_near_misses():
    other_id = HANDSHAKE_REPLY[:4] + b"\x11\x2a\x3d\x04" + HANDSHAKE_REPLY[8:]
    other_receiver = NARAKA_REPLY[:8] + b"\x00\x00\x00\x02" + NARAKA_REPLY[12:]
    for flow in (
        [HANDSHAKE, (0, HANDSHAKE_REPLY)],  # the reply from the same side
        [HANDSHAKE, (1, other_id)],
        [NARAKA, (1, other_receiver)],
        [LOST_LIGHT, (0, LOST_LIGHT_REPLY)],
        [LOST_LIGHT],  # nDPI's one datagram is not enough here
        [HANDSHAKE, (1, LOST_LIGHT_REPLY)],  # an answer of another game
    ):
        assert not run(NETEASE, context(), packets(*flow)).matched, flow
    # a 12-byte type-1 datagram without the handshake marks opens nothing
    assert run(NETEASE, context(), packets(HANDSHAKE_REPLY)).verdicts == [Probe.NO]
    assert run(NETEASE, context(), packets(b"\x02" + HANDSHAKE[1:])).verdicts == [Probe.NO]


def test_capture(shared_captures):
    assert matched_ports(NETEASE, shared_captures / "netease_games.pcapng") == {
        (4170, 41040), (4513, 56588), (28203, 58951)}  # fmt: skip


@pytest.mark.parametrize("name", other_captures("netease_games.pcapng"))
def test_no_flow_of_other_captures(shared_captures, name):
    assert not matched_ports(NETEASE, shared_captures / name)
