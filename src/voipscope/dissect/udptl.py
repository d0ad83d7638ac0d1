"""T.38 fax over UDPTL (ITU-T T.38 §9.1 and Annex A's ASN.1, aligned PER), as facts.

A UDPTL datagram is a 16-bit sequence number, the primary IFP packet behind a PER
length determinant, and the error recovery (redundant earlier IFP packets, or FEC). An
IFP packet starts with one octet saying whether a data field follows, whether it is a
T.30 indicator (CNG, CED, V.21 preamble, training...) or T.30 data, and which.

T.38 is negotiated by signalling (SDP ``m=image ... udptl t38``, H.245), never found by
chance: this dissector looks only at flows signalling announced as T.38, and confirms
from the bytes what the announcement said (or names the anomaly when they disagree).
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import MEDIA, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import DecodeError, Malformed, Truncated

SEQ_BYTES = 2  # T.38 §9.1: seq-number INTEGER (0..65535)
# X.691 §11.9.3.6-8: a length below 128 is one octet, below 16384 two octets (10xxxxxx).
SHORT_LENGTH_LIMIT = 0x80
LONG_LENGTH_FLAG = 0x80
FRAGMENTED_LENGTH_FLAGS = 0xC0
# IFP octet 1 (T.38 Annex A, aligned PER): data-field present, type-of-msg choice,
# extension bit, then the enumeration (4 bits) of the indicator or data type.
DATA_FIELD_PRESENT = 0x80
TYPE_T30_DATA = 0x40
EXTENDED = 0x20
INDICATORS = ("no-signal", "cng", "ced", "v21-preamble", "v27-2400-training",
              "v27-4800-training", "v29-7200-training", "v29-9600-training",
              "v17-7200-short-training", "v17-7200-long-training",
              "v17-9600-short-training", "v17-9600-long-training",
              "v17-12000-short-training", "v17-12000-long-training",
              "v17-14400-short-training", "v17-14400-long-training")  # fmt: skip
DATA_TYPES = ("v21", "v27-2400", "v27-4800", "v29-7200", "v29-9600", "v17-7200", "v17-9600",
              "v17-12000", "v17-14400")  # fmt: skip
FEC_INFO = 0x80  # error-recovery CHOICE: 0 secondary-ifp-packets, 1 fec-info
MAX_SECONDARY = 16  # redundant copies per datagram (attacker-controlled, DESIGN §4)


@dataclass(slots=True, frozen=True)
class UdptlPacket:
    seq: int
    message: str  # "cng", "v21" ... ("extended" for T.38 2002+ extensions)
    indicator: bool
    secondary: int  # redundant IFP packets carried
    fec: bool


def _length(data: bytes, at: int) -> tuple[int, int]:
    """A PER length determinant at ``at``: (length, offset after it)."""
    if at >= len(data):
        raise Truncated("UDPTL length determinant is missing")
    first = data[at]
    if first < SHORT_LENGTH_LIMIT:
        return first, at + 1
    if first & FRAGMENTED_LENGTH_FLAGS == FRAGMENTED_LENGTH_FLAGS:
        raise Malformed("UDPTL fragmented length (16K units) in a datagram")
    if at + 1 >= len(data):
        raise Truncated("UDPTL two-octet length is cut")
    return ((first & ~LONG_LENGTH_FLAG & 0x3F) << 8) | data[at + 1], at + 2


def _ifp(ifp: bytes) -> tuple[str, bool]:
    """(message name, is an indicator) of one IFP packet; Malformed if it cannot be one."""
    if not ifp:
        raise Malformed("empty IFP packet")
    first = ifp[0]
    if not first & TYPE_T30_DATA:
        if first & DATA_FIELD_PRESENT:
            raise Malformed("T.30 indicator with a data field")
        if first & EXTENDED:
            if len(ifp) != 2:
                raise Malformed(f"extended T.30 indicator of {len(ifp)} octets")
            return "extended", True
        if len(ifp) != 1 or first & 0x01:
            raise Malformed("T.30 indicator is not one octet with a zero pad bit")
        return INDICATORS[(first >> 1) & 0x0F], True
    if first & EXTENDED:
        if len(ifp) < 2:
            raise Malformed("extended T.30 data type is cut")
        return "extended", False
    data_type = (first >> 1) & 0x0F
    if data_type >= len(DATA_TYPES):
        raise Malformed(f"T.30 data type {data_type} is unknown")
    if first & DATA_FIELD_PRESENT and len(ifp) < 2:
        raise Malformed("T.30 data announces fields but has none")
    return DATA_TYPES[data_type], False


def parse_udptl(data: bytes) -> UdptlPacket:
    if len(data) < SEQ_BYTES + 2:
        raise Truncated(f"UDPTL datagram of {len(data)} octets")
    seq = int.from_bytes(data[:SEQ_BYTES], "big")
    length, at = _length(data, SEQ_BYTES)
    end = at + length
    if end > len(data):
        raise Truncated(f"UDPTL primary IFP of {length} octets runs past the datagram")
    message, indicator = _ifp(data[at:end])
    if end >= len(data):
        raise Truncated("UDPTL datagram ends before its error recovery")
    fec = bool(data[end] & FEC_INFO)
    secondary = 0
    if not fec:
        # Aligned PER: the CHOICE bit pads out its octet; the SEQUENCE OF count follows.
        count, at = _length(data, end + 1)
        if count > MAX_SECONDARY:
            raise Malformed(f"UDPTL carries {count} secondary IFP packets")
        for _ in range(count):
            length, at = _length(data, at)
            at += length
            if at > len(data):
                raise Truncated("UDPTL secondary IFP packet runs past the datagram")
        if at != len(data):
            raise Malformed(f"{len(data) - at} octets after the UDPTL error recovery")
        secondary = count
    return UdptlPacket(seq, message, indicator, secondary, fec)


@dataclass(slots=True)
class UdptlState:
    last_seq: list[int | None]
    packets: int = 0


class UdptlDissector(Dissector):
    name = "T.38"
    transports = frozenset({UDP})
    budget_packets = 2
    follow_packets = 0
    ANOMALIES = {
        "t38_not_udptl": "a flow signalling announced as T.38 (UDPTL) carries other bytes",
    }

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        expected = ctx.expected
        if expected is None or expected.protocol != "T.38":
            return Probe.NO  # T.38 is negotiated, never guessed (module docstring)
        try:
            packet = parse_udptl(pkt.payload)
        except DecodeError as exc:
            state = ctx.state.setdefault(self.name, UdptlState([None, None]))
            state.packets += 1
            if state.packets >= self.budget_packets:
                detail = f"{exc} (announced by: {expected.evidence})"
                ctx.anomaly("t38_not_udptl", detail, pkt.ts_ns)
            return Probe.NO if state.packets >= self.budget_packets else Probe.MAYBE
        kind = "indicator" if packet.indicator else "data"
        recovery = "FEC" if packet.fec else f"{packet.secondary} redundant IFP"
        ctx.report(
            Finding(
                "T.38",
                MEDIA,
                0.95,
                f"UDPTL seq {packet.seq}, IFP T.30 {kind} {packet.message}, {recovery}, "
                f"on an address signalling announced as T.38",
                pkt.seq,
            )
        )
        return Probe.MATCH
