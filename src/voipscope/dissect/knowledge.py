"""Cross-flow facts: what one flow's bytes say about other flows.

SDP announces where media will flow (RFC 4566 ``c=``/``m=``), STUN/TURN reveal relayed
peers (XOR-PEER-ADDRESS, RFC 8656 §14.3), DNS answers and TLS SNI name the hosts behind
addresses. Dissectors write these facts here; the arbiter reads them when it judges a
later flow. Dissectors never read each other's state (DESIGN §1).

Both tables hold attacker-controlled data, so both are bounded: the oldest entry goes
when a table is full (LRU on insertion), and evictions are counted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any, TypeVar

T = TypeVar("T")

EXPECTATION_LEAD_NS = 1_000_000_000
HISTORY = 4
NAME_HISTORY = 8  # names per address (a CDN address serves many)


@dataclass(slots=True, frozen=True)
class Expectation:
    """A later flow touching ``ip:port`` is expected to carry ``protocol``."""

    protocol: str  # "RTP", "RTCP", "T.38", "SRTP", ...
    category: str
    evidence: str  # e.g. "SDP m=audio 49170 RTP/AVP 0 in INVITE of flow 12"
    source_flow_id: int
    ts_ns: int
    media: str | None = None
    app: str | None = None
    call_id: str | None = None
    codec: str | None = None


@dataclass(slots=True, frozen=True)
class HostName:
    name: str
    how: str  # "DNS answer", "TLS SNI", "QUIC SNI", "HTTP Host", "STUN REALM"
    source_flow_id: int
    ts_ns: int


class Knowledge:
    def __init__(
        self, max_expectations: int = 65536, max_names: int = 65536, ttl_s: float = 3600.0
    ) -> None:
        self.max_expectations = max_expectations
        self.max_names = max_names
        self.ttl_ns = int(ttl_s * 1e9)
        # Per ip:port the last few expectations: a re-INVITE (T.38 switch, hold) announces
        # the same port again, and flows that began before it must still find theirs.
        self._expected: OrderedDict[tuple[str, int], list[Expectation]] = OrderedDict()
        # Per address the last few names learned, oldest first (a CDN address serves many).
        self._names: OrderedDict[str, list[HostName]] = OrderedDict()
        self._sockets: OrderedDict[tuple[str, str, int], list[int]] = OrderedDict()
        self.evicted = 0
        # Signalling messages of the current batch (MessageEvent), drained by the pipeline.
        self.messages: list[Any] = []
        self._tables: dict[str, Any] = {}

    def table(self, name: str, factory: Callable[[], T]) -> T:
        """A protocol's own cross-flow table (``dissect.skype_hosts``), made on first
        use. The table bounds itself and counts its own evictions."""
        found = self._tables.get(name)
        if found is None:
            found = self._tables[name] = factory()
        return found  # type: ignore[no-any-return]

    def drain_messages(self) -> list[Any]:
        out, self.messages = self.messages, []
        return out

    def expect(self, ip: str, port: int, expectation: Expectation) -> None:
        key = (ip, port)
        history = [*self._expected.get(key, ()), expectation]
        self._put_newest(self._expected, key, history[-HISTORY:], self.max_expectations)

    def _put_newest(self, table: OrderedDict[Any, Any], key: Any, value: Any, cap: int) -> None:
        """``key`` set to ``value`` as the most recently used entry; beyond ``cap`` the
        least recently used one goes, counted in ``evicted``."""
        table.pop(key, None)
        table[key] = value
        if len(table) > cap:
            table.popitem(last=False)
            self.evicted += 1

    def expected(self, ip: str, port: int, ts_ns: int) -> Expectation | None:
        """The newest expectation for ``ip:port`` made before ``ts_ns`` and not stale.
        One without a call (a TURN peer address) carries the call of an older one for
        the same address that had one (the SDP that announced it): both describe the
        same media, and the newer must not hide whose it is."""
        # Media may start a moment before the SDP answer is captured (early media,
        # capture points): allow one second of lead.
        newest = None
        for found in reversed(self._expected.get((ip, port), ())):
            if not -EXPECTATION_LEAD_NS <= ts_ns - found.ts_ns <= self.ttl_ns:
                continue
            if newest is None:
                if found.call_id is not None:
                    return found
                newest = found
            elif found.call_id is not None and found.category == newest.category:
                return replace(newest, call_id=found.call_id,
                               evidence=f"{newest.evidence}; {found.evidence}")  # fmt: skip
        return newest

    def count_socket(self, kind: str, ip: str, port: int, passed: bool) -> None:
        """Tally, per endpoint, flows whose packets did or did not pass a weak per-packet
        test (``kind``, e.g. the Skype SoM header). One flow proves little; a socket whose
        flows to many peers all pass is a client of that protocol."""
        key = (kind, ip, port)
        tally = self._sockets.get(key) or [0, 0]
        tally[0 if passed else 1] += 1
        self._put_newest(self._sockets, key, tally, self.max_names)

    def socket_tally(self, kind: str, ip: str, port: int) -> tuple[int, int]:
        tally = self._sockets.get((kind, ip, port))
        return (tally[0], tally[1]) if tally else (0, 0)

    def learn_name(self, ip: str, name: str, how: str, flow_id: int, ts_ns: int) -> None:
        name = name.rstrip(".").lower()
        if not name:
            return
        history = list(self._names.get(ip, ()))
        if not history or history[-1].name != name:
            # The same name again (every DNS answer for it) changes nothing it says, and
            # would push out what an earlier flow's judgement needs.
            history.append(HostName(name, how, flow_id, ts_ns))
        self._put_newest(self._names, ip, history[-NAME_HISTORY:], self.max_names)

    def name_of(
        self, ip: str, as_of_ns: int | None = None, skip: Collection[str] = ()
    ) -> HostName | None:
        """The newest name learned for ``ip`` (by ``as_of_ns``, when given: what was
        known when a flow ended, whether or not later packets were read already -- a
        batch of packets holds some that came after the flow's last). ``skip``: names not
        to return (a flow's own SNI or Host, which its judge reads from the flow itself),
        so a DNS answer before them still speaks for the address."""
        for found in reversed(self._names.get(ip, ())):
            if (as_of_ns is None or found.ts_ns <= as_of_ns) and found.name not in skip:
                return found
        return None
