"""Out-of-dialog SIP exchanges as records of their own: OPTIONS pings, MESSAGE,
SUBSCRIBE/NOTIFY (RFC 6665), PUBLISH (RFC 3903), and INFO/REFER sent outside a call.

One record per (Call-ID, kind) while the exchange is open; its final code is the first
final response, or a later 2xx (a fork that accepted after another refused).
"""

from __future__ import annotations

from voipscope.calls.call_records import Party, SipRecord
from voipscope.calls.sip_exchanges import Exchange, ExchangeMessage
from voipscope.calls.sip_headers import parse_name_addr


def on_out_of_dialog(exchange: Exchange, m: ExchangeMessage) -> SipRecord:
    """Add one message to the exchange's record (made by its first message)."""
    record = exchange.current
    msg = m.msg
    if record is None:
        exchange.records_made += 1
        record = SipRecord(
            f"{exchange.call_id}#{exchange.family}{exchange.records_made}",
            exchange.call_id,
            exchange.family,
            m.ts_ns,
            m.ts_ns,
        )
        exchange.current = record
        record.caller = Party.of(parse_name_addr(msg.header("from")))
        record.callee = Party.of(parse_name_addr(msg.header("to")))
        first, second = (
            (m.ev.sender, m.ev.receiver) if msg.is_request else (m.ev.receiver, m.ev.sender)
        )
        record.caller.ip, record.caller.port = first
        record.callee.ip, record.callee.port = second
        if msg.is_request:
            record.request_uri = msg.request_uri
        else:
            record.partial = True
    if not msg.is_request and not m.repeat:
        code = msg.status_code or 0
        if code >= 200 and (record.final_code is None or 200 <= code < 300):
            record.final_code, record.final_reason = code, msg.reason
    return record
