"""H.323, MGCP, IAX2 and SCCP trackers hand out final calls during the run (``drain``)
with at most ``calls.max_open_calls`` held (tracked_calls.CallBook), from hand-built
message streams of many calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from voipscope.calls.h323_calls import H323CallTracker
from voipscope.calls.iax2_calls import Iax2CallTracker
from voipscope.calls.mgcp_calls import MgcpCallTracker
from voipscope.calls.sccp_calls import SccpCallTracker
from voipscope.calls.tracked_calls import CallLimits
from voipscope.dissect.base import TCP, UDP, MessageEvent
from voipscope.dissect.h225 import H323Message
from voipscope.dissect.iax2 import parse_iax2_message
from voipscope.dissect.mgcp import parse_mgcp
from voipscope.dissect.skinny import CALL_STATE, parse_sccp_call_message, parse_skinny
from voipscope.flows import kernels as K

S = 1_000_000_000
T0 = 1_700_000_000 * S
CALLS = 40
GAP_S = 10  # a call starts every 10 s and lasts 5 s: ~4 live within the 32 s linger
LINGER_S = 32

# -- one call of each protocol, on its own flow -----------------------------------------


def h323(i: int, t: int, end: bool = True) -> list[MessageEvent]:
    a, b = ("10.0.0.1", 40000 + i), ("10.0.0.2", 1720)

    def q931(dt: int, mtype: int, from_caller: bool) -> MessageEvent:
        msg = H323Message(mtype, i, from_caller, raw=bytes([mtype, i % 256]))
        sender, receiver = (a, b) if from_caller else (b, a)
        return MessageEvent("H.323", t + dt, i, TCP, sender, receiver, msg)

    events = [q931(0, 0x05, True), q931(S, 0x07, False)]  # SETUP, CONNECT
    return events + ([q931(5 * S, 0x5A, True)] if end else [])  # RELEASE COMPLETE


def mgcp(i: int, t: int, end: bool = True) -> list[MessageEvent]:
    ca, gw = ("10.0.0.9", 2727), ("10.0.1.1", 2427)

    def m(dt: int, from_ca: bool, text: str) -> MessageEvent:
        msg = parse_mgcp(text.replace("\n", "\r\n").encode())
        sender, receiver = (ca, gw) if from_ca else (gw, ca)
        return MessageEvent("MGCP", t + dt, i, UDP, sender, receiver, msg)

    ep, tid = f"aaln/{i}@gw", 10 * i
    events = [
        m(0, True, f"CRCX {tid} {ep} MGCP 1.0\nC: call{i}\nM: recvonly\n"),
        m(1, False, f"200 {tid} OK\n"),
        m(S, True, f"MDCX {tid + 1} {ep} MGCP 1.0\nC: call{i}\nM: sendrecv\n"),
    ]
    if end:
        events += [
            m(5 * S, True, f"DLCX {tid + 2} {ep} MGCP 1.0\nC: call{i}\n"),
            m(5 * S + 1, False, f"250 {tid + 2} OK\n"),
        ]
    return events


def iax2(i: int, t: int, end: bool = True) -> list[MessageEvent]:
    a, b = ("10.0.0.1", 4569), ("10.0.2.1", 4569)
    ours, theirs = 100 + i, 500 + i  # call numbers (RFC 5456 §8.1.1)

    def frame(dt: int, from_a: bool, ftype: int, subclass: int) -> MessageEvent:
        src, dst = (ours, theirs) if from_a else (theirs, ours)
        if subclass == 0x01 and ftype == 6:
            dst = 0  # NEW: the callee's number is not known yet
        data = (0x8000 | src).to_bytes(2, "big") + dst.to_bytes(2, "big") + bytes(4)
        msg = parse_iax2_message(data + bytes([0, 0, ftype, subclass]))
        sender, receiver = (a, b) if from_a else (b, a)
        return MessageEvent("IAX2", t + dt, i, UDP, sender, receiver, msg)

    events = [frame(0, True, 6, 0x01), frame(1, False, 6, 0x07), frame(S, False, 4, 0x04)]
    return events + ([frame(5 * S, True, 6, 0x05)] if end else [])  # NEW ACCEPT ANSWER HANGUP


def sccp(i: int, t: int, end: bool = True) -> list[MessageEvent]:
    cm, phone = ("10.0.0.9", 2000), ("10.0.3.1", 50000 + i)

    def state(dt: int, s: int) -> MessageEvent:
        data = b"".join(v.to_bytes(4, "little") for v in (0, CALL_STATE, s, 1, 7000 + i))
        (message,) = parse_skinny((16).to_bytes(4, "little") + data)
        msg = parse_sccp_call_message(message)
        return MessageEvent("SCCP", t + dt, i, TCP, cm, phone, msg)

    events = [state(0, 3), state(S, 5)]  # RingOut, Connected
    return events + ([state(5 * S, 2)] if end else [])  # OnHook


def _h323(limits: CallLimits) -> Any:
    return H323CallTracker(limits)


def _mgcp(limits: CallLimits) -> Any:
    return MgcpCallTracker(limits)


def _iax2(limits: CallLimits) -> Any:
    return Iax2CallTracker(limits)


def _sccp(limits: CallLimits) -> Any:
    return SccpCallTracker(limits)


Call = Callable[..., list[MessageEvent]]
CASES: dict[str, tuple[Callable[[CallLimits], Any], Call, str]] = {
    "h323": (_h323, h323, "h323_call_table_full"),
    "mgcp": (_mgcp, mgcp, "mgcp_call_table_full"),
    "iax2": (_iax2, iax2, "iax2_call_table_full"),
    "sccp": (_sccp, sccp, "sccp_call_table_full"),
}


def ended_rows(events: list[MessageEvent]) -> np.ndarray:
    """The flow of these events ends with its last packet (what on_expire gets)."""
    row = np.zeros(K.NF, np.int64)
    row[K.F_ID] = events[0].flow_id
    row[K.F_LAST_NS] = max(e.ts_ns for e in events)
    row[K.F_PKTS_FWD] = len(events)
    return row[None, :]


def feed(tracker: Any, events: list[MessageEvent], flow_ends: bool = True) -> list[dict]:
    tracker.on_messages(events)
    if flow_ends:
        tracker.on_expire(ended_rows(events))
    return tracker.drain()


# -- (a) final calls come out while later ones are still open ---------------------------


@pytest.mark.parametrize("name", CASES)
def test_finished_calls_come_out_during_the_run(name: str) -> None:
    make, call, _ = CASES[name]
    tracker = make(CallLimits())
    drained: list[dict] = []
    for i in range(CALLS):
        out = feed(tracker, call(i, T0 + i * GAP_S * S))
        drained += out
        now_s = i * GAP_S + 5  # the last message so far
        # Exactly the calls whose last message is more than the linger in the past.
        expected = [j for j in range(CALLS) if now_s - (j * GAP_S + 5) > LINGER_S]
        assert len(drained) == len(expected), i
        assert len(tracker.book) == i + 1 - len(expected) <= 4
    assert [c["start"] for c in drained] == [(T0 + j * GAP_S * S) / 1e9 for j in range(36)]
    assert {c["state"] for c in drained} == {"answered"}
    assert all(c["closed_by"] == "ended" for c in drained)
    rest = tracker.finish()
    assert [c["start"] for c in rest] == [(T0 + j * GAP_S * S) / 1e9 for j in range(36, 40)]
    assert len(tracker.book) == 0 and tracker.drain() == []


@pytest.mark.parametrize("name", CASES)
def test_drain_and_finish_give_the_records_finish_alone_gives(name: str) -> None:
    make, call, _ = CASES[name]
    streamed = make(CallLimits())
    records: list[dict] = []
    for i in range(CALLS):
        events = call(i, T0 + i * GAP_S * S, end=i % 3 != 0)  # every third never ends
        records += feed(streamed, events)
    records += streamed.finish()
    # The same stream to a tracker that lets nothing go before finish().
    reference = make(CallLimits(finished_linger_s=1e9, idle_timeout_s=1e9, answered_idle_s=1e9))
    for i in range(CALLS):
        events = call(i, T0 + i * GAP_S * S, end=i % 3 != 0)
        reference.on_messages(events)
        reference.on_expire(ended_rows(events))
    assert reference.drain() == []
    expected = reference.finish()
    assert len(expected) == CALLS
    drop = {"closed_by"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in records] == [
        {k: v for k, v in r.items() if k not in drop} for r in expected
    ]
    # Calls that never ended were let go once their flow had ended and lingered.
    early = [r for r in records if r["closed_by"] == "flows-ended"]
    assert [r["start"] for r in early] == [(T0 + j * GAP_S * S) / 1e9 for j in range(0, 36, 3)]
    assert {r["state"] for r in early} == {"ongoing"}  # 36 and 39 were still held at the end


# -- (b) the cap: never more held, the overflow named -----------------------------------


@pytest.mark.parametrize("name", CASES)
def test_open_calls_are_capped_and_the_overflow_is_named(name: str) -> None:
    make, call, anomaly = CASES[name]
    tracker = make(CallLimits(max_open_calls=5))
    out: list[dict] = []
    for i in range(20):  # 20 calls that never end, all within 20 ms: none is final
        out += feed(tracker, call(i, T0 + i * 1_000_000, end=False), flow_ends=False)
        assert len(tracker.book) == min(i + 1, 5)
    assert tracker.book.evicted == 15
    assert tracker.book.anomalies.counts[anomaly] == 15
    early = [r for r in out if r["closed_by"] == "table-full"]
    # The least recently active go first, as they stood: answered, not ended.
    assert [r["start"] for r in early] == [round((T0 + i * 1_000_000) / 1e9, 6) for i in range(15)]
    assert {r["state"] for r in early} == {"ongoing"}
    assert all(any("max_open_calls (5)" in e for e in r["evidence"]) for r in early)
    rest = tracker.finish()
    assert [r["closed_by"] for r in rest] == ["end-of-input"] * 5


# -- protocol details ---------------------------------------------------------------------


def test_iax2_hung_up_call_waits_for_its_flow_figures() -> None:
    tracker = Iax2CallTracker()
    events = iax2(0, T0)
    tracker.on_messages(events)
    tracker.on_messages(iax2(1, T0 + 100 * S)[:1])  # capture time moves on
    assert tracker.drain() == []  # alone on a live flow: its end gives packets
    row = ended_rows(events)
    row[0, K.F_PKTS_FWD] = 3000  # the voice frames
    tracker.on_expire(row)
    tracker.on_messages(iax2(2, T0 + 200 * S)[:1])
    (call,) = tracker.drain()
    assert call["packets"] == 3000 and call["state"] == "answered"
    assert call["last_message"] == (T0 + 5 * S) / 1e9  # hung up: the HANGUP is the end


def test_unanswered_call_is_let_go_after_the_idle_timeout() -> None:
    tracker = H323CallTracker(CallLimits(idle_timeout_s=120.0))
    tracker.on_messages(h323(0, T0)[:1])  # a SETUP, nothing more
    tracker.on_messages(h323(1, T0 + 120 * S)[:1])
    assert tracker.drain() == []
    tracker.on_messages(h323(2, T0 + 121 * S)[:1])
    (call,) = tracker.drain()
    assert call["state"] == "unanswered" and call["closed_by"] == "idle"
    assert len(tracker.book) == 2
