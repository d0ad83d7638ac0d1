"""SCCP (Skinny) call tracker and call-message parser, from hand-built messages in the
layouts Wireshark's packet-skinny.c reads (no shared capture has a Skinny call)."""

from __future__ import annotations

import pytest

from voipscope.calls.sccp_calls import SccpCallTracker
from voipscope.dissect.base import TCP, MessageEvent
from voipscope.dissect.skinny import (
    CALL_INFO,
    CALL_STATE,
    OPEN_RECEIVE_CHANNEL_ACK,
    START_MEDIA_TRANSMISSION,
    parse_sccp_call_message,
    parse_skinny,
)
from voipscope.errors import DecodeError, Truncated, Unsupported

CM = ("10.0.0.9", 2000)
PHONE = ("10.0.0.5", 50000)
S = 1_000_000_000
T0 = 1_700_000_000 * S
REF = 0x01000123


def skinny(mid: int, data: bytes, version: int = 0) -> bytes:
    return (
        (len(data) + 4).to_bytes(4, "little")
        + version.to_bytes(4, "little")
        + (mid.to_bytes(4, "little") + data)
    )


def u32(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "little") for v in values)


def text(value: str, size: int) -> bytes:
    return value.encode().ljust(size, b"\x00")


def state(s: int, ref: int = REF) -> bytes:
    return skinny(CALL_STATE, u32(s, 1, ref))


def call_info(calling: str, called: str, ref: int = REF) -> bytes:
    return skinny(
        CALL_INFO,
        text("Alice", 40) + text(calling, 24) + text("Bob", 40) + text(called, 24) + u32(1, ref),
    )


def ev(ts: int, data: bytes, from_phone: bool = False) -> MessageEvent:
    (message,) = parse_skinny(data)
    sender, receiver = (PHONE, CM) if from_phone else (CM, PHONE)
    return MessageEvent("SCCP", T0 + ts, 1, TCP, sender, receiver, parse_sccp_call_message(message))


def run(*events: MessageEvent) -> list[dict[str, object]]:
    tracker = SccpCallTracker()
    tracker.on_messages(list(events))
    return tracker.finish()


def test_outgoing_call_answered_with_media():
    orc_ack = skinny(OPEN_RECEIVE_CHANNEL_ACK, u32(0) + bytes([10, 0, 0, 5]) + u32(24580, 77))
    smt = skinny(START_MEDIA_TRANSMISSION, u32(REF, 77) + bytes([10, 0, 0, 6]) + u32(16384, 20))
    (call,) = run(
        ev(0, state(1)),  # OffHook
        ev(2 * S, state(12)),  # Proceed
        ev(2 * S + 1, call_info("1001", "1002")),
        ev(3 * S, state(3)),  # RingOut
        ev(8 * S, state(5)),  # Connected
        ev(8 * S + 1, orc_ack, from_phone=True),
        ev(8 * S + 2, smt),
        ev(68 * S, state(2)),  # OnHook
    )
    assert (call["caller"], call["callee"]) == ("1001", "1002")
    assert call["state"] == "answered" and call["duration_s"] == 60.0
    assert [(m["ip"], m["port"]) for m in call["media_endpoints"]] == [
        ("10.0.0.5", 24580),
        ("10.0.0.6", 16384),
    ]
    assert "CallState Connected:1" in call["messages"]


def test_busy_fails_and_unanswered_ring_in_is_cancelled():
    (busy,) = run(ev(0, state(1)), ev(S, state(12)), ev(2 * S, state(6)), ev(3 * S, state(2)))
    assert busy["state"] == "failed"
    (missed,) = run(ev(0, state(4)), ev(0, call_info("1002", "1001")), ev(9 * S, state(2)))
    assert missed["state"] == "cancelled"
    assert any("called party" in e for e in missed["evidence"])


def test_off_hook_and_on_hook_alone_is_no_call():
    assert run(ev(0, state(1)), ev(S, state(2))) == []


def test_v17_address_and_errors():
    ack = skinny(OPEN_RECEIVE_CHANNEL_ACK, u32(0, 0) + bytes([10, 0, 0, 7]) + bytes(12)
                 + u32(30000, 5, REF), version=0x12)  # fmt: skip
    msg = parse_sccp_call_message(parse_skinny(ack)[0])
    assert (msg.ip, msg.port, msg.call_reference) == ("10.0.0.7", 30000, REF)
    with pytest.raises(Truncated):
        parse_sccp_call_message(parse_skinny(skinny(CALL_INFO, text("x", 50)))[0])
    with pytest.raises(Unsupported):
        parse_sccp_call_message(parse_skinny(skinny(0x0100, b""))[0])
    with pytest.raises(DecodeError):
        parse_sccp_call_message(parse_skinny(skinny(CALL_STATE, u32(1)))[0])
