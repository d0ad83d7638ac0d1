"""IAX2 frames (RFC 5456 §8) as facts: full frames (with type and sequence numbers) and
mini frames (voice without a full header)."""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.errors import Malformed, Truncated

FULL_HEADER_BYTES = 12  # §8.1.1
MINI_HEADER_BYTES = 4  # §8.1.2
META_HEADER_BYTES = 4  # §8.1.3 (video meta frames: first 16 bits zero)
# §8.2 frame types
FRAME_TYPES = {1: "DTMF_E", 2: "VOICE", 3: "VIDEO", 4: "CONTROL", 5: "NULL", 6: "IAX", 7: "TEXT",
               8: "IMAGE", 9: "HTML", 10: "CNG", 12: "DTMF_B"}  # fmt: skip


@dataclass(slots=True, frozen=True)
class Iax2Frame:
    full: bool
    source_call: int
    destination_call: int | None  # full frames
    retransmitted: bool
    timestamp: int
    oseqno: int | None
    iseqno: int | None
    frame_type: int | None
    subclass: int | None


def parse_iax2(data: bytes) -> Iax2Frame:
    if len(data) < MINI_HEADER_BYTES:
        raise Truncated(f"IAX2 frame has {len(data)} bytes")
    word = int.from_bytes(data[0:2], "big")
    if word & 0x8000 == 0:
        if word == 0:
            raise Malformed("IAX2 meta frame (source call 0) is not decoded")
        return Iax2Frame(
            False, word, None, False, int.from_bytes(data[2:4], "big"), None, None, None, None
        )
    if len(data) < FULL_HEADER_BYTES:
        raise Truncated("IAX2 full frame header is truncated")
    dest = int.from_bytes(data[2:4], "big")
    frame_type = data[10]
    if frame_type not in FRAME_TYPES:
        raise Malformed(f"IAX2 frame type {frame_type} is not known")
    return Iax2Frame(
        True, word & 0x7FFF, dest & 0x7FFF, bool(dest & 0x8000),
        int.from_bytes(data[4:8], "big"), data[8], data[9], frame_type, data[11],
    )  # fmt: skip
