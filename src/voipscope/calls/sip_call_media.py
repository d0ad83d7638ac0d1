"""What the signalling of an INVITE call says about its media: the SDP bodies with their
offer/answer role (RFC 3264; late offers, RFC 3261 §13.2.1; reliable provisionals, RFC
3262 §5), hold, and keypad digits sent in INFO (RFC 6086) rather than in the media.

Each list on the call is capped (``max_sdp_per_call``, ``max_dtmf_per_call``); what goes
over is counted, not kept.
"""

from __future__ import annotations

from voipscope.calls.call_records import DtmfDigit, SdpExchange, SipCall
from voipscope.calls.sdp_media import announced_media, is_hold
from voipscope.calls.sip_exchanges import MAX_TRANSACTIONS_REMEMBERED, Exchange, ExchangeMessage
from voipscope.calls.sip_headers import dtmf_from_info
from voipscope.errors import DecodeError

# Requests that can carry an offer whose answer comes in their response (RFC 3264 §4,
# RFC 3311 UPDATE, RFC 3262 PRACK); remembered per CSeq to give responses their role.
OFFERING_METHODS = ("INVITE", "UPDATE", "PRACK")


def sdp_in_request(
    exchange: Exchange, call: SipCall, m: ExchangeMessage, initial: bool, max_sdp: int
) -> None:
    """Remember whether an offering request carried SDP, and keep the SDP it carried."""
    msg = m.msg
    method = m.method
    if method in OFFERING_METHODS:
        exchange.offers[(m.cseq, method)] = bool(msg.body)
        while len(exchange.offers) > MAX_TRANSACTIONS_REMEMBERED:
            exchange.offers.popitem(last=False)
    if msg.body:
        role = "offer"
        if method == "ACK" or (method == "PRACK" and not _invite_offered(exchange, call)):
            role = "answer"  # late offer: the 2xx/reliable 1xx offered (RFC 3262 §5)
        label = "re-INVITE" if method == "INVITE" and not initial else method
        _add_sdp(call, m, label, role, max_sdp)


def sdp_in_response(
    exchange: Exchange, call: SipCall, m: ExchangeMessage, code: int, max_sdp: int
) -> None:
    """Keep the SDP of a response: the answer to an offering request, else an offer."""
    if not m.msg.body:
        return
    offered = exchange.offers.get((m.cseq, m.method))
    role = "answer" if offered else "offer"
    label = f"{code} {m.method}"
    if m.method == "INVITE" and m.cseq != call.invite_cseq:
        label = f"{code} re-INVITE"
    _add_sdp(call, m, label, role, max_sdp)


def info_dtmf(call: SipCall, m: ExchangeMessage, max_dtmf: int) -> None:
    """A digit sent as INFO (application/dtmf-relay or application/dtmf)."""
    found = dtmf_from_info(m.msg.header("content-type"), m.msg.body)
    if found is None:
        return
    if len(call.dtmf) >= max_dtmf:
        call.dtmf_dropped += 1
        return
    digit, duration = found
    call.dtmf.append(DtmfDigit(m.ts_ns, digit, duration, m.ev.sender[0]))


def _invite_offered(exchange: Exchange, call: SipCall) -> bool:
    return bool(exchange.offers.get((call.invite_cseq, "INVITE")))


def _add_sdp(call: SipCall, m: ExchangeMessage, label: str, role: str, max_sdp: int) -> None:
    content_type = (m.msg.header("content-type") or "").lower()
    if "sdp" not in content_type and not m.msg.body.startswith(b"v=0"):
        return  # multipart/ISUP bodies etc.: not an SDP we can read
    if len(call.sdp) >= max_sdp:
        call.sdp_dropped += 1
        return
    try:
        media = announced_media(m.msg.body)
    except DecodeError:
        return  # the dissector already reported sip_bad_sdp for it
    if m.repeat and call.sdp and call.sdp[-1].media == media:
        return
    hold = is_hold(media)
    call.sdp.append(
        SdpExchange(m.ts_ns, label, m.cseq, role, m.ev.sender[0], m.ev.receiver[0], media, hold)
    )
    if hold and label != "INVITE":
        call.note(f"{label} from {m.ev.sender[0]} puts the other side on hold")
