"""vlan_hopping: 802.1Q-in-802.1Q frames amid a VLAN's normal traffic are a hopping
attempt; a trunk that double-tags everything is not. A host in a voice VLAN that never
signals like a phone is named (low). Through the whole pipeline on built captures."""

from __future__ import annotations

import pytest

from tests import pcapbuild as pb
from voipscope.config import Config, SourceConfig
from voipscope.pipeline import FlowPipeline

ATTACKER, VICTIM = "10.1.1.5", "10.20.0.9"


def frame(
    t: float, src: str, sport: int, dst: str, dport: int, vlans: list[int], payload=b"x" * 40
):  # type: ignore[no-untyped-def]
    ip = pb.ipv4(pb.udp(payload, sport, dport), src, dst)
    return pb.Packet(round(t * 1e9), pb.ethernet(ip, vlans=vlans))


def alerts(write_pcap, packets, batch_packets: int = 65536) -> list[dict]:  # type: ignore[no-untyped-def]
    pipeline = FlowPipeline(Config(source=SourceConfig(batch_packets=batch_packets)))
    return [a for batch in pipeline.run_alerts(str(write_pcap(packets))) for a in batch]


@pytest.mark.parametrize("batch_packets", [1, 7, 65536])
def test_double_tags_amid_normal_traffic_are_hopping(write_pcap, batch_packets: int) -> None:  # type: ignore[no-untyped-def]
    """Whatever the batching: the trunk share is the VLAN's over the run so far (batches
    of 1 or 7 frames, as a slow live link hands out, held only the attacker's frames and
    made the VLAN a trunk)."""
    normal = [frame(1 + k * 0.01, ATTACKER, 40000 + k, "10.1.1.1", 53, [1]) for k in range(50)]
    hop = [frame(2 + k * 0.01, ATTACKER, 5555, VICTIM, 5060, [1, 20]) for k in range(3)]
    (alert,) = alerts(write_pcap, normal + hop, batch_packets)
    assert (alert["kind"], alert["severity"], alert["src_ip"]) == ("vlan-hopping", "high", ATTACKER)
    assert alert["data"] == {"outer_vlan": 1, "inner_vlan": 20}


@pytest.mark.parametrize("batch_packets", [1, 65536])
def test_a_trunk_that_double_tags_everything_is_no_attack(write_pcap, batch_packets: int) -> None:  # type: ignore[no-untyped-def]
    trunk = [frame(1 + k * 0.01, f"10.9.0.{k % 50}", 40000 + k, VICTIM, 53, [100, 20 + k % 3])
             for k in range(200)]  # fmt: skip
    assert alerts(write_pcap, trunk, batch_packets) == []


def register(phone: str) -> bytes:
    return (
        f"REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP {phone}:5060;branch=z9hG4bK{phone}\r\n"
        f"From: <sip:{phone}@pbx>;tag=1\r\nTo: <sip:{phone}@pbx>\r\nCall-ID: {phone}\r\n"
        "CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def voice_vlan(write_pcap, phones: int):  # type: ignore[no-untyped-def]
    packets = [
        frame(1 + n * 0.1, f"10.30.0.{n + 1}", 5060, "10.30.0.250", 5060, [30],
              register(f"10.30.0.{n + 1}"))
        for n in range(phones)
    ]  # fmt: skip
    packets += [
        frame(2 + k * 0.05, "10.30.0.66", 30000 + k, f"192.0.2.{k % 200}", 9000 + k, [30])
        for k in range(25)
    ]
    return alerts(write_pcap, sorted(packets, key=lambda p: p.ts_ns))


def test_a_host_in_the_voice_vlan_that_never_signals(write_pcap) -> None:  # type: ignore[no-untyped-def]
    (alert,) = voice_vlan(write_pcap, phones=3)
    assert (alert["kind"], alert["severity"], alert["src_ip"]) == (
        "voice-vlan-intruder", "low", "10.30.0.66",
    )  # fmt: skip
    assert alert["data"]["vlan"] == 30 and alert["data"]["flows"] == 25


def test_no_voice_vlan_without_phones(write_pcap) -> None:  # type: ignore[no-untyped-def]
    assert voice_vlan(write_pcap, phones=1) == []


def test_provider_qinq_is_not_hopping(write_pcap) -> None:  # type: ignore[no-untyped-def]
    normal = [frame(1 + k * 0.01, ATTACKER, 40000 + k, "10.1.1.1", 53, [1]) for k in range(50)]
    ip = pb.ipv4(pb.udp(b"x" * 40, 5555, 5060), ATTACKER, VICTIM)
    qinq = [pb.Packet(round((2 + k * 0.01) * 1e9), pb.ethernet(ip, vlans=[1, 20], qinq=True))
            for k in range(3)]  # fmt: skip
    assert alerts(write_pcap, normal + qinq) == []


def test_hopping_past_the_anomaly_logs_record_cap_is_seen(write_pcap) -> None:  # type: ignore[no-untyped-def]
    """The run's log keeps 100 records per anomaly name; the detector is told every
    one: a second attacker after 120 double-tagged conversations of the first is named."""
    normal = [frame(1 + k * 0.001, ATTACKER, 40000 + k, "10.1.1.1", 53, [1]) for k in range(3000)]
    first = [frame(4 + k * 0.01, ATTACKER, 5555, f"10.20.1.{k + 1}", 5060, [1, 20])
             for k in range(120)]  # fmt: skip
    second = [frame(6, "10.1.1.77", 5555, VICTIM, 5060, [1, 20])]
    found = alerts(write_pcap, normal + first + second)
    assert {a["src_ip"] for a in found if a["kind"] == "vlan-hopping"} == {ATTACKER, "10.1.1.77"}
