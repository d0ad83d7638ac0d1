"""classify/behaviour*: the kernel's head and windows, slot reuse, the frame-clock
feature, the opinion the tracker gives the arbiter (head model and window model), and the
shipped models on synthetic traffic (opaque bytes, no signature)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import pcapbuild as pb
from voipscope.classify import behaviour_features as BF
from voipscope.classify import behaviour_kernel as K
from voipscope.classify.behaviour import BehaviourTracker, ScoredWindows
from voipscope.classify.behaviour_model import (
    BehaviourModels,
    constant_model,
    constant_models,
    model_from_json,
    models_from_json,
    shipped_model,
)
from voipscope.config import Config
from voipscope.pipeline import FlowPipeline

A, B = "192.0.2.10", "198.51.100.20"
T0 = 1_700_000_000


def _opaque(rng: np.random.Generator, size: int) -> bytes:
    # First byte 0x40-0x7f: outside every RFC 7983 range and no known signature.
    return bytes([0x55]) + rng.integers(0, 256, size - 1, dtype=np.uint8).tobytes()


def call_like(seconds: float = 4.0, seed: int = 1, sport: int = 41000) -> list[pb.Packet]:
    """Two-way opaque datagrams every 20 ms, 60-110 B, talk turns changing sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(seconds / 0.02)):
        t = T0 + k * 0.02
        turn = (k // 75) % 2  # a talk turn every 1.5 s
        for direction, base in ((0, 100 if turn == 0 else 60), (1, 60 if turn == 0 else 100)):
            size = int(base + rng.integers(-6, 7))
            jitter = float(rng.normal(0, 0.0007))
            if direction == 0:
                out.append(pb.udp_packet(t + 0.001 + abs(jitter), A, sport, B, 50000,
                                         _opaque(rng, size)))  # fmt: skip
            else:
                out.append(pb.udp_packet(t + 0.011 + abs(jitter), B, 50000, A, sport,
                                         _opaque(rng, size)))  # fmt: skip
    return sorted(out, key=lambda p: p.ts_ns)


def bulk_like(seconds: float = 2.0, seed: int = 2) -> list[pb.Packet]:
    """One-way 1200 B datagrams in bursts: a download, not a call."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(seconds / 0.25)):
        for j in range(30):
            t = T0 + k * 0.25 + j * 0.0002
            out.append(pb.udp_packet(t, A, 42000, B, 50001, _opaque(rng, 1200)))
    return out


def one_way(gaps_s: np.ndarray, size: int = 80, seed: int = 3) -> list[pb.Packet]:
    rng = np.random.default_rng(seed)
    times = T0 + np.cumsum(gaps_s)
    return [pb.udp_packet(float(t), A, 43000, B, 50002, _opaque(rng, size)) for t in times]


def _pipeline(tmp_path, packets: list[pb.Packet]) -> tuple[FlowPipeline, str]:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.pcap"
    path.write_bytes(pb.pcap(packets))
    return FlowPipeline(Config.from_overrides({"dissect.behaviour": True})), str(path)


def run(tmp_path, packets: list[pb.Packet]) -> list[dict]:  # type: ignore[no-untyped-def]
    pipeline, path = _pipeline(tmp_path, packets)
    return [r for b in pipeline.run_one(path) for r in b.to_pylist()]


def scored_windows(tmp_path, packets: list[pb.Packet]) -> ScoredWindows:  # type: ignore[no-untyped-def]
    """Every window the tracker scored, as the model saw it."""
    pipeline, path = _pipeline(tmp_path, packets)
    assert pipeline.behaviour is not None
    seen: list[ScoredWindows] = []
    pipeline.behaviour.recorder = seen.append
    for _ in pipeline.run_one(path):
        pass
    assert seen
    return ScoredWindows(*(np.concatenate([getattr(w, k) for w in seen])
                           for k in ScoredWindows.__slots__))  # fmt: skip


def _features(w: ScoredWindows, kind: int = K.WINDOW) -> dict[str, float]:
    """Features of the first head or window of that kind."""
    k = int(np.flatnonzero(w.kind == kind)[0])
    return dict(zip(BF.NAMES, w.features[k].tolist(), strict=True))


def test_a_call_is_cut_into_a_head_and_windows_up_to_the_budget(tmp_path) -> None:  # type: ignore[no-untyped-def]
    w = scored_windows(tmp_path, call_like())  # 400 payload packets
    # The head first (the flow's first HEAD_PACKETS packets), then the windows in order.
    assert w.kind.tolist() == [K.HEAD] + [K.WINDOW] * K.MAX_WINDOWS
    assert w.packets[0] == K.HEAD_PACKETS and w.at_packet[0] == K.HEAD_PACKETS
    win = w.kind == K.WINDOW
    assert w.window[win].tolist() == list(range(K.MAX_WINDOWS))
    assert (w.packets[win] == K.WINDOW_PACKETS).all()
    assert w.at_packet[win].tolist() == [K.WINDOW_PACKETS * (k + 1) for k in range(K.MAX_WINDOWS)]
    # The head is the first packets of the first window, as the model of heads sees them.
    head, first = _features(w, K.HEAD), _features(w)
    assert head["clocked_best"] > 0.9 and head["media_sized"] == 1.0
    assert head != first
    x = first
    assert x["clocked_best"] > 0.9 and x["clocked_both"] > 0.9  # 20 ms each way
    assert x["tcp"] == 0.0 and x["media_sized"] == 1.0
    assert x["burst_major"] == 0.0


def test_a_flow_shorter_than_a_window_is_scored_when_it_ends(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Ended before its head was full: the head model judges what it sent.
    n = K.HEAD_PACKETS - 4
    w = scored_windows(tmp_path, one_way(np.full(n, 0.02)))
    assert w.kind.tolist() == [K.HEAD] and w.packets.tolist() == [n]
    assert w.at_packet.tolist() == [n]
    # Ended between its head and a full window: the head when it was full, then the
    # window model on all its packets.
    n = K.HEAD_PACKETS + 6
    w = scored_windows(tmp_path, one_way(np.full(n, 0.02)))
    assert w.kind.tolist() == [K.HEAD, K.WINDOW] and w.packets.tolist() == [K.HEAD_PACKETS, n]
    assert w.at_packet.tolist() == [K.HEAD_PACKETS, n]
    assert len(run(tmp_path, one_way(np.full(BF.MIN_PACKETS - 1, 0.02)))) == 1  # no window


@pytest.mark.parametrize(
    ("name", "gaps_ms", "clocked"),
    [
        # A 20 ms sender clock seen behind a jittery network: single gaps 14-26 ms.
        ("jittered 20 ms clock", "clock", True),
        # One frame in four lost: gaps of 40 ms inside the 20 ms clock.
        ("20 ms clock with loss", "loss", True),
        ("60 ms frames", "60", True),
        # A loop that sleeps 1/60 s plus its own work: steady, but 9 % off 20 ms.
        ("18.2 ms timer loop", "18.2", False),
        ("33.3 ms game tick", "33.3", False),
        # Pacing by random sleeps that average 10 ms: no clock at all.
        ("uniform 0-20 ms", "uniform", False),
    ],
)
def test_the_frame_clock_is_judged_on_the_mean_gap(tmp_path, name, gaps_ms, clocked) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    n = K.WINDOW_PACKETS
    if gaps_ms == "clock":
        send = np.arange(n) * 20.0
        gaps = np.diff(np.r_[0.0, np.sort(send + rng.uniform(0, 6, n))])
    elif gaps_ms == "loss":
        gaps = np.where(np.arange(n) % 4 == 3, 40.0, 20.0)
    elif gaps_ms == "uniform":
        gaps = rng.uniform(0, 20, n)
    else:
        gaps = np.full(n, float(gaps_ms)) + rng.normal(0, 0.3, n)
    x = _features(scored_windows(tmp_path, one_way(np.maximum(gaps, 0.1) / 1000)))
    assert (x["clocked_best"] > 0.6) is clocked, (name, x["clocked_best"])


def test_rows_are_freed_and_slots_reused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.pcap"
    # Two interleaved flows in a table of one slot: they keep evicting each other, so the
    # slot changes hands inside batches and every flow record needs its own row.
    packets = call_like(0.5, sport=41000) + call_like(0.5, sport=41001)
    path.write_bytes(pb.pcap(sorted(packets, key=lambda p: p.ts_ns)))
    pipeline = FlowPipeline(
        Config.from_overrides({"flows.max_flows": 1, "dissect.behaviour": True})
    )
    records = [r for b in pipeline.run_one(str(path)) for r in b.to_pylist()]
    assert len(records) > 2
    assert pipeline.behaviour is not None and pipeline.behaviour.live_flows == 0
    # A row per flow that changed hands inside a batch, every one back on the free stack.
    meta = pipeline.behaviour.meta
    assert 2 < meta[K.M_HIGH] <= len(records) and meta[K.M_TOP] == meta[K.M_HIGH]
    # No media opinion left behind.
    assert not pipeline.behaviour._decided and not pipeline.behaviour._head_decided


def test_no_model_means_no_opinion() -> None:
    tracker = BehaviourTracker(capacity=4)
    tracker.model = None
    ended = np.zeros((1, 22), np.int64)
    assert tracker.take(ended) == [None]


def test_opinion_from_a_model_that_says_media_to_everything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pipeline, path = _pipeline(tmp_path, call_like())
    assert pipeline.behaviour is not None
    pipeline.behaviour.model = constant_models(10.0)
    (flow,) = [r for b in pipeline.run_one(path) for r in b.to_pylist()]
    assert flow["category"] == "voip-media" and flow["media"] == "audio"
    # A flow with full windows is judged by them: the first window decides, not the head.
    assert flow["detected_at_packet"] == K.WINDOW_PACKETS
    assert flow["evidence"][0].startswith(f"behaviour: media p=1.00 ({K.MAX_WINDOWS} of "
                                          f"{K.MAX_WINDOWS} windows")  # fmt: skip
    assert 0.5 < flow["confidence"] <= 0.9


def _two_way(packets: int) -> list[pb.Packet]:
    return call_like(seconds=0.02 * packets / 2 + 1e-6)[:packets]


@pytest.mark.parametrize(
    ("packets", "head", "window", "at_packet"),
    [
        # Ended before its head was full: the head model judges all it sent.
        (K.HEAD_PACKETS - 4, 10.0, -10.0, K.HEAD_PACKETS - 4),
        (K.HEAD_PACKETS - 4, -10.0, 10.0, None),
        # Ended between its head and a full window: the head, or the window model on
        # the partial window at the flow's end.
        (K.HEAD_PACKETS + 6, 10.0, -10.0, K.HEAD_PACKETS),
        (K.HEAD_PACKETS + 6, -10.0, 10.0, K.HEAD_PACKETS + 6),
        # A full window: the windows alone decide, whatever the head said (a game's
        # first packets may look like a one-way call; 48 packets show its tick).
        (400, 10.0, -10.0, None),
        (400, -10.0, 10.0, K.WINDOW_PACKETS),
        (400, -10.0, -10.0, None),
    ],
)
def test_the_head_speaks_only_for_flows_without_a_full_window(  # type: ignore[no-untyped-def]
    tmp_path, packets, head, window, at_packet
) -> None:
    pipeline, path = _pipeline(tmp_path, _two_way(packets))
    assert pipeline.behaviour is not None
    pipeline.behaviour.model = constant_models(head, window)
    (flow,) = [r for b in pipeline.run_one(path) for r in b.to_pylist()]
    assert flow["src2dst_packets"] + flow["dst2src_packets"] == packets
    assert flow["detected_at_packet"] == at_packet, flow["evidence"]
    assert (flow["category"] == "voip-media") is (at_packet is not None)
    if at_packet is not None and head > 0:
        assert "ended before a full window" in flow["evidence"][0]


@pytest.mark.parametrize(("head_t", "window_t", "by_head"), [(0.6, 0.4, False), (0.4, 0.6, True)])
def test_each_model_has_its_threshold(tmp_path, head_t, window_t, by_head) -> None:  # type: ignore[no-untyped-def]
    """p = 0.5 from both models: media for the one whose threshold is under it only."""
    n = K.HEAD_PACKETS + 6
    at_packet = K.HEAD_PACKETS if by_head else n
    pipeline, path = _pipeline(tmp_path, _two_way(n))
    assert pipeline.behaviour is not None
    pipeline.behaviour.model = BehaviourModels(
        constant_model(0.0, head_t), constant_model(0.0, window_t)
    )
    (flow,) = [r for b in pipeline.run_one(path) for r in b.to_pylist()]
    assert flow["detected_at_packet"] == at_packet


def test_model_file_round_trip_and_stale_files_are_refused() -> None:
    models = constant_models(0.3, -0.2)
    x = np.random.default_rng(0).random((5, len(BF.NAMES)))
    again = models_from_json(json.loads(json.dumps(models.to_json())))
    assert np.allclose(again.head.probability(x), models.head.probability(x))
    assert np.allclose(again.window.probability(x), models.window.probability(x))
    stale = {**models.head.to_json(), "features": ["framing_major"]}
    with pytest.raises(ValueError, match="refit"):
        model_from_json(stale)
    with pytest.raises(ValueError, match="refit"):
        models_from_json(models.window.to_json())  # a one-model file from before heads


@pytest.mark.skipif(shipped_model() is None, reason="behaviour model not fitted yet")
def test_shipped_model_leaves_one_way_bulk_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (bulk,) = run(tmp_path, bulk_like())
    assert bulk["category"] == "unknown", bulk["evidence"]


@pytest.mark.skipif(shipped_model() is None, reason="behaviour model not fitted yet")
def test_shipped_model_finds_an_opaque_synthetic_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (call,) = run(tmp_path, call_like())
    assert call["category"] == "voip-media", call["evidence"]
    assert call["detected_at_packet"] == K.WINDOW_PACKETS
    assert "frame clock" in call["evidence"][0]


def test_off_by_default_until_it_meets_its_targets() -> None:
    assert FlowPipeline().behaviour is None  # docs/identification.md gives the figures
