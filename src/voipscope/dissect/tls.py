"""TLS over TCP (RFC 8446, RFC 5246), as facts: the record layer and the hellos.

A lookalike on most ports, and VoIP on one: SIP over TLS (RFC 3261 §26.2, RFC 5630)
listens on 5061. A ClientHello to port 5061 is reported as SIP-TLS signalling; the port
alone is not enough, the bytes must show a real handshake. Everywhere else TLS is
"other". The ClientHello's server_name (RFC 6066 §3) names the server's address for
later flows (``ctx.knowledge.learn_name``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.base import (
    OTHER,
    SIGNALING,
    TCP,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import DecodeError, Malformed, Truncated

RECORD_HEADER_BYTES = 5  # RFC 8446 §5.1: type, legacy_record_version, length
HANDSHAKE_HEADER_BYTES = 4  # RFC 8446 §4: msg_type, 24-bit length
RANDOM_BYTES = 32  # RFC 8446 §4.1.2
MAX_SESSION_ID_BYTES = 32  # RFC 5246 §7.4.1.2
# RFC 5246 §6.2.3: TLSCiphertext.length <= 2^14 + 2048 (1.3 allows only 2^14 + 256).
MAX_RECORD_BYTES = (1 << 14) + 2048
# A hello spread over more records than this, or bigger, is not worth buffering.
MAX_HELLO_BYTES = 1 << 16
MAX_RECORDS = 64  # per segment walked mid-flow
MAX_EXTENSIONS = 128  # attacker-controlled count (real hellos carry < 30)
MAX_ALPN = 16

CONTENT_TYPES = {
    20: "change_cipher_spec",
    21: "alert",
    22: "handshake",
    23: "application_data",
    24: "heartbeat",
}  # fmt: skip  RFC 8446 §5.1, RFC 6520
HANDSHAKE = 22
ALERT = 21
# RFC 8446 §6: AlertLevel warning(1), fatal(2); the AlertDescription values of the IANA
# TLS Alerts registry (RFC 5246 §7.2, RFC 8446 §6, RFC 7507 §2, RFC 7301 §3.2, ECH).
ALERT_LEVELS = (1, 2)
ALERT_DESCRIPTIONS = frozenset({0, 10, 20, 21, 22, 30, 40, 41, 42, 43, 44, 45, 46, 47, 48,
                                49, 50, 51, 60, 70, 71, 80, 86, 90, 100, 109, 110, 111, 112,
                                113, 114, 115, 116, 120, 121})  # fmt: skip
ALERT_BYTES = 2
VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
            0x0304: "TLS 1.3"}  # fmt: skip
CLIENT_HELLO = 1  # RFC 8446 §4
SERVER_HELLO = 2
EXT_SERVER_NAME = 0  # RFC 6066 §3
EXT_ALPN = 16  # RFC 7301 §3.1
EXT_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1
HOST_NAME = 0  # RFC 6066 §3 NameType

SIP_TLS_PORT = 5061  # RFC 3261 §19.1.2 (sips: default port)
# RFC 5246 Appendix E.2: a client that also speaks SSL 2.0 may send its ClientHello in
# the SSL 2.0 format (2-byte header with the top bit set, msg_type 1, then 3-byte
# cipher specs, a session id of 0 or 16 bytes and a 16-32 byte challenge).
SSLV2_HEADER_BYTES = 2
SSLV2_FIXED_BYTES = 9  # msg_type 1, version 2, three 2-byte lengths
SSLV2_RECORD_VERSION = 0x0002  # what ClientHello.record_version says for this format


def is_grease(value: int) -> bool:
    """RFC 8701 §2: 0x0A0A, 0x1A1A, ... 0xFAFA are reserved to keep peers honest."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def version_name(version: int) -> str:
    return VERSIONS.get(version, f"0x{version:04x}")


@dataclass(slots=True, frozen=True)
class TlsRecord:
    content_type: int
    version: int
    length: int


@dataclass(slots=True)
class ClientHello:
    legacy_version: int
    record_version: int
    cipher_suites: int  # how many were offered
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)  # supported_versions, GREASE removed
    extensions: list[int] = field(default_factory=list)

    @property
    def version(self) -> int:
        """The highest version offered (supported_versions wins over legacy_version)."""
        return max(self.versions) if self.versions else self.legacy_version


@dataclass(slots=True)
class ServerHello:
    legacy_version: int
    record_version: int
    cipher_suite: int
    selected_version: int | None = None  # supported_versions extension (TLS 1.3)
    alpn: str | None = None
    extensions: list[int] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.selected_version or self.legacy_version


def looks_like_record(data: bytes) -> bool:
    """Cheap first check: a known content type, version 3.x (x <= 4), a sane length."""
    return (
        len(data) >= RECORD_HEADER_BYTES
        and data[0] in CONTENT_TYPES
        and data[1] == 3
        and data[2] <= 4
        and ((data[3] << 8) | data[4]) <= MAX_RECORD_BYTES
    )


def is_unnegotiated_alert(data: bytes) -> bool:
    """A segment that is exactly one alert record with record version 0x0000: what
    s2n-tls (AWS's TLS stack) sent when closing before any version was negotiated, a
    client that closed without a hello, until 2023 (aws/s2n-tls issue 1734, PR 3744).
    No other protocol's first bytes are these seven: type, zero version, length 2, a
    level and a registered description."""
    return (
        len(data) == RECORD_HEADER_BYTES + ALERT_BYTES
        and data[0] == ALERT
        and data[1] == 0
        and data[2] == 0
        and ((data[3] << 8) | data[4]) == ALERT_BYTES
        and data[5] in ALERT_LEVELS
        and data[6] in ALERT_DESCRIPTIONS
    )


def parse_record_header(data: bytes, offset: int = 0) -> TlsRecord:
    if len(data) - offset < RECORD_HEADER_BYTES:
        raise Truncated("TLS record header is truncated")
    ctype = data[offset]
    version = int.from_bytes(data[offset + 1 : offset + 3], "big")
    length = int.from_bytes(data[offset + 3 : offset + 5], "big")
    if ctype not in CONTENT_TYPES:
        raise Malformed(f"TLS content type {ctype} is not known")
    if version >> 8 != 3 or version & 0xFF > 4:
        raise Malformed(f"TLS record version 0x{version:04x} is not 3.0-3.4")
    if length > MAX_RECORD_BYTES:
        raise Malformed(f"TLS record length {length} exceeds {MAX_RECORD_BYTES}")
    return TlsRecord(ctype, version, length)


def walk_records(data: bytes, offset: int = 0) -> tuple[list[TlsRecord], int]:
    """Records from ``offset`` to the end of one segment: the records and how many bytes
    of the last one are still to come in later segments (0: ends on a boundary)."""
    records: list[TlsRecord] = []
    while offset < len(data):
        if len(records) >= MAX_RECORDS:
            raise Malformed(f"more than {MAX_RECORDS} TLS records in one segment")
        record = parse_record_header(data, offset)
        records.append(record)
        offset += RECORD_HEADER_BYTES + record.length
    return records, offset - len(data)


def handshake_message(data: bytes) -> tuple[int, int, bytes]:
    """The first handshake message at the start of a stream: (record version, type,
    body), joined from as many handshake records as it was split over (RFC 8446 §5.1
    allows a message to span records)."""
    joined = bytearray()
    offset = 0
    record_version = 0
    needed = HANDSHAKE_HEADER_BYTES
    while len(joined) < needed:
        record = parse_record_header(data, offset)
        if record.content_type != HANDSHAKE:
            raise Malformed(f"TLS {CONTENT_TYPES[record.content_type]} record inside a hello")
        if record.length == 0:
            raise Malformed("empty TLS handshake record")
        record_version = record_version or record.version
        start = offset + RECORD_HEADER_BYTES
        fragment = data[start : start + record.length]
        joined += fragment
        offset = start + record.length
        if len(joined) >= HANDSHAKE_HEADER_BYTES:
            needed = HANDSHAKE_HEADER_BYTES + int.from_bytes(joined[1:4], "big")
            if needed > MAX_HELLO_BYTES:
                raise Malformed(f"TLS handshake message of {needed} bytes is implausible")
        if len(fragment) < record.length and len(joined) < needed:
            # The record goes on past the bytes so far. A ServerHello usually shares its
            # record with the certificate chain: the hello itself may be whole already,
            # so only a message that is still incomplete waits for more.
            raise Truncated(f"TLS record length {record.length} runs past the bytes so far")
    return record_version, joined[0], bytes(joined[HANDSHAKE_HEADER_BYTES:needed])


class _Reader:
    """Bounds-checked reads over one handshake body: every overrun is Truncated."""

    __slots__ = ("data", "end", "offset", "what")

    def __init__(self, data: bytes, what: str, offset: int = 0, end: int | None = None) -> None:
        self.data = data
        self.offset = offset
        self.end = len(data) if end is None else end
        self.what = what

    def take(self, n: int) -> bytes:
        if self.offset + n > self.end:
            raise Truncated(f"{self.what} ends before its fields do")
        out = self.data[self.offset : self.offset + n]
        self.offset += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> _Reader:
        n = self.uint(length_bytes)
        start = self.offset
        self.take(n)
        return _Reader(self.data, self.what, start, start + n)

    @property
    def left(self) -> int:
        return self.end - self.offset


def parse_client_hello(body: bytes, record_version: int = 0) -> ClientHello:
    """A ClientHello body (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).

    Plain index arithmetic rather than ``_Reader``: every TCP flow that opens with a
    handshake record comes here, so this is one of the hottest parsers of a run."""
    n = len(body)
    short = "TLS ClientHello ends before its fields do"
    if n < 2:
        raise Truncated(short)
    legacy = (body[0] << 8) | body[1]
    if legacy >> 8 != 3:
        raise Malformed(f"TLS ClientHello version 0x{legacy:04x} is not 3.x")
    o = 2 + RANDOM_BYTES
    if o + 1 > n or o + 1 + body[o] > n:
        raise Truncated(short)
    session = body[o]
    if session > MAX_SESSION_ID_BYTES:
        raise Malformed(f"TLS session id of {session} bytes exceeds 32")
    o += 1 + session
    if o + 2 > n:
        raise Truncated(short)
    suites = (body[o] << 8) | body[o + 1]
    o += 2
    if o + suites > n:
        raise Truncated(short)
    if suites == 0 or suites % 2:
        raise Malformed(f"TLS cipher suite list of {suites} bytes")
    o += suites
    if o + 1 > n or o + 1 + body[o] > n:
        raise Truncated(short)
    if body[o] == 0:
        raise Malformed("TLS ClientHello offers no compression method")
    o += 1 + body[o]
    hello = ClientHello(legacy, record_version, suites // 2)
    if o == n:
        return hello  # extensions are optional before TLS 1.3 (RFC 5246 §7.4.1.2)
    if o + 2 > n:
        raise Truncated(short)
    end = o + 2 + ((body[o] << 8) | body[o + 1])
    if end > n:
        raise Truncated(short)
    if end < n:
        raise Malformed("TLS hello has bytes after its extensions")
    o += 2
    # All extension headers first (a malformed block fails as a whole), then the three
    # whose contents matter.
    wanted: list[tuple[int, int, int]] = []
    extensions = hello.extensions
    while o < end:
        if len(extensions) >= MAX_EXTENSIONS:
            raise Malformed(f"TLS hello has more than {MAX_EXTENSIONS} extensions")
        if o + 4 > end:
            raise Truncated(short)
        etype = (body[o] << 8) | body[o + 1]
        length = (body[o + 2] << 8) | body[o + 3]
        o += 4
        if o + length > end:
            raise Truncated(short)
        extensions.append(etype)
        if length and etype in (EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS):
            wanted.append((etype, o, o + length))
        o += length
    for etype, at, stop in wanted:
        ext = _Reader(body, "TLS ClientHello", at, stop)
        if etype == EXT_SERVER_NAME:
            hello.sni = _server_name(ext)
        elif etype == EXT_ALPN:
            hello.alpn = _alpn(ext)
        else:
            versions = ext.vector(1)
            while versions.left >= 2 and len(hello.versions) < MAX_EXTENSIONS:
                v = versions.uint(2)
                if not is_grease(v):
                    hello.versions.append(v)
    return hello


def parse_server_hello(body: bytes, record_version: int = 0) -> ServerHello:
    """A ServerHello body (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3)."""
    r = _Reader(body, "TLS ServerHello")
    legacy = r.uint(2)
    if legacy >> 8 != 3:
        raise Malformed(f"TLS ServerHello version 0x{legacy:04x} is not 3.x")
    r.take(RANDOM_BYTES)
    session = r.vector(1)
    if session.left > MAX_SESSION_ID_BYTES:
        raise Malformed(f"TLS session id of {session.left} bytes exceeds 32")
    hello = ServerHello(legacy, record_version, r.uint(2))
    r.take(1)  # compression method
    if r.left == 0:
        return hello
    for etype, ext in _extensions(r):
        hello.extensions.append(etype)
        if etype == EXT_SUPPORTED_VERSIONS and ext.left >= 2:
            hello.selected_version = ext.uint(2)
        elif etype == EXT_ALPN and ext.left:
            chosen = _alpn(ext)
            hello.alpn = chosen[0] if chosen else None
    return hello


def looks_like_sslv2_hello(data: bytes) -> bool:
    """Cheap check: SSL 2.0 header with the top bit, CLIENT-HELLO, version 3.x."""
    return len(data) >= 5 and data[0] >= 0x80 and data[2] == CLIENT_HELLO and data[3] == 3


def parse_sslv2_client_hello(data: bytes) -> ClientHello:
    """A ClientHello in the SSL 2.0 format (RFC 5246 Appendix E.2); no extensions."""
    if len(data) < SSLV2_HEADER_BYTES + SSLV2_FIXED_BYTES:
        raise Truncated("SSLv2-format ClientHello header is truncated")
    if not data[0] & 0x80 or data[2] != CLIENT_HELLO:
        raise Malformed("not an SSLv2-format ClientHello")
    length = ((data[0] & 0x7F) << 8) | data[1]
    version = int.from_bytes(data[3:5], "big")
    if version >> 8 != 3 or version & 0xFF > 4:
        raise Malformed(f"SSLv2-format ClientHello offers version 0x{version:04x}, not 3.x")
    specs, session, challenge = (int.from_bytes(data[k : k + 2], "big") for k in (5, 7, 9))
    if specs == 0 or specs % 3 or session not in (0, 16) or not 16 <= challenge <= 32:
        raise Malformed(
            f"SSLv2-format ClientHello lengths {specs}/{session}/{challenge} are not "
            "3n/0 or 16/16-32"
        )
    if length != SSLV2_FIXED_BYTES + specs + session + challenge:
        raise Malformed(f"SSLv2-format ClientHello length {length} does not add up")
    if len(data) < SSLV2_HEADER_BYTES + length:
        raise Truncated(f"SSLv2-format ClientHello of {length} bytes runs past the bytes")
    return ClientHello(version, SSLV2_RECORD_VERSION, specs // 3)


def parse_hello(data: bytes) -> ClientHello | ServerHello:
    """The hello at the start of one direction's bytes: record(s), handshake header, body
    (or an SSLv2-format ClientHello)."""
    if data[:1] and data[0] & 0x80:
        return parse_sslv2_client_hello(data)
    record_version, msg_type, body = handshake_message(data)
    if msg_type not in (CLIENT_HELLO, SERVER_HELLO):
        raise Malformed(f"TLS handshake starts with message type {msg_type}, not a hello")
    try:
        if msg_type == CLIENT_HELLO:
            return parse_client_hello(body, record_version)
        return parse_server_hello(body, record_version)
    except Truncated as exc:
        # The handshake header said the message is complete: its fields do not fit it.
        raise Malformed(f"{exc} (the message is all there)") from None


def _extensions(r: _Reader) -> list[tuple[int, _Reader]]:
    block = r.vector(2)
    if r.left:
        raise Malformed("TLS hello has bytes after its extensions")
    out: list[tuple[int, _Reader]] = []
    while block.left:
        if len(out) >= MAX_EXTENSIONS:
            raise Malformed(f"TLS hello has more than {MAX_EXTENSIONS} extensions")
        etype = block.uint(2)
        out.append((etype, block.vector(2)))
    return out


def _server_name(ext: _Reader) -> str | None:
    names = ext.vector(2)
    while names.left:
        name_type = names.uint(1)
        name = names.vector(2)
        if name_type == HOST_NAME:
            return name.take(name.left).decode("ascii", "replace")
    return None


def _alpn(ext: _Reader) -> list[str]:
    protocols = ext.vector(2)
    out: list[str] = []
    while protocols.left and len(out) < MAX_ALPN:
        p = protocols.vector(1)
        out.append(p.take(p.left).decode("ascii", "replace"))
    return out


# -- dissector ---------------------------------------------------------------------------

FOLLOW_PACKETS = 8  # the ServerHello that answers the ClientHello
MIDFLOW_SEGMENTS = 2  # segments of well-framed records before a mid-flow match


@dataclass(slots=True)
class TlsFlowState:
    hellos: bool  # the flow began with a handshake record; False: mid-flow records
    stream: StreamBuffers = field(default_factory=lambda: StreamBuffers(MAX_HELLO_BYTES))
    # Mid-flow framing: bytes of the current record still to come, per direction
    # (None: not in step with that direction's records).
    missing: list[int | None] = field(default_factory=lambda: [None, None])
    framed_segments: int = 0
    hello_direction: int | None = None  # who sent the hello that matched
    finding: Finding | None = None
    answered: bool = False


def mentions_sip(hello: ClientHello | ServerHello) -> bool:
    if isinstance(hello, ServerHello):
        return "sip" in (hello.alpn or "").lower()
    return any("sip" in n.lower() for n in [hello.sni or "", *hello.alpn])


class TlsDissector(Dissector):
    """TLS over TCP on any port; SIP-TLS when a real handshake goes to port 5061."""

    name = "TLS"
    transports = frozenset({TCP})
    tcp_first_bytes = frozenset([*CONTENT_TYPES, *range(0x80, 0x100)])  # records, SSLv2 hello
    budget_packets = 4
    follow_packets = FOLLOW_PACKETS
    ANOMALIES = {
        "tls_malformed": "the answer to a TLS hello does not parse",
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        state: TlsFlowState | None = ctx.state.get(self.name)
        if state is None:
            if is_unnegotiated_alert(data):
                ctx.state[self.name] = TlsFlowState(hellos=False)
                level = "warning" if data[5] == 1 else "fatal"
                ctx.report(Finding(
                    "TLS", OTHER, 0.6,
                    f"one TLS alert record ({level}, description {data[6]}) with record "
                    "version 0x0000: closed before any version was negotiated (s2n-tls "
                    "did so until 2023)", pkt.seq))  # fmt: skip
                return Probe.MATCH
            sslv2 = looks_like_sslv2_hello(data)
            if not (sslv2 or looks_like_record(data)):
                return Probe.NO
            state = ctx.state[self.name] = TlsFlowState(hellos=sslv2 or data[0] == HANDSHAKE)
        if state.hellos:
            return self._probe_hello(ctx, state, pkt)
        return self._probe_records(ctx, state, pkt)

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        state: TlsFlowState = ctx.state[self.name]
        finding = state.finding
        if state.answered or finding is None or state.hello_direction is None:
            return Probe.NO  # nothing more to learn from this flow
        if state.hello_direction == pkt.direction:
            return None
        buf = state.stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        if state.stream.overflowed:
            state.answered = True
            return Probe.NO
        try:
            hello = parse_hello(bytes(buf))
        except Truncated:
            return None
        except DecodeError as exc:
            state.answered = True
            ctx.anomaly("tls_malformed", f"answer to the hello: {exc}", pkt.ts_ns)
            return Probe.NO
        state.answered = True
        buf.clear()
        if isinstance(hello, ServerHello):
            finding.evidence += f"; ServerHello chose {version_name(hello.version)}"
            if hello.alpn:
                finding.evidence += f", ALPN {hello.alpn}"
        return Probe.NO

    # -- internals --

    def _probe_hello(self, ctx: FlowContext, state: TlsFlowState, pkt: Packet) -> Probe:
        buf = state.stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        if state.stream.overflowed:
            return Probe.NO
        if buf[:1] != b"\x16" and not looks_like_sslv2_hello(buf):
            # The other side's first bytes (an alert, say): records, or not TLS at all.
            return Probe.MAYBE if looks_like_record(buf) else Probe.NO
        try:
            hello = parse_hello(bytes(buf))
        except Truncated:
            return Probe.MAYBE  # the hello continues in the next segment
        except DecodeError:
            return Probe.NO
        buf.clear()
        state.hello_direction = pkt.direction
        if isinstance(hello, ClientHello):
            server_ip, server_port = ctx.endpoint(1 - pkt.direction)
            what = f"{version_name(hello.version)} ClientHello"
            if hello.record_version == SSLV2_RECORD_VERSION:
                what = (
                    f"SSLv2-format ClientHello offering {version_name(hello.version)} "
                    f"({hello.cipher_suites} cipher specs)"
                )
            if hello.sni:
                what += f", SNI {hello.sni}"
                ctx.knowledge.learn_name(server_ip, hello.sni, "TLS SNI", ctx.flow_id, pkt.ts_ns)
                ctx.hint("sni", hello.sni)
            if hello.alpn:
                what += f", ALPN {','.join(hello.alpn)}"
            confidence = 0.85 if hello.record_version == SSLV2_RECORD_VERSION else 0.95
        else:
            server_ip, server_port = ctx.endpoint(pkt.direction)
            what = f"{version_name(hello.version)} ServerHello (no ClientHello seen)"
            if hello.alpn:
                what += f", ALPN {hello.alpn}"
            confidence = 0.85
            state.answered = True
        if server_port == SIP_TLS_PORT:
            sip = mentions_sip(hello)
            finding = Finding(
                "SIP-TLS",
                SIGNALING,
                0.9 if sip else 0.7,
                f"{what} to port {SIP_TLS_PORT}" + (" (names SIP)" if sip else ""),
                pkt.seq,
            )
        else:
            finding = Finding("TLS", OTHER, confidence, f"{what} on port {server_port}", pkt.seq)
        state.finding = finding
        ctx.report(finding)
        return Probe.MATCH

    def _probe_records(self, ctx: FlowContext, state: TlsFlowState, pkt: Packet) -> Probe:
        """Records mid-flow (the handshake was before the capture): every segment must
        continue the framing of its direction."""
        data = pkt.payload
        missing = state.missing[pkt.direction]
        start = 0 if missing is None else missing
        if start >= len(data):
            state.missing[pkt.direction] = start - len(data)
            return Probe.MAYBE
        try:
            records, still = walk_records(data, start)
        except Truncated:
            state.missing[pkt.direction] = None  # a header split over segments: resync
            return Probe.MAYBE
        except DecodeError:
            return Probe.NO
        state.missing[pkt.direction] = still
        state.framed_segments += 1
        # One segment that is whole records, header to last byte, is as good as two.
        exact = start == 0 and still == 0 and any(r.length for r in records)
        if state.framed_segments < MIDFLOW_SEGMENTS and not exact:
            return Probe.MAYBE
        versions = ", ".join(sorted({version_name(r.version) for r in records}))
        kinds = "+".join(CONTENT_TYPES[r.content_type] for r in records[:3])
        framing = (
            "fill one segment exactly"
            if state.framed_segments < MIDFLOW_SEGMENTS
            else f"framed across {state.framed_segments} segments"
        )
        evidence = f"{versions} {kinds} records {framing} (mid-flow, no handshake seen)"
        if SIP_TLS_PORT in (ctx.src_port, ctx.dst_port):
            # Could be SIP over TLS: too weak to call the flow "other" on its own.
            ctx.report(Finding("TLS", OTHER, 0.4, f"{evidence} on port {SIP_TLS_PORT}", pkt.seq))
        else:
            ctx.report(Finding("TLS", OTHER, 0.6, evidence, pkt.seq))
        return Probe.MATCH
