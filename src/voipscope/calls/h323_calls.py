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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.calls.tracked_calls import TrackedCall, order
from voipscope.dissect.base import MessageEvent
from voipscope.dissect.h225 import H323Message
from voipscope.dissect.h225_asn1 import ACF, ARJ, ARQ, DCF, DRQ, IRQ, RasMessage
from voipscope.dissect.h245 import H245Message, LogicalChannel, parse_open_logical_channel
from voipscope.errors import DecodeError
from voipscope.flows.hooks import NoHooks

MAX_OPEN_CALLS = 4096  # calls without a release yet; the oldest is closed beyond it
MAX_RAS_CALLS = 4096  # callIdentifiers seen in RAS and not yet joined
MAX_H245_FLOWS = 1024  # H.245 channels remembered until their call shows up
MAX_PENDING_REQUESTS = 1024  # RAS requests waiting for their confirm/reject
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


@dataclass(slots=True)
class _H245:
    endpoints: tuple[tuple[str, int], tuple[str, int]]
    first_ns: int
    channels: list[tuple[str, LogicalChannel]] = field(default_factory=list)
    end_ns: int | None = None


@dataclass(slots=True)
class _Call:
    call: TrackedCall
    guid: str | None
    flow_id: int
    h245_addresses: list[tuple[str, int]] = field(default_factory=list)
    last_raw: dict[tuple[str, int], bytes] = field(default_factory=dict)
    retransmissions: int = 0
    ended: bool = False


class H323CallTracker(NoHooks):
    """FlowHooks that rebuild H.323 calls; ``finish()`` returns their Call records."""

    def __init__(self) -> None:
        self.open: dict[tuple[int, int, tuple[str, int]], _Call] = {}
        self.closed: list[_Call] = []
        self.ras: dict[str, _Ras] = {}
        self.ras_requests: dict[tuple[int, int], str] = {}  # (flow, seq) -> guid
        self.h245: dict[int, _H245] = {}

    def on_messages(self, messages: list[object]) -> None:
        for ev in messages:
            if not isinstance(ev, MessageEvent):
                continue
            msg = ev.message
            if isinstance(msg, H323Message):
                self._signalling(ev, msg)
            elif isinstance(msg, RasMessage):
                self._ras(ev, msg)
            elif isinstance(msg, H245Message):
                self._h245(ev, msg)

    # -- Q.931 / H.225.0 call signalling ------------------------------------------------

    def _signalling(self, ev: MessageEvent, msg: H323Message) -> None:
        originator = ev.sender if msg.from_originator else ev.receiver
        key = (ev.flow_id, msg.call_reference, originator)
        entry = self.open.get(key)
        if entry is not None and msg.message_type == SETUP and entry.ended:
            entry = None  # the reference was released and is used again (Q.931 §4.3)
        if entry is None:
            entry = self._new_call(ev, msg, key)
        call = entry.call
        if entry.last_raw.get(ev.sender) == msg.raw:
            # The same TPKT packet again from the same side: a TCP retransmission or the
            # same segment captured twice; TCP delivers it once.
            entry.retransmissions += 1
            return
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
        if len(self.open) >= MAX_OPEN_CALLS:
            oldest = min(self.open, key=lambda k: self.open[k].call.last_ns)
            self._close(oldest, "closed early: more than MAX_OPEN_CALLS open H.323 calls")
        guid = msg.h225.call_identifier if msg.h225 is not None else None
        call_id = guid or f"h323-{ev.flow_id}-{msg.call_reference}"
        call = TrackedCall(call_id, "H.323", ev.ts_ns, ev.ts_ns)
        call.call_reference = f"0x{msg.call_reference:04x}"
        if msg.message_type != SETUP:
            call.note(f"first message is {msg.name}: the setup was not captured")
        entry = _Call(call, guid if guid != ZERO_GUID else None, ev.flow_id)
        self.open[key] = entry
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

    def _close(self, key: tuple[int, int, tuple[str, int]], why: str | None = None) -> None:
        entry = self.open.pop(key)
        if why:
            entry.call.note(why)
        if entry.retransmissions:
            entry.call.note(
                f"{entry.retransmissions} repeated TPKT packet(s) (TCP retransmission or "
                "duplicate capture) not counted"
            )
        self.closed.append(entry)

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
                return
            info = self.ras[guid] = _Ras(guid, ev.ts_ns, ev.ts_ns)
        info.first_ns = min(info.first_ns, ev.ts_ns)
        info.last_ns = max(info.last_ns, ev.ts_ns)
        info.packets += 1
        name = RAS_NAMES[msg.choice]
        info.counts[name] = info.counts.get(name, 0) + 1
        if ev.flow_id not in info.flows and len(info.flows) < 4:
            info.flows.append(ev.flow_id)
        if msg.choice in (ARQ, DRQ) and len(self.ras_requests) < MAX_PENDING_REQUESTS:
            self.ras_requests[(ev.flow_id, msg.request_seq)] = guid
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
                return
            state = self.h245[ev.flow_id] = _H245((ev.sender, ev.receiver), ev.ts_ns)
        for channel in msg.channels:
            if len(state.channels) < 16:
                state.channels.append((msg.name, channel))
        if msg.name == "endSessionCommand" and state.end_ns is None:
            state.end_ns = ev.ts_ns

    # -- records --------------------------------------------------------------------------

    def finish(self) -> list[dict[str, object]]:
        """Every call, open ones included, as Call records (DESIGN §3)."""
        for key in list(self.open):
            entry = self.open[key]
            if not entry.ended:
                entry.call.note("no release before the end of the capture")
            self._close(key)
        by_address: dict[tuple[str, int], _Call] = {}
        for entry in self.closed:
            for address in entry.h245_addresses:
                by_address.setdefault(address, entry)
            if entry.guid and entry.guid in self.ras:
                self._join_ras(entry, self.ras[entry.guid])
        for flow_id, state in self.h245.items():
            owner = next((by_address[e] for e in state.endpoints if e in by_address), None)
            if owner is None:
                continue
            # The H.245 channel's flow and media belong to the call; its times do not move
            # the call's start or last message (call signalling and RAS set those).
            call = owner.call
            if flow_id not in call.signaling_flows:
                call.signaling_flows.append(flow_id)
            call.note(f"H.245 channel {'-'.join(f'{ip}:{port}' for ip, port in state.endpoints)}")
            for name, channel in state.channels:
                _announce(owner.call, channel, f"H.245 {name}")
            if state.end_ns is not None:
                owner.call.note("H.245 endSessionCommand")
        records = [e.call.to_record() for e in self.closed]
        records += [_ras_only(info).to_record() for info in self.ras.values() if not info.joined]
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
