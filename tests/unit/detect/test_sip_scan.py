"""sip-scan: many SIP destinations from one source within the window."""

from tests.unit.detect.sipevents import (
    ATTACKER,
    NORMAL_UA,
    SCANNER_UA,
    T0_S,
    alerts,
    answer,
    feed,
    request,
)
from voipscope.detect.alerts import AlertBook
from voipscope.detect.sip_scan import SipScanConfig, SipScanDetector


def sweep(hosts: int, *, ua: str | None = NORMAL_UA, step_s: float = 0.1, port: int = 5060):
    return [
        request("OPTIONS", T0_S + i * step_s, dst=(f"198.51.100.{i + 1}", port), ua=ua)
        for i in range(hosts)
    ]


def test_sweep_at_the_threshold_is_a_scan_with_a_normal_user_agent() -> None:
    book = AlertBook()
    detector = SipScanDetector(book)
    feed(detector, *sweep(10))
    (alert,) = alerts(book)
    assert alert["kind"] == "sip-scan" and alert["src_ip"] == ATTACKER[0]
    assert alert["severity"] == "medium" and alert["dst_ip"] is None
    assert alert["data"]["hosts"] == 10 and alert["data"]["scanner_tool"] is None


def test_one_below_the_threshold_is_nothing() -> None:
    book = AlertBook()
    feed(SipScanDetector(book), *sweep(9))
    assert alerts(book) == []


def test_destinations_spread_beyond_the_window_are_nothing() -> None:
    book = AlertBook()
    feed(SipScanDetector(book), *sweep(30, step_s=7.0))  # ~8 per minute
    assert alerts(book) == []


def test_port_sweep_of_one_host_names_it() -> None:
    book = AlertBook()
    detector = SipScanDetector(book)
    events = [request("OPTIONS", T0_S + i, dst=("192.0.2.10", 5060 + i)) for i in range(12)]
    feed(detector, *events)
    (alert,) = alerts(book)
    assert alert["dst_ip"] == "192.0.2.10" and len(alert["data"]["ports"]) == 12


def test_scanner_user_agent_alone_raises_nothing() -> None:
    book = AlertBook()
    feed(SipScanDetector(book), *sweep(3, ua=SCANNER_UA))
    assert alerts(book) == []


def test_scanner_user_agent_adds_evidence_and_severity() -> None:
    book = AlertBook()
    feed(SipScanDetector(book), *sweep(10, ua=SCANNER_UA))
    (alert,) = alerts(book)
    assert alert["severity"] == "high" and "SIPVicious" in alert["data"]["scanner_tool"]
    assert any("scanner" in e for e in alert["evidence"])


def test_one_alert_grows_and_records_responders() -> None:
    book = AlertBook()
    detector = SipScanDetector(book)
    events = sweep(40)
    feed(detector, *events)
    feed(detector, answer(events[3], 200, T0_S + 5, [("Server", "Asterisk PBX 18")]))
    (alert,) = alerts(book)
    assert alert["count"] == 40
    assert alert["data"]["responders"] == ["198.51.100.4:5060 200 (Asterisk PBX 18)"]


def test_a_proxy_pinging_its_registered_phones_is_not_a_scan() -> None:
    book = AlertBook()
    detector = SipScanDetector(book)
    proxy = ("192.0.2.10", 5060)
    phones = [(f"10.0.0.{i + 1}", 5060) for i in range(30)]
    for i, phone in enumerate(phones):  # each phone registers first
        feed(detector, request("REGISTER", T0_S + i, src=phone, dst=proxy, user=str(200 + i)))
    for i, phone in enumerate(phones):  # then the proxy qualifies them (OPTIONS)
        feed(detector, request("OPTIONS", T0_S + 40 + i * 0.1, src=proxy, dst=phone))
    assert alerts(book) == []


def test_state_is_bounded_and_overflow_counted() -> None:
    book = AlertBook()
    config = SipScanConfig(max_sources=5, max_targets_per_source=20, max_peer_pairs=50)
    detector = SipScanDetector(book, config)
    for i in range(200):
        src = (f"203.0.113.{i % 50}", 5060)
        dst = (f"198.51.{i // 250}.{i % 250}", 5060)
        feed(detector, request("OPTIONS", T0_S + i * 0.01, src=src, dst=dst))
    for name, (size, cap) in detector.state_sizes().items():
        assert size <= cap, name
    assert detector.overflow > 0
