"""The inline stage: asks a verdict hook about flows, calls and alerts as they happen, and
keeps what it decided.

The pipeline tells it (FlowPipeline(..., inline=stage)):
- ``on_findings`` at the packet that added findings to a flow (voipscope.dissect.stage):
  the arbiter's verdict so far (``Arbiter.verdict``, which changes nothing) becomes a
  ``flow`` event the first time it is VoIP and again when it changes;
- ``on_sip`` after every SIP message (voipscope.calls.sip_dialogs): ``call`` events when
  an INVITE is offered and when it is answered, with the call as it stands then; after
  a drop or shape of a call, media that call announces later is added to it unasked;
- ``on_alert_opened`` as an alert opens (voipscope.detect.alerts.AlertBook) and
  ``check_alerts`` after every batch (a severity that rose): ``alert`` events;
- ``after_batch`` once per packet batch: the targets in force (voipscope.inline.in_force)
  are matched against open and new flows and the packets after each decision (and
  before it expires) counted: what the decision would have stopped in this capture.

Events are decided in capture order, each at the packet that made it, so a capture gives
the same events whatever its batches; live, the same hook sees the same events within a
batch interval (voipscope.inline.nft applies them).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.calls.call_records import SipCall
from voipscope.calls.tracked_calls import TrackedCall
from voipscope.detect.alerts import SEVERITIES
from voipscope.dissect.base import MEDIA, MIN_VERDICT_CONFIDENCE, SIGNALING, FlowContext
from voipscope.flows import kernels as K
from voipscope.inline.decisions import (
    ALLOW,
    FLOW,
    FROM,
    Action,
    Decision,
    Event,
    Target,
)
from voipscope.inline.in_force import TargetsInForce
from voipscope.inline.targets import announced_targets, blockable, sdp_targets

Hook = Callable[[Event], Decision | None]

ANOMALIES = {
    "inline_hook_error": "the verdict hook raised an exception; the event was let pass",
    "inline_hook_bad_answer": "the verdict hook answered something other than a Decision or "
    "None; the event was let pass",
    "inline_targets_full": "more targets in force than the inline stage keeps "
    "(max_targets), or more than one call may have; the further targets were not enforced",
}
MAX_EVENTS_PER_FLOW = 4  # identified + a few changes (STUN -> DTLS -> SRTP, app found)
MAX_TARGETS = 65536  # targets in force (as the block list: attacker-driven counts are capped)
MAX_TARGETS_PER_CALL = 64  # one dialog's SDP bodies must not fill the table
MAX_FOLLOWS_PER_CALL = 8  # later media of a decided call added unasked, at most this often
MAX_TRACKED = 100_000  # calls and alerts remembered (least recently used go first)
VOIP = (MEDIA, SIGNALING)
# The fields of an event's record an Action keeps (the hook saw the whole record).
ACTION_FIELDS = ("flow_id", "call_id", "record_id", "kind", "protocol", "app")


class InlineStage:
    def __init__(
        self,
        decide: Hook,
        anomalies: AnomalyLog | None = None,
        max_targets: int = MAX_TARGETS,
    ) -> None:
        self.decide = decide
        self.anomalies = anomalies if anomalies is not None else AnomalyLog()
        self.max_targets = max_targets
        # Set by the pipeline.
        self.arbiter: Any = None
        self.contexts: dict[int, FlowContext] = {}  # the dissect stage's open flows
        self.actions_made = 0
        self.events = 0
        self.hook_errors = 0
        self._new: list[Action] = []
        # Flows: the verdict last announced and events so far; flows under a decision
        # (flow id -> when it expires: asked again after that).
        self._flow_said: dict[int, tuple[tuple[Any, ...], int]] = {}
        self._flow_decided: dict[int, int] = {}
        # Calls (record id or call id): stages announced, the decision, endpoints covered.
        self._calls: OrderedDict[str, _CallState] = OrderedDict()
        # Open alerts by identity, with the severity last asked about; sources under a
        # decision ((kind, src) -> when it expires).
        self._seen_alerts: dict[int, tuple[Any, str]] = {}
        self._alert_decided: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._now_ns = 0  # capture time of the latest event
        self.in_force = TargetsInForce(max_targets)

    # -- flows ----------------------------------------------------------------------------

    def on_findings(self, ctx: FlowContext, slot: int, ts_ns: int) -> None:
        del slot  # the flow table's counters are those of the batch's end: not used
        flow_id = ctx.flow_id
        self._now_ns = max(self._now_ns, ts_ns)
        if self._flow_decided.get(flow_id, -1) >= ts_ns or self.arbiter is None:
            return
        v = self.arbiter.verdict(ctx, None)
        if v.category not in VOIP or v.confidence < MIN_VERDICT_CONFIDENCE:
            return
        key = (v.category, v.protocol, v.app, v.media)
        said = self._flow_said.get(flow_id)
        if said is not None and (said[0] == key or said[1] >= MAX_EVENTS_PER_FLOW):
            return
        self._flow_said[flow_id] = (key, 1 if said is None else said[1] + 1)
        record = {
            "flow_id": flow_id,
            "proto": ctx.transport,
            "src_ip": ctx.src_ip,
            "src_port": ctx.src_port,
            "dst_ip": ctx.dst_ip,
            "dst_port": ctx.dst_port,
            "category": v.category,
            "protocol": v.protocol,
            "app": v.app,
            "media": v.media,
            "confidence": round(v.confidence, 3),
            "evidence": list(v.evidence),
            "detected_at_packet": v.detected_at_packet,
            "call_id": v.call_id,
            "payload_packets": ctx.payload_packets,
        }
        target = Target(FLOW, ctx.src_ip, ctx.transport, ctx.src_port, ctx.dst_ip, ctx.dst_port)
        stage = "identified" if said is None else "reidentified"
        event = Event(FLOW, stage, ts_ns / 1e9, record, (target,), f"flow {flow_id}")
        action = self._ask(event, ts_ns)
        if action is not None:
            self._flow_decided[flow_id] = action.expires_ns

    # -- calls ----------------------------------------------------------------------------

    def on_sip(self, ev: Any, record: Any) -> None:
        """A SIP message (MessageEvent) and the record it joined, as it stands after it."""
        if not isinstance(record, SipCall):
            return
        msg = ev.message
        offered = getattr(msg, "is_request", False) and getattr(msg, "method", None) == "INVITE"
        self._call(record.record_id, ev.ts_ns, record.answer_ns, offered,
                   lambda: sdp_targets(record, self._signalling_ends(record.signaling_flows)),
                   record.to_record)  # fmt: skip

    def on_tracked(self, call: TrackedCall) -> None:
        """An H.323, MGCP, IAX2 or SCCP call after a message reached it (CallBook)."""
        if call.packets == 0:
            return  # just opened: the message that opened it is not in it yet
        # A copy: the hook may change it, and the record's lists are the call's own.
        self._call(call.call_id, call.last_ns, call.answer_ns, True,
                   lambda: announced_targets(call, self._signalling_ends(call.signaling_flows)),
                   lambda: copy.deepcopy(call.to_record()))  # fmt: skip

    def _call(
        self,
        key: str,
        ts_ns: int,
        answer_ns: int | None,
        offered: bool,
        targets_of: Callable[[], list[Target]],
        record_of: Callable[[], dict[str, Any]],
    ) -> None:
        self._now_ns = max(self._now_ns, ts_ns)
        state = self._calls.get(key)
        if state is None:
            state = _CallState()
            self._calls[key] = state
            while len(self._calls) > MAX_TRACKED:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(key)
        # "answered" is asked at the message that answered, not at any later one.
        answered_now = answer_ns is not None and answer_ns == ts_ns
        if state.action is not None and state.action.expires_ns < ts_ns:
            # The decision ran out: a stage the call reaches from now on is asked again.
            state.action, state.covered, state.follows, state.capped = None, set(), 0, False
        if state.action is not None:
            if answered_now:
                state.stages.add("answered")  # under the decision: not asked later
            self._follow(state, key, ts_ns, targets_of())
            return
        if answered_now and "answered" not in state.stages:
            stage = "answered"
        elif offered and answer_ns is None and "offered" not in state.stages:
            stage = "offered"
        else:
            return
        state.stages.add(stage)
        targets = targets_of()[:MAX_TARGETS_PER_CALL]
        event = Event("call", stage, ts_ns / 1e9, record_of(), tuple(targets), f"call {key}")
        action = self._ask(event, ts_ns)
        if action is not None:
            state.action = action
            state.covered.update(targets)

    def _follow(self, state: _CallState, key: str, ts_ns: int, targets: list[Target]) -> None:
        """Media a dropped or shaped call announces after the decision (a re-INVITE, the
        answer to an offer) is covered by the same decision, unasked -- within bounds: a
        dialog's SDP bodies are its writer's, and must not fill the table."""
        first = state.action
        assert first is not None
        new = [t for t in targets if t not in state.covered]
        room = MAX_TARGETS_PER_CALL - len(state.covered)
        if not new or state.follows >= MAX_FOLLOWS_PER_CALL or room <= 0:
            if new and not state.capped:
                state.capped = True
                self.anomalies.add(
                    "inline_targets_full",
                    f"call {key}: more media than {MAX_TARGETS_PER_CALL} targets or "
                    f"{MAX_FOLLOWS_PER_CALL} later announcements; the rest not enforced",
                    ts=ts_ns / 1e9,
                )  # fmt: skip
            return
        new = new[:room]
        state.follows += 1
        state.covered.update(new)
        record = {name: first.event.record.get(name) for name in ACTION_FIELDS}
        event = Event("call", "media", ts_ns / 1e9, record, tuple(new), f"call {key}")
        # Part of the same decision: it ends when the first one does.
        decision = first.decision
        if decision.ttl_s is not None:
            left_s = max(1.0, (first.expires_ns - ts_ns) / 1e9)
            decision = Decision(decision.action, decision.reason, decision.rate_kbit, left_s)
        self._act(event, ts_ns, decision, tuple(new), follows=first.action_id)

    def _signalling_ends(self, flow_ids: Iterable[int]) -> set[tuple[str, int]]:
        """The ip:port ends of a call's signalling flows still open."""
        ends: set[tuple[str, int]] = set()
        for flow_id in flow_ids:
            ctx = self.contexts.get(flow_id)
            if ctx is not None:
                ends.add((ctx.src_ip, ctx.src_port))
                ends.add((ctx.dst_ip, ctx.dst_port))
        return ends

    def calls_finished(self, records: Iterable[dict[str, Any]]) -> None:
        """Calls handed out as final: no message can join them any more."""
        for record in records:
            for key in (record.get("record_id"), record.get("call_id")):
                if isinstance(key, str):
                    self._calls.pop(key, None)

    # -- alerts ---------------------------------------------------------------------------

    def on_alert_opened(self, alert: Any) -> None:
        """An alert opened (AlertBook), at the evidence that crossed its detector's
        threshold: asked now, not at the end of the packet batch."""
        self._seen_alerts[id(alert)] = (alert, alert.severity)
        self._alert(alert, "raised")

    def check_alerts(self, open_alerts: Iterable[Any]) -> None:
        """After a batch: the open alerts (AlertBook), by identity as the detect stage's
        ``raised`` does; one whose severity rose since is asked about again."""
        seen: dict[int, tuple[Any, str]] = {}
        for alert in open_alerts:
            before = self._seen_alerts.get(id(alert))
            if before is None or before[0] is not alert:
                self._alert(alert, "raised")
            elif SEVERITIES.index(alert.severity) > SEVERITIES.index(before[1]):
                self._alert(alert, "escalated")
            seen[id(alert)] = (alert, alert.severity)
        self._seen_alerts = seen  # only open alerts: bounded like the book

    def _alert(self, alert: Any, stage: str) -> None:
        record = copy.deepcopy(alert.to_record())  # the hook may change its copy
        kind, src = record["kind"], record["src_ip"]
        ts_ns = int(float(record["last_ts"] or record["ts"] or 0.0) * 1e9)
        self._now_ns = max(self._now_ns, ts_ns)
        if self._alert_decided.get((kind, src), -1) >= ts_ns:
            return  # under a decision still in force
        src_ip = blockable(src)
        targets = (Target(FROM, src_ip),) if src_ip is not None else ()
        event = Event("alert", stage, ts_ns / 1e9, record, targets, f"alert {kind} {src}")
        action = self._ask(event, ts_ns)
        if action is not None and targets:
            self._alert_decided[(kind, src)] = action.expires_ns
            while len(self._alert_decided) > MAX_TRACKED:
                self._alert_decided.popitem(last=False)

    # -- decisions ------------------------------------------------------------------------

    def _ask(self, event: Event, ts_ns: int) -> Action | None:
        self.events += 1
        try:
            answer = self.decide(event)
        except Exception as exc:  # the hook is the user's code: one event, not the run
            self.hook_errors += 1
            self.anomalies.add(
                "inline_hook_error", f"{event.subject}: {type(exc).__name__}: {exc}"[:300],
                ts=ts_ns / 1e9,
            )  # fmt: skip
            return None
        if answer is None:
            return None
        if not isinstance(answer, Decision):
            self.hook_errors += 1
            self.anomalies.add(
                "inline_hook_bad_answer",
                f"{event.subject}: {type(answer).__name__} (answer allow(), drop(), shape() "
                "or None)",
                ts=ts_ns / 1e9,
            )  # fmt: skip
            return None
        if answer.action == ALLOW:
            return None
        # The action keeps a few fields of the record: the hook has seen it whole.
        record = {name: event.record.get(name) for name in ACTION_FIELDS}
        kept = Event(event.kind, event.stage, event.ts, record, event.targets, event.subject)
        return self._act(kept, ts_ns, answer, event.targets, follows=None)

    def _act(
        self,
        event: Event,
        ts_ns: int,
        decision: Decision,
        targets: tuple[Target, ...],
        follows: int | None,
    ) -> Action:
        if len(targets) > self.in_force.room:
            self.in_force.purge(ts_ns, now=True)  # room from decisions run out meanwhile
        room = self.in_force.room
        kept, dropped = targets[:room], len(targets) - room if len(targets) > room else 0
        self.actions_made += 1
        action = Action(self.actions_made, ts_ns, event, decision, kept, follows,
                        targets_dropped=dropped)  # fmt: skip
        if dropped:
            self.anomalies.add(
                "inline_targets_full",
                f"{event.subject}: {dropped} targets over the {self.max_targets} in force",
                ts=ts_ns / 1e9,
            )  # fmt: skip
        self._new.append(action)
        self.in_force.add(action)
        return action

    # -- per batch ------------------------------------------------------------------------

    def after_batch(self, d: Any, a: Any, ended: list[np.ndarray]) -> None:
        """What the decisions in force match in the batch; forget ended flows."""
        self.in_force.after_batch(d, a, ended)
        for rows in ended:
            for flow_id in rows[:, K.F_ID].tolist():
                self._flow_said.pop(flow_id, None)
                self._flow_decided.pop(flow_id, None)
        if len(d) and self._alert_decided:
            now_ns = int(d.ts_ns[-1])
            for key in [k for k, until in self._alert_decided.items() if until < now_ns]:
                del self._alert_decided[key]

    def end_input(self) -> None:
        """The input ended: its decisions do not carry over to the next one (another
        capture is another view of the network, maybe another time)."""
        for table in (self._flow_said, self._flow_decided, self._calls, self._seen_alerts,
                      self._alert_decided):  # fmt: skip
            table.clear()
        self.in_force.clear()
        self._new.clear()  # handed out already, or of an input that failed
        self._now_ns = 0

    def drain(self) -> list[Action]:
        """Actions decided since the last call."""
        out, self._new = self._new, []
        return out


class _CallState:
    __slots__ = ("action", "capped", "covered", "follows", "stages")

    def __init__(self) -> None:
        self.stages: set[str] = set()
        self.action: Action | None = None
        self.covered: set[Target] = set()
        self.follows = 0
        self.capped = False
