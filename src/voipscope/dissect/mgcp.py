"""MGCP messages (RFC 3435 §3) as facts: command or response line, parameters, SDP body.
Every message is handed to the later stages as an ``MgcpMessage`` (``ctx.message``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import (
    SIGNALING,
    TEXT_BYTES,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.dissect.sdp import announce_body
from voipscope.errors import DecodeError, Malformed, Truncated
from voipscope.text_fields import is_decimal

# RFC 3435 §2.3 commands (and the RFC 3991 MESG extension).
VERBS = frozenset({"EPCF", "CRCX", "MDCX", "DLCX", "RQNT", "NTFY", "AUEP", "AUCX", "RSIP", "MESG"})
MAX_PARAMETERS = 128


@dataclass(slots=True)
class MgcpMessage:
    verb: str | None  # commands
    response_code: int | None  # responses
    transaction_id: int
    endpoint: str | None
    parameters: list[tuple[str, str]] = field(default_factory=list)  # (upper-case name, value)
    sdp: bytes = b""

    def parameter(self, name: str) -> str | None:
        name = name.upper()
        return next((v for k, v in self.parameters if k == name), None)

    @property
    def name(self) -> str:
        return self.verb if self.verb is not None else str(self.response_code)

    @property
    def call_id(self) -> str | None:
        """CallId (C:, §3.2.2.2): hexadecimal, compared case-insensitively."""
        value = self.parameter("C")
        return value.lower() if value else None

    @property
    def connection_mode(self) -> str | None:
        """ConnectionMode (M:, §3.2.2.6): sendrecv, recvonly, sendonly, inactive ..."""
        value = self.parameter("M")
        return value.lower() if value else None


def _lines(data: bytes) -> bytes:
    """Line ends as LF: CRLF and LF are the RFC's (§3.1); bare CR is seen in the wild
    (mgcp.pcap frames 27-29)."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def looks_like_mgcp(data: bytes) -> bool:
    head = data[:5]
    return head[:4].decode("ascii", "replace") in VERBS or (
        head[:3].isdigit() and head[3:4] == b" "
    )


def parse_mgcp(data: bytes) -> MgcpMessage:
    """Parse one MGCP message (a datagram may piggy-back several after a '.' line: §3.5)."""
    text = _lines(data)
    head, sep, body = text.partition(b"\n\n")
    lines = head.split(b"\n")
    first = lines[0].decode("utf-8", "replace").split()
    if not first:
        raise Truncated("empty MGCP message")
    if first[0] in VERBS:
        # verb transaction-id endpoint MGCP version (§3.2.1)
        if len(first) < 5 or first[3] != "MGCP":
            raise Malformed(
                f"MGCP command line is not 'VERB id endpoint MGCP ver': {lines[0][:60]!r}"
            )
        verb, code, endpoint = first[0], None, first[2]
    elif is_decimal(first[0], 3) and len(first[0]) == 3:
        verb, code, endpoint = None, int(first[0]), None  # code transaction-id [commentary] (§3.3)
        if len(first) < 2:
            raise Truncated("MGCP response line has no transaction id")
    else:
        raise Malformed(f"not an MGCP command or response: {lines[0][:40]!r}")
    if not is_decimal(first[1], 9):
        raise Malformed(f"MGCP transaction id {first[1]!r} is not 1-9 digits")
    msg = MgcpMessage(verb, code, int(first[1]), endpoint, sdp=bytes(body) if sep else b"")
    for raw in lines[1:]:
        if raw.strip() in (b"", b"."):
            continue
        name, colon, value = raw.partition(b":")
        if not colon:
            raise Malformed(f"MGCP parameter line without ':': {raw[:40]!r}")
        if len(msg.parameters) >= MAX_PARAMETERS:
            raise Malformed(f"MGCP message has more than {MAX_PARAMETERS} parameters")
        msg.parameters.append(
            (
                name.strip().decode("ascii", "replace").upper(),
                value.strip().decode("utf-8", "replace"),
            )
        )
    return msg


MAX_PIGGYBACKED = 16  # messages per datagram (§3.5), attacker-controlled


def parse_mgcp_all(data: bytes) -> list[MgcpMessage]:
    """Every message of a datagram: piggy-backed ones are separated by a line holding a
    single period (§3.5)."""
    out = []
    for part in _lines(data).split(b"\n.\n"):
        if not part.strip():
            continue
        if len(out) >= MAX_PIGGYBACKED:
            raise Malformed(f"more than {MAX_PIGGYBACKED} piggy-backed MGCP messages")
        out.append(parse_mgcp(part))
    if not out:
        raise Truncated("empty MGCP datagram")
    return out


# -- dissector ---------------------------------------------------------------------------


class MgcpDissector(Dissector):
    """MGCP commands and responses (RFC 3435); SDP bodies announce the gateway's media."""

    name = "MGCP"
    budget_packets = 2
    follow_packets = -1  # connection commands carry the SDP of every call
    udp_first_bytes = TEXT_BYTES
    ANOMALIES = {
        "mgcp_malformed": "a datagram that starts like MGCP but does not parse",
        "mgcp_bad_sdp": "an SDP body of an MGCP message that does not parse",
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if not looks_like_mgcp(pkt.payload):
            return Probe.NO
        msg = parse_mgcp(pkt.payload)
        if msg.verb is not None:
            what = f"MGCP {msg.verb} command to endpoint {msg.endpoint} (RFC 3435 §3.2.1)"
            confidence = 0.97
        else:
            # A bare "200 1234 OK" is short and generic: a response alone is weaker.
            what = f"MGCP {msg.response_code} response to transaction {msg.transaction_id}"
            confidence = (
                0.75
                if 2427 in (ctx.src_port, ctx.dst_port) or (2727 in (ctx.src_port, ctx.dst_port))
                else 0.55
            )
        ctx.report(Finding("MGCP", SIGNALING, confidence, what, pkt.seq))
        self._sdp(ctx, msg, pkt)
        try:
            self._emit(ctx, pkt)
        except DecodeError as exc:  # a later piggy-backed message: the first one matched
            ctx.anomaly("mgcp_malformed", str(exc), pkt.ts_ns)
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        if looks_like_mgcp(pkt.payload):
            self._sdp(ctx, parse_mgcp(pkt.payload), pkt)  # a DecodeError: mgcp_malformed
            self._emit(ctx, pkt)

    @staticmethod
    def _emit(ctx: FlowContext, pkt: Packet) -> None:
        for msg in parse_mgcp_all(pkt.payload):
            ctx.message("MGCP", pkt, msg)

    @staticmethod
    def _sdp(ctx: FlowContext, msg: MgcpMessage, pkt: Packet) -> None:
        if msg.sdp.strip():
            what = msg.verb or str(msg.response_code)
            # CallId parameter (RFC 3435 §3.2.2.2) names the call the media belongs to.
            announce_body(ctx, msg.sdp, pkt, msg.parameter("C"), f"MGCP {what}", "mgcp_bad_sdp")
