"""MGCP call tracker, from messages in the style of RFC 3435 Appendix E (residential
gateway to residential gateway)."""

from __future__ import annotations

import pytest

from voipscope.calls.mgcp_calls import MgcpCallTracker
from voipscope.dissect.base import UDP, MessageEvent
from voipscope.dissect.mgcp import parse_mgcp, parse_mgcp_all
from voipscope.errors import DecodeError

CA = ("10.0.0.9", 2727)
GW1 = ("10.0.0.1", 2427)
GW2 = ("10.0.0.2", 2427)
S = 1_000_000_000
T0 = 1_700_000_000 * S
SDP1 = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 3456 RTP/AVP 0\r\n"
SDP2 = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 1296 RTP/AVP 0\r\n"


def ev(ts: int, sender: tuple[str, int], receiver: tuple[str, int], text: str) -> MessageEvent:
    msg = parse_mgcp(text.replace("\n", "\r\n").encode())
    return MessageEvent("MGCP", T0 + ts, 1, UDP, sender, receiver, msg)


def run(*events: MessageEvent) -> list[dict[str, object]]:
    tracker = MgcpCallTracker()
    tracker.on_messages(list(events))
    return tracker.finish()


SETUP = [
    ev(0, GW1, CA, "NTFY 2001 aaln/1@rgw1 MGCP 1.0\nX: 0123\nO: L/hd\n"),
    ev(1, CA, GW1, "200 2001 OK\n"),
    ev(3 * S, GW1, CA, "NTFY 2002 aaln/1@rgw1 MGCP 1.0\nX: 0124\nO: D/5551234\n"),
    ev(
        4 * S,
        CA,
        GW1,
        "CRCX 1204 aaln/1@rgw1 MGCP 1.0\nC: A3C47F21456789F0\nL: p:10, a:PCMU\nM: recvonly\n",
    ),
    ev(4 * S + 5, GW1, CA, f"200 1204 OK\nI: FDE234C8\n\n{SDP1}"),
    ev(
        5 * S,
        CA,
        GW2,
        f"CRCX 1205 aaln/1@rgw2 MGCP 1.0\nC: A3C47F21456789F0\nM: sendrecv\n\n{SDP1}",
    ),
    ev(5 * S + 5, GW2, CA, f"200 1205 OK\nI: 32F345E2\n\n{SDP2}"),
]


def test_answered_call():
    (call,) = run(
        *SETUP,
        ev(9 * S, GW2, CA, "NTFY 2005 aaln/1@rgw2 MGCP 1.0\nX: 0125\nO: L/hd\n"),
        ev(
            9 * S + 1,
            CA,
            GW1,
            "MDCX 1206 aaln/1@rgw1 MGCP 1.0\nC: A3C47F21456789F0\nI: FDE234C8\nM: sendrecv\n",
        ),
        ev(69 * S, CA, GW1, "DLCX 1210 aaln/1@rgw1 MGCP 1.0\nC: A3C47F21456789F0\n"),
        ev(69 * S + 1, GW1, CA, "250 1210 OK\n"),
    )
    assert call["call_id"] == "a3c47f21456789f0" and call["state"] == "answered"
    assert call["start"] == pytest.approx(T0 / 1e9)  # the caller's off-hook
    assert call["caller"] == "aaln/1@rgw1" and call["callee"] == "5551234"
    assert call["answer"] == pytest.approx((T0 + 9 * S) / 1e9)
    assert call["duration_s"] == 60.0 and call["final_code"] == 250
    assert {(m["ip"], m["port"]) for m in call["media_endpoints"]} == {
        ("10.0.0.1", 3456),
        ("10.0.0.2", 1296),
    }


def test_refused_connection_fails_and_caller_onhook_cancels():
    (refused,) = run(
        ev(0, CA, GW1, "CRCX 1 aaln/1@rgw1 MGCP 1.0\nC: 1\nM: recvonly\n"),
        ev(1, GW1, CA, "502 1 Insufficient resources\n"),
    )
    assert refused["state"] == "failed" and refused["final_code"] == 502
    (given_up,) = run(
        *SETUP,
        ev(7 * S, GW1, CA, "NTFY 2006 aaln/1@rgw1 MGCP 1.0\nX: 0126\nO: L/hu\n"),
        ev(7 * S + 1, CA, GW1, "DLCX 1211 aaln/1@rgw1 MGCP 1.0\nC: A3C47F21456789F0\n"),
    )
    assert given_up["state"] == "cancelled"


def test_connection_without_answer_or_end_is_unanswered():
    (call,) = run(*SETUP)
    assert call["state"] == "unanswered" and call["end"] is None


def test_no_connection_commands_no_call():
    # mgcp.pcap's kind of traffic: restarts, notification requests, audits.
    assert (
        run(
            ev(0, GW1, CA, "RSIP 1 *@rgw1 MGCP 1.0\nRM: restart\n"),
            ev(1, CA, GW1, "RQNT 2 aaln/1@rgw1 MGCP 1.0\nX: 2\nR: L/hd\n"),
        )
        == []
    )


def test_piggybacked_and_bare_cr():
    both = parse_mgcp_all(b"200 1 OK\n.\nRQNT 2 aaln/1@gw MGCP 1.0\nX: 1\n")
    assert [m.name for m in both] == ["200", "RQNT"]
    (bare,) = parse_mgcp_all(b"RQNT 1 *@gw MGCP 0.1\rR: l/hd(n)\rX: 1\r")
    assert bare.parameter("R") == "l/hd(n)"
    with pytest.raises(DecodeError):
        parse_mgcp_all(b"\n.\n")
