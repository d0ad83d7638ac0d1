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

This module routes messages and keeps the table of open exchanges; the records are built
by ``sip_invite_calls`` (calls), ``sip_registrations`` and ``sip_out_of_dialog``, on the
per-exchange state of ``sip_exchanges``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.calls.call_records import CALL, REGISTRATION, SipCall, SipRecord, SipRegistration
from voipscope.calls.sip_calls_config import SipCallsConfig
from voipscope.calls.sip_exchanges import (
    AUTH_CHALLENGES,
    NS,
    Exchange,
    count_message,
    exchange_state,
    identify_message,
)
from voipscope.calls.sip_invite_calls import RETRY_CODES, SipInviteCalls
from voipscope.calls.sip_out_of_dialog import on_out_of_dialog
from voipscope.calls.sip_registrations import SipRegistrations
from voipscope.dissect.base import MessageEvent
from voipscope.dissect.sip import SipMessage
from voipscope.flows.hooks import NoHooks
from voipscope.flows.kernels import F_LAST_NS

__all__ = ["ANOMALIES", "SipCallTracker", "SipCallsConfig"]  # SipCallsConfig: re-exported

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

ANOMALIES = {
    "sip_dialog_table_full": "more open SIP dialogs than calls.max_open_dialogs; the least "
    "recently active one was handed out early",
    "sip_message_without_call_id": "a SIP message without Call-ID cannot join a dialog",
    "sip_response_without_cseq": "a SIP response without a readable CSeq cannot join a transaction",
}


class SipCallTracker(NoHooks):
    """Builds SIP Call records from the messages the dissect stage hands out."""

    ANOMALIES = ANOMALIES

    def __init__(
        self, config: SipCallsConfig | None = None, anomalies: AnomalyLog | None = None
    ) -> None:
        self.config = config or SipCallsConfig()
        self.anomalies = anomalies if anomalies is not None else AnomalyLog()
        self.now_ns = 0
        self._open: dict[tuple[str, str], Exchange] = {}
        # Least recently active first; short: exchanges that end within minutes, long:
        # answered calls without BYE (so one long call never blocks the sweep).
        self._short: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._long: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._ready: list[SipRecord] = []
        self._calls = SipInviteCalls(self.config, self._hand_out)
        # Told (message, its record as it stands after it) after every message that joined
        # a record: voipscope.inline follows calls as they go. None: nobody asks.
        self.observer: Callable[[MessageEvent, SipRecord], None] | None = None
        self._registrations = SipRegistrations(self.config, self._hand_out)

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
        # Exchanges idle past their patience by now are over before this message is
        # read, as a sweep between the two would have made them: whether one ran there
        # must not depend on where a batch of packets ended (a REGISTER 500 s after the
        # last was the "next attempt" of an exchange in one batch, a new one in small ones).
        self.sweep()
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
        exchange = self._exchange(call_id, family, ev.ts_ns)
        cseq_number = cseq[0] if cseq else None
        remembered = self.config.max_messages_remembered
        m = identify_message(exchange, ev, msg, method, cseq_number, remembered)
        if family == CALL:
            record: SipRecord = self._calls.on_message(exchange, m)
        elif family == REGISTRATION:
            record = self._registrations.on_message(exchange, m)
        else:
            record = on_out_of_dialog(exchange, m)
        count_message(record, m)
        exchange.last_ns = max(exchange.last_ns, ev.ts_ns)
        exchange.patience_ns = self._patience(exchange)
        self._touch(exchange)
        if self.observer is not None:
            self.observer(ev, record)

    def _family(self, call_id: str, method: str) -> str:
        if method == "REGISTER":
            return REGISTRATION
        if method in INVITE_FAMILY or (call_id, CALL) in self._open:
            return CALL
        return OUT_OF_DIALOG_KIND.get(method, "other")

    def _exchange(self, call_id: str, family: str, ts_ns: int) -> Exchange:
        exchange = self._open.get((call_id, family))
        if exchange is None:
            if len(self._open) >= self.config.max_open_dialogs:
                self._evict()
            exchange = Exchange(call_id, family, ts_ns)
            self._open[exchange.key] = exchange
        return exchange

    # -- lifetime ------------------------------------------------------------------------

    def _patience(self, exchange: Exchange) -> int:
        """How long the exchange may stay silent before it is handed out."""
        cfg = self.config
        record = exchange.current
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

    def _touch(self, exchange: Exchange) -> None:
        key = exchange.key
        long = exchange.patience_ns > int(self.config.pending_idle_s * NS)
        mine, other = (self._long, self._short) if long else (self._short, self._long)
        other.pop(key, None)
        mine[key] = None
        mine.move_to_end(key)

    def sweep(self) -> None:
        """Hand out exchanges idle longer than their patience (capture time)."""
        for lru in (self._short, self._long):
            while lru:
                key = next(iter(lru))
                exchange = self._open[key]
                if self.now_ns - exchange.last_ns <= exchange.patience_ns:
                    break
                self._close(exchange, "idle", end_of_input=False)

    def _evict(self) -> None:
        lru = self._short or self._long
        if not lru:
            return
        exchange = self._open[next(iter(lru))]
        self.anomalies.add(
            "sip_dialog_table_full",
            f"{len(self._open)} open dialogs; Call-ID {exchange.call_id[:64]} handed out early",
            ts=self.now_ns / 1e9,
        )
        self._close(exchange, "table-full", end_of_input=False)

    def _close(self, exchange: Exchange, reason: str, end_of_input: bool) -> None:
        key = exchange.key
        self._open.pop(key, None)
        self._short.pop(key, None)
        self._long.pop(key, None)
        if exchange.current is not None:
            self._finalize(exchange.current, reason, end_of_input)
            self._ready.append(exchange.current)
            exchange.current = None

    def _hand_out(self, record: SipRecord, reason: str) -> None:
        """A record that ends while its exchange stays open (a new INVITE after a
        failed one, the next REGISTER attempt): ready to be drained."""
        self._finalize(record, reason, end_of_input=False)
        self._ready.append(record)

    def _finalize(self, record: SipRecord, reason: str, end_of_input: bool) -> None:
        record.closed_by = reason
        if isinstance(record, SipCall):
            self._calls.ended(record, end_of_input)
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


def _order(record: SipRecord) -> tuple[int, str]:
    return (record.start_ns, record.record_id)
