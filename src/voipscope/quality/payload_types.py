"""RTP payload types -> encoding, clock rate and media (RFC 3551 §6), with SDP overrides.

The jitter of a stream is only defined in units of its RTP clock (RFC 3550 §6.4.1), so a
dynamic payload type (96-127, RFC 3551 §3) without an SDP ``a=rtpmap`` has no jitter in
milliseconds: the stream reports it as unknown, with the reason. The calls stage may
still fill it in from the call's rtpmap, or from a clock the stream's own timestamps
prove (quality.clock_candidates).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from voipscope.dissect.rtp import STATIC_PAYLOAD_TYPES
from voipscope.text_fields import is_decimal

# RFC 3551 §3: 96-127 are assigned dynamically (by SDP a=rtpmap, RFC 8866 §6.6).
DYNAMIC_PT_FIRST = 96
PT_COUNT = 128  # the payload type is 7 bits (RFC 3550 §5.1)
# RFC 3551 §4.5.13 / RFC 3389: comfort noise; 19 is its pre-RFC 3389 number that tshark
# also treats as CN.
PT_CN = 13
PT_CN_OLD = 19
# RFC 4733 §2.2.1: a telephone-event's timestamp is the start of the event and does not
# advance per packet, so its packets say nothing about arrival jitter.
TELEPHONE_EVENT = "telephone-event"

# SDP a=rtpmap overrides: payload type -> (encoding name, clock rate in Hz).
RtpMap = Mapping[int, tuple[str, int]]

__all__ = [
    "PT_CN",
    "PT_CN_OLD",
    "PT_COUNT",
    "STATIC_PAYLOAD_TYPES",
    "RtpMap",
    "clock_rate_hz",
    "clock_table_hz",
    "encoding_name",
    "jitter_unknown_reason",
    "parse_rtpmap",
]


def parse_rtpmap(value: str) -> tuple[str, int] | None:
    """(encoding, clock Hz) of an SDP rtpmap value "opus/48000/2" (RFC 8866 §6.6:
    ``<encoding name>/<clock rate>[/<encoding parameters>]``); None when malformed."""
    parts = value.strip().split("/")
    rate = parts[1] if len(parts) >= 2 else ""
    if not parts[0] or not is_decimal(rate, 9):
        return None
    return parts[0], int(rate)


def encoding_name(pt: int, rtpmap: RtpMap | None = None) -> str | None:
    """The codec name of ``pt``: SDP first, then RFC 3551's static table."""
    if rtpmap and pt in rtpmap:
        return rtpmap[pt][0]
    static = STATIC_PAYLOAD_TYPES.get(pt)
    return static[0] if static else None


def clock_rate_hz(pt: int, rtpmap: RtpMap | None = None) -> int | None:
    """The RTP clock rate of ``pt`` in Hz, or None when it cannot be known.

    A telephone-event has a clock (8000 Hz usually) but its timestamps do not advance per
    packet (RFC 4733 §2.2.1), so for jitter it counts as unknown: None.
    """
    if rtpmap and pt in rtpmap:
        name, clock = rtpmap[pt]
        if name.lower() == TELEPHONE_EVENT or clock <= 0:
            return None
        return int(clock)
    static = STATIC_PAYLOAD_TYPES.get(pt)
    return static[1] if static else None


def jitter_unknown_reason(pt: int, rtpmap: RtpMap | None = None) -> str | None:
    """Why the jitter of a stream of ``pt`` cannot be given in ms (None: it can)."""
    if clock_rate_hz(pt, rtpmap) is not None:
        return None
    if rtpmap and pt in rtpmap:
        return f"payload type {pt} is {rtpmap[pt][0]}: its timestamps do not measure time"
    if pt >= DYNAMIC_PT_FIRST:
        return f"dynamic payload type {pt} without an SDP rtpmap: clock rate unknown"
    return f"payload type {pt} is unassigned in RFC 3551: clock rate unknown"


def clock_table_hz(rtpmap: RtpMap | None = None) -> np.ndarray:
    """Clock rate per payload type 0..127 for the kernel (0: unknown)."""
    table = np.zeros(PT_COUNT, np.int64)
    for pt in range(PT_COUNT):
        table[pt] = clock_rate_hz(pt, rtpmap) or 0
    return table
