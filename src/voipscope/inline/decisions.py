"""What a verdict hook is told (an Event and the Targets it names) and what it answers
(a Decision: allow, drop or shape), and the Action record of each decision.

A Target is what a packet filter can match, so a decision means the same thing offline
(counted in the capture) and live (loaded into nftables, voipscope.inline.nft):

- ``flow``: one 5-tuple, both directions (a flow's own packets);
- ``to``: packets to one ip:port (a media endpoint an SDP body announced: RFC 8866 §5.7
  ``c=`` and §5.14 ``m=``), so both sides' endpoints cover both directions of the media
  wherever it comes from (NAT, latching);
- ``from``: every packet from one address (the offender of an alert).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ALLOW = "allow"
DROP = "drop"
SHAPE = "shape"
ACTIONS = (ALLOW, DROP, SHAPE)
DEFAULT_TTL_S = 3600.0  # a decision lasts an hour unless said otherwise: ports get reused
MAX_TTL_S = 7 * 86400.0
MAX_RATE_KBIT = 10_000_000  # 10 Gbit/s: a shape rate above it is a typo
MAX_REASON_CHARS = 200

FLOW = "flow"
TO = "to"
FROM = "from"
SCOPES = (FLOW, TO, FROM)


@dataclass(frozen=True, slots=True)
class Decision:
    """A hook's answer. Make one with ``allow``, ``drop`` or ``shape``."""

    action: str
    reason: str = ""
    rate_kbit: int | None = None  # shape: the rate the targets' packets are held to
    ttl_s: float | None = DEFAULT_TTL_S  # how long it holds (None: for the whole run)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; choose {', '.join(ACTIONS)}")
        if self.action == SHAPE:
            rate = self.rate_kbit
            whole = isinstance(rate, int) and not isinstance(rate, bool)
            if not whole or not 1 <= rate <= MAX_RATE_KBIT:  # type: ignore[operator]
                raise ValueError(f"shape needs rate_kbit, an integer 1..{MAX_RATE_KBIT}")
        elif self.rate_kbit is not None:
            raise ValueError("rate_kbit goes with shape only")
        ttl = self.ttl_s
        if ttl is not None and not (isinstance(ttl, int | float) and math.isfinite(ttl)
                                    and 1 <= ttl <= MAX_TTL_S):  # fmt: skip
            raise ValueError(f"ttl_s must be None or 1..{MAX_TTL_S:.0f} seconds")
        if not isinstance(self.reason, str):
            raise ValueError("reason must be a string")


def allow(reason: str = "") -> Decision:
    """Let it pass (the same as answering None): a later event about it is still asked."""
    return Decision(ALLOW, reason, None, None)


def drop(reason: str = "", ttl_s: float | None = DEFAULT_TTL_S) -> Decision:
    """Drop the event's targets' packets for ``ttl_s`` seconds."""
    return Decision(DROP, reason, None, ttl_s)


def shape(rate_kbit: int, reason: str = "", ttl_s: float | None = DEFAULT_TTL_S) -> Decision:
    """Hold each of the event's targets to ``rate_kbit`` kbit/s (excess packets dropped)."""
    return Decision(SHAPE, reason, rate_kbit, ttl_s)


@dataclass(frozen=True, slots=True)
class Target:
    scope: str  # flow | to | from
    ip: str  # flow: one end; to: the endpoint; from: the sender
    proto: int | None = None  # IP protocol (17 UDP, 6 TCP); None for ``from``
    port: int | None = None
    peer_ip: str | None = None  # flow: the other end
    peer_port: int | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "proto": self.proto,
            "ip": self.ip,
            "port": self.port,
            "peer_ip": self.peer_ip,
            "peer_port": self.peer_port,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """What a hook is asked about.

    - ``kind`` "flow", ``stage`` "identified" (the first VoIP verdict of a flow, at the
      packet that made it) or "reidentified" (protocol, app or category changed later);
      ``record``: the flow as the arbiter judges it so far (Flow record fields).
    - ``kind`` "call" (SIP), ``stage`` "offered" (the INVITE) or "answered" (the 2xx);
      ``record``: the Call record as it stands after that message (SDP included).
    - ``kind`` "alert", ``stage`` "raised" or "escalated" (its severity rose);
      ``record``: the Alert record.
    """

    kind: str
    stage: str
    ts: float  # capture time (epoch s) of the packet or message that made the event
    record: dict[str, Any]
    targets: tuple[Target, ...]
    subject: str  # "flow 12", "call <record id>", "alert sip-scan 10.0.0.66"


@dataclass(slots=True)
class Action:
    """One decision to drop or shape, the targets it covers and (offline) what it would
    have stopped. ``follows``: the action of the same call this one extends to media the
    call announced after the decision."""

    action_id: int
    ts_ns: int  # capture time of the packet that made the event: the decision's time
    event: Event
    decision: Decision
    targets: tuple[Target, ...]
    follows: int | None = None
    packets_after: int = 0
    bytes_after: int = 0
    targets_dropped: int = 0  # targets over the table's bound (not enforced)
    applied: bool | None = None  # live with --apply: loaded into nftables
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def expires_ns(self) -> int:
        ttl = self.decision.ttl_s
        return 1 << 62 if ttl is None else self.ts_ns + int(ttl * 1e9)

    def to_record(self, counted: bool) -> dict[str, Any]:
        """The Action record; ``counted``: packets_after/bytes_after are known (offline)."""
        rec = self.event.record
        return {
            "action_id": self.action_id,
            "ts": round(self.ts_ns / 1e9, 6),
            "action": self.decision.action,
            "rate_kbit": self.decision.rate_kbit,
            "ttl_s": self.decision.ttl_s,
            "reason": self.decision.reason[:MAX_REASON_CHARS],
            "event": self.event.kind,
            "stage": self.event.stage,
            "subject": self.event.subject,
            "flow_id": rec.get("flow_id") if self.event.kind == FLOW else None,
            "call_id": rec.get("call_id") if self.event.kind in ("flow", "call") else None,
            "record_id": rec.get("record_id") if self.event.kind == "call" else None,
            "alert_kind": rec.get("kind") if self.event.kind == "alert" else None,
            "protocol": rec.get("protocol") if self.event.kind != "alert" else None,
            "app": rec.get("app") if self.event.kind != "alert" else None,
            "follows": self.follows,
            "targets": [t.to_record() for t in self.targets],
            "targets_dropped": self.targets_dropped,
            "packets_after": self.packets_after if counted else None,
            "bytes_after": self.bytes_after if counted else None,
            "applied": self.applied,
            "error": self.error,
        }
