"""sip-bruteforce: refused digest credentials, many per user or many users."""

from tests.unit.detect.sipevents import (
    ATTACKER,
    SCANNER_UA,
    SERVER,
    T0_S,
    alerts,
    answer,
    feed,
    request,
)
from voipscope.detect.alerts import AlertBook
from voipscope.detect.sip_bruteforce import SipBruteforceConfig, SipBruteforceDetector

CHALLENGE = [("WWW-Authenticate", 'Digest realm="example.com", nonce="x"')]


def guess(i: int, user: str, code: int, *, ua: str | None = None, dt: float = 0.2):
    """svcrack's exchange: REGISTER, 401, REGISTER with credentials (same Call-ID), answer."""
    at = T0_S + i * dt
    first = request("REGISTER", at, user=user, call_id=f"c{i}", cseq=1, ua=ua)
    second = request(
        "REGISTER", at + 0.02, user=user, call_id=f"c{i}", cseq=2, username=user, ua=ua
    )
    return [
        first,
        answer(first, 401, at + 0.01, CHALLENGE),
        second,
        answer(second, code, at + 0.03, CHALLENGE if code == 401 else None),
    ]


def test_many_guesses_for_one_user() -> None:
    book = AlertBook()
    detector = SipBruteforceDetector(book)
    for i in range(10):
        feed(detector, *guess(i, "100", 403))
    (alert,) = alerts(book)
    assert (alert["kind"], alert["src_ip"], alert["dst_ip"]) == (
        "sip-bruteforce",
        ATTACKER[0],
        SERVER[0],
    )
    assert alert["data"]["usernames"] == ["100"] and alert["data"]["attempts"] == 10
    assert alert["data"]["succeeded"] is False and alert["severity"] == "medium"


def test_one_below_the_threshold_is_nothing() -> None:
    book = AlertBook()
    detector = SipBruteforceDetector(book)
    for i in range(9):
        feed(detector, *guess(i, "100", 401))
    assert alerts(book) == []


def test_found_password_raises_severity_to_high() -> None:
    book = AlertBook()
    detector = SipBruteforceDetector(book)
    for i in range(12):
        feed(detector, *guess(i, "100", 401))
    feed(detector, *guess(12, "100", 200))
    (alert,) = alerts(book)
    assert alert["severity"] == "high" and alert["data"]["cracked_users"] == ["100"]
    assert alert["data"]["succeeded"] is True and alert["count"] == 13


def test_one_guess_for_many_users_is_a_spray() -> None:
    book = AlertBook()
    detector = SipBruteforceDetector(book)
    for i, user in enumerate(["100", "101", "102", "103", "104"]):
        feed(detector, *guess(i, user, 403))
    (alert,) = alerts(book)
    assert len(alert["data"]["usernames"]) == 5


def test_phone_registering_normally_or_with_stale_nonce_is_nothing() -> None:
    book = AlertBook()
    detector = SipBruteforceDetector(book)
    stale = [("WWW-Authenticate", 'Digest realm="example.com", nonce="y", stale=true')]
    for i in range(30):  # every 60 s: challenge, credentials, stale, credentials, 200
        at = T0_S + i * 60
        creds = request("REGISTER", at, user="100", call_id="reg", cseq=2 * i + 1, username="100")
        retry = request(
            "REGISTER", at + 0.1, user="100", call_id="reg", cseq=2 * i + 2, username="100"
        )
        feed(
            detector,
            creds,
            answer(creds, 401, at + 0.05, stale),
            retry,
            answer(retry, 200, at + 0.15),
        )
    assert alerts(book) == []


def test_slow_wrong_password_retries_are_nothing() -> None:
    book = AlertBook()
    detector = SipBruteforceDetector(book)
    for i in range(20):
        feed(detector, *guess(i, "100", 403, dt=60.0))  # one per minute: 5 per window
    assert alerts(book) == []


def test_scanner_user_agent_alone_raises_nothing() -> None:
    book = AlertBook()
    detector = SipBruteforceDetector(book)
    feed(detector, *guess(0, "100", 403, ua=SCANNER_UA))
    assert alerts(book) == []


def test_state_is_bounded() -> None:
    book = AlertBook()
    config = SipBruteforceConfig(max_pairs=3, max_pending_per_pair=4)
    detector = SipBruteforceDetector(book, config)
    for i in range(200):
        src = (f"203.0.113.{i % 7}", 5060)
        feed(
            detector,
            request("REGISTER", T0_S + i, src=src, user=f"u{i}", call_id=f"c{i}", username=f"u{i}"),
        )
    for name, (size, cap) in detector.state_sizes().items():
        assert size <= cap, name
    assert detector.overflow > 0
