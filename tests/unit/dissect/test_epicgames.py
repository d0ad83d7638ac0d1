"""Epic Games (Unreal Engine handshake): fields, the challenge rule, real bytes of
epicgames.pcapng, near misses, and the capture's flows."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.gameflows import matched_ports, other_captures
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.epicgames import (
    FIRST_BYTES,
    ZERO_COOKIE,
    EpicGamesDissector,
    answers,
    parse_handshake,
)
from voipscope.errors import Malformed, Truncated

EPIC = EpicGamesDissector()
# epicgames.pcapng frames 39-41: 192.168.12.156:39322 <-> 18.157.15.184:9011
REQUEST = bytes.fromhex(
    "471a2000089822657404000000000000000000000000000000000000000000000000000000000070550f8a"
    "268e79a2dd77c0e828b018"
)
CHALLENGE = bytes.fromhex(
    "471a20080898226574040000406229fcaa0d0e84170067c3a4ae7427cc594cbcec2daa8a950b50486e75ce"
    "62f581f2d72aea173079c7151a"
)
RESPONSE = bytes.fromhex(
    "471a20101098226574040000406229fcaa0d0e84170067c3a4ae7427cc594cbcec2daa8a950b507869a04a"
    "99f47cf2e214"
)


def test_fields_and_kinds():
    request, challenge, response = map(parse_handshake, (REQUEST, CHALLENGE, RESPONSE))
    assert (request.kind, challenge.kind, response.kind) == ("request", "challenge", "response")
    assert request.word == 0x471A2000 and challenge.word == 0x471A2008
    assert request.cookie == ZERO_COOKIE and challenge.cookie == response.cookie
    assert answers(request, challenge) and not answers(challenge, request)
    assert {0x07, 0x47, 0x87, 0xC7} == FIRST_BYTES


def test_branches():
    with pytest.raises(Truncated, match="fewer than 34"):
        parse_handshake(REQUEST[:33])
    with pytest.raises(Malformed, match="first byte"):
        parse_handshake(b"\x48" + REQUEST[1:])
    server_without_cookie = CHALLENGE[:10] + ZERO_COOKIE + CHALLENGE[34:]
    assert parse_handshake(server_without_cookie).kind == "other"


def test_every_prefix():
    for message in (REQUEST, CHALLENGE):
        # the handshake fields end at byte 34; what follows is not read
        assert prefix_sweep(parse_handshake, message) == len(message) - 34


def test_real_bytes_match():
    ctx = context(17, ("192.168.12.156", 39322), ("18.157.15.184", 9011))
    r = run(EPIC, ctx, packets(REQUEST, REQUEST, (1, CHALLENGE)))
    assert r.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH]
    f = r.finding
    assert (f.protocol, f.category, f.confidence, f.at_packet) == ("EpicGames", OTHER, 0.85, 3)
    assert "471a2000" in f.evidence and "471a2008" in f.evidence


def test_near_misses():
    def flip(data: bytes, at: int) -> bytes:
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]

    for flow in (
        [REQUEST, (0, CHALLENGE)],  # the challenge from the requester's own side
        [REQUEST, (1, flip(CHALLENGE, 5))],  # bytes 4-9 not repeated
        [REQUEST, (1, flip(CHALLENGE, 2))],  # not the request's word
        [REQUEST, (1, CHALLENGE[:10] + ZERO_COOKIE + CHALLENGE[34:])],  # no cookie issued
        [(1, CHALLENGE), (0, REQUEST)],  # a challenge before any request
        [REQUEST, (1, REQUEST)],  # the same request from both sides
    ):
        assert not run(EPIC, context(), packets(*flow)).matched, flow
    # 24 zero bytes alone are no request: a non-engine first byte, or too short
    for first in (b"\x48" + REQUEST[1:], REQUEST[:33], bytes(40)):
        assert run(EPIC, context(), packets(first)).verdicts == [Probe.NO]


def test_capture(shared_captures):
    assert matched_ports(EPIC, shared_captures / "epicgames.pcapng") == {
        (9011, 39322), (15011, 37989), (15011, 47446), (15011, 49693)}  # fmt: skip


@pytest.mark.parametrize("name", other_captures("epicgames.pcapng"))
def test_no_flow_of_other_captures(shared_captures, name):
    assert not matched_ports(EPIC, shared_captures / name)
