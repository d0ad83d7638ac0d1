"""Media outages of a call: a stream that stopped reaching the capture point while its
sender went on sending (one-way audio, dead air).

A gap alone says little: a phone with silence suppression (DTX, VAD) sends nothing while
its user listens, and one on hold may stop altogether. What tells an outage apart is the
sequence number (RFC 3550 §5.1: it increments by one for each RTP data packet sent): a
sender that went on numbering through the gap sent packets that never arrived here. The
RTP kernel judges every gap of a stream by that rule (quality.rtp_kernel.is_outage) and
keeps the count, their time in all and the longest; a gap in which the capture saw
nothing at all is the capture's, not the call's (``capture_gap_missing``). Here each
stream's longest outage becomes an evidence line saying what the call's other streams
did meanwhile.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# Another stream "kept sending" across the outage when its own longest gap covers less
# than this share of it.
OTHER_SIDE_QUIET_SHARE = 0.5


def outage_evidence(streams: list[dict[str, Any]]) -> list[str]:
    """An evidence line per stream of the call that had an outage: its longest."""
    lines = []
    for stream in streams:
        span = outage_span(stream)
        if span is None:
            continue
        start, end = span
        others = [s for s in streams if s is not stream and _sent_across(s, start, end)]
        side = (
            "while the other direction kept sending: one-way audio"
            if any(_endpoint(s, "src") == _endpoint(stream, "dst") for s in others)
            else "while another stream of the call kept sending"
            if others
            else "and no other stream of the call went on meanwhile"
        )
        more = (stream.get("outages") or 1) - 1
        also = (
            f"; {more} more outage{'s' if more > 1 else ''}, "
            f"{stream.get('outage_s', 0.0):.2f} s in all"
            if more > 0
            else ""
        )
        lines.append(
            f"media outage: {_endpoint(stream, 'src')} -> {_endpoint(stream, 'dst')} lost "
            f"{stream['longest_outage_lost']} packets in one stretch of {end - start:.2f} s "
            f"from {_utc(start)} (its sequence numbers went on: sent, never seen here), "
            f"{side}{also}"
        )
    return lines


def outage_span(stream: dict[str, Any]) -> tuple[float, float] | None:
    """(start, end) epoch seconds of the stream's longest outage, if it had one."""
    start = stream.get("longest_outage_start")
    if start is None or not stream.get("outages"):
        return None
    return float(start), float(start) + (stream.get("longest_outage_ms") or 0.0) / 1000.0


def _sent_across(stream: dict[str, Any], start: float, end: float) -> bool:
    """Whether ``stream`` was sending from before ``start`` to after ``end`` without a
    gap of its own over most of that time."""
    if stream.get("first_seen") is None or stream.get("last_seen") is None:
        return False
    if stream["first_seen"] > start or stream["last_seen"] < end:
        return False
    own_start = stream.get("longest_gap_start")
    if own_start is None:
        return True
    own_end = own_start + (stream.get("longest_gap_ms") or 0.0) / 1000.0
    overlap = max(0.0, min(end, own_end) - max(start, own_start))
    return overlap < OTHER_SIDE_QUIET_SHARE * (end - start)


def _endpoint(stream: dict[str, Any], side: str) -> str:
    ip = stream.get(f"{side}_ip")
    port = stream.get(f"{side}_port")
    return f"[{ip}]:{port}" if ip and ":" in str(ip) else f"{ip}:{port}"


def _utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
