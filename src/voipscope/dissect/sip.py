"""SIP messages (RFC 3261) as facts: start line, headers, body boundaries.

Pure parsing. Works on one UDP datagram or on a TCP byte stream (``parse_sip`` reports
how many bytes the message used, and raises Truncated when Content-Length says more is
still to come, so a TCP reassembler knows to wait).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from voipscope.dissect.base import (
    SIGNALING,
    TCP,
    TEXT_BYTES,
    UDP,
    WHITESPACE_BYTES,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.dissect.sdp import announce_body
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import DecodeError, Malformed, Truncated
from voipscope.text_fields import is_decimal

# RFC 3261 §7.3.3 compact header forms, plus the ones added by later RFCs.
COMPACT_HEADERS = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
    "x": "session-expires", "y": "identity", "n": "identity-info",
}  # fmt: skip
# Methods of RFC 3261 and its extensions (RFC 3262 PRACK, 3265/6665 SUBSCRIBE/NOTIFY,
# 3311 UPDATE, 3428 MESSAGE, 3515 REFER, 3903 PUBLISH, 2976/6086 INFO).
METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "REGISTER",
        "OPTIONS",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)
SIP_VERSION = "SIP/2.0"
MAX_HEADERS = 256  # attacker-controlled: more is Malformed, not unbounded work
MAX_HEADER_BYTES = 64 * 1024

_REQUEST_LINE = re.compile(rb"^([A-Za-z!%*_+`'~.-]+) (\S+) (SIP/\d+\.\d+)$")
_STATUS_LINE = re.compile(rb"^(SIP/\d+\.\d+) (\d{3}) ?(.*)$")
_TAG = re.compile(r";\s*tag=([^;>\s,]+)", re.IGNORECASE)


@dataclass(slots=True)
class SipMessage:
    is_request: bool
    method: str | None  # requests; responses take it from CSeq
    request_uri: str | None
    status_code: int | None
    reason: str | None
    headers: list[tuple[str, str]] = field(default_factory=list)  # (lower-case full name, value)
    body: bytes = b""
    message_bytes: int = 0  # bytes this message used, start line to end of body
    leading_crlf: int = 0  # CRLFs skipped before it (RFC 5626 keep-alives)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    @property
    def call_id(self) -> str | None:
        return self.header("call-id")

    @property
    def cseq(self) -> tuple[int, str] | None:
        value = self.header("cseq")
        if value is None:
            return None
        parts = value.split()
        if len(parts) != 2 or not is_decimal(parts[0]):
            return None
        return int(parts[0]), parts[1].upper()

    @property
    def from_tag(self) -> str | None:
        return _tag(self.header("from"))

    @property
    def to_tag(self) -> str | None:
        return _tag(self.header("to"))

    @property
    def user_agent(self) -> str | None:
        return self.header("user-agent") or self.header("server")


def _tag(value: str | None) -> str | None:
    if value is None:
        return None
    m = _TAG.search(value)
    return m.group(1) if m else None


def looks_like_sip(data: bytes) -> bool:
    """Cheap check on the first bytes: a known method followed by a space, or SIP/2.0."""
    head = data.lstrip(b"\r\n")[:10]
    if head.startswith(b"SIP/2.0 "):
        return True
    word = head.split(b" ", 1)[0]
    return len(head) > len(word) and word.decode("ascii", "replace") in METHODS


def parse_sip(data: bytes, stream: bool = False) -> SipMessage:
    """Parse one SIP message from the start of ``data``.

    ``stream``: the bytes come from TCP, where a message without Content-Length is
    Malformed (RFC 3261 §18.3) and a body longer than what is here is Truncated.
    """
    skipped = len(data) - len(data.lstrip(b"\r\n"))
    view = data[skipped:]
    end = view.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = view.find(b"\n\n")  # bare-LF endings: wrong (§7) but seen in the wild
        sep = 2
    if end < 0:
        if len(view) > MAX_HEADER_BYTES:
            raise Malformed(f"SIP header section exceeds {MAX_HEADER_BYTES} bytes")
        raise Truncated("SIP message ends before the blank line that ends its headers")
    lines = view[:end].replace(b"\r\n", b"\n").split(b"\n")
    msg = _start_line(lines[0])
    msg.leading_crlf = skipped // 2
    _headers(msg, lines[1:])
    body_start = end + sep
    length_text = msg.header("content-length")
    if length_text is None:
        if stream:
            raise Malformed("SIP message over a stream has no Content-Length")
        length = len(view) - body_start  # UDP: the datagram ends the body (§18.3)
    else:
        # Parse what was tested: int() strips less than str.strip() does ("\x1f1").
        digits = length_text.strip()
        if not is_decimal(digits):
            raise Malformed(f"SIP Content-Length {length_text!r} is not a number")
        length = int(digits)
        if body_start + length > len(view):
            raise Truncated(f"SIP body is shorter than its Content-Length {length}")
    msg.body = bytes(view[body_start : body_start + length])
    msg.message_bytes = skipped + body_start + length
    return msg


def _start_line(line: bytes) -> SipMessage:
    m = _STATUS_LINE.match(line)
    if m:
        if m.group(1) != SIP_VERSION.encode():
            raise Malformed(f"SIP version {m.group(1).decode(errors='replace')} is not 2.0")
        return SipMessage(False, None, None, int(m.group(2)), m.group(3).decode("utf-8", "replace"))
    m = _REQUEST_LINE.match(line)
    if m:
        if m.group(3) != SIP_VERSION.encode():
            raise Malformed(f"SIP version {m.group(3).decode(errors='replace')} is not 2.0")
        method = m.group(1).decode("ascii").upper()
        return SipMessage(True, method, m.group(2).decode("utf-8", "replace"), None, None)
    raise Malformed(f"not a SIP start line: {line[:40]!r}")


def _headers(msg: SipMessage, lines: list[bytes]) -> None:
    for raw in lines:
        if raw[:1] in (b" ", b"\t") and msg.headers:  # folded continuation (§7.3.1)
            name, value = msg.headers[-1]
            msg.headers[-1] = (name, f"{value} {raw.strip().decode('utf-8', 'replace')}")
            continue
        name, colon, value = raw.partition(b":")
        if not colon or not name.strip():
            raise Malformed(f"SIP header line without a name: {raw[:40]!r}")
        if len(msg.headers) >= MAX_HEADERS:
            raise Malformed(f"SIP message has more than {MAX_HEADERS} headers")
        key = name.strip().decode("ascii", "replace").lower()
        msg.headers.append(
            (COMPACT_HEADERS.get(key, key), value.strip().decode("utf-8", "replace"))
        )


# -- dissector ---------------------------------------------------------------------------

# RFC 3261 §8.1.1: headers every request carries (Max-Forwards is often missing in the
# wild, so it does not count against a message).
REQUIRED_HEADERS = ("via", "from", "to", "call-id", "cseq")
MAX_CALL_IDS_PER_FLOW = 256  # attacker-controlled; only the first ones are kept
# Keep-alive datagrams: CRLF (RFC 5626 §3.5.1) and, from some phones, spaces.
KEEPALIVE_BYTES = b"\r\n \t\x00"


@dataclass(slots=True)
class SipFlowState:
    messages: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    responses: dict[int, int] = field(default_factory=dict)
    call_ids: list[str] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    stream: StreamBuffers | None = None
    # UDP datagrams that started like SIP but did not parse while probing: (time, why).
    # Not proof alone (SSDP's "NOTIFY * HTTP/1.1" starts like a SIP method), so the flow
    # stays a candidate; once a message does parse they become sip_malformed anomalies.
    unparsed: list[tuple[int, str]] = field(default_factory=list)


class SipDissector(Dissector):
    name = "SIP"
    transports = frozenset({UDP, TCP})
    budget_packets = 3
    follow_packets = -1  # every message of a dialog matters to the calls stage
    udp_first_bytes = TEXT_BYTES | WHITESPACE_BYTES
    tcp_first_bytes = udp_first_bytes
    ANOMALIES = {
        "sip_malformed": "a message that starts like SIP but does not parse",
        "sip_missing_header": "a request without Via, From, To, Call-ID or CSeq (RFC 3261 §8.1.1)",
        "sip_stream_overflow": "a TCP direction buffered more bytes than "
        "dissect.max_stream_buffer_bytes without a complete message",
        "sip_bad_sdp": "an SDP body that does not parse",
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        if not data.strip(KEEPALIVE_BYTES):
            return Probe.MAYBE  # keep-alive (RFC 5626 §3.5.1 CRLF; spaces in the wild)
        state = ctx.state.get(self.name)
        # Over TCP a message may continue in this segment: look at the stream's start.
        pending = (
            state is not None and state.stream is not None and state.stream.pending[pkt.direction]
        )
        if not pending and not looks_like_sip(data):
            return Probe.NO
        if state is None:
            state = ctx.state[self.name] = SipFlowState()
        messages = self._messages(ctx, state, pkt, probing=True)
        if not messages:
            # TCP: the message may continue. UDP: a mangled datagram (a fuzzer, a scanner,
            # a truncated capture) does not rule out the valid ones after it.
            return Probe.MAYBE
        for ts_ns, why in state.unparsed:
            ctx.anomaly("sip_malformed", f"before the first message that parsed: {why}", ts_ns)
        state.unparsed.clear()
        first = messages[0]
        missing = [h for h in REQUIRED_HEADERS if first.header(h) is None]
        what = (
            f"SIP {first.method} request"
            if first.is_request
            else (f"SIP {first.status_code} response")
        )
        if missing:
            confidence = 0.6
            evidence = f"{what} start line; missing {', '.join(missing)}"
        else:
            confidence = 0.99
            evidence = f"{what}: start line and Via/From/To/Call-ID/CSeq"
        transport = "TCP" if ctx.transport == TCP else "UDP"
        ctx.report(Finding("SIP", SIGNALING, confidence, f"{evidence} over {transport}", pkt.seq))
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        if not pkt.payload.strip(KEEPALIVE_BYTES):
            return
        state = ctx.state.setdefault(self.name, SipFlowState())
        self._messages(ctx, state, pkt)

    def _messages(
        self, ctx: FlowContext, state: SipFlowState, pkt: Packet, probing: bool = False
    ) -> list[SipMessage]:
        """Messages of this packet (TCP: completed by it). While probing, bytes that do not
        parse are simply not SIP (SSDP's "NOTIFY * HTTP/1.1" looks like a SIP method);
        after the match they are an anomaly."""
        out: list[SipMessage] = []
        if ctx.transport != TCP:
            try:
                out.append(parse_sip(pkt.payload))
            except DecodeError as exc:
                if not probing:
                    ctx.anomaly("sip_malformed", str(exc), pkt.ts_ns)
                elif len(state.unparsed) < self.budget_packets:
                    state.unparsed.append((pkt.ts_ns, str(exc)))
        else:
            if state.stream is None:
                state.stream = StreamBuffers(ctx.max_stream_buffer_bytes)
            buf = state.stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
            if state.stream.overflowed:
                state.stream.overflowed = False
                ctx.anomaly("sip_stream_overflow", "TCP buffer dropped", pkt.ts_ns)
            while buf.strip(b"\r\n"):
                try:
                    msg = parse_sip(bytes(buf), stream=True)
                except Truncated:
                    break  # wait for more segments
                except DecodeError as exc:
                    if not probing:
                        ctx.anomaly("sip_malformed", str(exc), pkt.ts_ns)
                    buf.clear()  # resynchronise on the next segment
                    break
                state.stream.consume(pkt.direction, msg.message_bytes)
                out.append(msg)
            if not buf.strip(b"\r\n"):
                buf.clear()
        for msg in out:
            account_message(ctx, state, msg, pkt)
        return out


# The anomalies account_message may name (also for SIP carried by other dissectors).
ACCOUNT_ANOMALIES = ("sip_missing_header", "sip_bad_sdp")


def account_message(
    ctx: FlowContext, state: SipFlowState, msg: SipMessage, pkt: Packet, via: str | None = None
) -> None:
    """What one SIP message adds to its flow: counts, call ids, user agents, missing
    headers, the SDP it announces; and the message handed to the calls and detectors
    (``via``: the transport when not the flow's own, e.g. "ws" for RFC 7118)."""
    state.messages += 1
    ctx.message("SIP", pkt, msg, via)
    if msg.is_request and msg.method:
        state.requests[msg.method] = state.requests.get(msg.method, 0) + 1
        missing = [h for h in REQUIRED_HEADERS if msg.header(h) is None]
        if missing:
            ctx.anomaly(
                "sip_missing_header",
                f"{msg.method} without {', '.join(missing)}",
                pkt.ts_ns,
            )
    elif msg.status_code is not None:
        state.responses[msg.status_code] = state.responses.get(msg.status_code, 0) + 1
    call_id = msg.call_id
    if call_id and call_id not in state.call_ids and len(state.call_ids) < MAX_CALL_IDS_PER_FLOW:
        state.call_ids.append(call_id)
        if ctx.call_id is None:
            ctx.call_id = call_id
    agent = msg.user_agent
    if agent and agent not in state.user_agents and len(state.user_agents) < 8:
        state.user_agents.append(agent)
    content_type = (msg.header("content-type") or "").lower()
    if msg.body and ("application/sdp" in content_type or msg.body.startswith(b"v=0")):
        what = msg.method if msg.is_request else f"{msg.status_code}"
        announce_body(ctx, msg.body, pkt, call_id, f"SIP {what}", "sip_bad_sdp")
