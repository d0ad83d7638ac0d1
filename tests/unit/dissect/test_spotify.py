"""Spotify LAN discovery: a real datagram, each branch, the dissector, and the shared
captures against the labels."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.labelled import labelled, matched
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.spotify import SpotifyDissector, parse_spotify_discovery
from voipscope.errors import Malformed, Truncated

SPOTIFY = SpotifyDissector()
# skype.pcap frame 458
DISCOVERY = bytes.fromhex(
    "53706f745564703079158a56108bc7c3000100044895c20384c01b1bc77c657ed159ecbda3e540436204272c"
)


def test_real_discovery_and_branches():
    assert parse_spotify_discovery(DISCOVERY) == 0
    with pytest.raises(Malformed, match="magic"):
        parse_spotify_discovery(b"SpotUDP0" + DISCOVERY[8:])
    with pytest.raises(Truncated, match="fewer than 16"):
        parse_spotify_discovery(DISCOVERY[:15])
    with pytest.raises(Malformed, match="version digit"):
        parse_spotify_discovery(b"SpotUdpX" + DISCOVERY[8:])


def test_every_prefix():
    # Past the magic and version nothing is checked: prefixes of 16+ bytes parse.
    assert prefix_sweep(parse_spotify_discovery, DISCOVERY) == len(DISCOVERY) - 16


def test_dissector():
    ctx = context(17, ("192.168.1.92", 57621), ("192.168.1.255", 57621))
    f = run(SPOTIFY, ctx, packets(DISCOVERY)).finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("Spotify", OTHER, "Spotify", 0.9)
    assert f.evidence == "Spotify LAN discovery: magic SpotUdp0, 44 bytes"
    for payload in (b"SpotUdp", b"Spotify!" + DISCOVERY[8:], b"S" + bytes(43)):
        ctx = context(17, ("192.168.1.92", 57621), ("192.168.1.255", 57621))
        assert run(SPOTIFY, ctx, packets(payload)).verdicts == [Probe.NO]
    ctx = context(17, ("192.168.1.92", 57622), ("192.168.1.255", 57622))
    assert run(SPOTIFY, ctx, packets(DISCOVERY)).verdicts == [Probe.NO]


@pytest.mark.parametrize(
    "capture",
    ["skype.pcap", "teams.pcap", "telegram.pcap", "whatsapp_login_call.pcap",
     "whatsapp_login_chat.pcap", "zoom.pcap"],
)  # fmt: skip
def test_captures_match_the_labels(capture, shared_captures):
    assert matched(SPOTIFY, shared_captures / capture) == labelled(capture, "Spotify")
