"""What detectors read from one SIP message event: who sent it to whom, which request
or answer it is, whose extension it names, the digest user name and the User-Agent.

Header values are attacker-controlled; everything here returns None for what it cannot
read and never raises (the parsers it uses promise the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voipscope.calls.sip_headers import digest_username, parse_name_addr
from voipscope.dissect.base import MessageEvent
from voipscope.dissect.sip import SipMessage

MAX_USER_CHARS = 64  # an extension longer than this is kept cut (it is only a label)
MAX_AGENT_CHARS = 200
_STALE = re.compile(r"\bstale\s*=\s*\"?true", re.IGNORECASE)


@dataclass(slots=True, frozen=True)
class SipFacts:
    ts_s: float  # capture time
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: int  # IP protocol number
    is_request: bool
    method: str | None  # of the request, or from the CSeq of a response
    status: int | None  # responses only
    call_id: str | None
    cseq: int | None
    target_user: str | None  # the extension it is about (To of REGISTER, else R-URI)
    auth_username: str | None  # Digest username of (Proxy-)Authorization (RFC 3261 §22)
    user_agent: str | None  # User-Agent (requests) or Server (responses)
    # A challenge saying the credentials were right but the nonce old (RFC 7616 §3.3
    # "stale"): a refresh, not a refused guess.
    stale_challenge: bool = False

    @property
    def transaction(self) -> tuple[str | None, int | None, str | None]:
        """A response's key back to its request (RFC 3261 §17.1.3, without the branch:
        scanners reuse Via branches, the Call-ID and CSeq pair is what they vary)."""
        return (self.call_id, self.cseq, self.method)


def sip_facts(event: MessageEvent) -> SipFacts | None:
    """The facts of a SIP message event; None for other protocols."""
    msg = event.message
    if event.protocol != "SIP" or not isinstance(msg, SipMessage):
        return None
    cseq = msg.cseq
    method = msg.method if msg.is_request else (cseq[1] if cseq else None)
    target = None
    auth = None
    if msg.is_request:
        target = _target_user(msg, method)
        auth = digest_username(msg.header("authorization") or msg.header("proxy-authorization"))
    agent = msg.user_agent
    stale = False
    if msg.status_code in (401, 407):
        challenge = msg.header("www-authenticate") or msg.header("proxy-authenticate") or ""
        stale = _STALE.search(challenge) is not None
    return SipFacts(
        ts_s=event.ts_ns / 1e9,
        src_ip=event.sender[0],
        src_port=event.sender[1],
        dst_ip=event.receiver[0],
        dst_port=event.receiver[1],
        transport=event.transport,
        is_request=msg.is_request,
        method=method,
        status=msg.status_code,
        call_id=msg.call_id,
        cseq=cseq[0] if cseq else None,
        target_user=target[:MAX_USER_CHARS] if target else None,
        auth_username=auth[:MAX_USER_CHARS] if auth else None,
        user_agent=agent[:MAX_AGENT_CHARS] if agent else None,
        stale_challenge=stale,
    )


def _target_user(msg: SipMessage, method: str | None) -> str | None:
    # REGISTER names the address of record in To (RFC 3261 §10.2); its request URI is the
    # registrar's domain. Other requests name the callee in the request URI (§8.1.1.1).
    to = parse_name_addr(msg.header("to"))
    if method == "REGISTER":
        return to.user if to else None
    uri = parse_name_addr(f"<{msg.request_uri}>") if msg.request_uri else None
    if uri is not None and uri.user:
        return uri.user
    return to.user if to else None
