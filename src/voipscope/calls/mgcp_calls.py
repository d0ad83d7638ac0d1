"""MGCP calls (RFC 3435): the call agent's connection commands to gateway endpoints.

A call is keyed by its CallId (C:, §3.2.2.2), which CreateConnection and ModifyConnection
carry and DeleteConnection may; responses are tied to their command by transaction id
(§3.2.1.2) on the same pair of addresses. Events come per endpoint, not per call (NTFY,
§2.3.4): the off-hook (``hd``) and the dialled digits an endpoint reports before its first
connection are the start and the callee of the call that connection joins.

States: the call starts at the caller's off-hook when seen, else at the first CRCX; it is
answered when a connection of it goes sendrecv by MDCX (§2.3.6: the call agent
cuts the caller's media through once the called line answers) or an endpoint that
already holds a connection of it reports off-hook (the called phone picked up); it ends
at the first DLCX (§2.3.7). A connection command refused with a 4xx/5xx code fails it.

Calls are handed out as they become final (``tracked_calls.CallBook``: deleted and
lingered, or their flows ended, or silent too long); commands left without a response
and endpoint reports too old to start a call are forgotten on capture time too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.calls.tracked_calls import (
    NS,
    CallBook,
    CallLimits,
    TrackedCall,
)
from voipscope.dissect.base import MessageEvent
from voipscope.dissect.mgcp import MgcpMessage
from voipscope.dissect.sdp import parse_sdp
from voipscope.errors import DecodeError
from voipscope.flows.hooks import NoHooks

MAX_TRANSACTIONS = 4096  # commands waiting for their response
MAX_ENDPOINTS = 4096  # endpoints whose last off-hook and digits are remembered
DIGITS_MAX_AGE_NS = 120 * NS  # digits older than this start no call

CONNECTION_VERBS = frozenset({"CRCX", "MDCX", "DLCX"})
# §2.3.1 / RFC 3660 line package events: off-hook, on-hook; D/ is the DTMF package.
OFFHOOK = frozenset({"hd", "l/hd", "h/hd"})
ONHOOK = frozenset({"hu", "l/hu", "h/hu"})


@dataclass(slots=True)
class _Line:
    """What an endpoint reported lately, before a call of it existed."""

    offhook_ns: int | None = None
    digits: str = ""
    digits_ns: int | None = None
    messages: int = 0


@dataclass(slots=True)
class _Call:
    call: TrackedCall
    endpoints: list[str] = field(default_factory=list)  # in order of their first CRCX
    ended: bool = False
    onhook_before_answer: str | None = None  # endpoint that hung up before an answer


class MgcpCallTracker(NoHooks):
    """FlowHooks that rebuild MGCP calls; ``drain()`` hands out the final ones during
    the run, ``finish()`` the rest, as Call records."""

    def __init__(
        self, limits: CallLimits | None = None, anomalies: AnomalyLog | None = None
    ) -> None:
        self.limits = limits or CallLimits()
        self.book: CallBook[_Call] = CallBook("mgcp", self.limits, self._record, anomalies)
        self.calls: dict[str, _Call] = {}  # call id -> the call held under it
        # (sender, receiver, transaction id) of a command -> (call id, verb, sent at)
        self.pending: dict[tuple[tuple[str, int], tuple[str, int], int], tuple[str, str, int]] = {}
        self.lines: dict[str, _Line] = {}
        self.endpoint_calls: dict[str, str] = {}  # endpoint -> its latest call id

    def on_messages(self, messages: list[object]) -> None:
        for ev in messages:
            if isinstance(ev, MessageEvent) and isinstance(ev.message, MgcpMessage):
                msg = ev.message
                self.book.at_message(ev.ts_ns)
                if msg.verb is not None:
                    self._command(ev, msg)
                else:
                    self._response(ev, msg)
        self._sweep()

    def on_expire(self, ended: np.ndarray) -> None:
        if ended.size:
            self.book.expire(ended)
            self._sweep()

    def drain(self) -> list[dict[str, object]]:
        """Calls final at the current capture time, as Call records (then forgotten)."""
        return self.book.drain()

    def _sweep(self) -> None:
        self.book.sweep()
        now = self.book.now_ns
        # A command unanswered this long is lost (§3.5: retransmissions give up in ~30 s).
        stale = now - int(self.limits.finished_linger_s * NS)
        for key in [k for k, (_, _, sent) in self.pending.items() if sent < stale]:
            del self.pending[key]
        for endpoint in [e for e, line in self.lines.items() if _stale(line, now)]:
            del self.lines[endpoint]

    # -- commands -------------------------------------------------------------------------

    def _command(self, ev: MessageEvent, msg: MgcpMessage) -> None:
        endpoint = (msg.endpoint or "").lower()
        verb = msg.verb or ""
        if verb == "NTFY":
            self._notify(ev, msg, endpoint)
            return
        call_id = msg.call_id
        if call_id is None and verb == "DLCX":
            call_id = self.endpoint_calls.get(endpoint)  # DLCX of every connection
        if verb not in CONNECTION_VERBS or call_id is None:
            return
        entry = self.calls.get(call_id)
        if entry is None:
            if verb != "CRCX":
                return  # a call whose creation was not captured: nothing to tie it to
            entry = self._new_call(ev, call_id, endpoint)
        call = entry.call
        call.saw(ev.ts_ns, ev.flow_id)
        call.count(verb)
        if len(self.pending) < MAX_TRANSACTIONS:
            self.pending[(ev.sender, ev.receiver, msg.transaction_id)] = (call_id, verb, ev.ts_ns)
        if endpoint and endpoint not in entry.endpoints and len(entry.endpoints) < 8:
            entry.endpoints.append(endpoint)
        if endpoint and len(self.endpoint_calls) < MAX_ENDPOINTS:
            self.endpoint_calls[endpoint] = call_id
        self._media(call, msg, f"{verb} to {endpoint}")
        mode = msg.connection_mode
        if verb == "MDCX" and mode == "sendrecv" and call.answer_ns is None and not entry.ended:
            call.answer_ns = ev.ts_ns
            call.note(f"MDCX to {endpoint} with M: sendrecv: media cut through, answered")
        if verb == "DLCX" and not entry.ended:
            entry.ended = True
            call.end_ns = ev.ts_ns
            reason = msg.parameter("E")
            call.note(f"DLCX for {endpoint}" + (f" with reason {reason}" if reason else ""))
            if call.answer_ns is None and entry.onhook_before_answer is not None:
                caller = entry.endpoints[0] if entry.endpoints else None
                if entry.onhook_before_answer == caller:
                    call.cancelled = True
                    call.note(f"{caller} went on-hook before an answer")
        self.book.touch(entry)

    def _new_call(self, ev: MessageEvent, call_id: str, endpoint: str) -> _Call:
        call = TrackedCall(call_id, "MGCP", ev.ts_ns, ev.ts_ns)
        call.caller = endpoint or None
        line = self.lines.get(endpoint)
        if line is not None:
            if line.offhook_ns is not None and ev.ts_ns - line.offhook_ns < DIGITS_MAX_AGE_NS:
                call.start_ns = line.offhook_ns
                call.packets += line.messages
                call.counts["NTFY"] = line.messages
                call.note(f"{endpoint} went off-hook before the first CRCX")
            if line.digits and line.digits_ns and ev.ts_ns - line.digits_ns < DIGITS_MAX_AGE_NS:
                call.callee = call.request_uri = line.digits
                call.note(f"{endpoint} dialled {line.digits}")
            del self.lines[endpoint]
        call.note(f"CRCX with call id {call_id} to {endpoint} from {ev.sender[0]}")
        entry = self.calls[call_id] = _Call(call)
        self.book.add(entry)
        return entry

    def _notify(self, ev: MessageEvent, msg: MgcpMessage, endpoint: str) -> None:
        observed = [e.strip() for e in (msg.parameter("O") or "").split(",") if e.strip()]
        if not observed:
            return
        events = [e.lower() for e in observed]
        call_id = self.endpoint_calls.get(endpoint)
        entry = self.calls.get(call_id) if call_id else None
        if entry is not None and not entry.ended:
            call = entry.call
            call.saw(ev.ts_ns, ev.flow_id)
            call.count("NTFY")
            caller = entry.endpoints[0] if entry.endpoints else None
            offhook = any(e in OFFHOOK for e in events)
            if offhook and call.answer_ns is None and endpoint != caller:
                call.answer_ns = ev.ts_ns
                call.note(f"{endpoint} went off-hook: answered")
            if any(e in ONHOOK for e in events) and call.answer_ns is None:
                entry.onhook_before_answer = endpoint
            for e in observed:
                if e.lower().startswith("d/") and len(call.dtmf) < 64:
                    call.dtmf.append(e[2:])
            self.book.touch(entry)
            return
        # No call yet on this endpoint: remember off-hook and digits for the next CRCX.
        line = self.lines.get(endpoint)
        if line is None:
            if len(self.lines) >= MAX_ENDPOINTS:
                return
            line = self.lines[endpoint] = _Line()
        if any(e in OFFHOOK for e in events):
            line.offhook_ns, line.digits, line.messages = ev.ts_ns, "", 0
        if any(e in ONHOOK for e in events):
            line.offhook_ns, line.digits, line.messages = None, "", 0
            return
        for e in observed:
            if e.lower().startswith("d/"):
                # D/5551234 (a digit map match) or D/5, D/5 ... one per event
                line.digits = (line.digits + e[2:].strip("()"))[:64]
                line.digits_ns = ev.ts_ns
        line.messages += 1

    # -- responses ------------------------------------------------------------------------

    def _response(self, ev: MessageEvent, msg: MgcpMessage) -> None:
        found = self.pending.pop((ev.receiver, ev.sender, msg.transaction_id), None)
        if found is None:
            return
        call_id, verb, _ = found
        entry = self.calls.get(call_id)
        if entry is None:
            return
        call = entry.call
        code = msg.response_code or 0
        call.saw(ev.ts_ns, ev.flow_id)
        call.count(str(code))
        self._media(call, msg, f"{code} to {verb}")
        if code >= 400 and verb in ("CRCX", "MDCX") and call.final_code is None:
            call.final_code = code
            if call.answer_ns is None:
                call.rejected = True
                call.note(f"{verb} refused with {code}")
        elif verb == "DLCX" and call.final_code is None:
            call.final_code = code  # 250: connection deleted (§2.4)
        self.book.touch(entry)

    @staticmethod
    def _media(call: TrackedCall, msg: MgcpMessage, where: str) -> None:
        if not msg.sdp.strip():
            return
        try:
            sdp = parse_sdp(msg.sdp)
        except DecodeError as exc:
            call.note(f"SDP of {where} did not parse ({exc})")
            return
        for m in sdp.media:
            if m.connection and m.port:
                call.announce(m.connection, m.port, m.media, source=f"SDP of {where}")

    def _record(self, entry: _Call, reason: str) -> dict[str, object]:
        """The book lets a call go: its record; forget the call id and its endpoints."""
        call = entry.call
        if self.calls.get(call.call_id) is entry:
            del self.calls[call.call_id]
        for endpoint in entry.endpoints:
            if self.endpoint_calls.get(endpoint) == call.call_id:
                del self.endpoint_calls[endpoint]
        if not entry.ended:
            # The same words whichever way it was let go (closed_by says which): no
            # DLCX reached this call, whose messages all came before it was let go.
            call.note("no DLCX before the end of the capture")
        if len(entry.endpoints) > 1:
            call.note(f"endpoints {', '.join(entry.endpoints)}")
            # Both lines on gateways of this call agent: the second is the called one.
            call.callee = call.callee or entry.endpoints[1]
        return call.to_record()

    def finish(self) -> list[dict[str, object]]:
        """Every call not handed out yet, open ones included, as Call records (DESIGN §3)."""
        records = self.book.finish()
        self.pending.clear()
        self.lines.clear()
        self.endpoint_calls.clear()
        return records


def _stale(line: _Line, now_ns: int) -> bool:
    """Nothing this endpoint reported can start a call any more (DIGITS_MAX_AGE_NS)."""
    newest = max(line.offhook_ns or 0, line.digits_ns or 0)
    return now_ns - newest >= DIGITS_MAX_AGE_NS
