"""REGISTER attempts as records (RFC 3261 §10, digest challenges §22)."""

from __future__ import annotations

from typing import Any

from tests.unit.calls.sipmsg import MS, PROXY, T0, S, register, reply, sec
from voipscope.calls.sip_dialogs import SipCallsConfig, SipCallTracker

CHALLENGE = [("WWW-Authenticate", 'Digest realm="example.com", nonce="n1", algorithm=MD5')]


def run(*events: Any, config: SipCallsConfig | None = None) -> list[dict[str, Any]]:
    tracker = SipCallTracker(config)
    tracker.on_messages(list(events))
    return [r.to_record() for r in tracker.finish()]


def test_challenge_then_success_is_one_registered_attempt() -> None:
    first = register(T0, 1)
    challenge = reply(first, 401, "Unauthorized", T0 + 20 * MS, CHALLENGE)
    second = register(T0 + 40 * MS, 2, username="alice")
    ok = reply(second, 200, "OK", T0 + 60 * MS, [("Contact", "<sip:alice@10.0.0.1>;expires=600")])
    (rec,) = run(first, challenge, second, ok)
    assert rec["kind"] == "registration" and rec["protocol"] == "SIP"
    assert rec["record_id"] == "reg-1@10.0.0.1#registration1"
    assert rec["state"] == "answered" and rec["result"] == "registered"
    assert rec["final_code"] == 200 and rec["challenges"] == 1
    assert rec["user"] == "sip:alice@example.com" and rec["registrar"] == "sip:example.com"
    assert rec["registrar_ip"] == PROXY[0] and rec["realm"] == "example.com"
    assert rec["auth_usernames"] == ["alice"] and rec["credentials_sent"] == 1
    assert rec["credentials_rejected"] == 0
    assert rec["expires_s"] == 600  # what the registrar granted, not the 3600 asked for
    assert rec["start"] == sec(T0) and rec["end"] == sec(T0 + 60 * MS)


def test_wrong_password_then_new_attempt() -> None:
    a1 = register(T0, 1)
    c1 = reply(a1, 401, "Unauthorized", T0 + 20 * MS, CHALLENGE)
    a2 = register(T0 + 40 * MS, 2, username="alice")
    c2 = reply(a2, 401, "Unauthorized", T0 + 60 * MS, CHALLENGE)  # credentials refused
    b1 = register(T0 + 10 * S, 3)  # no credentials: the UA starts over
    f1 = reply(b1, 403, "Forbidden", T0 + 10 * S + 20 * MS)
    first, second = run(a1, c1, a2, c2, b1, f1)
    assert (first["state"], first["result"], first["final_code"]) == ("failed", "challenged", 401)
    assert first["challenges"] == 2 and first["credentials_rejected"] == 1
    assert (second["state"], second["result"], second["final_code"]) == (
        "failed",
        "forbidden",
        403,
    )
    assert second["record_id"].endswith("#registration2")


def test_unregister_and_no_response() -> None:
    bye = register(T0, 1, expires=0)
    ok = reply(bye, 200, "OK", T0 + 10 * MS)
    lost = register(T0 + 5 * S, 2, call_id="reg-2")
    unreg, unanswered = run(bye, ok, lost)
    assert unreg["result"] == "unregistered" and unreg["expires_s"] == 0
    assert unanswered["state"] == "unanswered" and unanswered["result"] == "no-response"


def test_challenged_attempt_waits_for_the_retry_then_is_handed_out() -> None:
    tracker = SipCallTracker(SipCallsConfig(auth_retry_gap_s=60))
    first = register(T0, 1)
    tracker.on_messages([first, reply(first, 401, "Unauthorized", T0 + 20 * MS, CHALLENGE)])
    tracker.on_messages([register(T0 + 30 * S, 1, call_id="other")])
    assert tracker.drain() == []
    tracker.on_messages([register(T0 + 61 * S, 1, call_id="third")])
    (out,) = tracker.drain()
    assert out.record_id == "reg-1@10.0.0.1#registration1" and out.closed_by == "idle"


def test_many_failed_attempts_on_one_call_id_stay_separate_records() -> None:
    """A password guesser reusing one Call-ID: each guess is answered 403, each is an
    attempt of its own with its own user name (what a brute-force detector counts)."""
    events = []
    for i in range(20):
        guess = register(T0 + i * S, i + 1, username=f"user{i}")
        events += [guess, reply(guess, 403, "Forbidden", T0 + i * S + 5 * MS)]
    records = run(*events)
    assert len(records) == 20
    assert [r["auth_usernames"] for r in records] == [[f"user{i}"] for i in range(20)]
    assert all(r["credentials_rejected"] == 1 for r in records)
