"""Numbers written as text in the wire protocols (SIP, SDP headers and attributes).

``str.isdigit`` is true for every Unicode digit, superscripts included ("²", from a
Latin-1 byte 0xB2 or UTF-8 C2 B2), and ``int`` refuses those: a field the sender writes
must not reach ``int`` on that test alone (a ValueError there is a crash on attacker
input). The grammars (RFC 3261 §25.1 DIGIT, RFC 8866 §9) allow ASCII digits only.
"""

from __future__ import annotations


def is_decimal(text: str) -> bool:
    """True for a non-empty run of ASCII digits 0-9."""
    return text.isascii() and text.isdigit()
