"""DNSCrypt v2 over UDP: the real query and response, each branch, the dissector, and
the capture that exists to prove DNSCrypt is not classic Skype."""

from __future__ import annotations

import pytest

from tests.dissectdrive import context, packets, prefix_sweep, run
from tests.unit.dissect.labelled import labelled, matched
from voipscope.dissect.base import OTHER, Probe
from voipscope.dissect.dnscrypt import (
    MIN_QUERY_BYTES,
    MIN_RESPONSE_BYTES,
    DnsCryptDissector,
    parse_dnscrypt_response,
    query_client_nonce,
)
from voipscope.errors import Malformed, Truncated

DNSCRYPT = DnsCryptDissector()
CLIENT = ("192.168.2.100", 46858)
RESOLVER = ("212.47.228.136", 443)
# dnscrypt_skype_false_positive.pcapng frame 3: a query (client magic d31b02042ac406f3)
QUERY = bytes.fromhex(
    "d31b02042ac406f3497e6993424b0a16c06e75586651bb4a47b500e1d021af661e16c5859f9d160f"
    "4bc7ae51ffc91717be677bb7cf8ae0ce2c56bd0fa23f1693fbada4bff1097ff117ad9acdcd76fa73"
    "48f100ad56fa694bc4e5a84ab4bf4cf564be95854506a4f50592527a148bac0afc2adb0d5d48ce81"
    "31e3c6f90a3895c38b6ce2e9143743a4deec1b20410728aeeb64af8b3c2926243a3f7fd94972a39e"
    "4fb84c6a5487531be5cf66cc47c0577a8619dcca8de0a893ddcdc27be9dfa0a288efc63a413daff6"
    "58b1d45a0a60b6ddb232f5a70729a0e01cf7c9a6215ed0951a9d02c237dc588a6084b07f19b5af54"
    "6f5634dd1db77c99caf2da7091820404aecb649d45f6226878ac415859f3d5e706701235457d9eb3"
    "a31c7f3268c648d03ae1c41fa02260f2684b0a4a02f7b88a9ab41d1fc73ad726d9e4af1612dd606d"
    "44f93d265c387dbd88135b99ebb1e5484fb9ea848abb943dd6604173b3392071dde4f540d1bfe9b2"
    "4c77e078c78e31910d1666e6e44f20f57fc399fb1485a1ae89434294924c563ee0a098e2116acabf"
    "2a1155fac20b83db34b31bbea0eb96f4735ce46763f08580eefe58b83728ed9ecbb0ad856d812b1c"
    "18444ef5d9260474e9030adf7a4e392b5c8d6cad24bef26f790c2a392adf80f34382acb5f1bf0b46"
    "a449a4e0ff87862ecda86bd500f2c71fc550bc4b1ee22a942b4e7fcc6a50b297"
)
# frame 4: the resolver's response, echoing the query's client nonce
RESPONSE = bytes.fromhex(
    "7236666e76576a384bc7ae51ffc91717be677bb7ab37568aa80153f6d49d14d93efc5638056ca42a"
    "de550477ee46c4085c474059b0139c391eb1c44c16a029cbfc75c5147240eaa96654858f63280bfa"
    "2348c0c7601d2efb4dcb5af5413373172e33b50e232d74e97fc86c7656bced5d"
)


def test_query_and_response():
    nonce = query_client_nonce(QUERY)
    assert nonce.hex() == "4bc7ae51ffc91717be677bb7"
    response = parse_dnscrypt_response(RESPONSE)
    assert response.client_nonce == nonce
    assert response.encrypted_bytes == len(RESPONSE) - 32


def test_branches():
    with pytest.raises(Malformed, match="magic"):
        parse_dnscrypt_response(b"r6fnvWj9" + RESPONSE[8:])
    with pytest.raises(Truncated, match="fewer than"):
        parse_dnscrypt_response(RESPONSE[: MIN_RESPONSE_BYTES - 1])
    with pytest.raises(Truncated, match="fewer than"):
        query_client_nonce(QUERY[: MIN_QUERY_BYTES - 1])


def test_every_prefix():
    assert prefix_sweep(parse_dnscrypt_response, RESPONSE) == len(RESPONSE) - MIN_RESPONSE_BYTES


def test_dissector():
    r = run(DNSCRYPT, context(17, CLIENT, RESOLVER), packets(QUERY, (1, RESPONSE)))
    assert r.verdicts == [Probe.MAYBE, Probe.MATCH]
    f = r.finding
    assert (f.protocol, f.category, f.app, f.confidence) == ("DNSCrypt", OTHER, None, 0.95)
    assert f.evidence.endswith(
        "nonce echoes the client nonce of the query 4bc7ae51ffc91717be677bb7"
    )
    # A response alone (capture started late): the magic, less sure.
    r = run(DNSCRYPT, context(17, RESOLVER, CLIENT), packets(RESPONSE))
    assert r.finding.confidence == 0.8
    # A response to another query does not echo its nonce.
    other = QUERY[:40] + bytes(12) + QUERY[52:]
    r = run(DNSCRYPT, context(17, CLIENT, RESOLVER), packets(other, (1, RESPONSE)))
    assert r.finding.confidence == 0.8


def test_near_misses():
    # The other side answers without the magic (QUIC, anything on 443): not a resolver.
    r = run(DNSCRYPT, context(17, CLIENT, RESOLVER), packets(QUERY, (1, QUERY)))
    assert r.verdicts == [Probe.MAYBE, Probe.NO]
    # Short datagrams are no query, and a response cut short is no response.
    for payload in (QUERY[:40], RESPONSE[:40]):
        r = run(DNSCRYPT, context(17, CLIENT, RESOLVER), packets(payload))
        assert r.verdicts == [Probe.NO], payload[:8]
    # One wrong letter of the magic: at best a query (random bytes), never a response.
    wrong = b"r6fnvWj9" + RESPONSE[8:]
    r = run(DNSCRYPT, context(17, CLIENT, RESOLVER), packets(QUERY, (1, wrong)))
    assert r.verdicts == [Probe.MAYBE, Probe.NO]
    # The budget: queries without an answer stop being offered.
    r = run(DNSCRYPT, context(17, CLIENT, RESOLVER), packets(QUERY, QUERY, QUERY, QUERY))
    assert r.verdicts == [Probe.MAYBE] * 3
    r = run(DNSCRYPT, context(17, CLIENT, ("212.47.228.136", 444)), packets(RESPONSE))
    assert r.verdicts == [Probe.NO]


def test_capture_is_dnscrypt(shared_captures):
    name = "dnscrypt_skype_false_positive.pcapng"
    assert matched(DNSCRYPT, shared_captures / name) == labelled(name, "DNSCrypt")
