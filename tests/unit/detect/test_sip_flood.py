"""sip-flood: request rates per source and per server; malformed-SIP storms."""

from tests.unit.detect.sipevents import ATTACKER, SERVER, T0_S, alerts, feed, request
from voipscope.anomalies import AnomalyLog
from voipscope.detect.alerts import AlertBook
from voipscope.detect.sip_flood import SipFloodConfig, SipFloodDetector


def test_invite_flood_from_one_source() -> None:
    book = AlertBook()
    detector = SipFloodDetector(book)
    feed(detector, *[request("INVITE", T0_S + i * 0.04, user=str(i)) for i in range(250)])
    (alert,) = alerts(book)
    assert (alert["kind"], alert["src_ip"], alert["dst_ip"]) == (
        "sip-flood",
        ATTACKER[0],
        SERVER[0],
    )
    assert alert["data"]["method"] == "INVITE" and alert["count"] == 250


def test_rate_just_under_the_threshold_is_nothing() -> None:
    book = AlertBook()
    detector = SipFloodDetector(book)
    feed(detector, *[request("REGISTER", T0_S + i * 0.0526, user="1") for i in range(400)])
    assert alerts(book) == []


def test_distributed_flood_has_no_single_source() -> None:
    book = AlertBook()
    detector = SipFloodDetector(book, SipFloodConfig(min_requests_to_target=300))
    events = [
        request("REGISTER", T0_S + i * 0.01, src=(f"198.51.100.{i % 200}", 5060))
        for i in range(400)
    ]
    feed(detector, *events)
    (alert,) = alerts(book)
    assert alert["src_ip"] is None and alert["dst_ip"] == SERVER[0]


def test_malformed_storm_from_the_anomaly_log() -> None:
    book = AlertBook()
    detector = SipFloodDetector(book)
    log = AnomalyLog()
    detector.on_tick(T0_S, log)
    for i in range(150):
        log.add("sip_malformed", "bad start line", ts=T0_S + i * 0.05, src_ip="203.0.113.9")
    detector.on_tick(T0_S + 10.0, log)
    (alert,) = alerts(book)
    assert alert["data"]["pattern"] == "malformed" and alert["src_ip"] == "203.0.113.9"


def test_a_few_malformed_messages_are_nothing() -> None:
    book = AlertBook()
    detector = SipFloodDetector(book)
    log = AnomalyLog()
    detector.on_tick(T0_S, log)
    log.add("sip_malformed", "bad", ts=T0_S + 1, count=20)
    detector.on_tick(T0_S + 10.0, log)
    detector.finish(T0_S + 600, log)
    assert alerts(book) == []


def test_state_is_bounded() -> None:
    book = AlertBook()
    detector = SipFloodDetector(book, SipFloodConfig(max_keys=10))
    for i in range(500):
        feed(detector, request("OPTIONS", T0_S + i * 0.5, src=(f"10.0.{i % 40}.1", 5060)))
    for name, (size, cap) in detector.state_sizes().items():
        assert size <= cap, name
    assert detector.overflow > 0


def test_deflated_websocket_messages_are_no_malformed_sip() -> None:
    """A WebRTC gateway sending permessage-deflate (RFC 7692) SIP at 15 messages/s: each
    is named sip_ws_compressed, none is malformed SIP, no sip-flood alert."""
    book = AlertBook()
    detector = SipFloodDetector(book)
    log = AnomalyLog()
    detector.on_tick(T0_S, log)
    for i in range(150):
        log.add("sip_ws_compressed", "RSV1 set", ts=T0_S + i * 0.05, src_ip="203.0.113.9")
        log.add("sip_ws_refused", "upgrade answered 403", ts=T0_S + i * 0.05)
    detector.on_tick(T0_S + 10.0, log)
    detector.finish(T0_S + 600, log)
    assert alerts(book) == []
