"""Byte streams of TCP flows, per direction, for messages split over or sharing segments.

Segments are joined by their TCP sequence numbers (RFC 9293 §3.4) where the stage gives
them: a retransmission of bytes already appended adds nothing, a segment overlapping
them adds only what is new. A segment that starts past the bytes expected is a hole --
bytes the capture missed (or that arrive later, reordered): the partial message before
it can never be completed, so it is dropped and ``holes`` counted, and the stream goes
on from the segment (a message starting mid-way there is the dissector's malformed
one, as on any resynchronisation). Without sequence numbers (-1) segments are appended
in capture order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.decode.tcp_seq import SEQ_SPACE, seq_ahead


@dataclass(slots=True)
class StreamBuffers:
    max_bytes: int
    pending: list[bytearray] = field(default_factory=lambda: [bytearray(), bytearray()])
    overflowed: bool = False
    # Per direction: the sequence number of the next byte expected (-1: none yet).
    next_seq: list[int] = field(default_factory=lambda: [-1, -1])
    holes: int = 0  # segments that started past the bytes expected
    repeated_bytes: int = 0  # bytes of retransmissions left out

    def add(self, direction: int, payload: bytes, seq: int = -1) -> bytearray:
        """Append a segment (``seq``: its TCP sequence number, -1 unknown); return that
        direction's unconsumed bytes (a live view).

        Past ``max_bytes`` without a complete message the buffer is dropped and
        ``overflowed`` is set: the dissector reports it and resynchronises.
        """
        buf = self.pending[direction]
        buf += self.fresh(direction, payload, seq)
        if len(buf) > self.max_bytes:
            buf.clear()
            self.overflowed = True
        return buf

    def fresh(self, direction: int, payload: bytes, seq: int = -1) -> bytes:
        """The part of a segment not seen before, by its sequence number (all of it
        without one); the direction's stream moves past it. For a dissector that reads
        some bytes itself before appending the rest (``add`` with no number)."""
        expected = self.next_seq[direction]
        if seq < 0:
            return payload
        if expected >= 0:
            ahead = seq_ahead.py_func(seq, expected)
            if ahead < 0:  # starts before the next byte: repeated bytes
                repeated = -ahead
                self.repeated_bytes += min(repeated, len(payload))
                if repeated >= len(payload):
                    return b""
                payload = payload[repeated:]
                seq = expected
            elif ahead:
                self.holes += 1
                self.pending[direction].clear()  # the message the missing bytes cut is lost
        self.next_seq[direction] = (seq + len(payload)) % SEQ_SPACE
        return payload

    def consume(self, direction: int, count: int) -> None:
        del self.pending[direction][:count]
