"""Classic Skype in classify: the CSC (Tstat's χ² blocks), the NBC, the host table, and the
verdicts they make together — Skype over TCP from host context, SkypeOut vs E2E."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from tests.dissectdrive import T0, context, packets, run
from voipscope.classify import skype_csc as CSC
from voipscope.classify import skype_verdict as SV
from voipscope.classify.skype_nbc import WINDOW_PACKETS, merged_packets, shipped_model
from voipscope.dissect.base import MEDIA, SIGNALING, TCP, UDP, Packet
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.skype import SkypeDissector, tcp_framing
from voipscope.dissect.skype_hosts import NAME, SkypeHosts

MODEL = shipped_model()
CLIENT = ("192.168.1.34", 13021)


def rc4ish(seed: int, size: int) -> bytes:
    """Stand-in for RC4 output: SHA-256 in counter mode (uniform bytes, reproducible)."""
    out = b""
    k = 0
    while len(out) < size:
        out += hashlib.sha256(struct.pack("!II", seed, k)).digest()
        k += 1
    return out[:size]


def som(seed: int, function: int = 0x02, size: int = 40) -> bytes:
    body = rc4ish(seed, size)
    return body[:2] + bytes([function | (body[2] & 0x70)]) + body[3:]


# -- CSC ---------------------------------------------------------------------------------


def test_block_order_is_tstats_little_endian_nibbles():
    values = CSC.nibbles([bytes([0x21, 0x43, 0x65, 0x87, 0xA9, 0xCB, 0xED, 0x0F])])
    assert values[0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0]


def test_constant_block_scores_15_n_and_random_is_small():
    heads = [bytes(8)] * 1 + [rc4ish(k, 8) for k in range(40)]
    chi = CSC.block_chi2(CSC.nibbles([b"\x00" * 8]))
    assert chi.tolist() == [15.0] * 16  # one sample: a constant by definition
    const = CSC.block_chi2(CSC.nibbles([b"\xaa" + rc4ish(k, 7) for k in range(40)]))
    assert const[0] == const[1] == 15 * 40
    random = CSC.block_chi2(CSC.nibbles(heads[1:]))
    assert random.max() < CSC.TSTAT_CHI2


def test_retransmissions_are_one_sample():
    head = rc4ish(1, 8)
    assert CSC.nibbles([head] * 7 + [rc4ish(2, 8)]).shape[0] == 2


def test_small_sample_threshold_has_power_from_five_packets():
    t = MODEL.csc_random_max_chi2
    assert not CSC.csc([rc4ish(k, 8) for k in range(4)], t).powered
    five = CSC.csc([rc4ish(k, 8) for k in range(5)], t)
    assert five.powered and five.all_random
    tls = [b"\x17\x03\x03" + rc4ish(k, 5) for k in range(5)]  # TLS records: 3 fixed bytes
    result = CSC.csc(tls, t)
    assert result.powered and result.random_blocks == 10


def test_random_flows_fail_about_once_in_a_thousand():
    t = MODEL.csc_random_max_chi2
    fails = sum(not CSC.csc([rc4ish(1000 * f + k, 8) for k in range(8)], t).all_random
                for f in range(600))  # fmt: skip
    assert fails <= 4


def test_udp_kinds_e2e_and_e2o_at_tstats_thresholds():
    t = MODEL.csc_random_max_chi2
    e2e = CSC.csc([som(k) for k in range(200)], t)
    assert e2e.udp_kind() == "E2E"
    e2o = CSC.csc([b"\x12\x34\x56\x78" + rc4ish(k, 4) for k in range(200)], t)
    assert e2o.udp_kind() == "E2O"
    assert CSC.csc([rc4ish(k, 8) for k in range(200)], t).udp_kind() is None
    assert CSC.csc([som(k) for k in range(9)], t).udp_kind() is None  # Tstat: >= 10


def test_pooled_chi2():
    assert CSC.pooled_chi2(b"short") is None
    assert CSC.pooled_chi2(rc4ish(3, 64)) < CSC.POOLED_CHI2_15DOF_P001
    assert CSC.pooled_chi2(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2) > CSC.POOLED_CHI2_15DOF_P001


# -- NBC ---------------------------------------------------------------------------------


def test_nbc_model_shape_and_score():
    assert MODEL.size_llr.shape == (20,) and MODEL.gap_llr.shape == (6,)
    assert MODEL.score([]) is None
    merged = merged_packets([[60, 8, 8], [50]], [[T0, T0 + 2, T0 + 3], [T0 + 1]])
    assert [p[1] for p in merged] == [0, 1, 0, 0]
    assert isinstance(MODEL.score(merged), float)
    long = [(T0 + k, 0, 100) for k in range(100)]
    assert MODEL.score(long) == MODEL.score(long[:WINDOW_PACKETS])


# -- host table ----------------------------------------------------------------------------


def test_host_table_is_bounded_and_counts_overflow():
    hosts = SkypeHosts(max_hosts=4, max_peer_sockets=4)
    for k in range(10):
        hosts.som_flow(f"10.0.0.{k}", 1000 + k, ("10.9.9.9", 1), T0 + k, inbound=False)
    assert len(hosts.hosts()) == 4 and hosts.overflow == 6 + 6
    hosts.mark_node("10.0.0.9", T0 + 5, "first")
    hosts.mark_node("10.0.0.9", T0 + 9, "later")
    host = hosts.host("10.0.0.9")
    assert host is not None and host.how == "first"
    assert not host.known_by(T0 + 4) and host.known_by(T0 + 5)


# -- verdicts --------------------------------------------------------------------------------


def udp_som_flows(knowledge: Knowledge, n: int, t0: int) -> None:
    """The client's UDP socket sends one SoM datagram to each of n peers (skype.pcap)."""
    for k in range(n):
        ctx = context(UDP, CLIENT, (f"20.0.{k}.1", 30000 + k), knowledge)
        run(SkypeDissector(), ctx, [Packet(som(k), t0 + k * 1_000_000, 1, 0)])


def tcp_flow(knowledge: Knowledge, payloads, remote=("20.0.0.1", 30000), t0: int = T0):
    ctx = context(TCP, ("192.168.1.34", 50026), remote, knowledge)
    flow = [Packet(p, t0 + k * 50_000_000, k + 1, d) for k, (d, p) in enumerate(payloads)]
    run(SkypeDissector(), ctx, flow)
    return ctx, flow[-1].ts_ns


SKYPE_TCP = [(0, rc4ish(1, 72)), (1, rc4ish(2, 57)), *[(0, rc4ish(10 + k, 8)) for k in range(6)],
             (1, rc4ish(3, 36)), (1, rc4ish(4, 68))]  # fmt: skip


def test_skype_tcp_found_from_host_context():
    knowledge = Knowledge()
    udp_som_flows(knowledge, 8, T0)
    ctx, last = tcp_flow(knowledge, SKYPE_TCP, t0=T0 + 10_000_000_000)
    SV.weigh(ctx, last, MODEL)
    (finding,) = ctx.findings
    assert (finding.protocol, finding.category, finding.app) == ("Skype", SIGNALING, "Skype")
    assert finding.confidence >= SV.TCP_PEER_SOCKET  # 20.0.0.1:30000 spoke SoM
    assert "random blocks 16/16" in finding.evidence
    assert "192.168.1.34 is a Skype node" in finding.evidence
    assert "nbc log-likelihood ratio" in finding.evidence


def test_skype_tcp_stays_unknown_before_the_host_showed_skype_udp():
    knowledge = Knowledge()
    udp_som_flows(knowledge, 8, T0 + 60_000_000_000)  # a minute after the TCP flow
    ctx, last = tcp_flow(knowledge, SKYPE_TCP)
    SV.weigh(ctx, last, MODEL)
    assert not ctx.findings


def test_random_tcp_from_a_host_without_skype_is_not_skype():
    """BitTorrent MSE, obfs4 and OSSH are random from byte 0 too: no host context, no
    verdict."""
    knowledge = Knowledge()
    ctx, last = tcp_flow(knowledge, SKYPE_TCP)
    SV.weigh(ctx, last, MODEL)
    assert not ctx.findings


def test_one_direction_or_framing_is_not_enough():
    knowledge = Knowledge()
    udp_som_flows(knowledge, 8, T0 - 10_000_000_000)
    ctx, last = tcp_flow(knowledge, [(d, p) for d, p in SKYPE_TCP if d == 0])
    SV.weigh(ctx, last, MODEL)
    assert not ctx.findings
    tls = [(0, b"\x16\x03\x01\x00\xba" + rc4ish(5, 100)), (1, rc4ish(6, 90))]
    ctx, last = tcp_flow(knowledge, tls)
    SV.weigh(ctx, last, MODEL)
    assert not ctx.findings and "Skype" not in ctx.state  # refused from its TLS framing


@pytest.mark.parametrize(
    ("data", "framing"),
    [
        (b"\x16\x03\x01\x02\x00\x01", "TLS record"),
        (bytes.fromhex("8046010301002d0000001000"), "SSLv2 record"),  # skype.pcap port 443
        (b"SSH-2.0-OpenSSH_9.6\r\n", "SSH banner"),
        (b"\x13BitTorrent protocol" + bytes(48), "BitTorrent handshake"),
        (b"GET / HTTP/1.1\r\n", "text"),
        (b"\x00\x0c" + bytes(12), "length prefix"),
        (rc4ish(7, 60), None),
    ],
)
def test_tcp_framing(data, framing):
    if framing is None and tcp_framing(data) is not None:
        pytest.skip("the random stand-in happened to look framed")
    assert tcp_framing(data) == framing


def skypeout_flow(port: int = 12340) -> tuple:
    conn = bytes.fromhex("5a17c0de")
    flow = [(k % 2, conn + rc4ish(100 + k, 25)) for k in range(24)]
    ctx = context(UDP, ("192.168.1.34", 40000), ("30.0.0.1", port))
    result = run(SkypeDissector(), ctx, packets(*flow))
    return ctx, result


def test_skypeout_by_port_conn_id_and_e2o():
    ctx, _ = skypeout_flow()
    SV.weigh(ctx, T0, MODEL)
    top = max(ctx.findings, key=lambda f: f.confidence)
    assert (top.category, top.media, top.confidence) == (MEDIA, "audio", SV.SKYPEOUT_CONFIDENCE)
    assert top.evidence.startswith("skypeout: udp/12340 conn-id 0x5a17c0de")
    assert "E2O csc chi2" in top.evidence


def test_skypeout_needs_the_port_or_a_gateway():
    ctx, _ = skypeout_flow(port=12341)  # a constant 4-byte id alone is QUIC, WireGuard, ...
    SV.weigh(ctx, T0, MODEL)
    assert all(f.confidence < 0.5 for f in ctx.findings)


def test_e2e_split_written_for_som_flows():
    ctx = context(UDP, CLIENT, ("20.0.0.1", 30000))
    flow = [(k % 2, som(k, 0x0D, 60)) for k in range(12)]
    run(SkypeDissector(), ctx, packets(*flow))
    evidence = ["Skype: ..."]
    SV.split(ctx, evidence, MODEL)
    assert evidence[1].startswith("skype-e2e: peer-to-peer voice")


def test_arbiter_gives_tcp_verdict_and_split():
    from voipscope.classify.arbiter import Arbiter
    from voipscope.flows import kernels as K

    knowledge = Knowledge()
    udp_som_flows(knowledge, 8, T0)
    ctx, last = tcp_flow(knowledge, SKYPE_TCP, t0=T0 + 10_000_000_000)
    row = np.zeros(K.NF, np.int64)
    row[K.F_LAST_NS] = last
    v = Arbiter(knowledge).judge(ctx, row)
    assert (v.category, v.protocol, v.app) == (SIGNALING, "Skype", "Skype")
    assert v.evidence[0].startswith("Skype: skype-tcp: random from byte 0")
    assert v.evidence[1].startswith("skype-e2e: TCP")


def test_hosts_table_lives_in_knowledge():
    knowledge = Knowledge()
    udp_som_flows(knowledge, 8, T0)
    host = knowledge.table(NAME, SkypeHosts).host("192.168.1.34")
    assert host is not None and host.node_since_ns == T0 + 7_000_000
    assert host.peer_count == 8 and "8 of 8 flows" in host.how
