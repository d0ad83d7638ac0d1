"""What the SIP tracker keeps per (Call-ID, family) while an exchange is open, and how it
tells a new message from a retransmission or another hop's copy of one it has seen.

Shared by the tracker (``sip_dialogs``) and the modules that build its records: INVITE
calls (``sip_invite_calls``), registrations (``sip_registrations``) and out-of-dialog
exchanges (``sip_out_of_dialog``).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from voipscope.calls.call_records import ANSWERED, FAILED, REDIRECTED, UNANSWERED, SipRecord
from voipscope.calls.sip_headers import top_via_branch
from voipscope.dissect.base import TCP, MessageEvent
from voipscope.dissect.sip import SipMessage

NS = 1_000_000_000
# RFC 3261 §22.2: 401 (from a UAS or registrar) and 407 (from a proxy) ask for credentials;
# the same request is sent again with them.
AUTH_CHALLENGES = frozenset({401, 407})
MAX_TRANSACTIONS_REMEMBERED = 512  # per Call-ID: CSeq/method pairs with their offer flag
MAX_HOPS_PER_MESSAGE = 8  # hops remembered per message, to tell copies from retransmissions

# Hands a record out of the tracker before its exchange is over, with the reason (e.g. a
# new INVITE after a failed one, the next REGISTER attempt on the same Call-ID).
HandOut = Callable[[SipRecord, str], None]


@dataclass(slots=True)
class _Seen:
    hops: list[tuple[tuple[str, int], tuple[str, int]]]
    body_crc: int


@dataclass(slots=True)
class Exchange:
    """What the tracker keeps per (Call-ID, family) while the exchange is open."""

    call_id: str
    family: str  # "call" | "registration" | an out-of-dialog kind
    last_ns: int
    current: SipRecord | None = None
    records_made: int = 0
    patience_ns: int = 0
    seen: OrderedDict[tuple[object, ...], _Seen] = field(default_factory=OrderedDict)
    # (CSeq number, method) -> did the request carry SDP (RFC 3264 offer/answer roles)
    offers: OrderedDict[tuple[int | None, str], bool] = field(default_factory=OrderedDict)
    # REGISTER CSeq -> did it carry credentials
    credentialed: OrderedDict[int | None, bool] = field(default_factory=OrderedDict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.call_id, self.family)


@dataclass(slots=True)
class ExchangeMessage:
    """One message with what every handler needs already read out."""

    ev: MessageEvent
    msg: SipMessage
    method: str
    cseq: int | None
    repeat: bool  # seen before (retransmission or another hop's copy)
    body_changed: bool  # a repeat whose body differs (e.g. an ALG rewrote the SDP)
    retransmission: bool  # a repeat on a hop that already carried it

    @property
    def ts_ns(self) -> int:
        return self.ev.ts_ns

    @property
    def what(self) -> str:
        return self.method if self.msg.is_request else f"{self.msg.status_code} {self.method}"


def identify_message(
    exchange: Exchange,
    ev: MessageEvent,
    msg: SipMessage,
    method: str,
    cseq: int | None,
    max_remembered: int,
) -> ExchangeMessage:
    """Is this message new, a retransmission (same hop), or another hop's copy?
    RFC 3261 §17.2.3: the top Via branch + CSeq method name the transaction."""
    branch = top_via_branch(msg.header("via"))
    if msg.is_request:
        identity: tuple[object, ...] = ("req", method, cseq, branch)
    else:
        identity = ("resp", msg.status_code, method, cseq, branch, msg.to_tag)
    hop = (ev.sender, ev.receiver)
    crc = zlib.crc32(msg.body)
    seen = exchange.seen.get(identity)
    if seen is None:
        exchange.seen[identity] = _Seen([hop], crc)
        while len(exchange.seen) > max_remembered:
            exchange.seen.popitem(last=False)
        return ExchangeMessage(ev, msg, method, cseq, False, False, False)
    changed = crc != seen.body_crc
    same_hop = hop in seen.hops
    if not same_hop and len(seen.hops) < MAX_HOPS_PER_MESSAGE:
        seen.hops.append(hop)
    seen.body_crc = crc
    return ExchangeMessage(ev, msg, method, cseq, True, changed, same_hop)


def count_message(record: SipRecord, m: ExchangeMessage) -> None:
    """What every message adds to its record: counts, flows, user agents, transports."""
    counts = record.counts
    counts.packets += 1
    record.last_ns = max(record.last_ns, m.ts_ns)
    record.saw_flow(m.ev.flow_id)
    record.saw_agent(m.msg.user_agent)
    transport = m.ev.via or ("tcp" if m.ev.transport == TCP else "udp")
    if transport not in record.transports:
        record.transports.append(transport)
    if m.repeat:
        if m.retransmission:
            counts.retransmissions += 1
        if m.msg.is_request:
            counts.repeated_requests[m.method] = counts.repeated_requests.get(m.method, 0) + 1
        else:
            counts.repeated_responses += 1
    elif m.msg.is_request:
        counts.requests[m.method] = counts.requests.get(m.method, 0) + 1
    elif m.msg.status_code is not None:
        code = m.msg.status_code
        counts.responses[code] = counts.responses.get(code, 0) + 1


def exchange_state(code: int | None) -> str:
    """State of a registration or out-of-dialog exchange, in the same words as calls:
    answered = accepted (2xx), failed = refused (4xx-6xx, a final challenge too)."""
    if code is None:
        return UNANSWERED
    if code < 300:
        return ANSWERED
    if code < 400:
        return REDIRECTED
    return FAILED
