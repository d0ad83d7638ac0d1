"""MGCP messages (RFC 3435 §3) as facts: command or response line, parameters, SDP body."""

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
from voipscope.errors import Malformed, Truncated

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


def looks_like_mgcp(data: bytes) -> bool:
    head = data[:5]
    return head[:4].decode("ascii", "replace") in VERBS or (
        head[:3].isdigit() and head[3:4] == b" "
    )


def parse_mgcp(data: bytes) -> MgcpMessage:
    """Parse one MGCP message (a datagram may piggy-back several after a '.' line: §3.5)."""
    text = data.replace(b"\r\n", b"\n")
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
    elif first[0].isdigit() and len(first[0]) == 3:
        verb, code, endpoint = None, int(first[0]), None  # code transaction-id [commentary] (§3.3)
        if len(first) < 2:
            raise Truncated("MGCP response line has no transaction id")
    else:
        raise Malformed(f"not an MGCP command or response: {lines[0][:40]!r}")
    if not first[1].isdigit() or len(first[1]) > 9:
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
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        if looks_like_mgcp(pkt.payload):
            self._sdp(ctx, parse_mgcp(pkt.payload), pkt)  # a DecodeError: mgcp_malformed

    @staticmethod
    def _sdp(ctx: FlowContext, msg: MgcpMessage, pkt: Packet) -> None:
        if msg.sdp.strip():
            what = msg.verb or str(msg.response_code)
            # CallId parameter (RFC 3435 §3.2.2.2) names the call the media belongs to.
            announce_body(ctx, msg.sdp, pkt, msg.parameter("C"), f"MGCP {what}", "mgcp_bad_sdp")
