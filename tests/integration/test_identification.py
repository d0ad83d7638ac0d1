"""Identification on the shared real captures: the issue's must-hold cases, and the
project's reviewed labels (tests/expected/labels) as a regression floor.

Each must-hold case names the capture and what the bytes show; the labels file of the
capture says why where the project disagrees with the peers.
"""

from __future__ import annotations

import collections
import csv
import functools
import ipaddress
from pathlib import Path

import pytest

from voipscope.api import read_flows

REPO = Path(__file__).resolve().parents[2]
CAPTURES = REPO.parent / "shared" / "captures" / "ndpi"
LABELS = REPO / "tests" / "expected" / "labels"
VOIP = {"voip-signaling", "voip-media"}

pytestmark = pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures missing")


def flows(name: str) -> list[dict]:
    return read_flows([str(CAPTURES / name)]).to_pylist()


def voip(name: str) -> list[dict]:
    return [r for r in flows(name) if r["category"] in VOIP]


def test_http_on_sip_port_is_not_sip() -> None:
    rows = flows("http_on_sip_port.pcap")
    assert rows and not any(r["protocol"] == "SIP" or r["category"] in VOIP for r in rows)


def test_rtps_is_not_rtp() -> None:
    assert not voip("rtps.pcap")


def test_rtp_pcapng_has_all_four_streams_incl_tcp_and_vlan() -> None:
    media = [r for r in voip("rtp.pcapng") if r["protocol"] in ("RTP", "SRTP")]
    assert len(media) == 4
    assert any(r["proto"] == "tcp" for r in media), "RTP over TCP (RFC 4571)"
    assert any(r["vlan"] is not None for r in flows("rtp.pcapng") if r in media) or any(
        r["vlan"] is not None for r in media
    ), "RTP over VLAN"
    assert all(r["detected_at_packet"] <= 6 for r in media)


def test_h323_six_of_six() -> None:
    rows = voip("h323.pcap")
    assert len(rows) == 6
    assert {r["protocol"] for r in rows} == {"H.323"}


def test_mgcp_five_of_five() -> None:
    rows = voip("mgcp.pcap")
    assert len(rows) == 5
    assert {r["protocol"] for r in rows} == {"MGCP"}


def test_sip_call_media_pinned_by_sdp() -> None:
    rows = voip("sip.pcap")
    media = [r for r in rows if r["category"] == "voip-media"]
    assert {r["protocol"] for r in media} == {"RTP", "RTCP"}
    assert all(r["call_id"] == "11894297-4432a9f8@192.168.1.2" for r in media)
    assert all(
        any(e.startswith("expected:") and "SDP m=audio" in e for e in r["evidence"]) for r in media
    )
    sip = [r for r in rows if r["protocol"] == "SIP"]
    assert len(sip) == 4 and all(r["detected_at_packet"] == 1 for r in sip)


def test_iax2_sccp_and_fax_call() -> None:
    assert [(r["category"], r["protocol"]) for r in voip("iax.pcap")] == [("voip-media", "IAX2")]
    assert [r["protocol"] for r in voip("sccp_hw_conf_register.pcapng")] == ["SCCP"]
    fax = voip("FAX-Call-t38-CA-TDM-SIP-FB-1.pcap")
    assert sorted(r["protocol"] for r in fax) == ["MEGACO", "RTP", "SIP", "SIP", "SIP"]


def test_webrtc_stun_dtls_srtp_on_one_5tuple() -> None:
    rows = voip("stun_dtls_rtp.pcapng")
    udp = next(r for r in rows if r["proto"] == "udp")
    assert (udp["category"], udp["protocol"]) == ("voip-media", "SRTP")
    assert any(e.startswith("STUN:") for e in udp["evidence"])
    assert any("use_srtp" in e for e in udp["evidence"])


def test_discord_voice_flows() -> None:
    """discord.pcap: 33 flows of Discord's voice service (RTP media, and IP-discovery /
    keep-alive flows on the voice ports); the issue asks for at least 33."""
    rows = [r for r in voip("discord.pcap") if r["app"] == "Discord"]
    assert len(rows) >= 33
    assert sum(r["category"] == "voip-media" for r in rows) >= 25


def test_mumble_and_teamspeak_found() -> None:
    """The shared captures hold Mumble's UDP pings and TeamSpeak 3's handshake on the
    voice port (the labels say why these are control, not voice frames)."""
    assert {r["app"] for r in voip("mumble.pcapng")} == {"Mumble"}
    assert len(voip("mumble.pcapng")) == 2
    assert {r["app"] for r in voip("teamspeak3.pcap")} == {"TeamSpeak"}


def test_classic_skype_found_and_dnscrypt_is_not_skype() -> None:
    assert [r["app"] for r in voip("skype_udp.pcap")] == ["Skype"]
    skype = [r for r in voip("skype.pcap") if r["protocol"] == "Skype"]
    assert len(skype) >= 140  # the client's UDP socket talks SoM to ~140 peers
    assert not any(r["app"] == "Skype" or r["protocol"] == "Skype"
                   for r in flows("dnscrypt_skype_false_positive.pcapng"))  # fmt: skip
    # ... and it is named: the resolver's magic and the echoed client nonce (issue 4).
    assert {(r["category"], r["protocol"]) for r in flows("dnscrypt_skype_false_positive.pcapng")
            if r["proto"] == "udp"} == {("other", "DNSCrypt")}  # fmt: skip


def test_app_calls_have_media_with_the_right_app() -> None:
    for capture, app in [
        ("whatsapp_login_call.pcap", "WhatsApp"),
        ("stun_signal.pcapng", "Signal"),
        ("stun_google_meet.pcapng", "Meet"),
        ("teams.pcap", "Teams"),
        ("discord.pcap", "Discord"),
        ("zoom.pcap", "Zoom"),
        ("zoom2.pcap", "Zoom"),
    ]:
        media = [r for r in voip(capture) if r["category"] == "voip-media"]
        assert media, capture
        assert collections.Counter(r["app"] for r in media).most_common(1)[0][0] == app, capture


@pytest.mark.parametrize(
    "capture",
    ["among_us.pcap", "activision.pcap", "epicgames.pcapng", "steam.pcapng", "codm.pcap",
     "netease_games.pcapng", "quic.pcap", "gquic_only_from_server.pcap", "wireguard.pcap",
     "mullvad_wireguard.pcap", "dns.pcap", "NTPv4.pcap", "bittorrent_utp.pcap", "ookla.pcap",
     "mpegts.pcap", "dnscrypt_skype_false_positive.pcapng", "ipsec_isakmp_esp.pcap"],
)  # fmt: skip
def test_negative_captures_have_no_voip(capture: str) -> None:
    found = voip(capture)
    assert not found, [(r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["protocol"],
                        r["evidence"]) for r in found]  # fmt: skip


def test_no_dissector_internal_errors_on_any_capture() -> None:
    from voipscope.pipeline import FlowPipeline

    pipeline = FlowPipeline()
    for path in sorted(CAPTURES.glob("*.pcap*")):
        if path.name.endswith(".out"):
            continue
        for _ in pipeline.run([str(path)]):
            pass
    assert pipeline.stats.anomalies.counts.get("dissector_internal_error", 0) == 0, [
        a.detail for a in pipeline.stats.anomalies.records if a.name == "dissector_internal_error"
    ]


# -- regression floor against the reviewed labels -------------------------------------------


def _canon(proto: int, a: str, ap: int, b: str, bp: int) -> tuple:
    first, second = (ipaddress.ip_address(a), ap), (ipaddress.ip_address(b), bp)
    return (proto, a, ap, b, bp) if first <= second else (proto, b, bp, a, ap)


def _row_key(row: dict[str, str]) -> tuple:
    return _canon(int(row["proto"]), row["a_ip"], int(row["a_port"]), row["b_ip"],
                  int(row["b_port"]))  # fmt: skip


@functools.cache
def _labelled_verdicts() -> tuple[tuple[str, tuple, str, str], ...]:
    """(capture, 5-tuple, expected category, voipscope's category) for every labelled
    flow, the pipeline run once per capture for all tests below. Where a 5-tuple has
    several flow records (idle timeouts), the most VoIP one stands for it."""
    out = []
    for label_file in sorted(LABELS.glob("*.csv")):
        capture = label_file.name[:-4]
        got: dict[tuple, str] = {}
        for r in read_flows([str(CAPTURES / capture)]).to_pylist():
            if r["proto"] in ("udp", "tcp"):
                key = _canon(6 if r["proto"] == "tcp" else 17, r["src_ip"], r["src_port"],
                             r["dst_ip"], r["dst_port"])  # fmt: skip
                if got.get(key) not in VOIP:
                    got[key] = r["category"]
        with label_file.open() as fh:
            for row in csv.DictReader(fh):
                key = _row_key(row)
                out.append((capture, key, row["category"], got.get(key, "missing")))
    return tuple(out)


def test_precision_and_recall_against_reviewed_labels() -> None:
    """Binary VoIP vs not over every labelled flow. The floor is what the project reaches
    today; raise it as dissectors land (targets in issue 4: >= 0.98 each)."""
    tp = fp = fn = 0
    for _, _, expected_category, predicted_category in _labelled_verdicts():
        expected, predicted = expected_category in VOIP, predicted_category in VOIP
        tp += expected and predicted
        fp += predicted and not expected
        fn += expected and not predicted
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= PRECISION_FLOOR, (precision, tp, fp)
    assert recall >= RECALL_FLOOR, (recall, tp, fn)


PRECISION_FLOOR = 0.97
RECALL_FLOOR = 0.98  # classic Skype over TCP found (issue 6): 0.984 on 2026 labels


def _known_misses() -> set[tuple]:
    with (REPO / "tests" / "expected" / "known_misses.csv").open() as fh:
        return {(r["capture"], _row_key(r)) for r in csv.DictReader(fh)}


def test_every_labelled_flow_agrees_except_the_known_misses() -> None:
    """Per flow: expected VoIP flows get exactly their category, non-VoIP flows are not
    called VoIP. The known misses are listed with their reason in
    tests/expected/known_misses.csv; a fixed one must be removed from there."""
    misses = _known_misses()
    wrong, fixed = [], []
    for capture, key, expected, predicted in _labelled_verdicts():
        if expected == "unknown":
            continue
        bad = predicted != expected if expected in VOIP else predicted in VOIP
        if bad and (capture, key) not in misses:
            wrong.append((capture, key, expected, predicted))
        if not bad and (capture, key) in misses:
            fixed.append((capture, key))
    assert not wrong, wrong
    assert not fixed, f"now right, remove from known_misses.csv: {fixed}"
