"""The (source, server) pair table the pair detectors share, and the scanner rule."""

from dataclasses import dataclass

from tests.unit.detect.sipevents import ATTACKER, SCANNER_UA, SERVER, T0_S, answer, facts, request
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.scanner_agents import first_scanner_tool, name_scanner
from voipscope.detect.sip_pairs import MAX_AGENTS, SipPair, SipPairs


@dataclass(slots=True, kw_only=True)
class _Counted(SipPair):
    requests: int = 0


def test_a_response_finds_the_pair_of_its_request() -> None:
    pairs: SipPairs[_Counted] = SipPairs(4, _Counted, gap_s=300)
    req = request("OPTIONS", T0_S + 1, ua=SCANNER_UA)
    pair = pairs.of_request(facts(req))
    pair.requests += 1
    pairs.of_request(facts(request("INVITE", T0_S + 2, ua="other")))
    assert pairs.of_response(facts(answer(req, 404, T0_S + 3))) is pair
    assert pairs.of_response(facts(req)) is None  # the other direction is another pair
    assert (pair.first_ts, pair.methods, pair.agents) == (
        T0_S + 1,
        ["OPTIONS", "INVITE"],
        [SCANNER_UA, "other"],
    )
    assert pairs.largest(lambda p: p.requests) == 1 and len(pairs) == 1


def test_pairs_and_quoted_agents_are_capped() -> None:
    pairs: SipPairs[_Counted] = SipPairs(2, _Counted, gap_s=300)
    for i in range(3):
        pairs.of_request(facts(request("OPTIONS", T0_S, src=(f"10.0.0.{i}", 5060))))
    assert (len(pairs), pairs.overflow) == (2, 1)
    pair = pairs.of_request(facts(request("OPTIONS", T0_S)))
    for i in range(MAX_AGENTS + 2):
        pair.note_request(facts(request("OPTIONS", T0_S + i, ua=f"agent {i}")))
    assert len(pair.agents) == MAX_AGENTS and pair.first_ts == T0_S


def test_open_alert_is_the_pairs_alert_until_the_book_hands_it_out() -> None:
    book, pair = AlertBook(quiet_s=10), SipPair()
    assert pair.open_alert(book, T0_S) is None
    pair.alert = book.raise_alert(Alert(T0_S, "k", "low", ATTACKER[0], SERVER[0], "s"))
    assert pair.open_alert(book, T0_S + 5) is pair.alert
    book.ready(T0_S + 60)
    assert pair.open_alert(book, T0_S + 60) is None


def test_open_alert_is_closed_at_evidence_after_a_quiet_gap() -> None:
    """Without a sweep of the book in between (one batch of packets), evidence more than
    quiet_s after the alert's last finds it closed, and the book hands it out as it was."""
    book, pair = AlertBook(quiet_s=10), SipPair()
    pair.alert = book.raise_alert(Alert(T0_S, "k", "low", ATTACKER[0], SERVER[0], "s"))
    assert pair.open_alert(book, T0_S + 10) is pair.alert  # 10 s: not more than quiet_s
    assert pair.open_alert(book, T0_S + 10.5) is None
    assert book.ready(T0_S + 10.5) == [pair.alert] and book.open_alerts() == []


def test_a_request_after_a_quiet_gap_starts_the_pair_afresh() -> None:
    pairs: SipPairs[_Counted] = SipPairs(4, _Counted, gap_s=300)
    pair = pairs.of_request(facts(request("OPTIONS", T0_S, ua=SCANNER_UA)))
    pair.requests = 7
    assert pairs.of_request(facts(request("INVITE", T0_S + 300))) is pair  # not more
    again = pairs.of_request(facts(request("REGISTER", T0_S + 601, ua="other")))
    assert again is not pair and again.requests == 0
    assert (again.first_ts, again.methods, again.agents) == (T0_S + 601, ["REGISTER"], ["other"])
    assert len(pairs) == 1 and pairs.overflow == 0


def test_a_scanner_named_in_a_user_agent_adds_a_step_and_a_line() -> None:
    assert first_scanner_tool(["Yealink", SCANNER_UA, "sipsak 0.9"]) is not None
    assert first_scanner_tool(["Yealink"]) is None
    alert = Alert(T0_S, "k", "medium", None, None, "s", evidence=["e"])
    name_scanner(alert, None)
    assert (alert.severity, alert.evidence) == ("medium", ["e"])
    name_scanner(alert, "SIPVicious")
    assert (alert.severity, alert.evidence[-1]) == (
        "high",
        "User-Agent names a scanner: SIPVicious",
    )
