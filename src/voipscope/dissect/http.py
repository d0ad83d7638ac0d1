"""HTTP/1.x (RFC 9112) start lines and headers, and SSDP (HTTP over UDP), as facts.

The text lookalike of SIP: ``METHOD target VERSION`` then ``Name: value`` lines, often on
odd ports (a player fetching a playlist from source port 5060 is not SIP). The version
token decides: ``HTTP/1.0``/``HTTP/1.1`` here, ``SIP/2.0`` in ``sip``. The Host header
names the server's address for later flows (``ctx.knowledge.learn_name``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from voipscope.dissect.base import OTHER, TCP, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import DecodeError, Malformed, Truncated

# RFC 9112 §3: request-line = method SP request-target SP HTTP-version; methods are
# tokens (RFC 9110 §9.1), in practice upper case. §4: status-line = HTTP-version SP
# status-code SP [reason-phrase] (some servers drop the last SP).
_REQUEST_LINE = re.compile(rb"^([A-Z][A-Z_-]{0,23}) (\S+) HTTP/1\.([01])$")
_STATUS_LINE = re.compile(rb"^HTTP/1\.([01]) ([1-5][0-9][0-9])(?: (.*))?$")
_METHOD_START = re.compile(rb"[A-Z][A-Z_-]{0,23}(?: |$)")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4
MAX_LINE_BYTES = 8192  # RFC 9112 §3 recommends supporting 8000-octet request lines
MAX_HEADERS = 128  # attacker-controlled count (DESIGN §4)
MAX_HEAD_BYTES = 32 << 10  # buffered while looking for Host

# RFC 9110 §9, RFC 5789 PATCH, RFC 4918 WebDAV, UPnP 2.0 §1.3 / §4 (SSDP, GENA)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                     "PATCH", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK",
                     "UNLOCK", "REPORT", "SEARCH", "M-SEARCH", "NOTIFY", "SUBSCRIBE",
                     "UNSUBSCRIBE"})  # fmt: skip
SSDP_PORT = 1900  # UPnP Device Architecture 2.0 §1.1.2
SSDP_METHODS = frozenset({"M-SEARCH", "NOTIFY"})


@dataclass(slots=True)
class HttpHead:
    is_request: bool
    method: str | None
    target: str | None
    version: str  # "HTTP/1.1"
    status: int | None
    reason: str | None
    headers: list[tuple[str, str]] = field(default_factory=list)  # (lower-case name, value)
    complete: bool = False  # the blank line that ends the head was seen
    head_bytes: int = 0  # start line to blank line, when complete

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def looks_like_http(data: bytes) -> bool:
    """Cheap check on the first bytes: ``HTTP/1.``, or an upper-case method token and a
    space (or the start of either, when a segment ends that soon)."""
    head = data[:7]
    if head and b"HTTP/1."[: len(head)] == head:
        return True
    return _METHOD_START.match(data[:25]) is not None


def _version_may_end(data: bytes) -> bool:
    """Cheap: a first line that has ended ends with `` HTTP/1.x`` or starts a status line
    (SIP, RTSP and other text protocols stop here without a regex)."""
    nl = data.find(b"\n", 0, MAX_LINE_BYTES + 1)
    if nl < 0:
        return True  # not ended yet: undecided
    line = data[:nl].rstrip(b"\r")
    return line[:7] == b"HTTP/1." or line[-9:-1] == b" HTTP/1." or line == H2_PREFACE[:14]


_HEAD_END = re.compile(rb"\n\r?\n")  # the empty line after the header lines (RFC 9112 §2.1)


def head_ended(data: bytes | bytearray) -> bool:
    """The empty line that ends an HTTP head is in ``data`` (found without parsing)."""
    return _HEAD_END.search(data) is not None


def parse_start_line(line: bytes) -> HttpHead:
    """A request line or a status line (without its line end)."""
    m = _REQUEST_LINE.match(line)
    if m:
        return HttpHead(True, m.group(1).decode("ascii"), m.group(2).decode("utf-8", "replace"),
                        f"HTTP/1.{m.group(3).decode()}", None, None)  # fmt: skip
    m = _STATUS_LINE.match(line)
    if m:
        reason = (m.group(3) or b"").decode("utf-8", "replace")
        return HttpHead(False, None, None, f"HTTP/1.{m.group(1).decode()}", int(m.group(2)),
                        reason)  # fmt: skip
    raise Malformed(f"not an HTTP/1.x start line: {line[:40]!r}")


def parse_http_head(data: bytes) -> HttpHead:
    """The start line and the header lines that are complete in ``data``.

    Truncated when not even the start line has ended; a head cut short is returned with
    ``complete`` False (the rest may come in the next segment).
    """
    end = data.find(b"\n")
    if end < 0:
        if len(data) > MAX_LINE_BYTES:
            raise Malformed(f"HTTP start line is longer than {MAX_LINE_BYTES} bytes")
        raise Truncated("HTTP start line has not ended")
    if end > MAX_LINE_BYTES:
        raise Malformed(f"HTTP start line is longer than {MAX_LINE_BYTES} bytes")
    head = parse_start_line(data[:end].rstrip(b"\r"))
    offset = end + 1
    while True:
        nl = data.find(b"\n", offset)
        if nl < 0:
            return head  # the rest of the head is still to come
        line = data[offset:nl].rstrip(b"\r")
        offset = nl + 1
        if not line:
            head.complete = True
            head.head_bytes = offset
            return head
        if line[:1] in (b" ", b"\t") and head.headers:  # obs-fold (RFC 9112 §5.2)
            name, value = head.headers[-1]
            head.headers[-1] = (name, f"{value} {line.strip().decode('utf-8', 'replace')}")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise Malformed(f"HTTP header line without a name: {line[:40]!r}")
        if len(head.headers) >= MAX_HEADERS:
            raise Malformed(f"HTTP head has more than {MAX_HEADERS} headers")
        head.headers.append(
            (name.decode("ascii", "replace").lower(), value.strip().decode("utf-8", "replace"))
        )


def host_name(host: str) -> tuple[str, bool]:
    """The name in a Host header without its port, and whether it is an IP literal."""
    host = host.strip()
    if host.startswith("["):  # RFC 3986 §3.2.2 IP-literal
        return host[1 : host.find("]")] if "]" in host else host[1:], True
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name, False
    return name, True


# -- dissector ---------------------------------------------------------------------------

FOLLOW_PACKETS = 8  # the rest of a request head split over segments (Host may come late)


@dataclass(slots=True)
class HttpFlowState:
    stream: StreamBuffers = field(default_factory=lambda: StreamBuffers(MAX_HEAD_BYTES))
    request_direction: int | None = None
    host_seen: bool = False
    finding: Finding | None = None
    head_waits: int = 0  # segments a GET head took without ending (see probe)


class HttpDissector(Dissector):
    """HTTP/1.x over TCP on any port (and the HTTP/2 prior-knowledge preface); SSDP and
    other HTTP over UDP."""

    name = "HTTP"
    transports = frozenset({TCP, UDP})
    udp_first_bytes = frozenset(range(ord("A"), ord("Z") + 1))
    tcp_first_bytes = udp_first_bytes  # a method, "HTTP/1." or the HTTP/2 preface "PRI"
    budget_packets = 3
    follow_packets = FOLLOW_PACKETS
    ANOMALIES = {"http_malformed": "the header lines after a good HTTP start line do not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        state: HttpFlowState | None = ctx.state.get(self.name)
        if state is None and not (looks_like_http(data) and _version_may_end(data)):
            return Probe.NO
        if ctx.transport == UDP:
            return self._datagram(ctx, pkt)
        if state is None:
            state = ctx.state[self.name] = HttpFlowState()
        buf = state.stream.add(pkt.direction, data, pkt.tcp_seq)
        if state.stream.overflowed:
            return Probe.NO
        if buf.startswith(H2_PREFACE[: len(buf)]):
            if len(buf) < len(H2_PREFACE):
                return Probe.MAYBE
            ctx.report(Finding("HTTP/2", OTHER, 0.95, "HTTP/2 connection preface "
                               "(prior knowledge, RFC 9113 §3.4)", pkt.seq))  # fmt: skip
            return Probe.MATCH
        if not looks_like_http(buf):
            return Probe.NO
        nl = buf.find(b"\n")
        if nl < 0:
            return Probe.MAYBE if len(buf) <= MAX_LINE_BYTES else Probe.NO
        try:
            start = parse_start_line(bytes(buf[:nl]).rstrip(b"\r"))
        except DecodeError:
            return Probe.NO
        # A GET may upgrade the connection to another protocol (RFC 9110 §7.8: SIP over
        # WebSocket, sip_ws): say HTTP only once its head has ended, or the dissector for
        # what it upgrades to is dropped before it sees the request.
        waiting = start.is_request and start.method == "GET" and not head_ended(buf)
        if waiting and state.head_waits < self.budget_packets - 1:
            state.head_waits += 1
            return Probe.MAYBE
        confidence, what = self._start(start)
        server = 1 - pkt.direction if start.is_request else pkt.direction
        port = ctx.endpoint(server)[1]
        finding = Finding("HTTP", OTHER, confidence, f"{what} over TCP to port {port}", pkt.seq)
        state.finding = finding
        ctx.report(finding)
        if start.is_request:
            state.request_direction = pkt.direction
            try:
                head = parse_http_head(bytes(buf))
            except DecodeError as exc:
                state.host_seen = True
                ctx.anomaly("http_malformed", str(exc), pkt.ts_ns)
            else:
                self._head(ctx, state, head, pkt)
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        state: HttpFlowState | None = ctx.state.get(self.name)
        if (
            state is None
            or state.host_seen
            or state.request_direction != pkt.direction
            or ctx.transport != TCP
        ):
            return
        buf = state.stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        if state.stream.overflowed:
            state.host_seen = True  # give up: no head end within MAX_HEAD_BYTES
            return
        try:
            head = parse_http_head(bytes(buf))
        except DecodeError as exc:
            state.host_seen = True
            ctx.anomaly("http_malformed", str(exc), pkt.ts_ns)
            return
        self._head(ctx, state, head, pkt)

    # -- internals --

    @staticmethod
    def _start(head: HttpHead) -> tuple[float, str]:
        if head.is_request:
            known = head.method in METHODS
            return (0.95 if known else 0.8), f"{head.version} {head.method} request line"
        return 0.9, f"{head.version} {head.status} status line"

    def _head(self, ctx: FlowContext, state: HttpFlowState, head: HttpHead, pkt: Packet) -> None:
        host = head.header("host")
        if host is None:
            if head.complete:
                state.host_seen = True  # HTTP/1.0 without Host: nothing to learn
            return
        state.host_seen = True
        name, literal = host_name(host)
        if not name:
            return
        if state.finding is not None:
            state.finding.evidence += f", Host {name[:80]}"
        ctx.hint("http-host", name[:255])
        agent = head.header("user-agent")
        if agent:
            ctx.hint("user-agent", agent[:80])
        if not literal:
            server_ip = ctx.endpoint(1 - pkt.direction)[0]  # the request goes to the server
            ctx.knowledge.learn_name(server_ip, name, "HTTP Host", ctx.flow_id, pkt.ts_ns)

    def _datagram(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        nl = data.find(b"\n", 0, MAX_LINE_BYTES)
        if nl < 0:
            return Probe.NO
        try:
            head = parse_start_line(data[:nl].rstrip(b"\r"))
        except DecodeError:
            return Probe.NO
        confidence, what = self._start(head)
        ssdp = SSDP_PORT in (ctx.src_port, ctx.dst_port) or head.method in SSDP_METHODS
        protocol = "SSDP" if ssdp else "HTTP"
        if ssdp and head.method in SSDP_METHODS and head.target == "*":
            confidence = 0.95
        ctx.report(Finding(protocol, OTHER, confidence, f"{what} over UDP", pkt.seq))
        return Probe.MATCH
