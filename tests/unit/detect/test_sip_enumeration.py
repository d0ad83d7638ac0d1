"""sip-enumeration: many extensions asked about, answers that tell valid ones apart."""

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
from voipscope.detect.sip_enumeration import SipEnumerationConfig, SipEnumerationDetector

VALID = {"100": 401, "101": 401, "105": 200}


def war(
    users: range,
    method: str = "REGISTER",
    valid: dict[str, int] | None = None,
    ua: str | None = None,
    same_answer: int | None = None,
):
    valid = VALID if valid is None else valid
    events = []
    for i, n in enumerate(users):
        user = str(n)
        req = request(method, T0_S + i * 0.05, user=user, ua=ua or "Some UA")
        code = same_answer or valid.get(user, 404)
        events += [req, answer(req, code, T0_S + i * 0.05 + 0.01)]
    return events


def test_register_war_dialling_lists_the_valid_extensions() -> None:
    book = AlertBook()
    feed(SipEnumerationDetector(book), *war(range(100, 120)))
    (alert,) = alerts(book)
    assert (alert["kind"], alert["src_ip"], alert["dst_ip"]) == (
        "sip-enumeration",
        ATTACKER[0],
        SERVER[0],
    )
    assert alert["data"]["valid_extensions"] == ["100", "101", "105"]
    assert alert["data"]["users_tried"] == 20 and alert["data"]["not_found"] == 17
    assert alert["severity"] == "high"  # valid extensions were given away


def test_invite_and_options_war_dialling_too() -> None:
    for method in ("INVITE", "OPTIONS"):
        book = AlertBook()
        feed(SipEnumerationDetector(book), *war(range(100, 110), method=method))
        (alert,) = alerts(book)
        assert alert["data"]["methods"] == [method]


def test_below_the_user_threshold_is_nothing() -> None:
    book = AlertBook()
    feed(SipEnumerationDetector(book), *war(range(100, 109)))  # 9 users
    assert alerts(book) == []


def test_server_answering_the_same_for_everyone_gives_nothing_away() -> None:
    book = AlertBook()
    feed(SipEnumerationDetector(book), *war(range(100, 150), same_answer=401))
    assert alerts(book) == []


def test_an_office_registering_many_phones_is_not_enumeration() -> None:
    valid = {str(n): 401 for n in range(100, 140)}
    book = AlertBook()
    feed(SipEnumerationDetector(book), *war(range(100, 140), valid=valid))
    assert alerts(book) == []


def test_scanner_user_agent_alone_raises_nothing() -> None:
    book = AlertBook()
    feed(SipEnumerationDetector(book), *war(range(100, 103), ua=SCANNER_UA))
    assert alerts(book) == []


def test_state_is_bounded() -> None:
    book = AlertBook()
    config = SipEnumerationConfig(max_pairs=4, max_users_per_pair=16, max_pending_per_pair=8)
    detector = SipEnumerationDetector(book, config)
    for i in range(300):
        src = (f"203.0.113.{i % 9}", 5060)
        feed(detector, request("REGISTER", T0_S + i * 0.01, src=src, user=str(1000 + i)))
    for name, (size, cap) in detector.state_sizes().items():
        assert size <= cap, name
    assert detector.overflow > 0
