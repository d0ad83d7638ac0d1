"""Mumble's connectionless ping (legacy and protobuf forms) and the dissector around it.

tshark 4.0 has no Mumble dissector; the legacy fixtures from mumble.pcapng are checked
against the wiki's "UDP Ping packet" table, the protobuf ones are built from
MumbleUDP.proto (no capture here has a Mumble >= 1.5 ping).
"""

from __future__ import annotations

import contextlib

import pytest

from tests.unit.dissect.appcases import check_negatives, drive, drive_captured, prefixes, udp_flows
from voipscope.dissect.base import MEDIA, SIGNALING, Probe
from voipscope.dissect.mumble import MumbleDissector, looks_like_mumble_ping, parse_mumble_ping
from voipscope.errors import DecodeError, Malformed, Truncated

# mumble.pcapng: 192.168.88.208:50085 -> 5.39.185.162:64738 and its answer.
REQUEST = bytes.fromhex("0000000003d72000fa76287e")
RESPONSE = bytes.fromhex("0001030403d72000fa76287e000000000000006400011940")
REQUEST_B = bytes.fromhex("0000000051792100e2eb5351")  # to 87.122.110.156
RESPONSE_B = bytes.fromhex("0001030051792100e2eb5351000000000000004b00011940")


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pb_ping(**fields: int) -> bytes:
    numbers = {"timestamp": 1, "extended": 2, "version": 3, "users": 4, "max_users": 5,
               "bandwidth": 6, "version_v2": 7}  # fmt: skip
    return b"\x01" + b"".join(
        varint(numbers[name] << 3) + varint(value) for name, value in fields.items()
    )


PB_REQUEST = pb_ping(timestamp=1_700_000_000_123, extended=1)
PB_RESPONSE = pb_ping(
    timestamp=1_700_000_000_123, version=0x010502, users=3, max_users=100, bandwidth=72000
)
PB_RESPONSE_V2 = pb_ping(timestamp=5, version_v2=(1 << 48) | (5 << 32) | (634 << 16))


def test_legacy_request():
    ping = parse_mumble_ping(REQUEST)
    assert (ping.form, ping.timestamp) == ("legacy-request", 0x03D72000FA76287E)


def test_legacy_response_fields():
    ping = parse_mumble_ping(RESPONSE)
    assert (ping.form, ping.version, ping.users, ping.max_users, ping.bandwidth) == (
        "legacy-response",
        "1.3.4",
        0,
        100,
        72000,
    )
    assert ping.timestamp == parse_mumble_ping(REQUEST).timestamp
    assert parse_mumble_ping(RESPONSE_B).version == "1.3.0"


def test_protobuf_forms():
    req = parse_mumble_ping(PB_REQUEST)
    assert (req.form, req.timestamp, req.request_extended, req.version) == (
        "protobuf",
        1_700_000_000_123,
        True,
        None,
    )
    resp = parse_mumble_ping(PB_RESPONSE)
    assert (resp.version, resp.users, resp.max_users, resp.bandwidth) == ("1.5.2", 3, 100, 72000)
    assert parse_mumble_ping(PB_RESPONSE_V2).version == "1.5.634"


@pytest.mark.parametrize("data", prefixes(REQUEST) + prefixes(RESPONSE)[12:])
def test_legacy_prefixes_are_truncated(data):
    with pytest.raises(Truncated):
        parse_mumble_ping(data)


@pytest.mark.parametrize("data", prefixes(PB_REQUEST) + prefixes(PB_RESPONSE))
def test_protobuf_prefixes_only_decode_errors(data):
    # Protobuf has no length: a prefix ending between fields parses to fewer fields.
    with contextlib.suppress(DecodeError):
        parse_mumble_ping(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x01" + REQUEST[4:],  # 12 bytes, not four zeros
        b"\x05" + bytes(15),  # 16 bytes, no response version
        RESPONSE + b"\0",  # 25 bytes
        b"\x01" + RESPONSE[1:],  # version high byte set
        b"\x00\x00" + RESPONSE[2:],  # major version 0
        b"\x01\x08\x01\x08\x02",  # repeated timestamp
        b"\x01\x40\x01",  # field 8
        b"\x01\x0a\x01\x00",  # field 1 as length-delimited
        b"\x01\x10\x01",  # no timestamp
        b"\x01\x08" + b"\xff" * 10 + b"\x01",  # 11-byte varint
        b"\x01\x08\x01" + b"\x30\x01" * 40,  # longer than 64 bytes
    ],
)
def test_errors(data):
    with pytest.raises(Malformed):
        parse_mumble_ping(data)


def test_truncated_varint():
    with pytest.raises(Truncated):
        parse_mumble_ping(b"\x01\x08\xff\xff")


def test_cheap_check():
    for data in (REQUEST, RESPONSE, PB_REQUEST, PB_RESPONSE):
        assert looks_like_mumble_ping(data)
    for data in (bytes(11), b"\x01" + bytes(23), b"\x02\x08\x01", b"\x01\x08"):
        assert not looks_like_mumble_ping(data)


SERVER = ("5.39.185.162", 64738)


def test_ping_exchange_matches():
    result = drive(MumbleDissector(), REQUEST, (1, RESPONSE), dst=SERVER)
    assert result.verdicts == [Probe.MAYBE, Probe.MATCH]
    request, response = result.ctx.findings
    assert request.category == SIGNALING and request.confidence == 0.6
    assert response.confidence == 0.95 and "1.3.4" in response.evidence
    assert "64738" in response.evidence


def test_protobuf_exchange_matches_off_port():
    result = drive(MumbleDissector(), PB_REQUEST, (1, PB_RESPONSE))
    assert result.matched_at == 2 and result.ctx.findings[-1].confidence == 0.95
    plain = pb_ping(timestamp=99)
    assert drive(MumbleDissector(), plain, (1, plain)).matched


def test_unanswered_request_off_port_is_weak():
    result = drive(MumbleDissector(), REQUEST)
    assert not result.matched and result.finding.confidence < 0.5
    assert result.finding.confidence < 0.5  # weak: the arbiter takes no app from it


def test_response_that_echoes_nothing():
    assert drive(MumbleDissector(), (1, RESPONSE), dst=SERVER).matched
    result = drive(MumbleDissector(), (1, RESPONSE))
    assert not result.matched and result.finding.confidence == 0.5


def test_encrypted_voice_after_the_ping_is_reported():
    voice = [(d, bytes([k]) * 90) for k in range(8) for d in (0, 1)]
    result = drive(MumbleDissector(), REQUEST, (1, RESPONSE), *voice, dst=SERVER)
    media = [f for f in result.ctx.findings if f.category == MEDIA]
    assert len(media) == 1 and media[0].media == "audio" and media[0].confidence == 0.7


def test_oversized_datagrams_are_not_mumble_voice():
    voice = [(d, bytes(1400)) for _ in range(8) for d in (0, 1)]
    result = drive(MumbleDissector(), REQUEST, (1, RESPONSE), *voice, dst=SERVER)
    assert all(f.category == SIGNALING for f in result.ctx.findings)


def test_port_alone_is_weak():
    result = drive(MumbleDissector(), *[bytes([k]) * 70 for k in range(6)], dst=SERVER)
    assert not result.matched
    assert result.finding.confidence <= 0.3 and "64738" in result.finding.evidence
    assert result.finding.app is None  # ports never name the app


def test_mumble_capture(shared_captures):
    runs = [
        drive_captured(MumbleDissector(), f) for f in udp_flows(shared_captures / "mumble.pcapng")
    ]
    assert len(runs) == 2 and all(r.matched for r in runs)
    assert {r.ctx.findings[-1].evidence.split("(")[1].split(",")[0] for r in runs} == {
        "version 1.3.4",
        "version 1.3.0",
    }


def test_negatives(shared_captures):
    check_negatives(MumbleDissector(), shared_captures)
