"""classify/behaviour*: the kernel's running features, slot reuse, the opinion it gives
the arbiter, and the shipped model on synthetic traffic (opaque bytes, no signature)."""

from __future__ import annotations

import numpy as np
import pytest

from tests import pcapbuild as pb
from voipscope.classify import behaviour_features as BF
from voipscope.classify import behaviour_kernel as K
from voipscope.classify.behaviour import BehaviourTracker
from voipscope.classify.behaviour_model import constant_model, shipped_model
from voipscope.config import Config
from voipscope.pipeline import FlowPipeline

A, B = "192.0.2.10", "198.51.100.20"


def _opaque(rng: np.random.Generator, size: int) -> bytes:
    # First byte 0x40-0x7f: outside every RFC 7983 range and no known signature.
    return bytes([0x55]) + rng.integers(0, 256, size - 1, dtype=np.uint8).tobytes()


def call_like(seconds: float = 4.0, seed: int = 1, sport: int = 41000) -> list[pb.Packet]:
    """Two-way opaque datagrams every 20 ms, 60-110 B, talk turns changing sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(seconds / 0.02)):
        t = 1_700_000_000 + k * 0.02
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
            t = 1_700_000_000 + k * 0.25 + j * 0.0002
            out.append(pb.udp_packet(t, A, 42000, B, 50001, _opaque(rng, 1200)))
    return out


def run(tmp_path, packets: list[pb.Packet], **kw) -> list[dict]:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.pcap"
    path.write_bytes(pb.pcap(packets))
    pipeline = FlowPipeline(Config.from_overrides({"dissect.behaviour": True, **kw}))
    return [r for b in pipeline.run_one(str(path)) for r in b.to_pylist()]


def _rows_of(tmp_path, packets: list[pb.Packet]) -> np.ndarray:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.pcap"
    path.write_bytes(pb.pcap(packets))
    pipeline = FlowPipeline(Config.from_overrides({"dissect.behaviour": True}))
    assert pipeline.behaviour is not None
    taken = []
    take_rows = pipeline.behaviour.take_rows

    def keep(ended):  # type: ignore[no-untyped-def]
        rows, present = take_rows(ended)
        taken.append(rows[present])
        return rows, present

    pipeline.behaviour.take_rows = keep  # type: ignore[method-assign]
    for _ in pipeline.run_one(str(path)):
        pass
    return np.concatenate(taken)


def test_kernel_counts_the_first_window_then_the_second(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (row,) = _rows_of(tmp_path, call_like())
    first, second = row[: K.B_LEN], row[K.B_LEN :]
    assert first[K.B_PACKETS] == second[K.B_PACKETS] == K.WINDOW_PACKETS
    assert first[K.B_CLOSED_AT] == K.WINDOW_PACKETS  # every packet carries payload
    x = dict(zip(BF.NAMES, BF.feature_matrix(first[None, :])[0].tolist(), strict=True))
    assert x["framing_major"] > 0.9  # 20 ms gaps
    assert x["balance"] == 1.0 and x["alternation"] > 0.9
    assert x["tcp"] == 0.0


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


def test_no_model_means_no_opinion() -> None:
    tracker = BehaviourTracker(capacity=4)
    tracker.model = None
    ended = np.zeros((1, 22), np.int64)
    assert tracker.take(ended) == [None]


def test_opinion_from_a_model_that_says_media_to_everything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    always = constant_model(10.0)
    path = tmp_path / "t.pcap"
    path.write_bytes(pb.pcap(call_like()))
    pipeline = FlowPipeline(Config.from_overrides({"dissect.behaviour": True}))
    assert pipeline.behaviour is not None
    pipeline.behaviour.model = always
    (flow,) = [r for b in pipeline.run_one(str(path)) for r in b.to_pylist()]
    assert flow["category"] == "voip-media" and flow["media"] == "audio"
    assert flow["detected_at_packet"] == K.WINDOW_PACKETS
    assert flow["evidence"][0].startswith("behaviour: media p=1.00")
    assert 0.5 < flow["confidence"] <= 0.9


@pytest.mark.skipif(shipped_model() is None, reason="behaviour model not fitted yet")
def test_shipped_model_leaves_one_way_bulk_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (bulk,) = run(tmp_path, bulk_like())
    assert bulk["category"] == "unknown", bulk["evidence"]


@pytest.mark.skipif(shipped_model() is None, reason="behaviour model not fitted yet")
@pytest.mark.xfail(
    strict=False,
    reason="known gap: the shipped trees learned iperf3 --bidir (two-way, constant size, "
    "20 ms) as not-media, and this synthetic call is that regular; see docs/identification.md",
)
def test_shipped_model_finds_an_opaque_synthetic_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (call,) = run(tmp_path, call_like())
    assert call["category"] == "voip-media", call["evidence"]
    assert call["detected_at_packet"] <= 2 * K.WINDOW_PACKETS


def test_off_by_default_until_it_meets_its_targets() -> None:
    assert FlowPipeline().behaviour is None  # docs/identification.md gives the figures
