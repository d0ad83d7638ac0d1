"""A media stream's E-model scores from what the RTP kernel measured: the MOS of the loss
on the wire with its measured burst ratio, and the MOS a receiver with a fixed de-jitter
buffer of 50 or 200 ms would have had (its late packets are lost to it: G.107 §7.5
counts packets the jitter buffer discards in Ppl).

A passive monitor does not know the receiver's buffer, so ``mos`` leaves jitter out (as
every tool comparing loss with tshark does) and the two buffered figures say what
jitter costs at each size: equal to ``mos`` on a calm path, lower where packets came
too late for the buffer.
"""

from __future__ import annotations

from typing import Any

from voipscope.quality.emodel import measured_burst_ratio, mos

# Stream fields with the packets each buffer size would discard (quality.rtp_streams),
# and the MOS field each gives.
BUFFERED = (("jb50_late", "mos_jb50"), ("jb200_late", "mos_jb200"))


def stream_scores(stream: dict[str, Any], codec: str | int | None) -> dict[str, Any]:
    """``mos``, ``r_factor``, ``mos_reason``, ``burst_ratio``, ``mos_jb50`` and
    ``mos_jb200`` of one stream (a dict of quality.rtp_streams.MediaStream fields)."""
    loss_pct = stream.get("loss_pct")
    lost = stream.get("lost")
    burst_ratio = None
    lost_on_wire = expected = None
    if isinstance(lost, int):
        # Packets the capture missed say nothing about what the listener heard.
        expected = stream["packets"] + lost
        lost_on_wire = max(lost - (stream.get("capture_gap_missing") or 0), 0)
        if expected:
            loss_pct = 100.0 * lost_on_wire / expected
        burst_ratio = measured_burst_ratio(lost_on_wire, stream.get("loss_runs") or 0, expected)
    result = mos(codec, loss_pct, burst_ratio)
    out: dict[str, Any] = {
        "mos": result.mos,
        "r_factor": result.r_factor,
        "mos_reason": result.reason,
        "burst_ratio": burst_ratio,
    }
    for late_field, mos_field in BUFFERED:
        late = stream.get(late_field)
        buffered = None
        if result.mos is not None and late is not None and expected and lost_on_wire is not None:
            # Discards are at random as far as G.107 is concerned: the burst ratio stays
            # the network's (late packets come in jitter spikes, so this is kind).
            gone_pct = min(100.0, 100.0 * (lost_on_wire + late) / expected)
            buffered = mos(codec, gone_pct, burst_ratio).mos
        out[mos_field] = buffered
    return out
