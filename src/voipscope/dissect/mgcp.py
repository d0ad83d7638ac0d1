"""MGCP messages (RFC 3435 §3) as facts: command or response line, parameters, SDP body."""

from __future__ import annotations

from dataclasses import dataclass, field

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
