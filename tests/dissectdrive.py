"""Drive one dissector without the pipeline: hand-made flows, or the flows of a capture.

``run`` offers the packets through the stage's own ``DissectStage.step`` (the first-byte
gate, PASS for RFC 7983 neighbours, the budget, ``dissect`` for ``follow_packets`` after
the match or until it returns NO, DecodeError handling), so a test sees exactly what the
pipeline does with one dissector. Any other exception is a bug: the stage records it as
``dissector_internal_error``, and ``run`` fails the test on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from voipscope.addresses import format_ip
from voipscope.anomalies import AnomalyLog
from voipscope.config import DissectConfig
from voipscope.decode import decode_batch
from voipscope.decode import status as S
from voipscope.dissect.base import TCP, UDP, Dissector, FlowContext, Packet, Probe
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.stage import DissectStage, Offer, udp_gate
from voipscope.errors import DecodeError
from voipscope.source import read_capture

T0 = 1_700_000_000_000_000_000


def context(
    transport: int = UDP,
    src: tuple[str, int] = ("10.0.0.1", 40000),
    dst: tuple[str, int] = ("10.0.0.2", 9999),
    knowledge: Knowledge | None = None,
) -> FlowContext:
    return FlowContext(
        flow_id=1,
        transport=transport,
        src_ip=src[0],
        src_port=src[1],
        dst_ip=dst[0],
        dst_port=dst[1],
        first_ts_ns=T0,
        knowledge=knowledge or Knowledge(),
        anomalies=AnomalyLog(),
    )


def packets(*payloads: bytes | tuple[int, bytes]) -> list[Packet]:
    """Packets numbered from 1, 1 ms apart; a (direction, payload) pair sets direction."""
    out = []
    for k, item in enumerate(payloads):
        direction, payload = item if isinstance(item, tuple) else (0, item)
        out.append(Packet(payload, T0 + k * 1_000_000, k + 1, direction))
    return out


@dataclass
class Run:
    ctx: FlowContext
    verdicts: list[Probe] = field(default_factory=list)
    matched_at: int | None = None  # flow packet number of the MATCH

    @property
    def matched(self) -> bool:
        return self.matched_at is not None

    @property
    def finding(self):  # type: ignore[no-untyped-def]
        assert len(self.ctx.findings) == 1, self.ctx.findings
        return self.ctx.findings[0]


def run(dissector: Dissector, ctx: FlowContext, flow: list[Packet]) -> Run:
    stage = DissectStage(DissectConfig(), ctx.anomalies, [dissector], capacity=1)
    offer = Offer(dissector, gate=udp_gate(dissector) if ctx.transport == UDP else None)
    result = Run(ctx)
    for pkt in flow:
        following = offer.matched
        verdict, stays = stage.step(ctx, offer, pkt)
        if not following:
            assert verdict is not None
            result.verdicts.append(verdict)
            if verdict == Probe.MATCH:
                result.matched_at = pkt.seq
        if not stays:
            break
    bugs = [a.detail for a in ctx.anomalies.records if a.name == "dissector_internal_error"]
    assert not bugs, bugs
    return result


@dataclass
class CapturedFlow:
    transport: int
    src: tuple[str, int]
    dst: tuple[str, int]
    packets: list[Packet]  # payload-carrying packets, numbered among all the flow's packets

    def context(self, knowledge: Knowledge | None = None) -> FlowContext:
        return context(self.transport, self.src, self.dst, knowledge)


def capture_flows(path: Path, transports: tuple[int, ...] = (UDP, TCP)) -> list[CapturedFlow]:
    """The bidirectional UDP/TCP flows of a capture in order of first packet (no idle
    timeout: one 5-tuple is one flow)."""
    flows: dict[tuple, CapturedFlow] = {}
    counts: dict[tuple, int] = {}
    for batch in read_capture(str(path)):
        d = decode_batch(batch)
        for i in range(len(d)):
            if d.status[i] != S.OK or int(d.proto[i]) not in transports:
                continue
            version = int(d.ip_ver[i])
            here = (format_ip(version, int(d.src_hi[i]), int(d.src_lo[i])), int(d.sport[i]))
            there = (format_ip(version, int(d.dst_hi[i]), int(d.dst_lo[i])), int(d.dport[i]))
            proto = int(d.proto[i])
            key = (proto, *sorted([here, there]))
            flow = flows.get(key)
            if flow is None:
                flow = flows[key] = CapturedFlow(proto, here, there, [])
            counts[key] = counts.get(key, 0) + 1
            if d.l4_len[i] > 0:
                direction = 0 if here == flow.src else 1
                flow.packets.append(Packet(d.payload(i), int(d.ts_ns[i]), counts[key], direction))
    return [f for f in flows.values() if f.packets]


GOLDENS = Path(__file__).parent / "unit" / "dissect" / "goldens"


def golden(name: str) -> list[list[str]]:
    """Rows of ``goldens/NAME`` (made by tests/unit/dissect/make_lookalike_goldens.py)."""
    rows = [line.split("|") for line in (GOLDENS / name).read_text().splitlines()]
    assert rows, f"empty golden {name}"
    return rows


def prefix_sweep(parse, data: bytes) -> int:  # type: ignore[no-untyped-def]
    """Parse every proper prefix of ``data``: each must raise a DecodeError or return.
    Any other exception propagates. Returns how many prefixes parsed."""
    parsed = 0
    for cut in range(len(data)):
        try:
            parse(data[:cut])
        except DecodeError:
            continue
        parsed += 1
    return parsed
