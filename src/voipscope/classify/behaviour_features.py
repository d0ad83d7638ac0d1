"""Behavioural features of a window of a flow's packets (vectorised over windows).

The features are chosen to hold across apps, so that a model fitted without an app still
finds its calls (leave-one-app-out, bench/fit_behaviour.py):

- **clocked share** per direction: the share of packets followed, within the next few
  packets of the same direction, by one a codec frame later (10/20/30/40/60 ms, RFC 3551
  §4.5, RFC 7587 §4) or two frames later (one lost), weighed by how much this looks like
  a sender's clock: the *mean* residual of the matched gaps must sit on the frame time
  (network jitter moves single packets, not the mean; a game tick at 16.7 or 33.3 ms or
  a timer loop with overhead at 18.2 ms sits a steady few percent off it), and the
  matched packets must keep their phase on that period (random pacing that merely
  averages a frame time does not). Looking a few packets ahead lets audio be found when
  video or RTCP packets of the same 5-tuple (BUNDLE) are interleaved with it.
- sizes: the share of voice-sized (20-399 B) or video-sized (>= 900 B) payloads, and of
  the busier direction's packets that repeat the previous size exactly (a constant-rate
  generator; also G.711, which the clock features still find);
- bursts: the share of the busier direction's gaps under 4 ms (bulk transfers; video
  frames split into packets);
- TCP (RFC 4571 framing, TURN over TCP/TLS): media over TCP is rarer and less regular.

Left out after leave-one-app-out tests (bench/fit_behaviour.py, docs/identification.md):
the packet rate and the size variation (with them, unclocked two-way traffic such as a
game at 80 pkt/s scored as media), and the two-way balance and alternation of the
directions (they did not help on held-out apps: one-way media - a muted side, a capture
of one direction - is common in the shared captures).

Directions are ordered by packet count, not by who spoke first: the side that sent the
first packet is an accident of the capture, the busier side is a property of the flow.
Nothing here can encode an app's exact packet sizes (no fine size histogram), so a
model over them cannot memorise one app's codec.
"""

from __future__ import annotations

import numpy as np

from voipscope.classify import behaviour_kernel as K

# The fewest window packets worth an opinion: below this the statistics are noise.
MIN_PACKETS = 12
FRAME_TIMES_US = (10_000, 20_000, 30_000, 40_000, 60_000)
# A gap counts for a frame time F when within this share of F (or of 2F after a loss)...
FRAME_TOLERANCE = 0.25
# ... and the direction's matched gaps average to F within about this share: the share is
# weighed by exp(-(mean residual / scale)^2): 1 on the clock, 0.70 at 3 % off it (a
# sender whose 60 ms frames leave every 58 ms), 0.04 at 9 % off (an 18.2 ms timer loop
# against 20 ms framing), nothing at the 11-25 % of game ticks (60/30/20 Hz).
CLOCK_SCALE = 0.05
# Phase coherence (0..1) of the matched packets: random phases give about 1/sqrt(hits),
# 0.15-0.2 in a window; a 20 ms clock behind 3 ms of jitter still gives 0.7. Below
# RANDOM_COHERENCE the share counts nothing, from RANDOM_COHERENCE + COHERENCE_SPAN on fully:
# a gate against random pacing, not a penalty on jitter.
RANDOM_COHERENCE = 0.25
COHERENCE_SPAN = 0.25
LOOKAHEAD_PACKETS = 4  # same-direction packets searched for the next frame
BURST_GAP_US = 4_000
VOICE_BYTES = (20, 400)
VIDEO_BYTES = 900

NAMES = ("clocked_best", "clocked_both", "media_sized", "burst_major", "repeat_major", "tcp")


def feature_matrix(packed: np.ndarray, count: np.ndarray, transport: np.ndarray) -> np.ndarray:
    """(n, len(NAMES)) float64 features of ``n`` windows: ``packed`` (n, WINDOW_PACKETS)
    kernel packets of which the first ``count`` are valid; ``transport`` 6 | 17."""
    n, width = packed.shape
    out = np.zeros((n, len(NAMES)))
    if n == 0:
        return out
    t_us, size, d = K.unpack(packed)
    valid = np.arange(width)[None, :] < count[:, None]
    t_us = t_us.astype(np.float64)
    size = size.astype(np.float64)
    c1 = ((d == 1) & valid).sum(axis=1)
    c0 = count - c1
    major = (c1 > c0).astype(np.int64)
    a = _direction(t_us, size, valid & (d == major[:, None]))
    b = _direction(t_us, size, valid & (d != major[:, None]))
    packets = np.maximum(count, 1).astype(np.float64)
    voice = (size >= VOICE_BYTES[0]) & (size < VOICE_BYTES[1])
    sized = ((voice | (size >= VIDEO_BYTES)) & valid).sum(axis=1)
    columns = (
        np.maximum(a["clocked"], b["clocked"]),
        np.minimum(a["clocked"], b["clocked"]),
        sized / packets,
        a["burst"],
        a["repeat"],
        (transport == K.TCP).astype(np.float64),
    )
    for k, column in enumerate(columns):
        out[:, k] = column
    return out


def _direction(t_us: np.ndarray, size: np.ndarray, mine: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of one direction's packets (``mine``) of each window."""
    n, width = t_us.shape
    count = mine.sum(axis=1).astype(np.float64)
    # This direction's packets first, in capture order: consecutive columns are then
    # consecutive packets of the direction.
    order = np.argsort(~mine, axis=1, kind="stable")
    t = np.take_along_axis(t_us, order, axis=1)
    s = np.take_along_axis(size, order, axis=1)
    ok = np.take_along_axis(mine, order, axis=1)
    pair = ok[:, 1:] & ok[:, :-1]
    gaps = np.diff(t, axis=1)
    n_gaps = np.maximum(count - 1.0, 1.0)
    clocked = np.zeros(n)
    for frame in FRAME_TIMES_US:
        residual = np.full((n, width), np.inf)
        for lag in range(1, LOOKAHEAD_PACKETS + 1):
            if lag >= width:
                break
            gap = t[:, lag:] - t[:, :-lag]
            both = ok[:, lag:] & ok[:, :-lag]
            r1 = (gap - frame) / frame
            r = r1
            if lag == 1:  # one frame lost: two frame times to the next packet
                r2 = (gap - 2 * frame) / frame
                r = np.where(np.abs(r2) < np.abs(r1), r2, r1)
            r = np.where(both & (np.abs(r) <= FRAME_TOLERANCE), r, np.inf)
            head = residual[:, :-lag]
            residual[:, :-lag] = np.where(np.abs(r) < np.abs(head), r, head)
        hit = np.isfinite(residual)
        hits = hit.sum(axis=1).astype(np.float64)
        mean_residual = np.where(hit, residual, 0.0).sum(axis=1) / np.maximum(hits, 1.0)
        on_clock = np.exp(-((mean_residual / CLOCK_SCALE) ** 2)) * (hits >= 3)
        # Phase coherence on the period the hits average to: a sender's clock keeps the
        # packets' phase (t mod period) in place over the whole run, loss and silence
        # included, and network jitter only blurs it; gaps that merely scatter around a
        # frame time (DNS queries paced by random sleeps) walk the phase around the
        # circle, however symmetric their residuals are.
        angle = (2.0 * np.pi / (frame * (1.0 + mean_residual)))[:, None] * t
        coherence = np.hypot(
            np.where(hit, np.cos(angle), 0.0).sum(axis=1),
            np.where(hit, np.sin(angle), 0.0).sum(axis=1),
        ) / np.maximum(hits, 1.0)
        in_phase = np.clip((coherence - RANDOM_COHERENCE) / COHERENCE_SPAN, 0.0, 1.0)
        share = hits / n_gaps * on_clock * in_phase
        better = share > clocked
        clocked = np.where(better, share, clocked)
    return {
        "count": count,
        "clocked": np.minimum(clocked, 1.0),
        "burst": ((gaps < BURST_GAP_US) & pair).sum(axis=1) / n_gaps,
        "repeat": ((np.diff(s, axis=1) == 0) & pair).sum(axis=1) / n_gaps,
    }


def mean_payload_bytes(packed: np.ndarray, count: np.ndarray) -> np.ndarray:
    valid = np.arange(packed.shape[1])[None, :] < count[:, None]
    size = np.where(valid, K.unpack(packed)[1], 0)
    return size.sum(axis=1) / np.maximum(count, 1)
