"""A Linux AF_PACKET socket with a TPACKET_V3 receive ring, from the standard library.

Why this and not libpcap: libpcap on Linux is this same socket and ring; doing it here
needs no compiled dependency, gives nanosecond timestamps and the original length, and a
numba kernel copies a whole block of packets per call (no Python object per packet).
libpcap is still used, when present, to compile ``--filter`` (``voipscope.source.bpf``).
Constants and layouts: linux/if_packet.h, linux/if_ether.h, packet(7).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import select
import socket
import struct
import sys
from dataclasses import dataclass

import numpy as np

from voipscope.errors import SourceError
from voipscope.source import kernels_live as K
from voipscope.source.linktypes import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
# ARPHRD_* (linux/if_arp.h): link types whose frames start with an Ethernet header.
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ETHERNET_HARDWARE = frozenset({ARPHRD_ETHER, ARPHRD_LOOPBACK})
ANY_DEVICE = "any"
DLT_RAW = 12  # libpcap's DLT for raw IP (the file format calls it LINKTYPE_RAW, 101)

PAGE_BYTES = mmap.PAGESIZE
# One block is handed over when full or after this long (tp_retire_blk_tov): the upper
# bound on how late a quiet link's packets reach the pipeline.
BLOCK_TIMEOUT_MS = 50
FRAME_BYTES = 2048  # TPACKET_V3 only checks it against the block size; frames are packed


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [
        ("len", ctypes.c_ushort),
        ("filter", ctypes.POINTER(SockFilter)),
    ]


@dataclass(slots=True)
class RingStats:
    """The kernel's counters for this socket since it was opened."""

    received: int = 0  # packets the socket was offered (after the filter)
    dropped: int = 0  # packets lost because the ring was full
    freezes: int = 0  # times the ring was frozen full (tp_freeze_q_cnt)


def _interface_hardware(name: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read().strip())
    except OSError:
        return -1


def _loopback_ifindex() -> int:
    for index, name in socket.if_nameindex():
        if _interface_hardware(name) == ARPHRD_LOOPBACK:
            return index
    return 0


class PacketRing:
    """One interface (or ``any``), one socket, one mmap'd TPACKET_V3 ring.

    ``linktype`` says what the copied packets start with: Ethernet for Ethernet-like
    devices (and loopback, whose header is a zeroed Ethernet one), LINUX_SLL2 otherwise.
    """

    def __init__(
        self,
        interface: str,
        ring_bytes: int,
        block_bytes: int = 1 << 20,
        promiscuous: bool = True,
        bpf_program: list[tuple[int, int, int, int]] | None = None,
    ) -> None:
        if sys.byteorder != "little":
            raise SourceError(interface, "live capture supports little-endian hosts only")
        self.interface = interface
        if interface == ANY_DEVICE:
            ifindex, hardware = 0, -1
        else:
            try:
                ifindex = socket.if_nametoindex(interface)
            except OSError:
                raise SourceError(interface, "no such network interface") from None
            hardware = _interface_hardware(interface)
        self.cooked = hardware not in ETHERNET_HARDWARE
        self.linktype = LINKTYPE_LINUX_SLL2 if self.cooked else LINKTYPE_ETHERNET
        # What the kernel filter sees: the frame (SOCK_RAW) or the network header on
        # (SOCK_DGRAM), as a libpcap DLT for pcap_compile (DLT_RAW is 12 in its numbering).
        self.bpf_dlt = DLT_RAW if self.cooked else LINKTYPE_ETHERNET
        # Loopback's packets pass twice (sent, received): the ring walker skips the sent
        # copy on it, also when it is one of the interfaces of "any".
        self.loopback_ifindex = 0
        if hardware == ARPHRD_LOOPBACK:
            self.loopback_ifindex = ifindex
        elif interface == ANY_DEVICE:
            self.loopback_ifindex = _loopback_ifindex()
        kind = socket.SOCK_DGRAM if self.cooked else socket.SOCK_RAW
        # Protocol 0: nothing is received until bind(), so the filter and the ring are in
        # place before the first packet (no unfiltered packets to drain). "any" cannot be
        # bound by name: its socket listens from the start (what comes before the ring
        # waits in the socket queue, which the ring never reads).
        protocol = 0 if ifindex else socket.htons(ETH_P_ALL)
        try:
            self.sock = socket.socket(socket.AF_PACKET, kind, protocol)
        except PermissionError:
            raise SourceError(
                interface, "permission denied (live capture needs root or CAP_NET_RAW)"
            ) from None
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            if bpf_program is not None:
                self._attach_filter(bpf_program)
            self.block_bytes = max(PAGE_BYTES, block_bytes // PAGE_BYTES * PAGE_BYTES)
            self.n_blocks = max(2, ring_bytes // self.block_bytes)
            req = struct.pack(
                "7I",
                self.block_bytes,
                self.n_blocks,
                FRAME_BYTES,
                self.block_bytes // FRAME_BYTES * self.n_blocks,
                BLOCK_TIMEOUT_MS,
                0,
                0,
            )
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            size = self.block_bytes * self.n_blocks
            self._map = mmap.mmap(
                self.sock.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
            self.ring = np.frombuffer(self._map, np.uint8)
            self.ring32 = np.frombuffer(self._map, np.uint32)
            if promiscuous and ifindex:
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            if ifindex:
                # CPython converts the protocol to network byte order itself.
                self.sock.bind((interface, ETH_P_ALL))
        except OSError as exc:
            self.close()
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise SourceError(
                    interface, "permission denied (live capture needs root or CAP_NET_RAW)"
                ) from None
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise SourceError(interface, "no such network interface") from None
            if exc.errno == errno.ENETDOWN:
                raise SourceError(interface, "interface is down") from None
            raise SourceError(interface, f"cannot capture ({exc.strerror or exc})") from None
        self.state = np.zeros(K.ST_LEN, np.int64)
        self.stats = RingStats()
        self._poll = select.poll()
        self._poll.register(self.sock.fileno(), select.POLLIN | select.POLLERR)

    def _attach_filter(self, program: list[tuple[int, int, int, int]]) -> None:
        insns = (SockFilter * len(program))(*[SockFilter(*i) for i in program])
        fprog = SockFprog(len(program), insns)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))  # type: ignore[arg-type]
        self._filter_keepalive = (insns, fprog)

    def wait(self, timeout_s: float) -> None:
        """Sleep until a block is ready or ``timeout_s`` passed."""
        self._poll.poll(max(0, int(timeout_s * 1000)))

    def drain(
        self,
        n: int,
        pos: int,
        buf: np.ndarray,
        off: np.ndarray,
        caplen: np.ndarray,
        wirelen: np.ndarray,
        ts: np.ndarray,
        snaplen: int,
        max_packets: int,
    ) -> tuple[int, int, int]:
        """Copy ready packets; returns (rows, bytes used, why stopped)."""
        n, pos, why, _ = K.drain_ring(
            self.ring, self.ring32, self.block_bytes, self.n_blocks, self.state, snaplen,
            self.cooked, self.loopback_ifindex, max_packets, n, pos, buf, off, caplen, wirelen, ts,
        )  # fmt: skip
        return n, pos, why

    def read_stats(self) -> RingStats:
        """Add the kernel's counters since the last call (reading resets them)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        packets, drops, freezes = struct.unpack("3I", raw)
        # tp_packets counts every packet the socket saw, dropped ones included.
        self.stats.received += packets
        self.stats.dropped += drops
        self.stats.freezes += freezes
        return self.stats

    def close(self) -> None:
        for name in ("ring", "ring32"):
            if hasattr(self, name):
                delattr(self, name)
        mapping = getattr(self, "_map", None)
        if mapping is not None:
            # BufferError: an array still views it; the GC unmaps it later.
            with contextlib.suppress(BufferError):
                mapping.close()
            self._map = None
        if getattr(self, "sock", None) is not None:
            self.sock.close()


def can_capture() -> bool:
    """Whether this process may open a packet socket (root or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except OSError:
        return False
    return os.name == "posix"
