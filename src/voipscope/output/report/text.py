"""Text for the HTML report: escaping, clipping and number/time formats.

Every string in the records can come from the wire (SIP From/To/User-Agent, Call-ID,
SNI, evidence quoting them), so nothing reaches the page unescaped: cells and labels
pass through :func:`esc`; only markup this package builds itself is wrapped in
:class:`Safe`. :func:`esc` also makes control and bidirectional-override characters
visible (``\\x1b``, ``\\u202e``): they cannot break the markup once escaped, but a
right-to-left override can make an attacker's caller name read as someone else's.
"""

from __future__ import annotations

import datetime as dt
import html
import re

# A cell of a few hundred characters is enough to recognise a value; the full text is
# in the Parquet/JSONL file. Also what bounds the page when every field is hostile.
MAX_CELL_CHARS = 200
MARKUP_PER_CHAR = 2  # escaped text of a cell may be this many times its character limit

# C0/C1 controls (not tab/newline), line/paragraph separators, bidi embeddings,
# overrides and isolates, zero-width marks.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


class Safe(str):
    """Markup this package built (already escaped): :func:`esc` passes it through.
    ``Safe + Safe`` is Safe; ``Safe + str`` is a TypeError, so raw text cannot ride
    along unescaped (nor get escaped twice)."""

    __slots__ = ()

    def __add__(self, other: str) -> Safe:
        if not isinstance(other, Safe):
            return NotImplemented
        return Safe(str.__add__(self, other))


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clip(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (labels that cannot wrap)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def esc(value: object, limit: int = MAX_CELL_CHARS) -> Safe:
    """``value`` as HTML text (attribute-safe too): None is an em dash. At most ``limit``
    characters, and at most MARKUP_PER_CHAR * ``limit`` characters of markup: a value of
    nothing but ``&`` or ``"`` (5-6 characters escaped each) is cut sooner, so hostile
    text cannot multiply the page's size."""
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("—")
    text = str(value)
    budget = MARKUP_PER_CHAR * limit
    shown = html.escape(_INVISIBLE.sub(_visible, text[:limit]), quote=True)
    if len(text) <= limit and len(shown) <= budget:
        return Safe(shown)
    pieces, used = [], 0
    for char in text[:limit]:
        piece = html.escape(_INVISIBLE.sub(_visible, char), quote=True)
        if used + len(piece) > budget:
            break
        pieces.append(piece)
        used += len(piece)
    return Safe(f"{''.join(pieces)}… (+{len(text) - len(pieces)} chars)")


def utc(ts: float | None, with_date: bool = True) -> str:
    """Capture time (epoch s) as UTC with milliseconds, or an em dash."""
    if ts is None:
        return "—"
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    text = when.strftime("%Y-%m-%d %H:%M:%S.%f" if with_date else "%H:%M:%S.%f")
    return text[:-3]


def num(value: float | int | None, digits: int = 1) -> str:
    """A number with thousands separators, or an em dash for null."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with its noun in the right number: "1 stream", "2,000 streams"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def seconds(span_s: float) -> str:
    """A duration a person reads at a glance: 0.25 s, 42.0 s, 3 min 5 s, 2 h 10 min."""
    if span_s < 60:
        return f"{span_s:.2f} s" if span_s < 10 else f"{span_s:.1f} s"
    minutes, secs = divmod(round(span_s), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"
