"""Jitter of a dynamic payload type, kept per candidate clock until the call says which.

RFC 3550 §6.4.1 defines the interarrival jitter in RTP timestamp units; milliseconds need
the clock rate. For a dynamic payload type (96-127, RFC 3551 §3) only the SDP
``a=rtpmap`` of the call says it (RFC 8866 §6.6), and the calls stage pairs a media flow
with its call only after the flow ended. The RTP kernel therefore runs the A.8 estimator
for every clock in ``rtp_kernel.CANDIDATE_CLOCKS_HZ`` and hands the figures out as a
:class:`ClockCandidates`; :func:`resolve` keeps the one the rtpmap names.

Without an SDP (WebRTC apps: the signalling is encrypted; SIP over TLS) the clock may be
taken from the stream itself: from payloads the RTP kernel recognised as Opus (48 kHz,
RFC 7587 §4.1), or when two independent witnesses agree (:meth:`inferred_clock_hz`):
RTP timestamps advance at the clock rate in real time (RFC 3550 §5.1: "linearly and
monotonically"), so over seconds of regular packets ticks per second lands within
``INFER_TOLERANCE`` of exactly one candidate; and that candidate must also be the one
with the least mean jitter (a wrong clock adds a constant error to every D). Short
streams, timestamps that stop during silence, new timestamp bases or jittery arrivals
fail one of the two, and the jitter stays unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voipscope.quality.payload_types import clock_rate_hz, parse_rtpmap

# Evidence an inferred clock needs: enough regular packets over a long enough time that
# the arrival jitter at the ends moves ticks per second by well under the gap between
# neighbouring candidates (44100 and 48000 are 8.8 % apart; the rest 33 % or more).
INFER_MIN_PACKETS = 50
INFER_MIN_SPAN_S = 2.0
INFER_TOLERANCE = 0.01  # |ticks per second / candidate - 1|: 20 ms at both ends of 2 s

CLOCK_FROM_TABLE = "payload type table (RFC 3551)"
CLOCK_FROM_SDP = "SDP rtpmap"
CLOCK_INFERRED = "inferred from RTP timestamps"
# The payloads are Opus by their own bytes (rtp_streams.MediaStream.payload_codec), and
# Opus's RTP clock is 48 kHz whatever the audio's rate (RFC 7587 §4.1).
CLOCK_FROM_OPUS = "Opus payloads (RFC 7587 §4.1: 48 kHz)"
OPUS_CLOCK_HZ = 48_000


@dataclass(frozen=True, slots=True)
class ClockCandidates:
    """A.8 figures of one stream's dynamic payload type under each candidate clock."""

    payload_type: int
    clocks_hz: tuple[int, ...]
    jitter_last_ms: tuple[float, ...]  # the running estimate after the last packet
    mean_jitter_ms: tuple[float, ...]  # Wireshark's running mean over regular packets
    max_jitter_ms: tuple[float, ...]
    regular_packets: int  # of this payload type: the steps the rate below is taken over
    rtp_ticks: int  # timestamp advance summed over those steps
    arrival_s: float  # and the arrival time they took

    def figures(self, clock_hz: int) -> dict[str, Any] | None:
        """Stream fields for ``clock_hz`` (None: not a candidate)."""
        if clock_hz not in self.clocks_hz:
            return None
        k = self.clocks_hz.index(clock_hz)
        last = self.jitter_last_ms[k]
        mean = self.mean_jitter_ms[k]
        return {
            "clock_rate_hz": clock_hz,
            "jitter_ms": mean,
            "mean_jitter_ms": mean,
            "max_jitter_ms": self.max_jitter_ms[k],
            "jitter_last_ms": last,
            "jitter_ts_units": last * clock_hz / 1000.0,
            "jitter_unknown": None,
        }

    def ticks_per_s(self) -> float | None:
        return self.rtp_ticks / self.arrival_s if self.arrival_s > 0 else None

    def inferred_clock_hz(self) -> int | None:
        """The clock the stream's own timestamps and arrivals agree on, or None."""
        rate = self.ticks_per_s()
        if (
            rate is None
            or self.regular_packets < INFER_MIN_PACKETS
            or self.arrival_s < INFER_MIN_SPAN_S
        ):
            return None
        near = [c for c in self.clocks_hz if abs(rate / c - 1.0) <= INFER_TOLERANCE]
        if len(near) != 1:
            return None
        least = min(range(len(self.clocks_hz)), key=self.mean_jitter_ms.__getitem__)
        return near[0] if self.clocks_hz[least] == near[0] else None


def resolve(stream: dict[str, Any], rtpmap: Mapping[int, str]) -> dict[str, Any]:
    """Jitter fields for a stream record whose clock was unknown in the kernel.

    ``rtpmap``: the call's SDP payload types, {96: "opus/48000/2", ...} ({} when there is
    no SDP). Returns the fields to update, with ``clock_source`` saying where the clock
    came from, or a ``jitter_unknown`` reason.
    """
    candidates = stream.get("clock_candidates")
    if not isinstance(candidates, ClockCandidates):
        return {}
    pt = candidates.payload_type
    parsed = parse_rtpmap(rtpmap[pt]) if pt in rtpmap else None
    if parsed is not None:
        clock = clock_rate_hz(pt, {pt: parsed})
        if clock is None:
            return {"jitter_unknown": f"payload type {pt} is {parsed[0]}: "
                    "its timestamps do not measure time"}  # fmt: skip
        found = candidates.figures(clock)
        if found is None:
            # The clock is known (RTCP jitter can use it), the measured jitter is not.
            return {
                "clock_rate_hz": clock,
                "clock_source": CLOCK_FROM_SDP,
                "jitter_unknown": f"SDP rtpmap clock {clock} Hz of payload type {pt} is "
                "not one the RTP kernel measured jitter for",
            }
        return found | {"clock_source": CLOCK_FROM_SDP}
    if stream.get("payload_codec") == "opus":
        found = candidates.figures(OPUS_CLOCK_HZ)
        if found is not None:
            return found | {"clock_source": CLOCK_FROM_OPUS}
    clock = candidates.inferred_clock_hz()
    if clock is None:
        return {}  # the kernel's reason stands: no rtpmap, no clock
    found = candidates.figures(clock)
    return {} if found is None else found | {"clock_source": CLOCK_INFERRED}
