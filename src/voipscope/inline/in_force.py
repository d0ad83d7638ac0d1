"""The targets of the decisions in force, and what they match in the traffic.

``add`` indexes an action's targets (addresses as the flow table keeps them: two int64
halves, voipscope.addresses.ip_halves); once per packet batch ``after_batch`` matches
the flows the batch's new actions cover among the open ones (flow-table rows, payload or
not, vectorised per target; a flow's own decision needs no search), matches the flows
born in the batch by dictionary, and counts the packets and IP bytes of matched flows
after each action and before it expires (vectorised over (flow, action) pairs). At most
``max_targets`` targets are in force; expired actions are purged every PURGE_EVERY_NS
of capture time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from voipscope.addresses import ip_halves
from voipscope.dissect.base import TCP, UDP
from voipscope.flows import kernels as K
from voipscope.inline.decisions import FLOW, TO, Action, Target

PURGE_EVERY_NS = 10 * 1_000_000_000


class TargetsInForce:
    def __init__(self, max_targets: int) -> None:
        self.max_targets = max_targets
        self.targets = 0  # in force
        self.table: Any = None  # the FlowTable of the input being run (set by the pipeline)
        # By what a new flow is matched with.
        self._by_flow: dict[tuple[int, ...], list[Action]] = {}
        self._by_to: dict[tuple[int, ...], list[Action]] = {}
        self._by_from: dict[tuple[int, int], list[Action]] = {}
        self._in_force: list[Action] = []  # actions with targets that have not expired
        self._next_purge_ns = 0
        # Open flows under some action: flow id -> [(action, direction mask)]; actions
        # whose targets the open flows have not been matched against yet.
        self._matched: dict[int, list[tuple[Action, int]]] = {}
        self._unmatched: list[Action] = []
        self._pairs: _Pairs | None = None  # _matched as arrays (None: rebuild)
        # Actions decided after their batch was counted (alerts from ended flows and
        # finished calls, escalations): matched and counted against that batch in
        # ``catch_up``. ``_last`` is the batch counted last.
        self._late: list[Action] = []
        self._last: tuple[Any, Any, list[np.ndarray]] | None = None
        # Expired actions whose room ``purge(now=True)`` freed before the batch's end.
        self._retired: set[int] = set()

    @property
    def room(self) -> int:
        return max(0, self.max_targets - self.targets)

    def add(self, action: Action) -> None:
        """An action whose targets (within ``room``) are now in force."""
        if not action.targets:
            return
        self._in_force.append(action)
        for target in action.targets:
            self._index(target, action)
        self.targets += len(action.targets)
        (self._late if self._last is not None else self._unmatched).append(action)

    def catch_up(self) -> None:
        """Before the next batch (and at the end of the input): the actions decided after
        the last batch was counted are matched and counted against it (packets after
        them only), as if they had come within it; then its ended flows are forgotten."""
        late, self._late = self._late, []
        last = self._last
        if last is None:
            self._unmatched.extend(late)
            return
        d, a, ended = last
        if late:
            self._match_open_flows(late, ended)
            if d is not None:
                self._count(d, a, {id(x) for x in late})
        for rows in ended:
            for flow_id in rows[:, K.F_ID].tolist():
                if self._matched.pop(flow_id, None) is not None:
                    self._pairs = None
        self._last = None

    def flushed(self, rows: list[np.ndarray]) -> None:
        """The input ended and these flows with it: actions decided from now on (alerts
        of the last records) are matched against them too."""
        if self._last is None:
            self._last = (None, None, list(rows))
        else:
            self._last[2].extend(rows)

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

    def _match_open_flows(self, actions: list[Action], ended: list[np.ndarray]) -> None:
        """The flows the batch's new actions cover among those open and those that ended
        in this batch (flow-table rows, payload or not), vectorised per target; a flow's
        own decision needs no search."""
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
        # UDP and TCP only, as for new flows (and as nft's th sport/dport): a from
        # decision does not count the address's ICMP.
        rows = rows[(rows[:, K.F_PROTO] == UDP) | (rows[:, K.F_PROTO] == TCP)]
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

    def after_batch(self, d: Any, a: Any, ended: list[np.ndarray]) -> None:
        """Match open and new flows to the batch's actions, count matched packets,
        forget ended flows and expired actions."""
        if self._unmatched:
            actions, self._unmatched = self._unmatched, []
            self._match_open_flows(actions, ended)
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
        # Kept for actions decided after this point (catch_up); ended flows stay in
        # _matched until then.
        self._last = (d, a, ended)
        if len(d) and self._in_force:
            self.purge(int(d.ts_ns.max()))

    def _count(self, d: Any, a: Any, only: set[int] | None = None) -> None:
        """Packets (and IP bytes) of the batch each action's targets match after it and
        before it expires (``only``: of these actions, by id): vectorised over the
        (flow, action) pairs, so the cost grows with the rows of matched flows, not with
        rows x flows."""
        if only is not None:
            pairs = _Pairs.of(self._matched, only)
        else:
            pairs = self._pairs
            if pairs is None:
                pairs = self._pairs = _Pairs.of(self._matched)
        if not pairs.actions:
            return
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

    def purge(self, now_ns: int, now: bool = False) -> None:
        """Forget decisions that have expired (checked every PURGE_EVERY_NS of capture
        time at a batch's end): their targets no longer count against ``max_targets``
        and new flows no longer match them. ``now`` (a decision that found no room, in
        the middle of a batch): only their room is freed; they stay matched and counted
        until the batch's end. Flows already matched keep their pairs until they end
        (``_count`` checks each action's expiry), so a timestamp out of order does not
        cut a count short."""
        if now:
            for action in self._in_force:
                if action.expires_ns < now_ns and id(action) not in self._retired:
                    self._retired.add(id(action))
                    self.targets -= len(action.targets)
            return
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
        self._retired &= {id(a) for a in live}
        self.targets = sum(len(a.targets) for a in live if id(a) not in self._retired)

    def clear(self) -> None:
        """Forget every action (the input ended)."""
        for table in (self._by_flow, self._by_to, self._by_from, self._matched):
            table.clear()
        self._in_force.clear()
        self._unmatched.clear()
        self._late.clear()
        self._retired.clear()
        self._last = None
        self._pairs = None
        self.targets = 0
        self._next_purge_ns = 0


class _Pairs:
    """The (flow, action, direction mask) pairs of the matched flows as arrays sorted by
    flow, for ``_count``."""

    __slots__ = ("action", "actions", "end", "flow", "mask", "start", "unique_flows")

    @classmethod
    def of(cls, matched: dict[int, list[tuple[Action, int]]], only: set[int] | None = None
           ) -> _Pairs:  # fmt: skip
        pairs = cls()
        actions: list[Action] = []
        index: dict[int, int] = {}
        rows = []
        for flow_id in sorted(matched):
            for action, mask in matched[flow_id]:
                if only is not None and id(action) not in only:
                    continue
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
