"""Call records (DESIGN §3 "Call") built from SIP dialogs and registrations.

One record per INVITE call, per REGISTER attempt (a REGISTER, its challenges and the
answered retry), and per out-of-dialog exchange (OPTIONS, MESSAGE, SUBSCRIBE/NOTIFY ...).
The tracker (``voipscope.calls.sip_dialogs``) fills them in capture order; ``to_record``
gives the DESIGN §3 fields plus the SIP details as plain JSON-able values, with lists in
capture order and dicts sorted, so the same capture always gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.calls.sdp_media import MediaEndpoint
from voipscope.calls.sip_headers import NameAddr

# The states of DESIGN §3.
ANSWERED = "answered"
FAILED = "failed"
CANCELLED = "cancelled"
REDIRECTED = "redirected"
UNANSWERED = "unanswered"
ONGOING = "ongoing"

# Record kinds.
CALL = "call"
REGISTRATION = "registration"

MAX_EVIDENCE = 32  # evidence strings per record
MAX_LIST = 32  # redirect targets, user agents, relations, transfers, diversions per record
MAX_FLOWS = 64  # signalling flow ids per record


def seconds(ts_ns: int | None) -> float | None:
    # Microseconds: a float near 1.7e9 s cannot hold more, and digits beyond are noise.
    return None if ts_ns is None else round(ts_ns / 1e9, 6)


@dataclass(slots=True)
class Party:
    """One end of a call as SIP names it (From or To) and where its messages came from."""

    uri: str | None = None
    display: str | None = None
    user: str | None = None
    ip: str | None = None
    port: int | None = None

    @classmethod
    def of(cls, addr: NameAddr | None) -> Party:
        if addr is None:
            return cls()
        return cls(addr.uri, addr.display, addr.user)


@dataclass(slots=True)
class SdpExchange:
    """One SDP body of the call: who sent it, in which message, offer or answer."""

    ts_ns: int
    message: str  # "INVITE", "re-INVITE", "200 INVITE", "183 INVITE", "ACK", "UPDATE" ...
    cseq: int | None
    role: str  # "offer" | "answer" (RFC 3264 §4: the first body of a transaction offers)
    sender_ip: str
    receiver_ip: str
    media: list[MediaEndpoint]
    hold: bool = False

    def to_record(self) -> dict[str, object]:
        return {
            "ts": seconds(self.ts_ns),
            "message": self.message,
            "cseq": self.cseq,
            "role": self.role,
            "sender_ip": self.sender_ip,
            "receiver_ip": self.receiver_ip,
            "hold": self.hold,
            "media": [m.to_record() for m in self.media],
        }


@dataclass(slots=True)
class DtmfDigit:
    ts_ns: int
    digit: str
    duration_ms: int | None
    sender_ip: str
    via: str = "SIP INFO"

    def to_record(self) -> dict[str, object]:
        return {
            "ts": seconds(self.ts_ns),
            "digit": self.digit,
            "duration_ms": self.duration_ms,
            "sender_ip": self.sender_ip,
            "via": self.via,
        }


@dataclass(slots=True)
class Transfer:
    """A REFER (RFC 3515): the sender asks its peer to call ``refer_to``."""

    ts_ns: int
    cseq: int | None
    refer_to: str | None
    referred_by: str | None
    sender_ip: str
    attended: bool  # Refer-To carries Replaces (RFC 3891): an attended transfer
    response_code: int | None = None  # 202 Accepted, 403 ...
    outcome_code: int | None = None  # from the NOTIFY sipfrag: 200 = the new call answered

    def to_record(self) -> dict[str, object]:
        return {
            "ts": seconds(self.ts_ns),
            "refer_to": self.refer_to,
            "referred_by": self.referred_by,
            "sender_ip": self.sender_ip,
            "attended": self.attended,
            "response_code": self.response_code,
            "outcome_code": self.outcome_code,
        }


@dataclass(slots=True)
class Relation:
    """Another record of the same story, and why we think so."""

    record_id: str
    relation: str  # redirected-to | redirected-from | forwarded-to | forwarded-from | b2bua-leg
    evidence: str

    def to_record(self) -> dict[str, object]:
        return {"record_id": self.record_id, "relation": self.relation, "evidence": self.evidence}


@dataclass(slots=True)
class MessageCounts:
    """Messages of a record. ``requests``/``responses`` count each message once; a
    retransmission (same CSeq, method and Via branch again on the same hop) or a copy of
    it captured on another hop counts in ``repeated_*`` only. Wireshark's VoIP Calls
    comments column counts packets: ``requests[m] + repeated_requests[m]``."""

    packets: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    responses: dict[int, int] = field(default_factory=dict)
    repeated_requests: dict[str, int] = field(default_factory=dict)
    repeated_responses: int = 0
    retransmissions: int = 0  # repeats on the same hop (the rest were other hops' copies)

    def to_record(self) -> dict[str, object]:
        return {
            "packets": self.packets,
            "requests": dict(sorted(self.requests.items())),
            "responses": {str(k): v for k, v in sorted(self.responses.items())},
            "repeated_requests": dict(sorted(self.repeated_requests.items())),
            "repeated_responses": self.repeated_responses,
            "retransmissions": self.retransmissions,
        }


@dataclass(slots=True)
class SipRecord:
    """What every SIP record has: identity, times, parties, messages, evidence."""

    record_id: str
    call_id: str
    kind: str
    start_ns: int
    last_ns: int
    caller: Party = field(default_factory=Party)
    callee: Party = field(default_factory=Party)
    request_uri: str | None = None
    state: str = UNANSWERED
    final_code: int | None = None
    final_reason: str | None = None
    counts: MessageCounts = field(default_factory=MessageCounts)
    user_agents: list[str] = field(default_factory=list)
    signaling_flows: list[int] = field(default_factory=list)
    transports: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    evidence_dropped: int = 0
    relations: list[Relation] = field(default_factory=list)
    partial: bool = False  # the capture began after the first message of the exchange
    closed_by: str | None = None  # why it was handed out: "idle", "end-of-input", "table-full"

    def note(self, text: str) -> None:
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(text)
        else:
            self.evidence_dropped += 1

    def relate(self, other: SipRecord, relation: str, evidence: str) -> None:
        if len(self.relations) < MAX_LIST and all(
            r.record_id != other.record_id or r.relation != relation for r in self.relations
        ):
            self.relations.append(Relation(other.record_id, relation, evidence))

    def saw_flow(self, flow_id: int) -> None:
        if flow_id not in self.signaling_flows and len(self.signaling_flows) < MAX_FLOWS:
            self.signaling_flows.append(flow_id)

    def saw_agent(self, agent: str | None) -> None:
        if agent and agent not in self.user_agents and len(self.user_agents) < 8:
            self.user_agents.append(agent[:200])

    @property
    def end_ns(self) -> int | None:
        """The last signalling message (Wireshark's Stop); unknown while a call goes on."""
        return None if self.state == ONGOING else self.last_ns

    def base_record(self) -> dict[str, object]:
        return {
            "record_id": self.record_id,
            "call_id": self.call_id,
            "kind": self.kind,
            "protocol": "SIP",
            "app": None,
            "caller": self.caller.uri,
            "callee": self.callee.uri,
            "caller_name": self.caller.display,
            "callee_name": self.callee.display,
            "caller_user": self.caller.user,
            "callee_user": self.callee.user,
            "caller_ip": self.caller.ip,
            "caller_port": self.caller.port,
            "callee_ip": self.callee.ip,
            "callee_port": self.callee.port,
            "request_uri": self.request_uri,
            "start": seconds(self.start_ns),
            "answer": None,
            "end": seconds(self.end_ns),
            "last_message": seconds(self.last_ns),
            "state": self.state,
            "final_code": self.final_code,
            "final_reason": self.final_reason,
            "redirected_to": [],
            "streams": [],  # filled by the lead from the RTP stage (DESIGN §3)
            "signaling_flows": sorted(self.signaling_flows),
            "media_flows": [],  # flows whose Flow.call_id is this call (classify/arbiter)
            "transports": sorted(self.transports),
            "user_agents": list(self.user_agents),
            "messages": self.counts.to_record(),
            "related_calls": [r.to_record() for r in self.relations],
            "partial": self.partial,
            "closed_by": self.closed_by,
            "evidence": list(self.evidence),
            "evidence_dropped": self.evidence_dropped,
        }

    def to_record(self) -> dict[str, object]:
        return self.base_record()


@dataclass(slots=True)
class SipCall(SipRecord):
    """An INVITE dialog (RFC 3261 §13-15) and everything said inside it."""

    answer_ns: int | None = None
    ringing_ns: int | None = None  # first 180/183
    cancel_ns: int | None = None
    bye_ns: int | None = None
    ended_by: str | None = None  # "caller" | "callee": who sent the BYE
    caller_tag: str | None = None
    invite_cseq: int | None = None  # CSeq of the INVITE transaction that decides the state
    auth_challenges: int = 0  # 401/407 answered by a new INVITE with credentials
    early_tags: list[str] = field(default_factory=list)  # To tags of 1xx (forked early dialogs)
    answer_tags: list[str] = field(default_factory=list)  # To tags of 2xx (forked answers)
    redirected_to: list[str] = field(default_factory=list)
    forwarded_from: str | None = None
    forwarded: bool = False  # a 181 Call Is Being Forwarded was seen
    diversion: list[tuple[str, str | None]] = field(default_factory=list)
    history_info: list[tuple[str, str | None]] = field(default_factory=list)
    sdp: list[SdpExchange] = field(default_factory=list)
    sdp_dropped: int = 0
    dtmf: list[DtmfDigit] = field(default_factory=list)
    dtmf_dropped: int = 0
    transfers: list[Transfer] = field(default_factory=list)
    established_before_capture: bool = False

    def to_record(self) -> dict[str, object]:
        out = self.base_record()
        out.update(
            {
                "answer": seconds(self.answer_ns),
                "redirected_to": list(self.redirected_to),
                "ringing": seconds(self.ringing_ns),
                "cancelled_at": seconds(self.cancel_ns),
                "bye": seconds(self.bye_ns),
                "ended_by": self.ended_by,
                "auth_challenges": self.auth_challenges,
                "early_dialogs": len(self.early_tags),
                "answered_by_dialogs": len(self.answer_tags),
                "forwarded": self.forwarded,
                "forwarded_from": self.forwarded_from,
                "diversion": [{"uri": u, "reason": r} for u, r in self.diversion],
                "history_info": [{"uri": u, "cause": c} for u, c in self.history_info],
                "sdp": [s.to_record() for s in self.sdp],
                "sdp_dropped": self.sdp_dropped,
                "dtmf": [d.to_record() for d in self.dtmf],
                "dtmf_dropped": self.dtmf_dropped,
                "transfers": [t.to_record() for t in self.transfers],
            }
        )
        return out


@dataclass(slots=True)
class SipRegistration(SipRecord):
    """One REGISTER attempt (RFC 3261 §10): the first REGISTER, the challenges it got
    (401/407, §22), the retries with credentials, and the final answer."""

    registrar_ip: str | None = None
    contact: str | None = None
    expires_s: int | None = None  # asked for (request), replaced by the granted value
    challenges: int = 0
    credentials_sent: int = 0  # REGISTERs with Authorization/Proxy-Authorization
    credentials_rejected: int = 0  # of those, answered by another challenge or 403
    auth_usernames: list[str] = field(default_factory=list)
    realm: str | None = None
    result: str = "no-response"
    cseqs: list[int] = field(default_factory=list)

    def to_record(self) -> dict[str, object]:
        out = self.base_record()
        out.update(
            {
                "user": self.callee.uri,  # the address of record (To, §10.2)
                "registrar": self.request_uri,
                "registrar_ip": self.registrar_ip,
                "contact": self.contact,
                "expires_s": self.expires_s,
                "result": self.result,
                "challenges": self.challenges,
                "credentials_sent": self.credentials_sent,
                "credentials_rejected": self.credentials_rejected,
                "auth_usernames": list(self.auth_usernames),
                "realm": self.realm,
            }
        )
        return out
