"""numba kernel that copies packets out of a Linux TPACKET_V3 receive ring.

The ring is a list of blocks the kernel fills and hands over (``block_status`` has
TP_STATUS_USER); we copy each packet into a fresh batch buffer and give the block back at
once (status TP_STATUS_KERNEL), so the kernel can reuse it while the pipeline works and no
consumer ever holds memory the kernel rewrites. Layouts: linux/if_packet.h. The headers
are in host byte order; ``voipscope.source.afpacket`` refuses big-endian hosts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voipscope.wire import u16le, u32le

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1.
BD_STATUS = 8
BD_NUM_PKTS = 12
BD_FIRST_PKT = 16
TP_STATUS_USER = 1  # block_status: the block is ours to read

# struct tpacket3_hdr
H_NEXT = 0
H_SEC = 4
H_NSEC = 8
H_SNAPLEN = 12
H_LEN = 16
H_STATUS = 20
H_MAC = 24
H_VLAN_TCI = 32
H_VLAN_TPID = 36
# struct sockaddr_ll follows the header at TPACKET_ALIGN(sizeof(struct tpacket3_hdr)).
H_SLL = 48
SLL_PROTOCOL = 2
SLL_IFINDEX = 4
SLL_HATYPE = 8
SLL_PKTTYPE = 10
SLL_HALEN = 11
SLL_ADDR = 12

TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
PACKET_OUTGOING = 4  # sll_pkttype of a packet this host sent
ETH_P_8021Q = 0x8100

SLL2_HEADER_BYTES = 20  # LINKTYPE_LINUX_SLL2 (tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html)
VLAN_TAG_BYTES = 4
MAC_ADDRS_BYTES = 12  # Ethernet destination + source, before the EtherType

# Ring state carried between calls (the block being read and where in it).
ST_BLOCK = 0
ST_PKT = 1  # packets of the block already copied
ST_OFF = 2  # ring offset of the next packet header
ST_LEN = 4

# Why the kernel stopped.
RING_EMPTY = 0  # the next block still belongs to the kernel: nothing more to read now
BATCH_FULL = 1  # the output columns or the buffer are full: hand the batch over
COUNT_REACHED = 2  # ``max_packets`` copied


@njit(cache=True, nogil=True, inline="always")
def _put16be(buf, p, value):
    buf[p] = (value >> 8) & 0xFF
    buf[p + 1] = value & 0xFF


@njit(cache=True, nogil=True)
def drain_ring(
    ring, ring32, block_bytes, n_blocks, state, snaplen, cooked, loopback_ifindex, max_packets,
    n, pos, buf, out_off, out_caplen, out_wirelen, out_ts,
):  # fmt: skip
    """Copy packets from the ring into ``buf``/columns from row ``n`` and byte ``pos``.

    ``cooked``: the socket is SOCK_DGRAM (no link header; -i any, tun, ppp): each packet
    gets a synthesised LINKTYPE_LINUX_SLL2 header. Otherwise the frame is Ethernet.
    Either way a VLAN tag the NIC stripped (TP_STATUS_VLAN_VALID) is put back in the
    bytes, as libpcap does, so VLAN detectors see it. ``loopback_ifindex`` (0: none): on
    loopback every packet passes twice, sent and received; keep the received copy, as
    libpcap does.
    Returns ``(n, pos, why, skipped)``; blocks fully read are given back to the kernel.
    """
    cap = out_off.shape[0]
    buf_end = buf.shape[0]
    skipped = 0
    while True:
        if n >= max_packets:
            return n, pos, COUNT_REACHED, skipped
        base = state[ST_BLOCK] * block_bytes
        if (ring32[(base + BD_STATUS) >> 2] & TP_STATUS_USER) == 0:
            return n, pos, RING_EMPTY, skipped
        num = u32le(ring, base + BD_NUM_PKTS)
        if state[ST_PKT] == 0:
            state[ST_OFF] = base + u32le(ring, base + BD_FIRST_PKT)
        while state[ST_PKT] < num:
            p = state[ST_OFF]
            if p < base or p + H_SLL + 20 > base + block_bytes:
                # A header outside its block would be a kernel bug; stop reading the block
                # rather than read garbage.
                break
            snap = u32le(ring, p + H_SNAPLEN)
            mac = p + u16le(ring, p + H_MAC)
            status = u32le(ring, p + H_STATUS)
            if mac + snap > base + block_bytes:
                break
            if (
                loopback_ifindex != 0
                and ring[p + H_SLL + SLL_PKTTYPE] == PACKET_OUTGOING
                and u32le(ring, p + H_SLL + SLL_IFINDEX) == loopback_ifindex
            ):
                skipped += 1
                state[ST_PKT] += 1
                state[ST_OFF] = p + u32le(ring, p + H_NEXT)
                continue
            tagged = (status & TP_STATUS_VLAN_VALID) != 0
            extra = VLAN_TAG_BYTES if tagged else 0
            if cooked:
                extra += SLL2_HEADER_BYTES
            out_len = min(snap + extra, snaplen)
            if n >= cap or n >= max_packets or pos + out_len > buf_end:
                return n, pos, BATCH_FULL if n < max_packets else COUNT_REACHED, skipped
            tpid = ETH_P_8021Q
            if (status & TP_STATUS_VLAN_TPID_VALID) != 0:
                tpid = u16le(ring, p + H_VLAN_TPID)
            tci = u16le(ring, p + H_VLAN_TCI)
            q = pos
            src = mac
            remaining = snap
            if cooked:
                sll = p + H_SLL
                protocol = (np.int64(ring[sll + SLL_PROTOCOL]) << 8) | np.int64(
                    ring[sll + SLL_PROTOCOL + 1]
                )  # already network byte order
                head = np.zeros(SLL2_HEADER_BYTES + VLAN_TAG_BYTES, np.uint8)
                _put16be(head, 0, tpid if tagged else protocol)
                ifindex = u32le(ring, sll + SLL_IFINDEX)
                head[4] = (ifindex >> 24) & 0xFF
                head[5] = (ifindex >> 16) & 0xFF
                head[6] = (ifindex >> 8) & 0xFF
                head[7] = ifindex & 0xFF
                _put16be(head, 8, u16le(ring, sll + SLL_HATYPE))
                head[10] = ring[sll + SLL_PKTTYPE]
                halen = min(np.int64(ring[sll + SLL_HALEN]), 8)
                head[11] = halen
                for i in range(halen):
                    head[12 + i] = ring[sll + SLL_ADDR + i]
                h = SLL2_HEADER_BYTES
                if tagged:
                    _put16be(head, h, tci)
                    _put16be(head, h + 2, protocol)
                    h += VLAN_TAG_BYTES
                for i in range(min(h, out_len)):
                    buf[q + i] = head[i]
                q += min(h, out_len)
            elif tagged:
                lead = min(MAC_ADDRS_BYTES, snap, out_len)
                buf[q : q + lead] = ring[src : src + lead]
                q += lead
                src += lead
                remaining -= lead
                tag = np.zeros(VLAN_TAG_BYTES, np.uint8)
                _put16be(tag, 0, tpid)
                _put16be(tag, 2, tci)
                room = min(VLAN_TAG_BYTES, pos + out_len - q)
                buf[q : q + room] = tag[:room]
                q += room
            room = pos + out_len - q
            if room > remaining:
                room = remaining
            if room > 0:
                buf[q : q + room] = ring[src : src + room]
                q += room
            out_off[n] = pos
            out_caplen[n] = q - pos
            out_wirelen[n] = u32le(ring, p + H_LEN) + extra
            out_ts[n] = u32le(ring, p + H_SEC) * 1_000_000_000 + u32le(ring, p + H_NSEC)
            n += 1
            pos = q
            state[ST_PKT] += 1
            state[ST_OFF] = p + u32le(ring, p + H_NEXT)
        # Every packet of the block is copied: give it back (one aligned 32-bit store).
        ring32[(base + BD_STATUS) >> 2] = 0
        state[ST_BLOCK] = (state[ST_BLOCK] + 1) % n_blocks
        state[ST_PKT] = 0


def compile_drain_ring() -> None:
    """Compile (or load from numba's cache) ``drain_ring`` for the argument types a
    capture passes, on an empty one-block ring: done before a capture opens, so the
    first run after an install does not compile it while the first packets wait (the
    compile took over a second on a CI machine, and the first decisions came that late)."""
    block = np.zeros(4096, np.uint8)  # status 0: the block is the kernel's, nothing ready
    columns = [np.empty(1, np.int64) for _ in range(4)]
    drain_ring(block, block.view(np.uint32), block.size, 1, np.zeros(ST_LEN, np.int64),
               65535, False, 0, 1, 0, 0, np.empty(64, np.uint8), *columns)  # fmt: skip
