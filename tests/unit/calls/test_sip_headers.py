"""Header values the calls stage reads (RFC 3261 §20, §25; RFC 5806; RFC 7044)."""

from __future__ import annotations

import pytest

from voipscope.calls.sdp_media import announced_media, is_hold
from voipscope.calls.sip_headers import (
    contact_expires,
    contact_uris,
    digest_username,
    diversions,
    dtmf_from_info,
    parse_name_addr,
    sipfrag_status,
    split_list,
    top_via_branch,
    uri_key,
)
from voipscope.errors import DecodeError


@pytest.mark.parametrize(
    ("value", "uri", "display", "user", "host"),
    [
        ('"Alice" <sip:alice@Example.com>;tag=1', "sip:alice@Example.com", "Alice", "alice",
         "example.com"),
        ("<sip:061963177@italtel.it;user=phone>", "sip:061963177@italtel.it;user=phone", None,
         "061963177", "italtel.it"),
        ("sip:bob@example.com;tag=9", "sip:bob@example.com", None, "bob", "example.com"),
        ("Bob <sips:bob:secret@[2001:db8::1]:5061>", "sips:bob:secret@[2001:db8::1]:5061", "Bob",
         "bob", "2001:db8::1"),
        ('"a \\"quoted\\" <name>" <tel:+4930123;phone-context=x>', "tel:+4930123;phone-context=x",
         'a "quoted" <name>', "+4930123", None),
        ("<sip:example.com>", "sip:example.com", None, None, "example.com"),
    ],
)  # fmt: skip
def test_name_addr(
    value: str, uri: str, display: str | None, user: str | None, host: str | None
) -> None:
    found = parse_name_addr(value)
    assert found is not None
    assert (found.uri, found.display, found.user, found.host) == (uri, display, user, host)


@pytest.mark.parametrize("value", ["", "<>", '"only a name"', "   "])
def test_name_addr_without_uri(value: str) -> None:
    assert parse_name_addr(value) is None


def test_split_list_respects_quotes_and_brackets() -> None:
    value = '<sip:a@b;x=1,2>;q=0.5, "B, Bob" <sip:c@d>,sip:e@f'
    assert split_list(value) == ["<sip:a@b;x=1,2>;q=0.5", '"B, Bob" <sip:c@d>', "sip:e@f"]


def test_uri_key_ignores_parameters_port_and_host_case() -> None:
    assert uri_key("sip:Bob@Mobile.Example.net:5060;transport=udp") == "Bob@mobile.example.net"
    assert uri_key("sip:bob@mobile.example.net") == "bob@mobile.example.net"


def test_via_branch_is_the_top_one() -> None:
    via = "SIP/2.0/UDP p1;branch=z9hG4bKtop;rport, SIP/2.0/UDP ua;branch=z9hG4bKua"
    assert top_via_branch(via) == "z9hG4bKtop"
    assert top_via_branch("SIP/2.0/UDP ua") is None


def test_contacts_and_expires() -> None:
    values = ["<sip:a@1.2.3.4;line=x>;expires=60, <sip:b@5.6.7.8>", "*"]
    assert contact_uris(values) == ["sip:a@1.2.3.4;line=x", "sip:b@5.6.7.8"]
    assert contact_expires(values) == 60
    assert contact_expires(["<sip:a@b;expires=5>"]) is None  # a URI parameter, not the header's


def test_digest_username_quoted_and_bare() -> None:
    assert digest_username('Digest username="voi18062",realm="x"') == "voi18062"
    assert digest_username("Digest realm=x, username=bob") == "bob"
    assert digest_username("Basic abc") is None


def test_diversion_reason() -> None:
    assert diversions(['<sip:+1555@pbx>;reason="user-busy";counter=1']) == [
        ("sip:+1555@pbx", "user-busy")
    ]


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", ("5", 160)),
        ("Application/DTMF-Relay; charset=x", b"Signal= *\nDuration=100", ("*", 100)),
        ("application/dtmf-relay", b"Signal=10\r\n", ("*", None)),
        ("application/dtmf", b"9\r\n", ("9", None)),
        ("application/dtmf", b"99", None),
        ("application/dtmf-relay", b"Signal=x", None),
        ("text/plain", b"Signal=1", None),
    ],
)
def test_dtmf_bodies(
    content_type: str, body: bytes, expected: tuple[str, int | None] | None
) -> None:
    assert dtmf_from_info(content_type, body) == expected


def test_sipfrag_status() -> None:
    assert sipfrag_status("message/sipfrag;version=2.0", b"SIP/2.0 180 Ringing\r\n") == 180
    assert sipfrag_status("text/plain", b"SIP/2.0 200 OK") is None


def test_sdp_media_endpoints_and_session_level_direction() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\na=sendonly\r\n"
        b"m=audio 4000 RTP/AVP 18 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        b"m=image 0 udptl t38\r\n"
    )
    audio, image = announced_media(body)
    assert (audio.ip, audio.port, audio.codecs) == (
        "1.2.3.4",
        4000,
        ("G729/8000", "telephone-event/8000"),
    )
    assert audio.direction == "sendonly" and image.port == 0 and image.codecs == ("t38",)
    assert is_hold([audio, image])
    with pytest.raises(DecodeError):
        announced_media(b"not sdp")
