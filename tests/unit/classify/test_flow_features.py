"""Verdicts from flow counters (classify/flow_features.py): what pacing and sizes can say
and, as much, what they must not."""

from __future__ import annotations

from voipscope.classify import flow_features as ff

T0_NS = 1_700_000_000 * 10**9


def counters(fwd: tuple[int, int], rev: tuple[int, int], duration_s: float = 10.0,
             proto: int = 17, ports: tuple[int, int] = (40000, 50000),
             dst_ip: str = "192.0.2.20", sampled: bool = False) -> ff.FlowCounters:  # fmt: skip
    """(packets, bytes) each way over ``duration_s``."""
    last = T0_NS + int(duration_s * 1e9)
    return ff.FlowCounters(
        proto=proto, src_ip="10.0.0.1", src_port=ports[0], dst_ip=dst_ip, dst_port=ports[1],
        first_ns=T0_NS, last_ns=last,
        fwd=ff.Direction(fwd[0], fwd[1], T0_NS, last) if fwd[0] else ff.Direction(0, 0),
        rev=ff.Direction(rev[0], rev[1], T0_NS, last) if rev[0] else ff.Direction(0, 0),
        sampled=sampled,
    )  # fmt: skip


def g711_each_way(seconds: float = 10.0) -> ff.FlowCounters:
    packets = int(50 * seconds) + 1  # 20 ms framing: 50 packets a second
    return counters((packets, packets * 200), (packets, packets * 200), seconds)


def test_voice_both_ways_is_audio_media_without_a_protocol() -> None:
    v = ff.judge(g711_each_way())
    assert (v.category, v.media, v.protocol) == ("voip-media", "audio", None)
    assert v.confidence == ff.BOTH_WAYS_CONFIDENCE < 0.8  # below any byte evidence
    assert v.evidence[0].startswith("voice-like pacing in both directions")


def test_every_standard_framing_is_voice_like() -> None:
    for frame_ms in (10, 20, 30, 60):
        per_s = 1000 / frame_ms
        n = int(per_s * 30) + 1
        v = ff.judge(counters((n, n * 120), (n, n * 120), 30.0))
        assert v.category == "voip-media", frame_ms


def test_one_way_voice_is_weaker_and_rtcp_neighbour_raises_it() -> None:
    one_way = counters((501, 501 * 172), (0, 0))
    alone = ff.judge(one_way)
    assert alone.category == "voip-media" and alone.confidence == ff.ONE_WAY_CONFIDENCE
    rtcp = counters((2, 200), (2, 180), ports=(40001, 50001))
    paired = ff.judge(one_way, rtcp_neighbour=rtcp)
    assert paired.confidence > alone.confidence
    assert any("ports + 1" in e for e in paired.evidence)


def test_rtcp_like_flow_beside_voice() -> None:
    rtcp = counters((3, 300), (3, 280), ports=(40001, 50001))
    v = ff.judge(rtcp, rtp_neighbour=g711_each_way())
    assert (v.category, v.media) == ("voip-media", None)
    assert ff.judge(rtcp).category == "unknown"  # alone it says nothing


def test_too_fast_too_slow_too_large_or_too_few_is_not_voice() -> None:
    assert ff.judge(counters((5001, 5001 * 200), (5001, 5001 * 200))).category == "unknown"
    assert ff.judge(counters((51, 51 * 200), (51, 51 * 200))).category == "unknown"  # 5/s
    assert ff.judge(counters((501, 501 * 40), (501, 501 * 40))).category == "unknown"
    assert ff.judge(counters((5, 1000), (5, 1000), 0.1)).category == "unknown"
    assert ff.judge(counters((501, 501 * 200), (501, 501 * 200), proto=6)).category == "unknown"


def test_video_is_large_packets_at_media_rates_with_media_back() -> None:
    v = ff.judge(counters((3001, 3001 * 1100), (501, 501 * 150)))
    assert (v.category, v.media) == ("voip-media", "video")
    # A download with acks coming back is not a call.
    assert ff.judge(counters((3001, 3001 * 1100), (30, 30 * 52))).category == "unknown"


def test_other_only_where_counters_prove_it() -> None:
    bulk = ff.judge(counters((3000, 4_300_000), (1500, 78_000), proto=6, ports=(50000, 443)))
    assert bulk.category == "other"
    dns = ff.judge(counters((1, 70), (1, 180), 0.01, ports=(50000, 53)))
    assert dns.category == "other"
    # Three packets back, or an answer too large for plain DNS: not provably DNS.
    assert ff.judge(counters((1, 70), (3, 900), 0.01, ports=(50000, 53))).category == "unknown"
    assert ff.judge(counters((1, 70), (1, 1400), 0.01, ports=(50000, 53))).category == "unknown"


def test_signalling_ports_are_evidence_not_verdicts() -> None:
    v = ff.judge(counters((12, 7000), (10, 5000), 60.0, ports=(5060, 5060)))
    assert (v.category, v.confidence) == ("unknown", 0.0)
    assert any("5060/udp is SIP's well-known port" in e for e in v.evidence)
    assert any("IAX2" in e for e in ff.judge(counters((1, 60), (0, 0), ports=(1, 4569))).evidence)


def test_app_from_published_ranges_on_media() -> None:
    n = 501
    zoom = counters((n, n * 180), (n, n * 180), dst_ip="3.7.35.10")
    v = ff.judge(zoom)
    assert v.app == "Zoom"
    assert any("published range 3.7.35.0/25" in e for e in v.evidence)
    slow = counters((3, 300), (3, 300), dst_ip="3.7.35.10")
    assert ff.judge(slow).app is None  # only media flows are attributed


def test_sampled_counters_lower_confidence() -> None:
    n = 501
    v = ff.judge(counters((n, n * 200), (n, n * 200), sampled=True))
    assert v.confidence < ff.BOTH_WAYS_CONFIDENCE
    assert any("sampled" in e for e in v.evidence)
