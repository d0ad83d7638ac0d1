"""SCCP (Skinny) calls: one phone's view of a call, as its CallManager drives it.

The CallManager tells each phone the state of each call leg (CallState: OffHook, RingOut,
RingIn, Proceed, Connected, Busy, OnHook ...) under a call reference that is unique per
leg, and who the parties are (CallInfo). So a call is keyed by the phone's TCP flow and
the call reference; a call between two captured phones gives one record per phone, as in
Wireshark's VoIP Calls dialog.

Media: the phone says where it receives RTP (OpenReceiveChannelAck: its ip:port) and is
told where to send (StartMediaTransmission: the peer's ip:port). Older phones do not put
the call reference into these, so they go to the call whose reference equals their
conferenceId, else to the flow's latest call that is not on-hook.

States: Connected answers; OnHook ends; Busy, Congestion and InvalidNumber before an
answer fail the call; an on-hook before an answer after RingOut is the caller giving up
(cancelled), after RingIn the ringing stopping (the caller gave up or another phone took
it: cancelled too).

Legs are handed out as they become final (``tracked_calls.CallBook``: on-hook and
lingered, or the phone's connection ended, or silent too long).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.calls.tracked_calls import (
    CallBook,
    CallLimits,
    TrackedCall,
)
from voipscope.dissect.base import MessageEvent
from voipscope.dissect.skinny import (
    CALL_INFO,
    CALL_STATE,
    DIALED_NUMBER,
    KEYPAD_BUTTON,
    OPEN_RECEIVE_CHANNEL_ACK,
    START_MEDIA_TRANSMISSION,
    SccpMessage,
)
from voipscope.flows.hooks import NoHooks

ON_HOOK, RING_OUT, RING_IN, CONNECTED, BUSY, CONGESTION, PROCEED = 2, 3, 4, 5, 6, 7, 12
INVALID_NUMBER = 14
REFUSALS = frozenset({BUSY, CONGESTION, INVALID_NUMBER})
# A leg that reached none of these (picked up and put down) is not a call.
CALL_LIKE = frozenset({RING_OUT, RING_IN, CONNECTED, PROCEED, BUSY, CONGESTION, INVALID_NUMBER})


@dataclass(slots=True)
class _Call:
    call: TrackedCall
    flow_id: int
    reference: int
    outgoing: bool | None = None  # RingOut/Proceed: this phone called; RingIn: was called
    refused: int | None = None
    ended: bool = False
    call_like: bool = False


class SccpCallTracker(NoHooks):
    """FlowHooks that rebuild Skinny call legs; ``drain()`` hands out the final ones
    during the run, ``finish()`` the rest, as Call records."""

    def __init__(
        self, limits: CallLimits | None = None, anomalies: AnomalyLog | None = None
    ) -> None:
        self.limits = limits or CallLimits()
        self.book: CallBook[_Call] = CallBook("sccp", self.limits, self._record, anomalies)
        self.open: dict[tuple[int, int], _Call] = {}  # (flow, reference) -> leg not on-hook
        self.latest: dict[int, _Call] = {}  # flow -> its latest call

    def on_messages(self, messages: list[object]) -> None:
        for ev in messages:
            if isinstance(ev, MessageEvent) and isinstance(ev.message, SccpMessage):
                self.book.at_message(ev.ts_ns)
                self._message(ev, ev.message)
        self.book.sweep()

    def on_expire(self, ended: np.ndarray) -> None:
        if ended.size:
            self.book.expire(ended)
            self.book.sweep()

    def drain(self) -> list[dict[str, object]]:
        """Call legs final at the current capture time, as Call records (then forgotten)."""
        return self.book.drain()

    def _find(self, ev: MessageEvent, msg: SccpMessage) -> _Call | None:
        ref = msg.call_reference
        if ref:
            found = self.open.get((ev.flow_id, ref))
            if found is not None or msg.message_id not in (CALL_STATE, CALL_INFO):
                return found
            return self._new_call(ev, ref)
        if msg.conference_id:
            found = self.open.get((ev.flow_id, msg.conference_id))
            if found is not None:
                return found
        latest = self.latest.get(ev.flow_id)
        return latest if latest is not None and not latest.ended else None

    def _new_call(self, ev: MessageEvent, ref: int) -> _Call:
        phone = ev.receiver if ev.sender[1] == 2000 else ev.sender
        call = TrackedCall(f"sccp-{ev.flow_id}-{ref}", "SCCP", ev.ts_ns, ev.ts_ns)
        call.call_reference = str(ref)
        call.note(f"call leg {ref} of phone {phone[0]}")
        entry = _Call(call, ev.flow_id, ref)
        self.open[(ev.flow_id, ref)] = entry
        self.latest[ev.flow_id] = entry
        self.book.add(entry)
        return entry

    def _message(self, ev: MessageEvent, msg: SccpMessage) -> None:
        entry = self._find(ev, msg)
        if entry is None:
            return
        call = entry.call
        call.saw(ev.ts_ns, ev.flow_id)
        call.count(msg.name if msg.call_state is None else f"CallState {msg.state_name}")
        mid = msg.message_id
        if mid == CALL_STATE and msg.call_state is not None:
            self._state(entry, ev, msg.call_state, msg.state_name or "")
        elif mid == CALL_INFO:
            entry.call_like = True
            call.caller = msg.calling or msg.calling_name or call.caller
            call.callee = msg.called or msg.called_name or call.callee
            call.request_uri = call.request_uri or msg.called or None
        elif mid == DIALED_NUMBER and msg.called:
            entry.call_like = True
            call.request_uri = msg.called
            call.callee = call.callee or msg.called
        elif mid == KEYPAD_BUTTON and msg.digit is not None and len(call.dtmf) < 64:
            call.dtmf.append(msg.digit)
        elif mid in (OPEN_RECEIVE_CHANNEL_ACK, START_MEDIA_TRANSMISSION) and msg.ip:
            what = "receives" if mid == OPEN_RECEIVE_CHANNEL_ACK else "is told to send to"
            source = f"{msg.name}: the phone {what} {msg.ip}:{msg.port}"
            if msg.port:
                call.announce(msg.ip, msg.port, "audio", source=source)
        self.book.touch(entry)

    def _state(self, entry: _Call, ev: MessageEvent, state: int, name: str) -> None:
        call = entry.call
        if state in CALL_LIKE:
            entry.call_like = True
        if state in (RING_OUT, PROCEED) and entry.outgoing is None:
            entry.outgoing = True
        elif state == RING_IN and entry.outgoing is None:
            entry.outgoing = False
            call.note("RingIn: an incoming call")
        if entry.ended:
            return
        if state == CONNECTED and call.answer_ns is None:
            call.answer_ns = ev.ts_ns
            call.note("CallState Connected: answered")
        elif state in REFUSALS and call.answer_ns is None and entry.refused is None:
            entry.refused = state
            call.rejected = True
            call.note(f"CallState {name} before an answer")
        elif state == ON_HOOK:
            entry.ended = True
            self.open.pop((entry.flow_id, entry.reference), None)
            call.end_ns = ev.ts_ns
            if call.answer_ns is None and entry.refused is None:
                call.cancelled = True
                who = "the phone hung up" if entry.outgoing else "the ringing stopped"
                call.note(f"CallState OnHook before an answer: {who}")
            else:
                call.note("CallState OnHook")

    def _record(self, entry: _Call, reason: str) -> dict[str, object] | None:
        """The book lets a leg go: its record if it was a call (rang, proceeded or
        connected); forget its indexes."""
        if self.open.get((entry.flow_id, entry.reference)) is entry:
            del self.open[(entry.flow_id, entry.reference)]
        if self.latest.get(entry.flow_id) is entry:
            del self.latest[entry.flow_id]
        if not entry.call_like:
            return None
        call = entry.call
        if not entry.ended:
            # The same words whichever way it was let go (closed_by says which): no
            # OnHook reached this call, whose messages all came before it was let go.
            call.note("no OnHook before the end of the capture")
        if entry.outgoing is False:
            call.note("this phone is the called party")
        return call.to_record()

    def finish(self) -> list[dict[str, object]]:
        """Every call leg not handed out yet that was a call, as Call records."""
        return self.book.finish()
