"""Hypothesis over every registered dissector: probe, dissect and on_expire.

Seeds are real payloads of the shared captures (SIP, SDP, RTP/RTCP, STUN/TURN, DTLS,
MGCP, IAX2, SCCP, H.323 ...), mutated; plus random bytes. A dissector may raise only
DecodeError (the stage turns it into NO or an anomaly); anything else is a bug. Also
run through the stage, so the stage's own bookkeeping is fuzzed with them.
"""

from __future__ import annotations

import functools
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.dissectdrive import run
from tests.fuzz.support import FAST, LONG, SHARED, damaged
from voipscope.anomalies import AnomalyLog
from voipscope.dissect.base import TCP, UDP, FlowContext, Packet
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.registry import DISSECTORS

SEED_CAPTURES = ("sip.pcap", "rtp.pcapng", "stun.pcap", "stun_dtls_rtp.pcapng", "mgcp.pcap",
                 "iax.pcap", "h323.pcap", "sccp_hw_conf_register.pcapng", "dtls.pcap",
                 "dns.pcap", "quic.pcap", "teamspeak3.pcap", "discord.pcap", "skype_udp.pcap",
                 "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap")  # fmt: skip
NAMES = [d.name for d in DISSECTORS]


@functools.cache
def seeds() -> tuple[tuple[int, bytes], ...]:
    """(transport, payload) of the first packets of the seed captures, via tshark."""
    out: list[tuple[int, bytes]] = []
    for name in SEED_CAPTURES:
        path = SHARED / name
        if not path.is_file():
            continue
        try:
            text = subprocess.run(
                ["tshark", "-r", str(path), "-c", "60", "-T", "fields", "-e", "ip.proto",
                 "-e", "ipv6.nxt", "-e", "udp.payload", "-e", "tcp.payload"],
                capture_output=True, text=True, timeout=60, check=False,
            ).stdout  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in text.splitlines():
            _, _, udp, tcp = [*line.split("\t"), "", "", "", ""][:4]
            hexdata = udp or tcp
            if hexdata:
                out.append((TCP if tcp else UDP, bytes.fromhex(hexdata.split(",")[0])))
    return tuple(out) or ((UDP, b"\x80\x00\x00\x01" + bytes(12)),)


def _context(transport: int) -> FlowContext:
    return FlowContext(1, transport, "192.0.2.1", 5060, "192.0.2.2", 2427, 0, Knowledge(),
                       AnomalyLog())  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> tuple[int, list[bytes]]:
    """A transport and 1-6 payloads: random bytes or damaged real ones."""
    pool = seeds()
    transport = pool[draw(st.integers(0, len(pool) - 1))][0]
    real = damaged([payload for _, payload in pool]).filter(bool)
    packets = draw(
        st.lists(st.one_of(st.binary(min_size=1, max_size=200), real), min_size=1, max_size=6)
    )
    return transport, packets


def _drive(name: str, transport: int, packets: list[bytes]) -> None:
    dissector = next(d for d in DISSECTORS if d.name == name)
    if transport not in dissector.transports:
        transport = next(iter(dissector.transports))
    ctx = _context(transport)
    flow = [Packet(p, seq * 20_000_000, seq, seq % 2) for seq, p in enumerate(packets, 1)]
    run(dissector, ctx, flow)  # the stage's own offering; fails on any non-DecodeError
    if dissector.name in ctx.state:
        dissector.on_expire(ctx)
    for f in ctx.findings:
        assert 0.0 <= f.confidence <= 1.0 and f.protocol and f.evidence


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(case=mutated())
def test_dissector_raises_only_decode_errors(name: str, case: tuple[int, list[bytes]]) -> None:
    _drive(name, *case)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@LONG
@given(case=mutated())
def test_dissector_raises_only_decode_errors_long(name: str, case: tuple[int, list[bytes]]) -> None:
    _drive(name, *case)


def test_every_dissector_is_fuzzed_with_seeds() -> None:
    assert len(seeds()) > 50, "seed payloads missing: is tshark installed and ../shared there?"
    assert len(set(NAMES)) == len(NAMES), "two dissectors share a name"
