"""One ICE agent, one socket: a flow with no app of its own takes the app another flow
of the same UDP socket shows -- whichever of the two ends first.

A peer-to-peer call's media goes from the client's socket to the peer; from the same
socket the app keeps its STUN/TURN exchange with its server (here: REALM signal.org,
Signal's TURN servers). The keepalives outlive the media, so the media flow ends (idle
timeout) while the server flow is still open; it must get the app all the same, and in
the other order too (the server flow ends first and is remembered)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests import pcapbuild as pb
from voipscope.config import Config, SourceConfig
from voipscope.pipeline import FlowPipeline

CLIENT, PEER, TURN = "192.168.12.169", "198.51.100.20", "203.0.113.30"
CLIENT_PORT, PEER_PORT, TURN_PORT = 43068, 61156, 3478
T0_S = 1_700_000_000.0


def stun_binding(n: int, realm: bytes = b"signal.org") -> bytes:
    return pb.stun(pb.STUN_BINDING_REQUEST, n, [(pb.STUN_REALM, realm)])


def rtp(seq: int) -> bytes:
    # RFC 3550 §5.1: V=2, PT 111 (dynamic, Opus), 20 ms at 48 kHz; the payload is opaque.
    return struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 0x5EED) + bytes(range(60))


def packets(server_lasts_s: float, media_lasts_s: float) -> list[pb.Packet]:
    out = []
    for k in range(int(server_lasts_s / 5) + 1):  # keepalives every 5 s
        out.append(pb.udp_packet(T0_S + 5 * k, CLIENT, CLIENT_PORT, TURN, TURN_PORT,
                                 stun_binding(k)))  # fmt: skip
    for k in range(int(media_lasts_s / 0.02)):
        t = T0_S + 1 + 0.02 * k
        out.append(pb.udp_packet(t, CLIENT, CLIENT_PORT, PEER, PEER_PORT, rtp(k)))
        out.append(pb.udp_packet(t + 0.005, PEER, PEER_PORT, CLIENT, CLIENT_PORT, rtp(k)))
    out.sort(key=lambda p: p.ts_ns)
    return out


def media_flow(path: Path, batch_packets: int) -> dict:
    pipeline = FlowPipeline(Config(source=SourceConfig(batch_packets=batch_packets)))
    rows = [r for batch in pipeline.run([str(path)]) for r in batch.to_pylist()]
    server = [r for r in rows if TURN in (r["src_ip"], r["dst_ip"])]
    assert server and all(r["app"] == "Signal" for r in server), server
    (media,) = [r for r in rows if PEER in (r["src_ip"], r["dst_ip"])]
    assert media["category"] == "voip-media" and media["protocol"] == "RTP"
    return media


@pytest.mark.parametrize("batch_packets", [1, 64, 65536])
def test_media_ending_while_the_servers_flow_goes_on_gets_its_app(
    tmp_path: Path, batch_packets: int
) -> None:
    # Media for 10 s; keepalives for 600 s: the media flow ends by idle timeout (120 s)
    # about 480 s before the server flow does.
    path = tmp_path / "media_first.pcap"
    path.write_bytes(pb.pcap(packets(server_lasts_s=600, media_lasts_s=10)))
    media = media_flow(path, batch_packets)
    assert media["end_reason"] == "idle"
    assert media["app"] == "Signal", media["evidence"]
    assert any("also carries Signal" in e for e in media["evidence"]), media["evidence"]


def test_media_outliving_the_servers_flow_gets_its_app(tmp_path: Path) -> None:
    path = tmp_path / "server_first.pcap"
    path.write_bytes(pb.pcap(packets(server_lasts_s=5, media_lasts_s=400)))
    media = media_flow(path, 65536)
    assert media["app"] == "Signal" and any("also carried" in e for e in media["evidence"])


@pytest.mark.parametrize("batch_packets", [1, 65536])
@pytest.mark.parametrize("server_lasts_s", [600, 40])
def test_an_app_the_other_flow_shows_only_after_the_media_is_not_used(
    tmp_path: Path, batch_packets: int, server_lasts_s: float
) -> None:
    """As of the media's last packet (11 s): the server flow names Signal from 30 s on,
    before the media flow is let go (idle, 131 s) but after its last packet. The verdict
    must not depend on whether the batch that ended the media held those packets, nor on
    whether the server flow ended in the same batch (keepalives until 40 s: both flows
    end idle within one batch of 65,536 packets; a later packet moves the clock on)."""
    rewritten = []
    later = pb.udp_packet(T0_S + 900, "192.0.2.50", 5000, "192.0.2.51", 5001)
    for p in [*packets(server_lasts_s=server_lasts_s, media_lasts_s=10), later]:
        if p.ts_ns < (T0_S + 30) * 1e9:
            p = pb.Packet(p.ts_ns, p.data.replace(b"signal.org", b"example.nt"))  # no app
        rewritten.append(p)
    path = tmp_path / "late_name.pcap"
    path.write_bytes(pb.pcap(rewritten))
    pipeline = FlowPipeline(Config(source=SourceConfig(batch_packets=batch_packets)))
    rows = [r for batch in pipeline.run([str(path)]) for r in batch.to_pylist()]
    (server,) = [r for r in rows if TURN in (r["src_ip"], r["dst_ip"])]
    (media,) = [r for r in rows if PEER in (r["src_ip"], r["dst_ip"])]
    assert server["app"] == "Signal" and server["end_reason"] == "idle"  # it named it, later
    assert media["end_reason"] == "idle" and media["app"] is None, media["evidence"]
