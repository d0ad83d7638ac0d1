"""Hypothesis over the game lookalikes of issue 4 (Activision, Epic Games, NetEase,
Among Us, CoD Mobile, and the Steam Datagram Relay ping): their parsers and dissectors on
random bytes, real messages with random damage, and random flows.

The property (as tests/fuzz/test_fuzz_lookalikes.py for the other lookalikes): a parser
returns or raises a DecodeError, nothing else (DESIGN §4); a dissector driven as the
stage drives it raises nothing, reports only well-formed findings of its own protocol,
category other, and only the anomalies it declares. (tests/fuzz/test_fuzz_dissectors.py
fuzzes them too, as every registered dissector, with VoIP seeds.)
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.dissectdrive import context, packets, run
from tests.fuzz.support import FAST, LONG, check_run, damaged
from tests.fuzz.support import check_parsers as check_all_parsers
from tests.unit.dissect import test_activision as activision_cases
from tests.unit.dissect import test_among_us as among_us_cases
from tests.unit.dissect import test_cod_mobile as cod_mobile_cases
from tests.unit.dissect import test_epicgames as epicgames_cases
from tests.unit.dissect import test_netease_games as netease_cases
from tests.unit.dissect import test_steam as steam_cases
from voipscope.dissect import activision, among_us, cod_mobile, epicgames, netease_games, steam
from voipscope.dissect.base import OTHER, UDP
from voipscope.dissect.registry import DISSECTORS as REGISTERED

PARSERS = {
    "activision": activision.parse_activision,
    "unreal_handshake": epicgames.parse_handshake,
    "netease": netease_games.parse_netease,
    "among_us_hello": among_us.parse_hello,
    "codm_loadout": cod_mobile.find_loadout_key,
    "steam_sdr_ping": steam.parse_sdr_ping,
}

# Requests and their replies: damage to one of a pair is the near miss that matters.
SEEDS = [
    activision_cases.HELLO,
    activision_cases.HELLO_REPLY,
    activision_cases.PING,
    activision_cases.PONG,
    epicgames_cases.REQUEST,
    epicgames_cases.CHALLENGE,
    netease_cases.HANDSHAKE,
    netease_cases.HANDSHAKE_REPLY,
    netease_cases.LOST_LIGHT,
    netease_cases.LOST_LIGHT_REPLY,
    netease_cases.NARAKA,
    netease_cases.NARAKA_REPLY,
    among_us_cases.HELLO,
    cod_mobile_cases.PING,
    cod_mobile_cases.LOADOUT,
    steam_cases.SDR_PING,
]

GAMES = ("Activision", "EpicGames", "NetEase", "AmongUs", "CoD Mobile", "Steam")
DISSECTORS = [d for d in REGISTERED if d.name in GAMES]
# Ports the probes look at (Among Us 22023, the CoD Mobile ping 7500), the Call of Duty
# console port, and one of no meaning.
PORTS = [22023, 7500, 3074, 40000]

payloads = st.one_of(st.binary(min_size=1, max_size=600), damaged(SEEDS).filter(bool))
# Real pairs, each side from either direction, among random packets.
flows = st.lists(st.tuples(st.integers(0, 1), payloads), min_size=1, max_size=8)


def test_every_game_is_registered_and_fuzzed() -> None:
    assert sorted(d.name for d in DISSECTORS) == sorted(GAMES)


def check_parsers(data: bytes) -> None:
    check_all_parsers(PARSERS.values(), data)


def check_flow(flow: list[tuple[int, bytes]], src_port: int, dst_port: int) -> None:
    for dissector in DISSECTORS:
        ctx = context(UDP, ("10.0.0.1", src_port), ("10.0.0.2", dst_port))
        result = run(dissector, ctx, packets(*flow))
        assert len(ctx.findings) <= 1
        for f in ctx.findings:
            assert (f.protocol, f.category) == (dissector.name, OTHER)
        check_run(dissector, ctx, result.matched_at, len(flow))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8, 12, 13, 18, 30, 34, 100, 351])
def test_every_first_byte_of_short_packets(size):
    for first in range(256):
        data = bytes([first]) + bytes(size - 1)
        check_parsers(data)
        check_flow([(0, data), (1, data)], 40000, 7500)
        check_flow([(0, data), (1, data)], 22023, 3074)


@FAST
@given(data=st.binary(max_size=600))
def test_random_bytes(data):
    check_parsers(data)


@FAST
@given(data=damaged(SEEDS))
def test_damaged_messages(data):
    check_parsers(data)


@FAST
@given(flow=flows, src_port=st.sampled_from(PORTS), dst_port=st.sampled_from(PORTS))
def test_dissectors_on_random_flows(flow, src_port, dst_port):
    check_flow(flow, src_port, dst_port)


@pytest.mark.slow
@LONG
@given(data=st.one_of(st.binary(max_size=600), damaged(SEEDS)))
def test_parsers_fuzz_long(data):
    check_parsers(data)


@pytest.mark.slow
@LONG
@given(flow=flows, src_port=st.sampled_from(PORTS), dst_port=st.sampled_from(PORTS))
def test_dissectors_fuzz_long(flow, src_port, dst_port):
    check_flow(flow, src_port, dst_port)
