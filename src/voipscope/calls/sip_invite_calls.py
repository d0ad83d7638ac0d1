"""INVITE dialogs (RFC 3261 §13-§15) as SipCall records: the initial INVITE transaction
and its retries, ringing, forks, CANCEL, 3xx, 181/Diversion/History-Info, BYE, and what
is said inside the dialog (re-INVITE, UPDATE, PRACK, INFO, REFER, NOTIFY).

A capture that begins inside a call gives a ``partial`` record that says so. Links to
other calls (redirects followed, forwarding, B2BUA legs) are made by ``links.CallLinker``;
SDP and INFO digits by ``sip_call_media``; transfers by ``sip_transfers``.
"""

from __future__ import annotations

from voipscope.calls.call_records import (
    ANSWERED,
    CALL,
    CANCELLED,
    FAILED,
    MAX_LIST,
    ONGOING,
    REDIRECTED,
    UNANSWERED,
    Party,
    SipCall,
)
from voipscope.calls.links import CallLinker
from voipscope.calls.sip_call_media import info_dtmf, sdp_in_request, sdp_in_response
from voipscope.calls.sip_calls_config import SipCallsConfig
from voipscope.calls.sip_exchanges import AUTH_CHALLENGES, Exchange, ExchangeMessage, HandOut
from voipscope.calls.sip_headers import (
    contact_uris,
    digest_realm,
    diversions,
    history_info,
    parse_name_addr,
)
from voipscope.calls.sip_transfers import refer_answered, refer_sent, transfer_notified
from voipscope.dissect.sip import SipMessage

# Final responses after which the same INVITE is sent again on the same Call-ID with
# something changed: credentials (§22.2, 401/407), a longer session interval (RFC 4028
# §6, 422), after a glare (§14.1, 491), without the refused extension (420/421), other
# media (488), a longer expiry (423). They are retries of one call, not new calls.
RETRY_CODES = frozenset({401, 407, 420, 421, 422, 423, 488, 491, 494})


class SipInviteCalls:
    """Builds SipCall records from the INVITE dialogs of the tracker's exchanges."""

    def __init__(self, config: SipCallsConfig, hand_out: HandOut) -> None:
        self.config = config
        self._hand_out = hand_out
        self._links = CallLinker(config.redirect_follow_s, config.b2bua_window_s)

    def on_message(self, exchange: Exchange, m: ExchangeMessage) -> SipCall:
        msg = m.msg
        initial = msg.is_request and m.method == "INVITE" and msg.to_tag is None
        call = exchange.current
        if not isinstance(call, SipCall):
            call = self._new_call(exchange, m, initial)
        elif initial and not m.repeat and m.cseq != call.invite_cseq:
            call = self._invite_again(exchange, call, m)
        if m.repeat and not m.body_changed:
            return call
        if msg.is_request:
            self._call_request(exchange, call, m, initial)
        else:
            self._call_response(exchange, call, m)
        return call

    def ended(self, call: SipCall, end_of_input: bool) -> None:
        """The call is handed out: unlink it and give it its state."""
        self._links.call_ended(call)
        call.state = call_state(call, end_of_input)
        if call.state == ANSWERED and call.bye_ns is None:
            call.note("no BYE seen: the end is the last signalling message")

    def _new_call(self, exchange: Exchange, m: ExchangeMessage, initial: bool) -> SipCall:
        exchange.records_made += 1
        n = exchange.records_made
        record_id = exchange.call_id if n == 1 else f"{exchange.call_id}#{n}"
        call = SipCall(record_id, exchange.call_id, CALL, m.ts_ns, m.ts_ns)
        exchange.current = call
        msg = m.msg
        from_addr = parse_name_addr(msg.header("from"))
        to_addr = parse_name_addr(msg.header("to"))
        call.caller = Party.of(from_addr)
        call.callee = Party.of(to_addr)
        caller_side, callee_side = (
            (m.ev.sender, m.ev.receiver) if msg.is_request else (m.ev.receiver, m.ev.sender)
        )
        call.caller.ip, call.caller.port = caller_side
        call.callee.ip, call.callee.port = callee_side
        call.caller_tag = msg.from_tag
        if initial:
            call.request_uri = msg.request_uri
            call.invite_cseq = m.cseq
            _read_diversion(call, msg)
            self._links.call_started(call)
        else:
            call.partial = True
            call.note(f"capture began inside the exchange: first message {m.what}")
            # A request with a To tag (but ACK, which also ends failed INVITEs) or an
            # answer to a mid-dialog request means the dialog was already up.
            if msg.is_request:
                established = msg.to_tag is not None and m.method not in ("ACK", "CANCEL")
            else:
                established = m.method not in ("INVITE", "CANCEL", "ACK")
            call.established_before_capture = established
        return call

    def _invite_again(self, exchange: Exchange, call: SipCall, m: ExchangeMessage) -> SipCall:
        """A new initial INVITE transaction on a Call-ID that already has a call."""
        code = call.final_code
        answered = call.answer_ns is not None or call.established_before_capture
        if code in RETRY_CODES and not answered:
            if code in AUTH_CHALLENGES:
                call.auth_challenges += 1
            call.note(f"INVITE retried (CSeq {m.cseq}) after {code}")
            call.invite_cseq = m.cseq
            call.final_code = call.final_reason = None
            return call
        if code is None and not answered and call.bye_ns is None:
            call.note(f"new INVITE transaction (CSeq {m.cseq}) before a final response")
            call.invite_cseq = m.cseq
            return call
        if answered and call.bye_ns is None:
            call.note(f"INVITE without To tag (CSeq {m.cseq}) inside an answered call")
            return call
        # The exchange is over (3xx, a final failure, BYE): this INVITE is a new call on
        # the same Call-ID (§8.1.3.4 keeps the Call-ID when following a redirect).
        new = self._new_call(exchange, m, initial=True)  # links to ``call`` while it is open
        self._hand_out(call, "new-invite")
        return new

    def _call_request(
        self, exchange: Exchange, call: SipCall, m: ExchangeMessage, initial: bool
    ) -> None:
        method = m.method
        sdp_in_request(exchange, call, m, initial, self.config.max_sdp_per_call)
        if m.repeat:
            return
        if method == "CANCEL":
            if call.final_code is None and call.answer_ns is None and call.cancel_ns is None:
                call.cancel_ns = m.ts_ns
                call.note(f"CANCEL from {m.ev.sender[0]} before a final response")
        elif method == "BYE":
            if call.bye_ns is None:
                call.bye_ns = m.ts_ns
                call.ended_by = _side(call, m)
                call.note(f"BYE from the {call.ended_by} ({m.ev.sender[0]})")
                if call.answer_ns is None and not call.established_before_capture:
                    call.established_before_capture = True
                    call.note("BYE implies a 2xx the capture does not have")
        elif method == "INFO":
            info_dtmf(call, m, self.config.max_dtmf_per_call)
        elif method == "REFER":
            refer_sent(call, m)
        elif method == "NOTIFY":
            transfer_notified(call, m)
        elif (
            method == "INVITE"
            and not initial
            and call.answer_ns is None
            and not call.established_before_capture
        ):
            call.established_before_capture = True
            call.note("re-INVITE implies a 2xx the capture does not have")

    def _call_response(self, exchange: Exchange, call: SipCall, m: ExchangeMessage) -> None:
        code = m.msg.status_code or 0
        sdp_in_response(exchange, call, m, code, self.config.max_sdp_per_call)
        if m.repeat:
            return
        if m.method == "INVITE":
            if call.invite_cseq is None and call.partial and not call.established_before_capture:
                call.invite_cseq = m.cseq  # capture began after the INVITE went out
            if m.cseq == call.invite_cseq:
                self._invite_response(call, m, code)
            elif 200 <= code < 300 and call.answer_ns is None:
                call.established_before_capture = True
            elif code >= 300:
                call.note(f"re-INVITE (CSeq {m.cseq}) refused: {code} {m.msg.reason or ''}")
        elif m.method == "REFER":
            refer_answered(call, m, code)

    def _invite_response(self, call: SipCall, m: ExchangeMessage, code: int) -> None:
        to_tag = m.msg.to_tag
        if code < 200:
            if code in (180, 183) and call.ringing_ns is None:
                call.ringing_ns = m.ts_ns
            if code == 181 and not call.forwarded:
                call.forwarded = True
                call.note(f"181 {m.msg.reason or 'Call Is Being Forwarded'} from {m.ev.sender[0]}")
            if to_tag and to_tag not in call.early_tags and len(call.early_tags) < MAX_LIST:
                call.early_tags.append(to_tag)
            return
        if code < 300:
            if to_tag and to_tag not in call.answer_tags and len(call.answer_tags) < MAX_LIST:
                call.answer_tags.append(to_tag)
                if len(call.answer_tags) == 2:
                    call.note("forked: 2xx from more than one dialog (different To tags)")
            if call.answer_ns is None:
                call.answer_ns = m.ts_ns
                call.final_code, call.final_reason = code, m.msg.reason
                if call.cancel_ns is not None:
                    call.note("2xx crossed the CANCEL: the call was answered")
            return
        if call.final_code is not None or call.answer_ns is not None:
            return  # a second final response (another fork, or after a 2xx)
        call.final_code, call.final_reason = code, m.msg.reason
        if 300 <= code < 400:
            targets = contact_uris(m.msg.all("contact"))
            for uri in targets:
                if uri not in call.redirected_to and len(call.redirected_to) < MAX_LIST:
                    call.redirected_to.append(uri)
            call.note(f"{code} {m.msg.reason or ''} to {', '.join(targets) or 'no Contact'}")
            self._links.redirected(call, m.ts_ns)
        elif code in AUTH_CHALLENGES:
            realm = digest_realm(
                m.msg.header("www-authenticate") or m.msg.header("proxy-authenticate")
            )
            call.note(f"{code} challenge" + (f" (realm {realm})" if realm else ""))
        else:
            call.note(f"{code} {m.msg.reason or ''} from {m.ev.sender[0]}".rstrip())


def call_state(call: SipCall, end_of_input: bool) -> str:
    """DESIGN §3 state of an INVITE call."""
    code = call.final_code
    if call.answer_ns is not None or call.established_before_capture:
        return ONGOING if end_of_input and call.bye_ns is None else ANSWERED
    if code is not None and 300 <= code < 400:
        return REDIRECTED
    if call.cancel_ns is not None:
        # The caller gave up before a final answer; the server's answer is usually 487
        # (§9.2) but can be anything non-2xx (sip.pcap: 408 to an INVITE that was CANCELed).
        return CANCELLED
    if code is not None and code >= 400:
        return FAILED
    return UNANSWERED


def _side(call: SipCall, m: ExchangeMessage) -> str:
    """Which end sent the message: by From tag (§12.2.1.1), else by address."""
    tag = m.msg.from_tag
    if call.caller_tag is not None and tag is not None:
        return "caller" if tag == call.caller_tag else "callee"
    return "caller" if m.ev.sender[0] == call.caller.ip else "callee"


def _read_diversion(call: SipCall, msg: SipMessage) -> None:
    """Diversion (RFC 5806) and History-Info (RFC 7044) of an initial INVITE."""
    call.diversion = diversions(msg.all("diversion"))
    call.history_info = history_info(msg.all("history-info"))
    for uri, reason in call.diversion:
        call.note(f"Diversion: forwarded by {uri}" + (f" ({reason})" if reason else ""))
    if len(call.history_info) > 1:
        call.note(f"History-Info: retargeted {len(call.history_info) - 1} time(s)")
