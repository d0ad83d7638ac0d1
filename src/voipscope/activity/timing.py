"""When a stream's packets arrive against its own RTP clock: a covert channel in the
send times (FIELD §5.8, "steganographic timing").

RTP timestamps say when each frame was sampled (RFC 3550 §5.1); a sender sends a frame
when it is ready, so a packet's arrival minus its timestamp -- its *transit*, as in
RFC 3550 §6.4.1 -- moves only with the network (queues: a continuous spread) and the
sender's scheduler. A sender that holds chosen packets back by a fixed delay to signal
symbols (inter-packet-delay modulation: e.g. 0 or 10 ms per bit, the audio untouched)
puts the transits on two or more sharp levels that far apart, in an order that carries
data. The kernel keeps each stream's transits in windows of ``TIMING_PACKETS`` sequence
numbers (0.05 ms units, relative to the stream's first packet in the first window and
to the window's first kept packet after; a number that never arrived stays empty);
:func:`analyse` judges each window as it completes and the last one when the stream
ends, and :func:`combine` makes the stream's judgement of them -- a sender that waits
ten seconds into the call before it signals is read as well as one that starts at once:

1. *Floor*: the transit minus a running minimum (the larger of the minima over the
   ``FLOOR_PACKETS`` before and after the packet): clock drift between sender and
   capture moves the floor slowly, a new route steps it; level 0 is the floor.
2. *Levels*: a histogram at ``BIN_MS``, summed over ``SMOOTH_MS``; a level is a peak
   holding at least ``MIN_LEVEL_SHARE`` of the packets, with the bins around it down to
   a tenth of its height (a level's own spread: network jitter).
3. *Coded* when there are at least two levels, at least ``MIN_SEPARATION_MS`` apart and at
   least ``SEPARATION_OVER_SPREAD`` times their spread, holding at least
   ``MIN_CODED_SHARE`` of the packets, and the next level is hard to predict from the
   current one (conditional entropy at least ``MIN_ENTROPY_SHARE`` of log2(levels)):
   a link or sender that delivers in bursts also puts packets on levels, but in a fixed
   order (0, 20, 0, 20 ms; a sawtooth of power-save bursts), which carries nothing.
4. *Decoded*: symbol = level number; with 2 or 4 levels, 1 or 2 bits per packet (the
   later level the higher value), most significant first, as bytes from the window's
   first sequence number on; a missing packet is an erasure (its bits read 0, listed).
   A window is a whole number of bytes (512 packets: 64 or 128), so the coded windows'
   bytes, one after the other, are the message from the first coded window's start.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numba import njit

TIMING_PACKETS = 512  # sequence numbers kept per stream (~10 s at 50 packets/s)
UNITS_PER_MS = 20  # stored in 0.05 ms
EMPTY = np.int16(-32768)  # a sequence number that never arrived (or came out of order)
LIMIT_UNITS = 32767

FLOOR_PACKETS = 64  # the running minimum's window: a floor that clock drift cannot move far
BIN_MS = 0.25
SMOOTH_MS = 2.0  # levels are found in the histogram summed over this much
MIN_PACKETS = 64  # judged with fewer: nothing said
MIN_LEVEL_SHARE = 0.08
MIN_SEPARATION_MS = 2.0
SEPARATION_OVER_SPREAD = 4.0
MIN_CODED_SHARE = 0.9
MIN_ENTROPY_SHARE = 0.6
MAX_LEVELS = 8
MAX_LEVEL_MS = 250.0  # a level lies within this much of the floor
MIN_TEXT_SHARE = 0.9  # of the decoded bytes printable: the data is text
# Zero bytes in a row (32 packets on level 0) are the sender idling between messages, not
# part of one: a bit flipped in the idle before or after a message (a packet the
# scheduler sent late) is a stray byte beyond them, not text that failed to read.
IDLE_BYTES = 4
PRINTABLE = frozenset((*range(32, 127), 9, 10, 13))  # ASCII text, tab and line ends
MAX_CODED_WINDOWS = 64  # coded windows kept per stream (a message of 4-8 kB); more counted
MAX_ERASURES = 32  # erasure positions listed


def new_state(rows: int) -> np.ndarray:
    return np.full((rows, TIMING_PACKETS), EMPTY, np.int16)


@njit(cache=True, nogil=True)
def reset_row(state: np.ndarray, row: int) -> None:  # pragma: no cover - numba
    for k in range(TIMING_PACKETS):
        state[row, k] = EMPTY


@njit(cache=True, nogil=True)
def kept(state: np.ndarray, row: int) -> int:  # pragma: no cover - numba
    """How many transits a row holds."""
    n = 0
    for k in range(TIMING_PACKETS):
        if state[row, k] != EMPTY:
            n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def account(
    state: np.ndarray, row: int, position: int, transit_ms: float
) -> None:  # pragma: no cover - numba
    """Transit of the packet ``position`` sequence numbers after the stream's first."""
    if 0 <= position < TIMING_PACKETS:
        units = round(transit_ms * UNITS_PER_MS)
        state[row, position] = max(-LIMIT_UNITS, min(LIMIT_UNITS, units))


@njit(cache=True, nogil=True)
def rescale(
    state: np.ndarray, row: int, step_ticks: int, from_hz: int, to_hz: int
) -> None:  # pragma: no cover - numba
    """Move a row's transits from one clock to another, for a stream whose timestamps
    advanced by ``step_ticks`` per sequence number: the timestamp term of the transit at
    position k is k x step_ticks / clock."""
    per_position_ms = step_ticks * 1000.0 * (1.0 / from_hz - 1.0 / to_hz)
    for k in range(TIMING_PACKETS):
        if state[row, k] != EMPTY:
            units = state[row, k] + round(k * per_position_ms * UNITS_PER_MS)
            state[row, k] = max(-LIMIT_UNITS, min(LIMIT_UNITS, units))


def analyse(transits: np.ndarray) -> dict[str, Any] | None:
    """The judgement of one stream's kept transits (see the module), or None with fewer
    than MIN_PACKETS of them."""
    arrived = transits != EMPTY
    count = int(arrived.sum())
    if count < MIN_PACKETS:
        return None
    relative = _above_floor(transits, arrived)
    values = relative[arrived]
    levels, spreads, shares = _levels(values)
    out: dict[str, Any] = {
        "packets": count,
        "levels_ms": [round(x, 2) for x in levels],
        "level_shares": [round(x, 3) for x in shares],
        "spread_ms": round(max(spreads), 2) if spreads else None,
        "coded": False,
    }
    if len(levels) < 2:
        return out
    separation = min(b - a for a, b in itertools.pairwise(levels))
    spread = max(max(spreads), BIN_MS)
    symbols = _symbols(relative, levels)
    on_levels = symbols[symbols >= 0]
    entropy = _conditional_entropy(on_levels, len(levels))
    out["separation_ms"] = round(separation, 2)
    out["entropy_bits"] = round(float(entropy), 3)
    out["coded"] = bool(
        separation >= MIN_SEPARATION_MS
        and separation >= SEPARATION_OVER_SPREAD * spread
        and on_levels.size >= MIN_CODED_SHARE * count
        and entropy >= MIN_ENTROPY_SHARE * math.log2(len(levels))
    )
    if out["coded"] and len(levels) in (2, 4):
        out.update(_decode(symbols, int(math.log2(len(levels)))))
    return out


def continue_code(transits: np.ndarray, levels_ms: list[float]) -> dict[str, Any] | None:
    """A window right after a coded one that is not coded on its own (a message's tail
    followed by the sender's idle on level 0 leaves too little to measure the levels by,
    and too predictable a sequence): read it on the levels the code had, when at least
    MIN_CODED_SHARE of its packets sit on them and some on a level above the floor. The
    ``decoded_*`` fields of such a window, marked ``continued``; None otherwise."""
    if len(levels_ms) not in (2, 4):
        return None
    arrived = transits != EMPTY
    count = int(arrived.sum())
    if count < MIN_PACKETS:
        return None
    relative = _above_floor(transits, arrived)
    symbols = _symbols(relative, levels_ms)
    on = symbols[symbols >= 0]
    if on.size < MIN_CODED_SHARE * count or not (on > 0).any():
        return None
    out = _decode(symbols, int(math.log2(len(levels_ms))))
    out["packets"] = count
    out["continued"] = True
    return out


def _above_floor(transits: np.ndarray, arrived: np.ndarray) -> np.ndarray:
    """Per sequence number, the transit in ms above the running floor (NaN where none
    arrived)."""
    ms = transits.astype(np.float64) / UNITS_PER_MS
    relative = np.full(ms.shape, np.nan)
    relative[arrived] = ms[arrived] - _running_floor(ms, arrived)
    return relative


def _running_floor(ms: np.ndarray, arrived: np.ndarray) -> np.ndarray:
    """Per arrived sequence number, the larger of the minimum transit over the
    FLOOR_PACKETS before it and over the FLOOR_PACKETS after it (each including it): a
    step in the network's delay (a new route) is then followed at once on both of its
    sides, where a window centred on the packet would measure the packets beside the step
    against the floor of the other side."""
    filled = np.where(arrived, ms, np.inf)
    pad = np.full(FLOOR_PACKETS, np.inf)
    view = np.lib.stride_tricks.sliding_window_view
    before = view(np.concatenate([pad, filled]), FLOOR_PACKETS + 1).min(axis=1)
    after = view(np.concatenate([filled, pad]), FLOOR_PACKETS + 1).min(axis=1)
    # Near either end one side holds too few packets to know the floor: the other decides
    # (and where neither is whole, the lower of the two).
    index = np.arange(ms.size)
    whole_before = index >= FLOOR_PACKETS
    whole_after = index < ms.size - FLOOR_PACKETS
    floor = np.where(
        whole_before & whole_after,
        np.maximum(before, after),
        np.where(whole_before, before, np.where(whole_after, after, np.minimum(before, after))),
    )
    return floor[arrived]


def _levels(values: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Peaks of the distribution of ``values`` (ms above the floor): their centre (mean of
    the values in the peak), spread (their standard deviation) and share of all values.
    The histogram is summed over SMOOTH_MS around each bin first, so a level that jitter
    spreads evenly over a few bins still stands out as one peak; a peak reaches out to
    where the sums fall to a tenth of its own."""
    # Transits far above the floor (a stall, a burst after one) are off every level
    # (they count against MIN_CODED_SHARE), not a reason to give up on the rest.
    near = values[values <= MAX_LEVEL_MS]
    if near.size == 0:
        return [], [], []
    bins = int(float(near.max()) / BIN_MS) + 2
    hist = np.bincount((near / BIN_MS).astype(np.int64), minlength=bins)
    width = 2 * int(SMOOTH_MS / BIN_MS / 2) + 1
    padded = np.concatenate([np.zeros(width // 2, np.int64), hist, np.zeros(width // 2, np.int64)])
    smooth = np.convolve(padded, np.ones(width, np.int64), mode="valid")  # one per bin
    total = values.size
    levels: list[float] = []
    spreads: list[float] = []
    shares: list[float] = []
    taken = np.zeros(bins, bool)
    for peak in np.argsort(smooth, kind="stable")[::-1]:
        if smooth[peak] < MIN_LEVEL_SHARE * total or len(levels) >= MAX_LEVELS:
            break
        if taken[peak]:
            continue
        low, high = peak, peak
        floor = smooth[peak] / 10
        while low > 0 and smooth[low - 1] > floor and not taken[low - 1]:
            low -= 1
        while high < bins - 1 and smooth[high + 1] > floor and not taken[high + 1]:
            high += 1
        taken[low : high + 1] = True
        inside = near[(near >= low * BIN_MS) & (near < (high + 1) * BIN_MS)]
        share = inside.size / total
        if share < MIN_LEVEL_SHARE:
            continue
        levels.append(float(inside.mean()))
        spreads.append(float(inside.std()))
        shares.append(share)
    order = np.argsort(levels)
    return ([levels[k] for k in order], [spreads[k] for k in order], [shares[k] for k in order])


def _symbols(relative: np.ndarray, levels: list[float]) -> np.ndarray:
    """Per sequence number: the nearest level's number, -1 where nothing arrived or the
    transit lies farther from its nearest level than a third of the gap to the next
    level (on the outer side: to the gap on the inner side)."""
    centres = np.asarray(levels)
    out = np.full(relative.shape, -1, np.int64)
    arrived = ~np.isnan(relative)
    distance = np.abs(relative[arrived, None] - centres[None, :])
    nearest = distance.argmin(axis=1)
    gaps = np.diff(centres)
    reach = np.minimum(
        np.concatenate([gaps, [np.inf]]), np.concatenate([[np.inf], gaps])
    )  # to the nearer neighbour
    close = distance[np.arange(nearest.size), nearest] <= reach[nearest] / 3
    out[np.flatnonzero(arrived)[close]] = nearest[close]
    return out


def _conditional_entropy(symbols: np.ndarray, levels: int) -> float:
    """H(next level | this level) in bits over consecutive symbols."""
    if symbols.size < 2:
        return 0.0
    pairs = np.zeros((levels, levels))
    np.add.at(pairs, (symbols[:-1], symbols[1:]), 1)
    total = pairs.sum()
    entropy = 0.0
    for row in pairs:
        n = row.sum()
        if n == 0:
            continue
        p = row[row > 0] / n
        entropy -= (n / total) * float((p * np.log2(p)).sum())
    return entropy


def _decode(symbols: np.ndarray, bits_per_symbol: int) -> dict[str, Any]:
    """Symbols from the stream's first sequence number to the last one on a level, as
    bytes (most significant bits first): the message is taken to start with the stream,
    so a first packet lost, or kept transits dropped (rtp_kernel._transit_clock), leaves
    erasures in place instead of shifting every later byte. Erasures (-1) read 0 and are
    listed by position."""
    on = np.flatnonzero(symbols >= 0)
    span = symbols[: on[-1] + 1]
    erasures = np.flatnonzero(span < 0)
    bits: list[int] = []
    for s in np.maximum(span, 0).tolist():
        bits.extend((s >> k) & 1 for k in range(bits_per_symbol - 1, -1, -1))
    whole = len(bits) // 8 * 8
    data = np.packbits(np.asarray(bits[:whole], np.uint8)).tobytes()
    text, offset = _text(data)
    return {
        "bits_per_packet": bits_per_symbol,
        "decoded_hex": data.hex(),
        "decoded_text": text,
        "text_bit_offset": offset,
        "first_packet": int(on[0]),
        "erasures": erasures.tolist()[:MAX_ERASURES],
        "bits_left_over": len(bits) - whole,
    }


def _text(data: bytes) -> tuple[str | None, int | None]:
    """The bytes as text, and the bit they start at: read from each of the 8 bit offsets,
    the reading with the largest share of printable ASCII, when that is at least
    MIN_TEXT_SHARE (a packet delayed by the sender's scheduler or the network can flip a
    bit: "?" there); else (None, None). A sender that waits before it signals, or is done,
    sends on level 0: zero bytes on either side are its idle, not text, and of stretches
    between idles (IDLE_BYTES) the longest is the message -- and a message it starts a few
    packets into a byte is read at its own alignment."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    best: tuple[float, int, bytes] | None = None
    for offset in range(8):
        usable = (bits.size - offset) // 8 * 8
        shifted = _longest_between_idles(np.packbits(bits[offset : offset + usable]).tobytes())
        if not shifted:
            continue
        share = sum(b in PRINTABLE for b in shifted) / len(shifted)
        if best is None or share > best[0]:
            best = (share, offset, shifted)
    if best is None or best[0] < MIN_TEXT_SHARE:
        return None, None
    _, offset, shifted = best
    return "".join(chr(b) if b in PRINTABLE else "?" for b in shifted), offset


def _longest_between_idles(data: bytes) -> bytes:
    """The longest stretch of ``data`` between runs of IDLE_BYTES zero bytes (and the
    ends), without the zero bytes at its own ends."""
    parts = [data]
    idle = b"\0" * IDLE_BYTES
    if idle in data:
        parts, part, zeros = [], bytearray(), 0
        for byte in data:
            zeros = zeros + 1 if byte == 0 else 0
            part.append(byte)
            if zeros == IDLE_BYTES:
                parts.append(bytes(part))
                part = bytearray()
        parts.append(bytes(part))
    return max((p.strip(b"\0") for p in parts), key=len, default=b"")


def keep_window(
    kept: list[tuple[int, dict[str, Any]]], window: int, judged: dict[str, Any] | None
) -> bool:
    """Keep a complete window's judgement for :func:`combine`: the first judged one (an
    ordinary stream is described by it), and coded ones up to MAX_CODED_WINDOWS. False
    when a coded window had to be left out."""
    if judged is None:
        return True
    message = judged["coded"] or judged.get("continued", False)
    if not kept or (message and len(kept) <= MAX_CODED_WINDOWS):
        kept.append((window, judged))
        return True
    return not message


def combine(
    windows: list[tuple[int, dict[str, Any]]], judged: int, coded_left_out: int = 0
) -> dict[str, Any] | None:
    """A stream's judgement from its windows' (window number, judgement), in order;
    ``judged`` windows were judged in all (those not kept were not coded, but the ones
    ``coded_left_out`` counts). Not coded anywhere: the first window's judgement. Coded:
    the first coded window's levels, with the windows' bytes one after the other (a
    window's own bytes padded to its full length where a later coded window follows, so
    each starts at its own place) and positions counted from the stream's first packet."""
    if not windows:
        return None
    coded = [(w, j) for w, j in windows if j["coded"]]
    base = dict(coded[0][1] if coded else windows[0][1])
    base["windows"] = judged
    base["packets"] = sum(j["packets"] for _, j in (coded or windows[:1]))
    if not coded:
        return base
    base["coded_windows"] = [w for w, _ in coded]
    if coded_left_out:
        base["coded_windows_left_out"] = coded_left_out
    if "decoded_hex" not in coded[0][1]:
        return base  # coded on 3 or 5+ levels: not read as bits
    data = b""
    erasures: list[int] = []
    # The coded windows, and the windows each code continued into (continue_code).
    decoded = [(w, j) for w, j in windows if "decoded_hex" in j and w >= coded[0][0]]
    for n, (w, j) in enumerate(decoded):
        part = bytes.fromhex(j["decoded_hex"])
        if n + 1 < len(decoded):
            part = part.ljust(TIMING_PACKETS * j["bits_per_packet"] // 8, b"\0")
        data += part
        erasures += [w * TIMING_PACKETS + e for e in j["erasures"]]
    first_window = coded[0][0]
    base["first_packet"] = first_window * TIMING_PACKETS + int(coded[0][1]["first_packet"])
    base["decoded_hex"] = data.hex()
    base["decoded_text"], base["text_bit_offset"] = _text(data)
    base["erasures"] = erasures[:MAX_ERASURES]
    base["bits_left_over"] = decoded[-1][1]["bits_left_over"]
    continued = [w for w, j in decoded if j.get("continued")]
    if continued:
        base["continued_windows"] = continued
    return base


def judge_window(
    transits: np.ndarray, window: int, code: tuple[int, list[float]] | None
) -> tuple[dict[str, Any] | None, tuple[int, list[float]] | None]:
    """One complete (or the last) window of a stream: its judgement, read on the levels
    of ``code`` -- (window, levels) of the coded or continued window just before it, if
    any -- where it is not coded itself; and the code the next window continues."""
    judged = analyse(transits)
    if judged is None:
        return None, None
    if judged["coded"]:
        return judged, (window, judged["levels_ms"])
    if code is not None and code[0] == window - 1:
        tail = continue_code(transits, code[1])
        if tail is not None:
            return {**judged, **tail}, (window, code[1])
    return judged, None
