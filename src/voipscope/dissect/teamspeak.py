"""TeamSpeak 3 over UDP, as facts: the Init1 handshake and the packet header.

TeamSpeak does not publish its protocol; the reference is the community's "TS3 PROTOCOL
PAPER" (ReSpeak tsdeclarations ``ts3protocol.md``, shipped with TS3AudioBot as
``TS3Client/ts3protocol.md``), which nDPI's ``teamspeak.c`` also relies on ("TS3INIT1").

Every datagram starts with a header (§1.1), big-endian, at most 500 bytes in all:

* client -> server: MAC (8) | packet id (2) | client id (2) | type + flags (1) = 13 bytes
* server -> client: MAC (8) | packet id (2) | type + flags (1) = 11 bytes

The type byte (§1.3) is ``UE CP NP FR type``: flags 0x80 unencrypted, 0x40 compressed,
0x20 new protocol, 0x10 fragmented; types 0 Voice, 1 VoiceWhisper, 2 Command,
3 CommandLow, 4 Ping, 5 Pong, 6 Ack, 7 AckLow, 8 Init1 (§1.2). The MAC is an EAX tag,
except on the five handshake packets (§2) where it is the ASCII text ``TS3INIT1``, the
packet id is 101 and the client id 0:

  step 0 (C->S): version (4) | 0x00 | timestamp (4) | random (4) | 8 zero bytes
  step 1 (S->C): 0x01 | 16 bytes | the client's random bytes reversed (4)
  step 2 (C->S): version (4) | 0x02 | the 16 bytes | the 4 bytes
  step 3 (S->C): 0x03 | x (64) | n (64) | level (4) | 100 bytes
  step 4 (C->S): version (4) | 0x04 | x | n | level | the 100 bytes | y (64) | command
  step 127 (S->C): start over

Voice (types 0 and 1) is usually encrypted after the header, so the header is all that
shows: with no handshake on the flow, a run of client headers with one client id and
per-type packet ids counting up is behaviour, not a signature. Port 9987 is weak.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import (
    MEDIA,
    SIGNALING,
    UDP,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.errors import DecodeError, Malformed, Truncated

TEAMSPEAK_PORT = 9987  # default voice port of a TeamSpeak 3 virtual server
MAC_BYTES = 8
C2S_HEADER_BYTES = 13  # §1.1.1
S2C_HEADER_BYTES = 11  # §1.1.2
MAX_PACKET_BYTES = 500  # §1.1 "The entire packet size must be at max 500 bytes"
PACKET_TYPES = {0: "Voice", 1: "VoiceWhisper", 2: "Command", 3: "CommandLow", 4: "Ping",
                5: "Pong", 6: "Ack", 7: "AckLow", 8: "Init1"}  # fmt: skip
VOICE_TYPES = frozenset({0, 1})
INIT1 = 8
TYPE_MASK = 0x0F
FLAG_UNENCRYPTED, FLAG_COMPRESSED, FLAG_NEWPROTOCOL, FLAG_FRAGMENTED = 0x80, 0x40, 0x20, 0x10
INIT_MAC = b"TS3INIT1"  # §2
INIT_PACKET_ID = 101  # §2
# Bytes after the header of each Init1 step (§2.1-2.5); step 4 is at least this long.
CLIENT_INIT_BYTES = {0: 21, 2: 25, 4: 301}
SERVER_INIT_BYTES = {1: 21, 3: 233, 127: 1}


@dataclass(slots=True, frozen=True)
class Ts3Header:
    mac: bytes
    packet_id: int
    client_id: int | None  # client -> server only
    packet_type: int
    flags: int  # the top four bits of the type byte
    header_bytes: int

    @property
    def type_name(self) -> str:
        return PACKET_TYPES[self.packet_type]


@dataclass(slots=True, frozen=True)
class Ts3Init:
    from_client: bool
    step: int
    version: int | None  # client steps: "version of the TeamSpeak client as timestamp"


def parse_ts3_header(data: bytes, from_client: bool) -> Ts3Header:
    """The header of one datagram, read the way its direction lays it out."""
    size = C2S_HEADER_BYTES if from_client else S2C_HEADER_BYTES
    if len(data) < size:
        raise Truncated(
            f"TeamSpeak packet has {len(data)} bytes, fewer than its {size}-byte header"
        )
    if len(data) > MAX_PACKET_BYTES:
        raise Malformed(f"TeamSpeak packet has {len(data)} bytes, more than 500")
    type_byte = data[size - 1]
    packet_type = type_byte & TYPE_MASK
    if packet_type not in PACKET_TYPES:
        raise Malformed(f"TeamSpeak packet type {packet_type} is not 0-8")
    return Ts3Header(
        mac=bytes(data[0:MAC_BYTES]),
        packet_id=int.from_bytes(data[8:10], "big"),
        client_id=int.from_bytes(data[10:12], "big") if from_client else None,
        packet_type=packet_type,
        flags=type_byte & 0xF0,
        header_bytes=size,
    )


def parse_ts3_init(data: bytes) -> Ts3Init:
    """A low-level handshake packet (MAC ``TS3INIT1``), client's or server's."""
    if len(data) < S2C_HEADER_BYTES:
        raise Truncated(f"TeamSpeak Init1 has {len(data)} bytes, fewer than 11")
    if data[0:MAC_BYTES] != INIT_MAC:
        raise Malformed("TeamSpeak Init1 MAC is not TS3INIT1")
    from_client = data[10] & TYPE_MASK != INIT1  # server: the type byte is at offset 10
    header = parse_ts3_header(data, from_client)
    if header.packet_type != INIT1:
        raise Malformed(f"TeamSpeak TS3INIT1 packet has type {header.packet_type}, not 8")
    if header.packet_id != INIT_PACKET_ID:
        raise Malformed(f"TeamSpeak Init1 packet id is {header.packet_id}, not 101")
    if header.client_id:
        raise Malformed(f"TeamSpeak Init1 client id is {header.client_id}, not 0")
    body = data[header.header_bytes :]
    if from_client:
        if len(body) < 5:
            raise Truncated("TeamSpeak client Init1 ends before its step byte")
        step, version = body[4], int.from_bytes(body[0:4], "big")
        sizes = CLIENT_INIT_BYTES
    else:
        if not body:
            raise Truncated("TeamSpeak server Init1 ends before its step byte")
        step, version = body[0], None
        sizes = SERVER_INIT_BYTES
    need = sizes.get(step)
    side = "client" if from_client else "server"
    if need is None:
        raise Malformed(f"TeamSpeak {side} Init1 step {step} is not one of {sorted(sizes)}")
    if len(body) < need:
        raise Truncated(f"TeamSpeak Init1 step {step} has {len(body)} bytes, fewer than {need}")
    if step in (0, 1, 2) and len(body) != need:
        raise Malformed(f"TeamSpeak Init1 step {step} has {len(body)} bytes, not {need}")
    return Ts3Init(from_client, step, version)


def _plausible(data: bytes) -> bool:
    """Cheap first check: a handshake, or a client header with a client id and a type."""
    if data[0:MAC_BYTES] == INIT_MAC:
        return True
    return (
        C2S_HEADER_BYTES <= len(data) <= MAX_PACKET_BYTES
        and data[12] & TYPE_MASK < INIT1
        and (data[10] | data[11]) != 0
    )


@dataclass(slots=True)
class _Run:
    """Client headers in one direction with no handshake seen (behavioural check)."""

    client_id: int | None = None
    last_ids: dict[int, int] = field(default_factory=dict)  # packet type -> last packet id
    good: int = 0
    voice: int = 0
    broken: bool = False


@dataclass(slots=True)
class TeamSpeakState:
    first_seq: int
    on_port: bool
    client_direction: int | None = None  # from a client Init1
    runs: list[_Run] = field(default_factory=lambda: [_Run(), _Run()])
    best: float = 0.0
    voice_reported: bool = False


class TeamSpeakDissector(Dissector):
    name = "TeamSpeak"
    transports = frozenset({UDP})
    budget_packets = 10  # the handshake opens a flow; mid-flow needs a run of headers
    follow_packets = 96  # the handshake and the first commands come before any voice
    ANOMALIES = {"teamspeak_malformed": "a TeamSpeak 3 packet whose header does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        state = ctx.state.get(self.name)
        if state is None:
            on_port = TEAMSPEAK_PORT in (ctx.src_port, ctx.dst_port)
            if not on_port and not _plausible(data):
                return Probe.NO
            state = ctx.state[self.name] = TeamSpeakState(pkt.seq, on_port)
        port = " on UDP 9987" if state.on_port else ""
        if data[0:MAC_BYTES] == INIT_MAC:
            try:
                init = parse_ts3_init(data)
            except DecodeError:
                return Probe.MAYBE
            side = "client" if init.from_client else "server"
            if init.from_client:
                state.client_direction = pkt.direction
            else:
                state.client_direction = 1 - pkt.direction
            detail = f", client version stamp {init.version}" if init.version is not None else ""
            self._report(
                ctx,
                pkt,
                state,
                0.95,
                SIGNALING,
                f"TeamSpeak 3 {side} Init1 step {init.step} (MAC TS3INIT1, "
                f"packet id 101){detail}{port}",
            )
            return Probe.MATCH
        return self._run(ctx, pkt, state, port)

    def _run(self, ctx: FlowContext, pkt: Packet, state: TeamSpeakState, port: str) -> Probe:
        run = state.runs[pkt.direction]
        if run.broken:
            return Probe.NO if state.runs[1 - pkt.direction].broken else Probe.MAYBE
        try:
            header = parse_ts3_header(pkt.payload, from_client=True)
        except DecodeError:
            run.broken = True
            return self._run_verdict(state)
        last = run.last_ids.get(header.packet_type)
        ok = (
            header.packet_type != INIT1
            and header.client_id
            and run.client_id in (None, header.client_id)
            and (last is None or 0 < (header.packet_id - last) % 65536 <= 32)
        )
        if not ok:
            run.broken = True
            return self._run_verdict(state)
        run.client_id = header.client_id
        run.last_ids[header.packet_type] = header.packet_id
        run.good += 1
        run.voice += header.packet_type in VOICE_TYPES
        if run.good == 4:
            confidence = 0.6 if port else 0.45
            kind = f"{run.voice} voice" if run.voice else "no voice"
            self._report(
                ctx,
                pkt,
                state,
                confidence,
                MEDIA if run.voice else SIGNALING,
                f"4 TeamSpeak 3 client headers: client id {run.client_id}, per-type "
                f"packet ids counting up, {kind}{port}",
                "audio" if run.voice else None,
            )
        return Probe.MAYBE

    @staticmethod
    def _run_verdict(state: TeamSpeakState) -> Probe:
        if all(r.broken for r in state.runs) and not state.on_port and state.best == 0.0:
            return Probe.NO
        return Probe.MAYBE

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        state = ctx.state[self.name]
        if state.voice_reported or state.client_direction is None:
            return
        data = pkt.payload
        if data[0:MAC_BYTES] == INIT_MAC:
            parse_ts3_init(data)  # an anomaly if a handshake packet is malformed
            return
        header = parse_ts3_header(data, from_client=pkt.direction == state.client_direction)
        if header.packet_type in VOICE_TYPES:
            state.voice_reported = True
            self._report(
                ctx,
                pkt,
                state,
                0.9,
                MEDIA,
                f"TeamSpeak 3 {header.type_name} packet (id {header.packet_id}) "
                "after the Init1 handshake",
                "audio",
            )

    def on_expire(self, ctx: FlowContext) -> None:
        state = ctx.state.get(self.name)
        if state is not None and state.on_port and state.best == 0.0:
            ctx.report(
                Finding(
                    "TeamSpeak",
                    SIGNALING,
                    0.2,
                    "UDP port 9987 only (TeamSpeak 3 default)",
                    state.first_seq,
                    app=None,  # ports never name the app (classify.arbiter)
                )
            )

    def _report(
        self,
        ctx: FlowContext,
        pkt: Packet,
        state: TeamSpeakState,
        confidence: float,
        category: str,
        evidence: str,
        media: str | None = None,
    ) -> None:
        state.best = max(state.best, confidence)
        ctx.report(
            Finding(
                "TeamSpeak",
                category,
                confidence,
                evidence,
                pkt.seq,
                app="TeamSpeak",
                media=media,
            )
        )
