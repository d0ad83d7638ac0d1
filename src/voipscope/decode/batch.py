"""DecodedBatch: the header columns of one PacketBatch, and the function that fills them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voipscope.decode.kernel import decode_packets
from voipscope.source.batch import PacketBatch


@dataclass(slots=True)
class DecodedBatch:
    packets: PacketBatch
    status: np.ndarray  # uint8, voipscope.decode.status
    ip_ver: np.ndarray  # uint8, 4 | 6 | 0
    proto: np.ndarray  # uint8, IP protocol number
    src_hi: np.ndarray  # int64, upper half of the (IPv4-mapped) IPv6 source address
    src_lo: np.ndarray  # int64
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray  # int32, 0 for protocols without ports
    dport: np.ndarray
    ip_bytes: np.ndarray  # int32: IPv4 total length, IPv6 payload length + 40
    l3_off: np.ndarray  # int64, IP header offset in packets.buf
    l4_off: np.ndarray  # int64, L4 payload offset in packets.buf
    l4_len: np.ndarray  # int32, captured L4 payload bytes (within the IP length)
    tcp_flags: np.ndarray  # uint8
    vlan: np.ndarray  # int32, outermost VLAN id, -1 without a tag
    # int32, the second VLAN id (-1: none), | kernel.DOUBLE_DOT1Q for 802.1Q inside 802.1Q
    vlan_inner: np.ndarray
    frag_id: np.ndarray  # int64, IP identification of a fragment
    frag_off: np.ndarray  # int32, fragment offset in bytes
    frag_more: np.ndarray  # uint8, more-fragments flag
    # Payloads of datagrams rebuilt from fragments: packet index -> L4 payload bytes.
    reassembled: dict[int, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.status.shape[0])

    @property
    def ts_ns(self) -> np.ndarray:
        return self.packets.ts_ns

    def payload_first_byte(self, i: int) -> int:
        if i in self.reassembled:
            return self.reassembled[i][0]
        return int(self.packets.buf[int(self.l4_off[i])])

    def payload(self, i: int) -> bytes:
        """The L4 payload of packet ``i`` as bytes (copied out of the window)."""
        return self.payloads(np.array([i]))[0]

    def payloads(self, rows: np.ndarray) -> list[bytes]:
        """The L4 payloads of packets ``rows``, in one pass (the dissect stage's per-batch
        path: slicing a memoryview costs a fraction of indexing numpy per packet)."""
        window = memoryview(self.packets.buf)
        starts = self.l4_off[rows]
        out = [
            window[a:b].tobytes()
            for a, b in zip(starts.tolist(), (starts + self.l4_len[rows]).tolist(), strict=True)
        ]
        if self.reassembled:
            for k, i in enumerate(rows.tolist()):
                if i in self.reassembled:
                    out[k] = self.reassembled[i]
        return out


def decode_batch(batch: PacketBatch, decap_gtp: bool = True) -> DecodedBatch:
    n = len(batch)
    out = DecodedBatch(
        packets=batch,
        status=np.empty(n, np.uint8),
        ip_ver=np.empty(n, np.uint8),
        proto=np.empty(n, np.uint8),
        src_hi=np.zeros(n, np.int64),
        src_lo=np.zeros(n, np.int64),
        dst_hi=np.zeros(n, np.int64),
        dst_lo=np.zeros(n, np.int64),
        sport=np.empty(n, np.int32),
        dport=np.empty(n, np.int32),
        ip_bytes=np.empty(n, np.int32),
        l3_off=np.empty(n, np.int64),
        l4_off=np.empty(n, np.int64),
        l4_len=np.empty(n, np.int32),
        tcp_flags=np.empty(n, np.uint8),
        vlan=np.empty(n, np.int32),
        vlan_inner=np.empty(n, np.int32),
        frag_id=np.zeros(n, np.int64),
        frag_off=np.empty(n, np.int32),
        frag_more=np.empty(n, np.uint8),
    )
    decode_packets(
        batch.buf, batch.data_offset, batch.caplen, batch.linktype,
        out.status, out.ip_ver, out.proto, out.src_hi, out.src_lo, out.dst_hi, out.dst_lo,
        out.sport, out.dport, out.ip_bytes, out.l3_off, out.l4_off, out.l4_len,
        out.tcp_flags, out.vlan, out.frag_id, out.frag_off, out.frag_more, decap_gtp,
        out.vlan_inner,
    )  # fmt: skip
    return out
