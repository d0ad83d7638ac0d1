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


def storm_log(detector: SipFloodDetector) -> AnomalyLog:
    """An anomaly log whose anomalies reach the detector as they are counted (as the
    detect stage wires it)."""
    log = AnomalyLog()
    log.observers.append(detector.on_anomaly)
    return log


def test_malformed_storm_from_the_anomaly_log() -> None:
    book = AlertBook()
    detector = SipFloodDetector(book)
    log = storm_log(detector)
    for i in range(150):
        log.add("sip_malformed", "bad start line", ts=T0_S + i * 0.05, src_ip="203.0.113.9")
    (alert,) = alerts(book)
    assert alert["data"]["pattern"] == "malformed" and alert["src_ip"] == "203.0.113.9"
    assert alert["count"] == 150 and alert["data"]["sources"] == {"203.0.113.9": 150}
    # Opened at the 100th within 10 s (whole 1 s buckets): in the storm's first seconds.
    assert T0_S <= alert["ts"] <= T0_S + 1 and alert["last_ts"] == T0_S + 149 * 0.05


def test_a_few_malformed_messages_are_nothing() -> None:
    book = AlertBook()
    detector = SipFloodDetector(book)
    log = storm_log(detector)
    log.add("sip_malformed", "bad", ts=T0_S + 1, count=20)
    detector.finish(T0_S + 600)
    assert alerts(book) == []


def test_malformed_past_the_logs_record_cap_count_and_storms_are_episodes() -> None:
    """The log keeps 100 records per name; the detector counts every anomaly. Two storms
    an hour apart, the second past the cap: two alerts of 150 each, each in its time."""
    book = AlertBook()
    detector = SipFloodDetector(book)
    log = storm_log(detector)
    for start in (T0_S, T0_S + 3600):
        for i in range(150):
            log.add("sip_missing_header", "no Via", ts=start + i * 0.05, src_ip="203.0.113.9")
    first, second = alerts(book)
    assert first["count"] == second["count"] == 150
    assert first["last_ts"] < T0_S + 10 and T0_S + 3600 <= second["ts"] <= T0_S + 3601


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
    log = storm_log(detector)
    for i in range(150):
        log.add("sip_ws_compressed", "RSV1 set", ts=T0_S + i * 0.05, src_ip="203.0.113.9")
        log.add("sip_ws_refused", "upgrade answered 403", ts=T0_S + i * 0.05)
    detector.finish(T0_S + 600)
    assert alerts(book) == []


def test_a_storm_from_thousands_of_sources_names_the_busiest() -> None:
    """Spoofed sources: the alert names the 16 busiest, kept as counts grow (the data is
    refreshed at every anomaly; a pass over thousands of sources each time would not do)."""
    book = AlertBook()
    detector = SipFloodDetector(book)
    log = storm_log(detector)
    for i in range(20_000):
        src = "198.51.100.1" if i % 4 == 0 else f"10.{i % 16}.{(i // 16) % 250}.1"
        log.add("sip_malformed", "bad", ts=T0_S + i * 0.0005, src_ip=src)
    (alert,) = alerts(book)
    sources = alert["data"]["sources"]
    assert len(sources) == 16 and next(iter(sources)) == "198.51.100.1"
    assert sources["198.51.100.1"] == 5000 and alert["src_ip"] is None
    assert alert["count"] == 20_000
