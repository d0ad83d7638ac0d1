"""Windows over capture bytes: mmap for regular files, buffered reads for streams.

Peak RSS counts the touched pages of a mapping, so a big file is mapped one window at a
time and each window is let go before the next (DESIGN §2). gzip and stdin cannot be
mapped; they are read into one reusable buffer instead.
"""

from __future__ import annotations

import gzip
import mmap
import os
import zlib
from typing import BinaryIO, Protocol

import numpy as np


class Windows(Protocol):
    size_hint: int | None  # total bytes when known (for progress), else None

    def window(self, start: int, min_bytes: int) -> tuple[np.ndarray, bool]:
        """Bytes from absolute offset ``start``: at least ``min_bytes`` unless the input
        ends first. Returns the array and whether it reaches the end of the input."""
        ...

    def close(self) -> None: ...


class MappedWindows:
    """Maps ``[start, start + window_bytes)`` of a regular file, one window at a time."""

    def __init__(self, path: str, window_bytes: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self.size_hint = os.fstat(self._fd).st_size
        self._window_bytes = window_bytes

    def window(self, start: int, min_bytes: int) -> tuple[np.ndarray, bool]:
        size = self.size_hint or 0
        if start >= size:
            return np.empty(0, np.uint8), True
        aligned = start - start % mmap.ALLOCATIONGRANULARITY
        stop = min(size, start + max(self._window_bytes, min_bytes))
        # MAP_POPULATE faults the window in with one call instead of one fault per page.
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapping = mmap.mmap(
            self._fd, stop - aligned, flags=flags, prot=mmap.PROT_READ, offset=aligned
        )
        # The array keeps the mapping alive; dropping the last array unmaps it.
        view = np.frombuffer(mapping, dtype=np.uint8)[start - aligned :]
        return view, stop == size

    def close(self) -> None:
        os.close(self._fd)


class StreamWindows:
    """Reads a non-seekable stream (gzip, stdin) into a buffer that slides forward."""

    def __init__(
        self,
        stream: BinaryIO,
        window_bytes: int,
        size_hint: int | None = None,
        also_close: BinaryIO | None = None,
    ) -> None:
        self._stream = stream
        # readinto1: at most one raw read per call, so when a gzip stream turns out to be
        # cut, the bytes inflated before the error are already counted, not lost inside
        # one big buffered readinto() that raises.
        self._read_into = getattr(stream, "readinto1", None) or stream.readinto  # type: ignore[attr-defined]
        # A GzipFile over a file object does not close that object; close it too.
        self._also_close = also_close
        self._window_bytes = window_bytes
        self._buf = np.empty(window_bytes, np.uint8)
        self._buf_start = 0  # absolute offset of _buf[0]
        self._filled = 0
        self._eof = False
        self.size_hint = size_hint
        self.damage: Exception | None = None  # the error that ended a damaged gzip stream

    def window(self, start: int, min_bytes: int) -> tuple[np.ndarray, bool]:
        if start < self._buf_start:
            raise ValueError("stream windows only move forward")
        keep_from = min(start - self._buf_start, self._filled)
        want = max(self._window_bytes, min_bytes)
        # A new buffer per window, never the old one refilled: batches of the previous
        # window may still be in use (the pipeline decodes one window ahead in a thread).
        kept = self._filled - keep_from
        # The tail kept can exceed ``want`` after a window grown for a big record.
        buf = np.empty(max(want, kept), np.uint8)
        # Move the unconsumed tail to the front; this copy is at most one record.
        buf[:kept] = self._buf[keep_from : self._filled]
        self._buf, self._buf_start, self._filled = buf, start, kept
        view = memoryview(self._buf)
        while self._filled < want and not self._eof:
            try:
                got = self._read_into(view[self._filled : want])
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                # A cut or damaged gzip: what was inflated before the damage is still
                # good, so it ends the input here; the reader reports where (DESIGN §4).
                self.damage = exc
                self._eof = True
                break
            if not got:
                self._eof = True
                break
            self._filled += got
        return self._buf[: self._filled], self._eof

    def close(self) -> None:
        self._stream.close()
        if self._also_close is not None:
            self._also_close.close()
