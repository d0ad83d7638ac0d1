"""One SIP source and one server it sends requests to: the table of such pairs that the
pair detectors (sip_enumeration, sip_bruteforce) share, and what each of them keeps for
every pair besides its own counts.

Requests go source -> server and key the pair; a server's answer comes back the other
way, so a response finds its pair under (receiver, sender). What an alert about the pair
quotes of the sender (first request, methods, User-Agents) is noted here once.

A pair's requests come in episodes: one that starts more than the alert book's
``quiet_s`` (or the detector's window, when that is longer: nothing in the window is
lost) after the pair's last request starts the pair afresh (its alert, counts, first
time, methods), as its alert has gone quiet by then: the next alert says when the new
episode began and what it did, not the totals since the first one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from voipscope.bounded import CappedTable, add_capped
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.sip_facts import SipFacts

MAX_METHODS = 8  # request methods quoted in an alert's data
MAX_AGENTS = 8  # User-Agents quoted in an alert's data


@dataclass(slots=True, kw_only=True)
class SipPair:
    """What a pair detector keeps of every (source, server) pair; a detector's own pair
    class adds its counts."""

    methods: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None
    alert: Alert | None = None

    def note_request(self, f: SipFacts) -> None:
        if self.first_ts is None:
            self.first_ts = f.ts_s
        self.last_ts = f.ts_s if self.last_ts is None else max(self.last_ts, f.ts_s)
        add_capped(self.methods, f.method or "", MAX_METHODS)
        if f.user_agent:
            add_capped(self.agents, f.user_agent, MAX_AGENTS)

    def open_alert(self, book: AlertBook, now_s: float) -> Alert | None:
        """The pair's alert while it is still open at ``now_s`` (it may grow), else None."""
        if self.alert is not None and book.is_open(self.alert, now_s=now_s):
            return self.alert
        return None


P = TypeVar("P", bound=SipPair)


class SipPairs(Generic[P]):
    """At most ``max_pairs`` (source, server) pairs; the least recently used goes first,
    counted in ``overflow``. ``gap_s``: the silence that ends a pair's episode."""

    def __init__(
        self,
        max_pairs: int,
        new_pair: Callable[[], P],
        gap_s: float,
        carry: Callable[[P, P], None] | None = None,
    ) -> None:
        """``carry(old, new)``: what a detector keeps of a pair's earlier episodes."""
        self._table: CappedTable[tuple[str, str], P] = CappedTable(max_pairs, new_pair)
        self.gap_s = gap_s
        self._carry = carry

    def of_request(self, f: SipFacts) -> P:
        """The pair of a request (created if new, or afresh after a quiet gap), with the
        request noted."""
        pair, earlier = self._table.get_renewed(
            (f.src_ip, f.dst_ip),
            lambda p: p.last_ts is not None and f.ts_s - p.last_ts > self.gap_s,
        )
        if earlier is not None and self._carry is not None:
            self._carry(earlier, pair)
        pair.note_request(f)
        return pair

    def of_response(self, f: SipFacts) -> P | None:
        """The pair a response answers, if its requests were followed."""
        return self._table.peek((f.dst_ip, f.src_ip))

    def largest(self, size: Callable[[P], int]) -> int:
        """The biggest ``size`` over the pairs (0 without pairs), for ``state_sizes``."""
        return max((size(p) for _, p in self._table.items()), default=0)

    @property
    def overflow(self) -> int:
        return self._table.overflow

    def __len__(self) -> int:
        return len(self._table)
