"""Byte-order helpers for numba kernels: read unsigned integers from a uint8 array.

Every value is widened to int64 before shifting so that numba never wraps in uint8 and
never mixes uint64 with int64 (which numba promotes to float64).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def u16be(buf: np.ndarray, p: int) -> int:
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@njit(cache=True, inline="always")
def u16le(buf: np.ndarray, p: int) -> int:
    return (np.int64(buf[p + 1]) << 8) | np.int64(buf[p])


@njit(cache=True, inline="always")
def u32be(buf: np.ndarray, p: int) -> int:
    return (
        (np.int64(buf[p]) << 24)
        | (np.int64(buf[p + 1]) << 16)
        | (np.int64(buf[p + 2]) << 8)
        | np.int64(buf[p + 3])
    )


@njit(cache=True, inline="always")
def u32le(buf: np.ndarray, p: int) -> int:
    return (
        (np.int64(buf[p + 3]) << 24)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 1]) << 8)
        | np.int64(buf[p])
    )


@njit(cache=True, inline="always")
def u16(buf: np.ndarray, p: int, big_endian: bool) -> int:
    return u16be(buf, p) if big_endian else u16le(buf, p)


@njit(cache=True, inline="always")
def u32(buf: np.ndarray, p: int, big_endian: bool) -> int:
    return u32be(buf, p) if big_endian else u32le(buf, p)


@njit(cache=True, inline="always")
def u64be_signed(buf: np.ndarray, p: int) -> int:
    """Eight bytes big-endian as an int64 bit pattern (IPv6 address halves)."""
    return (u32be(buf, p) << 32) | u32be(buf, p + 4)
