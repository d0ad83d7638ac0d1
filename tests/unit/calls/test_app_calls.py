"""App calls grouped from flow records: one user's media flows of one app within the
join gap are one call; signalling joins but never makes a call."""

from __future__ import annotations

from typing import Any

import pytest

from tests import pcapbuild as pb
from tests.unit.calls.test_rtcp_reports import receiver_report
from tests.unit.quality.rtp_support import FRAME_MS, PCMU_TICKS, A, B, rtp, udp_at
from voipscope.api import iter_calls
from voipscope.calls.app_calls import (
    ANSWERED_MIN_PACKETS,
    JOIN_GAP_S,
    AppCallGrouper,
    is_app_call_flow,
    user_address,
)

TELEGRAM_RELAY = "91.108.8.7"  # in Telegram's published ranges (classify/data/app_networks.csv)
PEER = "203.0.113.9"  # TEST-NET-3: in no published range


def flow(flow_id: int, first: float, last: float, *, app: str | None = "Telegram",
         category: str = "voip-media", src: str = "192.168.1.77", dst: str = TELEGRAM_RELAY,
         fwd: int = 100, rev: int = 100, **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "flow_id": flow_id, "capture": "x.pcap", "category": category, "protocol": "Telegram",
        "app": app, "media": "audio" if category == "voip-media" else None, "call_id": None,
        "src_ip": src, "src_port": 40000 + flow_id, "dst_ip": dst, "dst_port": 530,
        "first_seen": first, "last_seen": last, "src2dst_packets": fwd, "dst2src_packets": rev,
        **extra,
    }  # fmt: skip


def calls(flows: list[dict[str, Any]], grouper: AppCallGrouper | None = None) -> list[dict]:
    g = grouper or AppCallGrouper()
    return [*g.add(flows), *g.finish()]


def test_overlapping_media_flows_are_one_call_with_their_signalling() -> None:
    out = calls([
        flow(1, 100.0, 130.0),
        flow(2, 110.0, 160.0, dst="91.108.8.8"),
        flow(3, 95.0, 99.0, category="voip-signaling"),
    ])  # fmt: skip
    assert len(out) == 1
    call = out[0]
    assert call["kind"] == "app-call" and call["app"] == "Telegram"
    assert call["media_flows"] == [1, 2] and call["signaling_flows"] == [3]
    assert call["start"] == 95.0 and call["end"] == 160.0
    assert call["caller"] == "192.168.1.77"
    assert call["callee"] == f"{TELEGRAM_RELAY}:530, 91.108.8.8:530"
    assert call["state"] == "answered" and call["path"] == "relay"


def test_a_gap_longer_than_the_join_gap_makes_two_calls() -> None:
    out = calls([flow(1, 100.0, 130.0), flow(2, 130.0 + JOIN_GAP_S + 1, 200.0 + JOIN_GAP_S)])
    assert [c["media_flows"] for c in out] == [[1], [2]]


def test_signalling_alone_is_no_call() -> None:
    assert calls([flow(1, 100.0, 130.0, category="voip-signaling")]) == []


def test_one_way_media_is_unanswered_and_direct_path_is_named() -> None:
    (call,) = calls([flow(1, 0.0, 5.0, dst=PEER, rev=ANSWERED_MIN_PACKETS - 1)])
    assert call["state"] == "unanswered"
    assert call["path"] == "direct"
    assert any("no published range" in e for e in call["evidence"])


def test_apps_and_users_are_kept_apart() -> None:
    out = calls([
        flow(1, 0.0, 10.0),
        flow(2, 0.0, 10.0, app="WhatsApp", dst=PEER),
        flow(3, 0.0, 10.0, src="192.168.1.78"),
    ])  # fmt: skip
    assert sorted(tuple(c["media_flows"]) for c in out) == [(1,), (2,), (3,)]


def test_dialog_protocols_and_paired_media_are_left_to_the_dialog_trackers() -> None:
    assert not is_app_call_flow(flow(1, 0, 1, protocol="SIP", category="voip-signaling"))
    assert not is_app_call_flow(flow(1, 0, 1, call_id="abc@host"))
    assert not is_app_call_flow(flow(1, 0, 1, category="other"))
    assert is_app_call_flow(flow(1, 0, 1, app=None))  # media nobody could name still groups


def test_media_without_an_app_is_media_only_and_named_by_its_media_protocol() -> None:
    (call,) = calls([
        flow(1, 0.0, 10.0, app=None, protocol="RTCP"),
        flow(2, 0.1, 10.0, app=None, protocol="SRTP"),
    ])  # fmt: skip
    assert (call["kind"], call["app"], call["protocol"]) == ("media-only", None, "SRTP")
    assert call["call_id"] == "media-only:192.168.1.77:0.000000"  # not ":192.168..."


def test_user_is_the_local_end() -> None:
    assert user_address(flow(1, 0, 1, src=TELEGRAM_RELAY, dst="10.0.0.5")) == "10.0.0.5"
    assert user_address(flow(1, 0, 1)) == "192.168.1.77"


def test_streaming_hands_out_calls_once_the_clock_passed_the_gap() -> None:
    g = AppCallGrouper()
    assert list(g.add([flow(1, 0.0, 10.0)])) == []
    out = list(g.add([flow(2, 100.0, 10.0 + JOIN_GAP_S + 100.0)]))
    assert [c["media_flows"] for c in out] == [[1]]
    assert [c["media_flows"] for c in g.finish()] == [[2]]


def test_open_calls_are_bounded() -> None:
    g = AppCallGrouper(max_open=2)
    out = calls([flow(i, 0.0, 1.0, src=f"10.0.0.{i}") for i in range(1, 5)], g)
    assert len(out) == 2 and g.overflowed == 2


def test_waiting_signalling_keeps_no_flow_records() -> None:
    """App signalling waits hours for media; what waits must not be the whole records
    (evidence and all), or a calls run's memory grows with the capture: 2,000 waiting
    signalling flows of 2,000 users, each record carrying 20 kB of evidence, must cost the
    grouper far less than the records do."""
    import gc
    import tracemalloc

    grouper = AppCallGrouper()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(2000):
            record = flow(k, 100.0 + k, 101.0 + k, category="voip-signaling",
                          src=f"10.0.{k // 250}.{k % 250}", evidence=["x" * 20_000])  # fmt: skip
            list(grouper.add([record]))
            del record
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 2_000_000, f"{held} bytes held for 2,000 waiting signalling flows"
    # And they still join the call of their user that comes later.
    out = [*grouper.add([flow(9000, 150.0, 170.0, src="10.0.0.40")]), *grouper.finish()]
    assert [c["signaling_flows"] for c in out] == [[40]]


@pytest.mark.parametrize("back", ["consent checks", "rtp", "rtcp"])
def test_a_udp_call_is_answered_by_media_both_ways_not_by_consent_checks(write_pcap, back):
    """Without signalling, "answered" means the media session ran both ways: RTP, or
    RTCP reports on what an endpoint receives (muted, it still reports). ICE consent
    checks (a STUN Binding each way every few seconds, RFC 7675) beside one-way RTP are
    no media the other way, however many there are."""
    packets = [udp_at(k * FRAME_MS, rtp(k + 1, k * PCMU_TICKS)) for k in range(100)]
    if back == "rtp":
        packets += [
            udp_at(k * FRAME_MS + 3, rtp(k + 1, k * PCMU_TICKS, ssrc=0x99), src=B, dst=A)
            for k in range(100)
        ]
    elif back == "rtcp":
        packets += [
            udp_at(k * 150 + 5, receiver_report(0x99, 0x1234, 0, 0, 0, 0, 0), src=B, dst=A)
            for k in range(ANSWERED_MIN_PACKETS)
        ]
    for k in range(ANSWERED_MIN_PACKETS + 2):  # every 150 ms: as many as the rule asks
        packets.append(udp_at(k * 150 + 7, pb.stun(pb.STUN_BINDING_REQUEST, k)))
        packets.append(udp_at(k * 150 + 8, pb.stun(pb.STUN_BINDING_SUCCESS, k), src=B, dst=A))
    packets.sort(key=lambda p: p.ts_ns)
    out = [c for c in iter_calls(write_pcap(packets)) if c["streams"]]
    assert len(out) == 1, out
    assert len(out[0]["streams"]) == (2 if back == "rtp" else 1)
    want = "unanswered" if back == "consent checks" else "answered"
    assert out[0]["state"] == want, out[0]["evidence"]
