"""H.323 calls from Q.931/H.225.0 call signalling, RAS and H.245 (ITU-T H.323 §8).

A call is keyed by its signalling TCP flow, its Q.931 call reference and the side that
chose the reference (Q.931 §4.3: the flag bit tells the two sides' references apart).
Its name is the H.225.0 callIdentifier GUID of the SETUP, as Wireshark's VoIP Calls
names it. States follow Q.931 §5: SETUP, CALL PROCEEDING / ALERTING, CONNECT (answer),
RELEASE COMPLETE (end, with a cause value when the Cause element is present).

Joined by callIdentifier: RAS admission (ARQ/ACF/ARJ), information (IRQ) and disengage
(DRQ/DCF) messages on the gatekeeper's flow -- the admission request is the first sign of
a call. Joined by the H.245 address that SETUP/ALERTING/CONNECT announce: the H.245
channel, whose OpenLogicalChannel(Ack) messages say where RTP goes, as fastStart does
inside the call signalling.

Calls are handed out as they become final (``tracked_calls.CallBook``: released and
lingered, or their TCP connection ended, or silent too long); the RAS and H.245 they own
are joined then and forgotten. RAS of a call whose signalling never showed up is handed
out on its own once disengaged or silent; an H.245 channel no call claims is forgotten
once its flow has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.calls.tracked_calls import (
    NS,
    CallBook,
    CallLimits,
    TrackedCall,
    order,
)
from voipscope.dissect.base import MessageEvent
from voipscope.dissect.h225 import H323Message
from voipscope.dissect.h225_asn1 import ACF, ARJ, ARQ, DCF, DRQ, IRQ, RasMessage
from voipscope.dissect.h245 import H245Message, LogicalChannel, parse_open_logical_channel
from voipscope.errors import DecodeError
from voipscope.flows.hooks import NoHooks
from voipscope.flows.kernels import F_ID, F_LAST_NS

MAX_RAS_CALLS = 4096  # callIdentifiers seen in RAS and not yet joined
MAX_H245_FLOWS = 1024  # H.245 channels remembered until their call shows up
MAX_PENDING_REQUESTS = 1024  # RAS requests waiting for their confirm/reject
ANOMALIES = {
    "h323_side_table_full": "more H.323 RAS calls, H.245 channels or pending RAS requests "
    "held than their table allows; the new one was not followed",
}
ZERO_GUID = "00000000-0000-0000-0000-000000000000"

# Q.931 message types (Q.931 §4.4 Table 4-2) under the H.225.0 body names Wireshark's
# comments column uses.
SETUP, CALL_PROCEEDING, ALERTING, PROGRESS, CONNECT = 0x05, 0x02, 0x01, 0x03, 0x07
RELEASE_COMPLETE, RELEASE, DISCONNECT, FACILITY = 0x5A, 0x4D, 0x45, 0x62
BODY_NAMES = {SETUP: "setup", CALL_PROCEEDING: "callProceeding", ALERTING: "alerting",
              PROGRESS: "progress", CONNECT: "connect", RELEASE_COMPLETE: "releaseComplete",
              FACILITY: "facility", 0x7B: "information", 0x7D: "status",
              0x75: "statusInquiry", 0x0D: "setupAcknowledge", 0x6E: "notify",
              RELEASE: "release", DISCONNECT: "disconnect"}  # fmt: skip
ENDING = frozenset({RELEASE_COMPLETE, RELEASE, DISCONNECT})
RAS_NAMES = {ARQ: "admissionRequest", ACF: "admissionConfirm", ARJ: "admissionReject",
             DRQ: "disengageRequest", DCF: "disengageConfirm", IRQ: "infoRequest"}  # fmt: skip


@dataclass(slots=True)
class _Ras:
    """What RAS said about one callIdentifier."""

    guid: str
    first_ns: int
    last_ns: int
    counts: dict[str, int] = field(default_factory=dict)
    packets: int = 0
    flows: list[int] = field(default_factory=list)
    caller: str | None = None
    callee: str | None = None
    rejected: str | None = None  # ARJ reason
    disengaged_ns: int | None = None
    disengage_reason: str | None = None
    joined: bool = False
    requests: list[tuple[int, int]] = field(default_factory=list)  # its keys in ras_requests


@dataclass(slots=True)
class _H245:
    endpoints: tuple[tuple[str, int], tuple[str, int]]
    first_ns: int
    channels: list[tuple[str, LogicalChannel]] = field(default_factory=list)
    end_ns: int | None = None
    last_ns: int = 0
    flow_end_ns: int | None = None  # the channel's TCP flow ended (on_expire)


@dataclass(slots=True)
class _Call:
    call: TrackedCall
    guid: str | None
    flow_id: int
    key: tuple[int, int, tuple[str, int]]
    h245_addresses: list[tuple[str, int]] = field(default_factory=list)
    last_raw: dict[tuple[str, int], bytes] = field(default_factory=dict)
    retransmissions: int = 0
    ended: bool = False


class H323CallTracker(NoHooks):
    """FlowHooks that rebuild H.323 calls; ``drain()`` hands out the final ones during
    the run, ``finish()`` the rest, as Call records."""

    def __init__(
        self, limits: CallLimits | None = None, anomalies: AnomalyLog | None = None
    ) -> None:
        self.limits = limits or CallLimits()
        self.book: CallBook[_Call] = CallBook(
            "h323", self.limits, self._record, anomalies, hold=self._awaits_disengage
        )
        self.anomalies = self.book.anomalies
        # Calls by (flow, call reference, originator); a released call lingers in the
        # book after a new SETUP took its key.
        self.open: dict[tuple[int, int, tuple[str, int]], _Call] = {}
        self.ras: dict[str, _Ras] = {}
        self.ras_requests: dict[tuple[int, int], str] = {}  # (flow, seq) -> guid
        self.h245: dict[int, _H245] = {}

    def on_messages(self, messages: list[object]) -> None:
        for ev in messages:
            if not isinstance(ev, MessageEvent):
                continue
            msg = ev.message
            if isinstance(msg, H323Message | RasMessage | H245Message):
                self.book.at_message(ev.ts_ns)
            if isinstance(msg, H323Message):
                self._signalling(ev, msg)
            elif isinstance(msg, RasMessage):
                self._ras(ev, msg)
            elif isinstance(msg, H245Message):
                self._h245(ev, msg)
        self._sweep()

    def on_expire(self, ended: np.ndarray) -> None:
        if ended.size == 0:
            return
        self.book.expire(ended)
        if self.h245:
            for flow_id, last_ns in zip(
                ended[:, F_ID].tolist(), ended[:, F_LAST_NS].tolist(), strict=True
            ):
                state = self.h245.get(flow_id)
                if state is not None:
                    state.flow_end_ns = last_ns
        self._sweep()

    def drain(self) -> list[dict[str, object]]:
        """Calls final at the current capture time, as Call records (then forgotten)."""
        return self.book.drain()

    # -- Q.931 / H.225.0 call signalling ------------------------------------------------

    def _signalling(self, ev: MessageEvent, msg: H323Message) -> None:
        originator = ev.sender if msg.from_originator else ev.receiver
        key = (ev.flow_id, msg.call_reference, originator)
        entry = self.open.get(key)
        if entry is not None and msg.message_type == SETUP and entry.ended:
            entry = None  # the reference was released and is used again (Q.931 §4.3)
        if entry is None:
            entry = self._new_call(ev, msg, key)
        if entry.last_raw.get(ev.sender) == msg.raw:
            # The same TPKT packet again from the same side: a TCP retransmission or the
            # same segment captured twice; TCP delivers it once.
            entry.retransmissions += 1
            return
        self._signalling_step(entry, ev, msg)
        self.book.touch(entry)

    def _signalling_step(self, entry: _Call, ev: MessageEvent, msg: H323Message) -> None:
        call = entry.call
        entry.last_raw[ev.sender] = msg.raw
        call.saw(ev.ts_ns, ev.flow_id)
        body = msg.h225
        name = body.body if body is not None else BODY_NAMES.get(msg.message_type, msg.name)
        call.count(name)
        if msg.h225_error:
            call.note(f"{name}: H.225.0 body did not decode ({msg.h225_error})")
        if body is not None:
            guid = body.call_identifier
            if guid and entry.guid and guid != entry.guid and guid != ZERO_GUID:
                call.note(
                    f"{name} names callIdentifier {guid}, not the setup's {entry.guid}; "
                    "joined by TCP flow and call reference (Q.931 §4.3)"
                )
            if body.h245_address and body.h245_address not in entry.h245_addresses:
                entry.h245_addresses.append(body.h245_address)
            for element in body.fast_start:
                try:
                    channels = parse_open_logical_channel(element)
                except DecodeError as exc:
                    call.note(f"{name} fastStart element did not decode ({exc})")
                    continue
                for channel in channels:
                    _announce(call, channel, f"fastStart in {name}")
        self._step(entry, ev, msg, name)

    def _new_call(
        self, ev: MessageEvent, msg: H323Message, key: tuple[int, int, tuple[str, int]]
    ) -> _Call:
        guid = msg.h225.call_identifier if msg.h225 is not None else None
        call_id = guid or f"h323-{ev.flow_id}-{msg.call_reference}"
        call = TrackedCall(call_id, "H.323", ev.ts_ns, ev.ts_ns)
        call.call_reference = f"0x{msg.call_reference:04x}"
        if msg.message_type != SETUP:
            call.note(f"first message is {msg.name}: the setup was not captured")
        entry = _Call(call, guid if guid != ZERO_GUID else None, ev.flow_id, key)
        self.open[key] = entry
        self.book.add(entry)
        return entry

    def _step(self, entry: _Call, ev: MessageEvent, msg: H323Message, name: str) -> None:
        call = entry.call
        t = msg.message_type
        body = msg.h225
        if t == SETUP:
            call.caller = call.caller or msg.calling_number or _first(body, "source")
            call.callee = call.callee or msg.called_number or _first(body, "destination")
            call.request_uri = call.request_uri or msg.called_number
            if call.caller is None and msg.display:
                call.caller = msg.display
            call.note(f"setup from {ev.sender[0]}:{ev.sender[1]} to {ev.receiver[0]}")
        elif t == CONNECT and call.answer_ns is None and not entry.ended:
            call.answer_ns = ev.ts_ns
            call.note(f"connect from {ev.sender[0]}: answered")
        elif t == FACILITY and body is not None and body.reason == "callForwarded":
            target = body.destination_aliases[0] if body.destination_aliases else "?"
            call.redirected_to.append(target)
            call.note(f"facility callForwarded to {target}")
        elif t in ENDING and not entry.ended:
            entry.ended = True
            call.end_ns = ev.ts_ns
            call.final_code = msg.cause
            reason = body.reason if body is not None else None
            why = f"{name} from {ev.sender[0]}"
            if msg.cause is not None:
                why += f" with Q.931 cause {msg.cause}"
            if reason:
                why += f", H.225.0 reason {reason}"
            if reason == "facilityCallDeflection" and not call.redirected_to:
                call.redirected_to.append("?")
            if call.answer_ns is None:
                # Before an answer: the calling side gives up, the called side refuses.
                if msg.from_originator:
                    call.cancelled = True
                    why += ": released by the caller before an answer"
                else:
                    call.rejected = True
                    why += ": refused before an answer"
            call.note(why)

    def _awaits_disengage(self, entry: _Call) -> bool:
        """A call its gatekeeper admitted waits for the endpoint's disengageRequest (H.225.0
        RAS: an endpoint tells the gatekeeper when a call is over), which joins the call
        by its callIdentifier however late it comes, as Wireshark's VoIP calls join it
        (h323.pcap: 73 s after the release), for at most flows.idle_timeout_s of the
        call's silence. Its last RAS message counts as the call's last one for the linger
        that follows."""
        info = self.ras.get(entry.guid) if entry.guid else None
        if info is None or "admissionConfirm" not in info.counts:
            return False
        if info.disengaged_ns is None:
            # An endpoint disengages within seconds of its call's end; a capture that
            # missed it does not hold the call for hours.
            return self.book.now_ns - entry.call.last_ns <= int(self.limits.idle_timeout_s * NS)
        # Disengaged: the other endpoint's disengageRequest (each side sends its own) and
        # the confirms may follow; the call lingers after the last RAS as after its release.
        return self.book.now_ns - info.last_ns <= int(self.limits.finished_linger_s * NS)

    def _record(self, entry: _Call, reason: str) -> dict[str, object]:
        """The book lets a call go: join its RAS and H.245, forget its indexes."""
        call = entry.call
        if self.open.get(entry.key) is entry:
            del self.open[entry.key]
        if not entry.ended:
            # The same words whichever way it was let go (closed_by says which): no
            # release reached this call, whose messages all came before it was let go.
            call.note("no release before the end of the capture")
        if entry.retransmissions:
            call.note(
                f"{entry.retransmissions} repeated TPKT packet(s) (TCP retransmission or "
                "duplicate capture) not counted"
            )
        info = self.ras.get(entry.guid) if entry.guid else None
        if info is not None:
            self._forget_ras(info)
            self._join_ras(entry, info)
        for flow_id, state in list(self.h245.items()):
            if not any(e in entry.h245_addresses for e in state.endpoints):
                continue
            del self.h245[flow_id]
            # The H.245 channel's flow and media belong to the call; its times do not move
            # the call's start or last message (call signalling and RAS set those).
            if flow_id not in call.signaling_flows:
                call.signaling_flows.append(flow_id)
            call.note(f"H.245 channel {'-'.join(f'{ip}:{port}' for ip, port in state.endpoints)}")
            for name, channel in state.channels:
                _announce(call, channel, f"H.245 {name}")
            if state.end_ns is not None:
                call.note("H.245 endSessionCommand")
        return call.to_record()

    def _forget_ras(self, info: _Ras) -> None:
        self.ras.pop(info.guid, None)
        for request in info.requests:
            if self.ras_requests.get(request) == info.guid:
                del self.ras_requests[request]

    def _sweep(self) -> None:
        """Calls, RAS-only calls and unclaimed H.245 channels final at capture time."""
        book = self.book
        book.sweep()
        if not self.ras and not self.h245:
            return
        now = book.now_ns
        linger = int(self.limits.finished_linger_s * NS)
        claimed = {e.guid for e in book if e.guid}
        for info in list(self.ras.values()):
            silent = now - info.last_ns
            if info.guid in claimed or silent <= linger:
                continue
            over = info.rejected is not None or info.disengaged_ns is not None
            # Admitted: the conversation itself sends no RAS.
            admitted = "admissionConfirm" in info.counts
            patience = self.limits.answered_idle_s if admitted else self.limits.idle_timeout_s
            if over or silent > patience * NS:
                self._forget_ras(info)
                book.hand_out(_ras_only(info).to_record())
        addresses = {a for e in book for a in e.h245_addresses}
        for flow_id, state in list(self.h245.items()):
            if any(e in addresses for e in state.endpoints):
                continue
            ended = state.flow_end_ns is not None and now - state.flow_end_ns > linger
            if ended or now - state.last_ns > self.limits.answered_idle_s * NS:
                del self.h245[flow_id]  # no call of it was captured, or it was handed out

    def _table_full(self, what: str, size: int, ts_ns: int) -> None:
        """A side table is full (DESIGN §4: attacker-sized state is capped, and the cap
        is never silent): the new entry is not followed."""
        self.anomalies.add("h323_side_table_full", f"{size} {what} held; a new one dropped",
                           ts=ts_ns / 1e9)  # fmt: skip

    # -- RAS ------------------------------------------------------------------------------

    def _ras(self, ev: MessageEvent, msg: RasMessage) -> None:
        guid = msg.call_identifier
        if guid is None and msg.choice in (ACF, ARJ, DCF):
            guid = self.ras_requests.get((ev.flow_id, msg.request_seq))
        if guid is None or guid == ZERO_GUID or msg.choice not in RAS_NAMES:
            return
        info = self.ras.get(guid)
        if info is None:
            if len(self.ras) >= MAX_RAS_CALLS:
                self._table_full("RAS calls", MAX_RAS_CALLS, ev.ts_ns)
                return
            info = self.ras[guid] = _Ras(guid, ev.ts_ns, ev.ts_ns)
        info.first_ns = min(info.first_ns, ev.ts_ns)
        info.last_ns = max(info.last_ns, ev.ts_ns)
        info.packets += 1
        name = RAS_NAMES[msg.choice]
        info.counts[name] = info.counts.get(name, 0) + 1
        if ev.flow_id not in info.flows and len(info.flows) < 4:
            info.flows.append(ev.flow_id)
        if msg.choice in (ARQ, DRQ) and len(self.ras_requests) >= MAX_PENDING_REQUESTS:
            self._table_full("pending RAS requests", MAX_PENDING_REQUESTS, ev.ts_ns)
        elif msg.choice in (ARQ, DRQ):
            request = (ev.flow_id, msg.request_seq)
            self.ras_requests[request] = guid
            if request not in info.requests and len(info.requests) < 8:
                info.requests.append(request)
        if msg.choice == ARQ and not msg.answer_call:
            info.caller = info.caller or (msg.source_aliases or [None])[0]
            info.callee = info.callee or (msg.destination_aliases or [None])[0]
        elif msg.choice == ARJ:
            info.rejected = msg.reason
        elif msg.choice == DRQ and info.disengaged_ns is None:
            info.disengaged_ns = ev.ts_ns
            info.disengage_reason = msg.reason

    # -- H.245 ----------------------------------------------------------------------------

    def _h245(self, ev: MessageEvent, msg: H245Message) -> None:
        state = self.h245.get(ev.flow_id)
        if state is None:
            if len(self.h245) >= MAX_H245_FLOWS:
                self._table_full("H.245 channels", MAX_H245_FLOWS, ev.ts_ns)
                return
            state = self.h245[ev.flow_id] = _H245((ev.sender, ev.receiver), ev.ts_ns)
        state.last_ns = max(state.last_ns, ev.ts_ns)
        for channel in msg.channels:
            if len(state.channels) < 16:
                state.channels.append((msg.name, channel))
        if msg.name == "endSessionCommand" and state.end_ns is None:
            state.end_ns = ev.ts_ns

    # -- records --------------------------------------------------------------------------

    def finish(self) -> list[dict[str, object]]:
        """Every call not handed out yet, open ones included, as Call records (DESIGN §3)."""
        records = self.book.finish()
        records += [_ras_only(info).to_record() for info in self.ras.values() if not info.joined]
        self.ras.clear()
        self.ras_requests.clear()
        self.h245.clear()
        return order(records)

    @staticmethod
    def _join_ras(entry: _Call, info: _Ras) -> None:
        call = entry.call
        info.joined = True
        for flow_id in info.flows:
            call.saw(info.first_ns, flow_id)
        call.saw(info.last_ns, info.flows[0])
        call.packets += info.packets
        for name, n in info.counts.items():
            call.counts[name] = call.counts.get(name, 0) + n
        call.caller = call.caller or info.caller
        call.callee = call.callee or info.callee
        call.note(f"RAS {', '.join(info.counts)} joined by callIdentifier {info.guid}")
        if info.disengaged_ns is not None and call.end_ns is None:
            call.end_ns = info.disengaged_ns
            call.note(f"disengageRequest ({info.disengage_reason}) ends the call")
        if info.rejected:
            call.note(f"admissionReject ({info.rejected})")


def _first(body: object, which: str) -> str | None:
    aliases = getattr(body, f"{which}_aliases", None) if body is not None else None
    return aliases[0] if aliases else None


def _announce(call: TrackedCall, channel: LogicalChannel, source: str) -> None:
    if channel.rtp is not None:
        ip, port = channel.rtp
        rtcp = channel.rtcp[1] if channel.rtcp is not None else None
        call.announce(ip, port, channel.media, rtcp_port=rtcp, source=source)


def _ras_only(info: _Ras) -> TrackedCall:
    """A call seen in RAS only: its call signalling went elsewhere (gatekeeper-routed, or
    another capture point). The outcome is unknown unless admission was refused."""
    call = TrackedCall(info.guid, "H.323", info.first_ns, info.last_ns)
    call.signaling_flows = list(info.flows)
    call.packets = info.packets
    call.counts = dict(info.counts)
    call.caller, call.callee = info.caller, info.callee
    call.note("RAS only: the call signalling was not captured")
    if info.rejected:
        call.rejected = True
        call.end_ns = info.last_ns
        call.note(f"admissionReject ({info.rejected})")
    elif info.disengaged_ns is not None:
        call.note(f"disengageRequest ({info.disengage_reason}); answer unknown")
    return call
