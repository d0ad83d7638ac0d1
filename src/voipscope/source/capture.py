"""Open a capture (pcap, pcapng, gzip of either, or stdin) and yield PacketBatches.

Errors that make an input unreadable raise :class:`SourceError` (exit status 3 in the
CLI). Damage after the first packets does not: every packet before the damage is
yielded and the damage is reported in :class:`CaptureInfo` (``truncated_at`` /
``corrupt_at``) so the caller can warn with the offset.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from voipscope.config import SourceConfig
from voipscope.errors import SourceError
from voipscope.source import kernels as k
from voipscope.source.batch import PacketBatch
from voipscope.source.linktypes import SUPPORTED_LINKTYPES, linktype_name
from voipscope.source.windows import MappedWindows, StreamWindows, Windows

PCAP_MAGIC_US = 0xA1B2C3D4  # draft-ietf-opsawg-pcap §4: microsecond timestamps
PCAP_MAGIC_NS = 0xA1B23C4D  # nanosecond timestamps
PCAP_MAGIC_KUZNETZOV = 0xA1B2CD34  # "modified" libpcap: 8 more bytes per record header
PCAPNG_SHB = bytes.fromhex("0a0d0d0a")
PCAPNG_BOM_LE = bytes.fromhex("4d3c2b1a")  # byte-order magic 0x1A2B3C4D as written
PCAPNG_BOM_BE = bytes.fromhex("1a2b3c4d")
GZIP_MAGIC = b"\x1f\x8b"
PCAP_FILE_HEADER_BYTES = 24
MAX_INTERFACES = 256


@dataclass(slots=True)
class CaptureInfo:
    """What the reader learnt about one input, filled in while it is read."""

    path: str
    format: str = ""  # "pcap" | "pcapng"
    compressed: bool = False
    linktypes: set[int] = field(default_factory=set)
    packets: int = 0
    bytes_total: int | None = None  # uncompressed size when known
    bytes_done: int = 0
    truncated_at: int | None = None  # offset of the record cut short by end of file
    corrupt_at: int | None = None  # offset of a record whose lengths cannot be right
    corrupt_reason: str = ""
    packets_bad_interface: int = 0
    interfaces_over_cap: int = 0
    sections: int = 0
    # Live capture only (None for files): the kernel's count of packets offered to the
    # capture socket and of those it dropped because the ring was full.
    kernel_received: int | None = None
    kernel_dropped: int | None = None

    def warnings(self) -> list[str]:
        out = []
        if self.kernel_dropped:
            out.append(
                f"{self.path}: the kernel dropped {self.kernel_dropped} of "
                f"{self.kernel_received} packets (capture ring full: the pipeline fell "
                "behind; narrow --filter or raise live.ring_bytes)"
            )
        if self.truncated_at is not None:
            out.append(
                f"{self.path}: capture is truncated at byte offset {self.truncated_at}; "
                f"read the {self.packets} packets before the cut"
            )
        if self.corrupt_at is not None:
            out.append(
                f"{self.path}: corrupt {self.format} record at byte offset {self.corrupt_at} "
                f"({self.corrupt_reason}); read the {self.packets} packets before it"
            )
        if self.packets_bad_interface:
            out.append(
                f"{self.path}: skipped {self.packets_bad_interface} packets naming an "
                "undescribed pcapng interface"
            )
        if self.interfaces_over_cap:
            out.append(
                f"{self.path}: {self.interfaces_over_cap} pcapng interfaces beyond the cap of "
                f"{MAX_INTERFACES}; their packets were skipped"
            )
        return out


class _Replay(io.RawIOBase):
    """A stream whose first bytes were already read: serves them again, then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(b)  # type: ignore[attr-defined, no-any-return]


def _sniffed(stream: BinaryIO) -> tuple[bytes, BinaryIO]:
    """The first two bytes of a pipe (looping: a pipe may hand out one byte at a time) and
    a stream that still yields them."""
    head = b""
    while len(head) < 2:
        more = stream.read(2 - len(head))
        if not more:
            break
        head += more
    return head, io.BufferedReader(_Replay(head, stream))  # type: ignore[return-value]


def open_windows(path: str, config: SourceConfig) -> tuple[Windows, bool]:
    """Pick mmap for a regular uncompressed file, a stream otherwise. Returns (windows, gz)."""
    if path == "-":
        head, stream = _sniffed(sys.stdin.buffer)
        if head == GZIP_MAGIC:
            return StreamWindows(gzip.GzipFile(fileobj=stream), config.window_bytes), True
        return StreamWindows(stream, config.window_bytes), False
    try:
        f = open(path, "rb")  # noqa: SIM115 - kept open for a FIFO, closed below otherwise
    except FileNotFoundError:
        raise SourceError(path, "no such file") from None
    except IsADirectoryError:
        raise SourceError(path, "is a directory, not a capture file") from None
    except PermissionError:
        raise SourceError(path, "permission denied") from None
    except OSError as exc:
        raise SourceError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        # A FIFO or device gives its bytes once: sniff them and keep this handle
        # (reading the head and reopening would lose it, or block with no writer left).
        head, stream = _sniffed(f)
        if head == GZIP_MAGIC:
            gz = gzip.GzipFile(fileobj=stream)
            return StreamWindows(gz, config.window_bytes, also_close=f), True  # type: ignore[arg-type]
        return StreamWindows(stream, config.window_bytes, also_close=f), False
    with f:
        head = f.read(2)
    if head == GZIP_MAGIC:
        return StreamWindows(gzip.open(path, "rb"), config.window_bytes), True  # type: ignore[arg-type]
    return MappedWindows(path, config.window_bytes), False


def read_capture(
    path: str, config: SourceConfig | None = None, info: CaptureInfo | None = None
) -> Iterator[PacketBatch]:
    """Yield the packets of one capture as columnar batches.

    ``info`` (created if not given) is updated as reading goes, so a caller that keeps a
    reference sees the format, the progress and any damage.
    """
    config = config or SourceConfig()
    info = info if info is not None else CaptureInfo(path=path)
    windows, compressed = open_windows(path, config)
    info.compressed = compressed
    info.bytes_total = None if compressed else windows.size_hint
    try:
        yield from _read(windows, config, info)
    except SourceError:
        # "empty file" or "truncated header" from a stream that was cut by gzip damage:
        # the damage is the real story.
        damage = getattr(windows, "damage", None)
        if damage is not None:
            raise SourceError(path, f"damaged gzip data ({damage})") from None
        raise
    finally:
        windows.close()
    # gzip damage ends the stream early (StreamWindows keeps the packets inflated before
    # it): the capture is truncated where the good data stops.
    damage = getattr(windows, "damage", None)
    if damage is not None and info.truncated_at is None and info.corrupt_at is None:
        info.truncated_at = info.bytes_done


def _read(windows: Windows, config: SourceConfig, info: CaptureInfo) -> Iterator[PacketBatch]:
    head, _ = windows.window(0, PCAP_FILE_HEADER_BYTES)
    path = info.path
    if head.shape[0] == 0:
        raise SourceError(path, "empty file")
    first4 = bytes(head[:4])
    if first4 == PCAPNG_SHB:
        info.format = "pcapng"
        _check_first_shb(windows, config, path)
        yield from _read_pcapng(windows, config, info)
        return
    magic_le = int.from_bytes(first4.ljust(4, b"\0"), "little")
    magic_be = int.from_bytes(first4.ljust(4, b"\0"), "big")
    magics = {PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_KUZNETZOV}
    if magic_le in magics:
        big_endian, magic = False, magic_le
    elif magic_be in magics:
        big_endian, magic = True, magic_be
    else:
        raise SourceError(path, f"not a pcap or pcapng capture (starts with {first4.hex()})")
    info.format = "pcap"
    if head.shape[0] < PCAP_FILE_HEADER_BYTES:
        raise SourceError(path, f"truncated pcap file header ({head.shape[0]} of 24 bytes)")
    order = "big" if big_endian else "little"
    raw_link = int.from_bytes(bytes(head[20:24]), order)
    linktype = raw_link & 0xFFFF  # upper bits carry the FCS length (§4), not the type
    if linktype not in SUPPORTED_LINKTYPES:
        raise SourceError(path, f"unsupported link type {linktype} ({linktype_name(linktype)})")
    info.linktypes.add(linktype)
    record_header = 24 if magic == PCAP_MAGIC_KUZNETZOV else 16
    nanosecond = magic == PCAP_MAGIC_NS
    del head

    def kernel(buf: np.ndarray, pos: int, out: _Columns) -> tuple[int, int, int]:
        return k.index_pcap(  # type: ignore[no-any-return]
            buf, pos, big_endian, nanosecond, record_header, config.max_packet_bytes, linktype,
            out.off, out.caplen, out.wirelen, out.ts, out.link,
        )  # fmt: skip

    yield from _walk(windows, config, info, PCAP_FILE_HEADER_BYTES, kernel)


def _check_first_shb(windows: Windows, config: SourceConfig, path: str) -> None:
    """The first block must be a whole Section Header Block (pcapng §4.1): without one
    nothing in the file can be read, like a pcap file under 24 bytes, so it is an error
    and not a "truncated capture" with zero packets."""
    head, _ = windows.window(0, 12)
    if head.shape[0] < 12:
        raise SourceError(path, f"truncated pcapng section header ({head.shape[0]} bytes)")
    bom = bytes(head[8:12])
    if bom not in (PCAPNG_BOM_LE, PCAPNG_BOM_BE):
        raise SourceError(path, f"not a pcapng capture (byte-order magic {bom.hex()})")
    blen = int.from_bytes(bytes(head[4:8]), "little" if bom == PCAPNG_BOM_LE else "big")
    if blen < 28 or blen % 4 or blen > config.max_packet_bytes + 64 * 1024:
        raise SourceError(path, f"corrupt pcapng section header (block length {blen})")
    head, _ = windows.window(0, blen)
    if head.shape[0] < blen:
        raise SourceError(
            path, f"truncated pcapng section header ({head.shape[0]} of {blen} bytes)"
        )


def _read_pcapng(
    windows: Windows, config: SourceConfig, info: CaptureInfo
) -> Iterator[PacketBatch]:
    state = np.zeros(k.ST_LEN, np.int64)
    ifaces = np.zeros((MAX_INTERFACES, k.IF_COLS), np.int64)

    def kernel(buf: np.ndarray, pos: int, out: _Columns) -> tuple[int, int, int]:
        result = k.index_pcapng(
            buf, pos, state, ifaces, config.max_packet_bytes,
            out.off, out.caplen, out.wirelen, out.ts, out.link,
        )  # fmt: skip
        n_if = min(int(state[k.ST_N_IF]), MAX_INTERFACES)
        info.linktypes.update(int(x) for x in ifaces[:n_if, k.IF_LINKTYPE])
        info.packets_bad_interface = int(state[k.ST_BAD_IF_PACKETS])
        info.interfaces_over_cap = int(state[k.ST_DROPPED_IFS])
        info.sections = int(state[k.ST_SECTIONS])
        return result  # type: ignore[no-any-return]

    yield from _walk(windows, config, info, 0, kernel)


@dataclass(slots=True)
class _Columns:
    off: np.ndarray
    caplen: np.ndarray
    wirelen: np.ndarray
    ts: np.ndarray
    link: np.ndarray

    @classmethod
    def allocate(cls, n: int) -> _Columns:
        return cls(*(np.empty(n, np.int64) for _ in range(5)))


def _walk(
    windows: Windows, config: SourceConfig, info: CaptureInfo, start: int, kernel
) -> Iterator[PacketBatch]:  # type: ignore[no-untyped-def]
    """Drive an index kernel across windows; carry a record cut by a window edge over."""
    pos_abs = start
    min_bytes = 0
    info.bytes_done = start  # the file header is done; a cut right after it is at start
    while True:
        buf, at_end = windows.window(pos_abs, min_bytes)
        if buf.shape[0] == 0:
            return
        pos = 0
        while True:
            # Fresh arrays per batch: consumers may keep a batch's columns.
            out = _Columns.allocate(config.batch_packets)
            n, new_pos, status = kernel(buf, pos, out)
            if n:
                batch = PacketBatch(
                    buf=buf,
                    data_offset=out.off[:n],
                    caplen=out.caplen[:n],
                    wirelen=out.wirelen[:n],
                    ts_ns=out.ts[:n],
                    linktype=out.link[:n],
                    first_index=info.packets,
                    file_offset=pos_abs,
                )
                info.packets += n
                info.bytes_done = pos_abs + new_pos
                yield batch
            pos = new_pos
            if status == k.BATCH_FULL:
                continue
            if status == k.CORRUPT:
                info.corrupt_at = pos_abs + pos
                info.corrupt_reason = "record length fields are impossible"
                return
            break  # NEED_MORE
        remaining = buf.shape[0] - pos
        if at_end:
            info.bytes_done = pos_abs + pos
            if remaining:
                info.truncated_at = pos_abs + pos
            return
        # The record at pos did not fit: ask for a window that holds at least twice what
        # is left, so a record larger than the window is still read.
        min_bytes = remaining * 2 if pos == 0 else 0
        pos_abs += pos
        del buf


def sniff_format(data: bytes) -> str | None:
    """'pcap', 'pcapng', 'gzip' or None for the first bytes of a file (for tools/tests)."""
    if data[:2] == GZIP_MAGIC:
        return "gzip"
    if data[:4] == PCAPNG_SHB:
        return "pcapng"
    if len(data) >= 4:
        for order in ("little", "big"):
            if int.from_bytes(data[:4], order) in (
                PCAP_MAGIC_US,
                PCAP_MAGIC_NS,
                PCAP_MAGIC_KUZNETZOV,
            ):  # type: ignore[arg-type]
                return "pcap"
    return None


__all__ = ["CaptureInfo", "read_capture", "sniff_format"]
