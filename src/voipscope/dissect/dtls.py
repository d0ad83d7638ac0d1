"""DTLS records (RFC 6347 §4.1, RFC 9147 for 1.3's legacy header) as facts.

WebRTC media keys come from a DTLS handshake on the media 5-tuple (RFC 5764); the record
layer alone tells DTLS from the RTP/STUN sharing that port (RFC 7983 first-byte demux).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from voipscope.dissect.base import (
    OTHER,
    SIGNALING,
    Dissector,
    Finding,
    FlowContext,
    Packet,
    Probe,
)
from voipscope.errors import DecodeError, Malformed, Truncated

RECORD_HEADER_BYTES = 13  # type 1, version 2, epoch 2, sequence 6, length 2
CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data",
                 24: "heartbeat", 25: "tls12_cid"}  # fmt: skip
# 0x0100: DTLS 1.0 as OpenSSL spoke it before RFC 4347 (DTLS1_BAD_VER in OpenSSL's
# dtls1.h), still used by Cisco AnyConnect and OpenConnect VPN tunnels; Wireshark's
# packet-dtls.c reads it too.
VERSIONS = {0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3",
            0x0100: "DTLS 1.0 (OpenSSL pre-RFC 4347)"}  # fmt: skip
HANDSHAKE_TYPES = {0: "hello_request", 1: "client_hello", 2: "server_hello",
                   3: "hello_verify_request", 4: "new_session_ticket", 11: "certificate",
                   12: "server_key_exchange", 13: "certificate_request", 14: "server_hello_done",
                   15: "certificate_verify", 16: "client_key_exchange", 20: "finished"}  # fmt: skip
MAX_RECORDS = 64


@dataclass(slots=True, frozen=True)
class DtlsRecord:
    content_type: int
    version: int
    epoch: int
    sequence: int
    length: int
    handshake_type: int | None  # first handshake message in an epoch-0 handshake record


def parse_dtls_records(data: bytes) -> list[DtlsRecord]:
    """Every record of one datagram (several may share it); raise Truncated/Malformed."""
    records: list[DtlsRecord] = []
    offset = 0
    while offset < len(data):
        if len(records) >= MAX_RECORDS:
            raise Malformed(f"more than {MAX_RECORDS} DTLS records in one datagram")
        if len(data) - offset < RECORD_HEADER_BYTES:
            raise Truncated("DTLS record header is truncated")
        ctype = data[offset]
        version = int.from_bytes(data[offset + 1 : offset + 3], "big")
        if ctype not in CONTENT_TYPES:
            raise Malformed(f"DTLS content type {ctype} is not known")
        if version not in VERSIONS:
            raise Malformed(f"DTLS version 0x{version:04x} is not known")
        epoch = int.from_bytes(data[offset + 3 : offset + 5], "big")
        sequence = int.from_bytes(data[offset + 5 : offset + 11], "big")
        length = int.from_bytes(data[offset + 11 : offset + 13], "big")
        body = offset + RECORD_HEADER_BYTES
        if body + length > len(data):
            raise Truncated(f"DTLS record length {length} runs past the datagram")
        # Only epoch-0 handshakes are in the clear; later epochs are encrypted.
        hs_type = data[body] if ctype == 22 and epoch == 0 and length >= 1 else None
        records.append(DtlsRecord(ctype, version, epoch, sequence, length, hs_type))
        offset = body + length
    if not records:
        raise Truncated("empty DTLS datagram")
    return records


# -- handshake details ---------------------------------------------------------------------

HANDSHAKE_HEADER_BYTES = 12  # RFC 6347 §4.2.2: type, length, message_seq, fragment offset/len
EXT_SERVER_NAME = 0x0000  # RFC 6066 §3
EXT_USE_SRTP = 0x000E  # RFC 5764 §4.1.1: DTLS-SRTP, the WebRTC/SIP media key exchange
EXT_ALPN = 0x0010  # RFC 7301


CLIENT_HELLO, SERVER_HELLO = 1, 2
# The variable-length fields between the random and the extensions, by their length
# prefixes' sizes (RFC 6347 §4.2.1, RFC 5246 §7.4.1.2-3): ClientHello session_id, cookie,
# cipher_suites, compression_methods; ServerHello session_id, then one cipher suite (2)
# and one compression method (1), fixed.
HELLO_FIELDS = {CLIENT_HELLO: ((1, None), (1, None), (2, None), (1, None)),
                SERVER_HELLO: ((1, None), (0, 2), (0, 1))}  # fmt: skip


@dataclass(slots=True)
class Hello:
    kind: int  # CLIENT_HELLO | SERVER_HELLO
    extensions: list[int]
    server_name: str | None


def parse_hello(record_body: bytes) -> Hello:
    """Extensions of an unfragmented DTLS ClientHello or ServerHello (the body of a
    handshake record). A server selects DTLS-SRTP by echoing use_srtp (RFC 5764 §4.1.1)."""
    if len(record_body) < HANDSHAKE_HEADER_BYTES or record_body[0] not in HELLO_FIELDS:
        raise Malformed("not a DTLS ClientHello or ServerHello handshake message")
    kind = record_body[0]
    frag_offset = int.from_bytes(record_body[6:9], "big")
    frag_len = int.from_bytes(record_body[9:12], "big")
    if frag_offset != 0:
        raise Truncated("DTLS hello fragment does not start the message")
    body = record_body[HANDSHAKE_HEADER_BYTES : HANDSHAKE_HEADER_BYTES + frag_len]
    pos = 2 + 32  # version, random
    for size_bytes, fixed in HELLO_FIELDS[kind]:
        if pos + size_bytes > len(body):
            raise Truncated("DTLS hello ends inside its fixed fields")
        size = fixed if fixed is not None else int.from_bytes(body[pos : pos + size_bytes], "big")
        pos += size_bytes + size
    if pos + 2 > len(body):
        return Hello(kind, [], None)  # no extensions
    end = min(len(body), pos + 2 + int.from_bytes(body[pos : pos + 2], "big"))
    pos += 2
    extensions: list[int] = []
    server_name = None
    while pos + 4 <= end and len(extensions) < MAX_RECORDS:
        ext = int.from_bytes(body[pos : pos + 2], "big")
        size = int.from_bytes(body[pos + 2 : pos + 4], "big")
        value = body[pos + 4 : pos + 4 + size]
        extensions.append(ext)
        if ext == EXT_SERVER_NAME and len(value) >= 5 and value[2] == 0:
            name_len = int.from_bytes(value[3:5], "big")
            server_name = value[5 : 5 + name_len].decode("ascii", "replace")
        pos += 4 + size
    return Hello(kind, extensions, server_name)


def certificate_sha256(record_body: bytes) -> str | None:
    """SHA-256 of the first certificate of an unfragmented Certificate message, in the
    colon-hex form SDP ``a=fingerprint`` uses (RFC 8122 §5), or None."""
    if len(record_body) < HANDSHAKE_HEADER_BYTES + 6 or record_body[0] != 11:
        return None
    length = int.from_bytes(record_body[1:4], "big")
    if (
        int.from_bytes(record_body[6:9], "big") != 0
        or int.from_bytes(record_body[9:12], "big") != length
    ):
        return None  # fragmented: the fingerprint needs the whole certificate
    body = record_body[HANDSHAKE_HEADER_BYTES:]
    first_len = int.from_bytes(body[3:6], "big")
    cert = body[6 : 6 + first_len]
    if len(cert) != first_len or not cert:
        return None
    digest = hashlib.sha256(cert).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


# -- dissector ---------------------------------------------------------------------------


@dataclass(slots=True)
class DtlsFlowState:
    records: int = 0
    use_srtp: str | None = None  # which hello showed DTLS-SRTP
    fingerprint: str | None = None


class DtlsDissector(Dissector):
    """DTLS records; the handshake shows DTLS-SRTP (use_srtp) and the certificate.

    DTLS is "other" until a hello shows use_srtp: DTLS-SRTP (RFC 5764) exists to key
    media, so that handshake is call setup and its finding is signalling. The arbiter
    reads the category (it outranks the plain-DTLS finding of an earlier packet), never
    the evidence text."""

    name = "DTLS"
    budget_packets = 4
    udp_first_bytes = frozenset(range(20, 64))  # RFC 7983 §7
    follow_packets = 24  # the certificate comes a few packets after the hellos
    multiplexed = True
    ANOMALIES = {"dtls_malformed": "a datagram in the DTLS range whose records do not parse"}

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        data = pkt.payload
        first = data[0]
        if not 20 <= first <= 63:
            # STUN, RTP/RTCP, ChannelData beside it (RFC 7983), else not DTLS.
            return (
                Probe.PASS if first <= 3 or 64 <= first <= 79 or 128 <= first <= 191 else Probe.NO
            )
        try:
            records = parse_dtls_records(data)
        except DecodeError:
            return Probe.NO
        state = ctx.state.setdefault(self.name, DtlsFlowState())
        self._records(ctx, state, data, records, pkt)
        version = VERSIONS[records[0].version]
        kinds = "+".join(HANDSHAKE_TYPES.get(r.handshake_type, "?") if r.handshake_type is not None
                         else CONTENT_TYPES[r.content_type] for r in records[:4])  # fmt: skip
        evidence = f"{version} records ({kinds}), lengths add up to the datagram"
        if state.use_srtp:
            evidence += f"; {state.use_srtp}"
        category = SIGNALING if state.use_srtp else OTHER
        ctx.report(Finding("DTLS", category, 0.9, evidence, pkt.seq))
        return Probe.MATCH

    def dissect(self, ctx: FlowContext, pkt: Packet) -> None:
        data = pkt.payload
        if not 20 <= data[0] <= 63:
            return
        try:
            records = parse_dtls_records(data)
        except DecodeError:
            return
        state = ctx.state[self.name]
        had_srtp = state.use_srtp
        self._records(ctx, state, data, records, pkt)
        if state.use_srtp and not had_srtp:
            ctx.report(Finding("DTLS", SIGNALING, 0.9, state.use_srtp, pkt.seq))

    def on_expire(self, ctx: FlowContext) -> None:
        state: DtlsFlowState = ctx.state[self.name]
        finding = ctx.best("DTLS")
        if finding is not None and state.fingerprint:
            finding.evidence += f"; certificate sha-256 {state.fingerprint[:23]}…"

    @staticmethod
    def _records(
        ctx: FlowContext, state: DtlsFlowState, data: bytes, records: list[DtlsRecord], pkt: Packet
    ) -> None:
        offset = 0
        for r in records:
            body = data[offset + RECORD_HEADER_BYTES : offset + RECORD_HEADER_BYTES + r.length]
            offset += RECORD_HEADER_BYTES + r.length
            state.records += 1
            if r.handshake_type in HELLO_FIELDS:
                try:
                    hello = parse_hello(body)
                except DecodeError:
                    continue
                if EXT_USE_SRTP in hello.extensions and not state.use_srtp:
                    state.use_srtp = (
                        "ClientHello offers use_srtp (DTLS-SRTP, RFC 5764)"
                        if hello.kind == CLIENT_HELLO
                        else "ServerHello selects use_srtp (DTLS-SRTP, RFC 5764)"
                    )
                if hello.server_name:
                    ctx.hint("sni", hello.server_name)
            elif r.handshake_type == 11 and state.fingerprint is None:
                state.fingerprint = certificate_sha256(body)
