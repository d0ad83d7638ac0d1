"""The shape of a two-sided conversation from each side's talk spurts: how much each
talked, how much they talked over each other, how much nobody talked."""

from __future__ import annotations

from collections.abc import Sequence

Spurt = tuple[float, float]  # start, end (seconds)


def merged(spurts: Sequence[Spurt]) -> list[Spurt]:
    out: list[Spurt] = []
    for start, end in sorted(spurts):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def total(spurts: Sequence[Spurt]) -> float:
    return sum(end - start for start, end in merged(spurts))


def overlap(a: Sequence[Spurt], b: Sequence[Spurt]) -> float:
    """Seconds both sides talk at once (double talk)."""
    a, b = merged(a), merged(b)
    i = j = 0
    out = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def conversation(
    a: Sequence[Spurt], b: Sequence[Spurt], start: float, end: float
) -> dict[str, float]:
    """Shares of the window [start, end] (seconds): each side talking, double talk,
    silence. Spurts are clipped to the window."""
    span = max(end - start, 0.0)
    if span == 0.0:
        return {"a_talk_pct": 0.0, "b_talk_pct": 0.0, "double_talk_pct": 0.0, "silence_pct": 0.0}
    clip = lambda spurts: [(max(s, start), min(e, end)) for s, e in spurts if e > start and s < end]  # noqa: E731
    a, b = clip(a), clip(b)
    talk_a, talk_b, both = total(a), total(b), overlap(a, b)
    anyone = talk_a + talk_b - both
    return {
        "a_talk_pct": 100.0 * talk_a / span,
        "b_talk_pct": 100.0 * talk_b / span,
        "double_talk_pct": 100.0 * both / span,
        "silence_pct": 100.0 * (span - anyone) / span,
    }
