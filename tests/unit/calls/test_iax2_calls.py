"""IAX2 call tracker (RFC 5456 §6.2) and the full-frame parser, from hand-built frames."""

from __future__ import annotations

import numpy as np
import pytest

from voipscope.calls.iax2_calls import Iax2CallTracker
from voipscope.dissect.base import UDP, MessageEvent
from voipscope.dissect.iax2 import parse_iax2_message
from voipscope.errors import DecodeError, Malformed, Truncated
from voipscope.flows import kernels as K

A = ("10.0.0.1", 4569)
B = ("10.0.0.2", 4569)
S = 1_000_000_000
T0 = 1_700_000_000 * S
IAX, CONTROL = 6, 4
NEW, HANGUP, REJECT, ACCEPT, ACK = 0x01, 0x05, 0x06, 0x07, 0x04
RINGING, ANSWER = 0x03, 0x04


def frame(src: int, dst: int, ftype: int, subclass: int, ies: bytes = b"") -> bytes:
    return (
        (0x8000 | src).to_bytes(2, "big")
        + dst.to_bytes(2, "big")
        + (0).to_bytes(4, "big")
        + bytes([0, 0, ftype, subclass])
        + ies
    )


def ie(kind: int, value: bytes) -> bytes:
    return bytes([kind, len(value)]) + value


def ev(ts: int, data: bytes, from_a: bool) -> MessageEvent:
    sender, receiver = (A, B) if from_a else (B, A)
    return MessageEvent("IAX2", T0 + ts, 1, UDP, sender, receiver, parse_iax2_message(data))


def run(*events: MessageEvent) -> list[dict[str, object]]:
    tracker = Iax2CallTracker()
    tracker.on_messages(list(events))
    return tracker.finish()


NEW_FRAME = frame(4, 0, IAX, NEW, ie(1, b"5551234") + ie(2, b"100") + ie(4, b"Alice"))


def test_answered_and_hung_up():
    (call,) = run(
        ev(0, NEW_FRAME, True),
        ev(1, frame(23, 4, IAX, ACK), False),
        ev(2, frame(23, 4, IAX, ACCEPT), False),
        ev(3, frame(23, 4, CONTROL, RINGING), False),
        ev(2 * S, frame(23, 4, CONTROL, ANSWER), False),
        ev(62 * S, frame(4, 23, IAX, HANGUP, ie(0x2A, b"\x10")), True),
    )
    assert (call["caller"], call["callee"], call["request_uri"]) == ("100", "5551234", "5551234")
    assert call["state"] == "answered" and call["final_code"] == 16
    assert call["duration_s"] == 60.0
    assert call["messages"] == "NEW:1 ACK:1 ACCEPT:1 RINGING:1 ANSWER:1 HANGUP:1"


def test_reject_is_failed_and_caller_hangup_is_cancelled():
    (rejected,) = run(
        ev(0, NEW_FRAME, True),
        ev(S, frame(23, 4, IAX, REJECT, ie(0x16, b"No such context") + ie(0x2A, b"\x03")), False),
    )
    assert rejected["state"] == "failed" and rejected["final_code"] == 3
    assert any("No such context" in e for e in rejected["evidence"])
    (given_up,) = run(
        ev(0, NEW_FRAME, True),
        ev(1, frame(23, 4, IAX, ACCEPT), False),
        ev(S, frame(4, 23, IAX, HANGUP), True),
    )
    assert given_up["state"] == "cancelled"


def test_no_hangup_takes_flow_end_and_packets():
    tracker = Iax2CallTracker()
    tracker.on_messages([ev(0, NEW_FRAME, True), ev(S, frame(23, 4, CONTROL, ANSWER), False)])
    row = np.zeros(K.F_FIRST_PACKET + 1, np.int64)
    row[K.F_ID], row[K.F_LAST_NS], row[K.F_PKTS_FWD], row[K.F_PKTS_REV] = 1, T0 + 9 * S, 30, 20
    tracker.on_expire(row[None, :])
    (call,) = tracker.finish()
    assert call["state"] == "ongoing" and call["packets"] == 50
    assert call["last_message"] == pytest.approx((T0 + 9 * S) / 1e9)


def test_frames_of_other_calls_and_pings_are_ignored():
    assert run(ev(0, frame(5, 0, IAX, 0x02), True)) == []  # PING
    calls = run(ev(0, NEW_FRAME, True), ev(1, frame(99, 77, IAX, HANGUP), False))
    assert calls[0]["state"] == "unanswered"


def test_parser_errors():
    with pytest.raises(Truncated):
        parse_iax2_message(frame(4, 0, IAX, NEW, b"\x01\x05ab"))
    with pytest.raises(Truncated):
        parse_iax2_message(frame(4, 0, IAX, NEW, b"\x01"))
    with pytest.raises(Malformed):
        parse_iax2_message(b"\x00\x05\x00\x10")  # a mini frame
    with pytest.raises(DecodeError):
        parse_iax2_message(frame(4, 0, IAX, NEW, b"\x20\x00" * 65))
