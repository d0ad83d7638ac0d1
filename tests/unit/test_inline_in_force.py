"""The bound on targets in force: a decision beyond it is recorded but not enforced, and
room comes back once decisions expire (voipscope.inline.in_force)."""

from __future__ import annotations

import struct
from pathlib import Path

import tests.pcapbuild as pb
from voipscope.inline import Event, drop
from voipscope.inline.runner import iter_actions
from voipscope.inline.stage import InlineStage
from voipscope.pipeline import FlowPipeline


def _rtp(i: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, i, i * 160, ssrc) + bytes(160)


def test_targets_beyond_the_bound_wait_for_room(tmp_path: Path) -> None:
    # RTP flows starting at 0, 0.5, 0.7 and 30 s, 10 packets each, 20 ms apart.
    starts = (0.0, 0.5, 0.7, 30.0)
    packets = [
        pb.udp_packet(1000 + start + i * 0.02, "192.0.2.1", 40000 + 2 * n, "192.0.2.2", 50000,
                      _rtp(i, n + 1))
        for n, start in enumerate(starts) for i in range(10)
    ]  # fmt: skip
    path = tmp_path / "rtp.pcap"
    path.write_bytes(pb.pcap(sorted(packets, key=lambda p: p.ts_ns)))

    def decide(e: Event) -> object:
        return drop("x", ttl_s=1) if e.kind == "flow" else None

    stage = InlineStage(decide, max_targets=2)
    pipeline = FlowPipeline(inline=stage)
    records = list(iter_actions(path, decide, pipeline=pipeline))
    assert [r["targets_dropped"] for r in records] == [0, 0, 1, 0]
    # Enforced ones count their flow's packets after the 2nd (RTP without signalling is
    # recognised there); the one over the bound, none.
    assert [r["packets_after"] for r in records] == [8, 8, 0, 8]
    names = {a.name for a in pipeline.stats.anomalies.records}
    assert "inline_targets_full" in names
