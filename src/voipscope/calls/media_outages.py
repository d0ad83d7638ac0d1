"""Media that did not reach the capture point: outages inside a stream (one-way audio,
dead air), a direction that never came, an answered call without any media.

A gap alone says little: a phone with silence suppression (DTX, VAD) sends nothing while
its user listens, and one on hold may stop altogether. What tells an outage apart is the
sequence number (RFC 3550 §5.1: it increments by one for each RTP data packet sent): a
sender that went on numbering through the gap sent packets that never arrived here. The
RTP kernel judges every gap of a stream by that rule (quality.rtp_kernel.is_outage) and
keeps the count, their time in all and the longest; a gap in which the capture saw
nothing at all is the capture's, not the call's (``capture_gap_missing``). Here each
stream's longest outage becomes an evidence line saying what the call's other streams
did meanwhile.

A whole direction missing is judged where the signalling says it should be there: an
answered SIP call whose offer and answer both announced media to send and receive
(RFC 3264 §6: sendrecv, the default), never put on hold, that went on for at least
``MIN_CONVERSATION_S`` after the answer and ended with a BYE the capture saw. From one
capture point "not sent" and "sent on a path this capture does not see" look the same;
the lines say both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from voipscope.addresses import format_endpoint

# Another stream "kept sending" across the outage when its own longest gap covers less
# than this share of it.
OTHER_SIDE_QUIET_SHARE = 0.5
# A call this long after its answer had time for media both ways: RTP starts within
# milliseconds of the answer (or before it, as early media), never seconds later.
MIN_CONVERSATION_S = 5.0
# How missing_media_evidence's lines begin (missing_media_flags reads them back).
NO_MEDIA, ONE_WAY_MEDIA = "no media seen", "one-way media"


def missing_media_evidence(record: dict[str, Any], streams: list[dict[str, Any]]) -> list[str]:
    """A line when an answered SIP call that announced two-way media shows none, or
    shows it one way only (no stream ever came back to where one went)."""
    if record.get("protocol") != "SIP" or record.get("kind") != "call":
        return []
    answer, end = record.get("answer"), record.get("end")
    if record.get("state") != "answered" or answer is None or end is None:
        return []
    if end - answer < MIN_CONVERSATION_S:
        return []
    sdp = record.get("sdp") or []
    announced = _two_way_announcement(sdp)
    if announced is None:
        return []
    if not streams:
        if record.get("media_flows"):
            return []  # media that is not RTP (T.38 UDPTL) went by
        return [
            f"{NO_MEDIA}: answered and up for {end - answer:.1f} s, both sides announced "
            f"two-way media ({', '.join(announced)}), the capture holds none of it "
            f"(not sent, or on a path this capture does not see)"
        ]
    if _announced_other_media(sdp):
        return []  # T.38 or video beside the audio: its RTP streams are not the whole story
    sources = {_endpoint(s, "src") for s in streams}
    if any(_endpoint(s, "dst") in sources for s in streams):
        return []  # something came back
    senders = sorted(sources)
    span = max(s["last_seen"] for s in streams) - min(s["first_seen"] for s in streams)
    if span < MIN_CONVERSATION_S:
        return []
    targets = sorted({_endpoint(s, "dst") for s in streams})
    return [
        f"{ONE_WAY_MEDIA}: only {', '.join(senders)} -> {', '.join(targets)} for {span:.1f} s; "
        f"nothing came back although both sides announced two-way media "
        f"({', '.join(announced)}) (not sent, or on a path this capture does not see)"
    ]


def missing_media_flags(evidence: list[str] | None) -> list[str]:
    """The short names ("no media seen", "one-way media") of a call's missing-media
    evidence lines, for tables that flag them."""
    return [
        line.split(":", 1)[0]
        for line in evidence or []
        if line.startswith((NO_MEDIA, ONE_WAY_MEDIA))
    ]


def _two_way_announcement(sdp: list[dict[str, Any]]) -> list[str] | None:
    """The announced audio endpoints when an offer and its answer (RFC 3264: one from
    each side) announced audio both would send and receive and nobody put the other on
    hold; else None."""
    roles: set[str] = set()
    endpoints: dict[str, None] = {}
    for exchange in sdp:
        if exchange.get("hold"):
            return None
        live = [m for m in exchange.get("media") or [] if m.get("port")]
        if any(m.get("direction") != "sendrecv" for m in live):
            return None  # one way (or none) by design: an announcement, music on hold
        audio = [m for m in live if m.get("media") == "audio"]
        if audio:
            roles.add(exchange.get("role") or "")
            for m in audio:
                endpoints[format_endpoint(str(m.get("ip")), m.get("port"))] = None
    if not {"offer", "answer"} <= roles:
        return None
    return list(endpoints)


def _announced_other_media(sdp: list[dict[str, Any]]) -> bool:
    return any(
        m.get("port") and m.get("media") != "audio"
        for exchange in sdp
        for m in exchange.get("media") or []
    )


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
    return format_endpoint(str(stream.get(f"{side}_ip")), stream.get(f"{side}_port"))


def _utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
