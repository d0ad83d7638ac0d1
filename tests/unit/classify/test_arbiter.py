"""classify/arbiter.py: precedence rules on hand-made findings."""

from __future__ import annotations

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.classify.arbiter import Arbiter
from voipscope.classify.behaviour import BehaviourOpinion
from voipscope.dissect.base import MEDIA, OTHER, SIGNALING, UDP, Finding, FlowContext
from voipscope.dissect.knowledge import Expectation, Knowledge
from voipscope.flows import kernels as K


def judge(
    *findings: Finding,
    knowledge: Knowledge | None = None,
    bytes_per_packet: int = 100,
    opinion: BehaviourOpinion | None = None,
):
    k = knowledge or Knowledge()
    ctx = FlowContext(1, UDP, "192.0.2.1", 40000, "192.0.2.2", 50000, 10, k, AnomalyLog())
    ctx.findings.extend(findings)
    ctx.lookup_expectation(ctx.first_ts_ns)  # as the dissect stage does for a new flow
    row = np.zeros(K.NF, np.int64)
    row[K.F_PKTS_FWD] = 10
    row[K.F_BYTES_FWD] = 10 * bytes_per_packet
    return Arbiter(k).judge(ctx, row, opinion)


def test_media_beats_signalling_on_one_5tuple() -> None:
    v = judge(Finding("STUN", SIGNALING, 0.95, "binding", 1), Finding("RTP", MEDIA, 0.9, "rtp", 9))
    assert (v.category, v.protocol, v.detected_at_packet) == (MEDIA, "RTP", 9)
    assert v.evidence[0].startswith("RTP:") and any(e.startswith("STUN:") for e in v.evidence)


def test_rtp_and_rtcp_on_one_5tuple_is_rtp_whichever_matched_first() -> None:
    """RFC 5761 multiplexing: a receiver report can come before the RTP's second packet
    (which RTP needs to match); the flow is still the media's, its RTCP the evidence."""
    for rtcp_first in (True, False):
        v = judge(Finding("RTCP", MEDIA, 0.9, "RR", 2 if rtcp_first else 5),
                  Finding("RTP", MEDIA, 0.9, "rtp", 3))  # fmt: skip
        assert (v.protocol, v.detected_at_packet) == ("RTP", 3)
        assert any(e.startswith("RTCP:") for e in v.evidence)
    v = judge(Finding("RTCP", MEDIA, 0.9, "SR", 2), Finding("RTP", MEDIA, 0.85, "rtp", 9),
              Finding("DTLS", SIGNALING, 0.9, "ClientHello offers use_srtp", 1))  # fmt: skip
    assert v.protocol == "SRTP"
    assert judge(Finding("RTCP", MEDIA, 0.9, "RR", 2)).protocol == "RTCP"  # RTCP alone


def test_rtp_after_dtls_srtp_is_srtp() -> None:
    v = judge(Finding("DTLS", SIGNALING, 0.9, "ClientHello offers use_srtp", 3),
              Finding("RTP", MEDIA, 0.9, "rtp", 20))  # fmt: skip
    assert v.protocol == "SRTP"


def test_ice_checks_before_a_dtls_srtp_handshake_are_a_dtls_flow() -> None:
    """STUN Binding requests open the path, the DTLS-SRTP handshake on it keys the media:
    without media on the 5-tuple it is named by the handshake (a relay stays TURN)."""
    stun = Finding("STUN", SIGNALING, 0.95, "Binding request", 1)
    for hello in ("ClientHello offers use_srtp", "ServerHello selects use_srtp"):
        v = judge(stun, Finding("DTLS", SIGNALING, 0.9, hello, 4))
        assert (v.category, v.protocol, v.detected_at_packet) == (SIGNALING, "DTLS", 4)
        assert [e.split(":")[0] for e in v.evidence[:2]] == ["DTLS", "STUN"]
        assert sum(e.startswith("DTLS:") for e in v.evidence) == 1
    assert judge(stun, Finding("DTLS", OTHER, 0.9, "records", 4)).protocol == "STUN"
    turn = Finding("TURN", SIGNALING, 0.95, "Allocate request", 2)
    assert judge(stun, turn, Finding("DTLS", SIGNALING, 0.9, "use_srtp", 4)).protocol == "TURN"


def test_a_surer_non_voip_finding_outvotes_weak_voip() -> None:
    v = judge(Finding("DNS", OTHER, 0.95, "dns", 1), Finding("Skype", SIGNALING, 0.6, "som", 1))
    assert (v.category, v.protocol) == (OTHER, "DNS")


def test_weak_findings_decide_nothing_and_name_no_app() -> None:
    v = judge(Finding("Mumble", SIGNALING, 0.3, "port 64738", 1, app="Mumble"))
    assert v.category == "unknown" and v.app is None


def test_expectation_supplies_protocol_call_and_srtp() -> None:
    k = Knowledge()
    k.expect("192.0.2.2", 50000, Expectation("SRTP", MEDIA, "SDP m=audio 50000 RTP/SAVP", 7, 5,
                                             "audio", call_id="c1"))  # fmt: skip
    v = judge(Finding("RTP", MEDIA, 0.85, "rtp", 1), knowledge=k)
    assert (v.protocol, v.call_id, v.media) == ("SRTP", "c1", "audio")
    assert v.confidence > 0.85
    bare = judge(knowledge=k)  # announced, nothing recognised: the signalling decides
    assert (bare.category, bare.protocol) == (MEDIA, "SRTP")


def test_media_kind_from_size_when_nothing_else_says() -> None:
    assert judge(Finding("RTP", MEDIA, 0.9, "rtp", 2), bytes_per_packet=1100).media == "video"
    assert judge(Finding("RTP", MEDIA, 0.9, "rtp", 2), bytes_per_packet=120).media == "audio"


CALL_LIKE = BehaviourOpinion(0.95, 0.88, "audio", 48, "behaviour: media p=0.95 (1 of 1 windows)")


def test_behaviour_is_the_verdict_only_where_the_bytes_said_nothing() -> None:
    v = judge(opinion=CALL_LIKE)
    assert (v.category, v.media, v.confidence, v.detected_at_packet) == (MEDIA, "audio", 0.88, 48)
    assert v.evidence == ["behaviour: media p=0.95 (1 of 1 windows)"]


def test_behaviour_agreeing_with_the_bytes_raises_their_confidence() -> None:
    alone = judge(Finding("RTP", MEDIA, 0.9, "rtp", 2))
    both = judge(Finding("RTP", MEDIA, 0.9, "rtp", 2), opinion=CALL_LIKE)
    assert (both.category, both.protocol, both.detected_at_packet) == (MEDIA, "RTP", 2)
    assert both.confidence == round(1 - (1 - 0.9) * (1 - 0.88), 3) > alone.confidence
    assert "second opinion, behaviour: media p=0.95 (1 of 1 windows)" in both.evidence
    assert not any("second opinion" in e for e in alone.evidence)


def test_behaviour_never_overturns_the_bytes() -> None:
    v = judge(Finding("QUIC", OTHER, 0.95, "long header, version 1", 1), opinion=CALL_LIKE)
    assert (v.category, v.protocol, v.confidence, v.detected_at_packet) == (OTHER, "QUIC", 0.95, 1)
    assert v.media is None
    note = [e for e in v.evidence if e.startswith("second opinion")]
    assert note == [
        "second opinion, behaviour: media p=0.95 (1 of 1 windows); the bytes say QUIC, "
        "the verdict stays theirs"
    ]


def test_a_short_flows_head_does_not_contradict_the_bytes() -> None:
    head = BehaviourOpinion(0.84, 0.84, "audio", 14, "behaviour: media p=0.84 (head)", True)
    v = judge(Finding("STUN", SIGNALING, 0.95, "binding request", 1), opinion=head)
    assert not any(e.startswith("second opinion") for e in v.evidence)
    confirmed = judge(Finding("RTP", MEDIA, 0.9, "rtp", 2), opinion=head)
    assert "second opinion, behaviour: media p=0.84 (head)" in confirmed.evidence


def _named(
    finding: Finding, server_ip: str, hints: list[tuple[str, str]], dns_name: str | None = None
):
    """A TCP/UDP flow to ``server_ip`` with ``hints``; ``dns_name``: a DNS answer for the
    server learned before the flow."""
    k = Knowledge()
    if dns_name is not None:
        k.learn_name(server_ip, dns_name, "DNS answer", 99, ts_ns=1)
    ctx = FlowContext(1, UDP, "192.0.2.1", 40000, server_ip, 443, 10, k, AnomalyLog())
    ctx.findings.append(finding)
    ctx.hints.extend(hints)
    row = np.zeros(K.NF, np.int64)
    row[K.F_PKTS_FWD], row[K.F_BYTES_FWD], row[K.F_LAST_NS] = 10, 1000, 20
    return Arbiter(k).judge(ctx, row)


TLS = Finding("TLS", OTHER, 0.95, "ClientHello", 1)


def test_a_non_voip_flow_is_named_by_the_service_its_server_name_is_under() -> None:
    # 52.114.77.33 is in the Teams media range 52.112.0.0/14, but the flow says which
    # server it wants: Microsoft's telemetry, not Teams.
    v = _named(TLS, "52.114.77.33", [("sni", "mobile.pipe.aria.microsoft.com")])
    assert v.app == "Microsoft" and any("not a call app" in e for e in v.evidence)
    # A call app's own name under the same company's domain stays the call app's.
    assert _named(TLS, "52.114.77.33", [("sni", "teams.microsoft.com")]).app == "Teams"
    # Without a name the range says Teams, as before.
    assert _named(TLS, "52.114.77.33", []).app == "Teams"
    # The HTTP Host header names the server as the SNI does.
    assert _named(TLS, "192.0.2.9", [("http-host", "www.facebook.com")]).app == "Facebook"


def test_a_dns_answer_names_a_non_voip_flows_service_after_the_call_apps_ranges() -> None:
    amazon = "a1.elb.ap-northeast-1.amazonaws.com"
    assert _named(TLS, "192.0.2.9", [], dns_name=amazon).app == "Amazon"
    # Zoom publishes relays inside AWS: its own range says more than the cloud's name.
    assert _named(TLS, "170.114.10.1", [], dns_name=amazon).app == "Zoom"


def test_a_voip_flow_is_never_named_after_the_cloud_it_runs_on() -> None:
    """Signal's ICE agent asks Google's public STUN server; Zoom's relays sit in AWS:
    for a call flow, a service's name says who hosts the server, not which app calls."""
    stun = Finding("STUN", SIGNALING, 0.95, "binding", 1)
    assert _named(stun, "192.0.2.9", [("sni", "stun.l.google.com")]).app is None
    assert _named(stun, "192.0.2.9", [], dns_name="stun.l.google.com").app is None


S = 1_000_000_000  # ns


def test_a_turn_clients_flow_is_the_call_that_announced_its_relayed_address() -> None:
    """The allocation (t=20 s) gave 198.51.100.9:49160; an SDP offered it at t=30; the
    flow's media came at t=40 s, to the relay's port only. Announced after the media:
    another call's address, not this flow's."""
    k = Knowledge()
    k.expect("198.51.100.9", 49160, Expectation("RTP", MEDIA, "SDP c=/m= in INVITE", 3, 30 * S,
                                                "audio", call_id="sip-call-1"))  # fmt: skip
    k.expect("198.51.100.9", 49162, Expectation("RTP", MEDIA, "SDP c=/m= in INVITE", 4, 90 * S,
                                                call_id="later"))  # fmt: skip
    for relayed, call_id in (("198.51.100.9 49160", "sip-call-1"), ("198.51.100.9 49162", None)):
        ctx = FlowContext(1, UDP, "192.0.2.1", 40000, "198.51.100.9", 3478, 10, k, AnomalyLog())
        ctx.hint("turn-relayed", relayed)
        ctx.findings.append(Finding("TURN", SIGNALING, 0.9, "Allocate success", 2))
        ctx.mark(20 * S)
        ctx.findings.append(Finding("RTP", MEDIA, 0.85, "rtp inside ChannelData", 9))
        ctx.mark(40 * S)
        ctx.lookup_expectation(ctx.first_ts_ns)
        v = Arbiter(k).judge(ctx, None)
        assert (v.category, v.call_id) == (MEDIA, call_id)
        assert any(e.startswith("relayed: 198.51.100.9:49160") for e in v.evidence) == bool(call_id)


def test_a_turn_peer_expectation_keeps_the_call_of_the_sdp_that_announced_the_address() -> None:
    """The callee's RTCP port was announced in its SDP answer (call c1, t=5 s); the
    caller's TURN ChannelBind to it (t=6 s) is a newer expectation for the same address,
    without a call: a flow touching the address is still c1's. Outside the TTL, nothing."""
    k = Knowledge(ttl_s=60)
    k.expect("192.0.2.2", 50001, Expectation("RTCP", MEDIA, "RTCP port of SDP m=audio", 2,
                                             5 * S, call_id="c1"))  # fmt: skip
    k.expect("192.0.2.2", 50001, Expectation("TURN", MEDIA, "XOR-PEER-ADDRESS in TURN "
                                             "ChannelBind", 3, 6 * S))  # fmt: skip
    found = k.expected("192.0.2.2", 50001, 9 * S)
    assert found is not None and (found.protocol, found.call_id) == ("TURN", "c1")
    assert "ChannelBind" in found.evidence and "SDP" in found.evidence
    late = k.expected("192.0.2.2", 50001, 66 * S)  # the SDP one is stale, the TURN one not
    assert late is not None and late.call_id is None
