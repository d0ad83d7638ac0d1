"""Mumble over UDP, as facts: the unencrypted ping, and what follows it.

Mumble's voice datagrams are encrypted with OCB2-AES128 behind a 4-byte crypt header
(Mumble protocol docs, ``docs/dev/network-protocol/voice_data.md``, "Encryption"), so
nothing in them is plaintext. The one plaintext message is the *connectionless ping*
a client sends to learn a server's version and load (mumble wiki "Protocol", "UDP Ping
packet"; ``src/MumbleProtocol.cpp``, ``UDPPingEncoder``/``UDPDecoder``):

* legacy request, 12 bytes: four zero bytes (request type 0), 8-byte opaque timestamp;
* legacy response, 24 bytes, big-endian: version (``0x00 major minor patch``), the
  request's 8 bytes echoed, users, maximum users, allowed bandwidth per user;
* protobuf form (Mumble >= 1.5): header byte 0x01 (``UDPMessageType::Ping``), then a
  ``MumbleUDP.Ping`` protobuf (``src/MumbleUDP.proto``): timestamp = 1,
  request_extended_information = 2, server_version = 3, user_count = 4,
  max_user_count = 5, max_bandwidth_per_user = 6 (all varints); later servers add
  server_version_v2 = 7.

A ping answered on the flow is strong. Voice after it is only *behaviour* (datagrams of
at most 1024 bytes, the 1020-byte maximum audio packet plus the 4-byte crypt header,
voice_data.md "Packet format"), and the default port 64738 is weak evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

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

MUMBLE_PORT = 64738  # default server port (mumble wiki "Ports"; murmur.ini port=64738)
LEGACY_PING_REQUEST_BYTES = 12
LEGACY_PING_RESPONSE_BYTES = 24
PROTOBUF_PING_HEADER = 0x01  # MumbleProtocol.h UDPMessageType::Ping
PROTOBUF_PING_MAX_BYTES = 64  # seven varint fields of at most 10 bytes, plus tags
PING_FIELDS = {1: "timestamp", 2: "request_extended_information", 3: "server_version",
               4: "user_count", 5: "max_user_count", 6: "max_bandwidth_per_user",
               7: "server_version_v2"}  # fmt: skip
CRYPT_HEADER_BYTES = 4  # OCB2 nonce byte + 3 bytes of tag (voice_data.md "Packet format")
MAX_UDP_BYTES = 1024  # 1020-byte audio packet + crypt header


@dataclass(slots=True, frozen=True)
class MumblePing:
    form: str  # "legacy-request" | "legacy-response" | "protobuf"
    timestamp: int  # opaque to everyone but its sender; echoed by the server
    version: str | None = None  # "1.3.4"
    users: int | None = None
    max_users: int | None = None
    bandwidth: int | None = None
    request_extended: bool = False


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """Protobuf base-128 varint at ``at``: (value, next offset)."""
    value = 0
    for i in range(10):
        if at + i >= len(data):
            raise Truncated("Mumble protobuf ping has a truncated varint")
        b = data[at + i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, at + i + 1
    raise Malformed("Mumble protobuf ping has a varint longer than 10 bytes")


def _version_v1(value: int) -> str:
    return f"{(value >> 16) & 0xFFFF}.{(value >> 8) & 0xFF}.{value & 0xFF}"


def _version_v2(value: int) -> str:
    return f"{(value >> 48) & 0xFFFF}.{(value >> 32) & 0xFFFF}.{(value >> 16) & 0xFFFF}"


def parse_mumble_ping(data: bytes) -> MumblePing:
    """A connectionless ping in any of its three forms; raise Truncated/Malformed."""
    if not data:
        raise Truncated("empty Mumble ping")
    if data[0] == PROTOBUF_PING_HEADER:
        return _protobuf_ping(data)
    n = len(data)
    if n < LEGACY_PING_REQUEST_BYTES:
        raise Truncated(f"Mumble ping has {n} bytes, fewer than 12")
    if n == LEGACY_PING_REQUEST_BYTES and data[0:4] == b"\0\0\0\0":
        return MumblePing("legacy-request", int.from_bytes(data[4:12], "big"))
    if n < LEGACY_PING_RESPONSE_BYTES:
        if data[0] == 0 and data[1] != 0:  # the start of a response: its version
            raise Truncated(f"Mumble ping response has {n} bytes, fewer than 24")
        raise Malformed(f"Mumble {n}-byte ping is neither a 12-byte request nor a response")
    if n > LEGACY_PING_RESPONSE_BYTES:
        raise Malformed(f"Mumble ping has {n} bytes: neither 12 nor 24")
    version = int.from_bytes(data[0:4], "big")
    if data[0] != 0 or version >> 16 == 0:
        raise Malformed(f"Mumble ping response version 0x{version:08x} is not 0x00MMmmpp")
    users, max_users, bandwidth = (int.from_bytes(data[i : i + 4], "big") for i in (12, 16, 20))
    return MumblePing(
        "legacy-response",
        int.from_bytes(data[4:12], "big"),
        version=_version_v1(version),
        users=users,
        max_users=max_users,
        bandwidth=bandwidth,
    )


def _protobuf_ping(data: bytes) -> MumblePing:
    if len(data) < 2:
        raise Truncated("Mumble protobuf ping has only its header byte")
    if len(data) > PROTOBUF_PING_MAX_BYTES:
        raise Malformed(f"Mumble protobuf ping has {len(data)} bytes, more than 64")
    values: dict[int, int] = {}
    at = 1
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire_type = tag >> 3, tag & 7
        if number not in PING_FIELDS or wire_type != 0:
            raise Malformed(f"Mumble protobuf ping has field {number} of wire type {wire_type}")
        if number in values:
            raise Malformed(f"Mumble protobuf ping repeats field {number}")
        values[number], at = _varint(data, at)
    if 1 not in values:
        raise Malformed("Mumble protobuf ping has no timestamp")
    version = None
    if values.get(7):
        version = _version_v2(values[7])
    elif values.get(3):
        version = _version_v1(values[3])
    return MumblePing(
        "protobuf",
        values[1],
        version=version,
        users=values.get(4),
        max_users=values.get(5),
        bandwidth=values.get(6),
        request_extended=bool(values.get(2)),
    )


def looks_like_mumble_ping(data: bytes) -> bool:
    """Cheap first check before parsing."""
    n = len(data)
    if n == LEGACY_PING_REQUEST_BYTES:
        return data[0:4] == b"\0\0\0\0"
    if n == LEGACY_PING_RESPONSE_BYTES:
        return data[0] == 0 and data[1] != 0
    return 2 < n <= PROTOBUF_PING_MAX_BYTES and data[0] == PROTOBUF_PING_HEADER and data[1] == 0x08


@dataclass(slots=True)
class MumbleState:
    first_seq: int
    on_port: bool
    requests: dict[int, int]  # timestamp -> direction of the request
    answered: bool = False
    best: float = 0.0
    voice: list[int] | None = None  # datagrams per direction after the ping exchange
    voice_reported: bool = False


class MumbleDissector(Dissector):
    name = "Mumble"
    transports = frozenset({UDP})
    budget_packets = 6  # a ping and its answer open the flow
    follow_packets = 40  # to see encrypted voice after the ping
    ANOMALIES = {"mumble_malformed": "a Mumble ping that does not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        state = ctx.state.get(self.name)
        if state is None:
            on_port = MUMBLE_PORT in (ctx.src_port, ctx.dst_port)
            if not on_port and not looks_like_mumble_ping(data):
                return Probe.NO
            state = ctx.state[self.name] = MumbleState(pkt.seq, on_port, {})
        if not looks_like_mumble_ping(data):
            return Probe.MAYBE if state.on_port else Probe.NO
        try:
            ping = parse_mumble_ping(data)
        except DecodeError:
            return Probe.MAYBE
        port = " on UDP 64738" if state.on_port else ""
        echoed = state.requests.get(ping.timestamp) == 1 - pkt.direction
        if ping.form == "protobuf" and ping.version is None and echoed:
            # A plain connectivity ping echoed back: no server details, still an answer.
            state.answered = True
            state.voice = [0, 0]
            self._report(ctx, pkt, state, 0.9, f"Mumble protobuf ping echoed{port}")
            return Probe.MATCH
        if ping.form == "legacy-request" or (ping.form == "protobuf" and ping.version is None):
            state.requests[ping.timestamp] = pkt.direction
            what = "12-byte legacy" if ping.form == "legacy-request" else "protobuf"
            confidence = 0.6 if state.on_port else 0.35
            self._report(ctx, pkt, state, confidence, f"Mumble {what} ping request{port}")
            return Probe.MAYBE
        # A response: version and counts, echoing a request's timestamp or not.
        detail = f"version {ping.version}, {ping.users}/{ping.max_users} users"
        if echoed:
            state.answered = True
            state.voice = [0, 0]
            self._report(
                ctx,
                pkt,
                state,
                0.95,
                f"Mumble ping response echoing the request's timestamp ({detail}){port}",
            )
            return Probe.MATCH
        confidence = 0.7 if state.on_port else 0.5
        self._report(ctx, pkt, state, confidence, f"Mumble ping response ({detail}){port}")
        return Probe.MATCH if state.on_port else Probe.MAYBE

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        state = ctx.state[self.name]
        data = pkt.payload
        if state.voice is None or state.voice_reported or looks_like_mumble_ping(data):
            return
        if not CRYPT_HEADER_BYTES < len(data) <= MAX_UDP_BYTES:
            state.voice = None  # not Mumble's voice framing: say nothing about voice
            return
        state.voice[pkt.direction] += 1
        if min(state.voice) >= 3:
            state.voice_reported = True
            ctx.report(
                Finding(
                    "Mumble",
                    MEDIA,
                    0.7,
                    f"{sum(state.voice)} datagrams of 5-1024 bytes both ways after a "
                    "Mumble ping exchange (OCB2-AES voice)",
                    pkt.seq,
                    app="Mumble",
                    media="audio",
                )
            )

    def on_expire(self, ctx: FlowContext) -> None:
        state = ctx.state.get(self.name)
        if state is not None and state.on_port and state.best == 0.0:
            ctx.report(
                Finding(
                    "Mumble",
                    SIGNALING,
                    0.2,
                    "UDP port 64738 only (Mumble default)",
                    state.first_seq,
                    app=None,  # ports never name the app (classify.arbiter)
                )
            )

    def _report(
        self, ctx: FlowContext, pkt: Packet, state: MumbleState, confidence: float, evidence: str
    ) -> None:
        state.best = max(state.best, confidence)
        ctx.report(Finding("Mumble", SIGNALING, confidence, evidence, pkt.seq, app="Mumble"))
