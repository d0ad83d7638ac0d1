"""Numbers written as text in the wire protocols (SIP, SDP headers and attributes).

``str.isdigit`` is true for every Unicode digit, superscripts included ("²", from a
Latin-1 byte 0xB2 or UTF-8 C2 B2), and ``int`` refuses those; ``int`` also refuses runs
of more than 4300 digits (Python's ``sys.int_max_str_digits``). A field the sender writes
must not reach ``int`` on ``isdigit`` alone: a ValueError there is a crash on attacker
input. The grammars (RFC 3261 §25.1 DIGIT, RFC 8866 §9) allow ASCII digits only, and no
number voipscope reads from them needs more than 19 digits (CSeq, lengths, Expires, SSRCs
and priorities are 32-bit; ports 16-bit).
"""

from __future__ import annotations

MAX_DIGITS = 19  # every int64 fits


def is_decimal(text: str, max_digits: int = MAX_DIGITS) -> bool:
    """True for 1 to ``max_digits`` ASCII digits 0-9."""
    return len(text) <= max_digits and text.isascii() and text.isdigit()
