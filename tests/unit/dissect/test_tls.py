"""TLS record layer and hellos: against tshark, each parser branch, every truncation, and
the dissector (SNI learned, SIP-TLS on 5061 only with a handshake, mid-flow records)."""

from __future__ import annotations

import ssl
import struct

import pytest

from tests.dissectdrive import context, golden, packets, prefix_sweep, run
from tests.readback import payloads_by_frame
from voipscope.dissect.base import OTHER, SIGNALING, TCP, Probe
from voipscope.dissect.knowledge import Knowledge
from voipscope.dissect.tls import (
    MAX_EXTENSIONS,
    MAX_RECORDS,
    ClientHello,
    ServerHello,
    TlsDissector,
    handshake_message,
    is_grease,
    looks_like_record,
    looks_like_sslv2_hello,
    parse_client_hello,
    parse_hello,
    parse_record_header,
    parse_server_hello,
    parse_sslv2_client_hello,
    walk_records,
)
from voipscope.errors import Malformed, Truncated

TLS = TlsDissector()


def openssl_client_hello(sni: str | None = "www.example.com", alpn=("h2", "http/1.1")) -> bytes:
    """A real ClientHello, as this machine's OpenSSL writes it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    outgoing = ssl.MemoryBIO()
    conn = ctx.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def vec(length_bytes: int, body: bytes) -> bytes:
    return len(body).to_bytes(length_bytes, "big") + body


def record(body: bytes, ctype: int = 22, version: int = 0x0301) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def client_hello_body(extensions: bytes | None = b"", suites=b"\x00\x2f", session=b"",
                      version=0x0303, compression=b"\x00") -> bytes:  # fmt: skip
    body = struct.pack("!H", version) + b"\x11" * 32 + vec(1, session) + vec(2, suites)
    body += vec(1, compression)
    return body if extensions is None else body + vec(2, extensions)


def server_hello(version=0x0303, extensions: bytes | None = b"", session=b"\x22" * 32) -> bytes:
    body = struct.pack("!H", version) + b"\x33" * 32 + vec(1, session) + b"\x13\x01" + b"\x00"
    if extensions is not None:
        body += vec(2, extensions)
    return record(handshake(2, body), version=0x0303)


SNI_EXT = ext(0, vec(2, b"\x00" + vec(2, b"sip.example.org")))
ALPN_EXT = ext(16, vec(2, vec(1, b"h2") + vec(1, b"http/1.1")))
HELLO = record(handshake(1, client_hello_body(SNI_EXT + ALPN_EXT)))
SERVER_HELLO_13 = server_hello(extensions=ext(43, b"\x03\x04") + ext(16, vec(2, vec(1, b"h2"))))
APP_DATA = record(b"\xaa" * 40, ctype=23, version=0x0303)


# -- parsing --------------------------------------------------------------------------


def test_openssl_client_hello():
    hello = parse_hello(openssl_client_hello("sip.example.com", ("sip", "h2")))
    assert isinstance(hello, ClientHello)
    assert (hello.sni, hello.alpn, hello.record_version) == (
        "sip.example.com",
        ["sip", "h2"],
        0x0301,
    )
    assert hello.version == 0x0304 and 0x0304 in hello.versions and hello.cipher_suites > 1
    no_sni = parse_hello(openssl_client_hello(None, ()))
    assert no_sni.sni is None and no_sni.alpn == [] and 0 not in no_sni.extensions


@pytest.mark.parametrize("capture", ["teams.pcap", "alexa-app.pcapng", "signal.pcap"])
def test_hellos_against_tshark(capture, shared_captures):
    payloads = payloads_by_frame(shared_captures / capture, 6)
    rows = golden(f"{capture}.tls.txt")
    assert len(rows) >= 20
    for frame, types, sni, alpn, supported, version in rows:
        hello = parse_hello(payloads[int(frame)])
        first_type = types.split(",")[0]
        assert isinstance(hello, ClientHello if first_type == "1" else ServerHello), frame
        assert hello.legacy_version == int(version.split(",")[0], 16)
        if isinstance(hello, ClientHello):
            assert (hello.sni or "", ",".join(hello.alpn)) == (sni, alpn), frame
            offered = [int(v, 16) for v in supported.split(",") if v]
            assert hello.versions == [v for v in offered if not is_grease(v)], frame
        else:
            assert (hello.alpn or "") == alpn, frame
            if supported:
                assert hello.selected_version == int(supported, 16)


def test_record_header_branches():
    assert parse_record_header(APP_DATA).length == 40 and looks_like_record(APP_DATA)
    with pytest.raises(Truncated):
        parse_record_header(APP_DATA[:4])
    with pytest.raises(Malformed, match="content type 99"):
        parse_record_header(b"\x63" + APP_DATA[1:])
    with pytest.raises(Malformed, match="version 0x0305"):
        parse_record_header(b"\x17\x03\x05" + APP_DATA[3:])
    with pytest.raises(Malformed, match="exceeds"):
        parse_record_header(b"\x17\x03\x03\xff\xff")
    assert not looks_like_record(b"\x80\x46\x01\x03\x01")  # SSLv2-format hello (Skype)


def test_walk_records_counts_what_is_still_to_come():
    two = APP_DATA + APP_DATA
    assert walk_records(two) == ([parse_record_header(APP_DATA)] * 2, 0)
    records, missing = walk_records(two[:-10])
    assert len(records) == 2 and missing == 10
    assert walk_records(b"xx" + APP_DATA, 2)[1] == 0
    with pytest.raises(Malformed, match="more than"):
        walk_records(record(b"", 23) * (MAX_RECORDS + 1))


def test_handshake_message_branches():
    body = handshake(1, client_hello_body(SNI_EXT))
    split = record(body[:30]) + record(body[30:])  # one message over two records
    assert handshake_message(split) == (0x0301, 1, body[4:])
    with pytest.raises(Malformed, match="application_data record inside a hello"):
        handshake_message(APP_DATA)
    with pytest.raises(Malformed, match="empty TLS handshake record"):
        handshake_message(record(b""))
    with pytest.raises(Truncated, match="runs past"):
        handshake_message(HELLO[:-1])
    with pytest.raises(Malformed, match="implausible"):
        handshake_message(record(b"\x01\x7f\xff\xff"))
    with pytest.raises(Malformed, match="not a hello"):
        parse_hello(record(handshake(11, b"\x00" * 8)))


def test_client_hello_branches():
    plain = parse_client_hello(client_hello_body(None, version=0x0301))
    assert (plain.version, plain.extensions, plain.sni) == (0x0301, [], None)
    with pytest.raises(Malformed, match=r"not 3\.x"):
        parse_client_hello(client_hello_body(version=0x0200))
    with pytest.raises(Malformed, match="session id of 33"):
        parse_client_hello(client_hello_body(session=b"\x00" * 33))
    with pytest.raises(Malformed, match="cipher suite list of 3"):
        parse_client_hello(client_hello_body(suites=b"\x00\x2f\x00"))
    with pytest.raises(Malformed, match="cipher suite list of 0"):
        parse_client_hello(client_hello_body(suites=b""))
    with pytest.raises(Malformed, match="no compression"):
        parse_client_hello(client_hello_body(compression=b""))
    with pytest.raises(Malformed, match="after its extensions"):
        parse_client_hello(client_hello_body(SNI_EXT) + b"\x00")
    with pytest.raises(Malformed, match="more than"):
        parse_client_hello(client_hello_body(ext(0xFF01, b"") * (MAX_EXTENSIONS + 1)))
    grease = ext(43, vec(1, b"\x0a\x0a\x03\x04\x03\x03"))
    other_name = ext(0, vec(2, b"\x01" + vec(2, b"x") + b"\x00" + vec(2, b"real.example")))
    hello = parse_client_hello(client_hello_body(grease + other_name))
    assert hello.versions == [0x0304, 0x0303] and hello.sni == "real.example"
    assert is_grease(0xFAFA) and not is_grease(0x0A1A)


def test_server_hello_branches():
    hello = parse_hello(SERVER_HELLO_13)
    assert isinstance(hello, ServerHello)
    assert (hello.version, hello.alpn, hello.cipher_suite) == (0x0304, "h2", 0x1301)
    old = parse_hello(server_hello(extensions=None))
    assert (old.version, old.extensions, old.alpn) == (0x0303, [], None)
    with pytest.raises(Malformed, match="ServerHello version"):
        parse_server_hello(server_hello(version=0x0102)[9:])
    with pytest.raises(Malformed, match="session id of 33"):
        parse_server_hello(server_hello(session=b"\x00" * 33)[9:])


@pytest.mark.parametrize(
    "data",
    [HELLO, SERVER_HELLO_13, server_hello(extensions=None)],
    ids=["client", "server", "server-no-extensions"],
)
def test_every_prefix_is_a_decode_error(data):
    assert prefix_sweep(parse_hello, data) == 0
    assert prefix_sweep(lambda d: walk_records(d), data) >= 1


def test_every_prefix_of_a_real_hello(shared_captures):
    payloads = payloads_by_frame(shared_captures / "teams.pcap", 6)
    frame = int(golden("teams.pcap.tls.txt")[0][0])
    assert prefix_sweep(parse_hello, payloads[frame]) == 0
    # The body alone: only the cut right before the extensions parses (they are optional).
    assert prefix_sweep(lambda d: parse_client_hello(d[9:]), payloads[frame]) == 1


SSLV2_HELLO = bytes.fromhex(
    "8046010301002d0000001000000500000400000a0000090000640000620000080000030000060100800700"
    "c0030080060040020080040080"
) + bytes(range(16))  # skype.pcap frame 101: an SSLv2-format hello offering TLS 1.0


def test_sslv2_format_client_hello():
    hello = parse_hello(SSLV2_HELLO)
    assert isinstance(hello, ClientHello)
    assert (hello.version, hello.record_version, hello.cipher_suites, hello.sni) == (
        0x0301, 0x0002, 15, None)  # fmt: skip
    assert looks_like_sslv2_hello(SSLV2_HELLO) and not looks_like_record(SSLV2_HELLO)
    with pytest.raises(Malformed, match="version 0x0002"):
        parse_sslv2_client_hello(SSLV2_HELLO[:3] + b"\x00\x02" + SSLV2_HELLO[5:])
    with pytest.raises(Malformed, match="not 3n"):
        parse_sslv2_client_hello(SSLV2_HELLO[:5] + b"\x00\x2c" + SSLV2_HELLO[7:])
    with pytest.raises(Malformed, match="does not add up"):
        parse_sslv2_client_hello(b"\x80\x47" + SSLV2_HELLO[2:])
    with pytest.raises(Malformed, match="not an SSLv2"):
        parse_sslv2_client_hello(b"\x80\x46\x02" + SSLV2_HELLO[3:])
    assert prefix_sweep(parse_hello, SSLV2_HELLO) == 0


def test_sslv2_hello_from_skype(shared_captures):
    payloads = payloads_by_frame(shared_captures / "skype.pcap", 6)
    assert payloads[101] == SSLV2_HELLO[:56] + payloads[101][56:]
    r = run(TLS, tls_ctx(), packets(payloads[101]))
    assert (r.finding.protocol, r.finding.confidence) == ("TLS", 0.85)
    assert r.finding.evidence == (
        "SSLv2-format ClientHello offering TLS 1.0 (15 cipher specs) on port 443"
    )


# -- the dissector --------------------------------------------------------------------


def tls_ctx(server_port=443, knowledge=None, client_port=50000):
    return context(TCP, ("192.0.2.10", client_port), ("203.0.113.5", server_port), knowledge)


def test_client_hello_learns_the_server_name():
    k = Knowledge()
    r = run(TLS, tls_ctx(knowledge=k), packets(HELLO))
    f = r.finding
    assert (f.protocol, f.category, f.confidence) == ("TLS", OTHER, 0.95)
    assert f.evidence == "TLS 1.2 ClientHello, SNI sip.example.org, ALPN h2,http/1.1 on port 443"
    assert k.name_of("203.0.113.5").name == "sip.example.org"
    assert k.name_of("203.0.113.5").how == "TLS SNI"
    assert ("sni", "sip.example.org") in r.ctx.hints


def test_hello_split_over_segments_then_server_hello_followed():
    hello = openssl_client_hello("www.example.com")
    flow = packets(hello[:100], hello[100:300], hello[300:], (1, SERVER_HELLO_13))
    r = run(TLS, tls_ctx(), flow)
    assert r.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH]
    assert r.finding.evidence.startswith(
        "TLS 1.3 ClientHello, SNI www.example.com, ALPN h2,http/1.1"
    )
    assert r.finding.evidence.endswith("; ServerHello chose TLS 1.3, ALPN h2")


def test_sip_tls_needs_the_port_and_a_handshake():
    plain = run(TLS, tls_ctx(5061), packets(openssl_client_hello("pbx.example.com", ())))
    assert (plain.finding.protocol, plain.finding.category, plain.finding.confidence) == (
        "SIP-TLS", SIGNALING, 0.7)  # fmt: skip
    named = run(TLS, tls_ctx(5061), packets(HELLO))  # SNI sip.example.org
    assert (named.finding.protocol, named.finding.confidence) == ("SIP-TLS", 0.9)
    assert named.finding.evidence.endswith("to port 5061 (names SIP)")
    alpn = run(TLS, tls_ctx(5061), packets(openssl_client_hello("pbx.example.com", ("sip",))))
    assert alpn.finding.confidence == 0.9
    # The client's own port does not count; nor does the port without a handshake.
    assert run(TLS, tls_ctx(443, client_port=5061), packets(HELLO)).finding.protocol == "TLS"
    sip = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"
    assert run(TLS, tls_ctx(5061), packets(sip)).verdicts == [Probe.NO]


def test_server_hello_first():
    r = run(TLS, tls_ctx(5061), packets((1, SERVER_HELLO_13)))
    assert (r.finding.protocol, r.finding.confidence) == ("SIP-TLS", 0.7)
    r = run(TLS, tls_ctx(), packets((1, SERVER_HELLO_13)))
    assert (r.finding.protocol, r.finding.confidence) == ("TLS", 0.85)
    assert r.finding.evidence == "TLS 1.3 ServerHello (no ClientHello seen), ALPN h2 on port 443"


def test_mid_flow_records():
    big = record(b"\xbb" * 3000, ctype=23, version=0x0303)
    flow = packets(big[:1400], big[1400:2800], big[2800:] + APP_DATA)
    r = run(TLS, tls_ctx(), flow)
    assert r.verdicts == [Probe.MAYBE, Probe.MAYBE, Probe.MATCH]
    assert (r.finding.confidence, r.finding.category) == (0.6, OTHER)
    assert r.finding.evidence == (
        "TLS 1.2 application_data records framed across 2 segments (mid-flow, no handshake seen)"
    )
    alert = record(b"\x01\x00", ctype=21, version=0x0303)
    one = run(TLS, tls_ctx(), packets((1, alert + APP_DATA)))  # whole records, one segment
    assert one.verdicts == [Probe.MATCH] and one.finding.evidence == (
        "TLS 1.2 alert+application_data records fill one segment exactly "
        "(mid-flow, no handshake seen)"
    )
    empty = run(TLS, tls_ctx(), packets(record(b"", ctype=23)))  # says nothing
    assert empty.verdicts == [Probe.MAYBE]
    on_sip_port = run(TLS, tls_ctx(5061), packets(APP_DATA, (1, APP_DATA)))
    assert on_sip_port.finding.confidence == 0.4  # not enough to call SIP-TLS "other"
    broken = run(TLS, tls_ctx(), packets(big[:1400], big[1400:2800] + b"\x00" * 300))
    assert broken.verdicts == [Probe.MAYBE, Probe.NO]


def test_an_alert_sent_before_any_version_was_negotiated(shared_captures):
    """s2n-tls (AWS) closed a connection whose client sent no hello with a close_notify
    alert of record version 0x0000 (aws/s2n-tls issue 1734, fixed in 2023):
    alexa-app.pcapng's S3 server (frame 1536) does. It is TLS; a record version 0x0000
    with anything else in it, or one byte more or less, is not."""
    payload = payloads_by_frame(shared_captures / "alexa-app.pcapng", TCP)[1536]
    assert payload == bytes.fromhex("15000000020100")
    r = run(TLS, tls_ctx(), packets((1, payload)))
    assert r.verdicts == [Probe.MATCH]
    assert (r.finding.protocol, r.finding.category, r.finding.confidence) == ("TLS", OTHER, 0.6)
    assert "record version 0x0000" in r.finding.evidence and "warning" in r.finding.evidence
    for other in (payload[:-1], payload + b"\x00", payload[:5] + b"\x03\x00",
                  payload[:5] + b"\x01\x07", b"\x17" + payload[1:]):  # fmt: skip
        assert run(TLS, tls_ctx(), packets((1, other))).verdicts == [Probe.NO], other.hex()


def test_not_tls():
    for first in (b"GET / HTTP/1.1\r\n\r\n", b"\x80\x46\x01\x03\x01" + b"\x00" * 70, b""):
        assert run(TLS, tls_ctx(), packets(first)).verdicts == [Probe.NO]
    garbled = record(handshake(1, b"\x03\x03" + b"\x00" * 10))
    assert run(TLS, tls_ctx(), packets(garbled)).verdicts == [Probe.NO]


def test_a_broken_answer_is_an_anomaly():
    r = run(TLS, tls_ctx(), packets(HELLO, (1, record(handshake(2, b"\x03\x03")))))
    assert r.matched and r.ctx.anomalies.counts == {"tls_malformed": 1}
