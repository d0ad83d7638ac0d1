"""T.38 over UDPTL (ITU-T T.38 §9.1, Annex A aligned PER): datagrams built from the
ASN.1, every truncation, and the dissector's rule that T.38 is only ever confirmed on
an address signalling announced as T.38."""

from __future__ import annotations

import pytest

from tests import pcapbuild as pb
from tests.dissectdrive import context, packets, prefix_sweep, run
from voipscope.dissect.base import MEDIA, Probe
from voipscope.dissect.knowledge import Expectation, Knowledge
from voipscope.dissect.udptl import UdptlDissector, parse_udptl
from voipscope.errors import Malformed, Truncated
from voipscope.pipeline import FlowPipeline

T38 = UdptlDissector()
CNG = bytes([0x02])  # IFP: T.30 indicator 1 (cng), no data field
V21_DATA = bytes([0xC0, 0x01, 0x80, 0x00, 0x02, 0xFF, 0x13, 0x00])  # v21 data, HDLC field


def udptl(seq: int, primary: bytes, redundant: tuple[bytes, ...] = ()) -> bytes:
    out = seq.to_bytes(2, "big") + bytes([len(primary)]) + primary
    out += b"\x00" + bytes([len(redundant)])  # secondary-ifp-packets, count
    for ifp in redundant:
        out += bytes([len(ifp)]) + ifp
    return out


def test_indicator_and_data_with_redundancy() -> None:
    p = parse_udptl(udptl(7, CNG))
    assert (p.seq, p.message, p.indicator, p.secondary, p.fec) == (7, "cng", True, 0, False)
    p = parse_udptl(udptl(8, V21_DATA, (CNG, CNG)))
    assert (p.message, p.indicator, p.secondary) == ("v21", False, 2)
    fec = (9).to_bytes(2, "big") + b"\x01" + CNG + b"\x80\x01\x03\x01\x02"
    assert parse_udptl(fec).fec


@pytest.mark.parametrize(
    "bad",
    [
        udptl(1, b"\x82"),  # indicator with a data field
        udptl(1, b"\x03"),  # pad bit set
        udptl(1, b"\x02\x00"),  # one-octet indicator with a trailing octet
        udptl(1, b"\x5e"),  # data type 15: not a T.30 data type
        udptl(1, CNG) + b"\x00",  # junk after the error recovery
        (1).to_bytes(2, "big") + b"\xc1" + CNG,  # fragmented length in a datagram
    ],
)
def test_malformed(bad: bytes) -> None:
    with pytest.raises(Malformed):
        parse_udptl(bad)


def test_every_truncation_is_truncated_or_malformed() -> None:
    # No proper prefix of a datagram is a datagram: the error recovery ends it exactly.
    assert prefix_sweep(parse_udptl, udptl(3, V21_DATA, (CNG,))) == 0
    with pytest.raises(Truncated):
        parse_udptl(udptl(3, CNG)[:-1])


def announced(protocol: str = "T.38") -> Knowledge:
    knowledge = Knowledge()
    knowledge.expect(
        "10.0.0.2", 9999,
        Expectation(protocol, MEDIA, "SDP m=image 9999 udptl t38 in INVITE", 0,
                    1_700_000_000_000_000_000 - 10**9),
    )  # fmt: skip
    return knowledge


def test_matches_only_on_an_announced_address() -> None:
    flow = packets(udptl(0, CNG), udptl(1, CNG))
    ctx = context(knowledge=announced())
    ctx.lookup_expectation(ctx.first_ts_ns)
    result = run(T38, ctx, flow)
    assert result.matched_at == 1 and result.finding.protocol == "T.38"
    assert "IFP T.30 indicator cng" in result.finding.evidence
    # The same bytes without the announcement: never guessed.
    assert run(T38, context(), flow).verdicts == [Probe.NO]


def test_announced_but_not_udptl_is_an_anomaly() -> None:
    ctx = context(knowledge=announced())
    ctx.lookup_expectation(ctx.first_ts_ns)
    rtp = bytes([0x80, 0x08, 0, 1]) + b"\x00" * 168
    result = run(T38, ctx, packets(rtp, rtp))
    assert result.verdicts == [Probe.MAYBE, Probe.NO]
    assert ctx.anomalies.counts["t38_not_udptl"] == 1


SDP_T38 = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
    "m=image 9999 udptl t38\r\na=T38FaxVersion:0\r\n"
)
INVITE = (
    "INVITE sip:fax@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    "From: <sip:a@10.0.0.1>;tag=1\r\nTo: <sip:fax@10.0.0.2>\r\nCall-ID: fax1@10.0.0.1\r\n"
    f"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {len(SDP_T38)}\r\n"
    f"\r\n{SDP_T38}"
).encode()


def test_pipeline_names_the_announced_fax_flow(write_pcap) -> None:  # type: ignore[no-untyped-def]
    frames = [pb.udp_packet(1.0, "10.0.0.1", 5060, "10.0.0.2", 5060, INVITE)]
    frames += [
        pb.udp_packet(2.0 + k / 10, "10.0.0.1", 8000, "10.0.0.2", 9999, udptl(k, CNG))
        for k in range(5)
    ]
    rows = [r for b in FlowPipeline().run([str(write_pcap(frames))]) for r in b.to_pylist()]
    (fax,) = [r for r in rows if r["dst_port"] == 9999]
    assert (fax["category"], fax["protocol"], fax["call_id"]) == (
        "voip-media",
        "T.38",
        "fax1@10.0.0.1",
    )
    assert fax["detected_at_packet"] == 1
    assert any("UDPTL seq 0" in e for e in fax["evidence"])
