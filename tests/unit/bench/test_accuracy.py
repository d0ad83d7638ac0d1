"""The pure parts of bench/accuracy.py: 5-tuples, label mapping, parsers and metrics."""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import pytest
from bench import accuracy as acc
from bench.accuracy import MEDIA, OTHER, SIGNALING, UNKNOWN, Label, RawFlow, Verdict

PEER_LABELS = Path(__file__).resolve().parents[4] / "shared" / "captures" / "peer_labels.csv"

# `ndpiReader -q -i stun.pcap -C out.csv` (nDPI 4.2), first 18 columns; the last row is a
# teams.pcap row in full: its ALPN columns hold unquoted commas. Note the IPv6 addresses
# ndpiReader 4.2 prints with two `::`.
NDPIREADER_CSV = """\
#flow_id,protocol,first_seen,last_seen,duration,src_ip,src_port,dst_ip,dst_port,ndpi_proto_num,ndpi_proto,server_name_sni,c_to_s_pkts,c_to_s_bytes,c_to_s_goodput_bytes,s_to_c_pkts,s_to_c_bytes,s_to_c_goodput_bytes
2,1,1595356444.494,1595356444.494,0.000,192.168.12.169,0,74.125.247.128,0,81,ICMP,,1,122,80,0,0,0
1,17,1595356443.140,1595356444.391,1.251,192.168.12.169,43016,74.125.247.128,3478,78.201,STUN.GoogleHangoutDuo,turn.l.google.com,4,528,360,4,408,240
3,17,1614938022.295,1614938213.785,191.490,3516:bf0b:fc53:75e7:70af:f67f:8e49:f603,56880,2a38:e156:8167:a333:face:b00c::24d9,3478,78,STUN,,21,1722,420,21,2226,924
4,17,1629291451.242,1629291461.336,10.094,192.168.12.169,38123,31.13.86.54,40003,78.268,STUN.FacebookVoip,turner.facebook,40,6134,4454,35,4420,2950
6,17,1647958145.472,1647958147.591,2.119,192.168.12.169,49153,142.250.82.99,3478,30.126,DTLS.Google,,18,2856,2100,15,3436,2806
8,17,1697468908.358,1697468913.582,5.224,2600:1900:4160:5999::19::,3478,2001:b07:a3d:c112:48a1:1094:1227:281e,48094,78,STUN,,3,414,228,0,0,0
34,6,1587041684.306,1587041685.465,1.159,192.168.1.6,60549,13.107.18.11,443,91.219,TLS.Microsoft365,substrate.office.com,28,7696,6160,26,9797,8327,-0.120,Mixed,80.0,85.0,1,54.9,539,120.9,0,46.6,539,115.3,0,23.2,167,42.9,54,274.9,1494,397.4,60,376.8,1506,470.7,0,0,0,53,23,0,2,0,0,0,0,27,10,0,1,0,0,0,0,53,23,0,2,0,78,66,,TLSv1.2,ebf5e0e525258d7a8dcb54aa1564ecbd,OK,a66ea560599a2f5c89eec8c3a0d69cee,OK,h2;http/1.1,,,,h2;http/1.1,,0;21;7;0
"""

# NFSTREAM_SCRIPT on stun.pcap (nfstream 6.6, nDPI 5), three of its lines.
NFSTREAM_JSONL = """\
{"proto": 6, "src_ip": "10.77.110.51", "src_port": 41588, "dst_ip": "10.206.50.239", "dst_port": 42000, "label": "STUN.TeamsCall", "category": "VoIP", "packets": 15}
{"proto": 1, "src_ip": "192.168.12.169", "src_port": 0, "dst_ip": "74.125.247.128", "dst_port": 0, "label": "ICMP", "category": "Network", "packets": 1}
{"proto": 17, "src_ip": "2600:1900:4160:5999:0:19::", "src_port": 3478, "dst_ip": "2001:b07:a3d:c112:48a1:1094:1227:281e", "dst_port": 48094, "label": "STUN", "category": "Network", "packets": 3}
"""  # noqa: E501

# tshark -T fields (acc.TSHARK_FIELDS, first occurrence) on stun.pcap, sip.pcap and
# rtp.pcapng, with "|" for the tab separator.
TSHARK_FIELDS_OUT = """\
eth:ethertype:ip:udp:dtls|192.168.12.169|142.250.82.99|||49153|3478||
eth:ethertype:ip:udp:dtls:x509sat:x509sat|142.250.82.99|192.168.12.169|||3478|49153||
eth:ethertype:ip:udp:rtp:rtcp|142.250.82.99|192.168.12.169|||3478|49153||
eth:ethertype:ip:icmp:ip:udp:stun|192.168.12.169|74.125.247.128|||3478|43016||
eth:ethertype:vlan:ethertype:ip:tcp|10.77.110.51|10.206.50.239|||||41588|42000
eth:ethertype:vlan:ethertype:ip:tcp:stun|10.206.50.239|10.77.110.51|||||42000|41588
eth:ethertype:ipv6:udp:stun:data|||2600:1900:4160:5999:0:19::|2001:b07:a3d:c112:48a1:1094:1227:281e|3478|48094||
eth:ethertype:ip:udp:sip:sdp|192.168.1.2|212.242.33.35|||5060|5060||
eth:ethertype:ip:udp:data|192.168.1.2|212.242.33.35|||5060|5060||
eth:ethertype:ip:tcp|172.16.168.64|172.16.168.24|||||5000|40252
""".replace("|", "\t")


# --- 5-tuples ---------------------------------------------------------------------------


def test_canonical_key_orders_by_ip_then_port():
    assert acc.canonical_key(17, "10.0.0.9", 5060, "10.0.0.10", 1) == (
        17,
        "10.0.0.9",
        5060,
        "10.0.0.10",
        1,
    )
    # 10.0.0.10 > 10.0.0.9 as addresses although "10" < "9" as text
    assert acc.canonical_key(17, "10.0.0.10", 1, "10.0.0.9", 5060)[1] == "10.0.0.9"
    same_ip = acc.canonical_key(6, "1.2.3.4", 9000, "1.2.3.4", 80)
    assert same_ip == (6, "1.2.3.4", 80, "1.2.3.4", 9000)


def test_canonical_key_normalises_ipv6_text():
    key = acc.canonical_key(17, "2A38:E156:8167:A333:FACE:B00C:0000:24D9", 3478, "::1", 5)
    assert key == (17, "::1", 5, "2a38:e156:8167:a333:face:b00c:0:24d9", 3478)


def test_canonical_key_rejects_garbage():
    with pytest.raises(ValueError):
        acc.canonical_key(17, "2001:b0..27:281e", 1, "10.0.0.1", 2)


@pytest.mark.parametrize(
    ("value", "number"),
    [(6, 6), ("17", 17), ("udp", 17), ("TCP", 6), ("icmp", 1), ("carrier-pigeon", None)],
)
def test_proto_number(value, number):
    assert acc.proto_number(value) == number


def test_ipv6_candidates_reads_ndpireader_double_colon():
    assert "2600:1900:4160:5999:0:19::" in acc.ipv6_candidates("2600:1900:4160:5999::19::")
    assert acc.ipv6_candidates("2001:db8::1") == []  # valid text: nothing to repair


def test_resolve_key_repairs_ipv6_only_against_a_known_flow():
    flow = RawFlow(17, "2600:1900:4160:5999::19::", 3478, "2001:db8::1", 5, Verdict(OTHER))
    wanted = acc.canonical_key(17, "2600:1900:4160:5999:0:19::", 3478, "2001:db8::1", 5)
    assert acc.resolve_key(flow, {wanted}) == wanted
    assert acc.resolve_key(flow, set()) is None


def test_merge_flows_keeps_the_most_voip_verdict_of_a_split_flow():
    a = RawFlow(17, "10.0.0.1", 5060, "10.0.0.2", 5060, Verdict(UNKNOWN, packets=50))
    b = RawFlow(17, "10.0.0.2", 5060, "10.0.0.1", 5060, Verdict(SIGNALING, "SIP", packets=3))
    c = RawFlow(17, "10.0.0.1", 5060, "10.0.0.2", 5060, Verdict(OTHER, packets=90))
    bad = RawFlow(17, "nonsense", 1, "10.0.0.2", 2, Verdict(OTHER))
    merged, unparsed = acc.merge_flows([a, b, c, bad], set())
    assert merged == {(17, "10.0.0.1", 5060, "10.0.0.2", 5060): b.verdict}
    assert unparsed == 1


# --- expected labels --------------------------------------------------------------------


def test_parse_labels_canonicalises_and_reports_bad_rows():
    text = (
        "proto,a_ip,a_port,b_ip,b_port,category,protocol,app,media,note\n"
        "17,10.0.0.2,5060,10.0.0.1,5060,voip-signaling,SIP,,,B before A\n"
        "udp,10.0.0.1,4000,10.0.0.2,4002,voip-media,RTP,,audio,\n"
        "17,10.0.0.1,1,10.0.0.3,2,maybe-voip,,,,\n"
        "17,not-an-ip,1,10.0.0.3,2,other,,,,\n"
        "17,10.0.0.1,5060,10.0.0.2,5060,other,,,,duplicate\n"
    )
    labels, warnings = acc.parse_labels(text)
    assert labels == {
        (17, "10.0.0.1", 5060, "10.0.0.2", 5060): Label(SIGNALING, "SIP", note="B before A"),
        (17, "10.0.0.1", 4000, "10.0.0.2", 4002): Label(MEDIA, "RTP", media="audio"),
    }
    assert [w.split(":")[0] for w in warnings] == ["line 4", "line 5", "line 6"]


# --- peer vocabulary --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "proto", "category"),
    [
        ("SIP", 17, SIGNALING),
        ("SIP.HTTP", 6, SIGNALING),  # ndpiReader 4.2 on HTTP to port 5060: its error, mapped
        ("H323", 6, SIGNALING),
        ("CiscoSkinny", 6, SIGNALING),
        ("Megaco", 17, SIGNALING),
        ("RTP", 17, MEDIA),
        ("RTP", 6, MEDIA),
        ("RTCP", 17, MEDIA),
        ("IAX", 17, MEDIA),
        ("SRTP.WhatsAppCall", 17, MEDIA),
        ("STUN.WhatsAppCall", 17, MEDIA),
        ("STUN.TeamsCall", 6, MEDIA),
        ("Skype_Teams.SkypeCall", 17, MEDIA),
        ("QUIC.SnapchatCall", 17, MEDIA),
        ("STUN.SignalVoip", 17, MEDIA),
        ("Zoom", 17, MEDIA),
        ("STUN.Teams", 17, MEDIA),
        ("DTLS.Discord", 17, MEDIA),
        ("Skype_Teams", 6, OTHER),
        ("Telegram", 6, OTHER),
        ("DNS.WhatsApp", 17, OTHER),
        ("TLS.Zoom", 6, OTHER),
        ("QUIC.GoogleMeet", 17, OTHER),
        ("RTPS", 17, OTHER),
        ("STUN", 17, SIGNALING),
        ("STUN.AmazonAWS", 17, SIGNALING),
        ("DTLS.Google", 17, SIGNALING),
        ("Unknown", 17, UNKNOWN),
        ("", 17, UNKNOWN),
        (None, 6, UNKNOWN),
    ],
)
def test_ndpi_category(label, proto, category):
    assert acc.ndpi_category(label, proto) == category


def test_ndpi_verdict_protocol_and_app():
    v = acc.ndpi_verdict("STUN.WhatsAppCall", 17, 7)
    assert (v.protocol, v.app, v.packets) == ("STUN", "WhatsAppCall", 7)
    assert v.label == "STUN.WhatsAppCall"
    assert acc.ndpi_verdict("CiscoSkinny", 6).protocol == "SCCP"
    assert acc.ndpi_verdict("H323", 17).protocol == "H.323"
    assert acc.ndpi_verdict("Skype_Teams.SkypeCall", 17).protocol == "Skype"
    assert acc.ndpi_verdict("Zoom", 17).protocol is None
    assert acc.ndpi_verdict("DNS.Zoom", 17).protocol == "DNS"


@pytest.mark.skipif(not PEER_LABELS.is_file(), reason=f"{PEER_LABELS} not found")
def test_ndpi_mapping_reproduces_every_peer_labels_role():
    role_category = {"media": MEDIA, "app-media": MEDIA, "signaling": SIGNALING, "nat": SIGNALING}
    wrong = []
    with PEER_LABELS.open(newline="") as f:
        for row in csv.DictReader(f):
            for peer in ("ndpireader", "nfstream", "ndpi_expected"):
                got = acc.ndpi_category(row[f"{peer}_label"], int(row["proto"]))
                want = role_category.get(row[f"{peer}_role"])
                if (got if got in acc.VOIP else None) != want:
                    wrong.append((peer, row[f"{peer}_label"], row["proto"], got))
    assert wrong == []


@pytest.mark.parametrize(
    ("protocols", "category", "protocol"),
    [
        ({"sip": 3, "sdp": 1}, SIGNALING, "SIP"),
        ({"q931": 2, "h225": 1}, SIGNALING, "H.323"),
        ({"skinny": 4}, SIGNALING, "SCCP"),
        ({"stun": 10, "dtls": 4, "rtp": 5}, MEDIA, "RTP"),
        ({"iax2": 9}, MEDIA, "IAX2"),
        ({"classicstun": 2}, SIGNALING, "STUN"),
        ({"dns": 2}, OTHER, "DNS"),
        ({"tls": 9, "http2": 1}, OTHER, "TLS"),
        ({"data": 3}, UNKNOWN, None),
        ({}, UNKNOWN, None),
    ],
)
def test_tshark_verdict(protocols, category, protocol):
    v = acc.tshark_verdict(Counter(protocols))
    assert (v.category, v.protocol) == (category, protocol)


@pytest.mark.parametrize(
    ("expected", "predicted", "same"),
    [
        ("H.323", "H225", True),
        ("h.323", "H.323", True),
        ("SCCP", "CiscoSkinny", True),
        ("IAX2", "IAX", True),
        ("TURN", "STUN", True),
        ("RTP", "rtp", True),
        ("RTP", "RTCP", False),
        ("SRTP", "RTP", False),
        ("SIP", None, False),
    ],
)
def test_protocol_matches(expected, predicted, same):
    assert acc.protocol_matches(expected, predicted) is same


@pytest.mark.parametrize(
    ("expected", "predicted", "same"),
    [
        ("WhatsApp", "WhatsAppCall", True),
        ("Teams", "SkypeCall", True),  # nDPI 4.2 names Teams calls SkypeCall
        ("Skype", "Skype_Teams", True),
        ("GoogleMeet", "GoogleHangoutDuo", True),
        ("GoogleMeet", "FacebookVoip", False),
        ("Zoom", None, False),
    ],
)
def test_app_matches(expected, predicted, same):
    assert acc.app_matches(expected, predicted) is same


# --- parsers of real tool output ----------------------------------------------------------


def test_parse_ndpireader_csv():
    flows = acc.parse_ndpireader_csv(NDPIREADER_CSV)
    assert len(flows) == 7
    duo = flows[1]
    assert (duo.proto, duo.src_ip, duo.src_port, duo.dst_ip, duo.dst_port) == (
        17,
        "192.168.12.169",
        43016,
        "74.125.247.128",
        3478,
    )
    assert (duo.verdict.category, duo.verdict.app, duo.verdict.packets) == (
        MEDIA,
        "GoogleHangoutDuo",
        8,
    )
    assert flows[5].src_ip == "2600:1900:4160:5999::19::"  # kept raw; resolve_key repairs
    assert flows[6].verdict.category == OTHER and flows[6].verdict.label == "TLS.Microsoft365"
    assert [f.verdict.category for f in flows[2:5]] == [SIGNALING, MEDIA, SIGNALING]


def test_parse_nfstream_jsonl():
    flows = acc.parse_nfstream_jsonl(NFSTREAM_JSONL)
    assert [(f.proto, f.verdict.category, f.verdict.protocol) for f in flows] == [
        (6, MEDIA, "STUN"),
        (1, OTHER, "ICMP"),
        (17, SIGNALING, "STUN"),
    ]
    key = acc.resolve_key(flows[2], set())
    assert key == (
        17,
        "2001:b07:a3d:c112:48a1:1094:1227:281e",
        48094,
        "2600:1900:4160:5999:0:19::",
        3478,
    )


def test_parse_tshark_fields_uses_every_packet_of_a_flow():
    parsed = acc.parse_tshark_fields(TSHARK_FIELDS_OUT)
    flows = {acc.resolve_key(f, set()): f.verdict for f in parsed}
    webrtc = flows[(17, "142.250.82.99", 3478, "192.168.12.169", 49153)]
    assert (webrtc.category, webrtc.protocol, webrtc.packets) == (MEDIA, "RTP", 3)
    assert flows[(6, "10.77.110.51", 41588, "10.206.50.239", 42000)].category == SIGNALING
    v6 = (17, "2001:b07:a3d:c112:48a1:1094:1227:281e", 48094, "2600:1900:4160:5999:0:19::", 3478)
    assert flows[v6].protocol == "STUN"
    assert flows[(17, "192.168.1.2", 5060, "212.242.33.35", 5060)].protocol == "SIP"
    assert flows[(6, "172.16.168.24", 40252, "172.16.168.64", 5000)].category == UNKNOWN
    # the ICMP error quoting a UDP header is not a UDP flow
    assert (17, "74.125.247.128", 43016, "192.168.12.169", 3478) not in flows
    assert len(flows) == 5


def test_parse_voipscope_jsonl_reads_the_contract_columns():
    line = (
        '{"proto": "udp", "src_ip": "10.0.0.2", "src_port": 4000, "dst_ip": "10.0.0.1", '
        '"dst_port": 4002, "src2dst_packets": 40, "dst2src_packets": 2, "category": '
        '"voip-media", "protocol": "RTP", "app": null, "media": "audio", '
        '"detected_at_packet": 3}\n'
    )
    (flow,) = acc.parse_voipscope_jsonl(line)
    assert acc.resolve_key(flow, set()) == (17, "10.0.0.1", 4002, "10.0.0.2", 4000)
    assert flow.verdict == Verdict(MEDIA, "RTP", None, "voip-media/RTP", 42, 3)


# --- metrics ----------------------------------------------------------------------------


def _key(n: int) -> acc.FlowKey:
    return (17, "10.0.0.1", 1000 + n, "10.0.0.2", 2000)


def test_metrics_on_a_hand_made_example():
    # 4 signalling, 4 media, 4 other flows; the tool:
    #   signalling: 3 right, 1 called media           -> sig TP 3, FN 1
    #   media:      2 right, 1 other, 1 not reported  -> media TP 2, FN 2
    #   other:      3 right, 1 called signalling      -> sig FP 1
    labels = {
        _key(0): Label(SIGNALING, "SIP"), _key(1): Label(SIGNALING, "SIP"),
        _key(2): Label(SIGNALING, "H.323"), _key(3): Label(SIGNALING, "SIP"),
        _key(4): Label(MEDIA, "RTP", "Zoom"), _key(5): Label(MEDIA, "RTP"),
        _key(6): Label(MEDIA, "SRTP"), _key(7): Label(MEDIA, "RTP"),
        _key(8): Label(OTHER), _key(9): Label(OTHER), _key(10): Label(OTHER),
        _key(11): Label(OTHER),
    }  # fmt: skip
    verdicts = {
        _key(0): Verdict(SIGNALING, "SIP"), _key(1): Verdict(SIGNALING, "sip"),
        _key(2): Verdict(SIGNALING, "H225"), _key(3): Verdict(MEDIA, "RTP"),
        _key(4): Verdict(MEDIA, "RTP", "Zoom"), _key(5): Verdict(MEDIA, "RTCP"),
        _key(6): Verdict(OTHER, "DTLS"),
        _key(8): Verdict(OTHER), _key(9): Verdict(OTHER), _key(10): Verdict(OTHER),
        _key(11): Verdict(SIGNALING, "STUN"),
    }  # fmt: skip
    st = acc.ToolStats()
    for key, label in labels.items():
        st.add(label, verdicts.get(key))

    sig, media, voip = (st.classes[c] for c in acc.SCORED_CLASSES)
    assert (sig.tp, sig.fp, sig.fn) == (3, 1, 1)
    assert sig.precision == pytest.approx(3 / 4) and sig.recall == pytest.approx(3 / 4)
    assert sig.f1 == pytest.approx(3 / 4)
    assert (media.tp, media.fp, media.fn) == (2, 1, 2)
    assert media.precision == pytest.approx(2 / 3) and media.recall == pytest.approx(1 / 2)
    assert media.f1 == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    # binary: 8 VoIP expected, the tool says VoIP for 7 of them... minus 2 -> 6, plus 1 FP
    assert (voip.tp, voip.fp, voip.fn) == (6, 1, 2)
    assert st.confusion[(SIGNALING, MEDIA)] == 1
    assert st.confusion[(MEDIA, UNKNOWN)] == 1
    assert st.confusion[(OTHER, SIGNALING)] == 1
    assert sum(st.confusion.values()) == 12
    # protocol on the 8 VoIP flows: SIP, sip, H225=H.323 right; key 3..7 wrong except key 4
    assert (st.protocol.correct, st.protocol.total) == (4, 8)
    assert (st.protocol_by_name["SIP"].correct, st.protocol_by_name["SIP"].total) == (2, 3)
    assert (st.app.correct, st.app.total) == (1, 1)

    binary = acc.binary_scores(labels, verdicts)
    assert (binary.tp, binary.fp, binary.fn) == (6, 1, 2)


def test_scores_without_positives_are_undefined_not_zero():
    s = acc.Scores()
    s.add(expected=False, predicted=False)
    assert (s.precision, s.recall, s.f1) == (None, None, None)
    s.add(expected=True, predicted=False)
    assert (s.precision, s.recall, s.f1) == (None, 0.0, None)


def test_median_detection_per_protocol():
    verdicts = [
        Verdict(SIGNALING, "SIP", detected_at_packet=1),
        Verdict(MEDIA, "RTP", detected_at_packet=2),
        Verdict(MEDIA, "RTP", detected_at_packet=4),
        Verdict(MEDIA, "RTP", detected_at_packet=9),
        Verdict(OTHER, "DNS", detected_at_packet=1),
        Verdict(MEDIA, "RTP"),
    ]
    assert acc.median_detection(verdicts) == {
        "RTP": {"n": 3, "median": 4, "max": 9},
        "SIP": {"n": 1, "median": 1, "max": 1},
    }


# --- the harness never stops because of one tool ----------------------------------------


def test_evaluate_survives_failing_and_missing_tools(tmp_path, monkeypatch):
    captures = tmp_path / "captures"
    labels = tmp_path / "labels"
    captures.mkdir()
    labels.mkdir()
    for name in ("a.pcap", "b.pcapng"):
        (captures / name).write_bytes(b"")
    (labels / "a.pcap.csv").write_text(
        "proto,a_ip,a_port,b_ip,b_port,category,protocol,app,media,note\n"
        "17,10.0.0.1,5060,10.0.0.2,5060,voip-signaling,SIP,,,\n"
        "17,10.0.0.1,53,10.0.0.2,9999,other,DNS,,,\n"
    )

    def good(capture: Path, timeout: float) -> list[RawFlow]:
        return [
            RawFlow(17, "10.0.0.2", 5060, "10.0.0.1", 5060, Verdict(SIGNALING, "SIP")),
            RawFlow(17, "10.0.0.2", 9999, "10.0.0.1", 53, Verdict(OTHER, "DNS")),
            RawFlow(17, "10.0.0.7", 1, "10.0.0.8", 2, Verdict(OTHER)),  # no label
        ]

    def broken(capture: Path, timeout: float) -> list[RawFlow]:
        raise acc.ToolError("exit status 1: boom")

    tools = {
        "good": acc.Tool("good", lambda: "good 1.0", good),
        "broken": acc.Tool("broken", lambda: "broken 1.0", broken),
        "absent": acc.Tool("absent", lambda: None, good),
    }
    monkeypatch.setattr(acc, "TOOLS", tools)
    ev = acc.evaluate(acc.find_captures(captures, None), labels, list(tools), 5.0, 2)

    assert ev.skipped == ["b.pcapng"]
    (result,) = ev.captures
    assert {n: r.status for n, r in result.runs.items()} == {
        "good": "ok",
        "broken": "failed",
        "absent": "missing",
    }
    assert ev.stats["good"].classes["voip"].recall == 1.0
    assert ev.stats["good"].unlabelled == 1
    assert ev.stats["broken"].classes["voip"].fn == 1  # not reported counts as unknown
    assert acc.disagreements(ev) == []  # a failed run is a footnote, not a disagreement
    monkeypatch.setitem(tools, "wrong", acc.Tool("wrong", lambda: "1", lambda c, t: []))
    ev = acc.evaluate(acc.find_captures(captures, None), labels, list(tools), 5.0, 2)
    dis = acc.disagreements(ev)
    assert [d["flow"] for d in dis] == [
        "udp 10.0.0.1:53 <-> 10.0.0.2:9999",
        "udp 10.0.0.1:5060 <-> 10.0.0.2:5060",
    ]
    assert dis[1]["tools"]["wrong"]["category"] == UNKNOWN
    assert dis[1]["tools"]["broken"] == {"status": "failed"}
    report = acc.to_json(ev, dis)
    assert report["captures"][0]["tools"]["good"]["voip_found"] == 1
    assert "boom" in report["captures"][0]["tools"]["broken"]["error"]
    assert any("broken failed on a.pcap" in n for n in acc.footnotes(ev))


def test_run_command_times_out_and_kills():
    with pytest.raises(acc.ToolTimeout):
        acc.run_command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


def test_run_command_reports_exit_status():
    with pytest.raises(acc.ToolError, match="exit status 3: oops"):
        acc.run_command(
            [sys.executable, "-c", "import sys; sys.exit(print('oops', file=sys.stderr) or 3)"], 10
        )


def test_plain_table_without_rich():
    table = acc.TextTable("T", ["tool", "n"], [["voipscope", "12"], ["x", "3"]], ["note"])
    assert acc.plain_table(table).splitlines() == [
        "",
        "T",
        "tool       n ",
        "voipscope  12",
        "x          3 ",
        "note",
    ]
