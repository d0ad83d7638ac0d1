"""Fixed pools of table rows for numba kernels: a stack of released rows in ``free`` and
two counters in the kernel's ``meta`` array (how many rows are on the stack, how many
were ever used). Released rows are reused first, so a pool's touched memory follows the
most rows live at once, not how many came and went."""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True, inline="always")
def pop_row(free, meta, top, high, capacity):  # type: ignore[no-untyped-def]
    """A free row from the stack (``meta[top]`` rows on it), else a never-used one
    (``meta[high]`` used so far), else -1: the pool is full."""
    if meta[top] > 0:
        meta[top] -= 1
        return free[meta[top]]
    if meta[high] < capacity:
        meta[high] += 1
        return meta[high] - 1
    return -1
