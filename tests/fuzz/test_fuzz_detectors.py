"""Hypothesis over every detector: random sequences of SIP message facts, Call records,
Flow records and anomaly counts (well-formed and not) never raise, and every per-source
table stays within its cap (DESIGN §4: attacker-controlled state is bounded)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.calls.sipmsg import event, message
from voipscope.anomalies import AnomalyLog
from voipscope.detect.config import DetectConfig
from voipscope.detect.policy import PolicyConfig
from voipscope.detect.sip_bruteforce import SipBruteforceConfig
from voipscope.detect.sip_enumeration import SipEnumerationConfig
from voipscope.detect.sip_facts import SipFacts
from voipscope.detect.sip_flood import SipFloodConfig
from voipscope.detect.sip_scan import SipScanConfig
from voipscope.detect.skype_supernode import SkypeSupernodeConfig
from voipscope.detect.spit import SpitConfig
from voipscope.detect.stage import DetectStage
from voipscope.detect.toll_fraud import TollFraudConfig

T0_S = 1_700_000_000.0
IPS = [f"10.0.0.{i}" for i in range(1, 30)] + ["2001:db8::1", "", "not-an-ip"]
METHODS = ["REGISTER", "INVITE", "OPTIONS", "ACK", "BYE", "MESSAGE", "X" * 40, ""]
USERS = ["100", "101", "+979123", "0088161234", "alice", "", "9" * 80, "+", "\x00"]
AGENTS = [None, "friendly-scanner", "sipcli/v1.8", "Yealink", "x" * 300]
CODES = [None, 100, 180, 200, 401, 403, 404, 407, 484, 500, 604, 999, -1]

SMALL = DetectConfig(
    alert_quiet_s=30.0,
    max_open_alerts=16,
    sip_scan=SipScanConfig(
        min_targets=3, max_sources=4, max_targets_per_source=8, max_peer_pairs=8
    ),
    sip_enumeration=SipEnumerationConfig(
        min_users=3, min_not_found=1, max_pairs=4, max_users_per_pair=8, max_pending_per_pair=4
    ),
    sip_bruteforce=SipBruteforceConfig(
        min_failures=2, min_users=2, max_pairs=4, max_pending_per_pair=4, max_users_per_pair=8
    ),
    toll_fraud=TollFraudConfig(
        min_international_calls=2,
        max_concurrent_international=2,
        min_sequential_numbers=2,
        min_sequential_digits=1,
        max_sources=4,
        max_numbers_per_source=8,
        max_open_calls_per_source=4,
        max_international_kept=8,
        baseline_min_span_s=0,
        baseline_min_calls=1,
    ),
    sip_flood=SipFloodConfig(min_requests=3, min_requests_to_target=5, max_keys=8),
    spit=SpitConfig(min_callees=2, max_sources=4, max_calls_per_source=8),
    policy=PolicyConfig(allowed_networks=("10.0.0.0/28",), allowed_apps=("SIP",)),
    skype_supernode=SkypeSupernodeConfig(
        min_inbound_peers=2,
        min_voice_packets=1,
        max_hosts=4,
        max_peers_per_host=4,
        max_legs_per_host=2,
    ),
)

facts = st.builds(
    SipFacts,
    ts_s=st.floats(T0_S - 10, T0_S + 5000, allow_nan=False),
    src_ip=st.sampled_from(IPS),
    src_port=st.integers(0, 65535),
    dst_ip=st.sampled_from(IPS),
    dst_port=st.integers(0, 65535),
    transport=st.sampled_from([6, 17]),
    is_request=st.booleans(),
    method=st.sampled_from([*METHODS, None]),
    status=st.sampled_from(CODES),
    call_id=st.sampled_from([None, "a", "b", "c", "d"]),
    cseq=st.sampled_from([None, 1, 2, 3]),
    target_user=st.sampled_from([*USERS, None]),
    auth_username=st.sampled_from([*USERS, None]),
    user_agent=st.sampled_from(AGENTS),
    stale_challenge=st.booleans(),
)
anything = st.one_of(
    st.none(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.booleans(),
)
call_records = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["call", "registration", "options", None]),
        "protocol": st.sampled_from(["SIP", None, "H.323"]),
        "caller_ip": st.sampled_from([*IPS, None]),
        "callee_ip": st.sampled_from([*IPS, None]),
        "callee_user": st.sampled_from([*USERS, None]),
        "request_uri": st.one_of(
            st.none(), st.sampled_from(USERS).map(lambda u: f"sip:{u}@h"), st.text(max_size=30)
        ),
        "start": st.one_of(st.floats(T0_S, T0_S + 10**6, allow_nan=False), anything),
        "answer": st.one_of(st.none(), st.floats(T0_S, T0_S + 10**6), anything),
        "end": st.one_of(st.none(), st.floats(T0_S, T0_S + 10**6), anything),
        "state": st.sampled_from(["answered", "failed", "ongoing", None]),
    }
)
flow_records = st.fixed_dictionaries(
    {
        "flow_id": st.integers(0, 100),
        "proto": st.sampled_from(["udp", "tcp", None]),
        "src_ip": st.sampled_from([*IPS, None]),
        "src_port": st.integers(0, 65535),
        "dst_ip": st.sampled_from([*IPS, None]),
        "dst_port": st.integers(0, 65535),
        "category": st.sampled_from(["voip-signaling", "voip-media", "other", None]),
        "protocol": st.sampled_from(["SIP", "RTP", "Skype", None]),
        "app": st.sampled_from(["Zoom", "Skype", None, ""]),
        "media": st.sampled_from(["audio", "video", None]),
        "src2dst_packets": st.one_of(st.integers(0, 10**6), anything),
        "dst2src_packets": st.one_of(st.integers(0, 10**6), anything),
        "src2dst_bytes": st.one_of(st.integers(0, 10**9), anything),
        "dst2src_bytes": st.one_of(st.integers(0, 10**9), anything),
        "first_seen": st.one_of(st.none(), st.floats(T0_S, T0_S + 100), anything),
        "last_seen": st.one_of(st.none(), st.floats(T0_S, T0_S + 100), anything),
    }
)
steps = st.lists(
    st.one_of(
        facts.map(lambda f: ("sip", f)),
        call_records.map(lambda r: ("call", r)),
        flow_records.map(lambda r: ("flow", r)),
        st.tuples(
            st.just("tick"), st.floats(T0_S, T0_S + 6000, allow_nan=False), st.integers(0, 500)
        ),
    ),
    max_size=80,
)


def check_bounded(stage: DetectStage) -> None:
    for detector, tables in stage.state_sizes().items():
        for name, (size, cap) in tables.items():
            assert size <= cap, (detector, name, size, cap)
    assert len(stage.book._open) <= SMALL.max_open_alerts


@settings(max_examples=300, deadline=None)
@given(steps)
def test_random_records_through_all_detectors(sequence: list[Any]) -> None:
    log = AnomalyLog()
    stage = DetectStage(SMALL, log)
    for step in sequence:
        kind = step[0]
        if kind == "sip":
            for detector in stage.detectors:
                detector.on_sip(step[1])
        elif kind == "call":
            stage.add_calls([step[1]])
        elif kind == "flow":
            stage.add_flows([step[1]])
        else:
            log.add("sip_malformed", "fuzz", ts=step[1], count=step[2], src_ip="10.0.0.1")
            stage.tick(step[1])
        stage.ready()
        check_bounded(stage)
    for record in stage.finish():
        assert record["severity"] in ("low", "medium", "high")
    check_bounded(stage)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(METHODS[:6]),
            st.sampled_from(USERS),
            st.sampled_from(AGENTS),
            st.sampled_from(["", 'Digest username="x"', "Digest username=", "Basic zz"]),
            st.integers(0, 10**6),
        ),
        max_size=40,
    )
)
def test_random_sip_messages_through_the_stage(items: list[tuple[Any, ...]]) -> None:
    stage = DetectStage(SMALL, AnomalyLog())
    events = []
    for method, user, agent, auth, ms in items:
        hs = [
            ("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1"),
            ("From", f"<sip:{user}@h>"),
            ("To", f"<sip:{user}@h>"),
            ("Call-ID", f"c{ms % 7}"),
            ("CSeq", f"1 {method}"),
        ]
        if agent:
            hs.append(("User-Agent", agent))
        if auth:
            hs.append(("Authorization", auth))
        src = (f"10.0.0.{ms % 9}", 5060)
        events.append(
            event(
                message(f"{method} sip:{user}@h SIP/2.0", hs),
                int((T0_S + ms / 1000) * 1e9),
                src,
                ("10.0.1.1", 5060),
            )
        )
    stage.on_messages(events)
    stage.finish()
    check_bounded(stage)
