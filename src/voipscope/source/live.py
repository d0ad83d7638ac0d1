"""Live capture: packets of an interface as the same PacketBatches a capture file gives.

A batch is handed over when it is full or every ``live.flush_interval_s`` of wall clock,
so records come out within about that long of the packet that made them final. This is
the one place where wall-clock time enters the pipeline (DESIGN §1): each batch carries
``clock_ns``, the capture time reached. While packets wait in the ring it is the newest
packet's timestamp (a backlog must not expire flows whose packets are still queued);
once the ring is empty it follows the wall clock less ``live.clock_slack_s``, so flows and
calls still end on an idle link.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from voipscope.config import Config
from voipscope.source import kernels_live as K
from voipscope.source.afpacket import BLOCK_TIMEOUT_MS, PacketRing
from voipscope.source.batch import PacketBatch
from voipscope.source.capture import CaptureInfo

# Longest sleep in poll(): how soon a stop request (signal, --duration) is noticed.
MAX_WAIT_S = 0.1
# After a stop request, keep reading this long: the kernel hands over a half-full block
# after BLOCK_TIMEOUT_MS, and packets it got before the stop belong to the run.
FINAL_DRAIN_S = 3 * BLOCK_TIMEOUT_MS / 1000
FINAL_DRAIN_MAX_S = 1.0  # past FINAL_DRAIN_S, even if packets keep coming


class LiveCapture:
    """Open ``interface`` now (SourceError if it cannot be captured); ``batches()`` then
    yields until ``stop`` is set, ``duration_s`` of wall clock passed or ``max_packets``
    were captured. Kernel counters go into ``info`` (kernel_received/kernel_dropped);
    ``on_drops(new, total)`` is called when the kernel dropped more packets."""

    def __init__(
        self,
        interface: str,
        config: Config | None = None,
        bpf_filter: str | None = None,
        stop: threading.Event | None = None,
        max_packets: int | None = None,
        duration_s: float | None = None,
        on_drops: Callable[[int, int], None] | None = None,
    ) -> None:
        from voipscope.source.bpf import compile_filter

        self.config = config or Config()
        live = self.config.live
        self.snaplen = max(64, live.snaplen_bytes)
        self.info = CaptureInfo(path=f"live:{interface}", format="live")
        self.info.kernel_received = 0
        self.info.kernel_dropped = 0
        self.stop = stop or threading.Event()
        self.max_packets = max_packets
        self.duration_s = duration_s
        self.on_drops = on_drops
        self.ring = PacketRing(interface, live.ring_bytes, promiscuous=live.promiscuous)
        if bpf_filter:
            # Compiled for the frames the socket sees; the socket is reopened with the
            # filter in place so no unfiltered packet gets into the ring.
            program = compile_filter(bpf_filter, self.ring.bpf_dlt, self.snaplen)
            self.ring.close()
            self.ring = PacketRing(
                interface, live.ring_bytes, promiscuous=live.promiscuous, bpf_program=program
            )
        self.info.linktypes.add(self.ring.linktype)

    def batches(self) -> Iterator[PacketBatch]:
        live, source = self.config.live, self.config.source
        started = time.monotonic()
        deadline = None if self.duration_s is None else started + self.duration_s
        remaining = self.max_packets if self.max_packets is not None else 1 << 62
        slack_ns = int(live.clock_slack_s * 1e9)
        # A buffer always has room for one whole packet, with the headers put back.
        buf_bytes = max(source.window_bytes, self.snaplen + 64)
        latest_ns = 0
        # Set once a stop is asked for (signal, --duration): what the kernel got before it
        # is still read, waiting long enough for the kernel to hand over its last block.
        drain_until: float | None = None
        try:
            while True:
                cols = _Columns(source.batch_packets, buf_bytes)
                n = pos = 0
                handed_at = time.monotonic() + live.flush_interval_s
                why = K.RING_EMPTY
                while remaining > n:
                    now = time.monotonic()
                    if drain_until is None and (
                        self.stop.is_set() or (deadline is not None and now >= deadline)
                    ):
                        drain_until = now + FINAL_DRAIN_S
                    n, pos, why = self.ring.drain(
                        n, pos, cols.buf, cols.off, cols.caplen, cols.wirelen, cols.ts,
                        self.snaplen, remaining,
                    )  # fmt: skip
                    if why != K.RING_EMPTY:
                        break
                    until = handed_at if drain_until is None else min(handed_at, drain_until)
                    if deadline is not None and drain_until is None:
                        until = min(until, deadline)
                    now = time.monotonic()
                    if now >= until:
                        break
                    self.ring.wait(min(MAX_WAIT_S, until - now))
                if n:
                    latest_ns = max(latest_ns, int(cols.ts[:n].max()))
                clock_ns = latest_ns
                if why == K.RING_EMPTY:
                    clock_ns = max(latest_ns, time.time_ns() - slack_ns)
                batch = cols.batch(n, self.info.packets, self.ring.linktype, clock_ns)
                self.info.packets += n
                remaining -= n
                self._update_stats()
                yield batch
                if remaining <= 0:
                    return
                if drain_until is not None:
                    late_s = time.monotonic() - drain_until
                    # A link busier than we read never empties the ring: stop anyway.
                    if late_s >= FINAL_DRAIN_MAX_S or (late_s >= 0 and why == K.RING_EMPTY):
                        return
        finally:
            self._update_stats()
            self.ring.close()

    def _update_stats(self) -> None:
        if getattr(self.ring, "sock", None) is None or self.ring.sock.fileno() < 0:
            return
        before = self.info.kernel_dropped or 0
        stats = self.ring.read_stats()
        self.info.kernel_received = stats.received
        self.info.kernel_dropped = stats.dropped
        if stats.dropped > before and self.on_drops is not None:
            self.on_drops(stats.dropped - before, stats.dropped)

    def close(self) -> None:
        self.ring.close()


class _Columns:
    """Fresh arrays per batch: the pipeline may still hold the previous one."""

    def __init__(self, rows: int, buf_bytes: int) -> None:
        self.buf = np.empty(buf_bytes, np.uint8)
        self.off = np.empty(rows, np.int64)
        self.caplen = np.empty(rows, np.int64)
        self.wirelen = np.empty(rows, np.int64)
        self.ts = np.empty(rows, np.int64)

    def batch(self, n: int, first_index: int, linktype: int, clock_ns: int) -> PacketBatch:
        return PacketBatch(
            buf=self.buf,
            data_offset=self.off[:n],
            caplen=self.caplen[:n],
            wirelen=self.wirelen[:n],
            ts_ns=self.ts[:n],
            linktype=np.full(n, linktype, np.int64),
            first_index=first_index,
            file_offset=0,
            clock_ns=clock_ns,
        )
