"""dissect/stage.py and the arbiter end to end on captures built byte by byte."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from tests import pcapbuild as pb
from voipscope.api import read_flows
from voipscope.config import Config
from voipscope.dissect import registry
from voipscope.dissect.base import UDP, Dissector, FlowContext, Packet, Probe
from voipscope.pipeline import FlowPipeline

A, B, GW = "10.0.0.1", "10.0.0.2", "10.0.0.9"

SDP = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")  # fmt: skip


def sip(method_line: bytes, body: bytes = b"", call_id: bytes = b"call-1@x") -> bytes:
    head = (method_line + b"\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: " + call_id +
            b"\r\nCSeq: 1 INVITE\r\n")  # fmt: skip
    if body:
        head += b"Content-Type: application/sdp\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def rtp(
    seq: int, ts: int, ssrc: int = 0x1234, pt: int = 0, payload: bytes = b"\xff" * 160
) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, ts, ssrc) + payload


def by_port(rows: list[dict], port: int) -> dict:
    return next(r for r in rows if port in (r["src_port"], r["dst_port"]))


def test_sdp_expectation_pins_rtp_at_its_first_packet(write_pcap: Callable[..., Path]) -> None:
    packets = [
        pb.udp_packet(0.0, A, 5060, B, 5060, sip(b"INVITE sip:b@x SIP/2.0")),
        pb.udp_packet(0.1, B, 5060, A, 5060, sip(b"SIP/2.0 200 OK", SDP)),
        pb.udp_packet(0.2, A, 30000, B, 40000, rtp(7, 160)),
    ]
    rows = read_flows([str(write_pcap(packets))]).to_pylist()
    media = by_port(rows, 40000)
    assert (media["category"], media["protocol"], media["media"]) == ("voip-media", "RTP", "audio")
    assert media["detected_at_packet"] == 1 and media["call_id"] == "call-1@x"
    assert any("SDP m=audio 40000" in e for e in media["evidence"])
    signalling = by_port(rows, 5060)
    assert (signalling["protocol"], signalling["detected_at_packet"]) == ("SIP", 1)


def test_rtp_without_signalling_needs_two_consecutive_packets(
    write_pcap: Callable[..., Path],
) -> None:
    one = [pb.udp_packet(0.0, A, 30000, B, 40000, rtp(1, 0))]
    two = [pb.udp_packet(i * 0.02, A, 30000, B, 40000, rtp(1 + i, 160 * i)) for i in range(3)]
    assert read_flows([str(write_pcap(one))]).to_pylist()[0]["category"] == "unknown"
    row = read_flows([str(write_pcap(two))]).to_pylist()[0]
    assert (row["protocol"], row["detected_at_packet"]) == ("RTP", 2)


def test_stun_before_rtp_does_not_use_up_the_rtp_budget(
    write_pcap: Callable[..., Path],
) -> None:
    stun = bytes.fromhex("000100002112a442") + bytes(12)  # Binding request, no attributes
    packets = [pb.udp_packet(i * 0.01, A, 50000, B, 3478, stun) for i in range(24)]
    packets += [pb.udp_packet(1 + i * 0.02, A, 50000, B, 3478, rtp(i, 960 * i, pt=111))
                for i in range(3)]  # fmt: skip
    row = read_flows([str(write_pcap(packets))]).to_pylist()[0]
    assert (row["category"], row["protocol"], row["detected_at_packet"]) == (
        "voip-media",
        "RTP",
        25,
    )
    assert any(e.startswith("STUN:") for e in row["evidence"])


def test_unrecognised_flow_stops_costing_after_the_probe_budget(
    write_pcap: Callable[..., Path],
) -> None:
    packets = [pb.udp_packet(i * 0.01, A, 1111, B, 2222, bytes([0x47, i % 256]) * 30)
               for i in range(500)]  # fmt: skip
    pipeline = FlowPipeline()
    list(pipeline.run([str(write_pcap(packets))]))
    assert pipeline.dissect is not None
    assert pipeline.dissect.packets_offered <= Config().dissect.max_probe_packets


def test_flows_sharing_a_slot_in_one_batch_are_all_dissected(
    write_pcap: Callable[..., Path],
) -> None:
    """A flow that ends by idle timeout inside a batch hands its table row to the next."""
    invite = sip(b"REGISTER sip:x SIP/2.0")
    packets = [pb.udp_packet(t, A, 5060, B, 5060, invite) for t in (0.0, 500.0, 1000.0)]
    cfg = {"idle_timeout_s": 60, "max_flows": 1}
    rows = read_flows([str(write_pcap(packets))], **cfg).to_pylist()
    assert len(rows) == 3 and all(r["protocol"] == "SIP" for r in rows)


class _Broken(Dissector):
    name = "BROKEN"
    transports: ClassVar[frozenset[int]] = frozenset({UDP})

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        raise ZeroDivisionError("boom")


def test_a_failing_dissector_is_an_anomaly_not_a_crash(
    write_pcap: Callable[..., Path], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(registry, "DISSECTORS", (_Broken(), *registry.DISSECTORS))
    import voipscope.pipeline as pl

    monkeypatch.setattr(pl, "DISSECTORS", registry.DISSECTORS)
    packets = [pb.udp_packet(0.0, A, 5060, B, 5060, sip(b"OPTIONS sip:x SIP/2.0"))]
    pipeline = FlowPipeline()
    rows = [r for b in pipeline.run([str(write_pcap(packets))]) for r in b.to_pylist()]
    assert rows[0]["protocol"] == "SIP"
    assert pipeline.stats.anomalies.counts["dissector_internal_error"] == 1


def test_identification_can_be_switched_off(write_pcap: Callable[..., Path]) -> None:
    packets = [pb.udp_packet(0.0, A, 5060, B, 5060, sip(b"OPTIONS sip:x SIP/2.0"))]
    rows = read_flows([str(write_pcap(packets))], **{"dissect.enabled": False}).to_pylist()
    assert rows[0]["category"] == "unknown" and rows[0]["evidence"] == []


def test_sip_over_tcp_split_and_coalesced(write_pcap: Callable[..., Path]) -> None:
    one = sip(b"INVITE sip:b@x SIP/2.0", SDP, b"tcp-call")
    two = sip(b"SIP/2.0 180 Ringing", b"", b"tcp-call")
    segments = [one[:30], one[30:] + two]  # the first message split, the second coalesced
    packets = [pb.tcp_packet(0.0, A, 40001, B, 5060, 0x02, seq=0)]
    packets += [pb.tcp_packet(0.1 + i / 10, A, 40001, B, 5060, 0x18, seg,
                              seq=1 + sum(map(len, segments[:i])))
                for i, seg in enumerate(segments)]  # fmt: skip
    pipeline = FlowPipeline()
    rows = [r for b in pipeline.run([str(write_pcap(packets))]) for r in b.to_pylist()]
    assert (rows[0]["protocol"], rows[0]["call_id"]) == ("SIP", "tcp-call")
    assert pipeline.stats.anomalies.counts.get("sip_malformed", 0) == 0
    assert pipeline.dissect is not None
    assert pipeline.dissect.knowledge.expected(B, 40000, 10**9) is not None


def _announced_flow_packets(seconds: float) -> list[pb.Packet]:
    """A SIP answer announcing 10.0.0.2:40000, then bytes no dissector knows sent to that
    address every 0.1 s for ``seconds``."""
    out = [
        pb.udp_packet(0.0, A, 5060, B, 5060, sip(b"INVITE sip:b@x SIP/2.0")),
        pb.udp_packet(0.1, B, 5060, A, 5060, sip(b"SIP/2.0 200 OK", SDP)),
    ]
    for k in range(int(seconds * 10)):
        out.append(pb.udp_packet(0.2 + k / 10, A, 30000, B, 40000, b"\x00\x11" * 40))
    return out


def test_announced_media_is_call_media_for_the_active_timeout(
    write_pcap: Callable[..., Path],
) -> None:
    """Signalling announced the address: call media, not cut by the ordinary active
    timeout, even though no dissector recognises its bytes."""
    path = str(write_pcap(_announced_flow_packets(12.0)))
    cfg = Config().with_value("source.batch_packets", 16)
    rows = [r for r in read_flows([path], config=cfg, active_timeout_s=5).to_pylist()
            if 40000 in (r["src_port"], r["dst_port"])]  # fmt: skip
    assert len(rows) == 1 and rows[0]["category"] == "voip-media"
    assert rows[0]["src2dst_packets"] == 120


def test_no_active_timeout_means_none_for_media_too(write_pcap: Callable[..., Path]) -> None:
    """flows.active_timeout_s=0 ("never") is never undone by the media timeout, and the
    media timeout is never shorter than the ordinary one."""
    from voipscope.config import FlowConfig
    from voipscope.flows.table import media_active_ns

    assert media_active_ns(FlowConfig(active_timeout_s=0)) == 0
    assert media_active_ns(FlowConfig(media_active_timeout_s=0)) == 0
    assert media_active_ns(FlowConfig(active_timeout_s=60, media_active_timeout_s=5)) == 60 * 10**9
    path = str(write_pcap(_announced_flow_packets(12.0)))
    cfg = Config().with_value("source.batch_packets", 16)
    rows = read_flows([path], config=cfg, active_timeout_s=0, media_active_timeout_s=5)
    media = [r for r in rows.to_pylist() if 40000 in (r["src_port"], r["dst_port"])]
    assert [r["src2dst_packets"] for r in media] == [120]


class WeakMedia(Dissector):
    """Says 'maybe media' at 0.3 on every flow: below what a verdict rests on."""

    name = "WeakMedia"
    transports = frozenset({UDP})
    budget_packets = 2
    ANOMALIES: ClassVar[dict[str, str]] = {}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        from voipscope.dissect.base import MEDIA, Finding

        ctx.report(Finding("WeakMedia", MEDIA, 0.3, "a guess", pkt.seq))
        return Probe.MAYBE


def test_a_weak_media_guess_does_not_keep_a_flow_open(write_pcap: Callable[..., Path]) -> None:
    packets = [pb.udp_packet(k / 10, A, 1111, B, 2222, b"\x00" * 40) for k in range(120)]
    cfg = Config().with_value("source.batch_packets", 16)
    pipeline = FlowPipeline(cfg.with_value("flows.active_timeout_s", 5))
    assert pipeline.dissect is not None
    weak = WeakMedia()
    pipeline.dissect.by_transport[UDP] = (weak,)
    pipeline.dissect._candidates[UDP] = [((weak, None),)] * 256  # (dissector, no UDP gate)
    rows = [r for b in pipeline.run([str(write_pcap(packets))]) for r in b.to_pylist()]
    assert [r["src2dst_packets"] for r in rows] == [50, 50, 20]
