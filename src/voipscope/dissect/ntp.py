"""NTP (RFC 5905), its control (mode 6, RFC 9327) and private (mode 7, ntpd's ntpdc)
messages, as facts.

A lookalike: small periodic UDP datagrams, and a known DDoS reflector (mode 7 monlist).
Port 123 on one side, and a structure that fits: LI/VN/Mode with version 1-4, the
48-byte base with only extension fields (RFC 7822) and a MAC after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import DecodeError, Malformed, Truncated

NTP_PORT = 123  # RFC 5905 §7.2
BASE_BYTES = 48  # RFC 5905 §7.3
MAC_BYTES = (20, 24)  # key id + MD5 (16) or SHA-1 (20) digest, RFC 5905 §7.3 / §9.2
CRYPTO_NAK_BYTES = 4  # a key id of zero alone (RFC 5905 §7.4)
MIN_EXTENSION_BYTES = 16  # RFC 7822 §3
MAX_EXTENSIONS = 16  # attacker-controlled count (DESIGN §4)
MAX_STRATUM = 16  # 16: unsynchronised; 17-255 reserved (RFC 5905 §7.3)
CONTROL_HEADER_BYTES = 12  # RFC 9327 §2
MAX_CONTROL_DATA = 468  # RFC 9327 §2
PRIVATE_HEADER_BYTES = 8  # ntpd ntp_request.h
PRIVATE_REQUEST_BYTES = 48  # header + the fixed 40-byte data area of a request (ntpdc)
MODES = {0: "reserved", 1: "symmetric active", 2: "symmetric passive", 3: "client",
         4: "server", 5: "broadcast", 6: "control", 7: "private"}  # fmt: skip
CONTROL = 6
PRIVATE = 7
CONTROL_OPCODES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 31})  # RFC 9327 §2
PRIVATE_IMPLEMENTATIONS = frozenset({0, 2, 3})  # universal, xntpd (old), xntpd
PRIVATE_REQUESTS = {42: "MON_GETLIST_1 (monlist)", 20: "MON_GETLIST (monlist)"}


@dataclass(slots=True, frozen=True)
class NtpPacket:
    leap: int
    version: int
    mode: int
    stratum: int | None  # modes 1-5
    reference_id: bytes | None  # modes 1-5; ASCII kiss code / refclock at stratum 0-1
    extension_fields: int  # modes 1-5 (RFC 7822)
    mac_bytes: int  # modes 1-5
    opcode: int | None  # mode 6 opcode, mode 7 request code
    response: bool  # modes 6 and 7: the R bit

    @property
    def mode_name(self) -> str:
        return MODES[self.mode]


def looks_like_ntp(data: bytes) -> bool:
    return len(data) >= PRIVATE_HEADER_BYTES and 1 <= (data[0] >> 3) & 0x07 <= 4


def parse_ntp(data: bytes) -> NtpPacket:
    """One NTP datagram of any mode; Truncated/Malformed."""
    if not data:
        raise Truncated("empty NTP packet")
    version = (data[0] >> 3) & 0x07
    mode = data[0] & 0x07
    if not 1 <= version <= 4:
        raise Malformed(f"NTP version {version} is not 1-4")
    if mode == CONTROL:
        return _control(data, version)
    if mode == PRIVATE:
        return _private(data, version)
    if mode == 0 and version != 1:
        raise Malformed("NTP mode 0 is reserved (only NTPv1 left it zero)")
    if len(data) < BASE_BYTES:
        raise Truncated(f"NTP packet has {len(data)} bytes, fewer than 48")
    stratum = data[1]
    if stratum > MAX_STRATUM:
        raise Malformed(f"NTP stratum {stratum} is reserved")
    extensions, mac = _trailer(data, version)
    return NtpPacket(data[0] >> 6, version, mode, stratum, bytes(data[12:16]), extensions, mac,
                     None, False)  # fmt: skip


def _trailer(data: bytes, version: int) -> tuple[int, int]:
    """Extension fields then an optional MAC after the base (RFC 7822 §7.5): counts."""
    offset = BASE_BYTES
    extensions = 0
    while True:
        left = len(data) - offset
        if left == 0 or left == CRYPTO_NAK_BYTES or left in MAC_BYTES:
            return extensions, left
        if version < 4:
            raise Malformed(f"NTPv{version} packet has {left} bytes after its base")
        if left < MIN_EXTENSION_BYTES:
            raise Truncated(f"NTP has {left} bytes after its fields: not a field, not a MAC")
        if extensions >= MAX_EXTENSIONS:
            raise Malformed(f"NTP packet has more than {MAX_EXTENSIONS} extension fields")
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        if length < MIN_EXTENSION_BYTES or length % 4:
            raise Malformed(f"NTP extension field length {length} is not 16+ and 4-aligned")
        if offset + length > len(data):
            raise Truncated(f"NTP extension field length {length} runs past the packet")
        offset += length
        extensions += 1


def _control(data: bytes, version: int) -> NtpPacket:
    if len(data) < CONTROL_HEADER_BYTES:
        raise Truncated(f"NTP control message has {len(data)} bytes, fewer than 12")
    response = bool(data[1] & 0x80)
    if not response and data[1] & 0x60:
        raise Malformed("NTP control request has its error or more bit set")
    opcode = data[1] & 0x1F
    if opcode not in CONTROL_OPCODES:
        raise Malformed(f"NTP control opcode {opcode} is not known")
    count = int.from_bytes(data[10:12], "big")
    if count > MAX_CONTROL_DATA:
        raise Malformed(f"NTP control data count {count} exceeds {MAX_CONTROL_DATA}")
    end = CONTROL_HEADER_BYTES + count
    if end > len(data):
        raise Truncated(f"NTP control data of {count} bytes runs past the packet")
    # RFC 9327 §2: the data is padded to 32 bits, then an optional key id and MAC.
    left = len(data) - end
    if left not in (0, -count % 4, *(-count % 4 + m for m in MAC_BYTES)):
        raise Malformed(f"NTP control message has {left} bytes after {count} bytes of data")
    return NtpPacket(data[0] >> 6, version, CONTROL, None, None, 0, 0, opcode, response)


def _private(data: bytes, version: int) -> NtpPacket:
    if len(data) < PRIVATE_HEADER_BYTES:
        raise Truncated(f"NTP private message has {len(data)} bytes, fewer than 8")
    if data[2] not in PRIVATE_IMPLEMENTATIONS:
        raise Malformed(f"NTP private implementation {data[2]} is not known")
    response = bool(data[0] & 0x80)
    items = int.from_bytes(data[4:6], "big") & 0x0FFF
    size = int.from_bytes(data[6:8], "big") & 0x0FFF
    end = PRIVATE_HEADER_BYTES + items * size
    if end > len(data):
        raise Truncated(f"NTP private data of {items} x {size} bytes runs past the packet")
    if response and end != len(data):
        raise Malformed(f"NTP private response has {len(data) - end} bytes after its items")
    if not response and len(data) < PRIVATE_REQUEST_BYTES:
        raise Truncated(f"NTP private request has {len(data)} bytes, fewer than 48")
    return NtpPacket(0, version, PRIVATE, None, None, 0, 0, data[3], response)


# -- dissector ---------------------------------------------------------------------------


class NtpDissector(Dissector):
    """NTP on port 123 (either side), from the first datagram's structure."""

    name = "NTP"
    ports = frozenset({NTP_PORT})  # the probe refuses flows on other ports
    transports = frozenset({UDP})
    udp_first_bytes = frozenset(b for b in range(256) if 1 <= (b >> 3) & 0x07 <= 4)  # VN 1-4
    budget_packets = 2
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if NTP_PORT not in (ctx.src_port, ctx.dst_port):
            return Probe.NO
        data = pkt.payload
        if not looks_like_ntp(data):
            return Probe.NO
        try:
            ntp = parse_ntp(data)
        except DecodeError:
            return Probe.NO
        what = f"NTPv{ntp.version} {ntp.mode_name}"
        if ntp.mode == CONTROL:
            evidence = f"{what} message, opcode {ntp.opcode}, data count fits"
            confidence = 0.8
        elif ntp.mode == PRIVATE:
            request = PRIVATE_REQUESTS.get(ntp.opcode or 0, f"request {ntp.opcode}")
            evidence = f"{what} message ({request}), item sizes fit"
            confidence = 0.8
        else:
            evidence = f"{what}, stratum {ntp.stratum}, 48-byte base"
            if ntp.extension_fields:
                evidence += f" + {ntp.extension_fields} extension fields"
            if ntp.mac_bytes:
                evidence += f" + {ntp.mac_bytes}-byte MAC"
            confidence = 0.9
        ctx.report(Finding("NTP", OTHER, confidence, evidence, pkt.seq))
        return Probe.MATCH
