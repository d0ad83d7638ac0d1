"""Hypothesis over the app-signature parsers (Discord, Zoom, Mumble, TeamSpeak, Skype)
and their dissectors: random bytes, real frames with random damage, and random flows.

The property: a parser returns or raises a DecodeError, nothing else (DESIGN §4); a
dissector driven as the stage drives it raises nothing at all (the stage would record a
DecodeError from ``dissect`` as an anomaly, which the driver does too), and every finding
it reports is well-formed.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.dissectdrive import context, packets
from tests.fuzz.support import FAST, LONG, check_run, damaged
from tests.fuzz.support import check_parsers as check_all_parsers
from tests.unit.dissect import test_discord as discord_cases
from tests.unit.dissect import test_mumble as mumble_cases
from tests.unit.dissect import test_skype as skype_cases
from tests.unit.dissect import test_teamspeak as teamspeak_cases
from tests.unit.dissect import test_zoom as zoom_cases
from tests.unit.dissect.appcases import finish
from voipscope.dissect.base import MEDIA, SIGNALING, UDP
from voipscope.dissect.discord import DiscordDissector, parse_ip_discovery, parse_keepalive
from voipscope.dissect.mumble import MumbleDissector, parse_mumble_ping
from voipscope.dissect.skype import SkypeDissector, parse_skype_som
from voipscope.dissect.teamspeak import TeamSpeakDissector, parse_ts3_header, parse_ts3_init
from voipscope.dissect.zoom import (
    ZoomDissector,
    parse_zoom_media,
    parse_zoom_p2p_hello,
    parse_zoom_sfu,
)

PARSERS = {
    "discord_ip_discovery": parse_ip_discovery,
    "discord_keepalive": parse_keepalive,
    "zoom_sfu": parse_zoom_sfu,
    "zoom_media": parse_zoom_media,
    "zoom_p2p_hello": parse_zoom_p2p_hello,
    "mumble_ping": parse_mumble_ping,
    "ts3_header_c2s": lambda data: parse_ts3_header(data, True),
    "ts3_header_s2c": lambda data: parse_ts3_header(data, False),
    "ts3_init": parse_ts3_init,
    "skype_som": parse_skype_som,
}

SEEDS = [
    discord_cases.REQUEST,
    discord_cases.RESPONSE,
    discord_cases.KEEPALIVE,
    zoom_cases.HELLO,
    zoom_cases.HELLO_REPLY,
    zoom_cases.PING,
    zoom_cases.AUDIO,
    zoom_cases.AUDIO[8:],
    zoom_cases.RTCP,
    zoom_cases.SHORT_RTCP,
    zoom_cases.VIDEO_FRAMED,
    zoom_cases.P2P_HELLO,
    mumble_cases.REQUEST,
    mumble_cases.RESPONSE,
    mumble_cases.PB_REQUEST,
    mumble_cases.PB_RESPONSE,
    teamspeak_cases.INIT0,
    teamspeak_cases.INIT1,
    teamspeak_cases.INIT3,
    teamspeak_cases.COMMAND,
    skype_cases.SKYPE_UDP[0],
    skype_cases.NAT_REQUEST,
    skype_cases.RESEND,
    skype_cases.DNSCRYPT_QUERY,
]

DISSECTORS = [
    DiscordDissector(),
    ZoomDissector(),
    MumbleDissector(),
    TeamSpeakDissector(),
    SkypeDissector(),
]
PORTS = [8801, 8802, 64738, 9987, 12340, 50004, 3478, 5060, 40000]


payloads = st.one_of(st.binary(min_size=1, max_size=600), damaged(SEEDS).filter(bool))
flows = st.lists(st.tuples(st.integers(0, 1), payloads), min_size=1, max_size=24)


def check_parsers(data: bytes) -> None:
    check_all_parsers(PARSERS.values(), data)


def check_flow(
    flow: list[tuple[int, bytes]], src_port: int, dst_port: int, neighbour: bool
) -> None:
    for dissector in DISSECTORS:
        ctx = context(UDP, ("10.0.0.1", src_port), ("10.0.0.2", dst_port))
        ctx.matched = neighbour  # as if RTP/STUN had matched the flow already
        result = finish(dissector, ctx, packets(*flow))
        for f in ctx.findings:
            assert f.category in (MEDIA, SIGNALING)
            assert f.protocol == dissector.name
            # A finding names only its own app (the arbiter ignores it below 0.5).
            assert f.app in (None, dissector.name)
            assert f.media in (None, "audio", "video")
        check_run(dissector, ctx, result.matched_at, len(flow))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 8, 12, 13])
def test_every_first_byte_of_short_packets(size):
    # Short packets are where index errors hide; random bytes rarely make them.
    for first in range(256):
        data = bytes([first]) + bytes(size - 1)
        check_parsers(data)
        check_flow([(0, data), (1, data)], 8801, 9987, False)
        check_flow([(0, data)], 64738, 12340, True)


@FAST
@given(data=st.binary(max_size=600))
def test_random_bytes(data):
    check_parsers(data)


@FAST
@given(data=damaged(SEEDS))
def test_damaged_frames(data):
    check_parsers(data)


@FAST
@given(
    flow=flows,
    src_port=st.sampled_from(PORTS),
    dst_port=st.sampled_from(PORTS),
    neighbour=st.booleans(),
)
def test_dissectors_on_random_flows(flow, src_port, dst_port, neighbour):
    check_flow(flow, src_port, dst_port, neighbour)


@pytest.mark.slow
@LONG
@given(data=st.one_of(st.binary(max_size=600), damaged(SEEDS)))
def test_parsers_fuzz_long(data):
    check_parsers(data)


@pytest.mark.slow
@LONG
@given(
    flow=flows,
    src_port=st.sampled_from(PORTS),
    dst_port=st.sampled_from(PORTS),
    neighbour=st.booleans(),
)
def test_dissectors_fuzz_long(flow, src_port, dst_port, neighbour):
    check_flow(flow, src_port, dst_port, neighbour)
