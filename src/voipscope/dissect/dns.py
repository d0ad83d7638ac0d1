"""DNS (RFC 1035), multicast DNS (RFC 6762) and LLMNR (RFC 4795), as facts.

A lookalike: not VoIP, but a small UDP exchange a port-blind heuristic may take for
signalling. The bytes decide (header sanity, a question that parses, exact length),
on the ports these protocols use. Answers name the addresses behind later flows:
every A/AAAA answer goes to ``ctx.knowledge.learn_name`` under the name that was asked.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from socket import inet_ntoa

from voipscope.dissect.base import (
    OTHER,
    TCP,
    UDP,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.dissect.stream import StreamBuffers
from voipscope.errors import DecodeError, Malformed, Truncated

HEADER_BYTES = 12  # RFC 1035 §4.1.1
TCP_LENGTH_BYTES = 2  # RFC 1035 §4.2.2, RFC 7766 §8
MAX_LABEL_BYTES = 63  # RFC 1035 §2.3.4
MAX_NAME_BYTES = 255  # RFC 1035 §2.3.4 (wire form)
POINTER = 0xC0  # RFC 1035 §4.1.4: the top two bits of a compression pointer
# Attacker-controlled counts (DESIGN §4). Real queries ask one question (RFC 9619); the
# records parsed past the question are capped, the rest are counted as skipped.
MAX_QUESTIONS = 8
MAX_RECORDS = 64

DNS_PORT = 53  # RFC 1035 §4.2
MDNS_PORT = 5353  # RFC 6762 §3
LLMNR_PORT = 5355  # RFC 4795 §2
PORTS = {DNS_PORT: "DNS", MDNS_PORT: "mDNS", LLMNR_PORT: "LLMNR"}
# The protocol column spells them as the project's labels (and nDPI) do.
PROTOCOL_NAMES = {"DNS": "DNS", "mDNS": "MDNS", "LLMNR": "LLMNR"}

# Header flags (RFC 1035 §4.1.1; AD/CD from RFC 4035 §3.2; Z must be zero)
QR = 0x8000
TC = 0x0200
Z = 0x0040
OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}  # RFC 6895 §2.2
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}  # fmt: skip
# RR types (RFC 1035 §3.2.2, 3596 AAAA, 2782 SRV, 3403 NAPTR, 6891 OPT, 9460 SVCB/HTTPS)
TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
         28: "AAAA", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG",
         47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 64: "SVCB", 65: "HTTPS", 251: "IXFR",
         252: "AXFR", 255: "ANY", 257: "CAA"}  # fmt: skip
TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
# Classes (RFC 1035 §3.2.4, RFC 2136 §1.3 NONE); mDNS uses the top bit as the
# unicast-response / cache-flush flag (RFC 6762 §5.4, §10.2).
CLASSES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
MDNS_CLASS_FLAG = 0x8000


@dataclass(slots=True, frozen=True)
class DnsQuestion:
    name: str
    qtype: int
    qclass: int  # without the mDNS QU bit


@dataclass(slots=True, frozen=True)
class DnsRecord:
    section: str  # "answer" | "authority" | "additional"
    name: str
    rtype: int
    rclass: int  # without the mDNS cache-flush bit (OPT keeps its UDP size here)
    ttl: int
    value: str | None  # A/AAAA address, CNAME target; None for other types


@dataclass(slots=True)
class DnsMessage:
    ident: int
    flags: int
    counts: tuple[int, int, int, int]  # QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
    questions: list[DnsQuestion] = field(default_factory=list)
    records: list[DnsRecord] = field(default_factory=list)
    records_skipped: int = 0  # past MAX_RECORDS
    end: int | None = None  # offset after the last section, when every record was parsed

    @property
    def is_response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def truncated(self) -> bool:
        return bool(self.flags & TC)

    def addresses(self, sections: tuple[str, ...] = ("answer",)) -> list[DnsRecord]:
        return [
            r
            for r in self.records
            if r.rtype in (TYPE_A, TYPE_AAAA) and r.value and r.section in sections
        ]


def type_name(rtype: int) -> str:
    return TYPES.get(rtype, f"TYPE{rtype}")


def header_is_sane(data: bytes) -> bool:
    """Cheap check of the 12-byte header (RFC 1035 §4.1.1): a known opcode, Z zero, a
    known RCODE and counts a real message could have."""
    if len(data) < HEADER_BYTES:
        return False
    flags = (data[2] << 8) | data[3]
    if (flags >> 11) & 0xF not in OPCODES or flags & Z or flags & 0xF not in RCODES:
        return False
    qdcount = (data[4] << 8) | data[5]
    return qdcount <= MAX_QUESTIONS


def parse_dns(data: bytes, max_records: int = MAX_RECORDS) -> DnsMessage:
    """Parse one DNS message (header, questions, up to ``max_records`` records)."""
    if len(data) < HEADER_BYTES:
        raise Truncated(f"DNS message has {len(data)} bytes, fewer than the 12-byte header")
    counts = tuple(int.from_bytes(data[i : i + 2], "big") for i in range(4, 12, 2))
    qdcount, ancount, nscount, arcount = counts
    flags = int.from_bytes(data[2:4], "big")
    if flags & Z:
        raise Malformed("DNS header has its reserved Z bit set")
    if (flags >> 11) & 0xF not in OPCODES:
        raise Malformed(f"DNS opcode {(flags >> 11) & 0xF} is not known")
    if qdcount > MAX_QUESTIONS:
        raise Malformed(f"DNS message has {qdcount} questions, more than {MAX_QUESTIONS}")
    msg = DnsMessage(int.from_bytes(data[0:2], "big"), flags, counts)  # type: ignore[arg-type]
    offset = HEADER_BYTES
    for _ in range(qdcount):
        name, offset = read_name(data, offset)
        if offset + 4 > len(data):
            raise Truncated(f"DNS question {name!r} ends before its type and class")
        qtype = int.from_bytes(data[offset : offset + 2], "big")
        qclass = int.from_bytes(data[offset + 2 : offset + 4], "big") & ~MDNS_CLASS_FLAG
        msg.questions.append(DnsQuestion(name, qtype, qclass))
        offset += 4
    sections = ("answer",) * ancount + ("authority",) * nscount + ("additional",) * arcount
    for k, section in enumerate(sections):
        if k >= max_records:
            msg.records_skipped = len(sections) - k
            return msg
        record, offset = _record(data, offset, section)
        msg.records.append(record)
    msg.end = offset
    return msg


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """A possibly compressed domain name at ``offset`` (RFC 1035 §3.1, §4.1.4): the name
    and the offset after it in the message. Pointers must point backwards (no loops)."""
    labels: list[str] = []
    wire_bytes = 0
    end: int | None = None  # where the name ends in the message (before the first jump)
    limit = offset  # a pointer must go strictly before the previous position
    while True:
        if offset >= len(data):
            raise Truncated("DNS name runs past the message")
        length = data[offset]
        if length & POINTER == POINTER:
            if offset + 2 > len(data):
                raise Truncated("DNS compression pointer is truncated")
            target = ((length & 0x3F) << 8) | data[offset + 1]
            if end is None:
                end = offset + 2
            if target >= limit:
                raise Malformed(f"DNS compression pointer to {target} does not point backwards")
            limit = offset = target
            continue
        if length & POINTER:
            raise Malformed(f"DNS label type 0x{length & POINTER:02x} is not supported")
        wire_bytes += length + 1
        if wire_bytes > MAX_NAME_BYTES:
            raise Malformed(f"DNS name is longer than {MAX_NAME_BYTES} bytes")
        if length == 0:
            return ".".join(labels), offset + 1 if end is None else end
        label = data[offset + 1 : offset + 1 + length]
        if len(label) < length:
            raise Truncated("DNS label runs past the message")
        labels.append(label.decode("utf-8", "replace"))
        offset += 1 + length


def _record(data: bytes, offset: int, section: str) -> tuple[DnsRecord, int]:
    name, offset = read_name(data, offset)
    if offset + 10 > len(data):
        raise Truncated(f"DNS record {name!r} ends inside its fixed fields")
    rtype = int.from_bytes(data[offset : offset + 2], "big")
    rclass = int.from_bytes(data[offset + 2 : offset + 4], "big")
    ttl = int.from_bytes(data[offset + 4 : offset + 8], "big")
    rdlength = int.from_bytes(data[offset + 8 : offset + 10], "big")
    start = offset + 10
    if start + rdlength > len(data):
        raise Truncated(f"DNS {type_name(rtype)} record data runs past the message")
    rdata = data[start : start + rdlength]
    value: str | None = None
    if rtype == TYPE_A:
        if rdlength != 4:
            raise Malformed(f"DNS A record has {rdlength} bytes of data, not 4")
        value = inet_ntoa(rdata)  # what str(IPv4Address) gives, ~5x cheaper
    elif rtype == TYPE_AAAA:
        if rdlength != 16:
            raise Malformed(f"DNS AAAA record has {rdlength} bytes of data, not 16")
        value = str(ipaddress.IPv6Address(rdata))
    elif rtype == TYPE_CNAME:
        target, after = read_name(data[: start + rdlength], start)
        if after != start + rdlength:
            raise Malformed("DNS CNAME target does not fill its record data")
        value = target
    if rtype != 41:  # OPT keeps the requestor's UDP payload size in the class field
        rclass &= ~MDNS_CLASS_FLAG
    return DnsRecord(section, name, rtype, rclass, ttl, value), start + rdlength


# -- dissector ---------------------------------------------------------------------------

FOLLOW_PACKETS = 16  # the answers and a few retries on the same 5-tuple


@dataclass(slots=True)
class DnsFlowState:
    messages: int = 0
    stream: StreamBuffers | None = None
    finding: Finding | None = None
    answered: bool = False  # the finding already tells of a response


def _flavour(ctx: FlowContext) -> str | None:
    """DNS, mDNS or LLMNR by the port one side uses; None when neither side does."""
    for port in (ctx.dst_port, ctx.src_port):
        if port in PORTS:
            return PORTS[port]
    return None


class DnsDissector(Dissector):
    """DNS over UDP and TCP, mDNS and LLMNR, on their ports and by their structure."""

    name = "DNS"
    transports = frozenset({UDP, TCP})
    ports = frozenset(PORTS)  # _flavour
    budget_packets = 3
    follow_packets = FOLLOW_PACKETS
    ANOMALIES = {
        "dns_malformed": "a message of a DNS flow that does not parse",
        "dns_records_capped": f"a DNS message with more than {MAX_RECORDS} records "
        "(the rest were not read)",
        "dns_stream_overflow": "a DNS-over-TCP direction buffered more than "
        "dissect.max_stream_buffer_bytes without a complete message",
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        flavour = _flavour(ctx)
        if flavour is None:
            return Probe.NO
        data = pkt.payload
        if ctx.transport == UDP:
            if not header_is_sane(data):
                return Probe.NO
            messages = [data]
        else:
            state = ctx.state.setdefault(self.name, DnsFlowState())
            first = state.stream is None and len(data) >= TCP_LENGTH_BYTES + HEADER_BYTES
            if first and not header_is_sane(data[TCP_LENGTH_BYTES:]):
                return Probe.NO
            messages = self._from_stream(ctx, state, pkt)
            if not messages:
                return Probe.MAYBE  # the length prefix says more is to come
        try:
            msg = parse_dns(messages[0])
        except DecodeError:
            return Probe.NO
        if not self._plausible(msg, flavour, len(messages[0])):
            return Probe.NO
        state = ctx.state.setdefault(self.name, DnsFlowState())
        state.messages += 1
        state.answered = msg.is_response
        state.finding = Finding(PROTOCOL_NAMES[flavour], OTHER, self._confidence(msg),
                                self._evidence(msg, flavour, ctx.transport), pkt.seq)  # fmt: skip
        ctx.report(state.finding)
        self._learn(ctx, msg, flavour, pkt)
        for extra in messages[1:]:
            self._one(ctx, state, extra, flavour, pkt)
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        flavour = _flavour(ctx) or "DNS"
        state = ctx.state.setdefault(self.name, DnsFlowState())
        if ctx.transport == UDP:
            self._one(ctx, state, pkt.payload, flavour, pkt)
        else:
            for data in self._from_stream(ctx, state, pkt):
                self._one(ctx, state, data, flavour, pkt)
        # A query and its answer are what the names need; a resolver's socket reused for
        # many queries (mDNS, LLMNR) gives a few more within the follow budget.
        return Probe.NO if state.answered and state.messages >= 4 else None

    # -- internals --

    def _one(
        self, ctx: FlowContext, state: DnsFlowState, data: bytes, flavour: str, pkt: Packet
    ) -> None:
        try:
            msg = parse_dns(data)
        except DecodeError as exc:
            ctx.anomaly("dns_malformed", str(exc), pkt.ts_ns)
            return
        state.messages += 1
        if msg.is_response and not state.answered and state.finding is not None:
            state.answered = True
            answers = msg.counts[1]
            state.finding.evidence += (
                f"; answered {RCODES.get(msg.rcode, msg.rcode)} with {answers} "
                f"record{'s' if answers != 1 else ''} (packet {pkt.seq})"
            )
        self._learn(ctx, msg, flavour, pkt)

    def _from_stream(self, ctx: FlowContext, state: DnsFlowState, pkt: Packet) -> list[bytes]:
        """Complete length-prefixed messages of a TCP direction (RFC 1035 §4.2.2)."""
        if state.stream is None:
            state.stream = StreamBuffers(ctx.max_stream_buffer_bytes)
        buf = state.stream.add(pkt.direction, pkt.payload, pkt.tcp_seq)
        if state.stream.overflowed:
            state.stream.overflowed = False
            ctx.anomaly("dns_stream_overflow", "TCP buffer dropped", pkt.ts_ns)
        out: list[bytes] = []
        while len(buf) >= TCP_LENGTH_BYTES:
            length = int.from_bytes(buf[:TCP_LENGTH_BYTES], "big")
            if len(buf) < TCP_LENGTH_BYTES + length:
                break
            out.append(bytes(buf[TCP_LENGTH_BYTES : TCP_LENGTH_BYTES + length]))
            state.stream.consume(pkt.direction, TCP_LENGTH_BYTES + length)
        return out

    @staticmethod
    def _plausible(msg: DnsMessage, flavour: str, size: int) -> bool:
        """What a real message of this flavour has: questions of a known class, a
        question unless an mDNS response (RFC 6762 §6), no trailing bytes."""
        if msg.rcode not in RCODES:
            return False
        mdns_announcement = flavour == "mDNS" and msg.is_response and msg.counts[1] > 0
        if not msg.questions and not mdns_announcement:
            return False
        for q in msg.questions:
            if q.qtype == 0 or q.qclass not in CLASSES:
                return False
        if flavour == "LLMNR" and len(msg.questions) != 1:
            return False  # RFC 4795 §2.1.1: exactly one question
        if not msg.is_response and msg.counts[1] and flavour != "mDNS":
            return False  # only mDNS queries carry known answers (RFC 6762 §7.1)
        return msg.end is None or msg.end == size

    @staticmethod
    def _confidence(msg: DnsMessage) -> float:
        return 0.95 if msg.questions and msg.end is not None else 0.85

    @staticmethod
    def _evidence(msg: DnsMessage, flavour: str, transport: int) -> str:
        over = "TCP" if transport == TCP else "UDP"
        kind = f" {OPCODES[msg.opcode]}" if msg.opcode else ""
        asked = ""
        if msg.questions:
            q = msg.questions[0]
            asked = f" for {q.name or '.'} ({type_name(q.qtype)})"
        if not msg.is_response:
            return f"{flavour}{kind} query{asked} over {over}, header and question parse"
        answers = msg.counts[1]
        return (
            f"{flavour}{kind} response{asked} over {over}: {RCODES[msg.rcode]}, "
            f"{answers} answer{'s' if answers != 1 else ''}"
        )

    def _learn(self, ctx: FlowContext, msg: DnsMessage, flavour: str, pkt: Packet) -> None:
        if msg.records_skipped:
            ctx.anomaly(
                "dns_records_capped",
                f"{msg.records_skipped} records past the first {MAX_RECORDS} not read",
                pkt.ts_ns,
            )
        if not msg.is_response:
            return
        # mDNS announces its addresses in any section (RFC 6762 §6), without a question.
        sections = ("answer", "additional") if flavour == "mDNS" else ("answer",)
        asked = msg.questions[0].name if msg.questions else None
        for record in msg.addresses(sections):
            name = asked if asked and flavour == "DNS" else record.name
            ctx.knowledge.learn_name(
                record.value or "", name, f"{flavour} answer", ctx.flow_id, pkt.ts_ns
            )
