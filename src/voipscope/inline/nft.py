"""Inline decisions into nftables, within a second of the packet that made them.

One table of our own, ``inet voipscope_inline`` (the block list's ``inet voipscope`` is
rewritten whole by its own writer; the two never touch each other):

- per target scope and address family a set of what to drop, with per-element timeouts
  (a decision's ``ttl_s``; ports are reused, so nothing is dropped forever by default):
  ``flow4``/``flow6`` (l4proto . saddr . sport . daddr . dport, both orientations of a
  5-tuple are added), ``to4``/``to6`` (l4proto . daddr . dport), ``from4``/``from6``
  (saddr), each as ``<scope><family>_drop``;
- shape: per distinct rate a set ``<scope><family>_shape<kbit>`` and a dynamic meter set
  beside it, so each 5-tuple, endpoint or host gets its own token bucket of that rate
  (``limit rate over``, burst one second), packets over it dropped;
- the rules, each with a counter, in two base chains at priority -300 ("raw", before
  connection tracking, as the block list): ``prerouting`` for packets that arrive
  (forwarded or for this host) and ``output`` for packets this host sends (5-tuples and
  endpoints only: a ``from`` address is another host's, and one of this host's own,
  named by a forged alert, must not cut the host off). Every packet passes one of them.
- an element is added again only when the new decision lasts longer than the one in
  force (the kernel takes the last timeout given, so a shorter decision would shorten a
  longer one).

``start`` creates the table afresh (a decision of an earlier run is gone); ``apply``
adds a batch of actions' elements in one ``nft -f`` transaction. The table stays when
voipscope stops: the elements expire by themselves; ``nft delete table inet
voipscope_inline`` removes everything.
"""

from __future__ import annotations

import ipaddress
import math
import subprocess
import time
from collections.abc import Callable, Sequence

from voipscope.inline.decisions import DROP, FLOW, FROM, SHAPE, TO, Action, Target

TABLE = "inet voipscope_inline"
PRIORITY = -300
CHAINS = (("prerouting", "prerouting"), ("output", "output"))
APPLY_TIMEOUT_S = 10.0
MAX_SHAPE_RATES = 16  # distinct shape rates (each is a set, a meter and two rules)
METER_TIMEOUT_S = 60  # a metered key idle this long forgets its bucket
MAX_TRACKED_ELEMENTS = 4 * 65536  # expiries remembered before the expired ones go

_KEYS = {
    # scope -> (IPv4 type and expression, IPv6 type and expression)
    FLOW: (
        ("inet_proto . ipv4_addr . inet_service . ipv4_addr . inet_service",
         "meta l4proto . ip saddr . th sport . ip daddr . th dport"),
        ("inet_proto . ipv6_addr . inet_service . ipv6_addr . inet_service",
         "meta l4proto . ip6 saddr . th sport . ip6 daddr . th dport"),
    ),
    TO: (
        ("inet_proto . ipv4_addr . inet_service", "meta l4proto . ip daddr . th dport"),
        ("inet_proto . ipv6_addr . inet_service", "meta l4proto . ip6 daddr . th dport"),
    ),
    FROM: (("ipv4_addr", "ip saddr"), ("ipv6_addr", "ip6 saddr")),
}  # fmt: skip


def _family(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def _set_name(scope: str, family: int, action: str, rate_kbit: int | None = None) -> str:
    return f"{scope}{family}_" + ("drop" if action == DROP else f"shape{rate_kbit}")


def _elements(target: Target) -> list[str]:
    """The set elements of one target (a 5-tuple both ways)."""
    if target.scope == FLOW:
        a = f"{target.ip} . {target.port}"
        b = f"{target.peer_ip} . {target.peer_port}"
        return [f"{target.proto} . {a} . {b}", f"{target.proto} . {b} . {a}"]
    if target.scope == TO:
        return [f"{target.proto} . {target.ip} . {target.port}"]
    return [target.ip]


def _rule(scope: str, family: int, set_name: str, rate_kbit: int | None) -> str:
    expr = _KEYS[scope][family == 6][1]
    if rate_kbit is None:
        return f"{expr} @{set_name} counter drop"
    bytes_per_s = max(1, rate_kbit * 1000 // 8)
    meter = set_name.replace("_shape", "_meter")
    return (f"{expr} @{set_name} update @{meter} {{ {expr} limit rate over {bytes_per_s} "
            f"bytes/second burst {max(bytes_per_s, 1500)} bytes }} counter drop")  # fmt: skip


def _chains(scope: str) -> tuple[str, ...]:
    """The chains a scope's rules go in: ``from`` (a whole address) only on the way in."""
    return ("prerouting",) if scope == FROM else tuple(chain for chain, _ in CHAINS)


def base_script() -> str:
    """Create the table afresh: the drop sets and their rules in both chains."""
    lines = [f"add table {TABLE}", f"delete table {TABLE}", f"table {TABLE} {{"]
    rules: list[tuple[str, str]] = []
    for scope in (FLOW, TO, FROM):
        for family in (4, 6):
            name = _set_name(scope, family, DROP)
            lines.append(f"  set {name} {{ type {_KEYS[scope][family == 6][0]}; flags timeout; }}")
            rules.append((scope, _rule(scope, family, name, None)))
    for chain, hook in CHAINS:
        lines.append(f"  chain {chain} {{")
        lines.append(f"    type filter hook {hook} priority {PRIORITY}; policy accept;")
        lines.extend(f"    {rule}" for scope, rule in rules if chain in _chains(scope))
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _shape_script(scope: str, family: int, rate_kbit: int) -> list[str]:
    name = _set_name(scope, family, SHAPE, rate_kbit)
    meter = name.replace("_shape", "_meter")
    key_type = _KEYS[scope][family == 6][0]
    lines = [
        f"add set {TABLE} {name} {{ type {key_type}; flags timeout; }}",
        f"add set {TABLE} {meter} {{ type {key_type}; flags dynamic,timeout; "
        f"timeout {METER_TIMEOUT_S}s; }}",
    ]
    for chain in _chains(scope):
        lines.append(f"add rule {TABLE} {chain} {_rule(scope, family, name, rate_kbit)}")
    return lines


class NftVerdicts:
    """Loads actions into the table. ``run``: how to call nft (tests pass their own)."""

    def __init__(
        self,
        nft: str = "nft",
        log: Callable[[str], None] | None = None,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ) -> None:
        self.nft = nft
        self.log = log or (lambda message: None)
        self._run = run
        self._shape_sets: set[tuple[str, int, int]] = set()
        self._rates: set[int] = set()
        # (set, element) -> when its timeout runs out (monotonic s; inf: none), and those
        # of the script being loaded (kept once nft took it).
        self._expires: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], float] = {}

    def start(self) -> None:
        """Create the table; OSError or RuntimeError (nft's message) if that fails."""
        self._load(base_script())
        self._shape_sets.clear()
        self._rates.clear()
        self._expires.clear()

    def script(self, actions: Sequence[Action]) -> str:
        """The ``nft -f`` script adding the actions' targets (marks actions that cannot
        be loaded with their error)."""
        lines: list[str] = []
        now = time.monotonic()
        self._pending = {}
        for action in actions:
            d = action.decision
            rate = d.rate_kbit if d.action == SHAPE else None
            if rate is not None and rate not in self._rates:
                if len(self._rates) >= MAX_SHAPE_RATES:
                    action.applied = False
                    action.error = f"more than {MAX_SHAPE_RATES} distinct shape rates"
                    continue
                self._rates.add(rate)
            seconds = None if d.ttl_s is None else math.ceil(d.ttl_s)
            timeout = "" if seconds is None else f" timeout {seconds}s"
            until = math.inf if seconds is None else now + seconds
            for target in action.targets:
                family = _family(target.ip)
                if rate is not None and (target.scope, family, rate) not in self._shape_sets:
                    self._shape_sets.add((target.scope, family, rate))
                    lines.extend(_shape_script(target.scope, family, rate))
                name = _set_name(target.scope, family, d.action, rate)
                fresh = []
                for element in _elements(target):
                    key = (name, element)
                    if max(self._expires.get(key, -1.0), self._pending.get(key, -1.0)) >= until:
                        continue  # in force at least as long already
                    self._pending[key] = until
                    fresh.append(f"{element}{timeout}")
                if fresh:
                    lines.append(f"add element {TABLE} {name} {{ {', '.join(fresh)} }}")
        return "\n".join(lines) + ("\n" if lines else "")

    def apply(self, actions: Sequence[Action]) -> None:
        """Add the actions' targets in one transaction; ``applied``/``error`` say how it
        went. nft refuses a transaction whole, so a refused batch is tried again one
        action at a time."""
        # (An action may carry a note in ``error`` and still be loaded: only a refused
        # one, applied False, is left out.)
        todo = [a for a in actions if a.applied is not False]
        known = (set(self._shape_sets), set(self._rates))  # restored if nft refuses
        text = self.script(todo)
        todo = [a for a in todo if a.applied is not False]
        if not text:
            for action in todo:
                action.applied = True  # nothing to load (no target): in force as decided
            return
        try:
            self._load(text)
        except (OSError, RuntimeError) as exc:
            self._shape_sets, self._rates = known
            if len(todo) > 1:
                # One refused element must not keep the batch's other decisions out.
                for action in todo:
                    self.apply([action])
                return
            for action in todo:
                action.applied = False
                action.error = str(exc)
            self.log(f"nft refused action {todo[0].action_id}: {exc}")
            return
        for action in todo:
            action.applied = True
        self._expires.update(self._pending)
        if len(self._expires) > MAX_TRACKED_ELEMENTS:
            now = time.monotonic()
            self._expires = {k: t for k, t in self._expires.items() if t > now}

    def _load(self, text: str) -> None:
        try:
            done = self._run([self.nft, "-f", "-"], input=text, capture_output=True, text=True,
                             timeout=APPLY_TIMEOUT_S, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"nft did not answer within {APPLY_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            message = (done.stderr or "").strip().splitlines()
            raise RuntimeError(message[0] if message else f"nft exited {done.returncode}")
