"""skype-supernode: a host that serves strangers on the classic Skype overlay — as a
supernode (many peers open Skype flows to it) or as a relay (voice in from one party and
out to another) — raises a low alert with ``data.role``; an ordinary client, its own call,
its host-cache probing and calls at different times raise nothing. Through the whole
pipeline (the real Skype dissector, classify, detect) on captures built datagram by
datagram with the Start-of-Message header classic Skype sends (``dissect/skype.py``)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests import pcapbuild as pb
from voipscope.detect.alerts import AlertBook
from voipscope.detect.config import DetectConfig, with_detect_value
from voipscope.detect.skype_supernode import (
    KIND,
    SkypeSupernodeConfig,
    SkypeSupernodeDetector,
)
from voipscope.pipeline import FlowPipeline

T0 = 1_700_000_000.0
PAYLOAD, AUDIO = 0x02, 0x0D  # SoM functions (Tstat skype.c, Wireshark packet-skype.c)
FRAME_S = 0.03  # 30 ms frames: iSAC's (one of the codecs classic Skype used)
SKYPE_PORT = 33033


def som(rng: random.Random, function: int, size: int) -> bytes:
    """A classic Skype datagram: random 2-byte ID, the function in the 0x8F bits of byte
    2 (the other bits random, as the obfuscation leaves them), then RC4-random bytes —
    for function 0x02 those are the IV (4), CRC (4) and the encrypted payload."""
    body = rng.randbytes(size)
    return body[:2] + bytes([function | (body[2] & 0x70)]) + body[3:]


def exchange(
    rng: random.Random, t0: float, opener: tuple[str, int], other: tuple[str, int], n: int = 3
) -> list[pb.Packet]:
    """Signalling: ``opener`` sends the first payload datagram, the other side answers."""
    out = []
    for k in range(n):
        t = t0 + k * 0.2
        out.append(pb.udp_packet(t, *opener, *other, som(rng, PAYLOAD, rng.randint(30, 120))))
        out.append(pb.udp_packet(t + 0.05, *other, *opener, som(rng, PAYLOAD, rng.randint(30, 90))))
    return out


def voice(
    rng: random.Random,
    t0: float,
    duration_s: float,
    caller: tuple[str, int],
    callee: tuple[str, int],
    frame_s: float = FRAME_S,
) -> tuple[list[pb.Packet], list[int], list[int]]:
    """A two-way voice flow of 0x0D datagrams every ``frame_s``; the caller sends first.
    Returns the packets and each direction's payload sizes (for a relay to copy)."""
    frames = int(duration_s / frame_s)
    up = [rng.randint(60, 110) for _ in range(frames)]
    down = [rng.randint(60, 110) for _ in range(frames)]
    packets = []
    for k in range(frames):
        t = t0 + k * frame_s
        packets.append(pb.udp_packet(t, *caller, *callee, som(rng, AUDIO, up[k])))
        packets.append(pb.udp_packet(t + 0.011, *callee, *caller, som(rng, AUDIO, down[k])))
    return packets, up, down


def relayed_call(
    rng: random.Random,
    t0: float,
    duration_s: float,
    a: tuple[str, int],
    relay: tuple[str, int],
    b: tuple[str, int],
) -> list[pb.Packet]:
    """A and B both connect to the relay (Kho et al. 2008); every datagram from one is
    forwarded, re-obfuscated but of the same size, to the other a few ms later."""
    frames = int(duration_s / FRAME_S)
    # Both parties reach the relay before the media starts: each opens its own leg.
    packets = [
        pb.udp_packet(t0 - 1.0, *a, *relay, som(rng, PAYLOAD, 80)),
        pb.udp_packet(t0 - 0.9, *b, *relay, som(rng, PAYLOAD, 80)),
    ]
    for k in range(frames):
        t = t0 + k * FRAME_S
        a_size, b_size = rng.randint(60, 110), rng.randint(60, 110)
        packets.append(pb.udp_packet(t, *a, *relay, som(rng, AUDIO, a_size)))
        packets.append(pb.udp_packet(t + 0.004, *relay, *b, som(rng, AUDIO, a_size)))
        packets.append(pb.udp_packet(t + 0.013, *b, *relay, som(rng, AUDIO, b_size)))
        packets.append(pb.udp_packet(t + 0.017, *relay, *a, som(rng, AUDIO, b_size)))
    return packets


def run(write_pcap, packets: list[pb.Packet]) -> tuple[list[dict], list[dict]]:  # type: ignore[no-untyped-def]
    path: Path = write_pcap(sorted(packets, key=lambda p: p.ts_ns))
    flows: list[dict] = []
    alerts: list[dict] = []
    for kind, records in FlowPipeline().run_all(str(path)):
        if kind == "flows":
            flows.extend(records.to_pylist())  # type: ignore[union-attr]
        elif kind == "alerts":
            alerts.extend(records)  # type: ignore[arg-type]
    return flows, alerts


def skype_alerts(alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if a["kind"] == KIND]


# -- (a) an ordinary client with its own call ------------------------------------------------


def test_a_client_with_its_own_call_raises_nothing(write_pcap) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(1)
    client, peer = ("10.1.0.5", 40000), ("198.51.100.7", SKYPE_PORT)
    packets, _, _ = voice(rng, T0, 20.0, client, peer)
    for i in range(10):  # its host-cache probes before the call
        packets += exchange(rng, T0 - 30 + i, client, (f"198.51.100.{100 + i}", SKYPE_PORT))
    flows, alerts = run(write_pcap, packets)
    (call,) = [f for f in flows if f["dst_ip"] == peer[0]]
    # The built call is what the real dissector calls Skype voice.
    assert (call["protocol"], call["category"], call["media"]) == ("Skype", "voip-media", "audio")
    assert skype_alerts(alerts) == []


# -- (b) a supernode ---------------------------------------------------------------------------


def test_many_peers_opening_skype_flows_make_a_supernode(write_pcap) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(2)
    node = ("203.0.113.10", SKYPE_PORT)
    packets = []
    for i in range(25):
        peer = (f"198.51.100.{i + 1}", 20000 + i)
        packets += exchange(rng, T0 + i * 2.0, peer, node)
    for i in range(5):  # an SN also talks to other SNs itself
        packets += exchange(rng, T0 + 60 + i, node, (f"192.0.2.{i + 1}", SKYPE_PORT))
    flows, alerts = run(write_pcap, packets)
    assert sum(f["protocol"] == "Skype" for f in flows) == 30
    (alert,) = skype_alerts(alerts)
    assert alert["severity"] == "low"
    assert alert["src_ip"] == node[0] and alert["dst_ip"] is None
    data = alert["data"]
    assert data["role"] == "supernode"
    assert data["inbound_peers"] == 25 and data["outbound_peers"] == 5
    assert data["inbound_udp_flows"] == 25 and data["host_ports"] == [SKYPE_PORT]
    assert 0.5 <= data["confidence"] <= 0.9
    assert alert["count"] == 25
    assert alert["ts"] == pytest.approx(T0)
    assert "25 distinct peers opened classic-Skype flows" in alert["evidence"][0]


def test_supernode_threshold_is_a_config_field(write_pcap) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    node = ("203.0.113.11", SKYPE_PORT)
    packets = []
    for i in range(8):
        packets += exchange(rng, T0 + i, (f"198.51.100.{i + 1}", 20000 + i), node)
    path = write_pcap(sorted(packets, key=lambda p: p.ts_ns))
    assert skype_alerts([a for b in FlowPipeline().run_alerts(str(path)) for a in b]) == []
    cfg = with_detect_value(DetectConfig(), "detect.skype_supernode.min_inbound_peers", "8")
    alerts = [a for b in FlowPipeline().run_alerts(str(path), detect_config=cfg) for a in b]
    (alert,) = skype_alerts(alerts)
    assert alert["data"]["role"] == "supernode" and alert["data"]["inbound_peers"] == 8


# -- (c) a relay -------------------------------------------------------------------------------


def test_voice_in_from_one_peer_and_out_to_another_is_a_relay(write_pcap) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(4)
    a, relay, b = ("198.51.100.50", 1111), ("203.0.113.20", SKYPE_PORT), ("192.0.2.60", 2222)
    flows, alerts = run(write_pcap, relayed_call(rng, T0, 20.0, a, relay, b))
    legs = [f for f in flows if f["media"] == "audio"]
    assert len(legs) == 2 and all(f["dst_ip"] == relay[0] for f in legs)
    (alert,) = skype_alerts(alerts)
    assert (alert["severity"], alert["src_ip"], alert["dst_ip"]) == ("low", relay[0], None)
    data = alert["data"]
    assert data["role"] == "relay" and data["voice_peers"] == 2
    (pair,) = data["pairs"]
    assert {pair["a_ip"], pair["b_ip"]} == {a[0], b[0]}
    assert pair["overlap_s"] > 19.0 and pair["sizes_match"] is True
    assert pair["a_to_host_pps"] == pytest.approx(pair["host_to_b_pps"], rel=0.02)
    assert pair["b_to_host_pps"] == pytest.approx(pair["host_to_a_pps"], rel=0.02)
    assert pair["a_to_host_pps"] == pytest.approx(1 / FRAME_S, rel=0.1)
    assert data["confidence"] == pytest.approx(0.7)
    assert any("both legs opened by the peers" in e for e in alert["evidence"])
    assert sum("voice leg" in e for e in alert["evidence"]) == 2


# -- (d) negatives -----------------------------------------------------------------------------


def test_a_busy_client_probing_many_peers_is_no_supernode(write_pcap) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    client = ("10.1.0.9", 5000)
    packets = []
    for i in range(60):  # host-cache probing (skype.pcap's client: 172 peers in 3 min)
        packets += exchange(rng, T0 + i * 0.5, client, (f"198.51.{100 + i // 200}.{i + 1}", 33033))
    flows, alerts = run(write_pcap, packets)
    # Every one is Skype: an RC4 datagram that happens to read as RTP v2 beside the SoM
    # headers is not media (rtp.NEVER_RTP_BESIDE).
    assert [f["protocol"] for f in flows].count("Skype") == 60, [f["protocol"] for f in flows]
    assert skype_alerts(alerts) == []


def test_two_calls_at_different_times_are_no_relay(write_pcap) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(6)
    host = ("203.0.113.30", SKYPE_PORT)
    first, _, _ = voice(rng, T0, 20.0, ("198.51.100.70", 3000), host)
    second, _, _ = voice(rng, T0 + 60, 20.0, ("192.0.2.71", 3001), host)
    flows, alerts = run(write_pcap, first + second)
    assert sum(f["media"] == "audio" for f in flows) == 2
    assert skype_alerts(alerts) == []


def test_calls_the_host_placed_itself_are_no_relay(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """A conference host calls both parties at once (Baset & Schulzrinne: the host
    mixes): same times and rates, but the host opened both legs — its own conversation."""
    rng = random.Random(7)
    host = ("203.0.113.31", SKYPE_PORT)
    one, _, _ = voice(rng, T0, 20.0, host, ("198.51.100.80", 3000))
    two, _, _ = voice(rng, T0 + 0.5, 20.0, host, ("192.0.2.81", 3001))
    _, alerts = run(write_pcap, one + two)
    assert skype_alerts(alerts) == []
    # Who opened the legs is what keeps it silent: without that rule it pairs.
    path = write_pcap(sorted(one + two, key=lambda p: p.ts_ns))
    cfg = with_detect_value(DetectConfig(), "detect.skype_supernode.require_inbound_legs", "no")
    alerts = [a for b in FlowPipeline().run_alerts(str(path), detect_config=cfg) for a in b]
    (alert,) = skype_alerts(alerts)
    assert alert["data"]["role"] == "relay"
    assert any("the host opened a leg" in e for e in alert["evidence"])


def test_concurrent_calls_at_different_rates_are_no_relay(write_pcap) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(8)
    host = ("203.0.113.32", SKYPE_PORT)
    one, _, _ = voice(rng, T0, 20.0, ("198.51.100.90", 3000), host, frame_s=0.03)
    two, _, _ = voice(rng, T0 + 0.5, 20.0, ("192.0.2.91", 3001), host, frame_s=0.02)
    _, alerts = run(write_pcap, one + two)
    assert skype_alerts(alerts) == []


# -- bounds and bad records --------------------------------------------------------------------


def leg(flow_id: int, src: str, dst: str, t0: float, pps: float = 33.0) -> dict:
    packets = int(pps * 20)
    return {
        "flow_id": flow_id, "proto": "udp", "protocol": "Skype", "media": "audio",
        "category": "voip-media", "src_ip": src, "src_port": 1000 + flow_id % 5000,
        "dst_ip": dst, "dst_port": SKYPE_PORT, "first_seen": t0, "last_seen": t0 + 20.0,
        "src2dst_packets": packets, "dst2src_packets": packets,
        "src2dst_bytes": packets * 100, "dst2src_bytes": packets * 100,
    }  # fmt: skip


def test_state_stays_bounded_with_many_hosts_and_peers() -> None:
    cfg = SkypeSupernodeConfig(
        min_inbound_peers=5, max_hosts=64, max_peers_per_host=16, max_legs_per_host=4
    )
    book = AlertBook(max_open=16)
    detector = SkypeSupernodeDetector(book, cfg)
    for i in range(5000):
        src = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        dst = f"203.0.113.{i % 3}"  # three hosts contacted by thousands of peers
        detector.on_flow(leg(i, src, dst, T0 + i * 0.01))
    for name, (size, cap) in detector.state_sizes().items():
        assert size <= cap, (name, size, cap)
    assert detector.overflow > 0
    assert len(book._open) <= 16
    # The three hosts crossed both rules (every leg matches every other here).
    roles = {a.data["role"] for a in book.finish()}
    assert roles == {"supernode", "relay"}


GARBAGE: list[dict] = [
    {},
    {"protocol": "Skype"},
    {"protocol": "Skype", "proto": "udp", "src_ip": None, "dst_ip": "1.2.3.4"},
    {"protocol": "Skype", "proto": "udp", "src_ip": "1.1.1.1", "dst_ip": "1.1.1.1",
     "src_port": 1, "dst_port": 2, "first_seen": T0, "last_seen": T0},
    {"protocol": "Skype", "proto": "tcp", "src_ip": "1.1.1.1", "dst_ip": "2.2.2.2",
     "src_port": "x", "dst_port": 2, "first_seen": T0, "last_seen": T0},
    {"protocol": "Skype", "proto": "udp", "src_ip": "1.1.1.1", "dst_ip": "2.2.2.2",
     "src_port": 1, "dst_port": 2, "first_seen": float("nan"), "last_seen": T0},
    {"protocol": "Skype", "proto": "udp", "src_ip": "1.1.1.1", "dst_ip": "2.2.2.2",
     "src_port": 1, "dst_port": 2, "first_seen": T0 + 5, "last_seen": T0},
    {**leg(1, "1.1.1.1", "2.2.2.2", T0), "src2dst_packets": -1},
    {**leg(2, "1.1.1.1", "2.2.2.2", T0), "dst2src_bytes": None},
    {**leg(3, "1.1.1.1", "2.2.2.2", T0), "last_seen": T0},  # zero duration
    {**leg(4, "1.1.1.1", "2.2.2.2", T0), "dst2src_packets": 0},
    {**leg(5, "1.1.1.1", "2.2.2.2", T0), "flow_id": "seven", "first_seen": True},
]  # fmt: skip


@pytest.mark.parametrize("record", GARBAGE)
def test_bad_records_are_ignored_without_error(record: dict) -> None:
    book = AlertBook()
    detector = SkypeSupernodeDetector(book, SkypeSupernodeConfig(min_inbound_peers=1))
    detector.on_flow(record)
    detector.on_flow(record)
    assert all(a.data["role"] == "supernode" for a in book.finish())


def test_config_keys() -> None:
    cfg = with_detect_value(DetectConfig(), "detect.skype_supernode.rate_tolerance", "0.1")
    cfg = with_detect_value(cfg, "detect.skype_supernode.require_inbound_legs", "false")
    assert cfg.skype_supernode.rate_tolerance == 0.1
    assert cfg.skype_supernode.require_inbound_legs is False
    assert "skype_supernode" in cfg.enabled
