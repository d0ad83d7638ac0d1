"""Cisco SCCP / Skinny messages (TCP 2000, TLS 2443) as facts.

Wire format (Cisco's published SCCP message reference, as Wireshark's packet-skinny.c reads
it): a 4-byte little-endian data length, a 4-byte header version, a 4-byte little-endian
message id, then data; the length counts the header version, the id and the data.
Several messages may share one TCP segment.

The call messages (CallState, CallInfo, DialedNumber, KeypadButton, OpenReceiveChannel,
OpenReceiveChannelAck, StartMediaTransmission, ...) are decoded into ``SccpMessage`` and
handed to the later stages (``ctx.message``); field layouts as Wireshark's
packet-skinny.c gives them for header versions 0 (pre-CM7) and 0x11+ (IPv6 address
fields: a 4-byte type then 16 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import SIGNALING, TCP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import DecodeError, Malformed, Truncated, Unsupported

HEADER_BYTES = 12
MAX_MESSAGE_BYTES = 64 * 1024
MAX_MESSAGES = 64
# Message ids seen in the shared captures (names as Wireshark gives them); the full table
# has hundreds and belongs in a data file when calls are built from Skinny.
MESSAGES = {0x0000: "KeepAliveReq", 0x0001: "RegisterReq", 0x0002: "IpPort",
            0x000F: "VersionReq", 0x0010: "CapabilitiesRes", 0x002C: "MediaResourceNotification",
            0x0081: "RegisterAck", 0x0098: "VersionRes", 0x009B: "CapabilitiesReq",
            0x0100: "KeepAliveAck"}  # fmt: skip


@dataclass(slots=True, frozen=True)
class SkinnyMessage:
    message_id: int
    data_length: int
    header_version: int
    data: bytes = b""  # the message's data after the id

    @property
    def name(self) -> str:
        return MESSAGES.get(self.message_id, f"0x{self.message_id:04x}")


def parse_skinny(data: bytes) -> list[SkinnyMessage]:
    """Every whole message in ``data``; a partial last one raises Truncated."""
    out: list[SkinnyMessage] = []
    offset = 0
    while offset < len(data):
        if len(out) >= MAX_MESSAGES:
            raise Malformed(f"more than {MAX_MESSAGES} Skinny messages in one segment")
        if len(data) - offset < HEADER_BYTES:
            raise Truncated("Skinny header is truncated")
        length = int.from_bytes(data[offset : offset + 4], "little")
        if length < 4 or length > MAX_MESSAGE_BYTES:
            raise Malformed(f"Skinny data length {length} is impossible")
        # The length counts the message id and the data; the length and version fields
        # come on top.
        if offset + 8 + length > len(data):
            raise Truncated(f"Skinny message of {length} bytes runs past the segment")
        version = int.from_bytes(data[offset + 4 : offset + 8], "little")
        message_id = int.from_bytes(data[offset + 8 : offset + 12], "little")
        data_start = offset + HEADER_BYTES
        out.append(
            SkinnyMessage(message_id, length, version, data[data_start : offset + 8 + length])
        )
        offset += 8 + length
    return out


# -- call messages -------------------------------------------------------------------------

KEYPAD_BUTTON = 0x0003  # station -> CM: kpButton, lineInstance, callReference
OFF_HOOK = 0x0006
ON_HOOK = 0x0007
SOFT_KEY_EVENT = 0x0026  # softKeyEvent, lineInstance, callReference
OPEN_RECEIVE_CHANNEL_ACK = 0x0022  # status, ip, port, passThruPartyId, callReference
START_MEDIA_TRANSMISSION = 0x008A  # conferenceId, passThruPartyId, remote ip, port ...
STOP_MEDIA_TRANSMISSION = 0x008B
CALL_INFO = 0x008F  # fixed-size party names and numbers, lineInstance, callReference
OPEN_RECEIVE_CHANNEL = 0x0105  # conferenceId, passThruPartyId, ... callReference
CLOSE_RECEIVE_CHANNEL = 0x0106
CALL_STATE = 0x0111  # callState, lineInstance, callReference
DIALED_NUMBER = 0x011D  # calledParty[24], lineInstance, callReference
CALL_MESSAGES = {KEYPAD_BUTTON: "KeypadButton", OFF_HOOK: "OffHook", ON_HOOK: "OnHook",
                 SOFT_KEY_EVENT: "SoftKeyEvent",
                 OPEN_RECEIVE_CHANNEL_ACK: "OpenReceiveChannelAck",
                 START_MEDIA_TRANSMISSION: "StartMediaTransmission",
                 STOP_MEDIA_TRANSMISSION: "StopMediaTransmission", CALL_INFO: "CallInfo",
                 OPEN_RECEIVE_CHANNEL: "OpenReceiveChannel",
                 CLOSE_RECEIVE_CHANNEL: "CloseReceiveChannel", CALL_STATE: "CallState",
                 DIALED_NUMBER: "DialedNumber"}  # fmt: skip
# CallState values (Skinny "DCallState").
CALL_STATES = {1: "OffHook", 2: "OnHook", 3: "RingOut", 4: "RingIn", 5: "Connected",
               6: "Busy", 7: "Congestion", 8: "Hold", 9: "CallWaiting", 10: "CallTransfer",
               11: "CallPark", 12: "Proceed", 13: "CallRemoteMultiline",
               14: "InvalidNumber", 15: "HoldRevert", 16: "Whisper", 17: "RemoteHold"}  # fmt: skip
V17 = 0x11  # header version from which address fields are IPv4-or-IPv6
KEYPAD = "0123456789*#ABCD"  # kpButton 0-9, 0x0e '*', 0x0f '#' (packet-skinny.c)


@dataclass(slots=True)
class SccpMessage:
    """One Skinny call message as a call tracker needs it."""

    message_id: int
    call_reference: int | None = None
    line_instance: int | None = None
    call_state: int | None = None
    calling: str | None = None
    calling_name: str | None = None
    called: str | None = None
    called_name: str | None = None
    digit: str | None = None  # KeypadButton
    ip: str | None = None  # ORC Ack: where the station receives; SMT: where it sends
    port: int | None = None
    conference_id: int | None = None
    pass_thru_party_id: int | None = None
    status: int | None = None  # ORC Ack: 0 ok

    @property
    def name(self) -> str:
        return CALL_MESSAGES.get(self.message_id, f"0x{self.message_id:04x}")

    @property
    def state_name(self) -> str | None:
        if self.call_state is None:
            return None
        return CALL_STATES.get(self.call_state, str(self.call_state))


class _Fields:
    """Little-endian fields of one message's data, with named errors at the end."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def u32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise Truncated(f"Skinny {self.what} ends at byte {len(self.data)}")
        value = int.from_bytes(self.data[self.pos : self.pos + 4], "little")
        self.pos += 4
        return value

    def optional_u32(self) -> int | None:
        return self.u32() if self.pos + 4 <= len(self.data) else None

    def text(self, size: int) -> str:
        if self.pos + size > len(self.data):
            raise Truncated(f"Skinny {self.what} ends inside a {size}-byte string")
        raw = self.data[self.pos : self.pos + size]
        self.pos += size
        return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")

    def address(self, version: int) -> str:
        if version < V17:
            raw = self._raw(4)
            return ".".join(str(b) for b in raw)
        kind = self.u32()  # 0: IPv4 in the first 4 of 16 bytes, 1: IPv6
        raw = self._raw(16)
        if kind == 0:
            return ".".join(str(b) for b in raw[:4])
        return ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))

    def _raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise Truncated(f"Skinny {self.what} ends inside an address")
        raw = self.data[self.pos : self.pos + size]
        self.pos += size
        return raw


def parse_sccp_call_message(message: SkinnyMessage) -> SccpMessage:
    """The call fields of one message (CALL_MESSAGES); others raise Unsupported."""
    mid = message.message_id
    if mid not in CALL_MESSAGES:
        raise Unsupported(f"Skinny message 0x{mid:04x} is not a call message")
    f = _Fields(message.data, CALL_MESSAGES[mid])
    out = SccpMessage(mid)
    if mid == CALL_STATE:
        out.call_state, out.line_instance, out.call_reference = f.u32(), f.u32(), f.u32()
    elif mid == CALL_INFO:
        out.calling_name, out.calling = f.text(40), f.text(24)
        out.called_name, out.called = f.text(40), f.text(24)
        out.line_instance, out.call_reference = f.u32(), f.u32()
    elif mid == DIALED_NUMBER:
        out.called = f.text(24)
        out.line_instance, out.call_reference = f.optional_u32(), f.optional_u32()
    elif mid == KEYPAD_BUTTON:
        button = f.u32()
        out.digit = KEYPAD[button] if button < len(KEYPAD) else str(button)
        out.line_instance, out.call_reference = f.optional_u32(), f.optional_u32()
    elif mid in (OFF_HOOK, ON_HOOK):
        out.line_instance, out.call_reference = f.optional_u32(), f.optional_u32()
    elif mid == SOFT_KEY_EVENT:
        f.u32()  # softKeyEvent
        out.line_instance, out.call_reference = f.u32(), f.u32()
    elif mid == OPEN_RECEIVE_CHANNEL_ACK:
        out.status = f.u32()
        out.ip = f.address(message.header_version)
        out.port = f.u32()
        out.pass_thru_party_id = f.u32()
        out.call_reference = f.optional_u32()
    elif mid == START_MEDIA_TRANSMISSION:
        out.conference_id, out.pass_thru_party_id = f.u32(), f.u32()
        out.ip = f.address(message.header_version)
        out.port = f.u32()
    elif mid in (OPEN_RECEIVE_CHANNEL, STOP_MEDIA_TRANSMISSION, CLOSE_RECEIVE_CHANNEL):
        out.conference_id, out.pass_thru_party_id = f.u32(), f.u32()
    return out


# -- dissector ---------------------------------------------------------------------------

# Header "version" field: 0 in old releases, 0x11-0x17 for the CallManager 7+ dialects.
HEADER_VERSIONS = frozenset({0, *range(0x11, 0x18)})
MAX_MESSAGE_ID = 0x1FF  # station and call manager messages (0x8000+ are SPCP)


def _refused_from_header(data: bytes) -> bool:
    """What the probe would refuse after parsing, read from a first segment's header:
    an impossible length, a message that overruns a full-header segment, an unknown
    header version."""
    if len(data) < HEADER_BYTES:
        return False  # may be the start of a header split over segments
    length = int.from_bytes(data[0:4], "little")
    return (
        length < 4
        or length > MAX_MESSAGE_BYTES
        or 8 + length > len(data)
        or int.from_bytes(data[4:8], "little") not in HEADER_VERSIONS
    )


class SkinnyDissector(Dissector):
    """Cisco SCCP/Skinny over TCP (port 2000; 2443 is TLS and looks like TLS)."""

    name = "SCCP"
    transports = frozenset({TCP})
    budget_packets = 3
    follow_packets = -1  # a phone's call messages come for as long as it is registered
    ANOMALIES = {"sccp_malformed": "a Skinny message that does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        stream = ctx.state.get(self.name)
        if stream is None:
            if _refused_from_header(pkt.payload):
                return Probe.NO  # every TCP flow is offered: answer most from 12 bytes
            stream = ctx.state[self.name] = StreamBuffers(ctx.max_stream_buffer_bytes)
        buf = stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        try:
            messages = parse_skinny(bytes(buf))
        except Truncated:
            return Probe.MAYBE if len(buf) < HEADER_BYTES else Probe.NO
        first = messages[0]
        if first.header_version not in HEADER_VERSIONS or any(
            m.message_id > MAX_MESSAGE_ID for m in messages
        ):
            return Probe.NO
        stream.consume(pkt.direction, sum(8 + m.data_length for m in messages))
        self._emit(ctx, pkt, messages)
        known = [m.name for m in messages if m.message_id in MESSAGES]
        confidence = 0.95 if known else 0.7
        names = ", ".join(m.name for m in messages[:4])
        ctx.report(
            Finding(
                "SCCP",
                SIGNALING,
                confidence,
                f"Skinny messages {names}: little-endian length, header version "
                f"0x{first.header_version:02x}, lengths fill the segment",
                pkt.seq,
            )
        )
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        stream = ctx.state[self.name]
        buf = stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        taken = 0
        messages = []
        # Whole messages from the buffer's start; a partial last one waits for more.
        while len(buf) - taken >= HEADER_BYTES:
            length = int.from_bytes(buf[taken : taken + 4], "little")
            if length < 4 or length > MAX_MESSAGE_BYTES:
                buf.clear()  # lost framing: resynchronise on a later segment
                raise Malformed(f"Skinny data length {length} is impossible")
            if taken + 8 + length > len(buf):
                break
            messages.extend(parse_skinny(bytes(buf[taken : taken + 8 + length])))
            taken += 8 + length
        stream.consume(pkt.direction, taken)
        self._emit(ctx, pkt, messages)

    @staticmethod
    def _emit(ctx: FlowContext, pkt: Packet, messages: list[SkinnyMessage]) -> None:
        for m in messages:
            if m.message_id in CALL_MESSAGES:
                try:
                    ctx.message("SCCP", pkt, parse_sccp_call_message(m))
                except DecodeError as exc:
                    ctx.anomaly("sccp_malformed", str(exc), pkt.ts_ns)
