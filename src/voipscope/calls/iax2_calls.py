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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voipscope.calls.tracked_calls import TrackedCall, order
from voipscope.dissect.base import MessageEvent
from voipscope.dissect.iax2 import FRAME_CONTROL, FRAME_IAX, Iax2Message
from voipscope.flows import kernels as K
from voipscope.flows.hooks import NoHooks

MAX_OPEN_CALLS = 4096  # calls not hung up yet; the oldest is closed beyond it
MAX_FLOW_STATS = 8192  # ended flows remembered for their last packet and packet count

# §6.2 / Table 2 and 3 subclasses (see voipscope.dissect.iax2).
NEW, HANGUP, REJECT, ACCEPT, AUTHREQ = 0x01, 0x05, 0x06, 0x07, 0x08
CONTROL_HANGUP, RINGING, ANSWER, BUSY, CONGESTION = 0x01, 0x03, 0x04, 0x05, 0x08

Endpoint = tuple[str, int]


@dataclass(slots=True)
class _Call:
    call: TrackedCall
    flow_id: int
    caller: Endpoint
    ended: bool = False
    answered: bool = False


class Iax2CallTracker(NoHooks):
    """FlowHooks that rebuild IAX2 calls; ``finish()`` returns their Call records."""

    def __init__(self) -> None:
        # (flow, endpoint, call number) of either side -> call
        self.index: dict[tuple[int, Endpoint, int], _Call] = {}
        self.calls: list[_Call] = []
        self.open = 0
        self.flow_stats: dict[int, tuple[int, int]] = {}  # flow -> (last ns, packets)

    def on_messages(self, messages: list[object]) -> None:
        for ev in messages:
            if isinstance(ev, MessageEvent) and isinstance(ev.message, Iax2Message):
                self._frame(ev, ev.message)

    def on_expire(self, ended: np.ndarray) -> None:
        if not self.calls or ended.size == 0:
            return
        wanted = {c.flow_id for c in self.calls}
        for row in ended:
            flow_id = int(row[K.F_ID])
            if flow_id in wanted and len(self.flow_stats) < MAX_FLOW_STATS:
                packets = int(row[K.F_PKTS_FWD] + row[K.F_PKTS_REV])
                self.flow_stats[flow_id] = (int(row[K.F_LAST_NS]), packets)

    def _frame(self, ev: MessageEvent, msg: Iax2Message) -> None:
        entry = self.index.get((ev.flow_id, ev.sender, msg.source_call))
        if entry is None and msg.destination_call:
            entry = self.index.get((ev.flow_id, ev.receiver, msg.destination_call))
            if entry is not None:
                # The callee's first reply: its call number names the call from now on.
                self.index[(ev.flow_id, ev.sender, msg.source_call)] = entry
        is_new = msg.frame_type == FRAME_IAX and msg.subclass == NEW
        if is_new and (entry is None or entry.ended) and not msg.retransmitted:
            entry = self._new_call(ev, msg)
        if entry is None:
            return  # PING/POKE/LAGRQ/registration, or a call whose NEW was not captured
        call = entry.call
        call.saw(ev.ts_ns, ev.flow_id)
        call.count(msg.name)
        self._step(entry, ev, msg)

    def _new_call(self, ev: MessageEvent, msg: Iax2Message) -> _Call:
        if self.open >= MAX_OPEN_CALLS:
            oldest = min((c for c in self.calls if not c.ended), key=lambda c: c.call.last_ns)
            oldest.ended = True
            self.open -= 1
            oldest.call.note("closed early: more than MAX_OPEN_CALLS open IAX2 calls")
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
        entry = _Call(call, ev.flow_id, ev.sender)
        self.index[(ev.flow_id, ev.sender, msg.source_call)] = entry
        self.calls.append(entry)
        self.open += 1
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
            self.open -= 1
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

    def finish(self) -> list[dict[str, object]]:
        """Every call, open ones included, as Call records (DESIGN §3)."""
        per_flow: dict[int, int] = {}
        for entry in self.calls:
            per_flow[entry.flow_id] = per_flow.get(entry.flow_id, 0) + 1
        records = []
        for entry in self.calls:
            call = entry.call
            stats = self.flow_stats.get(entry.flow_id)
            if stats is not None and per_flow[entry.flow_id] == 1:
                last_ns, packets = stats
                if not entry.ended:
                    # Media and signalling share the flow: the call lasts as long as it.
                    call.last_ns = max(call.last_ns, last_ns)
                call.packets = max(call.packets, packets)
                call.note("packets and last message include the flow's voice frames")
            if not entry.ended:
                call.note("no HANGUP before the end of the capture")
            records.append(call.to_record())
        return order(records)
