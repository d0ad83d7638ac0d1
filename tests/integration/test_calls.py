"""`voipscope calls` end to end on the shared captures: dialogs, their media streams with
quality, and app calls grouped from flows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from voipscope.api import iter_calls, read_calls
from voipscope.config import Config

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "captures" / "ndpi"


def calls(name: str) -> list[dict[str, Any]]:
    path = CAPTURES / name
    if not path.exists():
        pytest.skip(f"{name} not in the shared captures")
    return sorted(iter_calls(path), key=lambda r: (r["start"] or 0.0, r["call_id"]))


def test_sip_pcap_calls_and_registrations() -> None:
    records = calls("sip.pcap")
    dialogs = [r for r in records if r["kind"] == "call"]
    registrations = [r for r in records if r["kind"] == "registration"]
    # Wireshark's VoIP Calls (peer_calls.csv): 1 cancelled, 3 rejected.
    assert [r["state"] for r in dialogs] == ["cancelled", "failed", "failed", "failed"]
    assert [r["final_code"] for r in dialogs] == [408, 403, 403, 480]
    assert len(registrations) == 9
    assert {r["result"] for r in registrations} >= {"registered", "challenged", "forbidden"}
    # The 480 call had early media (183 with SDP): its RTP is paired by the SDP address.
    early = dialogs[-1]
    (stream,) = early["streams"]
    assert stream["packets"] == 9 and stream["codec"].startswith("PCMA")
    assert stream["pairing"] == "sdp-address" and stream["mos"] == pytest.approx(4.41, abs=0.01)
    assert all(r["capture"].endswith("sip.pcap") for r in records)


def test_fax_call_streams_carry_quality() -> None:
    dialogs = [r for r in calls("FAX-Call-t38-CA-TDM-SIP-FB-1.pcap") if r["kind"] == "call"]
    assert [r["state"] for r in dialogs] == ["answered", "answered"]
    streams = {s["ssrc"]: s for r in dialogs for s in r["streams"]}
    # Packets as tshark counts them (0x0EAF0EAF: +27 packets tshark calls T.38, see
    # tests/expected/rtp_streams_exceptions.csv).
    assert streams["0x17D90134"]["packets"] == 1171 and streams["0x17D90134"]["lost"] == 0
    assert streams["0x0EAF0EAF"]["packets"] == 159
    good, bad = streams["0x17D90134"], streams["0x0EAF0EAF"]
    assert good["mos"] > 4.0 > bad["mos"]
    assert good["talk_spurts"] is not None and good["activity_method"]
    # Its 1,712 losses are one run: 34.26 s without a packet, after which the sequence
    # numbers went on by 1,712 (tshark: seq 125 at 30.32 s, 1838 at 64.58 s) while the
    # other direction kept sending. G.107's burst ratio measures far beyond its range.
    assert (bad["lost"], bad["loss_runs"], bad["outages"]) == (1712, 1, 1)
    assert (bad["longest_outage_lost"], bad["longest_gap_ms"]) == (1712, bad["longest_outage_ms"])
    assert bad["longest_outage_ms"] == pytest.approx(34261.8, abs=0.1)
    assert bad["burst_ratio"] > 8 and bad["mos"] == 1.0
    assert (good["loss_runs"], good["burst_ratio"], good["outages"]) == (0, None, 0)
    (call,) = [r for r in dialogs if r["streams"]]
    (outage,) = [e for e in call["evidence"] if e.startswith("media outage")]
    assert outage.startswith(
        "media outage: 10.35.60.100:15580 -> 10.23.1.52:16756 lost 1712 packets in one "
        "stretch of 34.26 s"
    )
    assert outage.endswith("while the other direction kept sending: one-way audio")
    # The B2BUA's other leg announced two-way audio and its media is not in the capture.
    (leg,) = [r for r in dialogs if not r["streams"]]
    (line,) = [e for e in leg["evidence"] if e.startswith("no media seen")]
    assert "up for 77.0 s" in line and "(138.132.169.101:15580, 192.168.100.219:5002)" in line
    assert not [e for e in call["evidence"] if e.startswith(("no media seen", "one-way media"))]


def test_a_call_longer_than_the_active_timeout_keeps_whole_streams() -> None:
    """FIELD §5.10: the FAX call's RTP lasts 37 s; with a 5 s active timeout every other
    flow is cut, the media flow is not (flows.media_active_timeout_s), so its streams'
    packets, loss, jitter, largest gap and MOS equal those of the uncut run; cut, the
    0x0EAF0EAF stream would lose its 34 s gap and 1,712 lost packets in pieces."""
    path = CAPTURES / "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"
    if not path.exists():
        pytest.skip("FAX capture not in the shared captures")
    keys = ("ssrc", "packets", "lost", "jitter_ms", "max_delta_ms", "mos", "talk_spurts")

    def streams(**overrides: object) -> list[tuple]:
        cfg = Config().with_value("source.batch_packets", 64)  # verdicts before the timeout
        found = [tuple(s[k] for k in keys) for r in iter_calls(path, config=cfg, **overrides)
                 for s in r["streams"]]  # fmt: skip
        return sorted(found, key=str)

    whole = streams()
    assert len(whole) == 2 and {s[2] for s in whole} == {0, 1712}
    assert streams(active_timeout_s=5) == whole
    cut = streams(active_timeout_s=5, media_active_timeout_s=5)
    assert len(cut) == 10 and 1712 not in {s[2] for s in cut}


@pytest.mark.parametrize(
    ("name", "app", "media_flows", "path"),
    [
        ("zoom2.pcap", "Zoom", 2, "relay"),
        # Three relay legs and the peer-to-peer voice leg on the relay flows' socket.
        ("telegram.pcap", "Telegram", 4, "relay and direct"),
        ("whatsapp_login_call.pcap", "WhatsApp", 4, "relay and direct"),
        ("stun_signal.pcapng", "Signal", 2, "direct"),
    ],
)
def test_app_calls_group_their_media_flows(
    name: str, app: str, media_flows: int, path: str
) -> None:
    (call,) = calls(name)
    assert call["kind"] == "app-call" and call["app"] == app
    assert len(call["media_flows"]) == media_flows and call["path"] == path
    assert call["state"] == "answered" and call["streams"]


def test_read_calls_gives_the_output_schema() -> None:
    table = read_calls(CAPTURES / "sip.pcap")
    assert table.num_rows == 13
    assert table.column("start").to_pylist() == sorted(table.column("start").to_pylist())
