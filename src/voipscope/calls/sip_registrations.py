"""REGISTER attempts (RFC 3261 §10) as records of their own: a REGISTER, the challenges it
got (§22, digest auth) and the retries that answer them.

One record per attempt: a REGISTER continues the open attempt when it answers that
attempt's challenge with credentials (or replaces a REGISTER still without answer) for the
same address of record within ``auth_retry_gap_s``; otherwise the attempt is handed out
("next-attempt") and a new one starts. The result says what the registrar did with it.
"""

from __future__ import annotations

from voipscope.calls.call_records import MAX_LIST, REGISTRATION, Party, SipRegistration
from voipscope.calls.sip_calls_config import SipCallsConfig
from voipscope.calls.sip_exchanges import (
    AUTH_CHALLENGES,
    MAX_TRANSACTIONS_REMEMBERED,
    NS,
    Exchange,
    ExchangeMessage,
    HandOut,
)
from voipscope.calls.sip_headers import (
    contact_expires,
    contact_uris,
    digest_realm,
    digest_username,
    parse_name_addr,
)
from voipscope.dissect.sip import SipMessage
from voipscope.text_fields import is_decimal

MAX_EXPIRES_DIGITS = 10  # an Expires header value longer than this is not read (§20.19)


class SipRegistrations:
    """Builds SipRegistration records from the REGISTER transactions of one Call-ID."""

    def __init__(self, config: SipCallsConfig, hand_out: HandOut) -> None:
        self.config = config
        self._hand_out = hand_out

    def on_message(self, exchange: Exchange, m: ExchangeMessage) -> SipRegistration:
        msg = m.msg
        reg = exchange.current if isinstance(exchange.current, SipRegistration) else None
        if msg.is_request and not m.repeat:
            to_uri = Party.of(parse_name_addr(msg.header("to"))).uri
            if reg is None or not self._continues(reg, m, to_uri):
                if reg is not None:
                    self._hand_out(reg, "next-attempt")
                reg = self._new_registration(exchange, m)
            self._register_request(exchange, reg, m)
        elif reg is None:
            reg = self._new_registration(exchange, m)
        if not msg.is_request and not m.repeat:
            self._register_response(exchange, reg, m)
        return reg

    def _continues(self, reg: SipRegistration, m: ExchangeMessage, to_uri: str | None) -> bool:
        """A REGISTER continues an attempt when it answers that attempt's challenge (or
        replaces a REGISTER still without answer) for the same address of record."""
        if to_uri != reg.callee.uri or m.ts_ns - reg.last_ns > self.config.auth_retry_gap_s * NS:
            return False
        if reg.final_code is None:
            return True
        has_credentials = bool(m.msg.header("authorization") or m.msg.header("proxy-authorization"))
        return reg.final_code in AUTH_CHALLENGES and has_credentials

    def _new_registration(self, exchange: Exchange, m: ExchangeMessage) -> SipRegistration:
        exchange.records_made += 1
        record_id = f"{exchange.call_id}#registration{exchange.records_made}"
        reg = SipRegistration(record_id, exchange.call_id, REGISTRATION, m.ts_ns, m.ts_ns)
        exchange.current = reg
        msg = m.msg
        reg.caller = Party.of(parse_name_addr(msg.header("from")))
        reg.callee = Party.of(parse_name_addr(msg.header("to")))
        ua, registrar = (
            (m.ev.sender, m.ev.receiver) if msg.is_request else (m.ev.receiver, m.ev.sender)
        )
        reg.caller.ip, reg.caller.port = ua
        reg.callee.ip, reg.callee.port = registrar
        reg.registrar_ip = registrar[0]
        if not msg.is_request:
            reg.partial = True
            reg.note(f"capture began inside the exchange: first message {m.what}")
        return reg

    def _register_request(
        self, exchange: Exchange, reg: SipRegistration, m: ExchangeMessage
    ) -> None:
        msg = m.msg
        if reg.request_uri is None:
            reg.request_uri = msg.request_uri
        if len(reg.cseqs) < MAX_LIST:
            reg.cseqs.append(m.cseq or 0)
        credentials = msg.header("authorization") or msg.header("proxy-authorization")
        exchange.credentialed[m.cseq] = credentials is not None
        while len(exchange.credentialed) > MAX_TRANSACTIONS_REMEMBERED:
            exchange.credentialed.popitem(last=False)
        if credentials is not None:
            reg.credentials_sent += 1
            user = digest_username(credentials)
            if user and user not in reg.auth_usernames and len(reg.auth_usernames) < MAX_LIST:
                reg.auth_usernames.append(user)
        contacts = msg.all("contact")
        uris = contact_uris(contacts)
        if uris:
            reg.contact = uris[0]
        expires = _expires_s(msg, contacts)
        if expires is not None:
            reg.expires_s = expires
        reg.final_code = reg.final_reason = None  # a new transaction is in flight

    def _register_response(
        self, exchange: Exchange, reg: SipRegistration, m: ExchangeMessage
    ) -> None:
        code = m.msg.status_code or 0
        if code < 200:
            return
        reg.final_code, reg.final_reason = code, m.msg.reason
        had_credentials = exchange.credentialed.get(m.cseq, False)
        if code in AUTH_CHALLENGES:
            reg.challenges += 1
            realm = digest_realm(
                m.msg.header("www-authenticate") or m.msg.header("proxy-authenticate")
            )
            reg.realm = realm or reg.realm
            if had_credentials:
                reg.credentials_rejected += 1
                reg.note(f"credentials rejected: {code} to a REGISTER with credentials")
            reg.result = "challenged"
        elif 200 <= code < 300:
            granted = _expires_s(m.msg, m.msg.all("contact"))
            if reg.contact is None:
                reg.result = "queried"  # §10.2.3: no Contact lists the bindings
            elif reg.expires_s == 0:
                reg.result = "unregistered"
            else:
                reg.result = "registered"
                if granted is not None:
                    reg.expires_s = granted
        elif code == 403:
            if had_credentials:
                reg.credentials_rejected += 1
                reg.note("credentials rejected: 403 to a REGISTER with credentials")
            reg.result = "forbidden"
        elif 300 <= code < 400:
            reg.result = "redirected"
        else:
            reg.result = "failed"


def _expires_s(msg: SipMessage, contacts: list[str]) -> int | None:
    """The binding's lifetime: the Contact expires parameter, else the Expires header
    (§10.2.1.1; in a 2xx, what the registrar granted, §10.3 step 8)."""
    expires = contact_expires(contacts)
    header = (msg.header("expires") or "").strip()
    if expires is None and is_decimal(header, MAX_EXPIRES_DIGITS):
        expires = int(header)
    return expires
