"""spit (many short calls to many callees) and policy (allow-lists on VoIP flows)."""

import pytest

from tests.unit.detect.sipevents import T0_S, alerts, call_record
from voipscope.detect.alerts import AlertBook
from voipscope.detect.policy import PolicyConfig, PolicyDetector
from voipscope.detect.spit import SpitConfig, SpitDetector
from voipscope.errors import ConfigError


def spit_run(records, config: SpitConfig | None = None):
    book = AlertBook()
    detector = SpitDetector(book, config)
    for record in records:
        detector.on_call(record)
    return alerts(book), detector


def test_robocaller_many_short_calls() -> None:
    records = [
        call_record(f"2{i:03d}", T0_S + i * 10, answer=T0_S + i * 10 + 2, end=T0_S + i * 10 + 5)
        for i in range(20)
    ]
    (alert,), _ = spit_run(records)
    assert (alert["kind"], alert["src_ip"]) == ("spit", "10.1.1.20")
    assert alert["data"]["callees"] == 20


def test_long_calls_to_many_callees_are_nothing() -> None:
    records = [
        call_record(f"2{i:03d}", T0_S + i * 10, answer=T0_S + i * 10 + 2, end=T0_S + i * 10 + 300)
        for i in range(30)
    ]
    assert spit_run(records)[0] == []


def test_nineteen_callees_are_nothing() -> None:
    records = [call_record(f"2{i:03d}", T0_S + i * 10) for i in range(19)]
    assert spit_run(records)[0] == []


def test_spit_state_is_bounded() -> None:
    records = [call_record(str(i), T0_S + i, caller_ip=f"10.0.{i % 30}.1") for i in range(3000)]
    _, detector = spit_run(records, SpitConfig(max_sources=4, max_calls_per_source=16))
    for name, (size, cap) in detector.state_sizes().items():
        assert size <= cap, name


def flow(**kw):
    base = {
        "flow_id": 7,
        "proto": "udp",
        "src_ip": "10.0.0.5",
        "src_port": 5060,
        "dst_ip": "198.51.100.7",
        "dst_port": 5060,
        "category": "voip-signaling",
        "protocol": "SIP",
        "app": None,
        "first_seen": T0_S,
        "last_seen": T0_S + 5,
    }
    return base | kw


def test_policy_is_off_by_default() -> None:
    book = AlertBook()
    PolicyDetector(book).on_flow(flow())
    assert alerts(book) == []


def test_host_outside_allowed_networks_carries_a_block_entry() -> None:
    book = AlertBook()
    detector = PolicyDetector(book, PolicyConfig(allowed_networks=("10.0.0.0/8",)))
    detector.on_flow(flow())
    detector.on_flow(flow(dst_ip="10.0.0.9"))  # inside: fine
    detector.on_flow(flow(category="other", protocol="DNS"))  # not VoIP: not judged
    (alert,) = alerts(book)
    assert alert["kind"] == "policy" and alert["data"]["reason"] == "host-not-allowed"
    assert alert["data"]["block"] == [
        {"ip": "198.51.100.7", "port": 5060, "transport": "udp", "protocol": "SIP", "app": None}
    ]


def test_app_not_allowed() -> None:
    book = AlertBook()
    detector = PolicyDetector(book, PolicyConfig(allowed_apps=("Teams", "SIP")))
    detector.on_flow(flow())
    detector.on_flow(flow(category="voip-media", protocol="RTP", app="Zoom", dst_port=8801))
    (alert,) = alerts(book)
    assert alert["data"]["reason"] == "app-not-allowed"
    assert alert["data"]["block"][0]["app"] == "Zoom" and alert["data"]["block"][0]["port"] == 8801


def test_bad_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        PolicyDetector(AlertBook(), PolicyConfig(allowed_networks=("10.0.0.300/8",)))
