"""The stage refuses a flow for a dissector from its first payload byte alone
(``udp_first_bytes``, ``tcp_first_bytes``): that is only right if the dissector's own
probe would have said NO to every such packet. Checked here for every byte outside each
gate, on random tails and on the tails of real messages of the protocols."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from voipscope.anomalies import AnomalyLog
from voipscope.dissect.base import RFC7983_BYTES, TCP, UDP, FlowContext, Packet, Probe
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.registry import DISSECTORS
from voipscope.errors import DecodeError

# Ports that switch on the port-aware parts of the probes (SIP, TLS/SIP-TLS, H.323, SCCP,
# DNS, MEGACO, STUN, IAX2, HTTP, BitTorrent, MGCP).
PORTS = (5060, 5061, 443, 80, 1720, 2000, 53, 2944, 3478, 4569, 6881, 2427)
# Real message starts (first byte removed by the test): a wrong first byte must not slip
# through because the rest of the message is perfect.
REAL_STARTS = (
    b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\n\r\n",
    b"SIP/2.0 200 OK\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"MEGACO/1 [10.0.0.1]:2944\r\n",
    b"\x16\x03\x01\x00\x2a\x01\x00\x00\x26\x03\x03" + bytes(32) + b"\x00\x00\x02\x00\x2f\x01\x00",
    b"\x03\x00\x00\x14\x08\x02\x00\x01\x05\x04\x03\x80\x90\xa2\x6c\x00\x70\x00\x7e\x00",
    b"\x13BitTorrent protocol" + bytes(8) + bytes(40),
    b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x80\x22\x00\x04test",
    b"WA\x05\x02" + bytes(20),
    b"\x00\x1c\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01",
    b"\x0c\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00" + bytes(12),
)


def _tails() -> list[bytes]:
    rng = np.random.default_rng(7983)
    tails = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (0, 3, 11, 19, 39, 199)]
    tails += [bytes(n) for n in (3, 11, 39)]
    tails += [s[1:] for s in REAL_STARTS]
    return tails


def _gated() -> list[tuple[str, int]]:
    """Gates that stand for the probe's own NO. (On UDP the RFC 7983 family's gates are
    the rule itself: their probes leave the refusal of foreign bytes to the stage.)"""
    out = []
    for d in DISSECTORS:
        if d.udp_first_bytes is not None and UDP in d.transports and not d.multiplexed:
            out.append((d.name, UDP))
        if d.tcp_first_bytes is not None and TCP in d.transports:
            out.append((d.name, TCP))
    return out


def test_the_tcp_gates_exist() -> None:
    """The TCP dissectors that can refuse from one byte do so (a cheap stage needs it)."""
    gated = {name for name, transport in _gated() if transport == TCP}
    assert {"SIP", "TLS", "HTTP", "H.323", "BitTorrent", "STUN", "WhatsApp"} <= gated


@pytest.mark.parametrize(("name", "transport"), _gated())
def test_probe_refuses_every_byte_outside_its_gate(name: str, transport: int) -> None:
    dissector = next(d for d in DISSECTORS if d.name == name)
    gate = dissector.udp_first_bytes if transport == UDP else dissector.tcp_first_bytes
    assert gate is not None
    tails = _tails()
    wrong = []
    for first in range(256):
        if first in gate:
            continue
        for tail in tails:
            payload = bytes([first]) + tail
            for port in PORTS:
                for direction in (0, 1):
                    ctx = FlowContext(1, transport, "10.0.0.1", 40000, "10.0.0.2", port, 0,
                                      Knowledge(), AnomalyLog())  # fmt: skip
                    verdict = Probe.NO
                    with contextlib.suppress(DecodeError):  # the stage's "not this protocol"
                        verdict = dissector.probe(ctx, Packet(payload, 0, 1, direction))
                    if verdict != Probe.NO:
                        wrong.append((first, payload[:12].hex(), port, direction, verdict))
    assert not wrong, f"{name} accepts first bytes its gate refuses: {wrong[:5]}"


# Real datagrams of the port-gated protocols, which must still be refused off their ports.
PORT_GATED_SAMPLES = (
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01",
    bytes([0x23]) + bytes(47),  # NTPv4 client request
    bytes([1, 1, 6, 0]) + bytes(232) + b"\x63\x82\x53\x63\x35\x01\x01\xff",  # DHCPDISCOVER
    bytes(8) + bytes(8) + b"\x21\x20\x22\x08" + bytes(4) + b"\x00\x00\x00\x1c",  # IKEv2 SA_INIT
)


@pytest.mark.parametrize("name", [d.name for d in DISSECTORS if d.ports is not None])
def test_port_gated_probes_refuse_other_ports(name: str) -> None:
    dissector = next(d for d in DISSECTORS if d.name == name)
    assert dissector.ports
    samples = [*PORT_GATED_SAMPLES, *_tails()]
    wrong = []
    for transport in sorted(dissector.transports):
        for port in (1, 1024, 40000, *[p + 1 for p in dissector.ports]):
            if port in dissector.ports:
                continue
            for payload in samples:
                if not payload:
                    continue
                for tcp_prefix in (
                    (b"",) if transport == UDP else (b"", len(payload).to_bytes(2, "big"))
                ):
                    ctx = FlowContext(1, transport, "10.0.0.1", 40001, "10.0.0.2", port, 0,
                                      Knowledge(), AnomalyLog())  # fmt: skip
                    verdict = Probe.NO
                    with contextlib.suppress(DecodeError):
                        verdict = dissector.probe(ctx, Packet(tcp_prefix + payload, 0, 1, 0))
                    if verdict != Probe.NO:
                        wrong.append((transport, port, payload[:8].hex(), verdict))
    assert not wrong, f"{name} accepts flows off its ports: {wrong[:5]}"
    # ... and on its port the DNS sample is DNS (the samples are real).
    if name == "DNS":
        ctx = FlowContext(1, UDP, "10.0.0.1", 40001, "10.0.0.2", 53, 0, Knowledge(), AnomalyLog())
        assert dissector.probe(ctx, Packet(PORT_GATED_SAMPLES[0], 0, 1, 0)) == Probe.MATCH


@pytest.mark.parametrize("matched", [False, True], ids=["nothing-matched", "a-neighbour-matched"])
def test_the_stage_gate_table_answers_as_step_does(matched: bool) -> None:
    """``udp_gate`` is the UDP first-byte rule of ``Dissector`` (probe the bytes of
    ``udp_first_bytes``; an RFC 7983 neighbour's byte passes a multiplexed dissector;
    refuse the rest), for every dissector and byte; ``step`` answers by it (the probe is
    called exactly on PROBE, REFUSE is NO, NEIGHBOUR is PASS and stays beside a match),
    and ``_offer`` settles REFUSE and NEIGHBOUR-beside-a-match from it without ``step``."""
    from voipscope.config import DissectConfig
    from voipscope.dissect.stage import (
        GATE_NEIGHBOUR,
        GATE_PROBE,
        GATE_REFUSE,
        DissectStage,
        Offer,
        udp_gate,
    )

    gated = [d for d in DISSECTORS if UDP in d.transports and d.udp_first_bytes is not None]
    assert gated, "no UDP dissector has a gate"
    for d in gated:
        gate = udp_gate(d)
        assert gate is not None and len(gate) == 256
        stage = DissectStage(DissectConfig(), AnomalyLog(), [d], capacity=1)
        for b in range(256):
            ctx = FlowContext(1, UDP, "10.0.0.1", 40000, "10.0.0.2", 9999, 0, Knowledge(),
                              AnomalyLog())  # fmt: skip
            ctx.matched = matched
            probed: list[bool] = []
            real_probe = d.probe

            def spy(c: FlowContext, p: Packet, real=real_probe, seen=probed) -> Probe:  # type: ignore[no-untyped-def]
                seen.append(True)
                return real(c, p)

            d.probe = spy  # type: ignore[method-assign]
            try:
                pkt = Packet(bytes([b]) + bytes(39), 0, 1, 0)
                verdict, stays = stage.step(ctx, Offer(d, gate=gate), pkt)  # guards the probe
            finally:
                del d.probe  # the class's own again
            answer = gate[b]
            rule = (
                GATE_PROBE
                if b in d.udp_first_bytes
                else GATE_NEIGHBOUR
                if d.multiplexed and b in RFC7983_BYTES
                else GATE_REFUSE
            )
            assert answer == rule, (d.name, b)
            assert (answer == GATE_PROBE) == bool(probed), (d.name, b)
            if answer == GATE_REFUSE:
                assert (verdict, stays) == (Probe.NO, False), (d.name, b)
            elif answer == GATE_NEIGHBOUR:
                assert verdict is Probe.PASS, (d.name, b)
                if matched:
                    assert stays, (d.name, b)
