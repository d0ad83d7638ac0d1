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
- ``after_batch`` once per packet batch: new flows are matched against the targets of the
  decisions in force, and the packets of matched flows after a decision (and before it
  expires) are counted: what the decision would have stopped in this capture.

Events are decided in capture order, each at the packet that made it, so a capture gives
the same events whatever its batches; live, the same hook sees the same events within a
batch interval (voipscope.inline.nft applies them).
"""

from __future__ import annotations

import copy
import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from voipscope.addresses import ip_halves
from voipscope.anomalies import AnomalyLog
from voipscope.calls.call_records import SipCall
from voipscope.calls.tracked_calls import TrackedCall
from voipscope.detect.alerts import SEVERITIES
from voipscope.dissect.base import MEDIA, MIN_VERDICT_CONFIDENCE, SIGNALING, TCP, UDP, FlowContext
from voipscope.flows import kernels as K
from voipscope.inline.decisions import (
    ALLOW,
    FLOW,
    FROM,
    TO,
    Action,
    Decision,
    Event,
    Target,
)

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
PURGE_EVERY_NS = 10 * 1_000_000_000
# Ports an SDP body may name that are no call's media: below 1024 (RFC 3551 §8 media
# ports are dynamic ones) and SIP's own (RFC 3261 §19.1.2); a target there would drop
# other traffic the SDP's writer chose.
NOT_MEDIA_PORTS = frozenset({5060, 5061})
MIN_MEDIA_PORT = 1024
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
        # Targets in force, by what a new flow is matched with (addresses as the flow
        # table keeps them: two int64 halves, voipscope.addresses.ip_halves).
        self._by_flow: dict[tuple[int, ...], list[Action]] = {}
        self._by_to: dict[tuple[int, ...], list[Action]] = {}
        self._by_from: dict[tuple[int, int], list[Action]] = {}
        self.table: Any = None  # the FlowTable of the input being run (set by the pipeline)
        self.targets_in_force = 0
        self._in_force: list[Action] = []  # actions with targets that have not expired
        self._next_purge_ns = 0
        # Open flows under some action: flow id -> [(action, direction mask)]; actions
        # whose targets the open flows have not been matched against yet.
        self._matched: dict[int, list[tuple[Action, int]]] = {}
        self._unmatched: list[Action] = []
        self._pairs: _Pairs | None = None  # _matched as arrays (None: rebuild)

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
        self._call(record.record_id, ev.ts_ns, record.answer_ns is not None, offered,
                   lambda: _sdp_targets(record, self._signalling_ends(record.signaling_flows)),
                   record.to_record)  # fmt: skip

    def on_tracked(self, call: TrackedCall) -> None:
        """An H.323, MGCP, IAX2 or SCCP call after a message reached it (CallBook)."""
        if call.packets == 0:
            return  # just opened: the message that opened it is not in it yet
        self._call(call.call_id, call.last_ns, call.answer_ns is not None, True,
                   lambda: _announced_targets(call, self._signalling_ends(call.signaling_flows)),
                   call.to_record)  # fmt: skip

    def _call(
        self,
        key: str,
        ts_ns: int,
        answered: bool,
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
        if state.action is not None and state.action.expires_ns < ts_ns:
            state.action = None  # the decision ran out: later stages are asked again
        if state.action is not None:
            self._follow(state, key, ts_ns, targets_of())
            return
        if answered and "answered" not in state.stages:
            stage = "answered"
        elif offered and not answered and "offered" not in state.stages:
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
        self._act(event, ts_ns, first.decision, tuple(new), follows=first.action_id)

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
        src_ip = _blockable(src)
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
        room = max(0, self.max_targets - self.targets_in_force)
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
        if kept:
            self._in_force.append(action)
            for target in kept:
                self._index(target, action)
            self.targets_in_force += len(kept)
            self._unmatched.append(action)
        return action

    def _index(self, target: Target, action: Action) -> None:
        a = ip_halves(target.ip)
        if target.scope == FLOW:
            assert target.peer_ip is not None
            b = ip_halves(target.peer_ip)
            for key in (
                (target.proto, *a, target.port, *b, target.peer_port),
                (target.proto, *b, target.peer_port, *a, target.port),
            ):
                self._by_flow.setdefault(key, []).append(action)  # type: ignore[arg-type]
        elif target.scope == TO:
            self._by_to.setdefault((target.proto, *a, target.port), []).append(action)  # type: ignore[arg-type]
        else:
            self._by_from.setdefault(a, []).append(action)

    def _match_open_flows(self, ended: list[np.ndarray]) -> None:
        """The flows the batch's new actions cover among those open and those that ended
        in this batch (flow-table rows, payload or not), vectorised per target; a flow's
        own decision needs no search."""
        actions, self._unmatched = self._unmatched, []
        scan: list[Action] = []
        for action in actions:
            own = action.event.record.get("flow_id") if action.event.kind == FLOW else None
            if isinstance(own, int) and all(t.scope == FLOW for t in action.targets):
                self._matched.setdefault(own, []).append((action, 3))
                self._pairs = None
            else:
                scan.append(action)
        if not scan or self.table is None:
            return
        flows = self.table.flows
        rows = flows[np.flatnonzero(flows[:, K.F_STATE] & K.LIVE)]
        if ended:
            rows = np.concatenate([rows, *ended])
        proto, sport, dport = rows[:, K.F_PROTO], rows[:, K.F_SPORT], rows[:, K.F_DPORT]
        src = (rows[:, K.F_SRC_HI], rows[:, K.F_SRC_LO])
        dst = (rows[:, K.F_DST_HI], rows[:, K.F_DST_LO])

        def at(end: tuple[np.ndarray, np.ndarray], ip: str) -> np.ndarray:
            hi, lo = ip_halves(ip)
            return (end[0] == hi) & (end[1] == lo)

        for action in scan:
            mask = np.zeros(len(rows), np.int64)
            for t in action.targets:
                if t.scope == FLOW:
                    assert t.peer_ip is not None
                    same = at(src, t.ip) & (sport == t.port) & at(dst, t.peer_ip)
                    same &= dport == t.peer_port
                    back = at(src, t.peer_ip) & (sport == t.peer_port) & at(dst, t.ip)
                    back &= dport == t.port
                    mask |= np.where((proto == t.proto) & (same | back), 3, 0)
                elif t.scope == TO:
                    of_proto = proto == t.proto
                    mask |= np.where(of_proto & at(dst, t.ip) & (dport == t.port), 1, 0)
                    mask |= np.where(of_proto & at(src, t.ip) & (sport == t.port), 2, 0)
                else:
                    mask |= np.where(at(src, t.ip), 1, 0) | np.where(at(dst, t.ip), 2, 0)
            for k in np.flatnonzero(mask).tolist():
                flow_id = int(rows[k, K.F_ID])
                self._matched.setdefault(flow_id, []).append((action, int(mask[k])))
                self._pairs = None

    def _match_new_flow(self, flow_id: int, key: tuple[int, ...]) -> None:
        """A flow born in this batch: (proto, src hi, src lo, sport, dst hi, dst lo,
        dport) against the targets in force."""
        proto, shi, slo, sport, dhi, dlo, dport = key
        found: dict[int, tuple[Action, int]] = {}
        for action in self._by_flow.get(key, ()):
            found[action.action_id] = (action, 3)
        for end, bit in (((proto, dhi, dlo, dport), 1), ((proto, shi, slo, sport), 2)):
            for action in self._by_to.get(end, ()):
                _, before = found.get(action.action_id, (action, 0))
                found[action.action_id] = (action, before | bit)
        for host, bit in (((shi, slo), 1), ((dhi, dlo), 2)):
            for action in self._by_from.get(host, ()):
                _, before = found.get(action.action_id, (action, 0))
                found[action.action_id] = (action, before | bit)
        if found:
            # Actions of this batch were matched against the table already: no twice.
            mine = {id(a) for a, _ in self._matched.get(flow_id, [])}
            extra = [(a, m) for a, m in found.values() if id(a) not in mine]
            if extra:
                self._matched.setdefault(flow_id, []).extend(extra)
                self._pairs = None

    # -- per batch ------------------------------------------------------------------------

    def after_batch(self, d: Any, a: Any, ended: list[np.ndarray]) -> None:
        """Match open and new flows to the batch's decisions, count matched packets,
        forget ended flows."""
        if self._unmatched:
            self._match_open_flows(ended)
        if self._by_flow or self._by_to or self._by_from:
            firsts = np.flatnonzero((a.seq == 1) & (a.flow_id >= 0))
            firsts = firsts[(d.proto[firsts] == UDP) | (d.proto[firsts] == TCP)]
            columns = (d.proto, d.src_hi, d.src_lo, d.sport, d.dst_hi, d.dst_lo, d.dport)
            keys = zip(*(c[firsts].tolist() for c in columns), strict=True)
            for i, (proto, shi, slo, sport, dhi, dlo, dport), reverse in zip(
                firsts.tolist(), keys, (a.direction[firsts] == 1).tolist(), strict=True
            ):
                # The flow's src is the sender of its first packet.
                key = (proto, dhi, dlo, dport, shi, slo, sport) if reverse else (
                    proto, shi, slo, sport, dhi, dlo, dport)  # fmt: skip
                self._match_new_flow(int(a.flow_id[i]), key)
        if self._matched:
            self._count(d, a)
        for rows in ended:
            for flow_id in rows[:, K.F_ID].tolist():
                if self._matched.pop(flow_id, None) is not None:
                    self._pairs = None
                self._flow_said.pop(flow_id, None)
                self._flow_decided.pop(flow_id, None)
        if len(d) and self._in_force:
            self._purge(int(d.ts_ns[-1]))

    def _count(self, d: Any, a: Any) -> None:
        """Packets (and IP bytes) of the batch each action's targets match after it and
        before it expires: vectorised over the (flow, action) pairs, so the cost grows
        with the rows of matched flows, not with rows x flows."""
        pairs = self._pairs
        if pairs is None:
            pairs = self._pairs = _Pairs.of(self._matched)
        rows = np.flatnonzero(np.isin(a.flow_id, pairs.unique_flows))
        if rows.size == 0:
            return
        flow_ids = a.flow_id[rows]
        bit = np.where(a.direction[rows] == 0, 1, 2)
        ts = d.ts_ns[rows]
        size = d.ip_bytes[rows].astype(np.int64)
        left = np.searchsorted(pairs.flow, flow_ids, "left")
        right = np.searchsorted(pairs.flow, flow_ids, "right")
        n = len(pairs.actions)
        packets = np.zeros(n, np.int64)
        octets = np.zeros(n, np.int64)
        for k in range(int((right - left).max())):
            sel = np.flatnonzero(right - left > k)
            p = left[sel] + k
            hit = ((bit[sel] & pairs.mask[p]) != 0) & (ts[sel] > pairs.start[p])
            hit &= ts[sel] <= pairs.end[p]
            which = pairs.action[p][hit]
            packets += np.bincount(which, minlength=n)
            octets += np.bincount(which, weights=size[sel][hit], minlength=n).astype(np.int64)
        for i in np.flatnonzero(packets).tolist():
            action = pairs.actions[i]
            action.packets_after += int(packets[i])
            action.bytes_after += int(octets[i])

    def _purge(self, now_ns: int) -> None:
        """Forget decisions that have expired (checked every PURGE_EVERY_NS of capture
        time): their targets no longer count against ``max_targets``."""
        if now_ns < self._next_purge_ns:
            return
        self._next_purge_ns = now_ns + PURGE_EVERY_NS
        live = [a for a in self._in_force if a.expires_ns >= now_ns]
        if len(live) == len(self._in_force):
            return
        self._in_force = live
        for index in (self._by_flow, self._by_to, self._by_from):
            index.clear()
        for action in live:
            for target in action.targets:
                self._index(target, action)
        self.targets_in_force = sum(len(a.targets) for a in live)
        for flow_id in list(self._matched):
            kept = [(a, m) for a, m in self._matched[flow_id] if a.expires_ns >= now_ns]
            if kept:
                self._matched[flow_id] = kept
            else:
                del self._matched[flow_id]
        self._pairs = None
        for table in (self._alert_decided,):
            for key in [k for k, until in table.items() if until < now_ns]:
                del table[key]

    def end_input(self) -> None:
        """The input ended: its decisions do not carry over to the next one (another
        capture is another view of the network, maybe another time)."""
        for table in (self._by_flow, self._by_to, self._by_from, self._matched,
                      self._flow_said, self._flow_decided, self._calls, self._seen_alerts,
                      self._alert_decided):  # fmt: skip
            table.clear()
        self._in_force.clear()
        self._unmatched.clear()
        self._pairs = None
        self.targets_in_force = 0
        self._next_purge_ns = 0
        self._now_ns = 0

    def drain(self) -> list[Action]:
        """Actions decided since the last call."""
        out, self._new = self._new, []
        return out


class _Pairs:
    """The (flow, action, direction mask) pairs of the matched flows as arrays sorted by
    flow, for ``_count``."""

    __slots__ = ("action", "actions", "end", "flow", "mask", "start", "unique_flows")

    @classmethod
    def of(cls, matched: dict[int, list[tuple[Action, int]]]) -> _Pairs:
        pairs = cls()
        actions: list[Action] = []
        index: dict[int, int] = {}
        rows = []
        for flow_id in sorted(matched):
            for action, mask in matched[flow_id]:
                i = index.setdefault(id(action), len(actions))
                if i == len(actions):
                    actions.append(action)
                rows.append((flow_id, i, mask, action.ts_ns, action.expires_ns))
        table = np.array(rows, np.int64).reshape(-1, 5)
        pairs.flow, pairs.action, pairs.mask = table[:, 0], table[:, 1], table[:, 2]
        pairs.start, pairs.end = table[:, 3], table[:, 4]
        pairs.actions = actions
        pairs.unique_flows = np.unique(pairs.flow)
        return pairs


class _CallState:
    __slots__ = ("action", "capped", "covered", "follows", "stages")

    def __init__(self) -> None:
        self.stages: set[str] = set()
        self.action: Action | None = None
        self.covered: set[Target] = set()
        self.follows = 0
        self.capped = False


def _blockable(text: object) -> str | None:
    """An address a decision may name: not loopback, unspecified, multicast or broadcast
    (alerts come from packets anyone can forge, voipscope.output.blocklist)."""
    if not isinstance(text, str):
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None  # fe80::1%eth0: an interface of the sender's, not a filter's key
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return None
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return None
    return str(address)


def _announced_targets(call: TrackedCall, signalling: set[tuple[str, int]]) -> list[Target]:
    """The media endpoints an H.323 (H.245 logical channels, fastStart), MGCP (SDP) or
    SCCP (OpenReceiveChannelAck, StartMediaTransmission) call announced, as announced
    (these protocols name RTCP where they use it); for IAX2, its flow."""
    ends: list[tuple[str, int]] = []
    for m in call.media:
        address, port = _blockable(m.get("ip")), m.get("port")
        usable = address is not None and isinstance(port, int) and 0 < port < 65536
        if usable and (address, port) not in ends:
            ends.append((address, port))  # type: ignore[arg-type]
    if call.protocol == "IAX2":
        # IAX2 (RFC 5456) multiplexes calls and media on one 5-tuple: the call's media is
        # that flow, both ways, not everything sent to the peer's port 4569.
        if len(ends) < 2:
            return []
        (a, a_port), (b, b_port) = ends[:2]
        return [Target(FLOW, a, UDP, a_port, b, b_port)]
    return [Target(TO, ip, UDP, port) for ip, port in ends if _media_end(ip, port, signalling)]


def _media_end(ip: str, port: int, signalling: set[tuple[str, int]]) -> bool:
    """Whether an announced ip:port may be a media target: not a well-known or SIP port,
    not an end of the call's own signalling (an SDP body's writer chooses what it names;
    a call's drop must not become a drop of the server it came through)."""
    return port >= MIN_MEDIA_PORT and port not in NOT_MEDIA_PORTS and (ip, port) not in signalling


def _sdp_targets(record: SipCall, signalling: set[tuple[str, int]]) -> list[Target]:
    """The media endpoints the call's SDP bodies announced (RFC 8866 ``c=``/``m=``, the
    RTCP port beside each unless multiplexed, RFC 3605/5761, and ICE candidates)."""
    out: list[Target] = []
    seen: set[Target] = set()
    for exchange in record.sdp:
        for m in exchange.media:
            if m.port == 0:
                continue  # refused or removed (RFC 3264 §6)
            proto = TCP if m.protocol.upper().startswith("TCP") else UDP
            ends = [(m.ip, m.port)]
            if not m.rtcp_mux:
                ends.append((m.ip, m.rtcp_port or m.port + 1))
            ends.extend((ip, port) for ip, port, _ in m.candidates)
            for ip, port in ends:
                address = _blockable(ip)
                if address is None or not 0 < port < 65536:
                    continue
                if not _media_end(address, port, signalling):
                    continue
                target = Target(TO, address, proto, port)
                if target not in seen:
                    seen.add(target)
                    out.append(target)
    return out
