"""PacketBatch: what every reader yields — columns over one window of capture bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class PacketBatch:
    """Up to ``SourceConfig.batch_packets`` packets; no Python object per packet.

    ``buf`` is the window the packets live in (an mmap view or a read buffer); the other
    arrays index into it. Consumers that keep bytes beyond the batch must copy them.
    """

    buf: np.ndarray  # uint8, the window
    data_offset: np.ndarray  # int64, start of each packet's captured bytes in buf
    caplen: np.ndarray  # int64, captured bytes
    wirelen: np.ndarray  # int64, original length on the wire
    ts_ns: np.ndarray  # int64, capture time, ns since the epoch
    linktype: np.ndarray  # int64, LINKTYPE_* per packet (pcapng mixes them)
    first_index: int  # number of the batch's first packet in its capture, from 0
    file_offset: int  # byte offset of buf[0] in the (uncompressed) capture
    # Live capture only: the capture clock has reached this (ns since the epoch) even if
    # no packet says so, so idle flows and quiet calls still end on an idle link.
    # None for files, whose clock is their packets' timestamps.
    clock_ns: int | None = None

    def __len__(self) -> int:
        return int(self.data_offset.shape[0])
