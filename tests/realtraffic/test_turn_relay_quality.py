"""Quality of media relayed by a TURN server: a real WebRTC call (aiortc, PCMU over
DTLS-SRTP) whose caller reaches the callee only through coturn, with 10 % of the caller's
UDP dropped on its way out (nftables egress hook, before the capture point), captured on
the caller's link. Every media packet on that link is inside TURN ChannelData (RFC 8656
§12.4) or a Send/Data indication (§11), with its RTP header in the clear: each stream's
packets, loss, max delta and jitter must equal what tshark reads when told to look inside
(``-d udp.port==3478,stun -o rtp.heuristic_rtp:TRUE``), the lossy direction must show
the configured loss, MOS must be known for both and lower for the lossy one, and the call
must say it went through a relay.

Traffic stays inside the two network namespaces the test creates (deleted afterwards).
Skipped, with the reason, without root, coturn, dumpcap, tshark, nft or aiortc."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.realtraffic import tshark_streams
from tests.realtraffic.gen.generate import (
    TURN_PORT,
    Scenario,
    capture,
    nft_loss,
    run_scenario,
    turn_server,
)
from tests.realtraffic.media import have, netns_pair
from voipscope.api import iter_calls

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not have("ip", "dumpcap", "tshark", "turnserver", "nft")
    or importlib.util.find_spec("aiortc") is None,
    reason="needs root, ip, dumpcap, tshark, nft, coturn (turnserver) and aiortc",
)

SECONDS = 8.0
LOSS_PCT = 10.0
SCENARIO = Scenario("turn-pcmu-loss", "call", codec="PCMU", relay=True, loss_pct=LOSS_PCT,
                    seed=201)  # fmt: skip


def test_relayed_media_is_measured_inside_turn(tmp_path: Path) -> None:
    pcap = tmp_path / "relayed.pcap"
    with (
        netns_pair("10.96.0") as (ns_a, ns_b, ip_a, ip_b, dev_a),
        turn_server(ns_b, ip_b, tmp_path),
        nft_loss(ns_a, dev_a, LOSS_PCT),
        capture(ns_a, dev_a, pcap, SECONDS),
    ):
        run_scenario(SCENARIO, ns_a, ns_b, ip_a, ip_b, SECONDS)

    calls = list(iter_calls(pcap))
    media = [c for c in calls if c["streams"]]
    assert len(media) == 1, calls
    (call,) = media
    print(call["evidence"])
    assert call["path"] == "relay"
    assert any("through a TURN relay" in e for e in call["evidence"]), call["evidence"]
    assert call["state"] == "answered"
    theirs = tshark_streams.listed(pcap, TURN_PORT)
    streams = call["streams"]
    assert len(streams) == len(theirs) == 2, (streams, theirs)
    by_direction = {}
    for s in streams:
        t = theirs[tshark_streams.key(s)]
        print(f"{s['src_ip']}:{s['src_port']} -> {s['dst_port']}: {s['packets']} packets, "
              f"{s['lost']} lost ({s['loss_pct']:.1f} %), jitter {s['jitter_ms']} ms "
              f"({s['jitter_reason']}; tshark {t.mean_jitter_ms}), MOS {s['mos']}")  # fmt: skip
        assert (s["payload_type"], s["codec"], s["clock_rate_hz"]) == (0, "PCMU", 8000)
        measured = s["jitter_ms"] is not None
        tshark_streams.assert_as_tshark(s, t, jitter=measured)
        if not measured:
            # aiortc sets the marker bit on every packet: no regular step to measure (as
            # Wireshark applies A.8; it prints 0), said rather than a perfect 0 ms.
            assert t.mean_jitter_ms == 0.0 and "marked" in s["jitter_reason"], s
        assert s["mos"] is not None, s["mos_reason"]
        by_direction["out" if s["src_ip"] == ip_a else "in"] = s
    out, back = by_direction["out"], by_direction["in"]
    # The caller's packets were dropped before the wire: their sequence numbers are gaps.
    assert LOSS_PCT / 2 <= out["loss_pct"] <= LOSS_PCT * 1.6, out
    assert back["lost"] == 0 and back["packets"] >= 100  # seconds of media (ICE takes some)
    assert out["mos"] < back["mos"] - 0.3
