"""The few H.225.0 structures a call tracker needs, decoded from ALIGNED PER
(``dissect.per``): the walkers for the path from H323-UserInformation to the call
identifier, the release reason, H.245 address and fastStart, and for the RAS messages
that name a call (ARQ, ARJ, DRQ, IRQ). Extension additions the walkers do not need are
skipped by their open-type length (X.691 §19.7). ASN.1 names and alternative orders
follow H.225.0 v7 (2009) Annex H.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.dissect.per import PerReader, skip_extensions
from voipscope.errors import Malformed, Unsupported

MAX_ALIASES = 8  # aliases kept per list
MAX_FAST_START = 16  # fastStart OpenLogicalChannel proposals decoded per message


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
