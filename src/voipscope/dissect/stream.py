"""Byte streams of TCP flows, per direction, for messages split over or sharing segments.

Segments are appended in capture order. Retransmitted or reordered segments are not
sorted out here (the decode stage keeps no TCP sequence numbers yet): a retransmission
shows up as a message parsed twice or as a malformed message, which dissectors report
as an anomaly rather than trust.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class StreamBuffers:
    max_bytes: int
    pending: list[bytearray] = field(default_factory=lambda: [bytearray(), bytearray()])
    overflowed: bool = False

    def add(self, direction: int, payload: bytes) -> bytearray:
        """Append a segment; return that direction's unconsumed bytes (a live view).

        Past ``max_bytes`` without a complete message the buffer is dropped and
        ``overflowed`` is set: the dissector reports it and resynchronises.
        """
        buf = self.pending[direction]
        buf += payload
        if len(buf) > self.max_bytes:
            buf.clear()
            self.overflowed = True
        return buf

    def consume(self, direction: int, count: int) -> None:
        del self.pending[direction][:count]
