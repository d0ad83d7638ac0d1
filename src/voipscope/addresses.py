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


def format_endpoint(ip: str, port: object) -> str:
    """``ip:port`` as people read it, an IPv6 address in brackets (RFC 3986 §3.2.2); the
    bare address when there is no port."""
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def ip_halves(text: str) -> tuple[int, int]:
    """The two int64 halves the pipeline keeps an address as (``format_ip``'s inverse):
    IPv4 in IPv4-mapped form (RFC 4291 §2.5.5.2). ValueError for anything else."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv4Address):
        value = (0xFFFF << 32) | int(address)
    else:
        value = int(address)
    hi, lo = value >> 64, value & _MASK64
    return _signed(hi), _signed(lo)


def _signed(half: int) -> int:
    return half - (1 << 64) if half >= 1 << 63 else half
