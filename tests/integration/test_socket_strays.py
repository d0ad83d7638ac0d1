"""A flow no dissector can name, on a socket a call app uses at the same time, is that
app's: its peer-to-peer candidates and media (libtgvoip's untagged packets, an app's
encrypted P2P framing) leave the socket its relay exchange uses. Media when it goes both
ways at a voice pace, else the call's connectivity checks; unknown when the app's flow
on the socket ended before it began, or when no flow of the socket names an app --
whichever flow ends first and however the packets are batched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import pcapbuild as pb
from voipscope.config import Config, SourceConfig
from voipscope.pipeline import FlowPipeline

CLIENT, PEER, TURN = "192.168.12.169", "198.51.100.20", "203.0.113.30"
CLIENT_PORT, PEER_PORT, TURN_PORT = 43068, 61156, 3478
T0_S = 1_700_000_000.0


def stun_binding(n: int) -> bytes:
    # REALM signal.org: Signal's TURN servers, the app from the bytes.
    return pb.stun(pb.STUN_BINDING_REQUEST, n, [(pb.STUN_REALM, b"signal.org")])


def opaque(n: int, size: int = 120) -> bytes:
    """Encrypted-looking bytes no dissector claims: first byte outside every RFC 7983
    range, no SoM function in byte 2, no length field, no text."""
    body = bytes((n * 131 + k * 197 + 71) % 256 for k in range(size - 3))
    return bytes([0xF7, n % 256, 0x00]) + body


def keepalives(first_s: float, last_s: float) -> list[pb.Packet]:
    return [
        pb.udp_packet(T0_S + t, CLIENT, CLIENT_PORT, TURN, TURN_PORT, stun_binding(k))
        for k, t in enumerate(range(int(first_s), int(last_s) + 1, 5))
    ]


def voice(first_s: float, seconds: float) -> list[pb.Packet]:
    out = []
    for k in range(int(seconds / 0.02)):
        t = T0_S + first_s + 0.02 * k
        out.append(pb.udp_packet(t, CLIENT, CLIENT_PORT, PEER, PEER_PORT, opaque(k)))
        out.append(pb.udp_packet(t + 0.004, PEER, PEER_PORT, CLIENT, CLIENT_PORT, opaque(k + 7)))
    return out


def checks(first_s: float) -> list[pb.Packet]:
    return [pb.udp_packet(T0_S + first_s + 0.5 * k, CLIENT, CLIENT_PORT, PEER, PEER_PORT,
                          opaque(k, 92)) for k in range(3)]  # fmt: skip


def peer_flow(tmp_path: Path, packets: list[pb.Packet], batch_packets: int = 65536) -> dict:
    path = tmp_path / "socket.pcap"
    path.write_bytes(pb.pcap(sorted(packets, key=lambda p: p.ts_ns)))
    pipeline = FlowPipeline(Config(source=SourceConfig(batch_packets=batch_packets)))
    rows = [r for batch in pipeline.run([str(path)]) for r in batch.to_pylist()]
    server = [r for r in rows if TURN in (r["src_ip"], r["dst_ip"])]
    assert all(r["app"] == "Signal" and r["category"] == "voip-signaling" for r in server)
    (flow,) = [r for r in rows if PEER in (r["src_ip"], r["dst_ip"])]
    return flow


@pytest.mark.parametrize("batch_packets", [1, 64, 65536])
@pytest.mark.parametrize(
    "server_s", [(0, 600), (0, 20)], ids=["server-flow-outlives", "server-flow-ends-first"]
)
def test_opaque_voice_on_the_apps_socket_is_the_apps_media(
    tmp_path: Path, batch_packets: int, server_s: tuple[int, int]
) -> None:
    flow = peer_flow(tmp_path, keepalives(*server_s) + voice(10, 60), batch_packets)
    assert (flow["category"], flow["protocol"], flow["app"]) == ("voip-media", "Signal", "Signal")
    assert flow["media"] == "audio" and flow["detected_at_packet"] == 6000
    assert flow["evidence"][0].startswith(
        f"Signal: socket {CLIENT}:{CLIENT_PORT} carried Signal call traffic"
    ), flow["evidence"]
    assert "50.0/50.0 per second each way: media" in flow["evidence"][0]


def test_a_few_opaque_packets_on_the_apps_socket_are_its_checks(tmp_path: Path) -> None:
    flow = peer_flow(tmp_path, keepalives(0, 600) + checks(30))
    assert (flow["category"], flow["app"]) == ("voip-signaling", "Signal")
    assert "connectivity checks" in flow["evidence"][0]


def test_the_same_bytes_after_the_apps_flow_ended_or_without_it_stay_unknown(
    tmp_path: Path,
) -> None:
    # The server flow's last packet at 20 s; the opaque flow from 200 s on.
    late = peer_flow(tmp_path, keepalives(0, 20) + voice(200, 60))
    assert (late["category"], late["app"]) == ("unknown", None), late["evidence"]
    path = tmp_path / "alone.pcap"
    path.write_bytes(pb.pcap(voice(10, 60)))
    (alone,) = [r for b in FlowPipeline().run([str(path)]) for r in b.to_pylist()]
    assert (alone["category"], alone["app"]) == ("unknown", None), alone["evidence"]


def test_telegram_peer_to_peer_legs_of_a_real_call(shared_captures: Path) -> None:
    """telegram.pcap: libtgvoip's untagged packets to the peer's LAN and public addresses
    leave the sockets its relay flows (reflector peer tags) use."""
    rows = {(r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]): r
            for b in FlowPipeline().run([str(shared_captures / "telegram.pcap")])
            for r in b.to_pylist()}  # fmt: skip
    p2p = rows[("192.168.1.77", 23174, "192.168.1.52", 31480)]
    assert (p2p["category"], p2p["app"], p2p["media"]) == ("voip-media", "Telegram", "audio")
    for port, public in ((23174, 60723), (28150, 59772)):
        probe = rows[("192.168.1.77", port, "87.11.205.195", public)]
        assert (probe["category"], probe["app"]) == ("voip-signaling", "Telegram")


def answers(first_s: float, last_s: float) -> list[pb.Packet]:
    """The server's success responses to the keepalives (RFC 8489 §6.3.1): it answers and
    never asks, so its socket is a server's, shared by all its clients."""
    return [
        pb.udp_packet(
            T0_S + t + 0.03,
            TURN,
            TURN_PORT,
            CLIENT,
            CLIENT_PORT,
            pb.stun(pb.STUN_BINDING_SUCCESS, k),
        )
        for k, t in enumerate(range(int(first_s), int(last_s) + 1, 5))
    ]


@pytest.mark.parametrize("batch_packets", [1, 65536])
@pytest.mark.parametrize("server_lasts_s", [600, 20], ids=["server-flow-live", "remembered"])
def test_another_client_on_the_servers_socket_does_not_take_the_app(
    tmp_path: Path, batch_packets: int, server_lasts_s: int
) -> None:
    """One socket, one program holds for the client's end of a flow, not for a STUN/TURN
    server's: a server that only answered requests serves the clients of every app that
    uses it. Another host's opaque voice-paced flow to the same server socket, while the
    Signal client's flow to it goes on, stays unknown; the Signal client's own opaque
    flow to a peer from its socket is still Signal's."""
    other, other_port = "192.168.12.200", 50123
    packets = keepalives(0, server_lasts_s) + answers(0, server_lasts_s) + voice(10, 5)
    for k in range(int(5 / 0.02)):
        t = T0_S + 10 + 0.02 * k
        packets.append(pb.udp_packet(t, other, other_port, TURN, TURN_PORT, opaque(k)))
        packets.append(pb.udp_packet(t + 0.004, TURN, TURN_PORT, other, other_port, opaque(k + 3)))
    path = tmp_path / "server_socket.pcap"
    path.write_bytes(pb.pcap(sorted(packets, key=lambda p: p.ts_ns)))
    pipeline = FlowPipeline(Config(source=SourceConfig(batch_packets=batch_packets)))
    rows = [r for batch in pipeline.run([str(path)]) for r in batch.to_pylist()]
    (signal,) = [r for r in rows if CLIENT in (r["src_ip"], r["dst_ip"]) and TURN in
                 (r["src_ip"], r["dst_ip"])]  # fmt: skip
    assert (signal["category"], signal["app"]) == ("voip-signaling", "Signal")
    (stranger,) = [r for r in rows if other in (r["src_ip"], r["dst_ip"])]
    assert (stranger["category"], stranger["app"]) == ("unknown", None), stranger["evidence"]
    (p2p,) = [r for r in rows if PEER in (r["src_ip"], r["dst_ip"])]
    assert (p2p["category"], p2p["app"]) == ("voip-media", "Signal"), p2p["evidence"]
