"""H.245 (v13 Annex A) as far as media pairing needs it, from ALIGNED PER: the logical
channels an OpenLogicalChannel (or a fastStart proposal) and its Ack name, with their
RTP and RTCP addresses."""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.h225_asn1 import read_nonstandard
from voipscope.dissect.per import PerReader, skip_extensions
from voipscope.errors import Unsupported

# -- H.245 OpenLogicalChannel (fastStart proposals, H.245 §7.?) --------------------------------


@dataclass(slots=True, frozen=True)
class LogicalChannel:
    """Where one fastStart/OpenLogicalChannel says media goes (H2250LogicalChannelParameters)."""

    number: int
    media: str  # "audio" | "video" | "data" | ...
    reverse: bool  # True: the addresses are in reverseLogicalChannelParameters
    rtp: tuple[str, int] | None  # mediaChannel
    rtcp: tuple[str, int] | None  # mediaControlChannel


DATA_TYPES = ("nonStandard", "nullData", "video", "audio", "data", "encryptionData")
# AudioCapability root alternatives that are a bare INTEGER(1..256) (frames per packet).
AUDIO_INTEGER_ALTERNATIVES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 10, 11})


def parse_open_logical_channel(data: bytes) -> list[LogicalChannel]:
    """One OpenLogicalChannel as a fastStart element carries it."""
    return _read_olc(PerReader(data))


def _read_olc(r: PerReader) -> list[LogicalChannel]:
    """OpenLogicalChannel: forward and reverse parameters with audio data types; a video
    or data capability (deep, rarely in fastStart of a voice call) is ``Unsupported``."""
    more = r.bit()
    has_reverse = r.bit()
    number = r.constrained(1, 65535)
    out = []
    fwd_more = r.bit()
    has_port = r.bit()
    if has_port:
        r.constrained(0, 65535)
    media = _read_data_type(r)
    fwd = _read_multiplex(r, forward=True)
    skip_extensions(r, fwd_more)
    if fwd is not None:
        out.append(LogicalChannel(number, media, False, *fwd))
    if has_reverse:
        rev_more = r.bit()
        has_mux = r.bit()
        media = _read_data_type(r)
        if has_mux:
            rev = _read_multiplex(r, forward=False)
            if rev is not None:
                out.append(LogicalChannel(number, media, True, *rev))
        skip_extensions(r, rev_more)
    skip_extensions(r, more)
    return out


def _read_olc_ack(r: PerReader) -> list[LogicalChannel]:
    """OpenLogicalChannelAck: the acknowledging side's receive addresses sit in the
    forwardMultiplexAckParameters addition (H2250LogicalChannelAckParameters)."""
    more = r.bit()
    has_reverse = r.bit()
    number = r.constrained(1, 65535)
    out = []
    if has_reverse:
        rev_more = r.bit()
        has_port, has_mux = r.bit(), r.bit()
        r.constrained(1, 65535)  # reverseLogicalChannelNumber
        if has_port:
            r.constrained(0, 65535)
        if has_mux:
            index, ext = r.choice(1)
            if ext:
                data = r.open_type()
                if index == 0:
                    out.append(LogicalChannel(number, "audio", True, *_read_h2250(PerReader(data))))
            else:
                raise Unsupported("H.222 reverse parameters are not decoded")
        skip_extensions(r, rev_more)
    adds = skip_extensions(r, more)
    # Additions: separateStack, forwardMultiplexAckParameters, encryptionSync, ...
    if len(adds) > 1 and adds[1] is not None:
        a = PerReader(adds[1])
        index, ext = a.choice(1)
        if not ext:
            a.bit()  # extension bit of H2250LogicalChannelAckParameters
            nonstd, session, media, control, _dynamic = (a.bit() for _ in range(5))
            if nonstd:
                for _ in range(a.seq_of_count()):
                    _read_h245_nonstandard(a)
            if session:
                a.constrained(1, 255)
            rtp = _read_h245_address(a) if media else None
            rtcp = _read_h245_address(a) if control else None
            out.append(LogicalChannel(number, "audio", False, rtp, rtcp))
    return out


# MultimediaSystemControlMessage (H.245 §?): CHOICE {request, response, command,
# indication, ...}; the alternatives a call tracker wants, by (message, index).
H245_REQUESTS = 11  # RequestMessage root alternatives
H245_RESPONSES = 19
H245_COMMANDS = 7
H245_INDICATIONS = 14
OPEN_LOGICAL_CHANNEL = (0, 3)
OPEN_LOGICAL_CHANNEL_ACK = (1, 5)
END_SESSION_COMMAND = (2, 5)
H245_NAMES = {OPEN_LOGICAL_CHANNEL: "openLogicalChannel",
              OPEN_LOGICAL_CHANNEL_ACK: "openLogicalChannelAck",
              END_SESSION_COMMAND: "endSessionCommand", (0, 1): "masterSlaveDetermination",
              (0, 2): "terminalCapabilitySet", (0, 4): "closeLogicalChannel",
              (1, 1): "masterSlaveDeterminationAck", (1, 3): "terminalCapabilitySetAck",
              (1, 6): "openLogicalChannelReject", (1, 7): "closeLogicalChannelAck"}  # fmt: skip


@dataclass(slots=True)
class H245Message:
    kind: int  # 0 request, 1 response, 2 command, 3 indication
    index: int  # alternative within the kind (-1: an extension alternative)
    channels: list[LogicalChannel] = field(default_factory=list)

    @property
    def name(self) -> str:
        return H245_NAMES.get((self.kind, self.index), f"h245-{self.kind}.{self.index}")


def parse_h245(data: bytes) -> H245Message:
    """A MultimediaSystemControlMessage; the logical channel addresses of
    OpenLogicalChannel and OpenLogicalChannelAck are decoded, other bodies are not."""
    r = PerReader(data)
    kind, ext = r.choice(4)
    if ext:
        return H245Message(-1, -1)
    index, sub_ext = r.choice(
        (H245_REQUESTS, H245_RESPONSES, H245_COMMANDS, H245_INDICATIONS)[kind]
    )
    msg = H245Message(kind, -1 if sub_ext else index)
    if (kind, msg.index) == OPEN_LOGICAL_CHANNEL:
        msg.channels = _read_olc(r)
    elif (kind, msg.index) == OPEN_LOGICAL_CHANNEL_ACK:
        msg.channels = _read_olc_ack(r)
    return msg


def _read_data_type(r: PerReader) -> str:
    index, ext = r.choice(len(DATA_TYPES))
    if ext:
        r.open_type()
        return "other"
    if index == 0:
        _read_h245_nonstandard(r)
    elif index == 3:
        kind, aext = r.choice(14)
        if aext:
            r.open_type()
        elif kind in AUDIO_INTEGER_ALTERNATIVES:
            r.constrained(1, 256)
        elif kind == 8:  # g7231 {maxAl-sduAudioFrames, silenceSuppression}
            r.constrained(1, 256), r.bit()
        elif kind == 0:
            _read_h245_nonstandard(r)
        else:
            raise Unsupported(f"H.245 audio capability {kind} is not decoded")
    elif index != 1:
        raise Unsupported(f"H.245 {DATA_TYPES[index]} data type is not decoded")
    return {3: "audio", 2: "video", 4: "data"}.get(index, DATA_TYPES[index])


def _read_h245_nonstandard(r: PerReader) -> None:
    """H.245 NonStandardParameter {nonStandardIdentifier CHOICE {object, h221NonStandard},
    data}: as H.225.0's without extension markers."""
    read_nonstandard(r, h245=True)


def _read_multiplex(
    r: PerReader, forward: bool
) -> tuple[tuple[str, int] | None, tuple[str, int] | None] | None:
    """multiplexParameters: h2250LogicalChannelParameters is the first extension
    alternative of the forward CHOICE {h222, h223, v76, ..., h2250, none} and the second
    of the reverse CHOICE {h223, ..., v76, h2250}; None for the others."""
    index, ext = r.choice(3 if forward else 1)
    if not ext:
        raise Unsupported(f"H.245 multiplex parameters {index} are not decoded")
    data = r.open_type()
    if index != (0 if forward else 1):
        return None
    return _read_h2250(PerReader(data))


def _read_h2250(r: PerReader) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    r.bit()  # extension; the additions come last and are not needed
    # Ten optional-field bits; the fields after mediaControlChannel are not needed.
    present = [r.bit() for _ in range(10)]
    nonstd, assoc, media, guaranteed, control = present[:5]
    if nonstd:
        for _ in range(r.seq_of_count()):
            _read_h245_nonstandard(r)
    # (the H.245 NonStandardParameter of this list has no extension markers)
    r.constrained(0, 255)  # sessionID
    if assoc:
        r.constrained(1, 255)
    rtp = _read_h245_address(r) if media else None
    if guaranteed:
        r.bit()
    rtcp = _read_h245_address(r) if control else None
    return rtp, rtcp


def _read_h245_address(r: PerReader) -> tuple[str, int] | None:
    """H.245 TransportAddress {unicastAddress UnicastAddress, multicastAddress, ...}."""
    index, ext = r.choice(2)
    if ext:
        r.open_type()
        return None
    kind, kext = r.choice(5 if index == 0 else 2)
    if kext:
        r.open_type()
        return None
    if kind == 0:  # iPAddress {network OCTET STRING (SIZE(4)), tsapIdentifier, ...}
        more = r.bit()
        ip = r.fixed_octets(4)
        port = r.constrained(0, 65535)
        skip_extensions(r, more)
        return ".".join(str(b) for b in ip), port
    if index == 0 and kind == 2:  # iP6Address
        more = r.bit()
        ip = r.fixed_octets(16)
        port = r.constrained(0, 65535)
        skip_extensions(r, more)
        return ":".join(ip[i : i + 2].hex() for i in range(0, 16, 2)), port
    raise Unsupported(f"H.245 address kind {kind} is not decoded")
