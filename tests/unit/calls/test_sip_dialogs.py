"""Call states and dialog details from hand-written SIP ladders (RFC 3261, DESIGN §3)."""

from __future__ import annotations

from typing import Any

from tests.unit.calls.sipmsg import ALICE, BOB, MS, PROXY, T0, Dialog, S, event, message, sdp, sec
from voipscope.calls.sip_dialogs import SipCallsConfig, SipCallTracker


def run(*events: Any, config: SipCallsConfig | None = None) -> list[dict[str, Any]]:
    tracker = SipCallTracker(config)
    tracker.on_messages(list(events))
    return [r.to_record() for r in tracker.finish()]


def one(*events: Any) -> dict[str, Any]:
    records = run(*events)
    assert len(records) == 1, [r["record_id"] for r in records]
    return records[0]


def basic_call(d: Dialog, bye_from_callee: bool = False) -> list[Any]:
    inv = d.invite(T0)
    ringing = d.response(180, "Ringing", inv, T0 + 100 * MS)
    ok = d.response(200, "OK", inv, T0 + 2 * S, body=sdp(BOB[0], 5000))
    ack = d.request("ACK", T0 + 2 * S + 10 * MS)
    bye = d.request("BYE", T0 + 60 * S, from_callee=bye_from_callee)
    bye_ok = d.response(200, "OK", bye, T0 + 60 * S + 20 * MS)
    return [inv, ringing, ok, ack, bye, bye_ok]


def test_answered_call_with_bye() -> None:
    d = Dialog()
    rec = one(*basic_call(d, bye_from_callee=True))
    assert rec["state"] == "answered" and rec["final_code"] == 200
    assert rec["start"] == sec(T0)
    assert rec["answer"] == sec(T0 + 2 * S)
    assert rec["ringing"] == sec(T0 + 100 * MS)
    assert rec["bye"] == sec(T0 + 60 * S)
    assert rec["end"] == sec(T0 + 60 * S + 20 * MS)  # the 200 to the BYE
    assert rec["ended_by"] == "callee"
    assert rec["caller"] == "sip:alice@example.com" and rec["caller_name"] == "Alice"
    assert rec["caller_user"] == "alice" and rec["callee_user"] == "bob"
    assert rec["caller_ip"] == ALICE[0] and rec["callee_ip"] == BOB[0]
    assert rec["request_uri"] == "sip:bob@example.com"
    assert rec["messages"]["requests"] == {"ACK": 1, "BYE": 1, "INVITE": 1}
    assert rec["messages"]["responses"] == {"180": 1, "200": 2}
    assert rec["signaling_flows"] == [1]
    offer, answer = rec["sdp"]
    assert (offer["message"], offer["role"], offer["sender_ip"]) == ("INVITE", "offer", ALICE[0])
    assert (answer["message"], answer["role"]) == ("200 INVITE", "answer")
    media = answer["media"][0]
    assert (media["ip"], media["port"], media["media"]) == (BOB[0], 5000, "audio")
    assert media["codecs"] == ["PCMU/8000", "PCMA/8000", "telephone-event/8000"]
    assert media["payload_types"] == [0, 8, 101] and media["direction"] == "sendrecv"


def test_answered_without_bye_is_ongoing_at_end_of_input() -> None:
    events = basic_call(Dialog())[:4]
    rec = one(*events)
    assert rec["state"] == "ongoing" and rec["end"] is None
    assert rec["last_message"] == sec(T0 + 2 * S + 10 * MS)


def test_answered_without_bye_handed_out_after_idle_as_answered() -> None:
    config = SipCallsConfig(answered_idle_s=600)
    tracker = SipCallTracker(config)
    tracker.on_messages(basic_call(Dialog())[:4])
    later = Dialog(call_id="other@x")
    tracker.on_messages([later.invite(T0 + 700 * S)])
    records = tracker.drain()
    assert [r.record_id for r in records] == ["call-1@10.0.0.1"]
    rec = records[0].to_record()
    assert rec["state"] == "answered" and rec["closed_by"] == "idle"
    assert rec["end"] == sec(T0 + 2 * S + 10 * MS)
    assert any("no BYE" in e for e in rec["evidence"])


def test_busy_is_failed() -> None:
    d = Dialog()
    inv = d.invite(T0)
    busy = d.response(486, "Busy Here", inv, T0 + 300 * MS)
    ack = d.request("ACK", T0 + 301 * MS, branch="z9hG4bK-1", cseq=1)  # same branch (§17.1.1.3)
    rec = one(inv, busy, ack)
    assert rec["state"] == "failed" and rec["final_code"] == 486
    assert rec["final_reason"] == "Busy Here" and rec["answer"] is None
    assert rec["end"] == sec(T0 + 301 * MS)


def test_cancel_then_487_is_cancelled() -> None:
    d = Dialog()
    inv = d.invite(T0)
    ringing = d.response(180, "Ringing", inv, T0 + 50 * MS)
    cancel = d.request("CANCEL", T0 + 5 * S, in_dialog=False, branch="z9hG4bK-1", cseq=1)
    cancel_ok = d.response(200, "OK", cancel, T0 + 5 * S + 10 * MS)
    terminated = d.response(487, "Request Terminated", inv, T0 + 5 * S + 11 * MS)
    ack = d.request("ACK", T0 + 5 * S + 12 * MS, branch="z9hG4bK-1", cseq=1)
    rec = one(inv, ringing, cancel, cancel_ok, terminated, ack)
    assert rec["state"] == "cancelled" and rec["final_code"] == 487
    assert rec["cancelled_at"] == sec(T0 + 5 * S)


def test_cancel_crossed_by_200_is_answered() -> None:
    d = Dialog()
    inv = d.invite(T0)
    cancel = d.request("CANCEL", T0 + 5 * S, in_dialog=False, branch="z9hG4bK-1", cseq=1)
    ok = d.response(200, "OK", inv, T0 + 5 * S + 1 * MS, body=sdp(BOB[0], 5000))
    rec = one(inv, cancel, ok)
    assert rec["state"] == "ongoing" and rec["answer"] is not None
    assert any("crossed the CANCEL" in e for e in rec["evidence"])


def test_unanswered_at_end_and_after_timeout() -> None:
    d = Dialog()
    inv = d.invite(T0)
    trying = d.response(100, "Trying", inv, T0 + 10 * MS)
    rec = one(inv, trying)
    assert rec["state"] == "unanswered" and rec["final_code"] is None
    assert rec["closed_by"] == "end-of-input"
    tracker = SipCallTracker(SipCallsConfig(pending_idle_s=60))
    tracker.on_messages([inv, trying])
    tracker.on_messages([Dialog(call_id="later").invite(T0 + 61 * S)])
    out = tracker.drain()
    assert [(r.record_id, r.state, r.closed_by) for r in out] == [
        ("call-1@10.0.0.1", "unanswered", "idle")
    ]


def test_retransmissions_are_not_double_counted() -> None:
    d = Dialog()
    inv = d.invite(T0)
    again = d.invite(T0 + 500 * MS, branch="z9hG4bK-1")  # Timer A retransmission
    trying = d.response(100, "Trying", inv, T0 + 600 * MS)
    busy = d.response(486, "Busy Here", inv, T0 + 700 * MS)
    busy_again = d.response(486, "Busy Here", inv, T0 + 1200 * MS)
    rec = one(inv, again, trying, busy, busy_again)
    counts = rec["messages"]
    assert counts["packets"] == 5 and counts["requests"] == {"INVITE": 1}
    assert counts["repeated_requests"] == {"INVITE": 1} and counts["repeated_responses"] == 1
    assert counts["responses"] == {"100": 1, "486": 1} and counts["retransmissions"] == 2
    assert len(rec["sdp"]) == 1  # the retransmitted offer is the same offer


def test_copy_on_another_hop_is_a_repeat_not_a_retransmission() -> None:
    d = Dialog()
    inv = d.invite(T0)
    copy = event(message_of(inv), T0 + 1 * MS, PROXY, BOB)  # seen again behind a NAT
    rec = one(inv, copy)
    assert rec["messages"]["repeated_requests"] == {"INVITE": 1}
    assert rec["messages"]["retransmissions"] == 0


def message_of(ev: Any) -> bytes:
    msg = ev.message
    start = f"{msg.method} {msg.request_uri} SIP/2.0"
    return message(start, [(k, v) for k, v in msg.headers if k != "content-length"], msg.body)


def test_auth_challenge_and_retry_is_one_call() -> None:
    d = Dialog()
    inv = d.invite(T0)
    challenge = d.response(
        407, "Proxy Authentication Required", inv, T0 + 100 * MS,
        headers=[("Proxy-Authenticate", 'Digest realm="example.com", nonce="n"')],
    )  # fmt: skip
    ack = d.request("ACK", T0 + 101 * MS, branch="z9hG4bK-1", cseq=1)
    retry = d.invite(
        T0 + 20 * S, cseq=2, headers=[("Proxy-Authorization", 'Digest username="alice"')]
    )
    forbidden = d.response(403, "Forbidden", retry, T0 + 20 * S + 100 * MS)
    rec = one(inv, challenge, ack, retry, forbidden)
    assert rec["state"] == "failed" and rec["final_code"] == 403
    assert rec["auth_challenges"] == 1
    assert rec["messages"]["requests"] == {"ACK": 1, "INVITE": 2}


def test_redirect_followed_with_a_new_call_id_is_linked() -> None:
    first = Dialog()
    inv = first.invite(T0)
    moved = first.response(
        302, "Moved Temporarily", inv, T0 + 50 * MS,
        headers=[("Contact", "<sip:bob@mobile.example.net;transport=udp>")],
    )  # fmt: skip
    ack = first.request("ACK", T0 + 51 * MS, branch="z9hG4bK-1", cseq=1)
    second = Dialog(call_id="call-2@10.0.0.1", to_uri="sip:bob@example.com", callee=PROXY)
    inv2 = second.invite(T0 + 80 * MS, uri="sip:bob@mobile.example.net")
    ok2 = second.response(200, "OK", inv2, T0 + 3 * S)
    records = {r["record_id"]: r for r in run(inv, moved, ack, inv2, ok2)}
    one_, two = records["call-1@10.0.0.1"], records["call-2@10.0.0.1"]
    assert one_["state"] == "redirected" and one_["final_code"] == 302
    assert one_["redirected_to"] == ["sip:bob@mobile.example.net;transport=udp"]
    assert two["forwarded_from"] == "call-1@10.0.0.1"
    assert one_["related_calls"][0]["relation"] == "redirected-to"
    assert two["related_calls"][0]["relation"] == "redirected-from"
    assert "0.030 s after the 302" in two["related_calls"][0]["evidence"]
    assert two["state"] == "ongoing"


def test_redirect_followed_on_the_same_call_id_is_a_second_record() -> None:
    d = Dialog()
    inv = d.invite(T0)
    moved = d.response(
        302, "Moved", inv, T0 + 50 * MS, headers=[("Contact", "<sip:carol@example.com>")]
    )
    again = d.invite(T0 + 90 * MS, cseq=2, uri="sip:carol@example.com")
    ok = d.response(200, "OK", again, T0 + 2 * S)
    first, second = run(inv, moved, again, ok)
    assert (first["record_id"], first["state"]) == ("call-1@10.0.0.1", "redirected")
    assert (second["record_id"], second["state"]) == ("call-1@10.0.0.1#2", "ongoing")
    assert second["forwarded_from"] == "call-1@10.0.0.1"
    assert "same Call-ID" in second["related_calls"][0]["evidence"]
    assert second["start"] == sec(T0 + 90 * MS)


def test_181_and_diversion_link_a_forwarded_call() -> None:
    first = Dialog()
    inv = first.invite(T0)
    forwarding = first.response(181, "Call Is Being Forwarded", inv, T0 + 20 * S)
    leg = Dialog(
        call_id="pbx-leg@10.0.0.9",
        caller=PROXY,
        to_uri="sip:carol@example.com",
        extra=[("Diversion", "<sip:bob@example.com>;reason=no-answer;counter=1")],
    )
    inv2 = leg.invite(T0 + 20 * S + 5 * MS)
    records = {r["record_id"]: r for r in run(inv, forwarding, inv2)}
    one_, two = records["call-1@10.0.0.1"], records["pbx-leg@10.0.0.9"]
    assert one_["forwarded"] is True
    assert any("181 Call Is Being Forwarded" in e for e in one_["evidence"])
    assert two["diversion"] == [{"uri": "sip:bob@example.com", "reason": "no-answer"}]
    assert two["forwarded_from"] == "call-1@10.0.0.1"
    assert one_["related_calls"][0]["relation"] == "forwarded-to"


def test_history_info_is_recorded() -> None:
    d = Dialog(
        extra=[
            ("History-Info", "<sip:bob@example.com?Reason=SIP%3Bcause%3D302>;index=1,"
             " <sip:carol@example.com>;index=1.1")
        ]
    )  # fmt: skip
    rec = one(d.invite(T0))
    assert rec["history_info"] == [
        {"uri": "sip:bob@example.com", "cause": "302"},
        {"uri": "sip:carol@example.com", "cause": None},
    ]


def test_forked_early_dialogs_and_answers() -> None:
    d = Dialog()
    inv = d.invite(T0)
    r1 = d.response(180, "Ringing", inv, T0 + 10 * MS, to_tag="a")
    r2 = d.response(180, "Ringing", inv, T0 + 11 * MS, to_tag="b")
    ok1 = d.response(200, "OK", inv, T0 + 2 * S, to_tag="a")
    ok2 = d.response(200, "OK", inv, T0 + 2 * S + 1 * MS, to_tag="b")
    rec = one(inv, r1, r2, ok1, ok2)
    assert rec["early_dialogs"] == 2 and rec["answered_by_dialogs"] == 2
    assert rec["answer"] == sec(T0 + 2 * S)
    assert any("forked" in e for e in rec["evidence"])


def test_late_offer_roles() -> None:
    d = Dialog()
    inv = d.invite(T0, body=b"")
    ok = d.response(200, "OK", inv, T0 + S, body=sdp(BOB[0], 5000))
    ack = d.request("ACK", T0 + S + MS, body=sdp(ALICE[0], 4000))
    rec = one(inv, ok, ack)
    assert [(s["message"], s["role"]) for s in rec["sdp"]] == [
        ("200 INVITE", "offer"),
        ("ACK", "answer"),
    ]


def test_reinvite_hold_and_refusal_keep_the_call_answered() -> None:
    d = Dialog()
    events = basic_call(d)[:4]
    hold = d.request("INVITE", T0 + 10 * S, body=sdp(ALICE[0], 4000, direction="sendonly"))
    refused = d.response(488, "Not Acceptable Here", hold, T0 + 10 * S + 5 * MS)
    rec = one(*events, hold, refused)
    assert rec["state"] == "ongoing" and rec["final_code"] == 200
    assert rec["sdp"][-1]["message"] == "re-INVITE" and rec["sdp"][-1]["hold"] is True
    assert any("puts the other side on hold" in e for e in rec["evidence"])
    assert any("re-INVITE (CSeq 3) refused: 488" in e for e in rec["evidence"])


def test_dtmf_from_info_both_body_forms() -> None:
    d = Dialog()
    events = basic_call(d)[:4]
    relay = d.request(
        "INFO", T0 + 5 * S,
        headers=[("Content-Type", "application/dtmf-relay")], body=b"Signal=5\r\nDuration=160\r\n",
    )  # fmt: skip
    plain = d.request("INFO", T0 + 6 * S, headers=[("Content-Type", "application/dtmf")], body=b"#")
    numeric = d.request(
        "INFO", T0 + 7 * S,
        headers=[("Content-Type", "application/dtmf-relay")], body=b"Signal=11\r\n",
    )  # fmt: skip
    again = event(message_of(relay), T0 + 5 * S + 500 * MS, relay.sender, relay.receiver)
    rec = one(*events, relay, again, plain, numeric)
    assert [(x["digit"], x["duration_ms"]) for x in rec["dtmf"]] == [
        ("5", 160),
        ("#", None),
        ("#", None),
    ]
    assert rec["dtmf"][0]["ts"] == sec(T0 + 5 * S)


def test_refer_transfer_and_its_outcome() -> None:
    d = Dialog()
    events = basic_call(d)[:4]
    refer = d.request(
        "REFER", T0 + 5 * S,
        headers=[("Refer-To", "<sip:carol@example.com>"),
                 ("Referred-By", "<sip:alice@example.com>")],
    )  # fmt: skip
    accepted = d.response(202, "Accepted", refer, T0 + 5 * S + 5 * MS)
    notify = d.request(
        "NOTIFY", T0 + 8 * S, from_callee=True,
        headers=[("Event", "refer"), ("Content-Type", "message/sipfrag")], body=b"SIP/2.0 200 OK",
    )  # fmt: skip
    rec = one(*events, refer, accepted, notify)
    (transfer,) = rec["transfers"]
    assert transfer["refer_to"] == "sip:carol@example.com"
    assert transfer["referred_by"] == "sip:alice@example.com"
    assert transfer["response_code"] == 202 and transfer["outcome_code"] == 200
    assert transfer["attended"] is False
    assert rec["messages"]["requests"]["REFER"] == 1


def test_capture_starting_with_bye_is_a_partial_answered_call() -> None:
    d = Dialog()
    bye = d.request("BYE", T0)
    ok = d.response(200, "OK", bye, T0 + 10 * MS)
    rec = one(bye, ok)
    assert rec["state"] == "answered" and rec["partial"] is True
    assert rec["answer"] is None and rec["end"] == sec(T0 + 10 * MS)


def test_out_of_dialog_options_is_its_own_record() -> None:
    d = Dialog(call_id="ping@10.0.0.1")
    ping = d.request("OPTIONS", T0, in_dialog=False)
    ok = d.response(200, "OK", ping, T0 + 5 * MS)
    rec = one(ping, ok)
    assert rec["kind"] == "options" and rec["state"] == "answered" and rec["final_code"] == 200
    assert run(ping, ok, config=SipCallsConfig(out_of_dialog_records=False)) == []


def test_open_dialogs_are_capped() -> None:
    tracker = SipCallTracker(SipCallsConfig(max_open_dialogs=10))
    invites = [Dialog(call_id=f"c{i}").invite(T0 + i * MS) for i in range(25)]
    tracker.on_messages(invites)
    assert tracker.open_dialogs <= 10
    assert tracker.anomalies.counts["sip_dialog_table_full"] == 15
    early = tracker.drain()
    assert [r.record_id for r in early] == [f"c{i}" for i in range(15)]
    assert all(r.closed_by == "table-full" for r in early)
    assert len(tracker.finish()) == 10


def test_finished_calls_are_handed_out_after_linger_in_start_order() -> None:
    tracker = SipCallTracker(SipCallsConfig(finished_linger_s=32))
    tracker.on_messages(basic_call(Dialog(call_id="b")) + basic_call(Dialog(call_id="a")))
    assert tracker.drain() == []
    tracker.on_messages([Dialog(call_id="z").invite(T0 + 100 * S)])
    assert [r.record_id for r in tracker.drain()] == ["a", "b"]
    assert tracker.open_dialogs == 1


def test_message_without_call_id_is_an_anomaly() -> None:
    data = message("OPTIONS sip:x SIP/2.0", [("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")])
    tracker = SipCallTracker()
    tracker.on_messages([event(data, T0, ALICE, BOB)])
    assert tracker.anomalies.counts["sip_message_without_call_id"] == 1
    assert tracker.finish() == []


def test_b2bua_legs_are_related() -> None:
    leg_a = Dialog(call_id="a-leg")
    leg_b = Dialog(call_id="b-leg", caller=PROXY)
    records = run(leg_a.invite(T0), leg_b.invite(T0 + 6 * MS))
    assert [r["related_calls"][0]["relation"] for r in records] == ["b2bua-leg", "b2bua-leg"]
    assert "6.0 ms apart" in records[0]["related_calls"][0]["evidence"]
