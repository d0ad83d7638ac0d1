"""IP fragment reassembly (RFC 791 §3.2, RFC 8200 §4.5), bounded.

Fragments are rare, so this runs in Python on the few rows the decode kernel marks as
FRAGMENT. A datagram that completes is accounted as ONE packet at the time of its last
fragment (as Wireshark does), with the IP-layer bytes of all its fragments; the other
fragments become FRAGMENT_HELD. SIP INVITEs with large SDP bodies are the fragments that
matter here: the dissectors get the whole message.

What cannot complete (timeout, eviction under the cap, overlap) is reported as a named
anomaly with its count, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voipscope.anomalies import AnomalyLog
from voipscope.config import DecodeConfig
from voipscope.decode import status as S
from voipscope.decode.batch import DecodedBatch
from voipscope.decode.kernel import decode_l4

_Key = tuple[int, int, int, int, int, int, int]


@dataclass(slots=True)
class _Datagram:
    first_ts_ns: int
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> data
    total_len: int | None = None  # known once the last fragment (MF=0) arrived
    ip_bytes: int = 0
    fragments: int = 0
    overlapped: bool = False
    held_bytes: int = 0  # bytes stored in pieces (overlaps included)


class FragmentReassembler:
    def __init__(self, config: DecodeConfig, anomalies: AnomalyLog) -> None:
        self.config = config
        self.anomalies = anomalies
        self._pending: dict[_Key, _Datagram] = {}
        self._held_bytes = 0  # over all pending datagrams: the memory an attacker controls
        self.datagrams_reassembled = 0

    def process(self, d: DecodedBatch) -> None:
        rows = np.flatnonzero(d.status == S.FRAGMENT)
        if rows.size == 0:
            return
        if not self.config.reassemble_fragments:
            self.anomalies.add(
                "ip_fragment", "IP fragment not reassembled (disabled)", count=int(rows.size)
            )
            return
        for i in rows.tolist():
            self._add(d, i)
        self._expire(int(d.ts_ns[rows[-1]]))

    def _add(self, d: DecodedBatch, i: int) -> None:
        key: _Key = (
            int(d.ip_ver[i]), int(d.src_hi[i]), int(d.src_lo[i]), int(d.dst_hi[i]),
            int(d.dst_lo[i]), int(d.proto[i]), int(d.frag_id[i]),
        )  # fmt: skip
        ts = int(d.ts_ns[i])
        dgram = self._pending.get(key)
        if dgram is None:
            if len(self._pending) >= self.config.max_pending_datagrams:
                oldest = min(self._pending, key=lambda k: self._pending[k].first_ts_ns)
                self._drop(oldest, "ip_fragments_evicted", "pending-datagram cap reached")
            dgram = self._pending[key] = _Datagram(first_ts_ns=ts)
        offset = int(d.frag_off[i])
        start = int(d.l4_off[i])
        data = bytes(d.packets.buf[start : start + int(d.l4_len[i])])
        dgram.fragments += 1
        dgram.ip_bytes += int(d.ip_bytes[i])
        d.status[i] = S.FRAGMENT_HELD
        end = offset + len(data)
        if offset in dgram.pieces or any(
            start < end and offset < start + len(piece) for start, piece in dgram.pieces.items()
        ):
            # A duplicate, or data overlapping another fragment (RFC 5722 forbids it in
            # IPv6; in IPv4 it is how overlap attacks hide data): report it, and keep
            # the first copy of every byte (_complete lets earlier offsets win).
            dgram.overlapped = True
        if offset not in dgram.pieces:
            dgram.pieces[offset] = data
            dgram.held_bytes += len(data)
            self._held_bytes += len(data)
        # Overlapping pieces at new offsets are all stored: cap what one datagram may hold,
        # or a stream of overlapping fragments grows it without end.
        if dgram.held_bytes > 2 * self.config.max_datagram_bytes:
            self._drop(key, "ip_fragments_oversized", "overlapping fragments hold too many bytes")
            return
        while self._held_bytes > self.config.max_pending_fragment_bytes and len(self._pending) > 1:
            oldest = min(self._pending, key=lambda k: self._pending[k].first_ts_ns)
            self._drop(oldest, "ip_fragments_evicted", "pending-fragment byte cap reached")
            if oldest == key:
                return
        if not d.frag_more[i]:
            dgram.total_len = end
        # Any fragment reaching past the cap already makes the datagram too big: drop it
        # now rather than hold its data until the last fragment says so.
        if end > self.config.max_datagram_bytes or (
            dgram.total_len is not None and dgram.total_len > self.config.max_datagram_bytes
        ):
            self._drop(
                key,
                "ip_fragments_oversized",
                f"datagram would exceed {self.config.max_datagram_bytes} bytes",
            )
            return
        payload = self._complete(dgram)
        if payload is None:
            return
        del self._pending[key]
        self._held_bytes -= dgram.held_bytes
        self.datagrams_reassembled += 1
        if dgram.overlapped:
            self.anomalies.add(
                "ip_fragments_overlap", "fragments overlap; first data kept", ts=ts / 1e9
            )
        self._finish(d, i, payload, dgram)

    @staticmethod
    def _complete(dgram: _Datagram) -> bytes | None:
        if dgram.total_len is None:
            return None
        covered = 0
        for offset in sorted(dgram.pieces):
            if offset > covered:
                return None  # a hole
            covered = max(covered, offset + len(dgram.pieces[offset]))
        if covered < dgram.total_len:
            return None
        out = bytearray(dgram.total_len)
        for offset in sorted(dgram.pieces, reverse=True):  # earlier offsets win on overlap
            piece = dgram.pieces[offset][: max(dgram.total_len - offset, 0)]
            out[offset : offset + len(piece)] = piece
        return bytes(out)

    def _finish(self, d: DecodedBatch, i: int, payload: bytes, dgram: _Datagram) -> None:
        """Turn row ``i`` (the last fragment) into the reassembled datagram."""
        buf = np.frombuffer(payload, np.uint8)
        l4_off = np.zeros(1, np.int64)
        l4_len = np.zeros(1, np.int32)
        sport = np.zeros(1, np.int32)
        dport = np.zeros(1, np.int32)
        flags = np.zeros(1, np.uint8)
        status = decode_l4(
            buf, 0, int(d.proto[i]), 0, len(payload), sport, dport, flags, l4_off, l4_len
        )
        d.status[i] = status
        d.sport[i], d.dport[i], d.tcp_flags[i] = sport[0], dport[0], flags[0]
        d.ip_bytes[i] = dgram.ip_bytes
        d.l4_len[i] = l4_len[0]
        # Exactly the bytes l4_len counts: a datagram too short for its L4 header
        # (TRUNCATED_L4) has no payload, not its header bytes.
        start = int(l4_off[0])
        d.reassembled[i] = payload[start : start + int(l4_len[0])]

    def _expire(self, now_ns: int) -> None:
        limit = now_ns - int(self.config.fragment_timeout_s * 1e9)
        for key in [k for k, v in self._pending.items() if v.first_ts_ns < limit]:
            self._drop(
                key,
                "ip_fragments_incomplete",
                "datagram never completed within the fragment timeout",
            )

    def _drop(self, key: _Key, name: str, detail: str) -> None:
        dgram = self._pending.pop(key)
        self._held_bytes -= dgram.held_bytes
        self.anomalies.add(
            name,
            f"{detail} ({dgram.fragments} fragments)",
            ts=dgram.first_ts_ns / 1e9,
            count=dgram.fragments,
        )

    def flush(self) -> None:
        """End of input: whatever is still pending never completed."""
        for key in list(self._pending):
            self._drop(
                key, "ip_fragments_incomplete", "capture ended before the datagram completed"
            )
