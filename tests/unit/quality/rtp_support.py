"""Build RTP packets by hand and run them through the real pipeline with the tracker."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests import pcapbuild as pb
from voipscope.config import Config
from voipscope.pipeline import FlowPipeline
from voipscope.quality.rtp_streams import RtpFlowStats, RtpStreamTracker

A, B = ("10.0.0.1", 40000), ("10.0.0.2", 50000)
FRAME_MS = 20
PCMU_TICKS = 160  # 20 ms at 8000 Hz


def rtp(
    seq: int,
    ts: int,
    ssrc: int = 0x1234,
    pt: int = 0,
    marker: bool = False,
    csrc: Sequence[int] = (),
    ext_words: int | None = None,
    payload: bytes = b"\xff" * 160,
) -> bytes:
    b0 = 0x80 | len(csrc) | (0x10 if ext_words is not None else 0)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrc)
    if ext_words is not None:
        out += struct.pack("!HH", 0xBEDE, ext_words) + b"\0" * (4 * ext_words)
    return out + payload


def udp_at(ms: float, payload: bytes, src=A, dst=B) -> pb.Packet:  # type: ignore[no-untyped-def]
    return pb.udp_packet(1_700_000_000 + ms / 1000, src[0], src[1], dst[0], dst[1], payload)


def run(
    write_pcap: Callable[..., Path],
    packets: list[pb.Packet],
    overrides: dict[str, Any] | None = None,
    tracker: RtpStreamTracker | None = None,
) -> list[tuple[dict[str, Any], RtpFlowStats | None]]:
    """Flow records with the tracker's result for each, in the order flows ended."""
    config = Config.from_overrides(overrides)
    tracker = tracker or RtpStreamTracker(config.flows.max_flows)
    out = []
    for batch in FlowPipeline(config, hooks=[tracker]).run([str(write_pcap(packets))]):
        for flow in batch.to_pylist():
            out.append((flow, tracker.pop(flow["flow_id"])))
    assert tracker.live_flows == 0  # every tracked flow was handed out at its end
    return out


def only_stats(results: list[tuple[dict[str, Any], RtpFlowStats | None]]) -> RtpFlowStats:
    stats = [s for _, s in results if s is not None]
    assert len(stats) == 1
    return stats[0]


def steady(count: int, first_seq: int = 1, ssrc: int = 0x1234, start_ms: float = 0.0):  # type: ignore[no-untyped-def]
    """A PCMU stream: one packet every 20 ms, timestamps +160."""
    return [
        udp_at(start_ms + k * FRAME_MS, rtp(first_seq + k, 1000 + k * PCMU_TICKS, ssrc))
        for k in range(count)
    ]


def a8_reference(
    arrivals_us: Sequence[int], timestamps: Sequence[int], clock_hz: int
) -> tuple[float, float, float]:
    """RFC 3550 A.8 written out plainly, in ms, for packets that arrive in order with no
    marker and no comfort noise: (J after the last packet, mean of J over packets 2..,
    max J) — the last, mean and max tshark reports."""
    j = 0.0
    history = []
    for i in range(1, len(arrivals_us)):
        transit_ms = (arrivals_us[i] - arrivals_us[i - 1]) / 1000.0
        media_ms = (timestamps[i] - timestamps[i - 1]) * 1000.0 / clock_hz
        d = transit_ms - media_ms  # D(i-1, i) = (Rj - Ri) - (Sj - Si)
        j += (abs(d) - j) / 16.0
        history.append(j)
    return j, sum(history) / len(history), max(history)


def udp_at_us(us: int, payload: bytes, src=A, dst=B) -> pb.Packet:  # type: ignore[no-untyped-def]
    """Like udp_at, at an exact microsecond (pcap's resolution; no float rounding)."""
    frame = pb.udp_packet(0.0, src[0], src[1], dst[0], dst[1], payload).data
    return pb.Packet(1_700_000_000 * 1_000_000_000 + us * 1000, frame)
