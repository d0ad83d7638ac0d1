"""The few H.225.0 and H.245 ASN.1 structures a call tracker needs, decoded from ALIGNED
PER (ITU-T X.691, BASIC-PER ALIGNED, as H.225.0 §7 and H.245 §7 require).

Not a general ASN.1 codec: a bit reader with the X.691 primitives, and hand-written
walkers for the path from H323-UserInformation to the call identifier, the release reason,
H.245 address and fastStart, and for the RAS messages that name a call (ARQ, ARJ, DRQ,
IRQ). Extension additions the walkers do not need are skipped by their open-type length
(X.691 §19.7); a structure the walkers do not decode raises ``Unsupported``, bytes that
end early ``Truncated``, contradictions ``Malformed`` -- never an IndexError.

ASN.1 names and alternative orders follow H.225.0 v7 (2009) Annex H and H.245 v13 Annex A.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.errors import Malformed, Truncated, Unsupported

MAX_SEQUENCE_OF = 32  # items of a SEQUENCE OF read or skipped (attacker-controlled count)
MAX_ALIASES = 8  # aliases kept per list
MAX_FAST_START = 16  # fastStart OpenLogicalChannel proposals decoded per message


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


# -- shared H.225.0 types ----------------------------------------------------------------

DIALLED_DIGITS = "#*,0123456789"  # FROM("0123456789#*,"), in canonical (code) order


def read_nonstandard(r: PerReader, h245: bool = False) -> None:
    """NonStandardParameter: identifier CHOICE {object, h221NonStandard}, data (skipped).
    H.225.0's identifier CHOICE and H221NonStandard are extensible, H.245's are not."""
    index, ext = r.choice(2, extensible=not h245)
    if ext:
        r.open_type()
    elif index == 0:
        r.oid()
    else:
        read_h221(r, extensible=not h245)
    r.octet_string()


def read_h221(r: PerReader, extensible: bool = True) -> None:
    """H221NonStandard {t35CountryCode, t35Extension, manufacturerCode[, ...]}."""
    more = extensible and r.bit()
    r.octets(1), r.octets(1), r.octets(2)
    skip_extensions(r, more)


def read_transport_address(r: PerReader) -> tuple[str, int] | None:
    """H.225.0 TransportAddress; (ip, port) for IPv4/IPv6, None for other kinds."""
    index, ext = r.choice(7)
    if ext:
        r.open_type()
        return None
    if index == 0:  # ipAddress SEQUENCE {ip OCTET STRING (SIZE(4)), port INTEGER(0..65535)}
        ip = r.fixed_octets(4)
        return ".".join(str(b) for b in ip), r.constrained(0, 65535)
    if index == 1:  # ipSourceRoute
        more = r.bit()
        ip = r.fixed_octets(4)
        port = r.constrained(0, 65535)
        for _ in range(r.seq_of_count()):
            r.fixed_octets(4)
        if not r.choice(2)[1]:
            pass  # strict / loose: NULL
        skip_extensions(r, more)
        return ".".join(str(b) for b in ip), port
    if index == 2:  # ipxAddress
        r.fixed_octets(6), r.fixed_octets(4), r.fixed_octets(2)
        return None
    if index == 3:  # ip6Address SEQUENCE {ip OCTET STRING (SIZE(16)), port, ...}
        more = r.bit()
        ip = r.fixed_octets(16)
        port = r.constrained(0, 65535)
        skip_extensions(r, more)
        groups = [ip[i : i + 2].hex() for i in range(0, 16, 2)]
        return ":".join(groups), port
    if index == 4:  # netBios
        r.fixed_octets(16)
    elif index == 5:  # nsap OCTET STRING (SIZE(1..20))
        r.octet_string(1, 20)
    else:
        read_nonstandard(r)
    return None


def read_alias(r: PerReader) -> str | None:
    """AliasAddress: dialledDigits or h323-ID as text; extension kinds are skipped."""
    index, ext = r.choice(2)
    if ext:
        r.open_type()  # url-ID, transportID, email-ID, partyNumber, ...
        return None
    if index == 0:  # IA5String (SIZE(1..128)) FROM("0123456789#*,"): 4 bits a character
        n = r.sized(1, 128)
        r.align()
        codes = [r.bits(4) for _ in range(n)]
        if any(c >= len(DIALLED_DIGITS) for c in codes):
            raise Malformed("dialledDigits character outside its alphabet")
        return "".join(DIALLED_DIGITS[c] for c in codes)
    n = r.sized(1, 256)  # h323-ID BMPString (SIZE(1..256))
    raw = r.octets(2 * n)
    return raw.decode("utf-16-be", "replace")


def read_aliases(r: PerReader) -> list[str]:
    out = []
    for _ in range(r.seq_of_count()):
        alias = read_alias(r)
        if alias is not None and len(out) < MAX_ALIASES:
            out.append(alias)
    return out


def read_endpoint_type(r: PerReader) -> None:
    """EndpointType (H.225.0 §7.?): optional vendor/gatekeeper/gateway/mcu/terminal info,
    mc, undefinedNode; nothing of it is kept."""
    more = r.bit()
    nonstd, vendor, gatekeeper, gateway, mcu, terminal = (r.bit() for _ in range(6))
    if nonstd:
        read_nonstandard(r)
    if vendor:  # VendorIdentifier {vendor H221NonStandard, productId, versionId, ...}
        v_more = r.bit()
        product, version = r.bit(), r.bit()
        read_h221(r)
        if product:
            r.octet_string(1, 256)
        if version:
            r.octet_string(1, 256)
        skip_extensions(r, v_more)
    if gatekeeper:
        _read_info(r)
    if gateway:  # GatewayInfo {protocol SEQUENCE OF SupportedProtocols OPT, nonStandard OPT}
        g_more = r.bit()
        has_protocols, has_nonstd = r.bit(), r.bit()
        if has_protocols:
            for _ in range(r.seq_of_count()):
                _read_supported_protocol(r)
        if has_nonstd:
            read_nonstandard(r)
        skip_extensions(r, g_more)
    if mcu:
        _read_info(r)
    if terminal:
        _read_info(r)
    r.bit(), r.bit()  # mc, undefinedNode
    skip_extensions(r, more)


def _read_info(r: PerReader) -> None:
    """GatekeeperInfo / McuInfo / TerminalInfo / H310Caps ...: {nonStandardData OPT, ...}."""
    more = r.bit()
    if r.bit():
        read_nonstandard(r)
    skip_extensions(r, more)


def _read_supported_protocol(r: PerReader) -> None:
    index, ext = r.choice(9)
    if ext:
        r.open_type()
    elif index == 0:
        read_nonstandard(r)
    else:
        _read_info(r)  # h310 .. t120-only: each {nonStandardData OPT, ...}


def read_guid(r: PerReader) -> str:
    raw = r.fixed_octets(16)
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def read_call_identifier(data: bytes) -> str:
    """CallIdentifier ::= SEQUENCE {guid GloballyUniqueID, ...} from its open type."""
    r = PerReader(data)
    r.bit()
    return read_guid(r)


def _seq_of_octet_strings(data: bytes) -> list[bytes]:
    r = PerReader(data)
    return [r.octet_string() for _ in range(r.seq_of_count())]


# -- H323-UserInformation (H.225.0 §7.6) ---------------------------------------------------

UU_BODIES = ("setup", "callProceeding", "connect", "alerting", "information",
             "releaseComplete", "facility")  # fmt: skip
UU_EXTENSION_BODIES = ("progress", "empty", "status", "statusInquiry", "setupAcknowledge",
                       "notify")  # fmt: skip
# ReleaseCompleteReason root alternatives (H.225.0 §7.6 Release-Complete-UUIE) and the
# extension ones, in order.
RELEASE_REASONS = ("noBandwidth", "gatekeeperResources", "unreachableDestination",
                   "destinationRejection", "invalidRevision", "noPermission",
                   "unreachableGatekeeper", "gatewayResources", "badFormatAddress",
                   "adaptiveBusy", "inConf", "undefinedReason")  # fmt: skip
RELEASE_EXTENSION_REASONS = ("facilityCallDeflection", "securityDenied",
                             "calledPartyNotRegistered", "callerNotRegistered",
                             "newConnectionNeeded", "nonStandardReason",
                             "replaceWithConferenceInvite", "genericDataReason",
                             "neededFeatureNotSupported", "tunnelledSignallingRejected",
                             "invalidCID", "securityError", "hopCountExceeded")  # fmt: skip
FACILITY_REASONS = ("routeCallToGatekeeper", "callForwarded", "routeCallToMC",
                    "undefinedReason")  # fmt: skip


@dataclass(slots=True)
class H225Body:
    """What the H.225.0 user-user information says about the call."""

    body: str  # "setup", "connect", ... (the h323-message-body alternative)
    call_identifier: str | None = None  # GUID, 8-4-4-4-12 hex as Wireshark shows it
    conference_id: str | None = None
    h245_address: tuple[str, int] | None = None
    source_aliases: list[str] = field(default_factory=list)
    destination_aliases: list[str] = field(default_factory=list)
    reason: str | None = None  # releaseComplete / facility reason
    fast_start: list[bytes] = field(default_factory=list)  # H.245 OpenLogicalChannel each


def parse_h323_user_info(data: bytes) -> H225Body:
    """H323-UserInformation ::= SEQUENCE {h323-uu-pdu H323-UU-PDU, user-data OPT, ...}."""
    r = PerReader(data)
    r.bit()  # extension bit of H323-UserInformation
    r.bit()  # user-data present
    r.bit()  # extension bit of H323-UU-PDU
    r.bit()  # nonStandardData present (after the body; not needed)
    index, ext = r.choice(len(UU_BODIES))
    if ext:
        name = UU_EXTENSION_BODIES[index] if index < len(UU_EXTENSION_BODIES) else f"ext{index}"
        return H225Body(name)
    body = H225Body(UU_BODIES[index])
    reader = _BODY_READERS.get(body.body)
    if reader is not None:
        reader(r, body)
    return body


def _read_setup(r: PerReader, b: H225Body) -> None:
    more = r.bit()
    h245, src, dst, dst_sig, extra, crv, services = (r.bit() for _ in range(7))
    r.oid()  # protocolIdentifier
    if h245:
        b.h245_address = read_transport_address(r)
    if src:
        b.source_aliases = read_aliases(r)
    read_endpoint_type(r)  # sourceInfo
    if dst:
        b.destination_aliases = read_aliases(r)
    if dst_sig:
        read_transport_address(r)
    if extra:
        read_aliases(r)
    if crv:
        for _ in range(r.seq_of_count()):
            r.constrained(0, 65535)
    r.bit()  # activeMC
    b.conference_id = read_guid(r)
    if r.choice(3)[1]:  # conferenceGoal
        pass  # NULL alternatives (extension ones have an empty open type)
    if services:
        _read_qseries(r)
    r.choice(4)  # callType: NULL alternatives
    adds = skip_extensions(r, more)
    # Additions: sourceCallSignalAddress, remoteExtensionAddress, callIdentifier,
    # h245SecurityCapability, tokens, cryptoTokens, fastStart, ...
    _identifier_and_fast_start(b, adds, 2, 6)


def _read_qseries(r: PerReader) -> None:
    """QseriesOptions: eight BOOLEANs and Q954Details {two BOOLEANs, ...}."""
    more = r.bit()
    for _ in range(7):
        r.bit()
    q954_more = r.bit()
    r.bit(), r.bit()
    skip_extensions(r, q954_more)
    skip_extensions(r, more)


def _identifier_and_fast_start(
    b: H225Body, adds: list[bytes | None], id_at: int, fast_at: int | None
) -> None:
    if id_at < len(adds) and adds[id_at] is not None:
        b.call_identifier = read_call_identifier(adds[id_at])  # type: ignore[arg-type]
    if fast_at is not None and fast_at < len(adds) and adds[fast_at] is not None:
        b.fast_start = _seq_of_octet_strings(adds[fast_at])[:MAX_FAST_START]  # type: ignore[arg-type]


def _read_destination_first(r: PerReader, b: H225Body) -> None:
    """CallProceeding-UUIE and Alerting-UUIE: protocolIdentifier, destinationInfo,
    h245Address OPT, ..., callIdentifier, h245SecurityMode, tokens, cryptoTokens,
    fastStart."""
    more = r.bit()
    h245 = r.bit()
    r.oid()
    read_endpoint_type(r)
    if h245:
        b.h245_address = read_transport_address(r)
    _identifier_and_fast_start(b, skip_extensions(r, more), 0, 4)


def _read_connect(r: PerReader, b: H225Body) -> None:
    more = r.bit()
    h245 = r.bit()
    r.oid()
    if h245:
        b.h245_address = read_transport_address(r)
    read_endpoint_type(r)
    b.conference_id = read_guid(r)
    _identifier_and_fast_start(b, skip_extensions(r, more), 0, 4)


def _read_information(r: PerReader, b: H225Body) -> None:
    more = r.bit()
    r.oid()
    _identifier_and_fast_start(b, skip_extensions(r, more), 0, 3)


def _read_release_complete(r: PerReader, b: H225Body) -> None:
    more = r.bit()
    has_reason = r.bit()
    r.oid()
    if has_reason:
        index, ext = r.choice(len(RELEASE_REASONS))
        if ext:
            r.open_type()
            known = index < len(RELEASE_EXTENSION_REASONS)
            b.reason = RELEASE_EXTENSION_REASONS[index] if known else f"reason{index + 12}"
        else:
            b.reason = RELEASE_REASONS[index]
    _identifier_and_fast_start(b, skip_extensions(r, more), 0, None)


def _read_facility(r: PerReader, b: H225Body) -> None:
    more = r.bit()
    alt_address, alt_alias, conf = r.bit(), r.bit(), r.bit()
    r.oid()
    if alt_address:
        read_transport_address(r)
    if alt_alias:
        b.destination_aliases = read_aliases(r)
    if conf:
        b.conference_id = read_guid(r)
    index, ext = r.choice(len(FACILITY_REASONS))
    if ext:
        r.open_type()
        b.reason = f"reason{index + len(FACILITY_REASONS)}"
    else:
        b.reason = FACILITY_REASONS[index]
    _identifier_and_fast_start(b, skip_extensions(r, more), 0, None)


_BODY_READERS = {
    "setup": _read_setup,
    "callProceeding": _read_destination_first,
    "alerting": _read_destination_first,
    "connect": _read_connect,
    "information": _read_information,
    "releaseComplete": _read_release_complete,
    "facility": _read_facility,
}


# -- RAS (H.225.0 §7.8-7.15) -----------------------------------------------------------------

# RasMessage root alternatives (H.225.0 §7.7), indexes as on the wire.
RAS_MESSAGES = ("gatekeeperRequest", "gatekeeperConfirm", "gatekeeperReject",
                "registrationRequest", "registrationConfirm", "registrationReject",
                "unregistrationRequest", "unregistrationConfirm", "unregistrationReject",
                "admissionRequest", "admissionConfirm", "admissionReject",
                "bandwidthRequest", "bandwidthConfirm", "bandwidthReject",
                "disengageRequest", "disengageConfirm", "disengageReject",
                "locationRequest", "locationConfirm", "locationReject",
                "infoRequest", "infoRequestResponse", "nonStandardMessage",
                "unknownMessageResponse")  # fmt: skip
ARQ, ACF, ARJ = 9, 10, 11
DRQ, DCF, DRJ = 15, 16, 17
IRQ = 21
ADMISSION_REJECT_REASONS = ("calledPartyNotRegistered", "invalidPermission",
                            "requestDenied", "undefinedReason", "callerNotRegistered",
                            "routeCallToGatekeeper", "invalidEndpointIdentifier",
                            "resourceUnavailable")  # fmt: skip
DISENGAGE_REASONS = ("forcedDrop", "normalDrop", "undefinedReason")
# Optional-field bits before requestSeqNum: ACF {irrFrequency, nonStandardData},
# DCF {nonStandardData}, DRJ {nonStandardData}.
RAS_SEQ_FIRST = {ACF: 2, DCF: 1, DRJ: 1}


@dataclass(slots=True)
class RasMessage:
    """One RAS message; the call fields are filled for ARQ, ARJ, DRQ and IRQ."""

    choice: int
    request_seq: int
    call_identifier: str | None = None
    call_reference: int | None = None
    conference_id: str | None = None
    source_aliases: list[str] = field(default_factory=list)
    destination_aliases: list[str] = field(default_factory=list)
    answer_call: bool | None = None  # ARQ: the callee asks (True) or the caller (False)
    reason: str | None = None  # ARJ rejectReason, DRQ disengageReason

    @property
    def name(self) -> str:
        if self.choice < len(RAS_MESSAGES):
            return RAS_MESSAGES[self.choice]
        return f"ras{self.choice}"


def parse_ras(data: bytes) -> RasMessage:
    """A RasMessage; every alternative gives its requestSeqNum (the first field of all
    root alternatives but nonStandardMessage and unknownMessageResponse, where it is too)."""
    r = PerReader(data)
    choice, ext = r.choice(len(RAS_MESSAGES))
    if ext:
        raise Unsupported(f"RAS extension message {choice} is not decoded")
    more = r.bit()
    if choice == ARQ:
        return _read_arq(r, more)
    if choice == ARJ:
        r.bit()  # optional nonStandardData
        seq = r.constrained(1, 65535)
        index, rej_ext = r.choice(len(ADMISSION_REJECT_REASONS))
        if rej_ext:
            r.open_type()
            reason = f"reason{index + len(ADMISSION_REJECT_REASONS)}"
        else:
            reason = ADMISSION_REJECT_REASONS[index]
        return RasMessage(choice, seq, reason=reason)
    if choice == DRQ:
        return _read_drq(r, more)
    if choice == IRQ:
        has_nonstd, has_reply = r.bit(), r.bit()
        seq = r.constrained(1, 65535)
        crv = r.constrained(0, 65535)
        if has_nonstd:
            read_nonstandard(r)
        if has_reply:
            read_transport_address(r)
        msg = RasMessage(choice, seq, call_reference=crv)
        adds = skip_extensions(r, more)
        if adds and adds[0] is not None:
            msg.call_identifier = read_call_identifier(adds[0])
        return msg
    if choice in RAS_SEQ_FIRST:
        # Alternatives whose requestSeqNum follows a known number of optional-field bits:
        # confirms and rejects name their request by it.
        r.bits(RAS_SEQ_FIRST[choice])
        return RasMessage(choice, r.constrained(1, 65535))
    # Every other alternative: the sequence number is not needed by a call tracker.
    return RasMessage(choice, 0)


def _read_arq(r: PerReader, more: bool) -> RasMessage:
    (call_model, dest_info, dest_sig, dest_extra, src_sig, nonstd, services,
     ) = (r.bit() for _ in range(7))  # fmt: skip
    seq = r.constrained(1, 65535)
    r.choice(4)  # callType
    if call_model:
        r.choice(2)
    r.octets(2 * r.sized(1, 128))  # endpointIdentifier BMPString (SIZE(1..128))
    msg = RasMessage(ARQ, seq)
    if dest_info:
        msg.destination_aliases = read_aliases(r)
    if dest_sig:
        read_transport_address(r)
    if dest_extra:
        read_aliases(r)
    msg.source_aliases = read_aliases(r)  # srcInfo
    if src_sig:
        read_transport_address(r)
    r.constrained(0, 4294967295)  # bandWidth
    msg.call_reference = r.constrained(0, 65535)
    if nonstd:
        read_nonstandard(r)
    if services:
        _read_qseries(r)
    msg.conference_id = read_guid(r)
    r.bit()  # activeMC
    msg.answer_call = r.bit()
    adds = skip_extensions(r, more)
    # Additions: canMapAlias, callIdentifier, ...
    if len(adds) > 1 and adds[1] is not None:
        msg.call_identifier = read_call_identifier(adds[1])
    return msg


def _read_drq(r: PerReader, more: bool) -> RasMessage:
    nonstd = r.bit()
    seq = r.constrained(1, 65535)
    r.octets(2 * r.sized(1, 128))  # endpointIdentifier
    msg = RasMessage(DRQ, seq, conference_id=read_guid(r))
    msg.call_reference = r.constrained(0, 65535)
    index, ext = r.choice(len(DISENGAGE_REASONS))
    if ext:
        r.open_type()
    msg.reason = DISENGAGE_REASONS[index] if not ext else f"reason{index + 3}"
    if nonstd:
        read_nonstandard(r)
    adds = skip_extensions(r, more)
    if adds and adds[0] is not None:
        msg.call_identifier = read_call_identifier(adds[0])
    return msg


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
