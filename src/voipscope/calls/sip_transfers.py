"""Call transfers inside an INVITE dialog: REFER (RFC 3515) with Refer-To and Referred-By
(RFC 3892), its response, and the NOTIFY sipfrag that reports how the transfer went.

A Refer-To carrying Replaces (RFC 3891) is an attended transfer, otherwise a blind one.
"""

from __future__ import annotations

from voipscope.calls.call_records import MAX_LIST, SipCall, Transfer
from voipscope.calls.sip_exchanges import ExchangeMessage
from voipscope.calls.sip_headers import parse_name_addr, sipfrag_status


def refer_sent(call: SipCall, m: ExchangeMessage) -> None:
    """A REFER: a new transfer on the call (up to MAX_LIST)."""
    if len(call.transfers) >= MAX_LIST:
        return
    refer_to = m.msg.header("refer-to")
    target = parse_name_addr(refer_to)
    referred_by = parse_name_addr(m.msg.header("referred-by"))
    attended = refer_to is not None and "replaces=" in refer_to.lower()
    call.transfers.append(
        Transfer(
            m.ts_ns,
            m.cseq,
            target.uri.split("?", 1)[0] if target else None,
            referred_by.uri if referred_by else None,
            m.ev.sender[0],
            attended,
        )
    )
    kind = "attended" if attended else "blind"
    call.note(f"REFER ({kind} transfer) from {m.ev.sender[0]} to {refer_to or '?'}")


def refer_answered(call: SipCall, m: ExchangeMessage, code: int) -> None:
    """A final response to a REFER: whether the transferee accepted (RFC 3515 §2.4.2)."""
    for transfer in call.transfers:
        if transfer.cseq == m.cseq and code >= 200:
            transfer.response_code = code


def transfer_notified(call: SipCall, m: ExchangeMessage) -> None:
    """A NOTIFY of the refer event package: its sipfrag is the status the transfer target
    answered with (RFC 3515 §2.4.5); the latest transfer takes it."""
    msg = m.msg
    status = sipfrag_status(msg.header("content-type"), msg.body)
    if status is not None and call.transfers and "refer" in (msg.header("event") or ""):
        call.transfers[-1].outcome_code = status
