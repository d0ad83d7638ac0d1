"""IP addresses as the pipeline keeps them (two int64 halves) and as people read them."""

from __future__ import annotations

import ipaddress
from socket import inet_ntoa as _inet_ntoa

_MASK64 = (1 << 64) - 1


def format_ip(version: int, hi: int, lo: int) -> str:
    """Render an address kept as two int64 halves (IPv4 in IPv4-mapped form)."""
    if version == 4:
        # The hot path (every flow's context): str(IPv4Address) costs ~5x more.
        return _inet_ntoa((lo & 0xFFFFFFFF).to_bytes(4, "big"))
    return str(ipaddress.IPv6Address(((hi & _MASK64) << 64) | (lo & _MASK64)))
