"""The inline stage: asks a verdict hook about flows, calls and alerts as they happen, and
keeps what it decided.

The pipeline tells it (FlowPipeline(..., inline=stage)):
- ``on_findings`` at the packet that added findings to a flow (voipscope.dissect.stage):
  the arbiter's verdict so far (``Arbiter.verdict``, which changes nothing) becomes a
  ``flow`` event the first time it is VoIP and again when it changes;
- ``on_sip`` after every SIP message (voipscope.calls.sip_dialogs): ``call`` events when
  an INVITE is offered and when it is answered, with the call as it stands then; after
  a drop or shape of a call, media that call announces later is added to it unasked;
- ``on_alerts`` with the alerts raised or escalated in a batch: ``alert`` events;
- ``after_batch`` once per packet batch: new flows are matched against the targets of the
  decisions in force, and the packets of matched flows after a decision (and before it
  expires) are counted: what the decision would have stopped in this capture.

Events are decided in capture order, each at the packet that made it, so a capture gives
the same events whatever its batches; live, the same hook sees the same events within a
batch interval (voipscope.inline.nft applies them).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from voipscope.addresses import format_ip
from voipscope.anomalies import AnomalyLog
from voipscope.calls.call_records import SipCall
from voipscope.calls.tracked_calls import TrackedCall
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
    "(max_targets); the decision's further targets were not enforced",
}
MAX_EVENTS_PER_FLOW = 4  # identified + a few changes (STUN -> DTLS -> SRTP, app found)
MAX_TARGETS = 65536  # targets in force (as the block list: attacker-driven counts are capped)
MAX_TRACKED = 100_000  # calls and alerts remembered (least recently used go first)
VOIP = (MEDIA, SIGNALING)
PURGE_EVERY_NS = 10 * 1_000_000_000


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
        # Flows: the verdict last announced and events so far; flows under a decision.
        self._flow_said: dict[int, tuple[tuple[Any, ...], int]] = {}
        self._flow_decided: set[int] = set()
        # Calls (record id): stages announced, the decision's action id, endpoints covered.
        self._calls: OrderedDict[str, _CallState] = OrderedDict()
        self._alerts: OrderedDict[tuple[Any, ...], str | None] = OrderedDict()
        # Targets in force, by what a flow is matched with.
        self._by_flow: dict[tuple[int, str, int, str, int], list[Action]] = {}
        self._by_to: dict[tuple[int, str, int], list[Action]] = {}
        self._by_from: dict[str, list[Action]] = {}
        self.targets_in_force = 0
        self._in_force: list[Action] = []  # actions with targets that have not expired
        self._next_purge_ns = 0
        # Open flows under some action: flow id -> [(action, direction mask)].
        self._matched: dict[int, list[tuple[Action, int]]] = {}

    # -- flows ----------------------------------------------------------------------------

    def on_findings(self, ctx: FlowContext, slot: int, ts_ns: int) -> None:
        del slot  # the flow table's counters are those of the batch's end: not used
        flow_id = ctx.flow_id
        if flow_id in self._flow_decided or self.arbiter is None:
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
            self._flow_decided.add(flow_id)

    # -- calls ----------------------------------------------------------------------------

    def on_sip(self, ev: Any, record: Any) -> None:
        """A SIP message (MessageEvent) and the record it joined, as it stands after it."""
        if not isinstance(record, SipCall):
            return
        state = self._calls.get(record.record_id)
        if state is None:
            state = _CallState()
            self._calls[record.record_id] = state
            while len(self._calls) > MAX_TRACKED:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(record.record_id)
        if state.action is not None:
            self._follow(state, record, ev.ts_ns)
            return
        msg = ev.message
        stage = None
        if record.answer_ns is not None and "answered" not in state.stages:
            stage = "answered"
        elif (
            "offered" not in state.stages
            and record.answer_ns is None
            and getattr(msg, "is_request", False)
            and getattr(msg, "method", None) == "INVITE"
        ):
            stage = "offered"
        if stage is None:
            return
        state.stages.add(stage)
        targets = _sdp_targets(record)
        event = Event("call", stage, ev.ts_ns / 1e9, record.to_record(), tuple(targets),
                      f"call {record.record_id}")  # fmt: skip
        action = self._ask(event, ev.ts_ns)
        if action is not None:
            state.action = action
            state.covered.update(targets)

    def on_tracked(self, call: TrackedCall) -> None:
        """An H.323, MGCP, IAX2 or SCCP call after a message reached it (CallBook)."""
        if call.packets == 0:
            return  # just opened: the message that opened it is not in it yet
        key = call.call_id
        state = self._calls.get(key)
        if state is None:
            state = _CallState()
            self._calls[key] = state
            while len(self._calls) > MAX_TRACKED:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(key)
        targets = _announced_targets(call)
        if state.action is not None:
            new = [t for t in targets if t not in state.covered]
            if new:
                state.covered.update(new)
                event = Event("call", "media", call.last_ns / 1e9, call.to_record(),
                              tuple(new), f"call {key}")  # fmt: skip
                first = state.action
                self._act(event, call.last_ns, first.decision, tuple(new), first.action_id)
            return
        if call.answer_ns is not None and "answered" not in state.stages:
            stage = "answered"
        elif "offered" not in state.stages and call.answer_ns is None:
            stage = "offered"
        else:
            return
        state.stages.add(stage)
        event = Event("call", stage, call.last_ns / 1e9, call.to_record(), tuple(targets),
                      f"call {key}")  # fmt: skip
        action = self._ask(event, call.last_ns)
        if action is not None:
            state.action = action
            state.covered.update(targets)

    def _follow(self, state: _CallState, record: SipCall, ts_ns: int) -> None:
        """Media a dropped or shaped call announces after the decision (a re-INVITE, the
        answer to an offer) is covered by the same decision, unasked."""
        first = state.action
        assert first is not None
        new = [t for t in _sdp_targets(record) if t not in state.covered]
        if not new:
            return
        state.covered.update(new)
        event = Event("call", "media", ts_ns / 1e9, record.to_record(), tuple(new),
                      f"call {record.record_id}")  # fmt: skip
        self._act(event, ts_ns, first.decision, tuple(new), follows=first.action_id)

    def calls_finished(self, records: Iterable[dict[str, Any]]) -> None:
        """Calls handed out as final: no message can join them any more."""
        for record in records:
            for key in (record.get("record_id"), record.get("call_id")):
                if isinstance(key, str):
                    self._calls.pop(key, None)

    # -- alerts ---------------------------------------------------------------------------

    def on_alerts(self, alerts: Iterable[dict[str, Any]]) -> None:
        for alert in alerts:
            key = (alert.get("kind"), alert.get("src_ip"), alert.get("dst_ip"),
                   alert.get("summary"))  # fmt: skip
            decided_key = ("decided", alert.get("kind"), alert.get("src_ip"))
            if decided_key in self._alerts:
                continue
            stage = "escalated" if key in self._alerts else "raised"
            self._alerts[key] = alert.get("severity")
            self._alerts.move_to_end(key)
            ts = alert.get("last_ts") or alert.get("ts") or 0.0
            ts_ns = int(float(ts) * 1e9)
            targets = ()
            src = _blockable(alert.get("src_ip"))
            if src is not None:
                targets = (Target(FROM, src),)
            subject = f"alert {alert.get('kind')} {alert.get('src_ip')}"
            event = Event("alert", stage, ts_ns / 1e9, dict(alert), targets, subject)
            if self._ask(event, ts_ns) is not None:
                self._alerts[decided_key] = None
            while len(self._alerts) > MAX_TRACKED:
                self._alerts.popitem(last=False)

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
        return self._act(event, ts_ns, answer, event.targets, follows=None)

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
            self._match_open_flows(action)
        return action

    def _index(self, target: Target, action: Action) -> None:
        if target.scope == FLOW:
            assert target.proto is not None and target.port is not None
            assert target.peer_ip is not None and target.peer_port is not None
            for key in (
                (target.proto, target.ip, target.port, target.peer_ip, target.peer_port),
                (target.proto, target.peer_ip, target.peer_port, target.ip, target.port),
            ):
                self._by_flow.setdefault(key, []).append(action)
        elif target.scope == TO:
            assert target.proto is not None and target.port is not None
            self._by_to.setdefault((target.proto, target.ip, target.port), []).append(action)
        else:
            self._by_from.setdefault(target.ip, []).append(action)

    def _match_open_flows(self, action: Action) -> None:
        flow_ids = {
            int(ctx.flow_id): ctx
            for ctx in self.contexts.values()
        } if any(t.scope != FLOW for t in action.targets) else {}  # fmt: skip
        if not flow_ids:
            # A flow's own decision: that flow (it has a context: it carried payload).
            event_flow = action.event.record.get("flow_id") if action.event.kind == FLOW else None
            ctx = self.contexts.get(event_flow) if isinstance(event_flow, int) else None
            flow_ids = {ctx.flow_id: ctx} if ctx is not None else {}
        for flow_id, ctx in flow_ids.items():
            mask = _mask(action.targets, ctx.transport, ctx.src_ip, ctx.src_port, ctx.dst_ip,
                         ctx.dst_port)  # fmt: skip
            if mask:
                self._matched.setdefault(flow_id, []).append((action, mask))

    def _match_new_flow(self, flow_id: int, proto: int, src: str, sport: int, dst: str,
                        dport: int) -> None:  # fmt: skip
        found: dict[int, tuple[Action, int]] = {}
        for key, bit in (((proto, src, sport, dst, dport), 3),):
            for action in self._by_flow.get(key, ()):
                found[action.action_id] = (action, bit)
        for (ip, port), bit in (((dst, dport), 1), ((src, sport), 2)):
            for action in self._by_to.get((proto, ip, port), ()):
                _, before = found.get(action.action_id, (action, 0))
                found[action.action_id] = (action, before | bit)
        for ip, bit in ((src, 1), (dst, 2)):
            for action in self._by_from.get(ip, ()):
                _, before = found.get(action.action_id, (action, 0))
                found[action.action_id] = (action, before | bit)
        if found:
            self._matched[flow_id] = list(found.values())

    # -- per batch ------------------------------------------------------------------------

    def after_batch(self, d: Any, a: Any, ended: list[np.ndarray]) -> None:
        """Match the batch's new flows, count matched packets, forget ended flows."""
        if self._by_flow or self._by_to or self._by_from:
            firsts = np.flatnonzero((a.seq == 1) & (a.flow_id >= 0))
            firsts = firsts[(d.proto[firsts] == UDP) | (d.proto[firsts] == TCP)]
            for i in firsts.tolist():
                version = int(d.ip_ver[i])
                here = format_ip(version, int(d.src_hi[i]), int(d.src_lo[i]))
                there = format_ip(version, int(d.dst_hi[i]), int(d.dst_lo[i]))
                sport, dport = int(d.sport[i]), int(d.dport[i])
                if int(a.direction[i]) == 1:  # the flow's src is the first packet's sender
                    here, there, sport, dport = there, here, dport, sport
                self._match_new_flow(int(a.flow_id[i]), int(d.proto[i]), here, sport, there,
                                     dport)  # fmt: skip
        if self._matched:
            self._count(d, a)
        if len(d) and self._in_force:
            self._purge(int(d.ts_ns[-1]))
        for rows in ended:
            for flow_id in rows[:, K.F_ID].tolist():
                self._matched.pop(flow_id, None)
                self._flow_said.pop(flow_id, None)
                self._flow_decided.discard(flow_id)

    def _count(self, d: Any, a: Any) -> None:
        ids = np.fromiter(self._matched, np.int64, len(self._matched))
        rows = np.flatnonzero(np.isin(a.flow_id, ids))
        if rows.size == 0:
            return
        flow_ids = a.flow_id[rows]
        bit = np.where(a.direction[rows] == 0, 1, 2)
        ts = d.ts_ns[rows]
        size = d.ip_bytes[rows].astype(np.int64)
        for flow_id in np.unique(flow_ids).tolist():
            of_flow = flow_ids == flow_id
            for action, mask in self._matched[flow_id]:
                hit = of_flow & ((bit & mask) != 0) & (ts > action.ts_ns)
                hit &= ts <= action.expires_ns
                n = int(np.count_nonzero(hit))
                if n:
                    action.packets_after += n
                    action.bytes_after += int(size[hit].sum())

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

    def end_input(self) -> None:
        """The input ended: its decisions do not carry over to the next one (another
        capture is another view of the network, maybe another time)."""
        for table in (self._by_flow, self._by_to, self._by_from, self._matched,
                      self._flow_said, self._calls, self._alerts):  # fmt: skip
            table.clear()
        self._flow_decided.clear()
        self._in_force.clear()
        self.targets_in_force = 0

    def drain(self) -> list[Action]:
        """Actions decided since the last call."""
        out, self._new = self._new, []
        return out


class _CallState:
    __slots__ = ("action", "covered", "stages")

    def __init__(self) -> None:
        self.stages: set[str] = set()
        self.action: Action | None = None
        self.covered: set[Target] = set()


def _mask(targets: Iterable[Target], proto: int, src: str, sport: int, dst: str,
          dport: int) -> int:  # fmt: skip
    """Which directions of a flow the targets cover: bit 0 src->dst, bit 1 dst->src."""
    mask = 0
    for t in targets:
        if t.scope == FLOW:
            if t.proto == proto and {(t.ip, t.port), (t.peer_ip, t.peer_port)} == {
                (src, sport),
                (dst, dport),
            }:
                mask |= 3
        elif t.scope == TO:
            if t.proto == proto and (t.ip, t.port) == (dst, dport):
                mask |= 1
            if t.proto == proto and (t.ip, t.port) == (src, sport):
                mask |= 2
        else:
            mask |= (1 if t.ip == src else 0) | (2 if t.ip == dst else 0)
    return mask


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


def _announced_targets(call: TrackedCall) -> list[Target]:
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
    return [Target(TO, address, UDP, port) for address, port in ends]


def _sdp_targets(record: SipCall) -> list[Target]:
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
                target = Target(TO, address, proto, port)
                if target not in seen:
                    seen.add(target)
                    out.append(target)
    return out
