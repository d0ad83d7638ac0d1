"""SIP dialogs, transactions and registrations (RFC 3261) turned into Call records.

A flow hook: ``FlowPipeline(config, hooks=[SipCallTracker()])`` hands it every parsed SIP
message in capture order (``on_messages``). Messages are grouped by Call-ID into

* calls: the INVITE dialog and what is said inside it (ACK, BYE, CANCEL, re-INVITE,
  UPDATE, PRACK, INFO, REFER, NOTIFY, OPTIONS, MESSAGE);
* registration attempts: a REGISTER, the challenges it got and the retries (§10, §22);
* out-of-dialog exchanges: OPTIONS pings, MESSAGE, SUBSCRIBE/NOTIFY, PUBLISH.

A message seen again with the same CSeq, method and Via branch (a retransmission, §17,
or the same message captured on another hop) counts once. Memory is bounded on capture
time: a record whose exchange is over and idle long enough is handed out (``drain``) and
forgotten; open exchanges are capped by ``SipCallsConfig.max_open_dialogs``, and going
over hands out the least recently active one early (anomaly ``sip_dialog_table_full``).
``finish`` closes what is still open at the end of the input.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.calls.call_records import (
    ANSWERED,
    CALL,
    CANCELLED,
    FAILED,
    MAX_LIST,
    ONGOING,
    REDIRECTED,
    REGISTRATION,
    UNANSWERED,
    DtmfDigit,
    Party,
    SdpExchange,
    SipCall,
    SipRecord,
    SipRegistration,
    Transfer,
)
from voipscope.calls.links import CallLinker
from voipscope.calls.sdp_media import announced_media, is_hold
from voipscope.calls.sip_headers import (
    contact_expires,
    contact_uris,
    digest_realm,
    digest_username,
    diversions,
    dtmf_from_info,
    history_info,
    parse_name_addr,
    sipfrag_status,
    top_via_branch,
)
from voipscope.dissect.base import TCP, MessageEvent
from voipscope.dissect.sip import SipMessage
from voipscope.errors import DecodeError
from voipscope.flows.hooks import NoHooks
from voipscope.flows.kernels import F_LAST_NS

NS = 1_000_000_000
# RFC 3261 §17.1.1.1: T1 = 500 ms; Timer B/F/H = 64*T1 = 32 s bound how long a transaction
# (and its retransmissions) can still be heard after it was last active.
TIMER_64T1_S = 32.0
# §13.3.1.1: a UAS sends a provisional response at least every minute while it rings, so a
# pending INVITE silent for three minutes is over (Timer C, §16.6, is > 3 min for proxies).
PENDING_IDLE_S = 180.0
# Final responses after which the same INVITE is sent again on the same Call-ID with
# something changed: credentials (§22.2, 401/407), a longer session interval (RFC 4028
# §6, 422), after a glare (§14.1, 491), without the refused extension (420/421), other
# media (488), a longer expiry (423). They are retries of one call, not new calls.
RETRY_CODES = frozenset({401, 407, 420, 421, 422, 423, 488, 491, 494})
AUTH_CHALLENGES = frozenset({401, 407})
# Requests that live inside an INVITE dialog when one is open for their Call-ID; alone
# they are out-of-dialog exchanges (the family names their record kind).
INVITE_FAMILY = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "PRACK", "UPDATE"})
OUT_OF_DIALOG_KIND = {
    "OPTIONS": "options",
    "MESSAGE": "message",
    "SUBSCRIBE": "subscription",
    "NOTIFY": "subscription",
    "PUBLISH": "publication",
    "INFO": "info",
    "REFER": "refer",
}
MAX_CALL_ID_CHARS = 256  # longer Call-IDs are cut (attacker-controlled key)
MAX_TRANSACTIONS_REMEMBERED = 512  # per Call-ID: CSeq/method pairs with their offer flag

ANOMALIES = {
    "sip_dialog_table_full": "more open SIP dialogs than calls.max_open_dialogs; the least "
    "recently active one was handed out early",
    "sip_message_without_call_id": "a SIP message without Call-ID cannot join a dialog",
    "sip_response_without_cseq": "a SIP response without a readable CSeq cannot join a transaction",
}


@dataclass(frozen=True, slots=True)
class SipCallsConfig:
    """The calls.sip.* settings (seconds are capture time)."""

    max_open_dialogs: int = 100_000  # DESIGN §4: every attacker-controlled count is capped
    finished_linger_s: float = TIMER_64T1_S  # a finished exchange waits for late copies
    pending_idle_s: float = PENDING_IDLE_S
    # A 401/407 is often answered by a human typing a password or a phone on a timer:
    # sip.pcap's softphone retries 17-51 s after the challenge.
    auth_retry_gap_s: float = 120.0
    # An answered call without BYE stays open this long after its last message (session
    # refreshes, RFC 4028, come every few minutes; many phones send none at all).
    answered_idle_s: float = 7200.0
    redirect_follow_s: float = TIMER_64T1_S  # a 3xx Contact called within this is one story
    b2bua_window_s: float = 2.0  # legs of one call through a B2BUA start this close together
    out_of_dialog_records: bool = True  # OPTIONS/MESSAGE/SUBSCRIBE... as records of their own
    max_messages_remembered: int = 512  # per Call-ID, for recognising retransmissions
    max_sdp_per_call: int = 64
    max_dtmf_per_call: int = 512


@dataclass(slots=True)
class _Seen:
    hops: list[tuple[tuple[str, int], tuple[str, int]]]
    body_crc: int


@dataclass(slots=True)
class _Dialog:
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
class _Message:
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


class SipCallTracker(NoHooks):
    """Builds SIP Call records from the messages the dissect stage hands out."""

    ANOMALIES = ANOMALIES

    def __init__(
        self, config: SipCallsConfig | None = None, anomalies: AnomalyLog | None = None
    ) -> None:
        self.config = config or SipCallsConfig()
        self.anomalies = anomalies if anomalies is not None else AnomalyLog()
        self.now_ns = 0
        self._open: dict[tuple[str, str], _Dialog] = {}
        # Least recently active first; short: exchanges that end within minutes, long:
        # answered calls without BYE (so one long call never blocks the sweep).
        self._short: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._long: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._ready: list[SipRecord] = []
        self._links = CallLinker(self.config.redirect_follow_s, self.config.b2bua_window_s)

    # -- hook interface ------------------------------------------------------------------

    def on_messages(self, messages: list[object]) -> None:
        for event in messages:
            if isinstance(event, MessageEvent):
                self.add(event)
        self.sweep()

    def on_expire(self, ended: np.ndarray) -> None:
        # Ended flows are a clock too: a quiet capture still moves capture time on.
        if ended.size:
            self.now_ns = max(self.now_ns, int(ended[:, F_LAST_NS].max()))
            self.sweep()

    @property
    def open_dialogs(self) -> int:
        return len(self._open)

    def drain(self) -> list[SipRecord]:
        """Records finished during the run so far (then forgotten), in start order."""
        out = sorted(self._ready, key=_order)
        self._ready = []
        return out

    def finish(self) -> list[SipRecord]:
        """End of input: close every open exchange (a call answered without BYE is
        ``ongoing``) and return everything not drained yet."""
        for key in list(self._open):
            self._close(self._open[key], "end-of-input", end_of_input=True)
        return self.drain()

    # -- one message ---------------------------------------------------------------------

    def add(self, ev: MessageEvent) -> None:
        msg = ev.message
        if ev.protocol != "SIP" or not isinstance(msg, SipMessage):
            return
        self.now_ns = max(self.now_ns, ev.ts_ns)
        call_id = (msg.call_id or "").strip()[:MAX_CALL_ID_CHARS]
        if not call_id:
            self._anomaly("sip_message_without_call_id", msg, ev)
            return
        cseq = msg.cseq
        if msg.is_request:
            method = msg.method or ""
        elif cseq is None or msg.status_code is None:
            self._anomaly("sip_response_without_cseq", msg, ev)
            return
        else:
            method = cseq[1]
        family = self._family(call_id, method)
        if family not in (CALL, REGISTRATION) and not self.config.out_of_dialog_records:
            return
        dialog = self._dialog(call_id, family, ev.ts_ns)
        m = self._identify(dialog, ev, msg, method, cseq[0] if cseq else None)
        if family == CALL:
            record: SipRecord = self._on_call(dialog, m)
        elif family == REGISTRATION:
            record = self._on_register(dialog, m)
        else:
            record = self._on_other(dialog, m)
        self._count(record, m)
        dialog.last_ns = max(dialog.last_ns, ev.ts_ns)
        dialog.patience_ns = self._patience(dialog)
        self._touch(dialog)

    def _family(self, call_id: str, method: str) -> str:
        if method == "REGISTER":
            return REGISTRATION
        if method in INVITE_FAMILY or (call_id, CALL) in self._open:
            return CALL
        return OUT_OF_DIALOG_KIND.get(method, "other")

    def _dialog(self, call_id: str, family: str, ts_ns: int) -> _Dialog:
        dialog = self._open.get((call_id, family))
        if dialog is None:
            if len(self._open) >= self.config.max_open_dialogs:
                self._evict()
            dialog = _Dialog(call_id, family, ts_ns)
            self._open[dialog.key] = dialog
        return dialog

    def _identify(
        self, dialog: _Dialog, ev: MessageEvent, msg: SipMessage, method: str, cseq: int | None
    ) -> _Message:
        """Is this message new, a retransmission (same hop), or another hop's copy?
        RFC 3261 §17.2.3: the top Via branch + CSeq method name the transaction."""
        branch = top_via_branch(msg.header("via"))
        if msg.is_request:
            identity: tuple[object, ...] = ("req", method, cseq, branch)
        else:
            identity = ("resp", msg.status_code, method, cseq, branch, msg.to_tag)
        hop = (ev.sender, ev.receiver)
        crc = zlib.crc32(msg.body)
        seen = dialog.seen.get(identity)
        if seen is None:
            dialog.seen[identity] = _Seen([hop], crc)
            while len(dialog.seen) > self.config.max_messages_remembered:
                dialog.seen.popitem(last=False)
            return _Message(ev, msg, method, cseq, False, False, False)
        changed = crc != seen.body_crc
        same_hop = hop in seen.hops
        if not same_hop and len(seen.hops) < 8:
            seen.hops.append(hop)
        seen.body_crc = crc
        return _Message(ev, msg, method, cseq, True, changed, same_hop)

    def _count(self, record: SipRecord, m: _Message) -> None:
        counts = record.counts
        counts.packets += 1
        record.last_ns = max(record.last_ns, m.ts_ns)
        record.saw_flow(m.ev.flow_id)
        record.saw_agent(m.msg.user_agent)
        transport = "tcp" if m.ev.transport == TCP else "udp"
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

    # -- calls ---------------------------------------------------------------------------

    def _on_call(self, dialog: _Dialog, m: _Message) -> SipCall:
        msg = m.msg
        initial = msg.is_request and m.method == "INVITE" and msg.to_tag is None
        call = dialog.current
        if not isinstance(call, SipCall):
            call = self._new_call(dialog, m, initial)
        elif initial and not m.repeat and m.cseq != call.invite_cseq:
            call = self._invite_again(dialog, call, m)
        if m.repeat and not m.body_changed:
            return call
        if msg.is_request:
            self._call_request(dialog, call, m, initial)
        else:
            self._call_response(dialog, call, m)
        return call

    def _new_call(self, dialog: _Dialog, m: _Message, initial: bool) -> SipCall:
        dialog.records_made += 1
        n = dialog.records_made
        record_id = dialog.call_id if n == 1 else f"{dialog.call_id}#{n}"
        call = SipCall(record_id, dialog.call_id, CALL, m.ts_ns, m.ts_ns)
        dialog.current = call
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
            self._read_diversion(call, msg)
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

    def _invite_again(self, dialog: _Dialog, call: SipCall, m: _Message) -> SipCall:
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
        new = self._new_call(dialog, m, initial=True)  # links to ``call`` while it is open
        self._finalize(call, "new-invite", end_of_input=False)
        self._ready.append(call)
        return new

    def _call_request(self, dialog: _Dialog, call: SipCall, m: _Message, initial: bool) -> None:
        msg = m.msg
        method = m.method
        if method in ("INVITE", "UPDATE", "PRACK"):
            dialog.offers[(m.cseq, method)] = bool(msg.body)
            while len(dialog.offers) > MAX_TRANSACTIONS_REMEMBERED:
                dialog.offers.popitem(last=False)
        if msg.body:
            role = "offer"
            if method == "ACK" or (method == "PRACK" and not self._invite_offered(dialog, call)):
                role = "answer"  # late offer: the 2xx/reliable 1xx offered (RFC 3262 §5)
            label = "re-INVITE" if method == "INVITE" and not initial else method
            self._sdp(call, m, label, role)
        if m.repeat:
            return
        if method == "CANCEL":
            if call.final_code is None and call.answer_ns is None and call.cancel_ns is None:
                call.cancel_ns = m.ts_ns
                call.note(f"CANCEL from {m.ev.sender[0]} before a final response")
        elif method == "BYE":
            if call.bye_ns is None:
                call.bye_ns = m.ts_ns
                call.ended_by = self._side(call, m)
                call.note(f"BYE from the {call.ended_by} ({m.ev.sender[0]})")
                if call.answer_ns is None and not call.established_before_capture:
                    call.established_before_capture = True
                    call.note("BYE implies a 2xx the capture does not have")
        elif method == "INFO":
            self._dtmf(call, m)
        elif method == "REFER":
            self._refer(call, m)
        elif method == "NOTIFY":
            status = sipfrag_status(msg.header("content-type"), msg.body)
            if status is not None and call.transfers and "refer" in (msg.header("event") or ""):
                call.transfers[-1].outcome_code = status
        elif (
            method == "INVITE"
            and not initial
            and call.answer_ns is None
            and not call.established_before_capture
        ):
            call.established_before_capture = True
            call.note("re-INVITE implies a 2xx the capture does not have")

    def _call_response(self, dialog: _Dialog, call: SipCall, m: _Message) -> None:
        msg = m.msg
        code = msg.status_code or 0
        if msg.body:
            offered = dialog.offers.get((m.cseq, m.method))
            role = "answer" if offered else "offer"
            label = f"{code} {m.method}"
            if m.method == "INVITE" and m.cseq != call.invite_cseq:
                label = f"{code} re-INVITE"
            self._sdp(call, m, label, role)
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
            for transfer in call.transfers:
                if transfer.cseq == m.cseq and code >= 200:
                    transfer.response_code = code

    def _invite_response(self, call: SipCall, m: _Message, code: int) -> None:
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

    def _invite_offered(self, dialog: _Dialog, call: SipCall) -> bool:
        return bool(dialog.offers.get((call.invite_cseq, "INVITE")))

    def _side(self, call: SipCall, m: _Message) -> str:
        tag = m.msg.from_tag
        if call.caller_tag is not None and tag is not None:
            return "caller" if tag == call.caller_tag else "callee"
        return "caller" if m.ev.sender[0] == call.caller.ip else "callee"

    def _sdp(self, call: SipCall, m: _Message, label: str, role: str) -> None:
        content_type = (m.msg.header("content-type") or "").lower()
        if "sdp" not in content_type and not m.msg.body.startswith(b"v=0"):
            return  # multipart/ISUP bodies etc.: not an SDP we can read
        if len(call.sdp) >= self.config.max_sdp_per_call:
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

    def _dtmf(self, call: SipCall, m: _Message) -> None:
        found = dtmf_from_info(m.msg.header("content-type"), m.msg.body)
        if found is None:
            return
        if len(call.dtmf) >= self.config.max_dtmf_per_call:
            call.dtmf_dropped += 1
            return
        digit, duration = found
        call.dtmf.append(DtmfDigit(m.ts_ns, digit, duration, m.ev.sender[0]))

    def _refer(self, call: SipCall, m: _Message) -> None:
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

    def _read_diversion(self, call: SipCall, msg: SipMessage) -> None:
        call.diversion = diversions(msg.all("diversion"))
        call.history_info = history_info(msg.all("history-info"))
        for uri, reason in call.diversion:
            call.note(f"Diversion: forwarded by {uri}" + (f" ({reason})" if reason else ""))
        if len(call.history_info) > 1:
            call.note(f"History-Info: retargeted {len(call.history_info) - 1} time(s)")

    # -- registrations -------------------------------------------------------------------

    def _on_register(self, dialog: _Dialog, m: _Message) -> SipRegistration:
        msg = m.msg
        reg = dialog.current if isinstance(dialog.current, SipRegistration) else None
        if msg.is_request and not m.repeat:
            to_uri = Party.of(parse_name_addr(msg.header("to"))).uri
            if reg is None or not self._continues(reg, m, to_uri):
                if reg is not None:
                    self._finalize(reg, "next-attempt", end_of_input=False)
                    self._ready.append(reg)
                reg = self._new_registration(dialog, m)
            self._register_request(dialog, reg, m)
        elif reg is None:
            reg = self._new_registration(dialog, m)
        if not msg.is_request and not m.repeat:
            self._register_response(dialog, reg, m)
        return reg

    def _continues(self, reg: SipRegistration, m: _Message, to_uri: str | None) -> bool:
        """A REGISTER continues an attempt when it answers that attempt's challenge (or
        replaces a REGISTER still without answer) for the same address of record."""
        if to_uri != reg.callee.uri or m.ts_ns - reg.last_ns > self.config.auth_retry_gap_s * NS:
            return False
        if reg.final_code is None:
            return True
        has_credentials = bool(m.msg.header("authorization") or m.msg.header("proxy-authorization"))
        return reg.final_code in AUTH_CHALLENGES and has_credentials

    def _new_registration(self, dialog: _Dialog, m: _Message) -> SipRegistration:
        dialog.records_made += 1
        record_id = f"{dialog.call_id}#registration{dialog.records_made}"
        reg = SipRegistration(record_id, dialog.call_id, REGISTRATION, m.ts_ns, m.ts_ns)
        dialog.current = reg
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

    def _register_request(self, dialog: _Dialog, reg: SipRegistration, m: _Message) -> None:
        msg = m.msg
        if reg.request_uri is None:
            reg.request_uri = msg.request_uri
        if len(reg.cseqs) < MAX_LIST:
            reg.cseqs.append(m.cseq or 0)
        credentials = msg.header("authorization") or msg.header("proxy-authorization")
        dialog.credentialed[m.cseq] = credentials is not None
        while len(dialog.credentialed) > MAX_TRANSACTIONS_REMEMBERED:
            dialog.credentialed.popitem(last=False)
        if credentials is not None:
            reg.credentials_sent += 1
            user = digest_username(credentials)
            if user and user not in reg.auth_usernames and len(reg.auth_usernames) < MAX_LIST:
                reg.auth_usernames.append(user)
        contacts = msg.all("contact")
        uris = contact_uris(contacts)
        if uris:
            reg.contact = uris[0]
        expires = contact_expires(contacts)
        header = (msg.header("expires") or "").strip()
        if expires is None and header.isdigit() and len(header) <= 10:
            expires = int(header)
        if expires is not None:
            reg.expires_s = expires
        reg.final_code = reg.final_reason = None  # a new transaction is in flight

    def _register_response(self, dialog: _Dialog, reg: SipRegistration, m: _Message) -> None:
        code = m.msg.status_code or 0
        if code < 200:
            return
        reg.final_code, reg.final_reason = code, m.msg.reason
        had_credentials = dialog.credentialed.get(m.cseq, False)
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
            granted = contact_expires(m.msg.all("contact"))
            header = (m.msg.header("expires") or "").strip()
            if granted is None and header.isdigit() and len(header) <= 10:
                granted = int(header)
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

    # -- out-of-dialog exchanges ---------------------------------------------------------

    def _on_other(self, dialog: _Dialog, m: _Message) -> SipRecord:
        record = dialog.current
        msg = m.msg
        if record is None:
            dialog.records_made += 1
            record = SipRecord(
                f"{dialog.call_id}#{dialog.family}{dialog.records_made}",
                dialog.call_id,
                dialog.family,
                m.ts_ns,
                m.ts_ns,
            )
            dialog.current = record
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

    # -- lifetime ------------------------------------------------------------------------

    def _patience(self, dialog: _Dialog) -> int:
        """How long the exchange may stay silent before it is handed out."""
        cfg = self.config
        record = dialog.current
        if isinstance(record, SipCall):
            answered = record.answer_ns is not None or record.established_before_capture
            if record.bye_ns is not None:
                seconds = cfg.finished_linger_s
            elif answered:
                seconds = cfg.answered_idle_s
            elif record.final_code in RETRY_CODES:
                seconds = cfg.auth_retry_gap_s
            elif record.final_code is not None:
                seconds = max(cfg.finished_linger_s, cfg.redirect_follow_s)
            else:
                seconds = cfg.pending_idle_s
        elif isinstance(record, SipRegistration) and record.final_code in AUTH_CHALLENGES:
            seconds = cfg.auth_retry_gap_s
        else:
            seconds = cfg.finished_linger_s  # non-INVITE transactions end within Timer F
        return int(seconds * NS)

    def _touch(self, dialog: _Dialog) -> None:
        key = dialog.key
        long = dialog.patience_ns > int(self.config.pending_idle_s * NS)
        mine, other = (self._long, self._short) if long else (self._short, self._long)
        other.pop(key, None)
        mine[key] = None
        mine.move_to_end(key)

    def sweep(self) -> None:
        """Hand out exchanges idle longer than their patience (capture time)."""
        for lru in (self._short, self._long):
            while lru:
                key = next(iter(lru))
                dialog = self._open[key]
                if self.now_ns - dialog.last_ns <= dialog.patience_ns:
                    break
                self._close(dialog, "idle", end_of_input=False)

    def _evict(self) -> None:
        lru = self._short or self._long
        if not lru:
            return
        dialog = self._open[next(iter(lru))]
        self.anomalies.add(
            "sip_dialog_table_full",
            f"{len(self._open)} open dialogs; Call-ID {dialog.call_id[:64]} handed out early",
            ts=self.now_ns / 1e9,
        )
        self._close(dialog, "table-full", end_of_input=False)

    def _close(self, dialog: _Dialog, reason: str, end_of_input: bool) -> None:
        key = dialog.key
        self._open.pop(key, None)
        self._short.pop(key, None)
        self._long.pop(key, None)
        if dialog.current is not None:
            self._finalize(dialog.current, reason, end_of_input)
            self._ready.append(dialog.current)
            dialog.current = None

    def _finalize(self, record: SipRecord, reason: str, end_of_input: bool) -> None:
        record.closed_by = reason
        if isinstance(record, SipCall):
            self._links.call_ended(record)
            record.state = call_state(record, end_of_input)
            if record.state == ANSWERED and record.bye_ns is None:
                record.note("no BYE seen: the end is the last signalling message")
        else:
            record.state = exchange_state(record.final_code)

    def _anomaly(self, name: str, msg: SipMessage, ev: MessageEvent) -> None:
        what = msg.method if msg.is_request else f"{msg.status_code} response"
        self.anomalies.add(
            name,
            f"{what} from {ev.sender[0]}",
            ts=ev.ts_ns / 1e9,
            flow_id=ev.flow_id,
            src_ip=ev.sender[0],
            dst_ip=ev.receiver[0],
        )


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


def _order(record: SipRecord) -> tuple[int, str]:
    return (record.start_ns, record.record_id)
