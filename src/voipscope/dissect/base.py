"""What every dissector shares: the probe verdicts, the packet and flow views, findings.

A dissector is a stateless singleton; what it learns about a flow lives in
``FlowContext.state[dissector.name]`` (its own slots dataclass), so one instance serves
every flow. The stage (``dissect.stage``) offers a flow's packets to the dissectors still
interested in it:

* ``probe(ctx, pkt)`` until the dissector answers ``MATCH`` or ``NO`` or its
  ``budget_packets`` run out (nDPI-style packet budget: an unrecognised flow stops costing
  Python work after a few packets);
* after a ``MATCH``, ``dissect(ctx, pkt)`` for the flow's packets up to ``follow_packets``
  (SIP follows for ever: every message of a dialog matters; RTP stops after a few);
* ``on_expire(ctx)`` once, when the flow ends, for facts only the whole flow shows.

Dissectors report *facts* (``ctx.report``: a protocol was seen, how sure, why, at which
packet), *expectations* (``ctx.knowledge.expect``: SDP announced media at ip:port) and
*anomalies* (``ctx.anomaly``). Judging is the arbiter's job (``voipscope.classify``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, ClassVar

from voipscope.anomalies import AnomalyLog
from voipscope.dissect.knowledge import Expectation, Knowledge

UDP = 17
TCP = 6
MAX_HINTS = 16  # per flow; attacker-controlled strings
# Per flow: when its findings and hints grew (see FlowContext.as_of). Past the cap the
# last mark moves forward, so a time between two marks reads the earlier, never more.
MAX_EVIDENCE_MARKS = 16

# Categories of the Flow record (DESIGN §3).
# Below this a finding may name an app but never decides a verdict (classify/arbiter).
MIN_VERDICT_CONFIDENCE = 0.5
SIGNALING = "voip-signaling"
MEDIA = "voip-media"
OTHER = "other"
UNKNOWN = "unknown"


class Probe(IntEnum):
    NO = 0  # not this protocol: stop offering this flow's packets
    MAYBE = 1  # could be, or a packet of a protocol multiplexed beside it: keep offering
    MATCH = 2  # it is this protocol (a Finding was reported)
    # Not mine, but a packet of a protocol that shares the 5-tuple by RFC 7983
    # demultiplexing (STUN, DTLS, RTP, TURN ChannelData): keep offering, and do not count
    # it against my budget (WebRTC sends ~25 STUN/DTLS packets before the first RTP).
    PASS = 3


@dataclass(slots=True)
class Packet:
    payload: bytes  # L4 payload (TCP: one segment as captured, not reassembled)
    ts_ns: int
    seq: int  # number of the packet within its flow, from 1 (all packets, not only payload)
    direction: int  # 0: from the flow's src (first sender), 1: towards it
    tcp_seq: int = -1  # TCP: the segment's sequence number (-1: UDP, or not found)


@dataclass(slots=True)
class Finding:
    """One fact: on this flow, at this packet, the bytes showed this protocol."""

    protocol: str
    category: str  # SIGNALING | MEDIA | OTHER
    confidence: float  # 0..1: how sure the bytes make the dissector, not a verdict
    evidence: str
    at_packet: int
    app: str | None = None
    media: str | None = None  # "audio" | "video"


@dataclass(slots=True)
class MessageEvent:
    """One signalling message as it went over the wire, in capture order.

    ``message`` is the protocol's own parsed object (``SipMessage`` for SIP). Events are
    drained by the pipeline after every batch, so their number is bounded by a batch.
    """

    protocol: str
    ts_ns: int
    flow_id: int
    transport: int
    sender: tuple[str, int]
    receiver: tuple[str, int]
    message: object
    via: str | None = None  # the transport when not the flow's own ("ws": RFC 7118)


@dataclass(slots=True)
class FlowContext:
    """A flow as dissectors see it: its addresses, their states and their findings."""

    flow_id: int
    transport: int  # IP protocol number
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    first_ts_ns: int
    knowledge: Knowledge
    anomalies: AnomalyLog
    findings: list[Finding] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    # What signalling announced for this flow's addresses when its first packet came
    # (looked up once: later re-INVITEs may announce the same port again).
    expected: Expectation | None = None
    max_stream_buffer_bytes: int = 64 << 10  # dissect.max_stream_buffer_bytes
    payload_packets: int = 0  # packets offered to dissectors (payload-carrying)
    matched: bool = False  # some dissector matched
    call_media: bool = False  # some dissector found call media (a MEDIA finding)
    # Names the bytes gave for the app behind the flow: ("sni", host), ("software",
    # "Telegram ..."), ("realm", ...), ("stun-vendor", "MS-TURN"). The arbiter maps them.
    hints: list[tuple[str, str]] = field(default_factory=list)
    # (capture time, findings, hints) after each packet that added some: what the flow
    # had shown by a given time, for another flow's judge (as_of).
    marks: list[tuple[int, int, int]] = field(default_factory=list)
    # The direction whose sender only answered STUN requests on this flow (a STUN/TURN
    # server, an ICE-lite media server), -1 when none is known: see agent_endpoints.
    stun_server_side: int = -1

    def report(self, finding: Finding) -> None:
        self.findings.append(finding)

    def message(self, protocol: str, pkt: Packet, message: object, via: str | None = None) -> None:
        """Hand a parsed signalling message to the later stages (calls, detectors);
        ``via`` names a transport above the flow's own (``"ws"``)."""
        sender = self.endpoint(pkt.direction)
        receiver = self.endpoint(1 - pkt.direction)
        self.knowledge.messages.append(
            MessageEvent(
                protocol,
                pkt.ts_ns,
                self.flow_id,
                self.transport,
                sender,
                receiver,
                message,
                via,
            )
        )

    def anomaly(self, name: str, detail: str, ts_ns: int | None = None) -> None:
        self.anomalies.add(
            name,
            detail,
            ts=None if ts_ns is None else ts_ns / 1e9,
            flow_id=self.flow_id,
            src_ip=self.src_ip,
            dst_ip=self.dst_ip,
        )

    def hint(self, kind: str, value: str) -> None:
        if len(self.hints) < MAX_HINTS and (kind, value) not in self.hints:
            self.hints.append((kind, value))

    def mark(self, ts_ns: int) -> None:
        """The findings and hints grew at ``ts_ns`` (the dissect stage calls this)."""
        entry = (ts_ns, len(self.findings), len(self.hints))
        if len(self.marks) < MAX_EVIDENCE_MARKS:
            self.marks.append(entry)
        else:
            self.marks[-1] = entry

    def as_of(self, ts_ns: int) -> FlowContext:
        """This flow as its findings and hints stood at ``ts_ns``: a flow still going on,
        read for another that ended then -- not what it showed later (whatever later
        packets a batch held already). Itself when nothing came after."""
        findings = hints = 0
        for at, n_findings, n_hints in self.marks:
            if at > ts_ns:
                break
            findings, hints = n_findings, n_hints
        if findings == len(self.findings) and hints == len(self.hints):
            return self
        return replace(self, findings=self.findings[:findings], hints=self.hints[:hints])

    def endpoint(self, direction: int) -> tuple[str, int]:
        """The sender of a packet going in ``direction``."""
        return (self.src_ip, self.src_port) if direction == 0 else (self.dst_ip, self.dst_port)

    def endpoints(self) -> tuple[tuple[str, int], tuple[str, int]]:
        """Both ends, the flow's first sender first."""
        return (self.src_ip, self.src_port), (self.dst_ip, self.dst_port)

    def agent_endpoints(self) -> tuple[tuple[str, int], ...]:
        """The ends that may be one program's own socket (an ICE agent's): both, less a
        STUN/TURN server's, whose socket serves the clients of every app that uses it."""
        if self.stun_server_side < 0:
            return self.endpoints()
        return (self.endpoint(1 - self.stun_server_side),)

    def lookup_expectation(self, ts_ns: int) -> Expectation | None:
        """The expectation for either end of the flow (looked up once, then kept)."""
        if self.expected is None:
            k = self.knowledge
            self.expected = k.expected(self.dst_ip, self.dst_port, ts_ns) or k.expected(
                self.src_ip, self.src_port, ts_ns
            )
        return self.expected

    def best(self, protocol: str) -> Finding | None:
        found = [f for f in self.findings if f.protocol == protocol]
        return max(found, key=lambda f: f.confidence) if found else None


class Dissector:
    """Base class: override ``probe`` and what else the protocol needs."""

    name: ClassVar[str] = ""
    transports: ClassVar[frozenset[int]] = frozenset({UDP})
    # Packets offered without a MATCH before the dissector gives up on the flow.
    budget_packets: ClassVar[int] = 8
    # Packets of the flow still given to ``dissect`` after the one that matched; -1: all.
    follow_packets: ClassVar[int] = 0
    # Protocols that share a 5-tuple by RFC 7983 demultiplexing (STUN, DTLS, RTP, TURN
    # ChannelData, ZRTP): a MATCH of one of them keeps the others of the group probing.
    # A MATCH of any other dissector ends probing for every other one.
    multiplexed: ClassVar[bool] = False
    # First payload bytes a UDP packet of this protocol can start with (None: any). The
    # stage answers NO (or PASS, for the RFC 7983 family) for other bytes without a call:
    # most packets offered are the first of a flow, and most dissectors can refuse them
    # from one byte.
    udp_first_bytes: ClassVar[frozenset[int] | None] = None
    # The same for the first payload segment of a TCP flow. Only that one: a later
    # segment may start anywhere inside a message. tests/unit/dissect/test_first_byte_gates.py
    # checks that a probe refuses every other first byte.
    tcp_first_bytes: ClassVar[frozenset[int] | None] = None
    # Protocols recognised only on their ports (DNS, NTP, IKE, DHCP: their bytes alone are
    # too unspecific): the stage offers them only flows with one end on one of these.
    ports: ClassVar[frozenset[int] | None] = None
    # Named anomalies the dissector can raise, name -> meaning (DESIGN §4).
    ANOMALIES: ClassVar[dict[str, str]] = {}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        raise NotImplementedError

    def dissect(self, ctx: FlowContext, pkt: Packet) -> Probe | None:
        """A packet after the match. Return ``Probe.NO`` when nothing more is wanted from
        the flow (e.g. TLS after the ServerHello), else None."""
        return None

    def follow_more(self, ctx: FlowContext) -> int:
        """Packets to follow beyond ``follow_packets``, asked only once those ran out:
        what the flow showed so far may say the interesting part is still to come."""
        return 0

    def on_expire(self, ctx: FlowContext) -> None:
        return None


# RFC 7983 §7 / RFC 9443 §3 first-byte ranges: STUN, ZRTP, DTLS, TURN ChannelData, RTP/RTCP.
RFC7983_BYTES = frozenset([*range(0, 4), *range(16, 80), *range(128, 192)])
TEXT_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
WHITESPACE_BYTES = frozenset(b"\r\n \t\x00")


def anomaly_prefix(protocol: str) -> str:
    """``H.323`` -> ``h323``: protocol names as they start anomaly names."""
    return "".join(c for c in protocol.lower().replace("-", "_") if c.isalnum() or c == "_")
