"""DTLS records (RFC 6347 §4.1, RFC 9147 for 1.3's legacy header) as facts.

WebRTC media keys come from a DTLS handshake on the media 5-tuple (RFC 5764); the record
layer alone tells DTLS from the RTP/STUN sharing that port (RFC 7983 first-byte demux).
"""

from __future__ import annotations

from dataclasses import dataclass

from voipscope.errors import Malformed, Truncated

RECORD_HEADER_BYTES = 13  # type 1, version 2, epoch 2, sequence 6, length 2
CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data",
                 24: "heartbeat", 25: "tls12_cid"}  # fmt: skip
VERSIONS = {0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}
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
