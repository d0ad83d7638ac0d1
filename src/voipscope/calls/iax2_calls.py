"""IAX2 calls from full frames (RFC 5456 §6.2-6.4).

A call begins with NEW from the caller (source call number chosen by it, destination
call number 0); the callee's first reply names both numbers, and every later full frame
of the call carries them (§8.1.1). So a call is keyed by its flow and the caller's
(endpoint, call number) and found again from either side's (endpoint, call number).

States: NEW -> ACCEPT (the callee takes the call, §6.2.3) -> RINGING -> ANSWER (control
frame, §6.2.6: answered) -> HANGUP (§6.2.7, with a CAUSECODE when sent); REJECT (§6.2.4)
or AUTHREQ without an ACCEPT refuses it. Signalling and media share the flow, so a call
alone on its flow takes the flow's last packet and packet count (the voice) too: that is
how Wireshark's VoIP Calls dialog gives its Stop and Packets.

Calls are handed out as they become final (``tracked_calls.CallBook``: hung up and
lingered, or their flow ended, or silent too long) -- but a call alone on its flow so far
waits for the flow's end (its record takes the flow's figures), at most
``calls.answered_idle_s`` of silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.calls.tracked_calls import (
    CallBook,
    CallLimits,
    TrackedCall,
)
from voipscope.dissect.base import MessageEvent
from voipscope.dissect.iax2 import FRAME_CONTROL, FRAME_IAX, Iax2Message
from voipscope.flows import kernels as K
from voipscope.flows.hooks import NoHooks

# §6.2 / Table 2 and 3 subclasses (see voipscope.dissect.iax2).
NEW, HANGUP, REJECT, ACCEPT, AUTHREQ = 0x01, 0x05, 0x06, 0x07, 0x08
CONTROL_HANGUP, RINGING, ANSWER, BUSY, CONGESTION = 0x01, 0x03, 0x04, 0x05, 0x08

Endpoint = tuple[str, int]
Key = tuple[int, Endpoint, int]


@dataclass(slots=True)
class _Call:
    call: TrackedCall
    flow_id: int
    caller: Endpoint
    ended: bool = False
    answered: bool = False
    keys: list[Key] = field(default_factory=list)  # its entries in the tracker's index


class Iax2CallTracker(NoHooks):
    """FlowHooks that rebuild IAX2 calls; ``drain()`` hands out the final ones during
    the run, ``finish()`` the rest, as Call records."""

    def __init__(
        self, limits: CallLimits | None = None, anomalies: AnomalyLog | None = None
    ) -> None:
        self.limits = limits or CallLimits()
        self.book: CallBook[_Call] = CallBook(
            "iax2", self.limits, self._record, anomalies, hold=self._hold
        )
        # (flow, endpoint, call number) of either side -> call
        self.index: dict[Key, _Call] = {}
        self.flow_calls: dict[int, int] = {}  # live flow (or one with held calls) -> calls on it
        self.flow_held: dict[int, int] = {}  # flow -> its calls still held
        self.flow_stats: dict[int, tuple[int, int]] = {}  # ended flow -> (last ns, packets)

    def on_messages(self, messages: list[object]) -> None:
        for ev in messages:
            if isinstance(ev, MessageEvent) and isinstance(ev.message, Iax2Message):
                self.book.at_message(ev.ts_ns)
                self._frame(ev, ev.message)
        self.book.sweep()

    def on_expire(self, ended: np.ndarray) -> None:
        if ended.size == 0:
            return
        self.book.expire(ended)
        if self.flow_calls:
            for i, flow_id in enumerate(ended[:, K.F_ID].tolist()):
                if flow_id not in self.flow_calls:
                    continue
                if flow_id not in self.flow_held:
                    del self.flow_calls[flow_id]  # its calls are out; no new one can come
                else:  # at most one per held call
                    row = ended[i]
                    packets = int(row[K.F_PKTS_FWD] + row[K.F_PKTS_REV])
                    self.flow_stats[flow_id] = (int(row[K.F_LAST_NS]), packets)
        self.book.sweep()

    def drain(self) -> list[dict[str, object]]:
        """Calls final at the current capture time, as Call records (then forgotten)."""
        return self.book.drain()

    def _frame(self, ev: MessageEvent, msg: Iax2Message) -> None:
        entry = self.index.get((ev.flow_id, ev.sender, msg.source_call))
        if entry is None and msg.destination_call:
            entry = self.index.get((ev.flow_id, ev.receiver, msg.destination_call))
            if entry is not None:
                # The callee's first reply: its call number names the call from now on.
                key = (ev.flow_id, ev.sender, msg.source_call)
                self.index[key] = entry
                entry.keys.append(key)
        is_new = msg.frame_type == FRAME_IAX and msg.subclass == NEW
        if is_new and (entry is None or entry.ended) and not msg.retransmitted:
            entry = self._new_call(ev, msg)
        if entry is None:
            return  # PING/POKE/LAGRQ/registration, or a call whose NEW was not captured
        call = entry.call
        call.saw(ev.ts_ns, ev.flow_id)
        call.count(msg.name)
        self._step(entry, ev, msg)
        self.book.touch(entry)

    def _new_call(self, ev: MessageEvent, msg: Iax2Message) -> _Call:
        call = TrackedCall(
            f"iax2-{ev.flow_id}-{ev.sender[0]}:{ev.sender[1]}-{msg.source_call}",
            "IAX2",
            ev.ts_ns,
            ev.ts_ns,
        )
        call.call_reference = str(msg.source_call)
        call.caller = msg.calling_number or msg.username or msg.calling_name or None
        call.callee = msg.called_number
        call.request_uri = msg.called_number
        if msg.called_context:
            call.note(f"NEW for context {msg.called_context}")
        call.note(
            f"NEW from {ev.sender[0]}:{ev.sender[1]} call number {msg.source_call} "
            f"to {ev.receiver[0]}"
        )
        # Voice and video go in mini/full frames on this same flow (§8.1.2).
        call.announce(ev.sender[0], ev.sender[1], "audio", source="IAX2 media shares the flow")
        call.announce(ev.receiver[0], ev.receiver[1], "audio", source="IAX2 media shares the flow")
        key = (ev.flow_id, ev.sender, msg.source_call)
        entry = _Call(call, ev.flow_id, ev.sender, keys=[key])
        self.index[key] = entry
        self.flow_calls[ev.flow_id] = self.flow_calls.get(ev.flow_id, 0) + 1
        self.flow_held[ev.flow_id] = self.flow_held.get(ev.flow_id, 0) + 1
        self.book.add(entry)
        return entry

    def _step(self, entry: _Call, ev: MessageEvent, msg: Iax2Message) -> None:
        call = entry.call
        if entry.ended:
            return
        from_caller = ev.sender == entry.caller
        if msg.frame_type == FRAME_CONTROL and msg.subclass == ANSWER:
            if call.answer_ns is None:
                call.answer_ns = ev.ts_ns
                call.note(f"ANSWER from {ev.sender[0]}: answered")
        elif msg.frame_type == FRAME_CONTROL and msg.subclass in (BUSY, CONGESTION):
            call.note(f"{msg.name} from {ev.sender[0]}")
            call.rejected = call.answer_ns is None
        elif msg.frame_type == FRAME_IAX and msg.subclass == ACCEPT:
            call.note(
                f"ACCEPT from {ev.sender[0]}" + (f" format {msg.format}" if msg.format else "")
            )
        elif msg.frame_type == FRAME_IAX and msg.subclass in (HANGUP, REJECT):
            entry.ended = True
            call.end_ns = ev.ts_ns
            call.final_code = msg.cause_code
            why = f"{msg.name} from {ev.sender[0]}"
            if msg.cause_code is not None:
                why += f" with cause code {msg.cause_code}"
            if msg.cause:
                why += f" ({msg.cause})"
            if call.answer_ns is None:
                if from_caller:
                    call.cancelled = True
                    why += ": the caller gave up before an answer"
                else:
                    call.rejected = True
                    why += ": refused before an answer"
            call.note(why)

    def _hold(self, entry: _Call) -> bool:
        """Alone on a live flow so far: the flow's end may still give the call its figures."""
        flow_id = entry.flow_id
        return flow_id not in self.flow_stats and self.flow_calls.get(flow_id) == 1

    def _record(self, entry: _Call, reason: str) -> dict[str, object]:
        """The book lets a call go: its record; forget its index keys and flow."""
        call = entry.call
        flow_id = entry.flow_id
        for key in entry.keys:
            if self.index.get(key) is entry:
                del self.index[key]
        stats = self.flow_stats.get(flow_id)
        if stats is not None and self.flow_calls.get(flow_id) == 1:
            last_ns, packets = stats
            if not entry.ended:
                # Media and signalling share the flow: the call lasts as long as it.
                call.last_ns = max(call.last_ns, last_ns)
            call.packets = max(call.packets, packets)
            call.note("packets and last message include the flow's voice frames")
        held = self.flow_held.pop(flow_id) - 1
        if held:
            self.flow_held[flow_id] = held
        elif stats is not None:
            del self.flow_stats[flow_id]
            del self.flow_calls[flow_id]
        if not entry.ended:
            # The same words whichever way it was let go (closed_by says which): no
            # HANGUP reached this call, whose messages all came before it was let go.
            call.note("no HANGUP before the end of the capture")
        return call.to_record()

    def finish(self) -> list[dict[str, object]]:
        """Every call not handed out yet, open ones included, as Call records (DESIGN §3)."""
        records = self.book.finish()
        self.flow_calls.clear()
        self.flow_stats.clear()
        return records
