"""Media outages of a call: a stream that stopped reaching the capture point while its
sender went on sending (one-way audio, dead air), read from the stream's longest gap.

A gap alone says little: a phone with silence suppression (DTX, VAD) sends nothing while
its user listens, and one on hold may stop altogether. What tells an outage apart is the
sequence number (RFC 3550 §5.1: it increments by one for each RTP data packet sent): a
sender that went on numbering through the gap sent packets that never arrived here. The
stream's longest gap (quality.rtp_kernel) carries how many numbers the packet after it
skipped; a gap of at least ``OUTAGE_MIN_S`` whose skipped numbers account for it (at
least one per ``MAX_PACKET_INTERVAL_S``, the longest packetisation interval in use) is an
outage. A gap in which the capture saw nothing at all is the capture's, not the call's
(``capture_gap_missing`` says so) and is not reported here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# A second of consecutive audio gone is a dropout every listener hears (syllables, whole
# words); shorter bursts are what the loss figures and the burst ratio describe.
OUTAGE_MIN_S = 1.0
# RFC 3551 §4.5 frame sizes run to 30 ms (G.723.1) and ptime rarely above 60 ms; one
# sequence number per 100 ms of the gap leaves room for every packetisation in use
# while a talk pause that ended with one lost packet (1 skipped over seconds) stays out.
MAX_PACKET_INTERVAL_S = 0.1
# Another stream "kept sending" across the outage when its own longest gap covers less
# than this share of it.
OTHER_SIDE_QUIET_SHARE = 0.5


def outage_evidence(streams: list[dict[str, Any]]) -> list[str]:
    """An evidence line per stream of the call whose longest gap was an outage."""
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
        lines.append(
            f"media outage: {_endpoint(stream, 'src')} -> {_endpoint(stream, 'dst')} lost "
            f"{stream['longest_gap_skipped']} packets in one stretch of {end - start:.2f} s "
            f"from {_utc(start)} (its sequence numbers went on: sent, never seen here), {side}"
        )
    return lines


def outage_span(stream: dict[str, Any]) -> tuple[float, float] | None:
    """(start, end) epoch seconds of the stream's longest gap when it was an outage."""
    gap_s = (stream.get("longest_gap_ms") or 0.0) / 1000.0
    start = stream.get("longest_gap_start")
    skipped = stream.get("longest_gap_skipped") or 0
    if start is None or gap_s < OUTAGE_MIN_S or stream.get("longest_gap_in_capture_gap"):
        return None
    if skipped < gap_s / MAX_PACKET_INTERVAL_S:
        return None  # the sender paused (silence suppression, hold): not an outage
    return float(start), float(start) + gap_s


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
