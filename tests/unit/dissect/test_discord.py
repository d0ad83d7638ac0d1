"""Discord voice: IP discovery and keepalive parsing, the dissector on the shared captures.

tshark has no Discord dissector (it shows these datagrams as Data), so the fixtures are
checked against the layout in Discord's "Voice Connections" docs field by field.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.dissectdrive import context, packets
from tests.unit.dissect.appcases import (
    check_negatives,
    drive,
    drive_captured,
    finish,
    prefixes,
    udp_flows,
)
from voipscope.dissect.base import SIGNALING, UDP, Probe
from voipscope.dissect.discord import (
    DiscordDissector,
    parse_ip_discovery,
    parse_keepalive,
)
from voipscope.errors import DecodeError, Malformed, Truncated

# discord.pcap frames 20 and 21 (client 192.168.2.100:57955 -> 66.22.196.173:50004).
REQUEST = bytes.fromhex("000100460000ace3" + "00" * 64 + "6f74")
RESPONSE = bytes.fromhex("000200460000ace338342e35392e3133322e313030" + "00" * 51 + "e263")
KEEPALIVE = bytes.fromhex("1337cafe0e000000")  # discord.pcap frame 8
KEEPALIVE_MID_FLOW = bytes.fromhex("1337cafea9010000")  # discord_mid_flow.pcap frame 3
# discord.pcap frame 23: the client's first voice RTP packet (SSRC = the discovery SSRC).
VOICE_RTP = bytes.fromhex(
    "90f81356380e74a30000ace3b8cda07a473da54f9a1a58363af2f68025f091b934a7c95b0ccf36"
)


def test_request_fields():
    msg = parse_ip_discovery(REQUEST)
    assert (msg.request, msg.ssrc, msg.address) == (True, 0xACE3, "")


def test_response_fields():
    msg = parse_ip_discovery(RESPONSE)
    assert (msg.request, msg.ssrc, msg.address, msg.port) == (False, 0xACE3, "84.59.132.100", 57955)


def test_keepalive_counter_is_little_endian():
    assert parse_keepalive(KEEPALIVE) == 14
    assert parse_keepalive(KEEPALIVE_MID_FLOW) == 0x1A9


@pytest.mark.parametrize("data", prefixes(REQUEST) + prefixes(RESPONSE))
def test_every_ip_discovery_prefix_is_truncated(data):
    with pytest.raises(Truncated):
        parse_ip_discovery(data)


@pytest.mark.parametrize("data", prefixes(KEEPALIVE))
def test_every_keepalive_prefix_is_truncated(data):
    with pytest.raises(Truncated):
        parse_keepalive(data)


@pytest.mark.parametrize(
    "data",
    [
        REQUEST + b"\0",  # 75 bytes
        b"\x00\x03" + REQUEST[2:],  # type 3
        REQUEST[:2] + b"\x00\x45" + REQUEST[4:],  # length 69
        RESPONSE[:8] + b"x" * 64 + RESPONSE[72:],  # no NUL in the address
        RESPONSE[:8] + b"\x01\x02\x00" + RESPONSE[11:],  # unprintable address
    ],
)
def test_ip_discovery_errors(data):
    with pytest.raises(Malformed):
        parse_ip_discovery(data)


def test_keepalive_errors():
    with pytest.raises(Malformed):
        parse_keepalive(KEEPALIVE + b"\0")
    with pytest.raises(Malformed):
        parse_keepalive(b"\x13\x37\xca\xff" + KEEPALIVE[4:])


def test_request_then_response_matches_and_confirms():
    result = drive(
        DiscordDissector(),
        REQUEST,
        (1, RESPONSE),
        VOICE_RTP,
        src=("192.168.2.100", 57955),
        dst=("66.22.196.173", 50004),
    )
    assert result.matched_at == 1
    first, second = result.ctx.findings
    assert (first.protocol, first.app, first.category, first.at_packet) == (
        "Discord",
        "Discord",
        SIGNALING,
        1,
    )
    assert second.confidence > first.confidence >= 0.8
    assert "echoing the request's SSRC" in second.evidence
    assert "84.59.132.100" in second.evidence and "port equals the client's" in second.evidence


def test_response_alone_matches():
    result = drive(DiscordDissector(), (1, RESPONSE))
    assert result.matched and result.finding.confidence >= 0.85


def test_keepalive_matches_mid_flow():
    rtcp = bytes.fromhex("81c9000700162ffd537109592cf065d572db9ac11958463c6401471ff8b35bcb")
    result = drive(DiscordDissector(), rtcp, rtcp, KEEPALIVE_MID_FLOW)
    assert result.verdicts == [Probe.PASS, Probe.PASS, Probe.MATCH]
    assert "counter 425" in result.finding.evidence


def test_rtp_beside_a_matched_neighbour_costs_no_budget():
    # RTP matched the flow first: its packets PASS, the keepalive 12 packets later matches.
    ctx = context(UDP)
    ctx.matched = True
    result = finish(DiscordDissector(), ctx, packets(*[VOICE_RTP] * 12, KEEPALIVE))
    assert result.matched_at == 13
    # Without a neighbour's match the same packets use the budget up.
    assert not drive(DiscordDissector(), *[VOICE_RTP] * 12, KEEPALIVE).matched


def test_other_first_bytes_are_refused_by_the_gate():
    gate = DiscordDissector.udp_first_bytes
    assert gate == {0x00, 0x13} and REQUEST[0] in gate and KEEPALIVE[0] in gate
    assert not drive(DiscordDissector(), b"\xd0" * 20, KEEPALIVE).matched  # not RFC 7983


def test_is_multiplexed_with_rtp():
    # The voice is RTP on the same 5-tuple: a Discord MATCH must keep RTP probing.
    assert DiscordDissector.multiplexed


def test_malformed_response_after_match_is_an_anomaly():
    bad = RESPONSE[:8] + b"\x01" + RESPONSE[9:]
    result = drive(DiscordDissector(), REQUEST, (1, bad))
    assert result.matched
    assert result.ctx.anomalies.counts["discord_malformed"] == 1


def test_voice_rtp_alone_is_not_discord():
    result = drive(DiscordDissector(), *[VOICE_RTP] * 10)
    assert not result.matched and not result.ctx.findings


@pytest.mark.parametrize(
    ("capture", "flows"),
    [("discord.pcap", 33), ("discord_mid_flow.pcap", 1)],
)
def test_every_discord_flow_matches(shared_captures, capture, flows):
    found = [drive_captured(DiscordDissector(), f) for f in udp_flows(shared_captures / capture)]
    assert len(found) == flows
    assert all(r.matched for r in found)
    assert not any(r.ctx.anomalies.counts for r in found)


def test_negatives(shared_captures):
    check_negatives(DiscordDissector(), shared_captures)


def test_only_decode_errors_escape_on_damaged_fixtures():
    for base in (REQUEST, RESPONSE, KEEPALIVE):
        for i in range(len(base)):
            damaged = base[:i] + bytes([base[i] ^ 0xFF]) + base[i + 1 :]
            for parse in (parse_ip_discovery, parse_keepalive):
                with contextlib.suppress(DecodeError):
                    parse(damaged)
