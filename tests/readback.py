"""Read voipscope's reader output back into plain values, and build PacketBatches by hand.

Used by the source/decode unit tests and the fuzz tests. Bytes are copied out of each
batch while it is current: a stream window is reused once the next one is asked for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voipscope.config import SourceConfig
from voipscope.decode import decode_batch
from voipscope.decode import status as S
from voipscope.source import CaptureInfo, PacketBatch, read_capture


@dataclass(frozen=True)
class Rec:
    ts_ns: int
    caplen: int
    wirelen: int
    linktype: int
    data: bytes


@dataclass
class ReadResult:
    records: list[Rec]
    info: CaptureInfo
    batch_sizes: list[int]

    @property
    def data(self) -> list[bytes]:
        return [r.data for r in self.records]

    @property
    def ts(self) -> list[int]:
        return [r.ts_ns for r in self.records]


def check_batch(batch: PacketBatch, first_index: int, cap: int) -> None:
    """Invariants every batch must keep, whatever the input."""
    n = len(batch)
    assert 0 < n <= cap
    assert batch.first_index == first_index
    for col in (batch.caplen, batch.wirelen, batch.ts_ns, batch.linktype):
        assert col.shape == (n,)
    assert (batch.data_offset >= 0).all()
    assert (batch.caplen >= 0).all()
    assert (batch.data_offset + batch.caplen <= batch.buf.shape[0]).all()


def read_all(path: str | os.PathLike[str], config: SourceConfig | None = None) -> ReadResult:
    config = config or SourceConfig()
    info = CaptureInfo(path=os.fspath(path))
    records: list[Rec] = []
    sizes: list[int] = []
    for batch in read_capture(os.fspath(path), config, info):
        check_batch(batch, len(records), config.batch_packets)
        sizes.append(len(batch))
        for i in range(len(batch)):
            off, caplen = int(batch.data_offset[i]), int(batch.caplen[i])
            records.append(
                Rec(
                    ts_ns=int(batch.ts_ns[i]),
                    caplen=caplen,
                    wirelen=int(batch.wirelen[i]),
                    linktype=int(batch.linktype[i]),
                    data=bytes(batch.buf[off : off + caplen]),
                )
            )
    assert info.packets == len(records)
    return ReadResult(records, info, sizes)


@contextmanager
def fifo_with(tmp_path: Path, data: bytes, name: str = "capture.fifo") -> Iterator[Path]:
    """A named pipe that a thread fills with ``data`` once a reader opens it."""
    path = tmp_path / name
    os.mkfifo(path)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with open(path, "wb") as f:
                # Small writes, so the reader sees short reads as from a real pipe.
                for start in range(0, len(data), 777):
                    f.write(data[start : start + 777])
        except BrokenPipeError:
            pass  # the reader stopped early (an error test); nothing to deliver
        except BaseException as exc:
            errors.append(exc)

    def unblock() -> None:
        # A reader that reopens the FIFO after the writer left would block for ever in
        # open(); give it a writer that closes at once, so the test fails instead.
        with suppress(OSError):  # ENXIO: no reader waiting
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    watchdog = threading.Timer(20.0, unblock)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield path
    finally:
        watchdog.cancel()
    thread.join(timeout=10)
    assert not thread.is_alive(), "FIFO writer did not finish"
    if errors:
        raise errors[0]


def batch_of(
    frames: Sequence[tuple[int, bytes]], ts_ns: Sequence[int] | None = None, gap: int = 3
) -> PacketBatch:
    """A PacketBatch over (linktype, frame bytes) pairs, with ``gap`` junk bytes between
    frames so that a decoder reading past a frame's end reads junk, not the next frame."""
    buf = bytearray(b"\xee" * gap)
    offsets, caplens, links = [], [], []
    for link, frame in frames:
        offsets.append(len(buf))
        caplens.append(len(frame))
        links.append(link)
        buf += frame + b"\xee" * gap
    n = len(frames)
    ts = list(ts_ns) if ts_ns is not None else [1_000_000_000 * (k + 1) for k in range(n)]
    return PacketBatch(
        buf=np.frombuffer(bytes(buf), np.uint8),
        data_offset=np.array(offsets, np.int64),
        caplen=np.array(caplens, np.int64),
        wirelen=np.array(caplens, np.int64),
        ts_ns=np.array(ts, np.int64),
        linktype=np.array(links, np.int64),
        first_index=0,
        file_offset=0,
    )


def payloads_by_frame(path: Path, proto: int) -> dict[int, bytes]:
    """Frame number (from 1, as tshark counts) -> L4 payload of every decoded packet of IP
    protocol ``proto`` (17 UDP, 6 TCP) that carries one."""
    out = {}
    for batch in read_capture(str(path)):
        d = decode_batch(batch)
        for i in range(len(d)):
            if d.status[i] == S.OK and d.proto[i] == proto and d.l4_len[i]:
                out[batch.first_index + i + 1] = d.payload(i)
    return out
