"""ASN.1 ALIGNED PER (ITU-T X.691, BASIC-PER ALIGNED) as H.225.0 §7 and H.245 §7 use it:
a bit reader with the X.691 primitives the H.323 walkers need. Not a general ASN.1
codec. Bytes that end early raise ``Truncated``, contradictions ``Malformed``,
structures not decoded ``Unsupported`` -- never an IndexError."""

from __future__ import annotations

from voipscope.errors import Malformed, Truncated, Unsupported

MAX_SEQUENCE_OF = 32  # items of a SEQUENCE OF read or skipped (attacker-controlled count)


class PerReader:
    """Bits of one ALIGNED PER encoding, most significant bit first."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0  # in bits
        self.end = len(data) * 8

    def bits(self, n: int) -> int:
        if self.pos + n > self.end:
            raise Truncated(f"PER encoding ends inside a {n}-bit field")
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def bit(self) -> bool:
        return bool(self.bits(1))

    def align(self) -> None:
        self.pos = (self.pos + 7) & ~7

    def octets(self, n: int) -> bytes:
        """``n`` octets from the next octet boundary."""
        self.align()
        start = self.pos >> 3
        if start + n > len(self.data):
            raise Truncated(f"PER encoding ends inside a {n}-octet field")
        self.pos += n * 8
        return self.data[start : start + n]

    def constrained(self, lo: int, hi: int) -> int:
        """A constrained whole number in lo..hi (X.691 §11.5.7, ALIGNED variant)."""
        span = hi - lo + 1
        if span == 1:
            return lo
        if span <= 255:
            value = lo + self.bits((span - 1).bit_length())
        elif span == 256:
            value = lo + self.octets(1)[0]
        elif span <= 65536:
            value = lo + int.from_bytes(self.octets(2), "big")
        else:
            # Indefinite-length case: a length in octets, then the value (§11.5.7.4).
            size = self.constrained(1, ((span - 1).bit_length() + 7) // 8)
            value = lo + int.from_bytes(self.octets(size), "big")
        if value > hi:
            # The field's bits can say more than the range allows (3 bits for 7 choices).
            raise Malformed(f"PER value {value} outside its range {lo}..{hi}")
        return value

    def length(self) -> int:
        """An unconstrained length determinant (§11.9.3.5-8)."""
        self.align()
        first = self.octets(1)[0]
        if first & 0x80 == 0:
            return first
        if first & 0x40 == 0:
            return ((first & 0x3F) << 8) | self.octets(1)[0]
        raise Unsupported("fragmented PER length (16K items or more) is not decoded")

    def small(self) -> int:
        """A normally small non-negative whole number (§11.6)."""
        if not self.bit():
            return self.bits(6)
        return self.length()

    def sized(self, lo: int, hi: int) -> int:
        """A length with a SIZE(lo..hi) constraint, hi < 64K (§11.9.4.1)."""
        return self.constrained(lo, hi)

    def octet_string(self, lo: int = 0, hi: int | None = None) -> bytes:
        if hi is not None and lo == hi:
            return self.fixed_octets(lo)
        n = self.length() if hi is None else self.sized(lo, hi)
        return self.octets(n)

    def fixed_octets(self, n: int) -> bytes:
        if n <= 2:  # §17.6: up to two octets are not octet-aligned
            return bytes(self.bits(8) for _ in range(n))
        return self.octets(n)

    def open_type(self) -> bytes:
        """An open type (extension addition, §11.2): a length then that many octets."""
        return self.octets(self.length())

    def oid(self) -> bytes:
        return self.octets(self.length())

    def extension_bitmap(self) -> list[bool]:
        """Presence bits of a SEQUENCE's extension additions (§19.7)."""
        count = self.small() + 1
        if count > 64:
            raise Malformed(f"PER extension bitmap of {count} additions")
        return [self.bit() for _ in range(count)]

    def choice(self, root: int, extensible: bool = True) -> tuple[int, bool]:
        """(index, is_extension) of a CHOICE with ``root`` root alternatives (§23)."""
        if extensible and self.bit():
            return self.small(), True
        return self.constrained(0, root - 1), False

    def seq_of_count(self, lo: int = 0, hi: int | None = None) -> int:
        n = self.length() if hi is None else self.sized(lo, hi)
        if n > MAX_SEQUENCE_OF:
            raise Unsupported(f"SEQUENCE OF with {n} items (more than {MAX_SEQUENCE_OF})")
        return n


def skip_extensions(r: PerReader, present: bool) -> list[bytes | None]:
    """Read the extension additions of a SEQUENCE whose extension bit was ``present``;
    returns each addition's open-type bytes (None: absent)."""
    if not present:
        return []
    return [r.open_type() if bit else None for bit in r.extension_bitmap()]
